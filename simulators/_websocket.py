"""What every WebSocket simulator shares: listening on loopback (optionally TLS), accepting the
handshake while keeping hold of the TCP stream, serving a connection with one ordered writer,
and ending it in one of the ways a broker does (close frame, dropped TCP connection, or
silence)."""

from __future__ import annotations

import math
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import partial
from typing import Final, Literal, Self, TypeVar

import trio
import trio_websocket

#: Seconds a new TCP connection gets to complete its WebSocket handshake.
HANDSHAKE_TIMEOUT: Final = 10.0
#: Seconds to wait for the client's half of a closing handshake.
CLOSE_TIMEOUT: Final = 5.0
#: Seconds a silenced connection is held open, mute, before the simulator lets it go.
STALL_SECONDS: Final = 600.0
NORMAL_CLOSURE: Final = 1000
#: Seconds every login (QST login, CQG logon or restore, Firstock socket connect) takes to check,
#: at least. Long enough (even in real time, on loopback) for a client that sends its next message
#: right behind the login, without waiting for the answer, to be caught; under an autojumping
#: MockClock it costs nothing. Benchmarks set a simulator's ``login_settle`` to 0, so that what
#: they time is the client and the wire, not this pause.
LOGIN_SETTLE: Final = 0.01

#: How a connection ends: a close code and reason, "drop" (no close frame), "stall" (go silent
#: but keep the TCP connection open), or None when the client went first.
Ending = tuple[int, str | None] | Literal["drop", "stall"] | None


