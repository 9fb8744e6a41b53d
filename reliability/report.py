"""The reliability table: what was injected and run, and the counts that must stay at zero."""

from __future__ import annotations

import os
import platform
import sys
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

from brokergate.simulators.faults import FAULT_KINDS
from reliability import soak as soak_module
from reliability.tally import Tally

BROKER_NAMES = {"qst": "QST", "cqg": "CQG", "firstock": "Firstock"}
#: The copy of the table in docs/reliability.md sits between these lines.
DOCS_START = "<!-- reliability table: written by `python3 tasks.py reliability --docs` -->"
DOCS_END = "<!-- end of reliability table -->"


def machine() -> str:
    return (f"{platform.system()} {platform.machine()}, {os.cpu_count()} CPUs, "
            f"Python {sys.version.split()[0]}")


def render(tally: Tally, *, command: str, seeds: int, elapsed: float,
           soak: Sequence[soak_module.SoakResult] = ()) -> str:
    """The whole report as Markdown; the soak's hourly tables and verdict when it ran."""
    brokers = [b for b in BROKER_NAMES if tally.sessions[b]]
    out = [f"`{command}`: {seeds} seeds per broker, {elapsed:.0f} s on {machine()}.", ""]

    if brokers:  # none when only the soak ran (--seeds 0 --hostile 0)
        out += ["| broker | fault runs | hostile-server sessions | ended as expected "
                "| violations | leaks | secret hits | credential retries | extra CQG logons |",
                "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]

    def row(name: str, keys: list[str]) -> str:
        def total(counter: Counter[str]) -> int:
            return sum(counter[k] for k in keys)

        runs = total(tally.sessions) - total(tally.hostile)
        extra = str(total(tally.extra_logons)) if "cqg" in keys else "n/a"
        return (f"| {name} | {runs} | {total(tally.hostile)} | {total(tally.expected)} "
                f"| {total(tally.violations)} | {total(tally.leaks)} | {total(tally.secret_hits)} "
                f"| {total(tally.credential_retries)} | {extra} |")

    out += [row(BROKER_NAMES[b], [b]) for b in brokers]
    if len(brokers) > 1:
        out.append(row("**all**", brokers))

    streaming = [b for b in brokers if tally.streams[b]]
    if streaming:
        out += ["", *_data_rows(tally, streaming)]

    if tally.faults:
        out += ["", "| fault injected | " + " | ".join(FAULT_KINDS) + " | total |",
                "|---|" + "---:|" * (len(FAULT_KINDS) + 1),
                "| count | " + " | ".join(str(tally.faults[k]) for k in FAULT_KINDS)
                + f" | {tally.faults.total()} |"]

    if tally.fuzzed:
        out += ["", "| decoder or hostile server | inputs |", "|---|---:|"]
        out += [f"| {name} | {count} |" for name, count in sorted(tally.fuzzed.items())]
        out.append(f"| **all** | {tally.fuzzed.total()} |")

    if soak:
        out += ["", soak_module.render(soak)] if out[-1] else [soak_module.render(soak)]

    out += ["", f"Problems: {len(tally.problems)}."]
    return "\n".join(out)


#: The data path's columns: (heading, the Tally counter). The last three must stay at zero.
DATA_COLUMNS = (("streams", "streams"), ("frames sent", "frames_sent"),
                ("frames received", "frames_received"), ("streams cut short", "streams_cut"),
                ("slow consumers", "slow_consumers"), ("reading paused", "reading_paused"),
                ("lost", "frames_lost"), ("duplicated", "frames_duplicated"),
                ("out of order", "frames_out_of_order"))


def _data_rows(tally: Tally, brokers: list[str]) -> list[str]:
    """The data path: numbered frames streamed after each login and what a lossless subscriber
    received of them (docs/reliability.md says what counts as lost)."""
    lines = ["| data path | " + " | ".join(h for h, _ in DATA_COLUMNS) + " |",
             "|---|" + "---:|" * len(DATA_COLUMNS)]
    groups = [(BROKER_NAMES[b], [b]) for b in brokers]
    if len(brokers) > 1:
        groups.append(("**all**", brokers))
    for name, keys in groups:
        cells = [str(sum(getattr(tally, attr)[k] for k in keys)) for _, attr in DATA_COLUMNS]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return lines


def problems(tally: Tally, limit: int = 30) -> str:
    lines = tally.problems[:limit]
    more = len(tally.problems) - len(lines)
    if more > 0:
        lines.append(f"... and {more} more")
    return "\n".join(f"- {line}" for line in lines)


def write_docs(path: Path, table: str) -> bool:
    """Replace the table between the markers in ``path`` (docs/reliability.md); True if the file
    changed."""
    text = path.read_text(encoding="utf-8")
    try:
        head, rest = text.split(DOCS_START, 1)
        _, tail = rest.split(DOCS_END, 1)
    except ValueError:
        raise SystemExit(f"{path} has no reliability table markers "
                         f"({DOCS_START} ... {DOCS_END})") from None
    new = f"{head}{DOCS_START}\n{table}\n{DOCS_END}{tail}"
    if new == text:
        return False
    path.write_text(new, encoding="utf-8")
    return True
