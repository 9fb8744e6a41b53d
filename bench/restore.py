"""CQG restore: back to authenticated after a dropped connection, by restore vs. by a new logon.

One brokergate CQG session logs on to a simulator in its own process; the simulator is then
told to drop the session's TCP connection (no close frame), again and again. Each time the
clock runs from the moment the session sees the connection gone (it leaves ``authenticated``)
until it is authenticated again, read from the timestamps of the two transitions in the session's
audit trail. With ``restore=True`` (the default) it comes back with
RestoreOrJoinSession on the session it had; with ``restore=False`` it logs on afresh. The
simulator counts the Logon and RestoreOrJoinSession messages it received.
"""

from __future__ import annotations

import json
import tempfile
from datetime import datetime
from pathlib import Path
from typing import Any

import trio

from bench._clients import engine_config
from bench._report import Section, median, spread
from bench._server import simulator_process, user
from brokergate import AuditLog, Backoff, Transitioned, open_session

#: The session is quiet this long after each return before the next drop: long enough for its
#: stability window (set to STABLE below) to pass, so every drop is a first drop, retried at once.
QUIET = 0.3
STABLE = 0.2


async def _drops(restore: bool, drops: int, trail: Path, broker: str = "cqg") -> dict[str, Any]:
    """``drops`` drops of one session's connection, each timed back to authenticated. (QST,
    which has no restore, logs in again: the fleet benchmark's single-process figure.)"""
    async with simulator_process(broker, "--accounts", "1", "--settle", "0") as sim:
        settings: dict[str, Any] = {"restore": restore} if broker == "cqg" else {}
        config = engine_config(broker, sim.info, user(0),
                               backoff=Backoff(stability_window=STABLE), **settings)
        audit = AuditLog.to_file(trail)
        try:
            async with open_session(config, audit=audit) as session:
                await session.wait_authenticated()
                async with session.events() as events:
                    for _ in range(drops):
                        await trio.sleep(QUIET)
                        await sim.command(f"drop {user(0)}")
                        await _back(events)
                outcome = session.outcome()
        finally:
            audit.close()
        stats = await sim.command("stats")
    return {"took": _returns(trail), "logons": stats.get("logon_requests", stats.get("logins_ok")),
            "restores": stats.get("restore_requests", 0), "outcome": outcome,
            "violations": stats["violations"]}


async def _back(events: Any) -> None:
    """Until the session has left authenticated and come back (the next drop may follow)."""
    left = False
    async for event in events:
        if not isinstance(event, Transitioned) or event.dst == event.src:
            continue  # the stability window passing, say
        if event.src == "authenticated":
            left = True
        elif event.dst == "authenticated" and left:
            return


def _returns(trail: Path) -> list[float]:
    """Seconds from leaving authenticated to authenticated again, for each drop, from the audit
    trail's timestamps: taken as each transition happens, not when this benchmark's task gets
    round to reading the session's events (which may be after the session is back)."""
    took: list[float] = []
    left: datetime | None = None
    for line in trail.read_text(encoding="utf-8").splitlines():
        event = json.loads(line)
        if event.get("event") != "transition" or event["src"] == event["dst"]:
            continue
        at = datetime.fromisoformat(event["timestamp"])
        if event["src"] == "authenticated":
            left = at
        elif event["dst"] == "authenticated" and left is not None:
            took.append((at - left).total_seconds())
            left = None
    return took


def run(*, quick: bool) -> Section:
    drops = 5 if quick else 50
    section = Section(
        "3. CQG: from a dropped connection back to authenticated",
        ["how", "drops", "median ms", "spread ms", "Logon messages", "RestoreOrJoinSession "
         "messages", "session kept"],
    )
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for restore in (True, False):
            trail = Path(tmp) / f"audit-restore-{restore}.jsonl"
            results[restore] = trio.run(_drops, restore, drops, trail)
    for restore, r in results.items():
        took = [t * 1e3 for t in r["took"]]
        section.rows.append([
            "restore (default)" if restore else "new logon (restore=False)",
            str(len(took)), f"{median(took):.2f}", spread(took), str(r["logons"]),
            str(r["restores"]), "yes" if restore else "no: a new session each time",
        ])
    kept, fresh = results[True], results[False]
    section.targets += [
        ("restore: one Logon for the session's life, every drop restored",
         kept["logons"] == 1 and kept["restores"] == drops and len(kept["took"]) == drops),
        ("a new logon each time when restore=False (the comparison is real)",
         fresh["logons"] == drops + 1 and fresh["restores"] == 0),
    ]
    section.notes += [
        f"{drops} drops per row, one session, simulator in its own process answering at once "
        f"(no login check); {QUIET * 1e3:.0f} ms of quiet between drops and a stability window "
        f"of {STABLE * 1e3:.0f} ms, so every drop is retried at once, as a first drop is.",
        "The new-logon row turns off brokergate's per-user logon throttle "
        "(min_logon_interval=0). Left at its default (60 s, after CQG's own rule), each of "
        "those logons would first wait out the minute since the last one; a restore is not "
        "throttled. CQG also caps logons per user per day (200 by default here).",
    ]
    return section
