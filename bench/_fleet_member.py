"""One process of a fleet: a gateway on the Redis coordinator, logging accounts in.

    python -m bench._fleet_member BROKER INFO_JSON REDIS_URL USER[,USER...] [options]

The fleet benchmark and the fleet tests start several of these against one simulator process
(``bench._server``) and one redis-server. The sealing key comes from ``BROKERGATE_FLEET_KEY``.
With ``--local`` a member uses no coordinator at all (REDIS_URL is ignored): each process keeps
its own limiter, as before the fleet, which is what the fleet benchmark compares with.
Each prints JSON lines on stdout, ``time`` being the wall clock (``time.time()``, comparable
across processes on one machine):

- ``{"event": "ready", "pid": P, "time": T}`` once the coordinator is connected (``--local``:
  at once) and the sessions are opening;
- ``{"event": "state", "user": U, "state": S, "time": T}`` at each session's change of state
  (``standby``, ``authenticated``, ``failed``...);
- ``{"event": "settled", "authenticated": N, "failed": M, "time": T}`` once every session is
  authenticated or has ended.

It then holds its sessions until its stdin closes (or ``--hold`` seconds pass), and logs out.
A process killed with SIGKILL holds nothing: that is what the takeover tests do to it.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any

import trio

from bench._clients import engine_config
from bench._server import CHECKOUT, _lines, raise_fd_limit
from brokergate import (
    TERMINAL_STATES,
    AuditLog,
    Gateway,
    SessionError,
    Transitioned,
    open_gateway,
)
from brokergate.engine.fleet import open_redis_coordinator


def _arguments(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench._fleet_member")
    parser.add_argument("broker", choices=["qst", "cqg", "firstock"])
    parser.add_argument("info", type=json.loads, help="the simulator's first line")
    parser.add_argument("redis")
    parser.add_argument("users", type=lambda text: [u for u in text.split(",") if u])
    parser.add_argument("--lease-ttl", type=float, default=10.0)
    parser.add_argument("--local", action="store_true",
                        help="no coordinator: this process's own limiter and logins only")
    parser.add_argument("--rps", type=float, default=None,
                        help="Firstock: the REST rate limit to pace at")
    parser.add_argument("--hold", type=float, default=None,
                        help="seconds to hold the sessions (default: until stdin closes)")
    parser.add_argument("--audit", help="append the audit trail to this file")
    parser.add_argument("--setting", action="append", default=[], metavar="NAME=JSON",
                        help="a session setting (repeatable), e.g. restore_window=60")
    return parser.parse_args(argv)


def say(**fields: Any) -> None:
    print(json.dumps(fields), flush=True)


class Member:
    """This process's sessions and how many have settled."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.counts = {"authenticated": 0, "failed": 0}
        self.settled = trio.Event()
        self.done = trio.Event()

    def _seen(self, user: str, state: str, ended: bool) -> bool:
        say(event="state", user=user, state=state, time=time.time())
        if not ended and (state == "authenticated" or state in TERMINAL_STATES):
            self.counts["authenticated" if state == "authenticated" else "failed"] += 1
            if sum(self.counts.values()) == len(self.args.users):
                self.settled.set()
            return True
        return ended

    async def session(self, gateway: Gateway, user: str) -> None:
        try:
            await self._session(gateway, user)
        except SessionError as exc:
            say(event="error", user=user, error=str(exc))

    async def _session(self, gateway: Gateway, user: str) -> None:
        args = self.args
        settings: dict[str, Any] = {name: json.loads(value) for name, _, value in
                                    (item.partition("=") for item in args.setting)}
        if args.broker == "firstock":
            settings["requests_per_second"] = args.rps
        config = engine_config(args.broker, args.info, user,
                               session_id=f"{user}-{os.getpid()}", **settings)
        async with gateway.session(config) as session:
            stream = session.events()
            ended = self._seen(user, session.state, False)
            async with trio.open_nursery() as nursery:
                async def watch() -> None:
                    nonlocal ended
                    async for event in stream:
                        if isinstance(event, Transitioned):
                            ended = self._seen(user, event.dst, ended)
                nursery.start_soon(watch)
                await self.done.wait()
                nursery.cancel_scope.cancel()


