"""Transition cost: what one transition of a session costs, with and without its audit event.

    .venv/bin/python -m bench.transitions [--quick]

Each broker's real session model (``QstSession``, ``CqgSession``, ``FirstockSession``) is fed a
whole session's life as events, without sockets: log in, stay up for the stability window, lose
the connection, come back (QST and Firstock reconnect through backoff, CQG restores its session),
log out. Three ways are timed, each over many fresh sessions and several repeats:

- the machine alone (``model.handle(event)``: decoding the frame, the ``transitions`` trigger,
  the callbacks, the commands out);
- the machine plus, for each ``Transitioned`` it emits, the audit event the driver writes
  (``SessionDriver._on_transition``: ``transition(record)`` on the logger
  ``AuditLog.session`` binds, every field of the record in one event), into
  ``AuditLog.to_file`` on a real temporary file;
- the audit event alone, for the same transition records;
- the Prometheus metrics alone (``open_gateway(metrics=...)``): the driver's one call per
  transition to the session's ``SessionMeter``, for the same records, inside ``trio.run`` (the
  meter reads trio's clock).

It also reports the bytes of an audit line and the memory a model keeps once authenticated
(tracemalloc), the figure the scale benchmark builds on.
"""

from __future__ import annotations

import argparse
import gc
import json
import tempfile
import time
import tracemalloc
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from pathlib import Path

import trio

from bench._report import Section, median, spread
from brokergate.engine._audit import AuditLog, SessionLog
from brokergate.engine._metrics import Metrics, SessionMeter
from brokergate.machines import (
    AUTHENTICATED,
    DISCONNECTED,
    Closed,
    Connected,
    Event,
    FrameReceived,
    HttpAnswered,
    LoginModel,
    Secret,
    Start,
    Stop,
    TimerFired,
    Transitioned,
)
from brokergate.machines.cqg import CqgConfig, CqgSession, LogonHistory
from brokergate.machines.cqg import cqg_session_pb2 as cqg_pb
from brokergate.machines.firstock import FirstockConfig
from brokergate.machines.firstock.model import FirstockSession
from brokergate.machines.qst import QstConfig, QstSession
from brokergate.machines.qst import qst_pb2 as qst_pb

#: Allowance per transition, machine and audit together: a three-transition login then stays
#: within the 0.3 ms per session that the design's budget (1.5 ms against the hand-written
#: client's 1.2 ms) leaves for everything the engine adds.
TRANSITION_BUDGET_US = 100.0
#: What metrics may add to a transition (issue 24's bound).
METRICS_BUDGET_US = 2.0
#: What a model may keep alive: the budget's 30 KB per session against the hand-written
#: client's 24 KB leaves 6 KB for everything the engine adds.
MODEL_BUDGET_BYTES = 6 * 1024


@dataclass(frozen=True)
class Cycle:
    """One broker's session life as events, and how to build a fresh model for it."""

    broker: str
    #: A fresh model as ``open_session`` builds it (the process's shared random source: a
    #: ``random.Random`` of its own would add 2.5 KB to every session).
    build: Callable[[], LoginModel]
    events: tuple[Event, ...]
    #: The path the events take, for the notes.
    path: str


@dataclass(frozen=True)
class Sizes:
    sessions: int
    repeats: int
    memory_models: int


QUICK = Sizes(sessions=40, repeats=5, memory_models=200)
FULL = Sizes(sessions=500, repeats=9, memory_models=2000)


# --- the three brokers' cycles -----------------------------------------------------------------


def _qst() -> Cycle:
    config = QstConfig(url="ws://127.0.0.1:1/", user_name="bench-user",
                       password=Secret("bench-password"), client_id="bench-client")
    answer = qst_pb.Response(request_id=1)
    answer.login.coalescing_interval = qst_pb._250_MS
    login = answer.SerializeToString()
    logout = qst_pb.Response(request_id=2)
    logout.logout.SetInParent()
    events: tuple[Event, ...] = (
        Start(), Connected(1), FrameReceived(1, login), TimerFired("stable"),
        Closed(1, 1006), TimerFired("backoff"), Connected(2), FrameReceived(2, login),
        Stop(), FrameReceived(2, logout.SerializeToString()),
    )
    return Cycle("QST", lambda: QstSession(config), events,
                 "login, stable, drop (1006), backoff, login again, logout")


