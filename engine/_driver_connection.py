"""A session driver's connection: its task, its frames, its pings and its close; and the single
writer with its request gate.

Frames do not pass through the connection task: trio-websocket's reader feeds each to the
machine in the reader's own task (``_frame``; ``brokergate.engine._websocket``), and writes the
frames its own frame calls for itself.

Every frame to the broker passes through ``write``, the single writer, which holds the request
gate: until the machine is ``authenticated`` only the machine's own session-control frames (the
login request, the logout) are written; an application request raises ``NotAuthenticated`` at
once and nothing is written.
"""

from __future__ import annotations

import contextlib
from functools import partial

import trio
import trio_websocket

from brokergate.engine._driver_loop import LoopPart
from brokergate.engine._driver_state import PING_TIMER, summarise
from brokergate.engine._errors import ConnectionLost, NotAuthenticated
from brokergate.engine._transport import describe_connect_error
from brokergate.engine._websocket import open_client
from brokergate.machines import (
    AUTHENTICATED,
    CancelTimer,
    CloseConnection,
    Closed,
    Command,
    Connected,
    ConnectFailed,
    Deliver,
    FrameReceived,
    Notice,
    OpenConnection,
    SendFrame,
    StartTimer,
    Transitioned,
)

#: How trio-websocket starts the reason of the 1009 close it sends for a message above its
#: max_message_size (our max_frame_size).
_TOO_LARGE_REASON = "Exceeded maximum message size"
#: What a connection's reader may carry out itself after its own event: frames to write (to its
#: own connection, the live one) and commands that need no waiting and leave the connection be.
_OWN_WRITES: frozenset[type[Command]] = frozenset(
    {SendFrame, StartTimer, CancelTimer, Transitioned, Notice, Deliver})


class Connection:
    """One connection attempt. Its task's nursery (which also holds trio-websocket's reader
    task) is its cancel scope; the driver may leave it behind before that task has begun."""

    __slots__ = ("cancelled", "epoch", "gone", "scope", "ws")

    def __init__(self, epoch: int) -> None:
        self.epoch = epoch
        self.scope: trio.CancelScope | None = None
        self.cancelled = False
        self.ws: trio_websocket.WebSocketConnection | None = None
        #: Its task has ended: nothing more can be read from it, whatever the reason.
        self.gone = False

    def cancel(self) -> None:
        self.cancelled = True
        if self.scope is not None:
            self.scope.cancel()


