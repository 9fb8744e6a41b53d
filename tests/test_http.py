"""The engine's REST side: the shared rate limiter and how failures are described."""

from __future__ import annotations

import functools
import itertools
import random

import httpx
import trio
import trio.testing

from engine._http import HttpCaller, RateLimiter, describe_http_error, limiter_for
from machines import HttpAnswered, HttpFailed, HttpRequest


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


# --- answers are never read past the limit ----------------------------------------------------


async def _answer_with(head: bytes, body: bytes) -> tuple[HttpAnswered | HttpFailed, float]:
    """Call a loopback server that answers ``head`` and ``body`` and then stalls; the answer
    and how long (virtual seconds) the call took."""

    async def serve(stream: trio.SocketStream) -> None:
        request = b""
        while b"\r\n\r\n" not in request:
            request += await stream.receive_some(65536)
        await stream.send_all(head + body)
        await trio.sleep_forever()

    caller = HttpCaller(None, max_body=4096)
    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(functools.partial(trio.serve_tcp, serve, 0,
                                                          host="127.0.0.1"))
        port = listeners[0].socket.getsockname()[1]
        start = trio.current_time()
        try:
            answer = await caller.call(HttpRequest("login", 1, f"http://127.0.0.1:{port}/login",
                                                   {"password": "Zq-secret"}, timeout=10.0))
        finally:
            await caller.aclose()
        nursery.cancel_scope.cancel()
    return answer, trio.current_time() - start


def _chunk(data: bytes) -> bytes:
    return f"{len(data):x}\r\n".encode() + data + b"\r\n"


async def test_a_body_that_runs_past_the_limit_is_not_read_on(
    clock: trio.testing.MockClock,
) -> None:
    # Chunked, no length, and it never ends: reading it whole would wait for the timeout.
    head = (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n")
    answer, took = await _answer_with(head, _chunk(b" " * 3000) + _chunk(b" " * 3000))
    assert isinstance(answer, HttpAnswered)
    assert answer.body == b"" and answer.body_limit == 4096 and answer.status == 200
    assert took < 1.0


async def test_a_declared_length_past_the_limit_is_not_read_at_all(
    clock: trio.testing.MockClock,
) -> None:
    head = b"HTTP/1.1 200 OK\r\nContent-Length: 10485760\r\n\r\n"
    answer, took = await _answer_with(head, b"{" * 100)
    assert isinstance(answer, HttpAnswered) and answer.body_limit == 4096 and took < 1.0


async def test_a_body_within_the_limit_is_read_whole(clock: trio.testing.MockClock) -> None:
    body = b'{"status": "Success", "pad": "' + b" " * 4000 + b'"}'
    assert len(body) <= 4096
    head = f"HTTP/1.1 200 OK\r\nContent-Length: {len(body)}\r\n\r\n".encode()
    answer, _ = await _answer_with(head, body)
    assert isinstance(answer, HttpAnswered) and answer.body == body
    assert answer.body_limit is None