def _cqg() -> Cycle:
    config = CqgConfig(url="ws://127.0.0.1:1/", user_name="bench-user",
                       password=Secret("bench-password"), client_app_id="bench-client")
    logon = cqg_pb.ServerMsg(logon_result=cqg_pb.LogonResult(
        result_code=0, base_time="2026-11-21T00:00:00", session_token="t" * 32,
        protocol_version_major=2, protocol_version_minor=230, server_time=0))
    restored = cqg_pb.ServerMsg(restore_or_join_session_result=cqg_pb.RestoreOrJoinSessionResult(
        result_code=0, base_time="2026-11-21T00:00:00", server_time=0))
    logged_off = cqg_pb.ServerMsg(logged_off=cqg_pb.LoggedOff(logoff_reason=1))
    events: tuple[Event, ...] = (
        Start(), Connected(1), FrameReceived(1, logon.SerializeToString()),
        TimerFired("stable"), Closed(1, 1006), Connected(2),
        FrameReceived(2, restored.SerializeToString()), Stop(),
        FrameReceived(2, logged_off.SerializeToString()),
    )

    def build() -> LoginModel:
        # A history of its own per session: the per-user logon throttle is not measured here.
        return CqgSession(config, clock=time.perf_counter, history=LogonHistory())

    return Cycle("CQG", build, events, "logon, stable, drop (1006), restore, logoff")


_FIRSTOCK_NOW = datetime(2026, 11, 21, 3, 0, 10, tzinfo=UTC)


def _firstock_wall() -> datetime:
    return _FIRSTOCK_NOW


def _firstock() -> Cycle:
    config = FirstockConfig(
        base_url="http://127.0.0.1:9/api/V3", user_id="BENCH1", password=Secret("bench-password"),
        api_key=Secret("bench-api-key"), vendor_code="BENCH1_API", totp=Secret("123456"),
        socket="noren", socket_url="ws://127.0.0.1:9/NorenWSTP/",
    )
    token = {"status": "Success", "data": {"actid": "BENCH1", "susertoken": "s" * 64}}
    bye = {"status": "Success", "data": "Logout successful"}
    accepted = '{"t":"ck","s":"OK","uid":"BENCH1"}'
    # REST serials (login 1, logout 2) and connection epochs (1, then 2 after the backoff) are
    # the same for every session, so one list of events serves them all.
    events: tuple[Event, ...] = (
        Start(), HttpAnswered("login", 1, 200, json.dumps(token).encode()),
        Connected(1), FrameReceived(1, accepted), TimerFired("stable"), Closed(1, 1006),
        TimerFired("backoff"), Connected(2), FrameReceived(2, accepted), Stop(),
        HttpAnswered("logout", 2, 200, json.dumps(bye).encode()),
    )

    def build() -> LoginModel:
        return FirstockSession(config, wall=_firstock_wall)

    return Cycle("Firstock", build, events,
                 "REST login, socket attach, stable, drop (1006), backoff, reattach with the "
                 "token, REST logout")


def cycles() -> list[Cycle]:
    return [_qst(), _cqg(), _firstock()]


# --- the three timed loops ---------------------------------------------------------------------


def drive(models: Sequence[LoginModel], events: Sequence[Event]) -> None:
    for model in models:
        handle = model.handle
        for event in events:
            handle(event)


def drive_audited(models: Sequence[LoginModel], logs: Sequence[SessionLog],
                  events: Sequence[Event]) -> None:
    for model, log in zip(models, logs, strict=True):
        handle = model.handle
        for event in events:
            for command in handle(event):
                if isinstance(command, Transitioned):
                    log.transition(command)


def audit_only(batches: Sequence[tuple[SessionLog, list[Transitioned]]]) -> None:
    for log, records in batches:
        for record in records:
            log.transition(record)


def metrics_only(batches: Sequence[tuple[SessionMeter, list[Transitioned]]]) -> None:
    for meter, records in batches:
        transition = meter.transition
        for record in records:
            transition(record)


async def _timed_in_trio(run: Callable[[], None]) -> float:
    return _timed(run)


