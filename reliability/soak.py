"""The soak: thousands of sessions held through a virtual day of dropped connections.

Every session is held open from the start of the day to its end, as a trading process holds its
login. Drops are struck throughout: every ``drop_every`` virtual seconds the simulators drop the
TCP connections (no close frame, the client sees 1006) of one slice of the sessions, the next
slice each time, so that with ``slices`` slices every session loses its connection once every
``slices * drop_every`` seconds. A CQG session must come back by RestoreOrJoinSession, never by a
second logon; a QST session reconnects and logs in again.

Dropping every session every few minutes would be millions of reconnects over 10,000 sessions and
a day; a drop event every few minutes that takes down a rotating slice keeps the same rhythm of
faults while every session still goes through many drops in the day.

Once per virtual hour, half-way between two drop events (so every dropped session has long been
back), the soak collects garbage and samples:

- memory above what the process held before the simulators started: blocks Python has allocated
  (``sys.getallocatedblocks()``, exact and cheap) and resident memory (``/proc/self/statm``),
  each divided by the sessions; client and simulator live in the same process, so both sides
  of every session are counted;
- the alarm clock's heap (``brokergate.engine._alarms``), the tasks running session-layer code,
  the open file descriptors;
- how many sessions are authenticated, and the logons, restores and logins the simulators saw.

It passes when memory per session in the last hour is within 5% of the first hour's, the alarm
heap stays within the larger of the first hour's and 4 entries per session, the tasks are one
connection task per session and the open descriptors the same at every sample, every session is
authenticated at every sample, CQG saw exactly one logon per session and one restore per dropped
connection (QST one login per session and per dropped connection), the simulators saw no
protocol violation, and the teardown at the end (the host cancelling every session at once)
finishes.

Virtual time (``trio.testing.MockClock`` with autojump) makes the hours free; the sockets are
real loopback sockets to the simulators, in the same trio run. The test suite runs a short
version (tests/test_soak.py); ``python -m reliability`` runs 10,000 sessions over 24 hours, one
process per broker (see ``run_processes``), and prints the hourly table.
"""

from __future__ import annotations

import argparse
import faulthandler
import functools
import gc
import json
import os
import resource
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import trio
import trio.testing

import brokergate.engine
from brokergate import (
    AuditLog,
    Backoff,
    CqgConfig,
    Gateway,
    QstConfig,
    Secret,
    Session,
    open_gateway,
)
from brokergate.engine._alarms import TASK_NAME as ALARM_CLOCK_TASK
from brokergate.machines import SessionSettings
from brokergate.simulators.cqg import CqgAccount, run_cqg_simulator
from brokergate.simulators.qst import QstAccount, run_qst_simulator

DEFAULT_SESSIONS = 10_000
DEFAULT_HOURS = 24
DEFAULT_DROP_EVERY = 300.0
DEFAULT_SLICES = 48
DEFAULT_PING_INTERVAL = 3600.0
#: Retry policy of every session: a dropped session is back within seconds of virtual time.
BACKOFF = Backoff(initial=0.5, factor=2.0, cap=5.0, max_attempts=5, stability_window=10.0)
#: Memory per session in the last hour may exceed the first hour's by this fraction at most.
MEMORY_SLACK = 0.05
#: Resident memory moves in pages and allocator arenas whatever the sessions do: growth below
#: this many bytes in all is not counted against a small soak.
RSS_NOISE = 4 << 20
#: Alarm heap entries per session that count as bounded, whatever the first hour showed.
HEAP_PER_SESSION = 4
#: File descriptors a process needs besides two per session (one client socket, one server
#: socket): listening sockets, trio's epoll and wake-up pipe, the standard streams, and the
#: connections that overlap for a moment while a dropped one is replaced.
FD_RESERVE = 256
#: Sessions that connect at once, at the start and after a drop. A batch logs in at one virtual
#: instant (the simulators hold every login 10 ms), so its timers fall due together: one jump of
#: the clock for the batch rather than one per session, each jump costing a millisecond of real
#: time and a pass over every registered socket. And a batch stays well inside the listen backlog
#: (4,096 here), where a refused SYN would be retried after a second of real time while the
#: virtual clock ran on to the connect timeout.
BATCH = 1000
ENGINE_DIR = Path(brokergate.engine.__file__).resolve().parent
#: Session-layer tasks that live only while a timer's work or a ping is under way.
TRANSIENT = frozenset({"_work", "_ping_once"})
BROKERS = ("cqg", "qst")


