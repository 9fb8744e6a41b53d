"""``brokergate demo``: the main job in one command, against the built-in simulators.

Every registered broker's simulators start in this process on loopback, and a fleet of sessions
runs through representative scenarios at once: clean logins, refusals that must not be retried,
retries that must, restores, redirects, token refreshes, a morning login storm under a rate
limit. The scenarios come from each broker's simulator kit (``Broker.simulator().demo()``). The
application side tries requests too early in several sessions; the gate must refuse each and the
simulators must see no violation.

It shows each session's state as it changes, then a summary against each scenario's expected
outcome, and writes the audit log, a summary and the traced diagrams of the sessions to an output
folder. Exit status 0 only when every session reached its expected outcome.
"""

from __future__ import annotations

import json
import random
import sys
from contextlib import AsyncExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import trio

from brokergate.engine import diagrams
from brokergate.engine._audit import AuditLog
from brokergate.engine._errors import ConfigurationError, NotAuthenticated, SessionError
from brokergate.engine._gateway import Gateway, open_gateway
from brokergate.engine._session import Session
from brokergate.engine.demo.scenarios import (
    TOTP_WINDOW_AFTER,
    BrokerDemo,
    DemoClock,
    Scenario,
    Stage,
    all_scenarios,
    broker_demo,
    pick,
)
from brokergate.engine.demo.view import Row, View, summary
from brokergate.machines import Transitioned
from brokergate.machines.brokers import BROKERS

__all__ = ["SCENARIOS", "BrokerDemo", "Scenario", "list_scenarios", "run_demo"]


def __getattr__(name: str) -> Any:
    if name == "SCENARIOS":  # every broker's, loaded on first use
        return all_scenarios()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def list_scenarios(out: TextIO | None = None) -> None:
    out = out or sys.stdout
    for sc in all_scenarios():
        fleet = f" ({sc.sessions} sessions)" if sc.sessions > 1 else ""
        print(f"{sc.name:<24} {sc.story}{fleet}\n{'':<24} expects {sc.expect.describe()}",
              file=out)


def run_demo(out_dir: Path, names: list[str] | None = None, *, live: bool | None = None,
             out: TextIO | None = None) -> int:
    """Run the scenarios named (all by default); write the audit log, summary and traces under
    ``out_dir``. Returns 0 when every session reached its expected outcome with no violation,
    1 otherwise, 2 for an unknown scenario name."""
    out = out or sys.stdout
    try:
        chosen = pick(names)
    except ValueError as exc:
        print(f"brokergate demo: {exc}", file=sys.stderr)
        return 2
    if live is None:
        live = out.isatty()
    out_dir.mkdir(parents=True, exist_ok=True)
    audit_path = out_dir / "audit.jsonl"
    audit_path.unlink(missing_ok=True)
    audit = AuditLog.to_file(audit_path)
    try:
        rows, violations, sims = trio.run(_demo, chosen, audit, out, live)
    finally:
        audit.close()
    ok = all(r.ok for r in rows) and not violations
    summary(rows, out)
    refused = sum(r.refused for r in rows)
    print(f"\nrequests the application tried before its login answer: {refused}, all refused by "
          "the gate; nothing reached a broker early", file=out)
    print(f"protocol violations seen by the simulators: {len(violations)}", file=out)
    for v in violations:
        print(f"  {v}", file=out)
    written = _write_outputs(out_dir, chosen, rows, violations=violations, sims=sims)
    print(f"\n{written}", file=out)
    print("every session reached its expected outcome" if ok
          else "SOME SESSIONS DID NOT REACH THEIR EXPECTED OUTCOME", file=out)
    return 0 if ok else 1


