"""REST calls for brokers that log in over HTTPS or take the application's calls there
(``rest_calls``): one POST per ``HttpRequest``.

The body may hold credentials, so nothing here logs or repeats it; failures are described by
what went wrong on the way (refused, TLS, timed out), never by what was sent. Every request
takes a slot from its gateway's rate limiter for its host just before it is written, so a
morning login of hundreds of accounts never makes the broker answer 429 on our account.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from typing import Any, Protocol

import httpx
import trio

from brokergate.engine._errors import CoordinatorUnavailable
from brokergate.engine._metrics import SessionMeter
from brokergate.engine._transport import (
    describe_refusal,
    plaintext_problem,
    root_cause,
    tls_context,
)
from brokergate.machines import HttpAnswered, HttpFailed, HttpRequest

#: Seconds added to the broker's one-second window: the spread of trip times the limiter
#: absorbs, and what it costs (sustained rate ``per_second / (1 + MARGIN)``). See RateLimiter.
MARGIN = 0.03

#: httpx's ``trace`` request extension, as an async client calls it: (event name, details).
TraceHook = Callable[[str, dict[str, Any]], Awaitable[None]]


class RateLimiter:
    """At most ``per_second`` requests per second to one host, counted the way the broker counts
    them: a sliding one-second window over the times the requests *arrive*.

    Why not simply one request every ``1 / per_second`` seconds: the broker's window holds
    ``per_second`` requests, so request ``i + per_second`` must arrive at least one second after
    request ``i``. Sent exactly one second apart, they arrive less than a second apart as soon
    as the later one's trip is a little shorter than the earlier one's, and the broker answers
    429. So any ``per_second + 1`` requests here leave at least ``1 + margin`` seconds apart,
    and the broker never sees too many unless two trips differ by more than ``margin`` seconds.

    That margin is all the rate given up: sustained, the limiter lets ``per_second / (1 +
    margin)`` requests through, 97.1% of the limit with the default 0.03 s. It is the knob
    between throughput and safety: it must cover the spread of trip times, which includes the
    broker's own hiccups (it timestamps a request when it gets to it, not when the packet came
    in): a few milliseconds between two busy processes on loopback, more on a congested route
    or behind a server that pauses. Each 0.01 s costs about 1% of the rate. A request that still
    gets a 429 is retried after its Retry-After by the broker's policy; it is not lost.

    "Leave" must mean the moment the request's first byte is written, not the moment a task
    was allowed to start it: what lies between (opening a connection, a TLS handshake, other
    sessions' work on the same event loop) varies from a millisecond to tens of them when
    hundreds of sessions start at once, and it would count as trip time. ``HttpCaller`` takes
    the slot from httpx's ``trace`` hook, on an open connection just before the headers go out
    (see ``paced``).

    Two rules, both on the times requests really leave (``trio.sleep_until`` wakes a little
    late, more so when the process is busy):

    - spacing: requests follow a schedule ``interval = (1 + margin) / per_second`` apart, so
      there are no bursts. The schedule absorbs a request's lateness up to half an interval (the
      next one keeps its planned slot), because pushing every later slot back by each small
      wake-up delay would lose a millisecond per request, several percent of the rate. A request
      that left later than that moves the schedule: after a stall the backlog leaves at the
      normal pace, not in a burst to catch up, and no two requests leave closer than half an
      interval.
    - window: no request leaves within ``1 + margin`` seconds of the one ``per_second`` places
      before it, so a late request cannot eat into the margin of the ones after it.

    Waiters are served in order (``trio.Lock`` is fair). A fraction of a request per second
    still lets one through per window.
    """

    __slots__ = ("_admission", "_count", "_interval", "_lock", "_next", "_sent", "_slack",
                 "_window")

    def __init__(self, per_second: float, *, margin: float = MARGIN) -> None:
        if not per_second > 0:
            raise ValueError("per_second must be positive")
        if not 0 <= margin < 1:
            raise ValueError("margin must be at least 0 and under 1 second")
        self._window = 1.0 + margin
        self._interval = self._window / per_second
        #: How much of a request's lateness the schedule forgives.
        self._slack = self._interval / 2
        #: How many may leave within one window (a fraction below one still lets one through).
        self._count = max(1, math.floor(per_second))
        #: When the last ``_count`` requests really left, oldest first.
        self._sent: deque[float] = deque(maxlen=self._count)
        #: The next free slot on the schedule.
        self._next = -math.inf
        self._lock = trio.Lock()
        #: Requests between ``paced`` and their slot: about two seconds' worth.
        self._admission = trio.Semaphore(2 * self._count)

    async def acquire(self) -> None:
        async with self._lock:  # the holder alone moves the schedule: one wait is enough
            slot = max(trio.current_time(), self._next)
            if len(self._sent) == self._count:
                slot = max(slot, self._sent[0] + self._window)
            await trio.sleep_until(slot)
            left = trio.current_time()
            self._sent.append(left)
            self._next = max(slot, left - self._slack) + self._interval

    def paced(self) -> AbstractAsyncContextManager[TraceHook]:
        """Around one HTTP request: yield the ``trace`` extension to give httpx, which waits
        for a slot just before the request's headers are written.

        Before that, the request waits here until fewer than two seconds' worth of requests
        are between this point and their slot, so that a storm of thousands of sessions does
        not open thousands of connections at once that then sit idle (a broker may close an
        idle one) until their turn comes.
        """
        return admitted_slot(self._admission, lambda info: self.acquire())


@asynccontextmanager
async def admitted_slot(admission: trio.Semaphore,
                        take: Callable[[dict[str, Any]], Awaitable[object]]
                        ) -> AsyncIterator[TraceHook]:
    """What every limiter's ``paced`` is: wait for ``admission``, then yield the httpx
    ``trace`` hook that takes a slot (``take``, given httpx's details of the request) just
    before the request's headers are written, and gives the admission back then, or when the
    request never got that far (it failed to connect, was cancelled, got no slot)."""
    await admission.acquire()
    admitted = True

    async def trace(event: str, info: dict[str, Any]) -> None:
        nonlocal admitted
        if event.endswith(".send_request_headers.started"):
            await take(info)
            if admitted:
                admitted = False
                admission.release()

    try:
        yield trace
    finally:
        if admitted:
            admission.release()


#: The rate limiter for a host at a rate (the gateway's: shared by all its sessions).
class Pacer(Protocol):
    """What paces requests to one REST host: ``RateLimiter`` in a process, a limiter kept in
    the coordinator's store across a fleet."""

    def paced(self) -> AbstractAsyncContextManager[TraceHook]:
        """Around one HTTP request: yield the ``trace`` extension that waits for its slot just
        before its headers are written. A limiter that cannot grant one (its coordinator is
        unreachable) raises ``CoordinatorUnavailable`` there, and the request is not sent."""


LimiterFor = Callable[[str, float], Pacer]


class RateLimiters:
    """One ``RateLimiter`` per (host, rate), made on first use: what a gateway's sessions share."""

    __slots__ = ("_limiters",)

    def __init__(self) -> None:
        self._limiters: dict[tuple[str, float], RateLimiter] = {}

    def __len__(self) -> int:
        return len(self._limiters)

    def __call__(self, host: str, per_second: float) -> RateLimiter:
        return self._limiters.setdefault((host.lower(), per_second), RateLimiter(per_second))


def describe_http_error(exc: httpx.HTTPError) -> str:
    """Why a request got no answer, in one line (never the request's body)."""
    if isinstance(exc, httpx.TimeoutException):
        what = {
            httpx.ConnectTimeout: "connecting",
            httpx.ReadTimeout: "waiting for the answer",
            httpx.WriteTimeout: "sending",
            httpx.PoolTimeout: "waiting for a connection",
        }.get(type(exc), "the request")
        return f"timed out {what}"
    cause = root_cause(exc)
    refusal = describe_refusal(cause)
    if refusal is not None:
        return refusal
    if isinstance(exc, httpx.ConnectError):
        return f"could not connect: {cause}"
    return f"{type(exc).__name__}: {exc}"


class _Borrowed(httpx.AsyncBaseTransport):
    """A transport the session uses but does not own: closing the session's client leaves it
    open for the gateway's other sessions (the gateway's owner closes it)."""

    def __init__(self, transport: httpx.AsyncBaseTransport) -> None:
        self._transport = transport

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        return await self._transport.handle_async_request(request)

    async def aclose(self) -> None:
        pass


def _timed(trace: TraceHook, meter: SessionMeter, queued: float) -> TraceHook:
    """``trace``, telling ``meter`` how long the request waited for its rate-limit slot (from
    ``queued``, before its admission, to the slot)."""

    async def timed(event: str, info: dict[str, Any]) -> None:
        await trace(event, info)
        if event.endswith(".send_request_headers.started"):
            meter.rate_wait(trio.current_time() - queued)

    return timed


class HttpCaller:
    """One session's HTTP client (keep-alive to the broker), closed with the session.

    An answer's body is read as a stream and never beyond ``max_body`` bytes (the session's
    ``max_frame_size``): a larger one is reported as such (``HttpAnswered.body_limit``) with an
    empty body, so a broker cannot make the process hold an arbitrary amount of memory.
    """

    __slots__ = ("_ca_file", "_client", "_limiter_for", "_max_body", "_meter", "_transport")

    def __init__(self, ca_file: str | None, *, limiter_for: LimiterFor, max_body: int = 1 << 20,
                 transport: httpx.AsyncBaseTransport | None = None,
                 meter: SessionMeter | None = None) -> None:
        self._ca_file = ca_file
        self._meter = meter
        self._client: httpx.AsyncClient | None = None
        self._max_body = max_body
        self._limiter_for = limiter_for
        self._transport = transport

    def _get(self) -> httpx.AsyncClient:
        if self._client is None:
            if self._transport is None:
                self._client = httpx.AsyncClient(verify=tls_context(self._ca_file),
                                                 follow_redirects=False)
            else:  # the gateway's, shared: closing this client must leave it open
                self._client = httpx.AsyncClient(transport=_Borrowed(self._transport),
                                                 follow_redirects=False)
        return self._client

    async def call(self, request: HttpRequest) -> HttpAnswered | HttpFailed:
        # Plaintext only to loopback addresses, however the URL names its host.
        problem = await plaintext_problem(request.url)
        if problem is not None:
            return HttpFailed(request.call, request.serial, problem)
        host = httpx.URL(request.url).host
        try:
            async with AsyncExitStack() as stack:
                extensions: dict[str, TraceHook] = {}
                if request.per_second is not None:
                    pacing = self._limiter_for(host, request.per_second).paced()
                    queued = trio.current_time()
                    trace = await stack.enter_async_context(pacing)
                    extensions["trace"] = (trace if self._meter is None
                                           else _timed(trace, self._meter, queued))
                response = await stack.enter_async_context(self._get().stream(
                    "POST", request.url, json=request.body,
                    timeout=httpx.Timeout(request.timeout), extensions=extensions))
                if self._meter is not None:
                    self._meter.sent += 1
                body = await self._read_body(response)
        except httpx.HTTPError as exc:
            return HttpFailed(request.call, request.serial, describe_http_error(exc),
                              timed_out=isinstance(exc, httpx.TimeoutException))
        except CoordinatorUnavailable as exc:  # raised by a fleet limiter's trace hook, unwrapped
            return HttpFailed(request.call, request.serial,
                              f"not sent: the fleet coordinator (Redis) is unreachable, so no "
                              f"rate-limit slot could be had ({exc})")
        if self._meter is not None:
            self._meter.received += 1
            if response.status_code == 429:
                self._meter.rate_limited += 1
        return HttpAnswered(request.call, request.serial, response.status_code,
                            body if body is not None else b"",
                            response.headers.get("retry-after"),
                            body_limit=None if body is not None else self._max_body)

    async def _read_body(self, response: httpx.Response) -> bytes | None:
        """The body, or None once it runs past ``max_body`` bytes (leaving the stream then
        closes the connection rather than read the rest)."""
        limit = self._max_body
        declared = response.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            return None
        body = bytearray()
        async for chunk in response.aiter_bytes():
            body += chunk
            if len(body) > limit:
                return None
        return bytes(body)

    async def aclose(self) -> None:
        if self._client is not None:
            client, self._client = self._client, None
            with trio.CancelScope(shield=True), trio.move_on_after(1.0):
                await client.aclose()
