"""A broker simulator in a process of its own, for the benchmarks.

    python -m bench._server {qst,cqg,firstock} [--accounts N] [--rate R] [--login-delay S]
                            [--settle S]

The benchmarks time a client, so the simulator must not share the client's process (or its
interpreter lock). This process serves one simulator on 127.0.0.1 with ``--accounts`` users
named ``u0``, ``u1``, ... whose password is ``pw`` (Firstock: API key ``key-u0``, vendor code
``u0_API``, TOTP ``123456``). Its first line on stdout is JSON with the addresses; after that
it answers one command per line on stdin with one JSON line:

    stats            what the simulator counted (connections, logins, 429s, violations, ...)
    drop USER        CQG, QST: drop USER's connections without a close frame; {"dropped": n}
    stream USER N    CQG, Firstock: queue N application messages for USER's connections (a
                     market-data-sized frame each, see ``feed``); {"connections": n}
    received         CQG: how many application ClientMsgs the simulator has received

and it exits when stdin closes, so it never outlives the benchmark that started it.
``--settle`` is the pause each login takes on the simulator (0 here by default: the benchmark
times the client and the wire, not a fixed server delay); ``--login-delay`` adds a server-side
think time to every login.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import resource
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import trio

PASSWORD = "pw"
#: The checkout the benchmarks run from: bench/ is not installed, so its child processes
#: (``python -m bench...``) start there, wherever the caller's working directory is.
CHECKOUT = Path(__file__).resolve().parent.parent
TOTP = "123456"


def user(n: int) -> str:
    """The name of the simulator's n-th account."""
    return f"u{n}"


def api_key(name: str) -> str:
    """The API key of Firstock account ``name`` (the simulator's default for an account)."""
    return f"key-{name}"


def vendor_code(name: str) -> str:
    """The vendor code of Firstock account ``name`` (the simulator's default)."""
    return f"{name}_API"


#: The application field the CQG feed's frames carry: a tag in the range CQG keeps for the
#: application's traffic (1-30), which brokergate's session-layer schema does not declare, as
#: market data is not.
CQG_FEED_TAG = 10


def feed(broker: str, count: int) -> list[Any]:
    """``count`` market-data-like messages: CQG ServerMsgs of about 80 bytes carrying one
    application field (brokergate's schema knows nothing of it), or Firstock socket JSON."""
    if broker == "cqg":
        frames = []
        for n in range(count):
            payload = b"quote %08d bid 4512.25 ask 4512.50 size 17x23 last 4512.25 vol 10012" % n
            # Field CQG_FEED_TAG, wire type 2 (length-delimited): tag byte, length, payload.
            frames.append(bytes([CQG_FEED_TAG << 3 | 2, len(payload)]) + payload)
        return frames
    return [json.dumps({"t": "df", "e": "NSE", "tk": "26000", "lp": f"{22000 + n % 100}.05",
                        "v": str(n), "bp1": "22000.00", "sp1": "22000.10"})
            for n in range(count)]