async def _demo(chosen: list[Scenario[Any]], audit: AuditLog, out: TextIO,
                live: bool) -> tuple[list[Row], list[str], dict[str, Any]]:
    clock = DemoClock.with_window_in(TOTP_WINDOW_AFTER)
    async with AsyncExitStack() as stack:
        stages = await stage_simulators(stack, chosen, clock, out)
        print(f"\n{sum(sc.sessions for sc in chosen)} sessions start at once:", file=out)
        for sc in chosen:
            fleet = f" [{sc.sessions} sessions]" if sc.sessions > 1 else ""
            print(f"  {sc.name:<24} {sc.story}{fleet}", file=out)
        print(file=out)
        rows = [Row(sc.name, sc.broker, sc.expect.describe(), sessions=sc.sessions)
                for sc in chosen]
        view = View(out, rows, live=live)
        # One gateway: the sessions share what a broker's sessions share (a REST host's rate
        # limit, a user's logon history), as one process's sessions would.
        gateway = await stack.enter_async_context(open_gateway(audit=audit,
                                                               wall_clock=clock.now))
        async with trio.open_nursery() as nursery:
            nursery.start_soon(view.redraw_until_cancelled)
            async with trio.open_nursery() as sessions:
                for sc, row in zip(chosen, rows, strict=True):
                    run = _Run(stages[sc.broker], gateway, view)
                    for n in range(sc.sessions):
                        sessions.start_soon(_run_one, run, sc, row, n)
            nursery.cancel_scope.cancel()
        for sc, row in zip(chosen, rows, strict=True):
            _conclude(sc, row, stages[sc.broker])
        if live:
            view.draw()
        violations = [v for stage in stages.values() for v in stage.violations()]
        sims = {key: value for stage in stages.values() for key, value in stage.counts().items()}
        return rows, violations, sims


async def stage_simulators(stack: AsyncExitStack, chosen: list[Scenario[Any]],
                           clock: DemoClock, out: TextIO) -> dict[str, Stage]:
    """Every broker's simulators with the accounts of the ``chosen`` scenarios, running for
    ``stack``'s block, by broker; says where they listen."""
    stages: dict[str, Stage] = {}
    for broker in BROKERS:
        mine = [sc for sc in chosen if sc.broker == broker.name]
        stages[broker.name] = await stack.enter_async_context(
            broker_demo(broker).staged(mine, clock))
    print("Simulators on loopback:", file=out)
    for broker in BROKERS:
        print(f"  {broker.title:<9} {stages[broker.name].address}", file=out)
    return stages


@dataclass(frozen=True)
class _Run:
    stage: Stage
    gateway: Gateway
    view: View


async def _run_one(run: _Run, sc: Scenario[Any], row: Row, n: int) -> None:
    stage, view = run.stage, run.view
    sid = sc.name if sc.sessions == 1 else f"{sc.name}-{n + 1:02d}"
    config = sc.build(stage, sid, n)
    started = trio.current_time()
    row.states[sid] = "disconnected"
    async with run.gateway.session(config, rng=random.Random(sid)) as session, \
            trio.open_nursery() as watch:
        await watch.start(_narrate, session, sc.name, sid, view)
        for _ in range(sc.early_requests):
            if session.state == "authenticated":
                break
            state = session.state
            if await _try_early(stage, session):
                view.refused(sc.name, state)
            else:
                row.problems.append(f"{sid}: a request before the login answer was not refused")
            await trio.sleep(0.1)
        try:
            await session.wait_authenticated()
            took = trio.current_time() - started
            row.time_to_auth = max(row.time_to_auth or 0.0, took)
            if sc.script is not None:
                note = await sc.script(stage, session)
                if note:
                    row.note = note
        except SessionError:
            pass  # the outcome says why; the expectation decides whether that was right
        except Exception as exc:  # a script's own failure: report it, do not stop the demo
            row.problems.append(f"{sid}: the scenario's script failed: {type(exc).__name__}: "
                                f"{exc}")
        _record(sc, row, sid, session)
        watch.cancel_scope.cancel()


async def _try_early(stage: Stage, session: Session) -> bool:
    """One application request before the login answer; True when the gate refused it."""
    try:
        await stage.early_request(session)
    except NotAuthenticated:
        return True
    return False


