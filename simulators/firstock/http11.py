"""Serving HTTP/1.1 on one trio stream with h11: requests in, replies out, keep-alive between.

The Firstock API is plain JSON over HTTP, and the clients under test (httpx, requests...) pool
their connections, so the simulator must be a real HTTP/1.1 server: keep-alive, Content-Length
framing, a clean 400 for garbage. h11 does the protocol; this module only moves bytes and
decides when a connection ends. What the requests mean is the caller's business (a handler).
"""

from __future__ import annotations

import contextlib
import dataclasses
import email.utils
import http
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Final

import h11
import trio

log = logging.getLogger(__name__)

#: Seconds an idle keep-alive connection waits for its next request (nginx's default): long
#: enough that a client's pooled connection is normally still there when it comes back.
IDLE_TIMEOUT: Final = 75.0
#: Seconds a client gets to send a request's body once its head has arrived.
BODY_TIMEOUT: Final = 30.0
#: The largest request head and body accepted, in bytes (logins are a few hundred).
MAX_HEAD: Final = 16 * 1024
MAX_BODY: Final = 1024 * 1024
RECEIVE_BYTES: Final = 64 * 1024
SERVER_NAME: Final = "firstock-simulator"


@dataclass(frozen=True)
class Request:
    """One complete HTTP request, as the handler sees it."""

    method: str
    #: The path, without the query string.
    path: str
    query: str
    #: Header names are lowercase.
    headers: tuple[tuple[str, str], ...]
    body: bytes

    def header(self, name: str) -> str | None:
        """The first value of a header (name in any case), or None."""
        wanted = name.lower()
        return next((value for key, value in self.headers if key == wanted), None)


@dataclass(frozen=True)
class Reply:
    """What to answer: status, body and the headers that matter here."""

    status: int
    body: bytes = b""
    content_type: str = "application/json"
    headers: tuple[tuple[str, str], ...] = ()
    #: The reason phrase; None means the standard one ("Server error" is a Firstock quirk).
    reason: str | None = None
    #: Close the connection after this reply.
    close: bool = False


Handler = Callable[[Request], Awaitable[Reply]]
#: Builds the reply to a request HTTP itself could not carry: (status, what went wrong).
Refusal = Callable[[int, str], Reply]


class _Refused(Exception):
    """The request cannot be served: answer ``status`` and close."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class HttpConnection:
    """Serves requests on one stream, one at a time, until either side closes it.

    Errors on the wire end the connection quietly; a handler that raises is a simulator bug,
    logged and answered 500, never allowed out (the server must outlive any client).
    """

    def __init__(self, stream: trio.abc.Stream, handler: Handler, refusal: Refusal,
                 on_malformed: Callable[[], None] = lambda: None) -> None:
        self._stream = stream
        self._handler = handler
        self._refusal = refusal
        self._on_malformed = on_malformed
        self._conn = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEAD)

    async def run(self) -> None:
        # A client that goes away mid-exchange has nothing left to be told.
        with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
            await self._serve()

    async def _serve(self) -> None:
        while True:
            try:
                request = await self._read_request()
            except h11.RemoteProtocolError as exc:
                self._on_malformed()
                await self._refuse(exc.error_status_hint, f"malformed HTTP request: {exc}")
                return
            except _Refused as refused:
                self._on_malformed()
                await self._refuse(refused.status, refused.message)
                return
            if request is None:
                return
            try:
                reply = await self._handler(request)
            except Exception:
                log.exception("Firstock simulator: the handler failed on %s %s",
                              request.method, request.path)
                reply = dataclasses.replace(
                    self._refusal(500, "the simulator failed on this request"), close=True)
            await self._send(reply, head_only=request.method == "HEAD")
            if self._conn.our_state is not h11.DONE or self._conn.their_state is not h11.DONE:
                return  # Connection: close from either side, or an unread body
            self._conn.start_next_cycle()

    # -- reading --------------------------------------------------------------------------------

    async def _next_event(self) -> h11.Event:
        while True:
            event = self._conn.next_event()
            if event is h11.NEED_DATA:
                self._conn.receive_data(bytes(await self._stream.receive_some(RECEIVE_BYTES)))
                continue
            if event is h11.PAUSED:  # cannot happen: a new cycle starts only once one is done
                raise _Refused(500, "request pipelining out of step")
            assert isinstance(event, h11.Event)
            return event

    async def _read_request(self) -> Request | None:
        """The next request, or None when the client closed or idled out between requests."""
        head: h11.Request | None = None
        with trio.move_on_after(IDLE_TIMEOUT):
            event = await self._next_event()
            if isinstance(event, h11.ConnectionClosed):
                return None
            if not isinstance(event, h11.Request):
                raise _Refused(400, f"expected a request, got {type(event).__name__}")
            head = event
        if head is None:
            return None  # idle for too long: close without a word, as servers do
        length = _content_length(head)
        if length is not None and length > MAX_BODY:
            raise _Refused(413, f"the body is larger than {MAX_BODY} bytes")
        if self._conn.they_are_waiting_for_100_continue:
            await self._write(h11.InformationalResponse(status_code=100, headers=[]))
        body = bytearray()
        with trio.move_on_after(BODY_TIMEOUT) as waited:
            while True:
                event = await self._next_event()
                if isinstance(event, h11.Data):
                    body += event.data
                    if len(body) > MAX_BODY:
                        raise _Refused(413, f"the body is larger than {MAX_BODY} bytes")
                elif isinstance(event, h11.EndOfMessage):
                    break
                elif isinstance(event, h11.ConnectionClosed):
                    return None  # gone halfway through its own request
        if waited.cancelled_caught:
            raise _Refused(408, "the request body did not arrive in time")
        target = head.target.decode("ascii", errors="replace")
        path, _, query = target.partition("?")
        headers = tuple((k.decode("latin-1").lower(), v.decode("latin-1"))
                        for k, v in head.headers)
        return Request(head.method.decode("ascii", errors="replace"), path, query, headers,
                       bytes(body))

    # -- writing --------------------------------------------------------------------------------

    async def _refuse(self, status: int, message: str) -> None:
        """Answer a request that could not be read (if HTTP still allows an answer), then end."""
        if self._conn.our_state not in (h11.IDLE, h11.SEND_RESPONSE):
            return
        # If h11 will not frame an answer in this state, closing says enough.
        with contextlib.suppress(h11.LocalProtocolError):
            await self._send(dataclasses.replace(self._refusal(status, message), close=True))

    async def _send(self, reply: Reply, *, head_only: bool = False) -> None:
        headers = [
            ("content-type", reply.content_type),
            ("content-length", str(len(reply.body))),
            ("date", email.utils.formatdate(usegmt=True)),
            ("server", SERVER_NAME),
            *reply.headers,
        ]
        if reply.close:
            headers.append(("connection", "close"))
        reason = reply.reason if reply.reason is not None else _phrase(reply.status)
        await self._write(h11.Response(status_code=reply.status, headers=headers,
                                       reason=reason.encode("latin-1")))
        if reply.body and not head_only:
            await self._write(h11.Data(data=reply.body))
        await self._write(h11.EndOfMessage())

    async def _write(self, event: h11.Event) -> None:
        data = self._conn.send(event)
        if data:
            await self._stream.send_all(data)


def _content_length(head: h11.Request) -> int | None:
    for name, value in head.headers:
        if name == b"content-length":
            return int(value)  # h11 has checked it is a number
    return None


def _phrase(status: int) -> str:
    try:
        return http.HTTPStatus(status).phrase
    except ValueError:
        return "Unknown"
