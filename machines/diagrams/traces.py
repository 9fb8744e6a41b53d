"""The transitions one session took, read back from its audit log, to draw over its broker's
diagram (``mermaid(g, trace)``, ``dot(g, trace)``, ``trace_page``)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Step:
    """One transition a session took, as its audit log recorded it."""

    number: int
    trigger: str
    src: str
    dst: str
    reason: str | None = None
    delay: float | None = None
    detail: str | None = None


@dataclass(frozen=True, slots=True)
class Trace:
    session_id: str
    broker: str
    steps: tuple[Step, ...]

    def visited(self) -> set[str]:
        return {s.src for s in self.steps} | {s.dst for s in self.steps}

    @property
    def last(self) -> str | None:
        """Where the session ended up."""
        return self.steps[-1].dst if self.steps else None

    def taken(self) -> dict[tuple[str, str], list[Step]]:
        taken: dict[tuple[str, str], list[Step]] = {}
        for step in self.steps:
            taken.setdefault((step.src, step.dst), []).append(step)
        return taken


def steps_text(steps: Sequence[Step]) -> str:
    """The steps taken along one edge, as the drawings label it: ``2, 5 (after 1.20 s)``."""
    texts: list[str] = []
    for step in steps:
        text = str(step.number)
        if step.delay is not None:
            text += f" (after {step.delay:.2f} s)"
        texts.append(text)
    return ", ".join(texts)


def traces(events: Iterable[Mapping[str, Any]]) -> dict[str, Trace]:
    """Every session's transitions in an audit log, by session id, in log order."""
    steps: dict[str, list[Step]] = {}
    brokers: dict[str, str] = {}
    for event in events:
        if event.get("event") not in ("transition", "internal_error") or "src" not in event:
            continue
        sid = str(event.get("session_id"))
        brokers.setdefault(sid, str(event.get("broker")))
        own = steps.setdefault(sid, [])
        delay = event.get("delay")
        own.append(Step(len(own) + 1, str(event.get("trigger")), str(event["src"]),
                        str(event["dst"]), event.get("reason"),
                        float(delay) if isinstance(delay, int | float) else None,
                        event.get("detail")))
    return {sid: Trace(sid, brokers[sid], tuple(s)) for sid, s in steps.items()}
