"""One client process that logs N sessions in at once and reports what it cost.

    python -m bench._fleet {engine,minimal} {qst,cqg,firstock} N INFO_JSON [--audit FILE]

The scale benchmark starts one of these per measurement, so that each starts from a fresh
interpreter and its peak memory is its own. It raises its open-file limit, logs one session
in and out to warm up (imports, TLS and protobuf caches, the shared machines), reads its
resident memory, then starts all N sessions at once and waits until every one is authenticated
(or has failed). It prints one JSON line: wall time until the last was authenticated, CPU time
(user + system) spent meanwhile and how much of it went to garbage collection, resident memory
before and at its peak, and the count of
sessions authenticated and failed. Then it closes them all.
"""

from __future__ import annotations

import argparse
import gc
import json
import resource
import sys
import time
from typing import Any

import trio

from bench._clients import engine_config, engine_login, minimal_login
from bench._server import raise_fd_limit, user
from brokergate import AuditLog, Gateway, open_gateway

#: Generous bounds: 10,000 sessions queue for the simulator's accept loop, and neither client
#: should give up on a login merely for waiting its turn.
SCALE_SETTINGS = {"connect_timeout": 120.0, "login_timeout": 120.0}
#: Seconds the whole fleet gets before the run is reported as it stands.
DEADLINE = 240.0


def _kib(field: str) -> int:
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


class _Collections:
    """Time spent in the garbage collector, from gc.callbacks."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self._started = 0.0

    def __call__(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        else:
            self.seconds += time.perf_counter() - self._started


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def fleet(client: str, broker: str, n: int, info: dict[str, Any],
                audit: AuditLog) -> dict[str, Any]:
    """``n`` sessions of ``client`` at once; brokergate's from one gateway, as in a process."""
    async with open_gateway(audit=audit) as gateway:
        return await _fleet(client, broker, n, info, gateway)


async def _fleet(client: str, broker: str, n: int, info: dict[str, Any],
                 gateway: Gateway) -> dict[str, Any]:
    async def one(index: int, authenticated: Any, release: trio.Event) -> None:
        name = user(index)
        if client == "engine":
            config = engine_config(broker, info, name, session_id=f"{broker}-{index}",
                                   **SCALE_SETTINGS)
            await engine_login(gateway, config, authenticated, release)
        else:
            await minimal_login(broker, info, name, authenticated, release)

    async with trio.open_nursery() as nursery:  # warm up
        done, release = trio.Event(), trio.Event()
        nursery.start_soon(one, 0, done.set, release)
        await done.wait()
        release.set()
    release = trio.Event()
    base_rss = _kib("VmRSS")
    ok = failed = 0
    everyone = trio.Event()

    def authenticated() -> None:
        nonlocal ok
        ok += 1
        if ok + failed == n:
            everyone.set()

    async def guarded(index: int) -> None:
        nonlocal failed
        try:
            await one(index, authenticated, release)
        except Exception as exc:  # a refused or broken session is counted, not fatal
            failed += 1
            print(f"session {index}: {type(exc).__name__}: {exc}", file=sys.stderr)
            if ok + failed == n:
                everyone.set()

    collections = _Collections()
    gc.callbacks.append(collections)
    cpu0, wall0 = _cpu(), time.perf_counter()
    async with trio.open_nursery() as nursery:
        for index in range(1, n + 1):
            nursery.start_soon(guarded, index)
        # A login the simulator never answers would keep the minimal client (which has no
        # timeouts) waiting for ever: past the deadline, report what there is.
        with trio.move_on_after(DEADLINE):
            await everyone.wait()
        wall, cpu = time.perf_counter() - wall0, _cpu() - cpu0
        gc.callbacks.remove(collections)
        peak_rss = _kib("VmHWM")
        release.set()
        nursery.cancel_scope.cancel()
    return {"client": client, "broker": broker, "sessions": n, "wall": wall, "cpu": cpu,
            "gc": collections.seconds,
            "base_rss_kib": base_rss, "peak_rss_kib": peak_rss, "authenticated": ok,
            "failed": failed, "waiting": n - ok - failed}


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench._fleet")
    parser.add_argument("client", choices=["engine", "minimal"])
    parser.add_argument("broker", choices=["qst", "cqg", "firstock"])
    parser.add_argument("sessions", type=int)
    parser.add_argument("info", help="the simulator's first line (JSON)")
    parser.add_argument("--audit", help="write the audit trail to this file (JSON lines)")
    args = parser.parse_args()
    limit = raise_fd_limit()
    if args.sessions + 100 > limit:
        sys.exit(f"{args.sessions} sessions need more open files than the limit ({limit})")
    audit = AuditLog.to_file(args.audit) if args.audit else AuditLog.disabled()
    try:
        result = trio.run(fleet, args.client, args.broker, args.sessions,
                          json.loads(args.info), audit)
    finally:
        audit.close()
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
