"""Which faults the fault proxy puts on each connection: ``Fault`` (one fault, see
``brokergate.simulators.faults`` for the kinds) and ``FaultPlan`` (the faults of each connection
in turn), scripted or drawn from a seeded random generator so that a failing run can be replayed
from its seed."""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Final, Literal

#: Every kind of fault the proxy can inject.
FAULT_KINDS: Final = ("latency", "throttle", "split", "drop", "reset", "truncate", "stall")
#: Kinds that act once, at a trigger, and end (or freeze) the connection.
ONE_SHOT: Final = frozenset({"drop", "reset", "truncate", "stall"})
#: From the server to the client ("down"), from the client to the server ("up").
Direction = Literal["down", "up"]


@dataclass(frozen=True, slots=True)
class Fault:
    """One fault on one connection. See ``brokergate.simulators.faults`` for the kinds."""

    kind: str
    #: The direction a continuous fault slows, or whose bytes a one-shot trigger counts.
    direction: Direction = "down"
    #: One-shot trigger: after this many bytes in ``direction``...
    at_byte: int | None = None
    #: ...or this many seconds after the connection opened (None: bytes only).
    at_seconds: float | None = None
    #: latency: seconds added before each chunk.
    delay: float = 0.0
    #: throttle: bytes per second.
    rate: int = 0
    #: split: the largest piece, in bytes.
    piece: int = 1

    def __post_init__(self) -> None:
        if self.kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {self.kind!r}; use one of: "
                             f"{', '.join(FAULT_KINDS)}")
        if self.direction not in ("down", "up"):
            raise ValueError(f"direction must be 'down' or 'up', not {self.direction!r}")
        if self.kind in ONE_SHOT and self.at_byte is None and self.at_seconds is None:
            raise ValueError(f"a {self.kind} fault needs at_byte or at_seconds")
        if self.kind == "throttle" and self.rate <= 0:
            raise ValueError("a throttle fault needs a positive rate (bytes per second)")
        if self.kind == "split" and self.piece < 1:
            raise ValueError("a split fault needs piece >= 1")
        if self.delay < 0 or (self.at_byte is not None and self.at_byte < 0):
            raise ValueError("delay and at_byte must not be negative")

    def describe(self) -> str:
        if self.kind == "latency":
            return f"latency {self.delay * 1000:.0f} ms {self.direction}"
        if self.kind == "throttle":
            return f"throttle {self.rate} B/s {self.direction}"
        if self.kind == "split":
            return f"split into pieces of at most {self.piece} B {self.direction}"
        where = []
        if self.at_byte is not None:
            where.append(f"after {self.at_byte} B {self.direction}")
        if self.at_seconds is not None:
            where.append(f"at {self.at_seconds:g} s")
        return f"{self.kind} {' or '.join(where)}"


@dataclass
class FaultPlan:
    """Which faults each new connection gets: ``per_connection[i]`` for the (i+1)th connection,
    then ``after`` for every later one (none by default)."""

    per_connection: list[tuple[Fault, ...]] = field(default_factory=list)
    after: tuple[Fault, ...] = ()

    @classmethod
    def scripted(cls, *connections: Sequence[Fault], after: Sequence[Fault] = ()) -> FaultPlan:
        return cls([tuple(c) for c in connections], tuple(after))

    @classmethod
    def clean(cls) -> FaultPlan:
        return cls()

    def faults_for(self, number: int) -> tuple[Fault, ...]:
        """The faults of connection ``number`` (counted from 1)."""
        if number <= len(self.per_connection):
            return self.per_connection[number - 1]
        return self.after

    def describe(self) -> str:
        lines = [f"connection {i}: " + (", ".join(f.describe() for f in faults) or "clean")
                 for i, faults in enumerate(self.per_connection, 1)]
        lines.append("later connections: "
                     + (", ".join(f.describe() for f in self.after) or "clean"))
        return "; ".join(lines)


def random_fault(rng: random.Random, *, kinds: Sequence[str] = FAULT_KINDS,
                 max_byte: int = 800, max_seconds: float | None = None) -> Fault:
    """One fault drawn from ``rng``. One-shot faults trigger within the first ``max_byte`` bytes
    (which covers the opening handshake and the login exchange of every broker here), or, with
    ``max_seconds``, at a random time up to it instead."""
    kind = rng.choice(list(kinds))
    direction: Direction = rng.choice(("down", "up"))
    if kind == "latency":
        return Fault(kind, direction, delay=rng.choice((0.001, 0.01, 0.05, 0.2, 1.0)))
    if kind == "throttle":
        return Fault(kind, direction, rate=rng.choice((50, 500, 5000, 50000)))
    if kind == "split":
        return Fault(kind, direction, piece=rng.choice((1, 2, 3, 7, 16)))
    if max_seconds is not None:
        return Fault(kind, direction, at_seconds=round(rng.uniform(0.0, max_seconds), 3))
    return Fault(kind, direction, at_byte=rng.randrange(max_byte))


#: A function drawing a plan from a generator (for property runs).
PlanMaker = Callable[[random.Random], FaultPlan]


def random_plan(rng: random.Random, *, faulty: int, kinds: Sequence[str] = FAULT_KINDS,
                max_byte: int = 800, per_connection: int = 2) -> FaultPlan:
    """``faulty`` connections with 1 to ``per_connection`` random faults each, then clean ones."""
    conns = []
    for _ in range(faulty):
        count = rng.randint(1, per_connection)
        conns.append(tuple(random_fault(rng, kinds=kinds, max_byte=max_byte)
                           for _ in range(count)))
    return FaultPlan.scripted(*conns)
