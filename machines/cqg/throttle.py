"""How often a CQG user may log on.

CQG counts successful logons per user (200 a day at the time of writing) and its conformance
rules forbid logon loops. A restore is not a logon, which is the main reason brokergate restores.
The history is shared by every session of the same user in a gateway (the descriptor declares it
a shared resource); the limits come from each session's configuration. In a fleet, the holder of
the user's lease hands its history to the next holder (``export`` / ``merge``, in wall-clock
time: each process has a monotonic clock of its own).
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Mapping
from typing import Any

#: The rolling window of the daily cap, in seconds.
DAY = 86_400.0
#: Two successful logons this close together in a merged history are one seen twice (a history
#: that went to another process and came back, its times shifted by the clocks' conversions).
#: Logons are spaced far wider than this (``min_logon_interval``).
SAME_LOGON = 1.0


def _time(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"not a time: {value!r}")
    return float(value)


class LogonHistory:
    """When one user last attempted a full logon, and when its recent logons succeeded.

    Times are whatever clock the caller uses (the engine: trio's), in seconds.
    """

    __slots__ = ("_last_attempt", "_successes")

    def __init__(self) -> None:
        self._last_attempt: float | None = None
        # A list, not a deque: at most a day's cap of entries, trimmed from the front now and
        # then, and a process holding thousands of users keeps one each (a deque costs 624 bytes
        # empty, a list 56).
        self._successes: list[float] = []

    def __repr__(self) -> str:
        return f"<LogonHistory last_attempt={self._last_attempt} successes={len(self._successes)}>"

    def wait(self, now: float, min_interval: float) -> float:
        """Seconds to wait before the next logon attempt may go out (0 when it may go now)."""
        if self._last_attempt is None:
            return 0.0
        return max(0.0, self._last_attempt + min_interval - now)

    def successes(self, now: float) -> int:
        """Successful logons in the last day."""
        expired = bisect.bisect_right(self._successes, now - DAY)
        if expired:
            del self._successes[:expired]
        return len(self._successes)

    def attempted(self, now: float) -> None:
        self._last_attempt = now

    def succeeded(self, now: float) -> None:
        self._successes.append(now)

    def export(self, now: float, offset: float) -> dict[str, Any]:
        """The history as plain values in another clock (each time plus ``offset``: to go to
        wall-clock epoch seconds, the wall clock's now minus this clock's ``now``):
        ``{"last_attempt": float | None, "successes": [float, ...]}``, the last day's only."""
        self.successes(now)  # drops those older than a day
        last = self._last_attempt
        return {"last_attempt": None if last is None else last + offset,
                "successes": [t + offset for t in self._successes]}

    def merge(self, exported: Mapping[str, Any], now: float, offset: float) -> None:
        """Take in another's history (``export``'s form, its times minus ``offset`` into this
        clock): the later last attempt, and every success of the last day, those within
        ``SAME_LOGON`` of one already here counted once. A time ahead of ``now`` (another host's
        clock runs ahead) counts as now. ``ValueError`` or ``TypeError`` for anything else,
        leaving this as it was."""
        last = exported.get("last_attempt")
        attempt = None if last is None else min(_time(last) - offset, now)
        successes = exported.get("successes") or []
        if not isinstance(successes, list | tuple):
            raise TypeError(f"successes is not a list: {type(successes).__name__}")
        theirs = sorted(min(_time(t) - offset, now) for t in successes)
        if attempt is not None and (self._last_attempt is None or attempt > self._last_attempt):
            self._last_attempt = attempt
        merged = list(self._successes)
        for t in theirs:
            if now - t < DAY and not any(abs(t - mine) < SAME_LOGON for mine in self._successes):
                bisect.insort(merged, t)
        self._successes = merged