@dataclass(frozen=True, slots=True)
class Schedule:
    """How many sessions of each broker, for how long, and how often which of them are dropped."""

    cqg: int
    qst: int
    hours: int = DEFAULT_HOURS
    #: Virtual seconds between two drop events.
    drop_every: float = DEFAULT_DROP_EVERY
    #: A drop event takes down one slice in this many, the next slice each time.
    slices: int = DEFAULT_SLICES
    #: Every session's liveness probe (WebSocket ping for QST, CQG's own Ping), in virtual
    #: seconds; with the timeout below it bounds how long a dead connection goes unnoticed.
    ping_interval: float | None = DEFAULT_PING_INTERVAL
    ping_timeout: float = 10.0

    @property
    def sessions(self) -> int:
        return self.cqg + self.qst

    @property
    def events_per_hour(self) -> int:
        return round(3600 / self.drop_every)

    @property
    def drops_per_session(self) -> float:
        """How many times each session is dropped in the day (on average over the slices)."""
        return self.hours * self.events_per_hour / self.slices

    def problems(self) -> list[str]:
        found = []
        if min(self.cqg, self.qst) < 0 or self.sessions < 1:
            found.append("the soak needs at least one session")
        if self.hours < 1:
            found.append("the soak needs at least one virtual hour")
        if not 0 < self.drop_every <= 3600 or abs(self.events_per_hour * self.drop_every
                                                  - 3600) > 1e-6:
            found.append("the drop interval must divide an hour (300 s, 240 s, 600 s, ...)")
        if self.slices < 1:
            found.append("there must be at least one slice")
        return found

    def describe(self) -> str:
        ping = "no pings" if self.ping_interval is None else f"pings every {self.ping_interval:g} s"
        each = ("all sessions" if self.slices == 1 else
                f"1 session in {self.slices}, the next slice each time")
        hours = f"{self.hours} virtual hour" + ("s" if self.hours != 1 else "")
        return (f"{self.cqg:,} CQG + {self.qst:,} QST sessions, {hours}, "
                f"a drop every {self.drop_every:g} s taking {each} "
                f"({self.drops_per_session:g} drops per session), {ping}")


@dataclass(frozen=True, slots=True)
class Sample:
    """What the soak measured at one hour mark. Memory is above what the process held before the
    simulators started."""

    hour: int
    blocks: int
    rss: int
    #: Objects the garbage collector tracks, in the whole process.
    objects: int
    heap: int
    #: Tasks running session-layer code, by name.
    tasks: dict[str, int]
    files: int
    authenticated: int
    cqg_logons: int
    cqg_restores: int
    qst_logins: int
    #: Connections dropped so far, by broker.
    dropped: dict[str, int]