async def _narrate(session: Session, scenario: str, sid: str, view: View,
                   task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
    async with session.events() as events:
        task_status.started()
        async for event in events:
            if isinstance(event, Transitioned):
                view.transition(scenario, sid, event, session.outcome())


def _record(sc: Scenario[Any], row: Row, sid: str, session: Session) -> None:
    """Check one session against its scenario's expectation, while it is still open."""
    o = session.outcome()
    state = session.state
    got = state if state == "authenticated" or not o.get("reason") else f"{state}:{o['reason']}"
    want = sc.expect.state + (f":{sc.expect.reason}" if sc.expect.reason else "")
    if got != want:
        row.problems.append(f"{sid}: ended {got}, expected {want}"
                            + (f" ({o['detail']})" if o.get("detail") else ""))
    for key, value in sc.expect.counts.items():
        if sc.sessions == 1:
            row.counts[key] = int(o.get(key) or 0)
        if o.get(key) != value:
            row.problems.append(f"{sid}: {key} {o.get(key)}, expected {value}")
    row.progress(sid, o)
    row.outcome = got if row.outcome in (None, got) else "mixed"


def _conclude(sc: Scenario[Any], row: Row, stage: Stage) -> None:
    if sc.sessions > 1:
        row.outcome = (f"{row.outcome} x{sc.sessions}" if row.outcome != "mixed"
                       else row.state_text())
        if sc.fleet_note is not None and row.time_to_auth:
            row.note, problems = sc.fleet_note(stage, sc.sessions, row.time_to_auth)
            row.problems += problems
    row.ok = not row.problems


def _write_outputs(out_dir: Path, chosen: list[Scenario[Any]], rows: list[Row], *,
                   violations: list[str], sims: dict[str, Any]) -> str:
    """The summary (JSON and Markdown) and the traced diagrams; returns what to tell the user."""
    (out_dir / "summary.json").write_text(json.dumps(
        {"sessions": [r.as_json() for r in rows], "violations": violations, "simulators": sims},
        indent=2) + "\n", encoding="utf-8")
    traces_dir = out_dir / "traces"
    traced: dict[str, str] = {}
    note = None
    for sc in chosen:
        sid = sc.name if sc.sessions == 1 else f"{sc.name}-01"
        if not sc.traced:
            continue
        try:
            trace = diagrams.load_trace(out_dir / "audit.jsonl", sid)
        except ConfigurationError:
            continue
        written, note = diagrams.write_trace(trace, traces_dir)
        traced[sc.name] = next(p.name for p in written if p.suffix == ".md")
    lines = ["# brokergate demo", "",
             "| scenario | expected | got | ok | tries | restores | trace |",
             "|---|---|---|---|---|---|---|"]
    for r in rows:
        link = f"[{traced[r.scenario]}](traces/{traced[r.scenario]})" if r.scenario in traced \
            else ""
        lines.append(f"| {r.scenario} | {r.expected} | {r.outcome} | "
                     f"{'yes' if r.ok else 'NO'} | {r.attempts} | {r.restores} | {link} |")
    lines += ["", f"Protocol violations seen by the simulators: {len(violations)}.", "",
              "Each trace draws the path one session took over its broker's state diagram "
              "(Mermaid, rendered by GitHub and most Markdown viewers; `.svg` beside it when "
              "Graphviz is installed). Draw any other session with `brokergate diagrams --trace "
              "audit.jsonl --session ID`.", ""]
    (out_dir / "README.md").write_text("\n".join(lines), encoding="utf-8")
    text = (f"Wrote {out_dir}/:\n"
            f"  README.md      the summary, with a link to each traced session\n"
            f"  audit.jsonl    every transition of every session, JSON lines (no secrets)\n"
            f"  summary.json   the same results for scripts\n"
            f"  traces/        {len(traced)} sessions drawn over their broker's state diagram "
            "(.md with Mermaid, .dot" + (", .svg" if note is None else "") + ")\n"
            f"Open {out_dir}/README.md in a Markdown viewer that renders Mermaid (GitHub, VS "
            "Code)" + (", or the .svg files in a browser." if note is None else "."))
    if note:
        text += f"\n{note}"
    return text