class LoopbackServer:
    """Listening and addressing for a simulator; subclasses serve each accepted TCP stream."""

    name = "simulator"

    def __init__(self) -> None:
        self.host = "127.0.0.1"
        self.port = 0
        self.tls = False
        self.login_settle = LOGIN_SETTLE

    @property
    def url(self) -> str:
        """``ws://host:port/`` (``wss://`` when serving TLS), once serving."""
        if not self.port:
            raise RuntimeError(f"the {self.name} simulator is not serving yet")
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{'wss' if self.tls else 'ws'}://{host}:{self.port}/"

    async def serve(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        ssl_context: ssl.SSLContext | None = None,
        task_status: trio.TaskStatus[Self] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Accept connections until cancelled; ``task_status.started(self)`` once listening.

        With ``ssl_context`` (a server context holding a certificate) it speaks ``wss://``.
        """
        tcp = await trio.open_tcp_listeners(port, host=host)
        if port == 0:
            # A name like "localhost" may bind IPv4 and IPv6 on two different free ports: keep one.
            for extra in tcp[1:]:
                await extra.aclose()
            tcp = tcp[:1]
        self.host = host
        self.port = tcp[0].socket.getsockname()[1]
        self.tls = ssl_context is not None
        listeners: list[trio.abc.Listener[trio.abc.Stream]] = list(tcp)
        if ssl_context is not None:
            listeners = [trio.SSLListener(t, ssl_context, https_compatible=True) for t in tcp]
        try:
            async with trio.open_nursery() as nursery:
                await nursery.start(trio.serve_listeners, self._handle_stream, listeners)
                task_status.started(self)
        finally:
            self.port = 0

    async def _handle_stream(self, stream: trio.abc.Stream) -> None:
        raise NotImplementedError


S = TypeVar("S", bound=LoopbackServer)


@asynccontextmanager
async def running(
    server: S, host: str, port: int, ssl_context: ssl.SSLContext | None = None
) -> AsyncIterator[S]:
    """Serve ``server`` for the duration of the block."""
    try:
        async with trio.open_nursery() as nursery:
            await nursery.start(partial(server.serve, host, port, ssl_context=ssl_context))
            try:
                yield server
            finally:
                nursery.cancel_scope.cancel()
    except BaseExceptionGroup as group:
        # A server keeps its failures to itself, so this came from the caller's block: hand it
        # back as it was raised.
        if len(group.exceptions) == 1:
            raise group.exceptions[0] from None
        raise


async def handshake(
    nursery: trio.Nursery, stream: trio.abc.Stream
) -> trio_websocket.WebSocketConnection | None:
    """Accept the WebSocket handshake, or None if the client does not complete one in time.

    Built on ``wrap_server_stream`` rather than ``serve_websocket`` so that the simulator keeps
    hold of the TCP stream, which it needs to drop a connection without a close frame.
    """
    with trio.move_on_after(HANDSHAKE_TIMEOUT):
        request = await trio_websocket.wrap_server_stream(nursery, stream)
        try:
            return await request.accept()
        except trio_websocket.ConnectionClosed:
            return None  # gone before the handshake finished
    # Also a client that does not speak HTTP: trio-websocket answers it "400 Bad Request" and
    # closes the stream without a public signal, so this waits out the timeout.
    return None


async def finish(
    ws: trio_websocket.WebSocketConnection, stream: trio.abc.Stream, ending: Ending
) -> None:
    """End a connection as ``ending`` says ("stall": the caller keeps the stream open)."""
    if ending == "drop":
        # No public "abort" in trio-websocket, but closing the TCP stream from under the
        # WebSocket is exactly a dropped connection: the client sees 1006, and the reader task
        # notices and exits.
        await trio.aclose_forcefully(stream)
        return
    if ending == "stall":
        return
    code, reason = ending or (NORMAL_CLOSURE, None)
    with trio.move_on_after(CLOSE_TIMEOUT):
        await ws.aclose(code, reason)


@dataclass(frozen=True)
class Close:
    """Queued behind the frames that must go out before a connection ends."""

    ending: Ending


class QueuedConnection:
    """One served WebSocket: a reader task, one ordered writer (everything the server says goes
    through one queue, so frames leave in the order they were decided), and the ways it ends.

    Subclasses implement ``_read_loop`` and ``_ending_now`` (stop listening, leave whatever
    registry counted the connection), and may override ``_started`` (runs before the reader).
    """

    def __init__(self, ws: trio_websocket.WebSocketConnection) -> None:
        self._ws = ws
        self._ending: Ending = None
        self._ended = False
        self._nursery: trio.Nursery | None = None
        self._out_tx, self._out_rx = trio.open_memory_channel[bytes | str | Close](math.inf)

    async def run(self) -> Ending:
        """Serve the connection; returns how the server should end it."""
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                self._spawn(self._write_loop)
                self._started()
                self._spawn(self._read_loop)
        finally:
            self._ended = True
            self._ending_now()
        return self._ending

    def abort(self, how: Literal["drop", "stall"]) -> bool:
        """Drop the TCP connection, or go silent on it, without a word. False if already ending."""
        if self._ended:
            return False
        self._end(how)
        return True

    # -- for subclasses -------------------------------------------------------------------------

    def _started(self) -> None:
        """Whatever happens as soon as the handshake is done."""

    async def _read_loop(self) -> None:
        raise NotImplementedError

    def _ending_now(self) -> None:
        raise NotImplementedError

    # -- plumbing -------------------------------------------------------------------------------

    def _spawn(self, fn: Callable[..., Awaitable[None]], *args: object) -> None:
        assert self._nursery is not None
        self._nursery.start_soon(self._guarded, fn, *args)

    async def _guarded(self, fn: Callable[..., Awaitable[None]], *args: object) -> None:
        try:
            await fn(*args)
        except trio_websocket.ConnectionClosed:
            self._end(None)

    def _end(self, how: Ending) -> None:
        """Stop every task of this connection; the first caller decides how it ends."""
        if not self._ended:
            self._ended = True
            self._ending = how
        self._ending_now()
        if self._nursery is not None:
            self._nursery.cancel_scope.cancel()

    def _post(self, item: bytes | str | Close) -> None:
        if not self._ended:
            self._out_tx.send_nowait(item)  # unbounded: never blocks

    async def _write_loop(self) -> None:
        async for item in self._out_rx:
            if isinstance(item, Close):
                self._end(item.ending)
                return
            await self._ws.send_message(item)