@dataclass
class SoakResult:
    schedule: Schedule
    samples: list[Sample] = field(default_factory=list)
    #: Protocol violations the simulators saw (requests before a login result...).
    violations: list[str] = field(default_factory=list)
    #: Real seconds the host took to cancel every session at the end (None: it did not finish).
    teardown: float | None = None
    #: Real seconds and process CPU seconds of the whole run, logins and teardown included.
    wall: float = 0.0
    cpu: float = 0.0
    peak_rss: int = 0
    #: Why the run ended without a result (a crash, a teardown that never finished).
    failure: str | None = None

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> SoakResult:
        data = json.loads(text)
        data["schedule"] = Schedule(**data["schedule"])
        data["samples"] = [Sample(**s) for s in data["samples"]]
        return cls(**data)

    def per_session(self, sample: Sample, what: str) -> float:
        return float(getattr(sample, what)) / self.schedule.sessions

    def problems(self) -> list[str]:
        """Every pass/fail criterion the run broke, in words; empty when it passed."""
        s = self.schedule
        if self.failure:
            return [self.failure]
        if not self.samples:
            return ["no hourly sample was taken"]
        found = [f"violation: {v}" for v in self.violations[:10]]
        first, last = self.samples[0], self.samples[-1]
        for what, label, noise in (("blocks", "allocated blocks", 0),
                                   ("rss", "resident memory", RSS_NOISE)):
            a, b = self.per_session(first, what), self.per_session(last, what)
            if b > a * (1 + MEMORY_SLACK) and (b - a) * s.sessions > noise:
                found.append(f"{label} per session grew from {a:,.0f} (hour {first.hour}) to "
                             f"{b:,.0f} (hour {last.hour}), more than {MEMORY_SLACK:.0%}")
        heap_bound = max(first.heap, HEAP_PER_SESSION * s.sessions)
        expected_tasks = {"_connection_task": s.sessions}
        for sample in self.samples:
            at = f"hour {sample.hour}"
            if sample.authenticated != s.sessions:
                found.append(f"{at}: {sample.authenticated:,} of {s.sessions:,} authenticated")
            if sample.heap > heap_bound:
                found.append(f"{at}: the alarm heap holds {sample.heap:,} entries, over "
                             f"{heap_bound:,}")
            if sample.tasks != expected_tasks:
                found.append(f"{at}: session-layer tasks {sample.tasks}, expected "
                             f"{expected_tasks}")
            if sample.files != first.files:
                found.append(f"{at}: {sample.files:,} open files, {first.files:,} at hour "
                             f"{first.hour}")
            if sample.cqg_logons != s.cqg:
                found.append(f"{at}: CQG saw {sample.cqg_logons:,} logons for {s.cqg:,} "
                             "sessions (a drop must be restored, not logged on again)")
            if sample.cqg_restores != sample.dropped.get("cqg", 0):
                found.append(f"{at}: CQG saw {sample.cqg_restores:,} restores for "
                             f"{sample.dropped.get('cqg', 0):,} dropped connections")
            if sample.qst_logins != s.qst + sample.dropped.get("qst", 0):
                found.append(f"{at}: QST saw {sample.qst_logins:,} logins for {s.qst:,} "
                             f"sessions and {sample.dropped.get('qst', 0):,} dropped connections")
        if self.teardown is None:
            found.append("the teardown (the host cancelling every session) did not finish")
        return found


# --- the soak itself, inside a trio run with a MockClock -----------------------------------------


def engine_tasks() -> Counter[str]:
    """Tasks alive whose code is the session layer's, by name (the alarm clock and the tasks that
    live only while a timer fires or a ping is out left aside)."""
    found: Counter[str] = Counter()
    root = trio.lowlevel.current_root_task()
    todo = [root] if root is not None else []
    while todo:
        task = todo.pop()
        code = getattr(task.coro, "cr_code", None)
        if code is not None and task.name != ALARM_CLOCK_TASK and _in_engine(code.co_filename):
            name = task.name.rsplit(".", 1)[-1]
            if name not in TRANSIENT:
                found[name] += 1
        todo += [child for nursery in task.child_nurseries for child in nursery.child_tasks]
    return found


@functools.cache  # resolving a path per task is most of a census of 10,000 sessions' tasks
def _in_engine(filename: str) -> bool:
    return Path(filename).resolve().is_relative_to(ENGINE_DIR)


def open_files() -> int:
    return len(os.listdir("/proc/self/fd")) if Path("/proc/self/fd").is_dir() else 0


def _rss() -> int:
    try:
        with open("/proc/self/statm", encoding="ascii") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:  # not Linux: the peak is the best there is
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _memory() -> tuple[int, int]:
    gc.collect()
    return sys.getallocatedblocks(), _rss()


def _settings(schedule: Schedule) -> dict[str, Any]:
    return {"backoff": BACKOFF, "ping_interval": schedule.ping_interval,
            "ping_timeout": schedule.ping_timeout}


def cqg_config(url: str, user: str, schedule: Schedule) -> CqgConfig:
    return CqgConfig(url=url, user_name=user, password=Secret(f"{user}-pw"),
                     client_app_id="brokergate-soak", min_logon_interval=5.0,
                     **_settings(schedule))


def qst_config(url: str, user: str, schedule: Schedule) -> QstConfig:
    return QstConfig(url=url, user_name=user, password=Secret(f"{user}-pw"),
                     client_id="brokergate-soak", **_settings(schedule))


