"""``brokergate demo``: QST sessions through representative scenarios, against the simulator.

Everything runs in this process on loopback: the QST simulator and a small fleet of sessions,
each with a scenario and the outcome it should reach. The demo prints each transition as it
happens, then a summary of outcomes against expectations, and writes the audit trail as JSON
lines. It exits 0 only when every session reached its expected outcome and the simulator saw no
protocol violation.
"""

from __future__ import annotations

import json
import random
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import trio

from engine._audit import AuditLog
from engine._errors import NotAuthenticated, SessionError
from engine._session import Session, open_session
from machines import Backoff, Secret, Transitioned
from machines.qst import Coalescing, QstConfig
from machines.qst import qst_pb2 as pb
from simulators.qst import QstAccount, QstSimulator

#: Short timers so the whole demo takes a few seconds.
DEMO_BACKOFF = Backoff(initial=0.2, factor=2.0, cap=1.0, max_attempts=5, stability_window=2.0)


@dataclass
class Scenario:
    name: str
    account: QstAccount
    expected: str  # the outcome the session must reach: "authenticated", "failed:<reason>", ...
    story: str
    password: str | None = None
    coalescing: Coalescing | None = None
    early_requests: int = 0  # requests the application tries before the login answer


SCENARIOS = [
    Scenario("clean-login", QstAccount("alice", "alice-pw", entitled_interval=pb._250_MS),
             "authenticated",
             "asks for 100 ms quotes, is granted its entitled 250 ms, translates a symbol",
             coalescing=Coalescing.MS_100),
    Scenario("pending-agreements",
             QstAccount("pat", "pat-pw", provisioning=[("cme-1", "CME data agreement", "...",
                                                        "https://support.example/terms")]),
             "provisioning", "has terms to accept: stops and says so"),
    Scenario("wrong-password", QstAccount("walt", "the-real-pw", lockout_after=3),
             "failed:invalid_credentials",
             "wrong password: one attempt, never retried, so the account is never locked",
             password="a-wrong-guess"),
    Scenario("server-error", QstAccount("fran", "fran-pw", server_errors=2), "authenticated",
             "QST answers 'Server error (6)' twice: retried with backoff, third login succeeds"),
    Scenario("second-device", QstAccount("kim", "kim-pw", close_after_login=4101,
                                         close_after_login_delay=0.5),
             "displaced",
             "another device logs in as the same user (close 4101): brokergate steps aside"),
    Scenario("early-requests", QstAccount("eve", "eve-pw", login_delay=0.5), "authenticated",
             "the application asks for data before the login answer: refused, nothing sent",
             early_requests=3),
]


class _Printer:
    def __init__(self, out: TextIO, start: float) -> None:
        self.out, self.start = out, start

    def line(self, text: str) -> None:
        print(f"[{trio.current_time() - self.start:5.2f}s] {text}", file=self.out, flush=True)


def _outcome(session: Session) -> str:
    state = session.state
    if state in ("failed", "locked_out") and session.outcome().get("reason"):
        return f"{state}:{session.outcome()['reason']}"
    return state


async def _run_scenario(sc: Scenario, url: str, audit: AuditLog, printer: _Printer,
                        results: dict[str, dict[str, Any]]) -> None:
    config = QstConfig(
        url=url, user_name=sc.account.user_name, client_id="brokergate-demo",
        password=Secret(sc.password or sc.account.password), coalescing_interval=sc.coalescing,
        backoff=DEMO_BACKOFF, connect_timeout=2.0, login_timeout=2.0, session_id=sc.name,
    )
    row: dict[str, Any] = {"scenario": sc.name, "expected": sc.expected, "refused": 0}
    started = trio.current_time()
    async with (
        open_session(config, audit=audit, rng=random.Random(sc.name)) as session,
        trio.open_nursery() as nursery,
    ):
        nursery.start_soon(_narrate, session, printer)
        for _ in range(sc.early_requests):
            try:
                await session.request(pb.TranslateInstrumentSymbolRequest(
                    symbol_source=1, instrument_symbols=["ESZ6"]))
            except NotAuthenticated:
                row["refused"] += 1
                printer.line(f"{sc.name:<19} request refused by the gate while "
                             f"{session.state}; nothing sent")
            await trio.sleep(0.1)
        try:
            await session.wait_authenticated()
            row["time_to_auth"] = trio.current_time() - started
            await _after_login(sc, session, printer)
        except SessionError:
            pass
        row["outcome"] = _outcome(session)
        row["attempts"] = session.outcome()["attempts"]
        row["granted"] = session.outcome().get("granted")
        nursery.cancel_scope.cancel()
    results[sc.name] = row