def transitions_of(model: LoginModel, events: Sequence[Event]) -> list[Transitioned]:
    """Drive ``model`` through the cycle; its transition records, checked to end logged out."""
    records = [c for e in events for c in model.handle(e) if isinstance(c, Transitioned)]
    if model.state != DISCONNECTED or model.outcome()["reason"] != "logged_out":
        raise AssertionError(f"{model!r} did not end the cycle logged out: {model.outcome()}")
    return records


def bind(audit: AuditLog, models: Sequence[LoginModel]) -> list[SessionLog]:
    """A logger per session, bound the way ``open_session`` binds it."""
    return [audit.session(broker=m.broker, session_id=f"{m.broker}-{n:012x}",
                          account=m.account, secrets=m.secrets())
            for n, m in enumerate(models)]


def _timed(run: Callable[[], None]) -> float:
    gc.collect()
    start = time.perf_counter()
    run()
    return time.perf_counter() - start


@dataclass
class Figures:
    """One broker's samples, in µs per transition, and its sizes."""

    per_cycle: int
    machine_us: list[float] = field(default_factory=list)
    audited_us: list[float] = field(default_factory=list)
    audit_us: list[float] = field(default_factory=list)
    metrics_us: list[float] = field(default_factory=list)
    line_bytes: float = 0.0
    model_bytes: float = 0.0


def read_trail(path: Path, secrets: Sequence[str]) -> tuple[int, int]:
    """Lines and bytes of an audit file, checked to hold none of the sessions' secrets."""
    lines = written = 0
    hidden = [s.encode() for s in secrets]
    with path.open("rb") as trail:
        for line in trail:
            if any(secret in line for secret in hidden):
                raise AssertionError(f"{path.name}: a secret reached the audit trail")
            lines += 1
            written += len(line)
    return lines, written


def measure(cycle: Cycle, sizes: Sizes, folder: Path) -> Figures:
    """The three loops for one broker: a warm-up round, then ``sizes.repeats`` counted ones,
    each on fresh sessions."""
    events = cycle.events
    probe = cycle.build()
    figures = Figures(per_cycle=len(transitions_of(probe, events)))
    count = sizes.sessions * figures.per_cycle
    lines = written = 0
    for repeat in range(sizes.repeats + 1):
        path = folder / f"{cycle.broker}-{repeat}.jsonl"
        audit = AuditLog.to_file(path)
        try:
            models = [cycle.build() for _ in range(sizes.sessions)]
            machine = _timed(partial(drive, models, events))
            models = [cycle.build() for _ in range(sizes.sessions)]
            logs = bind(audit, models)
            audited = _timed(partial(drive_audited, models, logs, events))
            models = [cycle.build() for _ in range(sizes.sessions)]
            batches = list(zip(bind(audit, models),
                               [transitions_of(m, events) for m in models], strict=True))
            alone = _timed(partial(audit_only, batches))
            meters = Metrics()
            metered = [(meters.session(m.broker, m.account), records) for m, records in
                       ((m, transitions_of(m, events)) for m in
                        (cycle.build() for _ in range(sizes.sessions)))]
            counted = trio.run(_timed_in_trio, partial(metrics_only, metered))
        finally:
            audit.close()
        if repeat == 0:
            continue
        figures.machine_us.append(machine / count * 1e6)
        figures.audited_us.append(audited / count * 1e6)
        figures.audit_us.append(alone / count * 1e6)
        figures.metrics_us.append(counted / count * 1e6)
        more, size = read_trail(path, probe.secrets())
        lines += more
        written += size
    if lines != 2 * count * sizes.repeats:
        raise AssertionError(f"{cycle.broker}: {lines} audit lines, expected "
                             f"{2 * count * sizes.repeats}")
    figures.line_bytes = written / lines
    figures.model_bytes = model_bytes(cycle, sizes.memory_models)
    return figures


def model_bytes(cycle: Cycle, n: int) -> float:
    """Bytes each model keeps alive once authenticated (the config is shared, as in a fleet of
    one user's settings; the model's own bookkeeping is what is counted)."""
    login: list[Event] = []
    probe = cycle.build()
    for event in cycle.events:
        login.append(event)
        probe.handle(event)
        if probe.state == AUTHENTICATED:
            break
    drive([cycle.build() for _ in range(50)], login)  # warm caches outside the trace
    gc.collect()
    tracemalloc.start()
    try:
        models = [cycle.build() for _ in range(n)]
        drive(models, login)
        gc.collect()
        retained, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    if not all(m.state == AUTHENTICATED for m in models):
        raise AssertionError(f"{cycle.broker}: not every model reached authenticated")
    return retained / n


