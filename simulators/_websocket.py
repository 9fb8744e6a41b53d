"""What every WebSocket simulator shares: listening on loopback (optionally TLS), serving a
connection with one ordered writer, and ending it in one of the ways a broker does (close
frame, dropped TCP connection, or silence). ``_serving`` runs one TCP connection of the QST
and CQG simulators from its handshake to its end with these."""

from __future__ import annotations

import math
import ssl
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from functools import partial
from typing import Final, Literal, Protocol, Self, TypeVar

import trio
import trio_websocket
import wsproto

#: Seconds a new TCP connection gets to complete its WebSocket handshake.
HANDSHAKE_TIMEOUT: Final = 10.0
#: Seconds to wait for the client's half of a closing handshake.
CLOSE_TIMEOUT: Final = 5.0
#: Seconds a control method (drop, close, log_off...) waits for the connections it ended to be
#: gone.
CONTROL_WAIT: Final = CLOSE_TIMEOUT + 1.0
NORMAL_CLOSURE: Final = 1000
#: Seconds every login (QST login, CQG logon or restore, Firstock socket connect) takes to check,
#: at least. Long enough (even in real time, on loopback) for a client that sends its next message
#: right behind the login, without waiting for the answer, to be caught; under an autojumping
#: MockClock it costs nothing. Benchmarks set a simulator's ``login_settle`` to 0, so that what
#: they time is the client and the wire, not this pause.
LOGIN_SETTLE: Final = 0.01

#: Seconds a connection cut off for reading too slowly waits for its client to take the frame
#: that was being written (it goes out whole, then the last words and the close), before the
#: simulator gives up and drops the TCP connection.
CUT_OFF_GRACE: Final = 30.0

#: How a connection ends: a close code and reason, "drop" (no close frame), "stall" (go silent
#: but keep the TCP connection open), or None when the client went first.
Ending = tuple[int, str | None] | Literal["drop", "stall"] | None


def closing_race(exc: BaseException) -> bool:
    """Whether ``exc`` (a connection's nursery's group) is only trio-websocket's race between a
    client's ping and the server's own close: its reader answers the ping after the close went
    out, and wsproto refuses a pong in that state (trio-websocket issue 184). Harmless, since
    the connection was ending anyway; anything else in the group is a real failure."""
    if isinstance(exc, BaseExceptionGroup):
        return all(closing_race(inner) for inner in exc.exceptions)
    return (isinstance(exc, wsproto.utilities.LocalProtocolError)
            and str(exc).startswith("Event Pong(")
            and "cannot be sent in state ConnectionState.LOCAL_CLOSING" in str(exc))


class Deliverer(Protocol):
    """A connection that takes frames to send unprompted (False: it is not established)."""

    def deliver(self, frame: bytes) -> bool: ...


def deliver_to_each(connections: Iterable[Deliverer], frames: Iterable[bytes]) -> int:
    """Queue ``frames`` on each connection, in order, behind what it already has queued; how
    many connections took them."""
    frames = list(frames)
    return sum(1 for conn in connections if all(conn.deliver(frame) for frame in frames))


