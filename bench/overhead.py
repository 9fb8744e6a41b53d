"""Login overhead: one login through brokergate vs. the minimal hand-written client.

For each broker, the simulator runs in its own process and this process logs the same account
in again and again, alternating brokergate and the minimal client (``bench._clients``) so that
both see the same machine state, and times each from the first call to authenticated. The
sessions are closed between logins, outside the timing. The table gives the median of each and
their ratio. It is measured twice: against a simulator that answers at once (the pure client
cost, the harshest comparison) and against one that takes ``SLOW_SETTLE`` to check each login,
as a real broker does at least.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

import trio

from bench._clients import BROKERS, engine_config, engine_login, minimal_login
from bench._report import Section, median, ratio
from bench._server import simulator_process, user
from brokergate import AuditLog, open_gateway

#: The login check of the second measurement, seconds (the simulators' own default).
SLOW_SETTLE = 0.01
TARGET = 1.10


async def _timed(login: Any) -> float:
    start = time.perf_counter()
    took = 0.0

    def authenticated() -> None:
        nonlocal took
        took = time.perf_counter() - start

    release = trio.Event()
    release.set()  # close as soon as authenticated
    await login(authenticated, release)
    return took


async def _measure(broker: str, settle: float, logins: int, audit: AuditLog) -> tuple[
        list[float], list[float]]:
    ours: list[float] = []
    theirs: list[float] = []
    warm = max(5, logins // 10)
    # One account per round, logged in by both clients: CQG caps a user's logons per day (and
    # brokergate enforces the cap), and no account's history colours another round.
    accounts = warm + logins
    async with simulator_process(broker, "--accounts", str(accounts), "--settle",
                                 str(settle)) as sim, open_gateway(audit=audit) as gateway:
        info = sim.info
        account = ""

        async def engine(authenticated: Any, release: trio.Event) -> None:
            await engine_login(gateway, engine_config(broker, info, account), authenticated,
                               release)

        async def minimal(authenticated: Any, release: trio.Event) -> None:
            await minimal_login(broker, info, account, authenticated, release)

        for n in range(accounts):
            account = user(n)
            # Alternate which goes first, so neither always follows the other.
            pair = (engine, minimal) if n % 2 else (minimal, engine)
            for login in pair:
                took = await _timed(login)
                if n >= warm:
                    (ours if login is engine else theirs).append(took)
        stats = await sim.command("stats")
        if stats.get("violations"):
            raise RuntimeError(f"{broker} simulator saw violations: {stats}")
    return ours, theirs


def run(*, quick: bool) -> Section:
    logins = 30 if quick else 300
    section = Section(
        "1. Login overhead: start to authenticated, one session at a time",
        ["broker", "simulator's login check", "minimal client ms", "brokergate ms",
         "brokergate adds µs", "ratio"],
    )
    with tempfile.TemporaryDirectory() as tmp:
        audit = AuditLog.to_file(Path(tmp) / "audit.jsonl")
        try:
            for broker in BROKERS:
                for settle in (0.0, SLOW_SETTLE):
                    ours, theirs = trio.run(_measure, broker, settle, logins, audit)
                    mine, base = median(ours), median(theirs)
                    section.rows.append([
                        broker.upper() if broker != "firstock" else "Firstock",
                        "none" if settle == 0 else f"{settle * 1e3:g} ms",
                        f"{base * 1e3:.3f}", f"{mine * 1e3:.3f}",
                        f"{(mine - base) * 1e6:.0f}", ratio(mine, base),
                    ])
                    if settle:  # the instant row reports the µs a login adds, not a target
                        section.targets.append(
                            (f"{broker} login overhead ≤ {TARGET:.2f}x "
                             f"({settle * 1e3:g} ms login check)", mine / base <= TARGET))
        finally:
            audit.close()
    section.notes += [
        f"Median of {logins} logins each, alternating brokergate and the minimal client "
        "against one simulator process; the sessions are closed between logins, untimed.",
        "brokergate runs as a user would: its state machine, request gate, timers and heartbeat, "
        "and the audit trail written as JSON lines to a file. The minimal client "
        "(bench/_clients.py) sends the login and reads one answer: no machine, timers or audit.",
        "Firstock is the REST login (httpx) and then the socket attached with the token; QST "
        "and CQG are one WebSocket and one login frame each way.",
        "The 1.10x target is judged against the 10 ms login check (a real broker's login takes "
        "at least a network round trip); against a simulator that answers at once the row "
        "reports the microseconds a login adds, once a day per session.",
    ]
    return section
