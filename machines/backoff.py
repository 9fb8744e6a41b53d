"""Backoff between connection attempts, as a pure function.

Full jitter (a uniform draw between zero and an exponentially growing ceiling, capped) spreads a
fleet of sessions that lost their broker at the same moment, so they do not all knock at once when
it comes back. The first retry after an established session drops is immediate: a single lost
connection should cost nothing. A broker-supplied minimum (such as Retry-After) is a floor on the
drawn delay. The caller decides when attempts are counted afresh (after a stability window).
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Backoff:
    """How long to wait before attempt ``n + 1`` after ``n`` attempts have failed.

    ``initial`` seconds is the ceiling after the first failure; it grows by ``factor`` per
    failure up to ``cap``. ``max_attempts`` bounds consecutive connection attempts (``None``:
    no bound). ``stability_window`` is how long a session must stay authenticated before its
    attempt count starts again from zero.
    """

    initial: float = 0.5
    factor: float = 2.0
    cap: float = 30.0
    max_attempts: int | None = 8
    stability_window: float = 10.0

    def __post_init__(self) -> None:
        if self.initial < 0 or self.cap < 0:
            raise ValueError("backoff delays must not be negative")
        if self.factor < 1:
            raise ValueError("backoff factor must be at least 1")
        if self.max_attempts is not None and self.max_attempts < 1:
            raise ValueError("max_attempts must be at least 1 (or None for no bound)")
        if self.stability_window < 0:
            raise ValueError("stability_window must not be negative")

    def ceiling(self, failures: int) -> float:
        """The upper bound of the draw after ``failures`` consecutive failures (>= 1)."""
        exponent = max(failures, 1) - 1
        # Stop multiplying once past the cap: large exponents would overflow a float.
        ceiling = self.initial
        for _ in range(exponent):
            ceiling *= self.factor
            if ceiling >= self.cap:
                return self.cap
        return min(ceiling, self.cap)


def backoff_delay(
    policy: Backoff,
    failures: int,
    draw: float,
    *,
    immediate: bool = False,
    min_delay: float = 0.0,
) -> float:
    """Seconds to wait after ``failures`` consecutive failures.

    ``draw`` is a uniform random number in [0, 1) supplied by the caller, which keeps this function
    pure and its tests exact. ``immediate`` is the first retry after an established session
    dropped. ``min_delay`` is a floor demanded by the broker; it applies even to an immediate retry.
    """
    if not 0.0 <= draw < 1.0:
        raise ValueError("draw must be in [0, 1)")
    delay = 0.0 if immediate else draw * policy.ceiling(failures)
    return max(delay, min_delay)
