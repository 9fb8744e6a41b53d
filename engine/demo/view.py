"""What the demo shows while it runs: a table redrawn in place on a terminal, plain progress
lines otherwise; and the summary at the end."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any, TextIO

import trio

from brokergate.machines import Transitioned

#: ANSI: cursor up n lines; clear the line.
_UP = "\x1b[{n}F"
_CLEAR = "\x1b[2K"


@dataclass
class Row:
    """One scenario's progress and result (a fleet's sessions share a row)."""

    scenario: str
    broker: str
    expected: str
    sessions: int = 1
    states: dict[str, str] = field(default_factory=dict)  # session id -> state
    last: str = ""
    tries: dict[str, int] = field(default_factory=dict)  # session id -> attempts
    restored: dict[str, int] = field(default_factory=dict)  # session id -> restores
    refused: int = 0
    time_to_auth: float | None = None
    outcome: str | None = None
    counts: dict[str, int] = field(default_factory=dict)
    ok: bool | None = None
    note: str | None = None
    problems: list[str] = field(default_factory=list)

    @property
    def attempts(self) -> int:
        """The most attempts any of its sessions needed."""
        return max(self.tries.values(), default=0)

    @property
    def restores(self) -> int:
        return sum(self.restored.values())

    def progress(self, session_id: str, outcome: dict[str, Any]) -> None:
        # The most it took: a session that stays up resets its count.
        self.tries[session_id] = max(self.tries.get(session_id, 0),
                                     int(outcome.get("attempts") or 0))
        self.restored[session_id] = int(outcome.get("restores") or 0)

    def state_text(self) -> str:
        if self.sessions == 1:
            return next(iter(self.states.values()), "starting")
        tally = Counter(self.states.values())
        return ", ".join(f"{n} {state}" for state, n in tally.most_common())

    def as_json(self) -> dict[str, Any]:
        return {
            "scenario": self.scenario, "broker": self.broker, "sessions": self.sessions,
            "expected": self.expected, "outcome": self.outcome, "ok": self.ok,
            "attempts": self.attempts, "restores": self.restores, "counts": self.counts,
            "refused_early_requests": self.refused, "time_to_authenticated": self.time_to_auth,
            "note": self.note, "problems": self.problems,
        }


class View:
    """Shows the rows as they change. ``live``: one table, redrawn in place (a terminal);
    otherwise one line per transition (a fleet: a line when its tally of states changes)."""

    def __init__(self, out: TextIO, rows: list[Row], *, live: bool) -> None:
        self.out, self.rows, self.live = out, rows, live
        self.by_name = {r.scenario: r for r in rows}
        self.start = trio.current_time()
        self._drawn = 0

    def elapsed(self) -> float:
        return trio.current_time() - self.start

    def transition(self, scenario: str, session_id: str, event: Transitioned,
                   outcome: dict[str, Any]) -> None:
        row = self.by_name[scenario]
        row.progress(session_id, outcome)
        before = row.state_text()
        row.states[session_id] = event.dst
        extra = [x for x in (event.reason,
                             f"code {event.error_code}" if event.error_code is not None else None,
                             f"close {event.close_code}" if event.close_code is not None
                             else None,
                             f"wait {event.delay:.2f}s" if event.delay is not None else None)
                 if x]
        row.last = f"{event.src} -> {event.dst}" + (f" ({', '.join(extra)})" if extra else "")
        if self.live:
            return
        if row.sessions == 1:
            self.line(f"{scenario:<24} {row.last}")
        elif row.state_text() != before:
            self.line(f"{scenario:<24} {row.state_text()}")

    def refused(self, scenario: str, state: str) -> None:
        self.by_name[scenario].refused += 1
        if not self.live:
            self.line(f"{scenario:<24} request refused by the gate while {state}: nothing sent")

    def line(self, text: str) -> None:
        print(f"[{self.elapsed():5.2f}s] {text}", file=self.out, flush=True)

    # -- the live table

    def draw(self) -> None:
        lines = [f"{'scenario':<24} {'state':<36} {'tries':>5} {'restores':>8} {'refused':>7}  "
                 "last transition"]
        for r in self.rows:
            state = r.state_text()
            if r.ok is not None:
                state = ("OK " if r.ok else "XX ") + state
            lines.append(f"{r.scenario:<24} {state[:36]:<36} {r.attempts:>5} {r.restores:>8} "
                         f"{r.refused:>7}  {r.last[:60]}")
        lines.append(f"{self.elapsed():.1f} s")
        text = _UP.format(n=self._drawn) if self._drawn else ""
        text += "".join(_CLEAR + line + "\n" for line in lines)
        self.out.write(text)
        self.out.flush()
        self._drawn = len(lines)

    async def redraw_until_cancelled(self) -> None:
        if not self.live:
            await trio.sleep_forever()
        while True:
            self.draw()
            await trio.sleep(0.1)


def summary(rows: list[Row], out: TextIO) -> None:
    print("\nSummary", file=out)
    header = (f"{'scenario':<24} {'expected':<40} {'got':<32} {'ok':<3} {'tries':>5} "
              f"{'restores':>8} {'auth after':>10}")
    print(header, file=out)
    print("-" * len(header), file=out)
    for r in rows:
        auth = f"{r.time_to_auth:.2f}s" if r.time_to_auth is not None else "-"
        mark = "yes" if r.ok else "NO"
        print(f"{r.scenario:<24} {r.expected:<40} {r.outcome or 'did not finish':<32} {mark:<3} "
              f"{r.attempts:>5} {r.restores:>8} {auth:>10}", file=out)
        if r.note:
            print(f"{'':<24}   {r.note}", file=out)
        for problem in r.problems:
            print(f"{'':<24}   MISMATCH: {problem}", file=out)
