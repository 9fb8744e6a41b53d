"""The fleet across processes: the morning storm and the takeover after kill -9, each against
what one process does.

Nothing measured shares a process with anything else: one simulator (``bench._server``), one
redis-server (``bench._redis``) and the fleet's members (``bench._fleet_member``), each member a
gateway of its own on the Redis coordinator. Times that cross processes are wall-clock
(``time.time()``), from the JSON lines the members print.

Storm: P processes x A Firstock accounts log in at once under the simulator's REST limit R,
three ways, each against a fresh simulator:

- the fleet: every member on the Redis coordinator, each configured at R: one limit for all;
- one process: the same P x A accounts from one ``open_gateway()`` pacing at R (bench.storm's
  concurrent run, called as it is);
- without the coordinator: the same P members with ``--local``, each with its own limiter at R,
  which is what a fleet did before it had one: P times the limit offered.

From the simulator's own request times: the login rate (bench.storm's (N - 1) / (last - first))
as a fraction of R, and the most requests it received in any one second; and its 429 count.

Takeover: K processes with the same QST or CQG user and a lease TTL T. One logs in, the others
wait as standbys; the holder is killed with SIGKILL, and the clock runs from the kill to a
standby's ``authenticated``. Each repeat has fresh processes and an account of its own. For CQG
the simulator tells whether the successor restored the holder's session or logged on. Against
it, one process recovering its own session after a dropped connection (bench.restore's method).
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import trio

from bench import restore, storm
from bench._fleet_member import MemberProcess, first_in, members
from bench._redis import HOW_TO_GET, RedisServer, find_redis
from bench._report import Section, median
from bench._server import raise_fd_limit, simulator_process, user
from brokergate.engine.fleet import new_fleet_key

#: The fleet's storm must reach this fraction of the limit (with no 429).
STORM_TARGET = 0.90
#: A takeover must come within the lease's TTL plus one backoff step (the first retry's delay).
BACKOFF_STEP = 1.0
#: Seconds the holder keeps the account before it is killed: past its first renewal, and time
#: to leave its handover (which it does just after logging on).
HOLD = 1.0


@dataclass(frozen=True)
class Sizes:
    processes: int  # storm: member processes
    accounts: int  # storm: Firstock accounts per process
    rate: float  # storm: the simulator's REST limit, requests per second
    ttl: float  # the lease's TTL, seconds
    holders: int  # takeover: processes with the same user
    repeats: int  # takeover: kills per broker
    drops: int  # one process: dropped connections per broker
    #: Takeover: the brokers (the quick run keeps to CQG, whose successor restores).
    brokers: tuple[str, ...] = ("cqg", "qst")


FULL = Sizes(processes=4, accounts=50, rate=40.0, ttl=2.0, holders=3, repeats=5, drops=20)
QUICK = Sizes(processes=2, accounts=10, rate=20.0, ttl=1.0, holders=2, repeats=1, drops=3,
              brokers=("cqg",))


def busiest_second(times: Sequence[float]) -> int:
    """The most of ``times`` in any one-second window (the simulator's sliding window)."""
    ordered = sorted(times)
    most, first = 0, 0
    for last, at in enumerate(ordered):
        while at - ordered[first] >= 1.0:
            first += 1
        most = max(most, last - first + 1)
    return most


def _is(event: str) -> Any:
    return lambda line: line.get("event") == event


# ------------------------------------------------------------------------------------------
# the storm


async def fleet_storm(sizes: Sizes, redis_url: str | None, audit: Path) -> storm.Run:
    """The members log their accounts in at once; on the coordinator at ``redis_url``, or
    each on its own (``None``: ``--local``)."""
    total = sizes.processes * sizes.accounts
    groups = [[user(p * sizes.accounts + n) for n in range(sizes.accounts)]
              for p in range(sizes.processes)]
    options = ["--rps", f"{sizes.rate:g}", "--lease-ttl", f"{sizes.ttl:g}",
               "--setting", 'socket="none"', "--audit", str(audit)]
    if redis_url is None:
        options.append("--local")
    within = 60 + total * (storm.LOGIN_DELAY + 1.0)
    async with storm.simulator(total, sizes.rate) as sim:
        with trio.fail_after(within + 30):
            async with members("firstock", sim.info, redis_url or "-", groups, *options,
                               env={"BROKERGATE_FLEET_KEY": new_fleet_key()}) as fleet:
                settled = [await m.wait_for(_is("settled"), within=within) for m in fleet]
                # Before the members leave: their logouts are not part of the storm.
                stats = await sim.command("stats")
    start = min(line["time"] for m in fleet for line in m.lines if line.get("event") == "ready")
    took = [line["time"] - start for m in fleet for line in m.lines
            if line.get("state") == "authenticated"]
    failed = [f"process {k + 1}: {s['failed']} of {sizes.accounts} not authenticated"
              for k, s in enumerate(settled) if s["failed"]]
    return storm.Run(total, sizes.rate, max(took, default=float("nan")), took, float("nan"),
                     stats["request_times"], stats["status_429"], stats["violations"], failed)


def _storm_row(name: str, shape: str, run: storm.Run) -> list[str]:
    busiest = busiest_second(run.request_times)
    return [
        name, shape, f"{run.limit:g}", f"{len(run.authenticated_after)}/{run.accounts}",
        f"{run.wall:.2f}", f"{run.logins_per_second:.1f}", f"{run.of_limit:.3f}",
        f"{busiest} ({busiest / run.limit:.2f}x)", str(len(run.request_times)),
        str(run.status_429),
    ]


def _storms(sizes: Sizes, redis_url: str, tmp: Path) -> Section:
    total = sizes.processes * sizes.accounts
    fleet = trio.run(fleet_storm, sizes, redis_url, tmp / "storm-fleet.jsonl")
    alone = trio.run(partial(storm.storm, together=True), total, sizes.rate,
                     tmp / "storm-one.jsonl")
    local = trio.run(fleet_storm, sizes, None, tmp / "storm-local.jsonl")
    shape = f"{sizes.processes} x {sizes.accounts}"
    section = Section(
        "Fleet: the morning storm across processes",
        ["run", "processes x accounts", "limit req/s", "authenticated", "all in after s",
         "logins/s (broker's clock)", "of the limit", "busiest second: requests",
         "requests", "429s"],
        rows=[_storm_row("fleet on one Redis (brokergate)", shape, fleet),
              _storm_row("one process (bench.storm's concurrent run)", f"1 x {total}", alone),
              _storm_row("the same processes without the coordinator", shape, local)])
    section.notes += [
        f"Firstock, {total} accounts, the simulator's limit {sizes.rate:g} requests/s in a "
        f"sliding second (429 past it) and {storm.LOGIN_DELAY * 1e3:.0f} ms to check each "
        "login; every process is configured to pace at the limit. The rates and counts are "
        "the simulator's, from its own request times; a fresh simulator for each row.",
        "\"all in after\": the fleet rows from the first member's `ready` (its coordinator "
        "connected, its sessions opening) to the last account authenticated, on the members' "
        "wall clocks; the one-process row from the first session opened.",
        "The fleet storm runs on a Redis the takeover runs have used, so it is past the "
        "fleet's first-start wait (no new claim for a TTL after the fleet first finds Redis "
        "empty).",
        f"Without the coordinator each process keeps its own limiter: {sizes.processes} "
        f"processes offer {sizes.processes}x the limit, the broker refuses what is past it, "
        "and each refused login is retried after its Retry-After.",
    ]
    for run in (fleet, alone, local):
        section.notes += [f"Not authenticated: {f}." for f in run.failed]
    section.targets += [
        (f"fleet storm: at least {STORM_TARGET:.2f} of the limit with no 429 "
         f"({fleet.of_limit:.3f}, {fleet.status_429} 429s)",
         fleet.of_limit >= STORM_TARGET and fleet.status_429 == 0),
        ("fleet storm: every account authenticated",
         len(fleet.authenticated_after) == total and not fleet.failed),
    ]
    return section


# ------------------------------------------------------------------------------------------
# the takeover


@dataclass
class Takeover:
    seconds: float
    #: At the broker, for the takeover: sessions restored and new logins (logons).
    restores: int
    logins: int


def _logins(stats: dict[str, Any]) -> int:
    return int(stats.get("logons_ok", stats.get("logins_ok", 0)))


async def takeover(broker: str, sim: Any, redis_url: str, account: int, *, sizes: Sizes,
                   audit: Path) -> Takeover:
    """``sizes.holders`` members with one user; the holder killed once the others wait."""
    name = user(account)
    async with members(broker, sim.info, redis_url, [[name]] * sizes.holders,
                       "--lease-ttl", f"{sizes.ttl:g}", "--audit", str(audit),
                       env={"BROKERGATE_FLEET_KEY": new_fleet_key()}) as fleet:
        # The first claim on a new Redis waits a TTL (the fleet's first-start wait).
        holder = await first_in(fleet, name, "authenticated", within=30 + 2 * sizes.ttl)
        standbys = [m for m in fleet if m is not holder]
        for standby in standbys:
            await standby.wait_for(lambda line: line.get("state") == "standby")
        await trio.sleep(HOLD)
        before = await sim.command("stats")
        killed_at = time.time()
        holder.kill()
        successor = await first_in(standbys, name, "authenticated", within=sizes.ttl + 20)
        after = await sim.command("stats")
    back = _authenticated_at(successor, name)
    return Takeover(back - killed_at, after.get("restores_ok", 0) - before.get("restores_ok", 0),
                    _logins(after) - _logins(before))


def _authenticated_at(member: MemberProcess, name: str) -> float:
    return float(next(line["time"] for line in member.lines
                      if line.get("user") == name and line.get("state") == "authenticated"))


async def takeovers(sizes: Sizes, redis_url: str, tmp: Path) -> dict[str, list[Takeover]]:
    found: dict[str, list[Takeover]] = {}
    for broker in sizes.brokers:
        async with simulator_process(broker, "--accounts", str(sizes.repeats)) as sim:
            found[broker] = [await takeover(broker, sim, redis_url, k, sizes=sizes,
                                            audit=tmp / f"takeover-{broker}.jsonl")
                             for k in range(sizes.repeats)]
    return found


def _alone(sizes: Sizes, tmp: Path) -> dict[str, list[float]]:
    """One process, its connection dropped: seconds back to authenticated (CQG: by restore)."""
    return {broker: trio.run(restore._drops, True, sizes.drops,
                             tmp / f"alone-{broker}.jsonl", broker)["took"]
            for broker in sizes.brokers}


def _takeover_section(sizes: Sizes, found: dict[str, list[Takeover]],
                      alone: dict[str, list[float]]) -> Section:
    poll = sizes.ttl / 5 * 1.2  # a standby's longest wait between two asks
    section = Section(
        "Fleet: takeover after kill -9 of the holder",
        ["broker", "processes", "lease TTL s", "takeovers", "kill to authenticated: median s",
         "range s", "bound s (TTL + poll + login)", "how the successor came back",
         "one process, own connection dropped: median ms"])
    bound_met = True
    for broker, runs in found.items():
        took = [r.seconds for r in runs]
        login = median(alone[broker])
        if broker == "cqg":
            how = (f"restored {sum(r.restores for r in runs)}/{len(runs)}, "
                   f"{sum(r.logins for r in runs)} new logons")
        else:
            how = f"logged in again ({sum(r.logins for r in runs)} logins)"
        section.rows.append([
            broker.upper(), str(sizes.holders), f"{sizes.ttl:g}", str(len(runs)),
            f"{median(took):.2f}", f"{min(took):.2f}-{max(took):.2f}",
            f"{sizes.ttl + poll + login:.2f}", how, f"{login * 1e3:.1f}"])
        bound_met = bound_met and max(took) <= sizes.ttl + BACKOFF_STEP
    cqg = found["cqg"]
    section.notes += [
        f"{sizes.holders} member processes per takeover with the same user, lease TTL "
        f"{sizes.ttl:g} s; the holder is killed (SIGKILL) {HOLD:g} s after the others are "
        "standbys, and the clock runs from the kill to the successor's `authenticated` (wall "
        "clock, from the lines the members print). Fresh processes and an account of their "
        "own for each takeover.",
        "The fleet's takeover is bounded by the lease's TTL by design: nobody may log in "
        "until Redis has let the dead holder's lease expire, which happens between two thirds "
        "of the TTL and the TTL after the kill (the holder renews every third of it). Then a "
        f"standby asks within its poll interval (a fifth of the TTL, jittered, at most "
        f"{poll:.2f} s) and logs in. So: TTL + poll + login is the expected bound, and the "
        "TTL is the price of never having two holders at once.",
        "One process: bench.restore's method, the session's own connection dropped by the "
        f"simulator {sizes.drops} times, timed from its audit trail (CQG by restore, QST by "
        "logging in again). It needs no lease: it knows at once that its connection is gone.",
    ]
    logons = sum(r.logins for r in cqg)
    if logons:
        section.notes.append(
            f"{logons} CQG successor(s) logged on instead of restoring: a successor logs on "
            "when the handover it finds in Redis carries no session token.")
    section.targets += [
        (f"fleet takeover within the TTL + one backoff step ({sizes.ttl:g} + "
         f"{BACKOFF_STEP:g} s), every kill", bound_met),
        ("fleet takeover, CQG: every successor restored the holder's session",
         all(r.restores == 1 and r.logins == 0 for r in cqg)),
    ]
    return section


# ------------------------------------------------------------------------------------------


def _not_run() -> list[Section]:
    section = Section("Fleet: the morning storm and the takeover across processes",
                      ["not run"], rows=[["redis-server is not on the PATH"]])
    section.notes.append(f"The fleet benchmark needs a redis-server: {HOW_TO_GET}.")
    section.targets.append(("fleet: a redis-server to run on", False))
    return [section]


def run(*, quick: bool) -> list[Section]:
    """The takeover runs first, so that the storm finds the fleet's Redis past its first-start
    wait; the storm's table comes first in the report."""
    sizes = QUICK if quick else FULL
    if find_redis() is None:
        return _not_run()
    raise_fd_limit()
    with tempfile.TemporaryDirectory(prefix="brokergate-fleet-") as tmp:
        redis = RedisServer(Path(tmp) / "redis")
        redis.start()
        try:
            found = trio.run(takeovers, sizes, redis.url, Path(tmp))
            storms = _storms(sizes, redis.url, Path(tmp))
        finally:
            redis.stop()
        alone = _alone(sizes, Path(tmp))
    return [storms, _takeover_section(sizes, found, alone)]


if __name__ == "__main__":
    import sys

    for table in run(quick="--quick" in sys.argv[1:]):
        print(table.markdown(), end="\n\n")
