"""``python -m reliability``: the long version of the reliability and security suite.

    python3 tasks.py reliability                 500 seeds per broker, fuzzing, the table
    python3 tasks.py reliability --seeds 1000    more
    python3 tasks.py reliability --broker cqg --seed 17    replay one run, with its audit trail
    python3 tasks.py reliability --docs          also write the table into docs/reliability.md
    python3 tasks.py reliability --soak-sessions 2000 --soak-hours 4    a smaller soak
    python3 tasks.py reliability --soak-sessions 0     no soak (a minute or two instead of ~10)
    python3 tasks.py reliability --seeds 0 --fuzz 0 --hostile 0    the soak alone

The soak (reliability/soak.py) holds 10,000 sessions, half CQG and half QST, through a virtual day
with a drop every 5 minutes taking down the next slice of them, one process per broker, and
samples memory, the alarm heap, tasks and files every hour.

Exit status 0 when every session ended as expected, every bad-news count is zero and the soak
passed, else 1.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import trio
import trio.testing

from reliability import fuzz, properties, report, soak
from reliability.tally import Tally

#: Where ``--docs`` writes the table.
DOCS = Path(__file__).resolve().parent.parent / "docs" / "reliability.md"
DEFAULT_SEEDS = 500


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m reliability", description=__doc__.split("\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--seeds", type=int, default=DEFAULT_SEEDS,
                   help=f"property runs per broker (default {DEFAULT_SEEDS}; the test suite "
                        "runs 30)")
    p.add_argument("--first-seed", type=int, default=0, help="the first seed (default 0)")
    p.add_argument("--broker", action="append", choices=sorted(properties.BROKERS),
                   help="only this broker (repeatable; default all three)")
    p.add_argument("--seed", type=int, help="replay this one seed and print its audit trail")
    p.add_argument("--fuzz", type=int, default=5000,
                   help="inputs per decoder (default 5000; 0 skips fuzzing)")
    p.add_argument("--hostile", type=int, default=50,
                   help="rounds of random hostile servers, after the named cases (default 50; "
                        "0 skips them all)")
    p.add_argument("--soak-sessions", type=int, default=soak.DEFAULT_SESSIONS, metavar="N",
                   help=f"sessions in the soak, half per broker (default "
                        f"{soak.DEFAULT_SESSIONS:,}; 0 skips it)")
    p.add_argument("--soak-hours", type=int, default=soak.DEFAULT_HOURS, metavar="H",
                   help=f"virtual hours of the soak (default {soak.DEFAULT_HOURS})")
    p.add_argument("--soak-drop-every", type=float, default=soak.DEFAULT_DROP_EVERY,
                   metavar="SECONDS", help=f"virtual seconds between drop events (default "
                                           f"{soak.DEFAULT_DROP_EVERY:g}; must divide an hour)")
    p.add_argument("--soak-slices", type=int, default=soak.DEFAULT_SLICES, metavar="K",
                   help=f"a drop event takes down 1 session in K, the next slice each time "
                        f"(default {soak.DEFAULT_SLICES})")
    p.add_argument("--soak-ping", type=float, default=soak.DEFAULT_PING_INTERVAL,
                   metavar="SECONDS", help=f"every session's ping interval in the soak (default "
                                           f"{soak.DEFAULT_PING_INTERVAL:g}; 0: no pings)")
    p.add_argument("--docs", action="store_true",
                   help="write the table into docs/reliability.md")
    # The old name, from when the table was in the README.
    p.add_argument("--readme", dest="docs", action="store_true", help=argparse.SUPPRESS)
    return p


def _replay(broker: str, seed: int) -> int:
    tally = Tally()

    async def main() -> properties.RunReport:
        return await properties.run_one(properties.BROKERS[broker], seed, tally)

    result = trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0.005))
    print(f"{broker} {result.label()}: ended {result.state} ({result.reason})")
    for line in result.audit.splitlines():
        event = json.loads(line)
        if event.get("event") == "transition":
            print(f"  {event['src']} --{event['trigger']}--> {event['dst']}"
                  + (f"  [{event['reason']}]" if event.get("reason") else "")
                  + (f"  {event['detail']}" if event.get("detail") else ""))
    print(report.problems(tally) or "no problems")
    return 0 if tally.clean else 1


def _soak_schedules(args: argparse.Namespace) -> list[soak.Schedule]:
    """The soak's processes, one per broker; exits with a message when the options cannot be
    run as asked (the soak is never made smaller than asked without saying so)."""
    if args.soak_sessions < 0:
        raise SystemExit("--soak-sessions must not be negative")
    schedules = soak.split(args.soak_sessions, hours=args.soak_hours,
                           drop_every=args.soak_drop_every, slices=args.soak_slices,
                           ping_interval=args.soak_ping or None)
    for schedule in schedules:
        if problems := schedule.problems():
            raise SystemExit("soak: " + "; ".join(problems))
        if schedule.sessions > soak.largest_fitting():
            raise SystemExit(
                f"soak: {schedule.sessions:,} sessions of one broker in one process need about "
                f"{soak.fds_needed(schedule.sessions):,} open files (client and simulator "
                f"side); the hard limit allows {soak.largest_fitting():,} per process, so "
                f"--soak-sessions {2 * soak.largest_fitting():,} at most")
    return schedules


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    brokers = args.broker or list(properties.BROKERS)
    if args.seed is not None:
        return sum(_replay(b, args.seed) for b in brokers) and 1
    schedules = _soak_schedules(args)
    tally = Tally()
    started = time.monotonic()
    seeds = range(args.first_seed, args.first_seed + args.seeds)
    done = 0

    def progress(run: properties.RunReport) -> None:
        nonlocal done
        done += 1
        if done % 50 == 0 or run.problems:
            mark = "PROBLEM " if run.problems else ""
            print(f"  {mark}{done} runs ({run.broker} seed {run.seed}: {run.state})",
                  file=sys.stderr, flush=True)

    properties.run(brokers, seeds, tally, progress)
    if args.fuzz:
        fuzz.fuzz_decoders(tally, seed=args.first_seed, count=args.fuzz)
    if args.hostile:
        trio.run(lambda: fuzz.hostile_servers(tally, seed=args.first_seed, count=args.hostile),
                 clock=trio.testing.MockClock(autojump_threshold=0.005))
    soaked: list[soak.SoakResult] = []
    if schedules:
        print(f"  soak: {soak.describe(schedules)}", file=sys.stderr, flush=True)
        soaked = soak.run_processes(schedules)
        for problem in soak.problems(soaked):
            tally.problem("soak", problem)
    elapsed = time.monotonic() - started
    command = "python3 tasks.py reliability" + "".join(
        f" --{name} {value:g}" if isinstance(value, float) else f" --{name} {value}"
        for name, value, default in (
            ("seeds", args.seeds, DEFAULT_SEEDS), ("fuzz", args.fuzz, 5000),
            ("hostile", args.hostile, 50),
            ("soak-sessions", args.soak_sessions, soak.DEFAULT_SESSIONS),
            ("soak-hours", args.soak_hours, soak.DEFAULT_HOURS),
            ("soak-drop-every", args.soak_drop_every, soak.DEFAULT_DROP_EVERY),
            ("soak-slices", args.soak_slices, soak.DEFAULT_SLICES),
            ("soak-ping", args.soak_ping, soak.DEFAULT_PING_INTERVAL)) if value != default)
    table = report.render(tally, command=command, seeds=args.seeds, elapsed=elapsed,
                          soak=soaked)
    print(table)
    if tally.problems:
        print("\n" + report.problems(tally))
    if args.docs:
        changed = report.write_docs(DOCS, table)
        print(f"\ndocs/reliability.md {'rewritten' if changed else 'unchanged'}")
    return 0 if tally.clean else 1


if __name__ == "__main__":
    sys.exit(main())