class ConnectionPart(LoopPart):
    """The live connection, its frames and pings, and the single writer."""

    __slots__ = ()

    def _open_connection(self, command: OpenConnection) -> None:
        self._drop_connection()
        conn = Connection(command.epoch)
        self._conn, self._live_epoch = conn, command.epoch
        assert self._nursery is not None
        self._nursery.start_soon(self._connection_task, conn, command.url)

    def _close_connection(self, command: CloseConnection) -> None:
        if self._conn is not None and self._conn.epoch == command.epoch:
            self._drop_connection(command.code, command.reason)

    async def _connection_task(self, conn: Connection, url: str) -> None:
        """Open the connection, then wait for it to end and report how.

        Its frames do not pass through this task: trio-websocket's reader feeds each to the
        machine (``_frame``) in the reader's own task. Runs until the connection ends by itself
        (reported as Closed / ConnectFailed) or the driver cancels ``conn`` because the machine
        left it behind.
        """
        self._forget_start()
        epoch = conn.epoch
        stream: trio.abc.Stream | None = None
        try:
            async with trio.open_nursery() as tasks:  # and trio-websocket's reader task
                conn.scope = tasks.cancel_scope
                if conn.cancelled:  # left behind before this task began
                    tasks.cancel_scope.cancel()
                try:
                    stream = await self._host.websocket.open_stream(url, self.settings.ca_file)
                except Exception as exc:  # refused, DNS, TLS; also a host name that cannot be
                    # encoded (a label over 63 characters in a broker's redirect URL)
                    self.feed(ConnectFailed(epoch, describe_connect_error(exc)))
                    return
                delivery = await open_client(
                    tasks, stream, url, max_message_size=self.settings.max_frame_size,
                    on_open=partial(self._opened, conn), on_message=partial(self._frame, epoch),
                )
                await delivery.ended.wait()
                closed = delivery.ws.closed
                code, text = (closed.code, closed.reason) if closed else (1006, None)
                self.feed(Closed(epoch, code, self._close_reason(code, text)))
                tasks.cancel_scope.cancel()
        except* trio_websocket.HandshakeError as group:
            self.feed(ConnectFailed(epoch, describe_connect_error(group.exceptions[0])))
        except* (OSError, trio.BrokenResourceError) as group:
            self.feed(Closed(epoch, 1006, describe_connect_error(group.exceptions[0])))
        except* Exception as group:  # keep a surprise inside this session
            self._log("internal_error", detail=summarise(group.exceptions[0]))
            self.feed(Closed(epoch, 1011, f"internal error: {type(group.exceptions[0]).__name__}"))
        finally:
            conn.gone = True
            self._wake_changed()  # a stop waiting for its logout answer looks again
            if stream is not None:
                await trio.aclose_forcefully(stream)

    async def _opened(self, conn: Connection, ws: trio_websocket.WebSocketConnection) -> None:
        """The broker accepted the WebSocket: the machine hears of it before any frame."""
        conn.ws = ws
        if self.feed_here(Connected(conn.epoch)):
            await self._write_own_frames()

    async def _frame(self, epoch: int, data: bytes | str) -> None:
        """One frame from the broker, in trio-websocket's reader task: while this waits (for
        the machine's own reply to be written, or for a full subscriber to make room), nothing
        more is read from the connection."""
        self._frame_size = len(data)
        if self._meter is not None:
            self._meter.received += 1
        try:
            if self.feed_here(FrameReceived(epoch, data)):
                await self._write_own_frames()
            if self._full_streams:
                await self._wait_for_room()
        except (trio.ClosedResourceError, trio.BrokenResourceError) as exc:
            # The reader would take these for its own channel closing and drop the frame
            # silently (see brokergate.engine._websocket): make it a surprise it reports.
            raise RuntimeError(f"handling a frame raised {type(exc).__name__}") from exc

    async def _write_own_frames(self) -> None:
        """Carry out, in a connection's reader or task, what its own event left to be awaited
        (``feed_here``), when that is frames to write and commands that leave the connection be;
        anything more goes to a worker task.

        These are the machine's own small frames (a login, a pong), bounded like every control
        frame (``write``); while they are written, the connection's next frames wait unread
        (the connection's reader is the task writing them)."""
        commands = self._deferred
        assert commands is not None
        if self._queue or not all(type(c) in _OWN_WRITES for c in commands):
            self._start_worker()
            return
        self._deferred = None
        try:
            await self._execute_all(commands)
        except BaseException:
            self._busy = False
            raise
        if self._queue and not self._closed:  # came while we wrote
            self._start_worker()
        else:
            self._release()

    def _close_reason(self, code: int, reason: str | None) -> str | None:
        """The reason of a close, naming the broker where its frames were at fault.

        Our side closes with 1009 when a frame is above max_frame_size, and with 1002 or 1007
        when a frame breaks the WebSocket protocol or a text frame is not UTF-8. A broker that
        closes with 1002 or 1007 itself is at fault too: we never send such frames.
        """
        name = self.model.broker_name
        if code == 1009 and reason and reason.startswith(_TOO_LARGE_REASON):
            return (f"{name} sent a frame larger than max_frame_size "
                    f"({self.settings.max_frame_size} bytes)")
        if code in (1002, 1007):
            what = "text that is not valid UTF-8" if code == 1007 else "an invalid frame"
            return f"{name} broke the WebSocket protocol: {what}" + (
                f" ({reason})" if reason else "")
        return reason

    # Heartbeat: every ping_interval the driver's own timer starts one short task that pings
    # the broker; no pong within ping_timeout is a dead connection. A half-open TCP connection
    # (the peer vanished without a FIN) gives no other sign. A timer, not a task per connection
    # that sleeps between pings: thousands of idle sessions would each hold one.

    def _arm_ping(self) -> None:
        interval = self.settings.ping_interval
        if interval is not None and self.model.websocket_pings:
            self._timers[PING_TIMER] = trio.current_time() + interval

    def _ping(self) -> None:
        conn = self._conn
        if conn is None or conn.ws is None:
            return  # the next connection arms its own
        self._arm_ping()
        assert self._nursery is not None
        self._nursery.start_soon(self._ping_once, conn.ws, conn.epoch)

    async def _ping_once(self, ws: trio_websocket.WebSocketConnection, epoch: int) -> None:
        timeout = self.settings.ping_timeout
        pauses = self._pauses
        with trio.move_on_after(timeout) as waited:
            try:
                await ws.ping()
            except (trio_websocket.ConnectionClosed, trio.BrokenResourceError, OSError):
                return  # the connection task reports the close
            except Exception as exc:  # keep a surprise inside this session
                self._log("internal_error", detail=summarise(exc))
                return
        if waited.cancelled_caught and epoch == self._live_epoch and pauses == self._pauses:
            # (A pause of the reading for a slow subscriber also holds back the pong.)
            self.feed(Closed(epoch, 1006, f"no pong within {timeout:g} s"))

    def _drop_connection(self, code: int = 1000, reason: str = "") -> None:
        conn, self._conn, self._live_epoch = self._conn, None, None
        self._timers.pop(PING_TIMER, None)
        self._suspended.pop(PING_TIMER, None)
        if conn is None:
            return
        if conn.ws is None:
            conn.cancel()
        else:
            assert self._nursery is not None
            self._nursery.start_soon(self._close_ws, conn, code, reason)

    async def _close_ws(self, conn: Connection, code: int, reason: str) -> None:
        assert conn.ws is not None
        with trio.move_on_after(self.settings.logout_timeout):
            with contextlib.suppress(
                trio_websocket.ConnectionClosed, trio.BrokenResourceError, OSError
            ):
                await conn.ws.aclose(code, reason[:120])
        conn.cancel()

    async def write(self, data: bytes | str, *, control: bool) -> None:
        """The single writer, and the request gate.

        ``control`` frames come only from the machine (login, logout). Anything else is written
        only while the machine is authenticated.
        """
        if not control and self.model.state != AUTHENTICATED:
            raise NotAuthenticated(self.model.broker, self.model.state)
        claim = self._claim
        if claim is not None and not claim.valid() and claim.kind == "lease":
            # Fenced: the account's lease lapsed here, so another process may hold it by now.
            # Nothing more is written; the claim's task tells the machine (``LeaseLost``).
            if control:
                return
            raise NotAuthenticated(self.model.broker, "standby: the account's lease lapsed")
        conn = self._conn
        if conn is None or conn.ws is None:
            if control:
                return  # the connection task reports the loss
            raise NotAuthenticated(self.model.broker, self.model.state)
        if not control:
            try:
                await conn.ws.send_message(data)
            except (trio_websocket.ConnectionClosed, trio.BrokenResourceError) as exc:
                raise ConnectionLost(
                    f"{self.model.broker}: the connection closed while sending; not sent"
                ) from exc
            if self._meter is not None:
                self._meter.sent += 1
            return
        # The machine's own frames are sent by whoever holds the session: bound them, so a peer
        # that stopped reading cannot stall the session (its timers included).
        timeout = self.settings.ping_timeout
        with trio.move_on_after(timeout) as waited, contextlib.suppress(
            trio_websocket.ConnectionClosed, trio.BrokenResourceError
        ):
            await conn.ws.send_message(data)
            if self._meter is not None:
                self._meter.sent += 1
        if waited.cancelled_caught:
            self.feed(Closed(conn.epoch, 1006, f"sending stalled for {timeout:g} s"))