async def _after_login(sc: Scenario, session: Session, printer: _Printer) -> None:
    if sc.name == "clean-login":
        answer = await session.request(pb.TranslateInstrumentSymbolRequest(
            symbol_source=1, instrument_symbols=["ESZ6", "NQZ6"]))
        ids = ", ".join(f"{r.symbol}={r.instrument_id}" for r in answer.records)
        printer.line(f"{sc.name:<19} translated: {ids}")
    # Hold the session a moment; a scripted disconnect would show here.
    with trio.move_on_after(1.5):
        async for event in session.events():
            if isinstance(event, Transitioned) and event.dst == "failed":
                return


async def _narrate(session: Session, printer: _Printer) -> None:
    async for event in session.events():
        if isinstance(event, Transitioned):
            extra = []
            if event.reason:
                extra.append(event.reason)
            if event.error_code is not None:
                extra.append(f"code {event.error_code}")
            if event.close_code is not None:
                extra.append(f"close {event.close_code}")
            if event.delay is not None:
                extra.append(f"wait {event.delay:.2f}s")
            note = f"  ({', '.join(extra)})" if extra else ""
            printer.line(f"{session.session_id:<19} {event.src} -> {event.dst}{note}")


def _summary(results: dict[str, dict[str, Any]], violations: list[str], out: TextIO) -> bool:
    print("\nSummary", file=out)
    header = f"{'scenario':<19} {'expected':<27} {'got':<27} {'attempts':>8} {'auth after':>10}"
    print(header, file=out)
    print("-" * len(header), file=out)
    ok = True
    for sc in SCENARIOS:
        row = results.get(sc.name, {"outcome": "did not finish", "attempts": 0})
        match = row["outcome"] == sc.expected
        ok &= match
        auth = f"{row['time_to_auth']:.2f}s" if "time_to_auth" in row else "-"
        mark = "" if match else "   <-- MISMATCH"
        print(f"{sc.name:<19} {sc.expected:<27} {row['outcome']:<27} {row['attempts']:>8} "
              f"{auth:>10}{mark}", file=out)
    print(f"\nrequests refused by the gate before login: "
          f"{sum(r.get('refused', 0) for r in results.values())}", file=out)
    print(f"protocol violations seen by the simulator: {len(violations)}", file=out)
    for v in violations:
        print(f"  {v}", file=out)
    return ok and not violations


async def _demo(audit: AuditLog, out: TextIO) -> tuple[bool, dict[str, dict[str, Any]]]:
    sim = QstSimulator([sc.account for sc in SCENARIOS])
    results: dict[str, dict[str, Any]] = {}
    try:
        async with trio.open_nursery() as nursery:
            await nursery.start(sim.serve)
            print(f"QST simulator on {sim.url}; {len(SCENARIOS)} sessions start at once:\n",
                  file=out)
            for sc in SCENARIOS:
                print(f"  {sc.name:<19} {sc.story}", file=out)
            print(file=out)
            printer = _Printer(out, trio.current_time())
            async with trio.open_nursery() as sessions:
                for sc in SCENARIOS:
                    sessions.start_soon(_run_scenario, sc, sim.url, audit, printer, results)
            nursery.cancel_scope.cancel()
    finally:
        audit.close()
    return _summary(results, sim.stats.violations, out), results


def run_demo(out_dir: Path, out: TextIO | None = None) -> int:
    """Run the demo, write its audit trail and summary under ``out_dir``; 0 if all went as
    expected."""
    out = out or sys.stdout
    out_dir.mkdir(parents=True, exist_ok=True)
    audit_path = out_dir / "audit.jsonl"
    audit_path.unlink(missing_ok=True)
    ok, results = trio.run(_demo, AuditLog.to_file(audit_path), out)
    (out_dir / "summary.json").write_text(json.dumps(results, indent=2, default=str) + "\n")
    print(f"\naudit trail: {audit_path} (JSON lines, one per transition)", file=out)
    print(f"summary:     {out_dir / 'summary.json'}", file=out)
    print("all sessions reached their expected outcome" if ok else "SOME SESSIONS DIFFERED",
          file=out)
    return 0 if ok else 1
