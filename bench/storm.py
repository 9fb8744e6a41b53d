"""The morning storm: many Firstock accounts logging in at once under the broker's rate limit.

The Firstock simulator runs in a process of its own (``bench._server``) and answers 429 once a
request would be one too many in its one-second sliding window. Two ways to log the same
accounts in against it, each in a fresh simulator:

- concurrent: one session per account, all opened at once from this process and held until
  every one is authenticated; the engine's shared per-host limiter paces their REST logins at the
  broker's limit;
- sequential: one account after another, each waiting for its login answer before the next one
  starts, which is what the official Firstock SDK does.

The login rate is read from the times the simulator received the requests (its own clock), so
the client cannot flatter itself: N logins spread over (last - first) seconds is
(N - 1) / (last - first) logins per second. Each login also waits for a server think time
(``--login-delay``), without which the sequential baseline would only measure loopback latency.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import trio

from bench._clients import engine_config
from bench._load import Load, snapshot
from bench._report import Section, median, ratio
from bench._server import (
    SimulatorProcess,
    raise_fd_limit,
    simulator_process,
    user,
)
from brokergate import (
    AuditLog,
    FirstockConfig,
    Gateway,
    LoginFailed,
    MemoryTokenStore,
    open_gateway,
)
from brokergate.engine._http import MARGIN

#: The fraction of the broker's limit a concurrent run must reach.
TARGET = 0.95
#: What the simulator takes to answer a login, in seconds: the order of a real broker's login
#: (password and TOTP checks, a session created) without the internet in between.
LOGIN_DELAY = 0.15


@dataclass
class Run:
    """One login of every account, as the simulator and this process saw it."""

    accounts: int
    limit: float
    #: From the first session opened until the last one was authenticated (this process's
    #: clock).
    wall: float
    #: Seconds from the run's start until each account was authenticated.
    authenticated_after: list[float]
    #: CPU seconds this process spent in the run, closing the sessions included.
    cpu: float
    #: When the simulator received each REST request (its clock; only differences count).
    request_times: list[float]
    status_429: int
    violations: int
    failed: list[str] = field(default_factory=list)
    #: What the machine and this process went through meanwhile (None: not measured).
    load: Load | None = None

    @property
    def logins_per_second(self) -> float:
        times = sorted(self.request_times)
        if len(times) < 2 or times[-1] <= times[0]:
            return float("nan")
        # Every account logged in once between the first request and the last one, whatever
        # else (a refused request, a retry) happened in between.
        return (self.accounts - 1) / (times[-1] - times[0])

    @property
    def of_limit(self) -> float:
        return self.logins_per_second / self.limit


def simulator(accounts: int, limit: float) -> AbstractAsyncContextManager[SimulatorProcess]:
    """A fresh Firstock simulator process for one run."""
    return simulator_process("firstock", "--accounts", str(accounts), "--rate", str(limit),
                             "--login-delay", str(LOGIN_DELAY))


async def storm(accounts: int, limit: float, audit_path: Path, *, together: bool) -> Run:
    """Log every account in, in a fresh simulator: all at once (``together``; each session is
    held until the last one is in), or one after another, each authenticated before the next
    one starts."""
    async with simulator(accounts, limit) as sim:
        configs = [engine_config("firstock", sim.info, user(n), socket="none",
                                 requests_per_second=limit) for n in range(accounts)]
        store = MemoryTokenStore()
        audit = AuditLog.to_file(audit_path)
        took: list[float] = []
        failed: list[str] = []
        start = trio.current_time()
        cpu = time.process_time()
        before = snapshot()

        async def log_in(gateway: Gateway, config: FirstockConfig,
                         everyone_in: trio.Event | None) -> None:
            # keep_session: a trading process stays logged in for the day, so a run ends without
            # a logout request per account (the storm is the logins alone).
            async with gateway.session(config, keep_session=True) as session:
                try:
                    await session.wait_authenticated()
                    took.append(trio.current_time() - start)
                except LoginFailed as exc:
                    failed.append(f"{config.user_id}: {exc.reason}")
                if everyone_in is not None:
                    if len(took) + len(failed) == accounts:
                        everyone_in.set()
                    await everyone_in.wait()

        try:
            # One gateway: the process's sessions share the host's rate limit.
            with trio.fail_after(60 + accounts * (LOGIN_DELAY + 1.0)):
                async with open_gateway(audit=audit, token_store=store) as gateway:
                    if together:
                        everyone_in = trio.Event()
                        async with trio.open_nursery() as nursery:
                            for config in configs:
                                nursery.start_soon(log_in, gateway, config, everyone_in)
                    else:
                        for config in configs:
                            await log_in(gateway, config, None)
            cpu = time.process_time() - cpu
            load = Load.since(before)
        finally:
            audit.close()
        stats = await sim.command("stats")
    return Run(accounts, limit, max(took, default=float("nan")), took, cpu,
               stats["request_times"], stats["status_429"], stats["violations"], failed, load)


def _keep_trail(audit: Path, index: int, run: Run) -> str:
    """Copy the audit trail of a concurrent run that missed the target out of the temporary
    directory, so that what its sessions went through can be read afterwards; say where."""
    kept = Path(tempfile.gettempdir()) / f"brokergate-storm-concurrent-{index}.jsonl"
    shutil.copyfile(audit, kept)
    load = f" {run.load.describe()}" if run.load is not None else ""
    return (f"Concurrent run {index + 1} reached {run.of_limit:.3f} of the limit in "
            f"{run.wall:.2f} s, with {run.cpu / run.accounts * 1e3:.1f} ms of CPU per login; "
            f"its audit trail is kept at {kept}.{load}")


def _cell(values: list[float], digits: str = ".2f", *, with_spread: bool) -> str:
    """The median, and with ``with_spread`` the lowest and highest run, all to ``digits``."""
    cell = format(median(values), digits)
    if not with_spread or len(values) < 2:
        return cell
    return f"{cell} ({format(min(values), digits)}-{format(max(values), digits)})"


def _row(name: str, runs: list[Run], speedup: str) -> list[str]:
    several = len(runs) > 1
    return [
        name,
        str(runs[0].accounts),
        f"{runs[0].limit:g}",
        _cell([r.wall for r in runs], with_spread=several),
        _cell([r.logins_per_second for r in runs], ".1f", with_spread=several),
        _cell([r.of_limit for r in runs], ".3f", with_spread=several),
        str(sum(r.status_429 for r in runs)),
        _cell([median(r.authenticated_after) for r in runs], with_spread=several),
        _cell([max(r.authenticated_after, default=float("nan")) for r in runs],
              with_spread=several),
        _cell([r.cpu / r.accounts * 1e3 for r in runs], with_spread=several),
        speedup,
    ]


def run(*, quick: bool) -> Section:
    """The storm and its sequential baseline, ``repeats`` times each, as one table."""
    accounts, limit, repeats = (30, 20.0, 1) if quick else (200, 50.0, 3)
    raise_fd_limit()
    together: list[Run] = []
    one_by_one: list[Run] = []
    kept: list[str] = []
    with tempfile.TemporaryDirectory(prefix="brokergate-storm-") as tmp:
        for k in range(repeats):
            for runs, name, at_once in ((together, "concurrent", True),
                                        (one_by_one, "sequential", False)):
                audit = Path(tmp) / f"{name}-{k}.jsonl"
                runs.append(trio.run(partial(storm, together=at_once), accounts, limit, audit))
                if at_once and not runs[-1].of_limit >= TARGET:  # NaN too: too few requests
                    kept.append(_keep_trail(audit, k, runs[-1]))
    speedup = ratio(median([r.wall for r in one_by_one]), median([r.wall for r in together]))
    worst_fraction = min(r.of_limit for r in together)
    refused = sum(r.status_429 for r in together + one_by_one)
    failures = [f for r in together + one_by_one for f in r.failed]
    violations = sum(r.violations for r in together + one_by_one)
    section = Section(
        title="Morning storm: Firstock logins under the broker's rate limit",
        columns=["run", "accounts", "limit req/s", "wall s", "logins/s (broker's clock)",
                 "of the limit", "429s (all runs)", "authenticated after: median s",
                 "worst s", "client CPU ms per login", "speed-up"],
        rows=[
            _row("concurrent (brokergate)", together, speedup),
            _row("sequential (as the official SDK)", one_by_one, ratio(1.0, 1.0)),
        ],
        notes=[
            f"{accounts} accounts against the Firstock simulator in its own process, which "
            f"answers 429 past {limit:g} requests in any one-second sliding window and takes "
            f"{LOGIN_DELAY * 1e3:.0f} ms to answer each login (server think time); REST login "
            "only (socket none), over loopback HTTP.",
            "Concurrent: one session per account opened at once, every session held until all "
            "are authenticated; the engine's shared per-host limiter is set to the broker's "
            f"limit, and keeps {MARGIN * 1e3:.0f} ms of every window free for trips of "
            f"different lengths (at most {limit:g} requests leave in any {1 + MARGIN:g} s: "
            f"{1 / (1 + MARGIN):.3f} of the limit, sustained). Sequential: the same accounts one "
            "after another, each waiting for its login answer before the next starts, in a "
            "fresh simulator. Sessions leave without logging out (a trading process stays in "
            "for the day).",
            "logins/s = (accounts - 1) / (last request - first request) on the simulator's "
            "clock; 'authenticated after' counts from the start of the run; CPU is this "
            "process's only (the simulator's is not counted).",
            f"{'1 run' if repeats == 1 else f'Median of {repeats} runs (min to max in brackets)'}"
            " per mode; "
            f"speed-up = sequential wall time / concurrent wall time, medians. Protocol "
            f"violations seen by the simulator: {violations}.",
        ],
        targets=[
            (f"storm: logins/s ≥ {TARGET} of the limit (worst run: {worst_fraction:.3f})",
             worst_fraction >= TARGET),
            (f"storm: zero 429 answers ({refused} seen)", refused == 0),
        ],
    )
    section.notes += kept
    if failures:
        section.notes.append(f"Logins that failed: {len(failures)} ({', '.join(failures[:5])}).")
        section.targets.append((f"storm: every login succeeds ({len(failures)} failed)", False))
    return section


if __name__ == "__main__":
    import sys

    print(run(quick="--quick" in sys.argv[1:]).markdown())
