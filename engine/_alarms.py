"""One alarm clock per gateway, shared by every session driver in it.

A session spends its life waiting for its next event or its earliest timer, with no task of its own
(``brokergate.engine._driver_loop``). Its timers need something to wake them: a task per session
sleeping until its deadline would cost a task, its coroutine, a cancel scope and its cancel status
for every session, and a cancel scope entered and left for every wait. Instead a driver asks this
clock to ring at a deadline, and one task in the gateway's nursery sleeps until the earliest
deadline any driver asked for; the driver then starts a short-lived worker for its due timers.

The clock keeps a heap of (deadline, order, driver). A driver asks again only when its earliest
deadline moves *earlier* than the one it already asked for; when it moves later (a timer cancelled
or restarted), the earlier alarm stays and simply wakes the driver early, and the driver asks for
its new deadline then. So a timer restarted on every message adds nothing to the heap. When an
alarm rings, the driver acts only if that deadline is still the one it is waiting for.

A driver that ends is forgotten lazily: its entries are dropped the next time the heap is cleaned,
which happens once the dead entries are half of it, so an ended session is not kept alive by
an alarm set for an hour ahead.

Trio's clock drives the deadlines, so ``trio.testing.MockClock`` (autojump) moves the alarms as it
moves any cancel scope's deadline.
"""

from __future__ import annotations

import heapq
import itertools
import math
from typing import Protocol

import trio


class Sleeper(Protocol):
    """What the clock needs of a driver."""

    @property
    def alarm_wanted(self) -> bool:
        """False once the driver has ended: its alarms are dropped."""

    def alarm(self, deadline: float) -> None:
        """The deadline the driver asked for has come (it checks whether it still cares)."""


class AlarmClock:
    __slots__ = ("_dead", "_heap", "_order", "_scope")

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, Sleeper]] = []
        self._order = itertools.count()
        self._scope: trio.CancelScope | None = None
        self._dead = 0

    def __len__(self) -> int:
        return len(self._heap)

    def wake_at(self, deadline: float, sleeper: Sleeper) -> None:
        """Call ``sleeper.alarm(deadline)`` once trio's clock reaches ``deadline``."""
        heapq.heappush(self._heap, (deadline, next(self._order), sleeper))
        scope = self._scope
        if scope is not None and deadline < scope.deadline:
            scope.deadline = deadline

    def forget(self) -> None:
        """A driver with alarms in the heap has ended; clean the heap once half of it is dead."""
        self._dead += 1
        if self._dead * 2 > len(self._heap):
            self._heap = [entry for entry in self._heap if entry[2].alarm_wanted]
            heapq.heapify(self._heap)
            self._dead = 0

    async def run(self) -> None:
        while True:
            first = self._heap[0][0] if self._heap else math.inf
            with trio.CancelScope(deadline=first) as self._scope:
                await trio.sleep_forever()
            self._scope = None
            now = trio.current_time()
            heap = self._heap
            while heap and heap[0][0] <= now:
                deadline, _, sleeper = heapq.heappop(heap)
                sleeper.alarm(deadline)


#: The name of the clock's task in its gateway's nursery (leak checks leave it out).
TASK_NAME = "brokergate alarm clock"