class _Counts:
    """The simulators' figures, added up. Their stats also keep a copy of every Logon, restore,
    login and Pong for tests to read; over a day that history would grow with every ping and be
    counted as the sessions' memory, so it is read and cleared after every drop event."""

    def __init__(self) -> None:
        self.cqg_logons = self.cqg_restores = self.qst_logins = 0
        self.violations: list[str] = []
        self.dropped: Counter[str] = Counter()

    def harvest(self, cqg: Any, qst: Any) -> None:
        self.cqg_logons += cqg.stats.logons_ok
        self.cqg_restores += cqg.stats.restores_ok
        self.qst_logins += qst.stats.logins_ok
        self.violations += [f"CQG {v}" for v in cqg.stats.violations]
        self.violations += [f"QST {v}" for v in qst.stats.violations]
        cqg.reset_stats()
        qst.reset_stats()


async def soak(schedule: Schedule, *, progress: Callable[[str], None] | None = None,
               teardown_limit: float | None = None) -> SoakResult:
    """Run the soak in the current trio run, whose clock must be a ``MockClock`` with autojump
    (hours of virtual time). ``teardown_limit``: real seconds after which a teardown that has
    not finished ends the process with every thread's traceback (a spinning loop never lets
    virtual time move, so nothing inside the run could notice it)."""
    if problems := schedule.problems():
        raise ValueError("; ".join(problems))
    result = SoakResult(schedule)
    base_blocks, base_rss = _memory()
    cqg_users = [f"c{n}" for n in range(schedule.cqg)]
    qst_users = [f"q{n}" for n in range(schedule.qst)]
    counts = _Counts()
    async with (run_cqg_simulator([CqgAccount(u, f"{u}-pw") for u in cqg_users]) as cqg,
                run_qst_simulator([QstAccount(u, f"{u}-pw") for u in qst_users]) as qst):
        targets: list[tuple[str, Any, str]] = (
            [("cqg", cqg, u) for u in cqg_users] + [("qst", qst, u) for u in qst_users])
        async with open_gateway(audit=AuditLog.disabled()) as gateway, \
                trio.open_nursery() as nursery:
            sessions: list[Session] = []
            configs: list[SessionSettings] = [cqg_config(cqg.url, u, schedule)
                                              for u in cqg_users]
            configs += [qst_config(qst.url, u, schedule) for u in qst_users]
            for start in range(0, len(configs), BATCH):
                await _open_batch(gateway, nursery, configs[start:start + BATCH], sessions)
            counts.harvest(cqg, qst)
            if progress:
                progress(f"{schedule.sessions:,} sessions authenticated")
            half = schedule.drop_every / 2
            for event in range(schedule.hours * schedule.events_per_hour):
                await trio.sleep(half)
                await _strike(targets[event % schedule.slices::schedule.slices], counts)
                await trio.sleep(half)
                counts.harvest(cqg, qst)
                if (event + 1) % schedule.events_per_hour == 0:
                    blocks, rss = _memory()
                    sample = Sample(
                        hour=(event + 1) // schedule.events_per_hour,
                        blocks=blocks - base_blocks, rss=rss - base_rss,
                        objects=len(gc.get_objects()), heap=len(gateway.alarms),
                        tasks=dict(engine_tasks()), files=open_files(),
                        authenticated=sum(s.state == "authenticated" for s in sessions),
                        cqg_logons=counts.cqg_logons, cqg_restores=counts.cqg_restores,
                        qst_logins=counts.qst_logins, dropped=dict(counts.dropped))
                    result.samples.append(sample)
                    if progress:
                        progress(_progress_line(result, sample))
            started = time.monotonic()
            if teardown_limit is not None:
                faulthandler.dump_traceback_later(teardown_limit, exit=True)
            nursery.cancel_scope.cancel()
        result.teardown = time.monotonic() - started
        faulthandler.cancel_dump_traceback_later()
        counts.harvest(cqg, qst)
    result.violations = counts.violations
    return result


def _progress_line(result: SoakResult, sample: Sample) -> str:
    return (f"hour {sample.hour}: {sample.authenticated:,}/{result.schedule.sessions:,} "
            f"authenticated, {result.per_session(sample, 'blocks'):,.0f} blocks and "
            f"{result.per_session(sample, 'rss') / 1024:,.1f} KiB per session, alarm heap "
            f"{sample.heap:,}, {sample.files:,} files, "
            f"{sum(sample.dropped.values()):,} dropped so far")


