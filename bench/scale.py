"""Scale: thousands of concurrent sessions in one process, brokergate vs. the minimal client.

For each broker, fleet size and client, a fresh simulator process and a fresh client process
(``bench._fleet``) are started; the client opens every session at once and the figures are
those of the client process alone: wall time until the last session was authenticated, CPU
time (user + system) spent meanwhile, and its peak resident memory above what it held before
the fleet started, each divided by the fleet size. Clients alternate order between repeats.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path
from typing import Any

import trio

from bench._report import Section, median, ratio
from bench._server import CHECKOUT, simulator_process

TARGET = 1.3
BROKERS = ("qst", "cqg")


async def _one(broker: str, client: str, sessions: int, audit: Path) -> dict[str, Any]:
    async with simulator_process(broker, "--accounts", str(sessions + 1)) as sim:
        cmd = [sys.executable, "-m", "bench._fleet", client, broker, str(sessions),
               json.dumps(sim.info)]
        if client == "engine":
            cmd += ["--audit", str(audit)]
        done = await trio.run_process(cmd, capture_stdout=True, capture_stderr=True,
                                      cwd=CHECKOUT, check=False)
        if done.returncode:
            raise RuntimeError(f"{client} fleet of {sessions} {broker} sessions failed: "
                               f"{done.stderr.decode(errors='replace')[-2000:]}")
        result: dict[str, Any] = json.loads(done.stdout)
        result["violations"] = (await sim.command("stats"))["violations"]
        return result


def run(*, quick: bool) -> Section:
    sizes = (50,) if quick else (1_000, 10_000)
    repeats = 1 if quick else 3
    section = Section(
        "2. Scale: concurrent sessions in one process",
        ["broker", "sessions", "client", "all authenticated after s", "CPU ms per session",
         "of which garbage collection", "peak RSS KiB per session", "authenticated",
         "CPU ratio", "memory ratio"],
    )
    with tempfile.TemporaryDirectory() as tmp:
        for broker in BROKERS:
            for sessions in sizes:
                results: dict[str, list[dict[str, Any]]] = {"minimal": [], "engine": []}
                for n in range(repeats):
                    order = ("minimal", "engine") if n % 2 == 0 else ("engine", "minimal")
                    for client in order:
                        audit = Path(tmp) / f"{broker}-{sessions}-{n}.jsonl"
                        results[client].append(trio.run(_one, broker, client, sessions, audit))
                figures = {}
                for client, runs in results.items():
                    figures[client] = {
                        "wall": median([r["wall"] for r in runs]),
                        "cpu": median([r["cpu"] / sessions * 1e3 for r in runs]),
                        "gc": median([r["gc"] / sessions * 1e3 for r in runs]),
                        "rss": median([(r["peak_rss_kib"] - r["base_rss_kib"]) / sessions
                                       for r in runs]),
                        "ok": min(r["authenticated"] for r in runs),
                        "violations": sum(r["violations"] for r in runs),
                    }
                base, ours = figures["minimal"], figures["engine"]
                for client, label in (("minimal", "minimal client"), ("engine", "brokergate")):
                    f = figures[client]
                    section.rows.append([
                        broker.upper(), f"{sessions:,}", label, f"{f['wall']:.2f}",
                        f"{f['cpu']:.3f}", f"{f['gc']:.3f}", f"{f['rss']:.1f}",
                        f"{f['ok']:,}/{sessions:,}",
                        ratio(f["cpu"], base["cpu"]) if client == "engine" else "",
                        ratio(f["rss"], base["rss"]) if client == "engine" else "",
                    ])
                name = f"{broker} x {sessions:,}"
                section.targets += [
                    (f"{name}: all authenticated, no violation",
                     ours["ok"] == sessions and base["ok"] == sessions
                     and not ours["violations"]),
                    (f"{name}: memory per session ≤ {TARGET}x the minimal client",
                     ours["rss"] <= TARGET * base["rss"]),
                ]
                if sessions == sizes[-1]:  # the scale target is judged at the largest size
                    section.targets.append(
                        (f"{name}: CPU per session ≤ {TARGET}x the minimal client",
                         ours["cpu"] <= TARGET * base["cpu"]))
    section.notes += [
        f"Median of {repeats} runs per row; every run is a fresh simulator process and a fresh "
        "client process, so the peak memory (VmHWM) is the fleet's alone.",
        "brokergate's sessions run as a user would run them: machine, driver, timers, "
        "heartbeat, and the audit trail as JSON lines to a file.",
        "Of which garbage collection: the time the client spent in Python's collector "
        "meanwhile (gc.callbacks), per session, part of the CPU column. A full collection "
        "walks every live object, so it grows with the objects each session keeps.",
        "Both clients wait as long as needed for the simulator's accept loop (connect and "
        "login timeouts of 120 s): the wall time is mostly the simulator's, one process "
        "accepting every connection.",
    ]
    return section
