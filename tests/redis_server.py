"""A real ``redis-server`` (Debian's package) for the fleet tests, on a loopback port, with its
own directory, started and stopped by the tests.

Without ``redis-server`` on the PATH the fleet tests are skipped with a message that says how to
get it; with ``BROKERGATE_REQUIRE_REDIS=1`` (set by ``.ci/run``) they fail instead, so that CI
cannot pass by skipping them.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import ssl
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

HOW_TO_GET = ("the fleet tests need Debian's redis-server on the PATH: "
              "`apt-get install redis-server` (.ci/run installs it)")


def redis_binary() -> str:
    found = shutil.which("redis-server")
    if found is None:
        if os.environ.get("BROKERGATE_REQUIRE_REDIS") == "1":
            pytest.fail(HOW_TO_GET + "; BROKERGATE_REQUIRE_REDIS=1 forbids skipping them")
        pytest.skip(HOW_TO_GET)
    return found


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


@dataclass(frozen=True)
class TlsFiles:
    """The PEM files a TLS ``redis-server`` serves with: its certificate (for ``name``), its
    key, and the CA that issued it (which the tests' clients trust)."""

    cert: Path
    key: Path
    ca: Path
    name: str = "127.0.0.1"


class RedisServer:
    """One ``redis-server`` process: no persistence, bound to 127.0.0.1 only, protected mode on.

    ``stop()`` kills it (SIGKILL: what a crash looks like to its clients); ``start()`` brings it
    back on the same port, empty. With ``tls`` it listens for TLS only (``--port 0``), clients
    need not present a certificate, and ``url`` is ``rediss://``.
    """

    def __init__(self, directory: Path, *, extra: tuple[str, ...] = (),
                 tls: TlsFiles | None = None) -> None:
        self.binary = redis_binary()
        self.directory = directory
        self.directory.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.extra = extra
        self.tls = tls
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"{'rediss' if self.tls else 'redis'}://127.0.0.1:{self.port}/0"

    def _listen_args(self) -> list[str]:
        if self.tls is None:
            return ["--port", str(self.port)]
        return ["--port", "0", "--tls-port", str(self.port),
                "--tls-cert-file", str(self.tls.cert), "--tls-key-file", str(self.tls.key),
                "--tls-ca-cert-file", str(self.tls.ca), "--tls-auth-clients", "no"]

    def _connect(self, timeout: float) -> socket.socket:
        conn = socket.create_connection(("127.0.0.1", self.port), timeout=timeout)
        if self.tls is None:
            return conn
        context = ssl.create_default_context(cafile=str(self.tls.ca))
        try:
            return context.wrap_socket(conn, server_hostname=self.tls.name)
        except BaseException:
            conn.close()
            raise

    def start(self) -> None:
        assert self.process is None, "already running"
        self.process = subprocess.Popen(
            [self.binary, "--bind", "127.0.0.1", *self._listen_args(),
             "--dir", str(self.directory), "--save", "", "--appendonly", "no",
             # Uncompressed snapshots: a test scans their bytes for secrets.
             "--rdbcompression", "no",
             "--logfile", str(self.directory / "redis.log"), *self.extra],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10.0
        while True:
            if self.process.poll() is not None:
                log = (self.directory / "redis.log")
                tail = log.read_text()[-2000:] if log.exists() else ""
                raise RuntimeError(f"redis-server exited with {self.process.returncode}: {tail}")
            if self.ping():
                return
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"redis-server did not answer on port {self.port} in 10 s")
            time.sleep(0.01)

    def ping(self) -> bool:
        """PING over a plain socket (TLS-wrapped for a TLS server), so that the fixture needs
        no client library."""
        try:
            with self._connect(1.0) as conn:
                conn.sendall(b"*1\r\n$4\r\nPING\r\n")
                return conn.recv(64).startswith((b"+PONG", b"-NOAUTH"))
        except OSError:
            return False

    def command(self, *args: str) -> bytes:
        """One command over a plain (or TLS) socket (RESP), the raw reply's bytes."""
        parts = [f"*{len(args)}\r\n".encode()]
        for arg in args:
            data = arg.encode()
            parts.append(b"$%d\r\n%s\r\n" % (len(data), data))
        with self._connect(5.0) as conn:
            conn.sendall(b"".join(parts))
            conn.settimeout(1.0)
            chunks = []
            while True:
                try:
                    chunk = conn.recv(65536)
                except TimeoutError:
                    break
                if not chunk:
                    break
                chunks.append(chunk)
                if chunk.endswith(b"\r\n"):
                    conn.settimeout(0.05)
            return b"".join(chunks)

    def stop(self) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)
        self.process = None

    def dump(self) -> bytes:
        """Everything in the server's keyspace, as an RDB snapshot's bytes (SAVE, then read)."""
        reply = self.command("SAVE")
        assert reply.startswith(b"+OK"), reply
        return (self.directory / "dump.rdb").read_bytes()