async def _open_batch(gateway: Gateway, nursery: trio.Nursery, configs: Sequence[SessionSettings],
                      sessions: list[Session]) -> None:
    """Open these sessions all at once, in the soak's nursery; return once all are
    authenticated (a login that fails raises, and ends the soak)."""
    waiting = len(configs)
    done = trio.Event()

    def ready() -> None:
        nonlocal waiting
        waiting -= 1
        if not waiting:
            done.set()

    for config in configs:
        nursery.start_soon(_hold, gateway, config, sessions, ready)
    await done.wait()


async def _hold(gateway: Gateway, config: SessionSettings, sessions: list[Session],
                ready: Callable[[], None]) -> None:
    async with gateway.session(config) as session:
        sessions.append(session)
        await session.wait_authenticated()
        ready()
        await trio.sleep_forever()


async def _strike(targets: Sequence[tuple[str, Any, str]], counts: _Counts) -> None:
    """Drop these users' connections, a batch at a time, each batch all at once (each drop
    waits for its connection to be gone); a batch has a virtual second to come back before the
    next is dropped."""

    async def drop(broker: str, sim: Any, user: str) -> None:
        dropped = await sim.drop(user)  # not `+= await`: that reads the count before waiting
        counts.dropped[broker] += dropped

    for start in range(0, len(targets), BATCH):
        if start:
            await trio.sleep(1.0)
        async with trio.open_nursery() as nursery:
            for target in targets[start:start + BATCH]:
                nursery.start_soon(drop, *target)


# --- running it: one process per broker ----------------------------------------------------------


def fd_limit(needed: int) -> int:
    """Raise this process's soft limit on open files to the hard limit if ``needed`` is above it;
    return the limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if needed > soft and soft != hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        soft = hard
    return soft


def fds_needed(sessions: int) -> int:
    """Client and server share the process: two sockets per session, plus the reserve."""
    return 2 * sessions + FD_RESERVE


def largest_fitting() -> int:
    """The most sessions one process can hold under the hard limit on open files."""
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    return max(0, (hard - FD_RESERVE) // 2) if hard != resource.RLIM_INFINITY else 1 << 30


def run(schedule: Schedule, *, progress: Callable[[str], None] | None = None,
        teardown_limit: float | None = 600.0) -> SoakResult:
    """The soak in this process, in a trio run of its own under virtual time."""
    limit = fd_limit(fds_needed(schedule.sessions))
    if fds_needed(schedule.sessions) > limit:
        return SoakResult(schedule, failure=(
            f"{schedule.sessions:,} sessions need about {fds_needed(schedule.sessions):,} open "
            f"files with client and simulator in one process; the limit is {limit:,}"))
    wall, cpu = time.monotonic(), time.process_time()
    result = trio.run(lambda: soak(schedule, progress=progress, teardown_limit=teardown_limit),
                      clock=trio.testing.MockClock(autojump_threshold=0.001))
    result.wall = time.monotonic() - wall
    result.cpu = time.process_time() - cpu
    result.peak_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    return result


def split(sessions: int, **options: Any) -> list[Schedule]:
    """``sessions`` split over the brokers, half each (CQG takes the odd one): one schedule per
    broker, each run in a process of its own (see ``run_processes``)."""
    cqg = (sessions + 1) // 2
    return [Schedule(cqg=n, qst=0, **options) if broker == "cqg" else
            Schedule(cqg=0, qst=n, **options)
            for broker, n in (("cqg", cqg), ("qst", sessions - cqg)) if n]


def run_processes(schedules: Sequence[Schedule], *, timeout: float | None = None
                  ) -> list[SoakResult]:
    """Each schedule in a child process of its own, all at once.

    Why processes: with client and simulator in one process every session costs two sockets,
    and 10,000 sessions need more than the 20,000 open files a process may have here, where the
    hard limit cannot be raised. One broker per process halves that, and the two use both cores.
    Each child runs its own virtual day (``python -m reliability.soak --schedule JSON``),
    reports its hours on stderr and its result as JSON on stdout.
    """
    children: list[tuple[Schedule, subprocess.Popen[str] | None, str | None]] = []
    for schedule in schedules:
        fits = largest_fitting()
        if schedule.sessions > fits:
            children.append((schedule, None, (
                f"{schedule.sessions:,} sessions in one process need about "
                f"{fds_needed(schedule.sessions):,} open files; the hard limit allows "
                f"{fits:,} sessions per process")))
            continue
        started = subprocess.Popen(
            [sys.executable, "-m", "reliability.soak", "--schedule", json.dumps(asdict(schedule))],
            cwd=Path(__file__).resolve().parent.parent, stdout=subprocess.PIPE, text=True)
        children.append((schedule, started, None))
    results = []
    for schedule, proc, refused in children:
        if proc is None:
            results.append(SoakResult(schedule, failure=refused or "not run"))
            continue
        try:
            out, _ = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            out, _ = proc.communicate()
            results.append(SoakResult(schedule, failure=f"still running after {timeout:g} s"))
            continue
        lines = out.strip().splitlines()
        if proc.returncode != 0 or not lines:
            results.append(SoakResult(schedule, failure=(
                f"the soak process ended with status {proc.returncode} and no result")))
        else:
            results.append(SoakResult.from_json(lines[-1]))
    return results


def problems(results: Sequence[SoakResult]) -> list[str]:
    return [f"{_name(r.schedule)}: {p}" for r in results for p in r.problems()]


def describe(schedules: Sequence[Schedule]) -> str:
    """The schedules of a soak's processes, as one."""
    return replace(schedules[0], cqg=sum(s.cqg for s in schedules),
                   qst=sum(s.qst for s in schedules)).describe()


