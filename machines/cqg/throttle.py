"""How often a CQG user may log on.

CQG counts successful logons per user (200 a day at the time of writing) and its conformance
rules forbid logon loops. A restore is not a logon, which is the main reason brokergate restores.
The history is shared by every session of the same user in a gateway (the descriptor declares it
a shared resource); the limits come from each session's configuration.
"""

from __future__ import annotations

import bisect

#: The rolling window of the daily cap, in seconds.
DAY = 86_400.0


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