@dataclass(frozen=True)
class SlowReaderRule:
    """When a server gives up on a client that reads too slowly. Every bound is optional.

    A frame waits from the moment it is queued until the client's TCP connection has taken all
    of it. A client that reads slowly but steadily makes the queue grow; one that stopped reading
    leaves the frame at the head of the queue stuck in its write.
    """

    #: Bytes queued and not yet written (QST: its outbound queue overflowed). The frames a
    #: test queues at once count together: a burst above this bound overflows it at once.
    max_queued_bytes: int | None = None
    #: Seconds the frame at the head of the queue may take to be written, counted from when it
    #: got there (QST: the client stopped reading).
    max_stall: float | None = None
    #: Seconds any frame may wait, counted from when it was queued (CQG: the real-time data lag).
    max_lag: float | None = None

    @property
    def timed(self) -> bool:
        return self.max_stall is not None or self.max_lag is not None


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
    With a ``SlowReaderRule`` the writer's queue is watched, and ``_too_slow`` (the subclass's
    answer: a close code, a last message) is called once when the client breaks the rule.
    """

    def __init__(
        self, ws: trio_websocket.WebSocketConnection, slow_reader: SlowReaderRule | None = None
    ) -> None:
        self._ws = ws
        self._ending: Ending = None
        self._ended = False
        self._nursery: trio.Nursery | None = None
        self._out_tx, self._out_rx = trio.open_memory_channel[bytes | str | Close](math.inf)
        self._rule = slow_reader
        #: With a rule: (time queued, bytes) of every frame queued and not yet written, oldest
        #: first (the first one may be in its write).
        self._waiting: deque[tuple[float, int]] = deque()
        self._waiting_bytes = 0
        self._written = 0  # frames written so far
        self._head_since = 0.0  # when the first waiting frame got to the head of the queue
        self._watch_wake: trio.Event | None = None

    async def run(self) -> Ending:
        """Serve the connection; returns how the server should end it."""
        try:
            async with trio.open_nursery() as nursery:
                self._nursery = nursery
                self._spawn(self._write_loop)
                if self._rule is not None and self._rule.timed:
                    self._spawn(self._watch_reader, self._rule)
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

    def _too_slow(self, why: str) -> None:
        """The client broke the slow-reader rule (``why`` says how); typically ``_cut_off``."""
        raise NotImplementedError

    def _cut_off(self, last: bytes | str | None, ending: Ending) -> list[bytes | str]:
        """End a connection whose client reads too slowly: what is queued and not yet written is
        thrown away (a frame in its write still goes out whole, so the stream stays valid), then
        ``last`` (if any) is sent and the connection ends as ``ending`` says. If the client
        does not take the frame in its write within ``CUT_OFF_GRACE`` seconds, the TCP
        connection is dropped. Returns the frames thrown away, in queue order."""
        self._rule = None  # judged once
        thrown: list[bytes | str] = []
        while True:
            try:
                item = self._out_rx.receive_nowait()
            except trio.WouldBlock:
                break
            if not isinstance(item, Close):
                thrown.append(item)
        for _ in range(min(len(thrown), len(self._waiting))):
            self._waiting_bytes -= self._waiting.pop()[1]
        if last is not None:
            self._post(last)
        self._post(Close(ending))
        if self._nursery is not None and not self._ended:
            self._spawn(self._drop_later, CUT_OFF_GRACE)
        return thrown

    async def _drop_later(self, delay: float) -> None:
        await trio.sleep(delay)
        self._end("drop")

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
        if self._ended:
            return
        self._out_tx.send_nowait(item)  # unbounded: never blocks
        rule = self._rule
        if rule is None or isinstance(item, Close):
            return
        now = trio.current_time()
        if not self._waiting:
            self._head_since = now
            if self._watch_wake is not None:
                self._watch_wake.set()
        self._waiting.append((now, len(item)))
        self._waiting_bytes += len(item)
        limit = rule.max_queued_bytes
        if limit is not None and self._waiting_bytes > limit:
            self._too_slow(f"{self._waiting_bytes} bytes queued, more than {limit}")

    async def _write_loop(self) -> None:
        async for item in self._out_rx:
            if isinstance(item, Close):
                self._end(item.ending)
                return
            await self._ws.send_message(item)
            self._written += 1
            if self._waiting:
                self._waiting_bytes -= self._waiting.popleft()[1]
                self._head_since = trio.current_time()

    async def _watch_reader(self, rule: SlowReaderRule) -> None:
        """Judge the client by the rule's time bounds; wakes only when a bound could fall due."""
        while self._rule is rule:
            if not self._waiting:
                self._watch_wake = trio.Event()
                await self._watch_wake.wait()
                self._watch_wake = None
                continue
            written = self._written
            due, why = math.inf, ""
            if rule.max_lag is not None:
                due, why = self._waiting[0][0] + rule.max_lag, f"a frame waited {rule.max_lag:g} s"
            if rule.max_stall is not None and self._head_since + rule.max_stall < due:
                due = self._head_since + rule.max_stall
                why = f"a write made no progress for {rule.max_stall:g} s"
            await trio.sleep_until(due)
            if self._rule is rule and self._written == written and self._waiting:
                self._too_slow(why)
                return