def _name(schedule: Schedule) -> str:
    return " + ".join(b.upper() for b in BROKERS if getattr(schedule, b))


# --- the report ----------------------------------------------------------------------------------


def render(results: Sequence[SoakResult], *, elapsed: float | None = None) -> str:
    """The soak's part of the reliability report, as Markdown: the schedule, one table of hourly
    samples per process, and the verdict."""
    if not results:
        return ""
    took = f", {elapsed:.0f} s in all" if elapsed is not None else ""
    out = [f"Soak: {describe([r.schedule for r in results])}{took}.", ""]
    for r in results:
        name = _name(r.schedule)
        if r.failure or not r.samples:
            out += [f"{name}: {r.failure or 'no samples'}", ""]
            continue
        cqg, qst = r.schedule.cqg, r.schedule.qst
        heads = ["hour", "authenticated", "blocks per session", "KiB per session", "alarm heap",
                 "session tasks", "open files", "dropped so far"]
        heads += ["CQG logons", "CQG restores"] if cqg else []
        heads += ["QST logins"] if qst else []
        out += [f"{name}, {r.schedule.sessions:,} sessions in one process: {r.wall:.0f} s wall, "
                f"{r.cpu:.0f} s CPU, peak RSS {r.peak_rss / 2**20:,.0f} MiB, teardown "
                + (f"{r.teardown:.1f} s." if r.teardown is not None else "did not finish."), "",
                "| " + " | ".join(heads) + " |", "|" + "---:|" * len(heads)]
        for s in _rows(r.samples):
            cells: list[int | str] = [s.hour, s.authenticated, f"{r.per_session(s, 'blocks'):,.0f}",
                     f"{r.per_session(s, 'rss') / 1024:,.1f}", s.heap, sum(s.tasks.values()),
                     s.files, sum(s.dropped.values())]
            cells += [s.cqg_logons, s.cqg_restores] if cqg else []
            cells += [s.qst_logins] if qst else []
            out.append("| " + " | ".join(f"{c:,}" if isinstance(c, int) else c for c in cells)
                       + " |")
        out.append("")
    found = problems(results)
    out.append("Soak verdict: " + ("passed." if not found else
                                   f"failed ({len(found)} problems)."))
    return "\n".join(out)


def _rows(samples: list[Sample]) -> list[Sample]:
    """The hours to show: every hour of a short run; of a long one the first three, every
    fourth and the last."""
    if len(samples) <= 8:
        return samples
    return [s for i, s in enumerate(samples)
            if i < 3 or (i + 1) % 4 == 0 or i == len(samples) - 1]


# --- a child process of run_processes ------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m reliability.soak",
                                description="One process of the soak (python -m reliability "
                                            "starts them); its result as JSON on stdout.")
    p.add_argument("--schedule", required=True, help="the Schedule as JSON")
    args = p.parse_args(argv)
    schedule = Schedule(**json.loads(args.schedule))
    name = _name(schedule)

    def progress(line: str) -> None:
        print(f"  soak {name}: {line}", file=sys.stderr, flush=True)

    result = run(schedule, progress=progress)
    print(result.to_json(), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