async def main(args: argparse.Namespace) -> None:
    audit = AuditLog.to_file(args.audit) if args.audit else AuditLog.to_stream(sys.stderr)
    member = Member(args)
    async with contextlib.AsyncExitStack() as stack:
        fleet = None if args.local else await stack.enter_async_context(
            open_redis_coordinator(args.redis, lease_ttl=args.lease_ttl))
        gateway = await stack.enter_async_context(open_gateway(coordinator=fleet, audit=audit))
        say(event="ready", pid=os.getpid(), time=time.time())
        async with trio.open_nursery() as nursery:
            for user in args.users:
                nursery.start_soon(member.session, gateway, user)
            await member.settled.wait()
            say(event="settled", time=time.time(), **member.counts)
            if args.hold is not None:
                await trio.sleep(args.hold)
            else:
                stdin = trio.lowlevel.FdStream(os.dup(sys.stdin.fileno()))
                while await stdin.receive_some(1024):
                    pass
            member.done.set()


if __name__ == "__main__":
    raise_fd_limit()
    trio.run(main, _arguments(sys.argv[1:]))


# ------------------------------------------------------------------------------------------
# The parent's side: start members and follow what they print.


class MemberProcess:
    """A running member: every line it printed so far (``lines``), and ways to wait on them."""

    def __init__(self, proc: trio.Process) -> None:
        self.proc = proc
        self.lines: list[dict[str, Any]] = []
        self._changed = trio.Event()

    async def follow(self) -> None:
        assert self.proc.stdout is not None
        async for line in _lines(self.proc.stdout):
            if line.startswith("{"):
                self.lines.append(json.loads(line))
                self._changed.set()
                self._changed = trio.Event()

    async def wait_for(self, predicate: Callable[[dict[str, Any]], bool],
                       within: float = 60.0) -> dict[str, Any]:
        """The first line (printed so far or later) for which ``predicate`` holds."""
        with trio.fail_after(within):
            seen = 0
            while True:
                for line in self.lines[seen:]:
                    if predicate(line):
                        return line
                seen = len(self.lines)
                await self._changed.wait()

    def states(self, user: str) -> list[str]:
        return [line["state"] for line in self.lines
                if line.get("event") == "state" and line.get("user") == user]

    def kill(self) -> None:
        """SIGKILL: the process holds nothing from here on (its leases expire)."""
        self.proc.kill()


@asynccontextmanager
async def members(broker: str, info: dict[str, Any], redis_url: str,
                  groups: Sequence[Sequence[str]], *options: str,
                  env: Mapping[str, str] | None = None) -> AsyncIterator[list[MemberProcess]]:
    """One member process per group of users, all started at once; closed (stdin shut, then
    waited for) when the block ends."""
    environ = {**os.environ, **(env or {})}
    async with trio.open_nursery() as nursery:
        running: list[MemberProcess] = []
        for group in groups:
            cmd = [sys.executable, "-m", "bench._fleet_member", broker, json.dumps(info),
                   redis_url, ",".join(group), *options]
            proc = await trio.lowlevel.open_process(
                cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, cwd=CHECKOUT, env=environ)
            member = MemberProcess(proc)
            running.append(member)
            nursery.start_soon(member.follow)
        try:
            yield running
        finally:
            for member in running:
                if member.proc.stdin is not None:
                    with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
                        await member.proc.stdin.aclose()
            with trio.move_on_after(15):
                for member in running:
                    await member.proc.wait()
            for member in running:
                if member.proc.returncode is None:
                    member.proc.kill()
            nursery.cancel_scope.cancel()


async def first_in(running: Sequence[MemberProcess], user: str, state: str,
                   within: float = 30.0) -> MemberProcess:
    """The first of ``running`` whose session of ``user`` has been in ``state``."""
    with trio.fail_after(within):
        while True:
            for member in running:
                if state in member.states(user):
                    return member
            # Several processes' output, each on its own task: polled, a few ms apart.
            await trio.sleep(0.01)