# --- the table ---------------------------------------------------------------------------------


def _cell(samples: list[float]) -> str:
    return f"{median(samples):.1f} ({spread(samples)})"


def run(*, quick: bool) -> Section:
    sizes = QUICK if quick else FULL
    section = Section(
        title="Transition cost (machine, audit event to a JSON-lines file)",
        columns=["broker", "transitions per cycle", "machine µs/transition",
                 "machine + audit µs/transition", "audit alone µs/transition",
                 "metrics alone µs/transition", "bytes per audit line",
                 "bytes per model (authenticated)"],
    )
    with tempfile.TemporaryDirectory(prefix="bench-transitions-") as tmp:
        for cycle in cycles():
            f = measure(cycle, sizes, Path(tmp))
            section.rows.append([
                cycle.broker, str(f.per_cycle), _cell(f.machine_us), _cell(f.audited_us),
                _cell(f.audit_us), _cell(f.metrics_us), f"{f.line_bytes:.0f}",
                f"{f.model_bytes:,.0f}",
            ])
            metered = median(f.metrics_us)
            section.targets.append((
                f"{cycle.broker}: metrics add ≤ {METRICS_BUDGET_US:.0f} µs per transition "
                f"(measured {metered:.2f})", metered <= METRICS_BUDGET_US))
            cost = median(f.audited_us)
            section.targets.append((
                f"{cycle.broker}: machine + audit ≤ {TRANSITION_BUDGET_US:.0f} µs per transition "
                f"(measured {cost:.1f})", cost <= TRANSITION_BUDGET_US))
            section.targets.append((
                f"{cycle.broker}: a model keeps ≤ {MODEL_BUDGET_BYTES // 1024} KB "
                f"(measured {f.model_bytes / 1024:.1f} KB)", f.model_bytes <= MODEL_BUDGET_BYTES))
            section.notes.append(f"{cycle.broker} cycle: {cycle.path}.")
    section.notes += [
        f"Each figure: median over {sizes.repeats} repeats (lowest and highest in brackets) of "
        f"{sizes.sessions} fresh sessions driven through the whole cycle, after a warm-up "
        "round; garbage collection on, as at run time.",
        "Machine: `model.handle(event)` as the driver calls it (frame decoding, the shared "
        "`transitions` machine, callbacks, commands). Audit: `AuditLog.to_file` on a temporary "
        "file, one logger per session bound by `AuditLog.session` with the session's secrets, "
        "and `transition(record)` per `Transitioned` (one event with every field of the record), "
        "as `SessionDriver` writes it.",
        "The audit file is line-buffered (each line reaches the operating system when it is "
        "logged, so a crash loses no logged transition); every trail is checked to hold none "
        "of the sessions' secrets.",
        "Machine + audit is more than the two columns added up: interleaved, both run slower "
        "than apart (processor caches, most likely; even with `AuditLog.disabled()` the "
        "interleaved loop costs about 3 µs per transition more than its parts measured apart). "
        "The combined column is what a session pays.",
        "Metrics: `SessionMeter.transition(record)` per `Transitioned`, as `SessionDriver` "
        "calls it when the gateway has `metrics=Metrics()` (plain counters and, when a login or "
        "restore ends, a histogram bucket; the Prometheus families are built only at a scrape, "
        "which is not timed here). Without metrics the driver pays one attribute test.",
        f"Bytes per model: tracemalloc, {sizes.memory_models} models driven to authenticated; "
        "the configuration object is shared and not counted.",
        f"Targets: ≤ {TRANSITION_BUDGET_US:.0f} µs per transition keeps a 3-transition login "
        "within the 0.3 ms per session the budget allows the engine over the hand-written "
        f"client; ≤ {MODEL_BUDGET_BYTES // 1024} KB per model is the budget's 30 KB less the "
        "client's 24 KB.",
    ]
    return section


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer sessions and repeats")
    args = parser.parse_args()
    section = run(quick=args.quick)
    print(section.markdown())
    for text, met in section.targets:
        print(f"- [{'x' if met else ' '}] {text}")


if __name__ == "__main__":
    main()
