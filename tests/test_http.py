"""The engine's REST side: the shared rate limiter and how failures are described."""

from __future__ import annotations

import itertools
import random

import httpx
import trio
import trio.testing

from engine._http import HttpCaller, RateLimiter, describe_http_error, limiter_for
from machines import HttpFailed, HttpRequest


async def test_requests_are_spaced_evenly_at_the_rate(clock: trio.testing.MockClock) -> None:
    limiter = RateLimiter(10.0)
    times: list[float] = []

    async def one() -> None:
        await limiter.acquire()
        times.append(trio.current_time())

    start = trio.current_time()
    async with trio.open_nursery() as nursery:
        for _ in range(25):
            nursery.start_soon(one)
    gaps = [round(b - a, 6) for a, b in zip(sorted(times), sorted(times)[1:], strict=False)]
    assert set(gaps) == {0.105}  # 10 per 1.05 s: a margin for the way to the broker
    assert round(max(times) - start, 6) == 2.52


async def test_no_window_ever_holds_more_than_the_rate(clock: trio.testing.MockClock) -> None:
    """However requests come (bursts, trickles, pauses) and however late a busy process lets
    them leave, no 1.05 s of real departures holds more than 10, and none follow closer than
    0.105 s: a late request does not bunch up with the ones planned after it."""
    limiter = RateLimiter(10.0)
    times: list[float] = []
    rng = random.Random(5)

    async def one(delay: float) -> None:
        await trio.sleep(delay)
        await limiter.acquire()
        times.append(trio.current_time())

    async def busy_process() -> None:
        for _ in range(6):  # the loop stalls now and then: sleepers wake late
            await trio.sleep(rng.uniform(0.5, 2.0))
            clock.jump(rng.uniform(0.2, 0.6))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(busy_process)
        for _ in range(120):
            nursery.start_soon(one, rng.choice([0.0, 0.0, rng.uniform(0, 3), rng.uniform(8, 9)]))
    times.sort()
    assert len(times) == 120
    assert all(later - first >= 1.05 - 1e-9
               for first, later in zip(times, times[10:], strict=False))
    assert all(b - a >= 0.105 - 1e-9 for a, b in itertools.pairwise(times))


async def test_a_fractional_rate_still_lets_requests_through(
    clock: trio.testing.MockClock,
) -> None:
    limiter = RateLimiter(0.5)
    start = trio.current_time()
    for _ in range(3):
        await limiter.acquire()
    assert round(trio.current_time() - start, 6) == 4.2  # one every 2.1 s


async def test_one_limiter_per_host_and_rate_in_a_run() -> None:
    assert limiter_for("api.example", 10.0) is limiter_for("API.example", 10.0)
    assert limiter_for("api.example", 10.0) is not limiter_for("other.example", 10.0)


async def test_a_refused_connection_is_a_failure_not_an_exception() -> None:
    caller = HttpCaller(None)
    try:
        answer = await caller.call(HttpRequest("login", 7, "http://127.0.0.1:1/login",
                                               {"password": "Zq-secret"}, timeout=2.0))
    finally:
        await caller.aclose()
    assert isinstance(answer, HttpFailed) and answer.serial == 7
    assert answer.detail == "connection refused" and not answer.timed_out
    assert "Zq-secret" not in repr(answer)


def test_timeouts_say_where_they_happened() -> None:
    assert describe_http_error(httpx.ReadTimeout("x")) == "timed out waiting for the answer"
    assert describe_http_error(httpx.ConnectTimeout("x")) == "timed out connecting"
