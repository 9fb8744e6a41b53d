"""The engine's REST side: the shared rate limiter and how failures are described."""

from __future__ import annotations

import contextlib
import functools
import itertools
import math
import random
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
import pytest
import trio
import trio.testing

from brokergate import open_gateway
from brokergate.engine._errors import CoordinatorUnavailable
from brokergate.engine._http import (
    HttpCaller,
    RateLimiter,
    RateLimiters,
    TraceHook,
    describe_http_error,
)
from brokergate.machines import HttpAnswered, HttpFailed, HttpRequest


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
    assert set(gaps) == {0.103}  # 10 per 1.03 s: 30 ms for trips of different lengths
    assert round(max(times) - start, 6) == 2.472


async def _departures(limiter: RateLimiter, clock: trio.testing.MockClock, n: int,
                      late: Callable[[int], float]) -> list[float]:
    """Times at which ``n`` queued requests leave ``limiter`` when the k-th sleeper to wake
    wakes ``late(k)`` seconds after its deadline, as on an event loop that is busy."""
    clock.autojump_threshold = math.inf  # the clock moves only here
    times: list[float] = []

    async def one() -> None:
        await limiter.acquire()
        times.append(trio.current_time())

    async with trio.open_nursery() as nursery:
        for _ in range(n):
            nursery.start_soon(one)
        for wake in itertools.count():
            await trio.testing.wait_all_tasks_blocked()
            if len(times) == n:
                break
            clock.jump(trio.lowlevel.current_statistics().seconds_to_next_deadline + late(wake))
    return sorted(times)


async def test_small_wake_up_delays_do_not_add_up_request_by_request(
    clock: trio.testing.MockClock,
) -> None:
    """Each sleeper wakes 20 ms late. Pushing every slot back by that would leave the pace at
    one per 123 ms instead of 103 ms, 16% under the rate; the schedule absorbs it, and only the
    window rule (a late departure pushes the one ten places after it) costs 20 ms a window."""
    times = await _departures(RateLimiter(10.0), clock, 30, lambda _: 0.02)
    gaps = [round(b - a, 6) for a, b in itertools.pairwise(times)]
    assert gaps[1:9] == [0.103] * 8  # within the first window: on the schedule
    assert all(later - first >= 1.03 - 1e-9 for first, later in zip(times, times[10:],
                                                                     strict=False))
    span = times[-1] - times[0]
    assert span <= 29 * 0.103 + 3 * 0.02 + 1e-9  # at most one wake-up delay per window
    assert 29 / span > 0.95 * 10


async def test_after_a_stall_the_backlog_leaves_at_the_normal_pace(
    clock: trio.testing.MockClock,
) -> None:
    """The third departure wakes 0.5 s late: the queue behind it does not rush to catch up;
    it follows half an interval later, then one interval apart again."""
    times = await _departures(RateLimiter(10.0), clock, 8, lambda k: 0.5 if k == 1 else 0.0)
    gaps = [round(b - a, 6) for a, b in itertools.pairwise(times)]
    assert gaps == [0.103, 0.603, 0.0515, 0.103, 0.103, 0.103, 0.103]


async def test_no_window_ever_holds_more_than_the_rate(clock: trio.testing.MockClock) -> None:
    """However requests come (bursts, trickles, pauses) and however late a busy process lets
    them leave, no 1.03 s of real departures holds more than 10, and none follow closer than
    half an interval (0.0515 s): a request that left late does not bunch up with the ones
    planned after it."""
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
    assert all(later - first >= 1.03 - 1e-9
               for first, later in zip(times, times[10:], strict=False))
    assert all(b - a >= 0.0515 - 1e-9 for a, b in itertools.pairwise(times))


async def test_a_fractional_rate_still_lets_requests_through(
    clock: trio.testing.MockClock,
) -> None:
    limiter = RateLimiter(0.5)
    start = trio.current_time()
    for _ in range(3):
        await limiter.acquire()
    assert round(trio.current_time() - start, 6) == 4.12  # one every 2.06 s


def test_the_margin_must_be_a_fraction_of_the_window() -> None:
    for margin in (-0.01, 1.0):
        with pytest.raises(ValueError, match="margin"):
            RateLimiter(10.0, margin=margin)


async def test_the_slot_is_taken_when_the_headers_go_out_not_before_connecting(
    clock: trio.testing.MockClock,
) -> None:
    """What happens before the headers are written (connecting, a TLS handshake) does not
    count: the limiter's clock for a request starts at httpx's send_request_headers."""
    limiter = RateLimiter(10.0)
    async with limiter.paced() as trace:
        await limiter.acquire()  # someone else's request leaves at 0
        await trace("connection.connect_tcp.started", {})
        await trio.sleep(0.5)  # a slow connection: by now the next slot (0.103) is long past
        await trace("connection.connect_tcp.complete", {})
        start = trio.current_time()
        await trace("http11.send_request_headers.started", {})
        assert trio.current_time() == start  # it leaves now, no wait
    await limiter.acquire()  # and the next one waits a whole interval after it
    assert round(trio.current_time() - start, 6) == 0.103