def raise_fd_limit() -> int:
    """Lift this process's open-file limit to its hard limit (10,000 sessions need 10,000
    sockets); return the limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def _arguments(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench._server")
    parser.add_argument("broker", choices=["qst", "cqg", "firstock"])
    parser.add_argument("--accounts", type=int, default=1)
    parser.add_argument("--rate", type=float, default=0.0,
                        help="Firstock: REST requests per second before 429 (0: no limit)")
    parser.add_argument("--login-delay", type=float, default=0.0)
    parser.add_argument("--settle", type=float, default=0.0)
    return parser.parse_args(argv)


def _simulator(args: argparse.Namespace) -> Any:
    names = [user(n) for n in range(args.accounts)]
    if args.broker == "qst":
        from brokergate.simulators.qst import QstAccount, QstSimulator  # noqa: PLC0415

        return QstSimulator([QstAccount(u, PASSWORD, login_delay=args.login_delay)
                             for u in names])
    if args.broker == "cqg":
        from brokergate.simulators.cqg import CqgAccount, CqgSimulator  # noqa: PLC0415

        return CqgSimulator([CqgAccount(u, PASSWORD, logon_delay=args.login_delay)
                             for u in names], echo_application=False)
    from brokergate.simulators.firstock import FirstockAccount, FirstockSimulator  # noqa: PLC0415

    # Firstock's REST login is where its check happens: the settle is its least delay.
    delay = max(args.login_delay, args.settle)
    return FirstockSimulator(
        [FirstockAccount(u, PASSWORD, fixed_totp=TOTP, login_delay=delay)
         for u in names],
        rate_limit=args.rate or None,
    )


def _stats(sim: Any) -> dict[str, Any]:
    stats = sim.stats
    out: dict[str, Any] = {"violations": len(stats.violations)}
    for name in ("connections", "logins_ok", "logins_rejected", "logons_ok", "restores_ok",
                 "status_429", "requests", "sockets_opened"):
        value = getattr(stats, name, None)
        if isinstance(value, int):
            out[name] = value
    for name in ("logon_requests", "restore_requests"):
        if hasattr(stats, name):
            out[name] = len(getattr(stats, name))
    if hasattr(stats, "request_times"):
        out["request_times"] = list(stats.request_times)
    return out


async def _lines(stream: trio.abc.ReceiveStream) -> AsyncIterator[str]:
    buffer = b""
    while True:
        chunk = await stream.receive_some(65536)
        if not chunk:
            return
        buffer += chunk
        while b"\n" in buffer:
            line, buffer = buffer.split(b"\n", 1)
            yield line.decode().strip()


async def _serve(args: argparse.Namespace) -> None:
    sim = _simulator(args)
    # The accounts live as long as the process: keep them out of the collector's way, so that
    # its pauses (tens of ms with 10,000 accounts) do not land in the middle of a measurement.
    gc.freeze()
    sim.login_settle = args.settle
    if hasattr(sim, "sockets"):
        sim.sockets.login_settle = args.settle
    async with trio.open_nursery() as nursery:
        await nursery.start(sim.serve, "127.0.0.1", 0)
        info: dict[str, Any] = {"url": sim.url, "pid": os.getpid()}
        if args.broker == "firstock":
            info.update(base_url=sim.base_url, socket_url=sim.socket_url)
        print(json.dumps(info), flush=True)
        commands = trio.lowlevel.FdStream(os.dup(sys.stdin.fileno()))
        async for line in _lines(commands):
            word, _, rest = line.partition(" ")
            answer: dict[str, Any]
            if word == "stats":
                answer = _stats(sim)
            elif word == "drop" and args.broker in ("cqg", "qst"):
                answer = {"dropped": await sim.drop(rest)}
            elif word == "stream" and args.broker in ("cqg", "firstock"):
                name, _, count = rest.partition(" ")
                answer = {"connections": sim.send(name, feed(args.broker, int(count)))}
            elif word == "received" and args.broker == "cqg":
                answer = {"received": len(sim.stats.app_messages)}
            else:
                answer = {"error": f"unknown command {line!r}"}
            print(json.dumps(answer), flush=True)
        nursery.cancel_scope.cancel()


def main(argv: list[str] | None = None) -> None:
    args = _arguments(sys.argv[1:] if argv is None else argv)
    raise_fd_limit()
    trio.run(_serve, args)


# ------------------------------------------------------------------------------------------
# The benchmark's side: start one and talk to it.


@dataclass
class SimulatorProcess:
    """A running ``bench._server``: its addresses, and a way to send it commands."""

    info: dict[str, Any]
    command: Callable[[str], Awaitable[dict[str, Any]]]

    @property
    def url(self) -> str:
        return str(self.info["url"])


@asynccontextmanager
async def simulator_process(broker: str, *options: str) -> AsyncIterator[SimulatorProcess]:
    """Run ``python -m bench._server broker options...`` for the block's duration."""
    cmd = [sys.executable, "-m", "bench._server", broker, *options]
    try:
        async with _process(cmd) as running:
            yield running
    except BaseExceptionGroup as group:
        # The process's task reports nothing of its own: what is here came from the caller's
        # block, so hand it back as it was raised.
        if len(group.exceptions) == 1:
            raise group.exceptions[0] from None
        raise


@asynccontextmanager
async def _process(cmd: list[str]) -> AsyncIterator[SimulatorProcess]:
    async with trio.open_nursery() as nursery:
        proc: trio.Process = await nursery.start(
            partial(trio.run_process, cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                    cwd=CHECKOUT, check=False))
        assert proc.stdin is not None and proc.stdout is not None
        lines = _lines(proc.stdout).__aiter__()
        lock = trio.Lock()

        async def command(line: str) -> dict[str, Any]:
            assert proc.stdin is not None
            async with lock:
                await proc.stdin.send_all(line.encode() + b"\n")
                return dict(json.loads(await lines.__anext__()))

        try:
            with trio.fail_after(30):
                first = await lines.__anext__()
            yield SimulatorProcess(json.loads(first), command)
        finally:
            await proc.stdin.aclose()
            with trio.move_on_after(10):
                await proc.wait()
            if proc.returncode is None:
                proc.kill()


if __name__ == "__main__":
    main()
