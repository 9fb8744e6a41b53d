"""The engine's REST side: the shared rate limiter and how failures are described."""

from __future__ import annotations

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
    assert set(gaps) == {0.1}
    assert round(max(times) - start, 6) == 2.4


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