async def test_only_two_seconds_of_requests_wait_with_a_connection_open(
    clock: trio.testing.MockClock,
) -> None:
    """A storm does not open a connection per session at once: past two seconds' worth of
    requests (20 at 10/s), the rest wait before connecting, and each one that leaves, or that
    gives up before sending, lets the next one in."""
    limiter = RateLimiter(10.0)
    inside = 0
    most = 0
    sent: list[float] = []

    async def one(n: int) -> None:
        nonlocal inside, most
        with contextlib.suppress(OSError):
            async with limiter.paced() as trace:
                inside += 1
                most = max(most, inside)
                await trio.sleep(0.01)  # connecting
                inside -= 1
                if n % 7 == 3:
                    raise OSError("connection refused")  # never reaches the headers
                await trace("http11.send_request_headers.started", {})
                sent.append(trio.current_time())
                await trio.sleep(5.0)  # waiting for the answer holds no place

    async with trio.open_nursery() as nursery:
        for n in range(100):
            nursery.start_soon(one, n)
    assert most == 20
    assert len(sent) == 100 - 14
    assert all(b - a >= 0.103 - 1e-9 for a, b in itertools.pairwise(sorted(sent)))


async def test_http_requests_reach_the_server_paced(clock: trio.testing.MockClock) -> None:
    """Through httpx: requests of two sessions at one per second arrive 1.03 s apart."""
    arrived: list[float] = []

    async def serve(stream: trio.SocketStream) -> None:
        request = b""
        while b"\r\n\r\n" not in request:
            request += await stream.receive_some(65536)
        arrived.append(trio.current_time())
        await stream.send_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}")

    async def call(caller: HttpCaller, url: str) -> None:
        try:
            answer = await caller.call(HttpRequest("login", 1, url, {}, per_second=1.0))
            assert isinstance(answer, HttpAnswered) and answer.status == 200
        finally:
            await caller.aclose()

    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(functools.partial(trio.serve_tcp, serve, 0,
                                                          host="127.0.0.1"))
        url = f"http://127.0.0.1:{listeners[0].socket.getsockname()[1]}/login"
        limiters = RateLimiters()  # the gateway's, shared by its sessions' callers
        with trio.fail_after(10):
            async with trio.open_nursery() as calls:
                for _ in range(3):
                    calls.start_soon(call, HttpCaller(None, limiter_for=limiters), url)
        nursery.cancel_scope.cancel()
    gaps = [b - a for a, b in itertools.pairwise(sorted(arrived))]
    assert len(gaps) == 2 and all(1.03 <= gap < 1.04 for gap in gaps)


async def test_one_limiter_per_host_and_rate_in_a_gateway() -> None:
    async with open_gateway() as gateway, open_gateway() as other:
        limiter_for = gateway.coordinator.rate_limiter
        assert limiter_for("api.example", 10.0) is limiter_for("API.example", 10.0)
        assert limiter_for("api.example", 10.0) is not limiter_for("other.example", 10.0)
        assert limiter_for("api.example", 10.0) is not other.coordinator.rate_limiter(
            "api.example", 10.0)


class _NoCoordinator:
    """A fleet limiter whose coordinator is gone: its hook raises where the slot is taken."""

    @contextlib.asynccontextmanager
    async def paced(self) -> AsyncIterator[TraceHook]:
        async def trace(event: str, info: dict[str, Any]) -> None:
            if event.endswith(".send_request_headers.started"):
                raise CoordinatorUnavailable("Redis at redis://127.0.0.1:6379/0 is unreachable")

        yield trace


async def test_a_limiter_without_its_coordinator_fails_the_call_unsent() -> None:
    """httpx lets the hook's exception through unwrapped; the caller makes it an HttpFailed
    that names the coordinator, and the server sees a connection but never a request."""
    received: list[bytes] = []

    async def serve(stream: trio.SocketStream) -> None:
        received.append(await stream.receive_some(65536))

    caller = HttpCaller(None, limiter_for=lambda host, rate: _NoCoordinator())
    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(functools.partial(trio.serve_tcp, serve, 0,
                                                          host="127.0.0.1"))
        url = f"http://127.0.0.1:{listeners[0].socket.getsockname()[1]}/login"
        try:
            answer = await caller.call(HttpRequest("login", 3, url, {"password": "Zq-secret"},
                                                   per_second=5.0))
        finally:
            await caller.aclose()
        await trio.testing.wait_all_tasks_blocked()
        nursery.cancel_scope.cancel()
    assert isinstance(answer, HttpFailed) and answer.serial == 3 and not answer.timed_out
    assert answer.detail == (
        "not sent: the fleet coordinator (Redis) is unreachable, so no rate-limit slot could "
        "be had (Redis at redis://127.0.0.1:6379/0 is unreachable)")
    assert received in ([], [b""])


async def test_a_refused_connection_is_a_failure_not_an_exception() -> None:
    caller = HttpCaller(None, limiter_for=RateLimiters())
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

    caller = HttpCaller(None, limiter_for=RateLimiters(), max_body=4096)
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
