"""REST calls for brokers that log in over HTTPS (Firstock): one POST per ``HttpRequest``.

The body may hold credentials, so nothing here logs or repeats it; failures are described by
what went wrong on the way (refused, TLS, timed out), never by what was sent. Every request
first takes a slot from the process's rate limiter for its host, so a morning login of
hundreds of accounts never makes the broker answer 429 on our account.
"""

from __future__ import annotations

import math
import ssl
from collections import deque

import httpx
import trio
from trio.lowlevel import RunVar

from engine._transport import plaintext_problem, root_cause, tls_context
from machines import HttpAnswered, HttpFailed, HttpRequest


class RateLimiter:
    """At most ``per_second`` requests per second to one host, measured as the broker measures
    them: on the times requests really leave, not the times they were planned for.

    Requests are spaced evenly (no bursts: a burst at a window's edge is what gets answered
    429), and no more than ``per_second`` of them leave within any ``1 + margin`` seconds. The
    margin absorbs what happens between leaving here and arriving there: a request that left
    late because the process was busy cannot bunch up with the ones after it, and the jitter of
    the way to the broker cannot push one request too many into its one-second window. Waiters
    are served in order (``trio.Lock`` is fair).
    """

    __slots__ = ("_count", "_interval", "_lock", "_sent", "_window")

    def __init__(self, per_second: float, *, margin: float = 0.05) -> None:
        if not per_second > 0:
            raise ValueError("per_second must be positive")
        self._window = 1.0 + margin
        self._interval = self._window / per_second
        #: How many may leave within one window (a fraction below one still lets one through).
        self._count = max(1, math.floor(per_second))
        #: When the last ``_count`` requests really left, oldest first.
        self._sent: deque[float] = deque(maxlen=self._count)
        self._lock = trio.Lock()

    async def acquire(self) -> None:
        async with self._lock:  # the holder alone adds to _sent: one wait is enough
            slot = trio.current_time()
            if self._sent:
                slot = max(slot, self._sent[-1] + self._interval)
            if len(self._sent) == self._count:
                slot = max(slot, self._sent[0] + self._window)
            await trio.sleep_until(slot)
            self._sent.append(trio.current_time())


_LIMITERS: RunVar[dict[tuple[str, float], RateLimiter]] = RunVar("brokergate_rate_limiters")


def limiter_for(host: str, per_second: float) -> RateLimiter:
    """The rate limiter every session of this trio run shares for ``host``."""
    try:
        limiters = _LIMITERS.get()
    except LookupError:
        limiters = {}
        _LIMITERS.set(limiters)
    return limiters.setdefault((host.lower(), per_second), RateLimiter(per_second))


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
    if isinstance(cause, ssl.SSLCertVerificationError):
        return f"TLS certificate verification failed: {cause.verify_message}"
    if isinstance(cause, ssl.SSLError):
        return f"TLS handshake failed: {cause.reason or cause}"
    if isinstance(cause, ConnectionRefusedError):
        return "connection refused"
    if isinstance(exc, httpx.ConnectError):
        return f"could not connect: {cause}"
    return f"{type(exc).__name__}: {exc}"


class HttpCaller:
    """One session's HTTP client (keep-alive to the broker), closed with the session.

    An answer's body is read as a stream and never beyond ``max_body`` bytes (the session's
    ``max_frame_size``): a larger one is reported as such (``HttpAnswered.body_limit``) with an
    empty body, so a broker cannot make the process hold an arbitrary amount of memory.
    """

    __slots__ = ("_ca_file", "_client", "_max_body")

    def __init__(self, ca_file: str | None, *, max_body: int = 1 << 20) -> None:
        self._ca_file = ca_file
        self._client: httpx.AsyncClient | None = None
        self._max_body = max_body

    def _get(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(verify=tls_context(self._ca_file),
                                             follow_redirects=False)
        return self._client

    async def call(self, request: HttpRequest) -> HttpAnswered | HttpFailed:
        # Plaintext only to loopback addresses, however the URL names its host.
        problem = await plaintext_problem(request.url)
        if problem is not None:
            return HttpFailed(request.call, request.serial, problem)
        host = httpx.URL(request.url).host
        if request.per_second is not None:
            await limiter_for(host, request.per_second).acquire()
        try:
            async with self._get().stream(
                "POST", request.url, json=request.body, timeout=httpx.Timeout(request.timeout)
            ) as response:
                body = await self._read_body(response)
        except httpx.HTTPError as exc:
            return HttpFailed(request.call, request.serial, describe_http_error(exc),
                              timed_out=isinstance(exc, httpx.TimeoutException))
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
