"""A real ``redis-server`` (Debian's package) on a loopback port, with its own directory: what
the fleet benchmark (``bench.fleet``) and the fleet tests (``tests/redis_server.py``, which adds
their skip-or-fail rule) run their coordinator on.

``find_redis()`` says where ``redis-server`` is, or None; ``RedisServer`` starts and stops one.
"""

from __future__ import annotations

import shutil
import signal
import socket
import ssl
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

#: What to do when ``redis-server`` is not on the PATH.
HOW_TO_GET = "`apt-get install redis-server` (Debian's package; .ci/run installs it)"


def find_redis() -> str | None:
    """Where ``redis-server`` is on the PATH, or None."""
    return shutil.which("redis-server")


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
                 tls: TlsFiles | None = None, binary: str | None = None) -> None:
        found = binary or find_redis()
        if found is None:
            raise RuntimeError("redis-server is not on the PATH: " + HOW_TO_GET)
        self.binary = found
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
