"""The session driver: runs one broker machine under trio and does all its I/O.

A session keeps no task of its own while it waits. An event is fed to the machine by the task
that brings it (``hand``): a frame by the connection's reader (trio-websocket's reader task, which
hands each frame straight to the session: ``brokergate.engine._websocket``), a close by the
connection task, an HTTP answer by its call task, a stop by the application. That task also
carries out the commands that need no waiting. What must be awaited (a frame to write, a token to
save), and every command after it, goes to a worker task that lives only until nothing is left to
do. A connection's reader writes the frames its own frame calls for itself, and a task that ends
once it has handed its event (an HTTP call, a credential) does that work itself. Timers ring on
the run's one alarm clock (``brokergate.engine._alarms``), which starts a worker for them.
Whoever is handling an event holds the session (``_busy``); events that come meanwhile wait in
a queue that it drains before letting go. So one event is handled at a time, and its commands run
in order. Events from a connection other than the live one are dropped, so a late frame from a
dead socket can never move a new session.

Every frame to the broker passes through ``write``, the single writer, which holds the request
gate: until the machine is ``authenticated`` only the machine's own session-control frames (the
login request, the logout) are written; an application request raises ``NotAuthenticated`` at
once and nothing is written.
"""

from __future__ import annotations

import contextlib
import inspect
import math
import traceback
from collections.abc import Callable
from functools import partial
from typing import Any, Protocol, cast

import trio
import trio_websocket

from brokergate.engine._alarms import AlarmClock
from brokergate.engine._audit import SessionLog, scrub
from brokergate.engine._errors import (
    ConnectionLost,
    Displaced,
    GaveUp,
    InvalidMessage,
    LockedOut,
    LoginFailed,
    NotAuthenticated,
    ProvisioningRequired,
    RequestFailed,
    SessionClosed,
    SessionError,
)
from brokergate.engine._events import (
    DEFAULT_BUFFER,
    DEFAULT_MAX_BYTES,
    BrokerMessage,
    EventStream,
    Overflow,
    SessionEvent,
)
from brokergate.engine._http import HttpCaller
from brokergate.engine._tokens import StoredToken, TokenStore
from brokergate.engine._transport import WebSocketTransport, describe_connect_error
from brokergate.engine._websocket import open_client
from brokergate.machines import (
    AUTHENTICATED,
    DISCONNECTED,
    DISPLACED,
    FAILED,
    LOCKED_OUT,
    LOGGING_OUT,
    PROVISIONING,
    TERMINAL_STATES,
    CancelTimer,
    CloseConnection,
    Closed,
    Command,
    Connected,
    ConnectFailed,
    CredentialReady,
    Deliver,
    Event,
    Fault,
    FetchCredential,
    FrameReceived,
    HttpFailed,
    HttpRequest,
    LoginProtocol,
    Notice,
    OpenConnection,
    SaveToken,
    Secret,
    SendFrame,
    SessionSettings,
    Start,
    StartTimer,
    Stop,
    TimerFired,
    TokenRefused,
    Transitioned,
)
from brokergate.machines._broker import CallsRest, MatchesRequests, NeedsCredentials, SendsRaw

_MAX_REQUEST_ID = 2**32 - 1
#: Why a logout was never answered when the host cancelled the session's tasks.
_CANCELLED_BY_HOST = "the session's tasks were cancelled by its host before the broker answered"
#: How trio-websocket starts the reason of the 1009 close it sends for a message above its
#: max_message_size (our max_frame_size).
_TOO_LARGE_REASON = "Exceeded maximum message size"
#: The driver's own timer for WebSocket pings (the machine never sees it).
_PING_TIMER = "_ping"
#: The commands ``_execute`` awaits (a frame to write, a token to save); ``hand`` leaves them,
#: and every command after them, to a worker task. Command classes are final, so these sets of
#: exact types are tested with ``type(command) in``: a set lookup, where ``isinstance`` with a
#: union walks its members (this runs for every command of every event).
_AWAITED: frozenset[type[Command]] = frozenset({SendFrame, SaveToken})
#: What a connection's reader may carry out itself after its own event: frames to write (to its
#: own connection, the live one) and commands that need no waiting and leave the connection be.
_OWN_WRITES: frozenset[type[Command]] = frozenset(
    {SendFrame, StartTimer, CancelTimer, Transitioned, Notice, Deliver})


class _Waiter:
    __slots__ = ("done", "error", "result")

    def __init__(self) -> None:
        self.done = trio.Event()
        self.result: Any = None
        self.error: BaseException | None = None

    def settle(self, result: Any = None, error: BaseException | None = None) -> None:
        if not self.done.is_set():
            self.result, self.error = result, error
            self.done.set()


class _Connection:
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


_ERRORS_BY_STATE: dict[str, type[SessionError]] = {
    FAILED: LoginFailed,
    LOCKED_OUT: LockedOut,
    PROVISIONING: ProvisioningRequired,
    DISPLACED: Displaced,
}


class SessionHost(Protocol):
    """What a session driver uses of the gateway that opened it."""

    @property
    def alarms(self) -> AlarmClock:
        """The gateway's alarm clock (its task runs in the gateway's nursery)."""

    @property
    def token_store(self) -> TokenStore:
        """Where sessions of brokers with day-long tokens keep them."""

    @property
    def websocket(self) -> WebSocketTransport:
        """What opens the byte stream under a WebSocket."""

    def http_caller(self, settings: SessionSettings) -> HttpCaller:
        """A session's HTTP client, sharing the gateway's rate limiters and transport."""


class SessionDriver:
    """Runs one session's machine. Created and started by its gateway (``Gateway.session``)."""

    __slots__ = (
        "_alarm_at",
        "_busy",
        "_calls_gone",
        "_changed",
        "_clock",
        "_closed",
        "_conn",
        "_credentials",
        "_deferred",
        "_early",
        "_frame_size",
        "_full_streams",
        "_host",
        "_http",
        "_live_epoch",
        "_next_request_id",
        "_nursery",
        "_paused",
        "_pauses",
        "_pending",
        "_queue",
        "_raw",
        "_requests",
        "_rest",
        "_room",
        "_settled",
        "_slow_since",
        "_slow_told",
        "_stopping",
        "_subscribers",
        "_suspended",
        "_timers",
        "audit",
        "model",
        "session_id",
        "settings",
    )

    def __init__(
        self,
        model: LoginProtocol,
        settings: SessionSettings,
        session_id: str,
        audit: SessionLog,
        *,
        host: SessionHost,
        capabilities: frozenset[str] = frozenset(),
    ) -> None:
        self.model = model
        self._host = host
        # What the model can do beyond logging in, as its broker's descriptor declares it
        # (brokergate.machines._broker): each is the model, typed, or None.
        self._requests = cast(MatchesRequests, model) if "requests" in capabilities else None
        self._raw = cast(SendsRaw, model) if "raw_send" in capabilities else None
        self._rest = cast(CallsRest, model) if "rest_calls" in capabilities else None
        self._credentials = (cast(NeedsCredentials, model) if "credentials" in capabilities
                             else None)
        self.settings = settings
        self.session_id = session_id
        self.audit = audit
        # Events waiting their turn while another is handled: a plain list, not a memory
        # channel. Every session has one, and a channel's three objects and its deque are much of
        # a session's memory; nothing ever waits to send.
        self._queue: list[Event] = []
        # An event is being handled, or a worker task holds the session's queue.
        self._busy = False
        self._closed = False
        self._timers: dict[str, float] = {}
        # The deadline the run's alarm clock will wake us at (inf: none asked for).
        self._alarm_at = math.inf
        self._clock: AlarmClock | None = None  # the run's, from ``start`` to ``aclose``
        # Commands an event fed at once left for a worker task (see ``hand``).
        self._deferred: list[Command] | None = None
        self._conn: _Connection | None = None
        self._live_epoch: int | None = None
        self._pending: dict[int, _Waiter] = {}
        self._next_request_id = self._first_request_id()
        self._subscribers: list[EventStream] = []
        # Backpressure (see brokergate.engine._events): how many lossless subscribers are over
        # their bounds; the reading waits on ``_room`` while any is. The bytes of the frame being
        # handed, which its broker messages count for.
        self._full_streams = 0
        self._room: trio.Event | None = None
        self._frame_size = 0
        # Whether the reading is paused for a subscriber, and how many pauses there have been
        # (a ping that was pending across one proves nothing).
        self._paused = False
        self._pauses = 0
        # A subscriber is behind from the first pause until every lossless subscriber has
        # received all it was given: since when, and whether ``slow_consumer`` was said.
        self._slow_since: float | None = None
        self._slow_told = False
        # Liveness timers held while the reading is paused: name -> seconds that were left.
        self._suspended: dict[str, float] = {}
        # What the session published while starting, for a subscriber who comes before any of
        # its tasks has run (see ``start``).
        self._early: list[SessionEvent] | None = None
        self._changed: trio.Event | None = None  # made when someone waits for a change
        # Made when someone waits for authenticated or the end (``wait_authenticated``): a login
        # passes through several states, and its waiter need not wake for each.
        self._settled: trio.Event | None = None
        self._stopping = False
        self._nursery: trio.Nursery | None = None
        self._http: HttpCaller | None = None  # made on the first REST call
        # REST calls whose task the host cancelled before they were answered (see ``stop``).
        self._calls_gone: list[HttpRequest] = []

    # ------------------------------------------------------------------ the loop

    def start(self, nursery: trio.Nursery) -> None:
        """Start the session in ``nursery``, the session's own (cancelled when it ends), where
        its connection, call and worker tasks run.

        ``Start`` is fed here, in the caller's task. What it publishes is also kept until the
        first of the tasks it started runs (``_started``), which is after the caller's first
        checkpoint: a caller who subscribes to events right away still sees the very first
        transition, and a later subscriber sees nothing from before it came.
        """
        self._nursery = nursery
        self._clock = self._host.alarms
        self._early = []
        self.hand(Start())

    def _started(self) -> None:
        """One of the session's tasks has begun: the start is no longer news."""
        self._early = None

    def hand(self, event: Event, *, writer: bool = False, worker: bool = False) -> bool:
        """Give the machine an event: a frame from the connection's reader, an open or a close
        from the connection task, an HTTP answer, a credential, a stop or a refused token from
        the application.

        With no event being handled, it is fed at once, in the calling task, and so is every
        command that needs no waiting; the first that does (a frame to write, a token to save)
        and every command after it go to a worker task, in order. Otherwise the event waits its
        turn in the queue, which whoever is handling events drains before it lets go. Either
        way one event is handled at a time and its commands run in order. Nothing here awaits.

        A connection's reader or task passes ``writer``: when what is left is frames to write
        and commands that leave the connection be, True is returned and the caller carries them
        out itself (``write_own``) instead of a new task. Until it has, no other event moves the
        machine, so its connection stays the live one. A task that ends once it has handed its
        event (an HTTP call, a credential) passes ``worker``: True means it is the worker now
        and must ``await self._work()``.
        """
        if self._closed:
            return False  # the session is over: nothing may move its machine now
        self._queue.append(event)
        if self._busy:
            return False
        self._busy = True
        queue = self._queue
        try:
            while queue:
                commands = self._handle(queue.pop(0))
                for index, command in enumerate(commands):
                    if type(command) in _AWAITED:
                        rest = self._deferred = commands[index:]
                        # Whoever carries them out owns the session (``_busy`` stays set).
                        if worker or (writer and not queue
                                      and all(type(c) in _OWN_WRITES for c in rest)):
                            return True
                        self._start_worker()
                        return False
                    self._carry_out(command)
        except BaseException:
            self._busy = False  # the caller's task has the error; the next event is fed
            raise
        self._let_go()
        return False

    async def write_own(self) -> None:
        """Carry out what ``hand`` left to the connection's task or reader that handed the event.

        These are the machine's own small frames (a login, a pong), bounded like every control
        frame (``write``); while they are written, the connection's next frames wait unread
        (the connection's reader is the task writing them)."""
        commands, self._deferred = self._deferred, None
        assert commands is not None
        try:
            await self._execute_all(commands)
        except BaseException:
            self._busy = False
            raise
        if self._queue and not self._closed:  # came while we wrote
            self._start_worker()
        else:
            self._let_go()

    def _let_go(self) -> None:
        """No event is being handled now. A timer started meanwhile may be due before the one
        the alarm clock will wake us for."""
        self._busy = False
        if not self._closed:
            self._ask_alarm(min(self._timers.values(), default=math.inf))

    def _start_worker(self) -> None:
        """Leave the queue, the deferred commands and the due timers to a new worker task
        (``_busy`` is set and stays set until it finishes)."""
        assert self._nursery is not None
        self._nursery.start_soon(self._work)

    async def _work(self) -> None:
        """Carry out the deferred commands, then feed the queued events and due timers, until
        none is left; then let go (the next event is fed by whoever brings it).

        A session has at most one worker, and none while it waits: a session with nothing to do
        keeps no task of its own beyond its connection's.
        """
        self._started()
        queue, timers = self._queue, self._timers
        cancelled = False
        try:
            while True:
                if self._deferred is not None:
                    commands, self._deferred = self._deferred, None
                    await self._execute_all(commands)
                    del commands
                    continue
                if queue:
                    await trio.lowlevel.checkpoint_if_cancelled()
                    event = queue.pop(0)
                elif timers and min(timers.values()) <= trio.current_time():
                    name = min(timers, key=timers.__getitem__)
                    del timers[name]
                    if name == _PING_TIMER:
                        self._ping()
                        continue
                    event = TimerFired(name)
                else:
                    return
                await self._execute_all(self._handle(event))
                del event
        except trio.Cancelled:
            cancelled = True
            raise
        finally:
            if cancelled:
                # The host is cancelling the session's tasks. Asking the alarm clock for a
                # due timer now would start a worker that is cancelled at once, again and
                # again (a busy loop until the stop's bound). What is queued is left to the
                # stop, which carries it out in its own shielded task.
                self._busy = False
                self._wake_changed()
            else:
                self._let_go()

    def _wake_changed(self) -> None:
        changed, self._changed = self._changed, None
        if changed is not None:
            changed.set()

    def end(self) -> None:
        """The session is over: no event moves the machine from now on."""
        self._closed = True
        self._queue.clear()
        self._deferred = None

    async def aclose(self) -> None:
        """Release what the session held, once its tasks have ended."""
        self.end()
        self._early = None
        if self._clock is not None:
            self._clock.forget()
            self._clock = None
        self._end_streams()
        if self._http is not None:
            await self._http.aclose()

    def _ask_alarm(self, deadline: float) -> None:
        """Ask the run's alarm clock to wake us at ``deadline``, unless it already will at that
        time or sooner."""
        if deadline < self._alarm_at and self._clock is not None:
            self._alarm_at = deadline
            self._clock.wake_at(deadline, self)

    @property
    def alarm_wanted(self) -> bool:
        return not self._closed

    def alarm(self, deadline: float) -> None:
        """The alarm clock rang for ``deadline``: unless we have asked for another, hand the due
        timers to a worker task (not fed here, in the clock's own task: whatever a timer's event
        raises belongs to the session's nursery)."""
        if deadline == self._alarm_at:
            self._alarm_at = math.inf
            if not (self._busy or self._closed):
                self._busy = True
                self._start_worker()

    def _handle(self, event: Event) -> list[Command]:
        """The machine's commands for ``event`` (none for an event from a dead connection)."""
        epoch = getattr(event, "epoch", None)
        if epoch is not None and epoch != self._live_epoch:
            return []  # from a connection the machine has already left behind
        if isinstance(event, Connected):
            self._arm_ping()
        try:
            return self.model.handle(event)
        except Exception as exc:  # a bug in a machine must not take the host process down
            self._internal_error(f"machine raised on {type(event).__name__}", exc)
            return []

    async def _execute_all(self, commands: list[Command]) -> None:
        for index, command in enumerate(commands):
            try:
                await self._execute(command)
            except trio.Cancelled:
                # The host is cancelling the session's tasks: what is left (a transition's
                # record, a timer) is for the stop to carry out. Not the command under way: a
                # frame cancelled in its write may be half written.
                rest = commands[index + 1:]
                if rest:
                    self._deferred = rest + (self._deferred or [])
                raise

    async def _execute(self, command: Command) -> None:
        if isinstance(command, SendFrame):
            await self.write(command.data, control=True)
        elif isinstance(command, SaveToken):
            # In order, not in a task: a delete must never overtake the save after it.
            await self._keep_token(command)
        else:
            self._carry_out(command)

    def _carry_out(self, command: Command) -> None:
        """A command that needs no waiting: the method for its type (``_CARRY_OUT``), found in
        one dict lookup rather than tried against each command class in turn."""
        _CARRY_OUT[type(command)](self, command)

    def _open_connection(self, command: OpenConnection) -> None:
        self._drop_connection()
        conn = _Connection(command.epoch)
        self._conn, self._live_epoch = conn, command.epoch
        assert self._nursery is not None
        self._nursery.start_soon(self._connection_task, conn, command.url)

    def _close_connection(self, command: CloseConnection) -> None:
        if self._conn is not None and self._conn.epoch == command.epoch:
            self._drop_connection(command.code, command.reason)

    def _start_timer(self, command: StartTimer) -> None:
        if self._paused and command.name in self._liveness_timers():
            self._suspended[command.name] = command.seconds
        else:
            self._timers[command.name] = trio.current_time() + command.seconds

    def _cancel_timer(self, command: CancelTimer) -> None:
        self._timers.pop(command.name, None)
        self._suspended.pop(command.name, None)

    def _start_http_call(self, command: HttpRequest) -> None:
        assert self._nursery is not None
        self._nursery.start_soon(self._http_call, command)

    def _start_fetch(self, command: FetchCredential) -> None:
        assert self._nursery is not None
        self._nursery.start_soon(self._fetch_credential, command.kind, command.seconds)

    def _http_caller(self) -> HttpCaller:
        if self._http is None:
            self._http = self._host.http_caller(self.settings)
        return self._http

    # ------------------------------------------------------------------ connection

    async def _connection_task(self, conn: _Connection, url: str) -> None:
        """Open the connection, then wait for it to end and report how.

        Its frames do not pass through this task: trio-websocket's reader hands each to
        ``_frame`` in the reader's own task (``brokergate.engine._websocket``). Runs until the
        connection ends by itself (reported as Closed / ConnectFailed) or the driver cancels
        ``conn`` because the machine left it behind.
        """
        self._started()
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
                    self.hand(ConnectFailed(epoch, describe_connect_error(exc)))
                    return
                delivery = await open_client(
                    tasks, stream, url, max_message_size=self.settings.max_frame_size,
                    on_open=partial(self._opened, conn), on_message=partial(self._frame, epoch),
                )
                await delivery.ended.wait()
                closed = delivery.ws.closed
                code, text = (closed.code, closed.reason) if closed else (1006, None)
                self.hand(Closed(epoch, code, self._close_reason(code, text)))
                tasks.cancel_scope.cancel()
        except* trio_websocket.HandshakeError as group:
            self.hand(ConnectFailed(epoch, describe_connect_error(group.exceptions[0])))
        except* (OSError, trio.BrokenResourceError) as group:
            self.hand(Closed(epoch, 1006, describe_connect_error(group.exceptions[0])))
        except* Exception as group:  # keep a surprise inside this session
            self._log("internal_error", detail=_summarise(group.exceptions[0]))
            self.hand(Closed(epoch, 1011, f"internal error: {type(group.exceptions[0]).__name__}"))
        finally:
            conn.gone = True
            self._wake_changed()  # a stop waiting for its logout answer looks again
            if stream is not None:
                await trio.aclose_forcefully(stream)

    async def _opened(self, conn: _Connection, ws: trio_websocket.WebSocketConnection) -> None:
        """The broker accepted the WebSocket: the machine hears of it before any frame."""
        conn.ws = ws
        if self.hand(Connected(conn.epoch), writer=True):
            await self.write_own()

    async def _frame(self, epoch: int, data: bytes | str) -> None:
        """One frame from the broker, in trio-websocket's reader task: while this waits (for
        the machine's own reply to be written, or for a full subscriber to make room), nothing
        more is read from the connection."""
        self._frame_size = len(data)
        try:
            if self.hand(FrameReceived(epoch, data), writer=True):
                await self.write_own()
            if self._full_streams:
                await self._wait_for_room()
        except (trio.ClosedResourceError, trio.BrokenResourceError) as exc:
            # The reader would take these for its own channel closing and drop the frame
            # silently (see brokergate.engine._websocket): make it a surprise it reports.
            raise RuntimeError(f"handling a frame raised {type(exc).__name__}") from exc

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
            self._timers[_PING_TIMER] = trio.current_time() + interval

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
                self._log("internal_error", detail=_summarise(exc))
                return
        if waited.cancelled_caught and epoch == self._live_epoch and pauses == self._pauses:
            # (A pause of the reading for a slow subscriber also holds back the pong.)
            self.hand(Closed(epoch, 1006, f"no pong within {timeout:g} s"))

    def _drop_connection(self, code: int = 1000, reason: str = "") -> None:
        conn, self._conn, self._live_epoch = self._conn, None, None
        self._timers.pop(_PING_TIMER, None)
        self._suspended.pop(_PING_TIMER, None)
        if conn is None:
            return
        if conn.ws is None:
            conn.cancel()
        else:
            assert self._nursery is not None
            self._nursery.start_soon(self._close_ws, conn, code, reason)

    async def _close_ws(self, conn: _Connection, code: int, reason: str) -> None:
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
            return
        # The machine's own frames are sent by whoever holds the session: bound them, so a peer that
        # stopped reading cannot stall the session (its timers included).
        timeout = self.settings.ping_timeout
        with trio.move_on_after(timeout) as waited, contextlib.suppress(
            trio_websocket.ConnectionClosed, trio.BrokenResourceError
        ):
            await conn.ws.send_message(data)
        if waited.cancelled_caught:
            self.hand(Closed(conn.epoch, 1006, f"sending stalled for {timeout:g} s"))

    async def _http_call(self, request: HttpRequest) -> None:
        """One REST call; its answer (or why there is none) goes back to the machine."""
        self._started()
        answer: Event
        try:
            answer = await self._http_caller().call(request)
        except trio.Cancelled:
            self._calls_gone.append(request)
            self._wake_changed()  # a stop waiting for this call's answer looks again
            raise
        except Exception as exc:  # keep a surprise inside this session
            self._log("internal_error", detail=_summarise(exc))
            answer = HttpFailed(request.call, request.serial,
                                f"internal error: {type(exc).__name__}")
        if self.hand(answer, worker=True):
            await self._work()  # what the answer calls for (a token to save), in this task

    async def _keep_token(self, command: SaveToken) -> None:
        """Save (or delete) the session token in the store; a store that fails costs only the
        reuse of the token by a later process, so the session goes on and says so."""
        store = self._host.token_store
        broker, user = self.model.broker, self.model.account
        try:
            if command.token is None:
                await store.delete(broker, user)
            else:
                await store.save(broker, user, StoredToken(command.token, command.created))
        except Exception as exc:  # the store is the user's (a file, their own class)
            self._notice(Notice("token_store_failed",
                                f"the token store failed ({type(exc).__name__}); the session "
                                "goes on, but a restarted process will log in again",
                                Fault.CONFIGURATION))

    async def _fetch_credential(self, kind: str, seconds: float) -> None:
        """Run the provider of a credential the machine asked for; always answer it.

        A provider's exception is named by its type only: its message might hold the very
        credential it was handling.
        """
        self._started()
        source = self._credentials
        provider = source.credential_source(kind) if source is not None else None
        value: Secret | None = None
        problem: str | None = None
        if provider is None:
            problem = "no provider is configured"
        else:
            try:
                with trio.fail_after(seconds):
                    result = provider()
                    if inspect.isawaitable(result):
                        result = await result
                raw = result.reveal() if isinstance(result, Secret) else result
                if isinstance(raw, str) and raw:
                    value = Secret(raw)
                else:
                    problem = f"it returned {type(raw).__name__}, not a non-empty string"
            except trio.TooSlowError:
                problem = f"no answer within {seconds:g} s"
            except Exception as exc:  # the provider is the user's code: contain it
                problem = f"it raised {type(exc).__name__}"
        if self.hand(CredentialReady(kind, value, problem), worker=True):
            await self._work()  # what the credential calls for (a logon to send), in this task

    # ------------------------------------------------------------------ application side

    async def send(self, message: Any) -> None:
        """Send one application message as it is (brokers whose answers are matched inside the
        application's own messages, like CQG). Gated like every application frame."""
        if self.model.state != AUTHENTICATED:
            raise NotAuthenticated(self.model.broker, self.model.state)
        if self._raw is None:
            raise TypeError(f"{self.model.broker_name} takes no messages as they are: "
                            f"{self._what_instead()}")
        try:
            data = self._raw.encode_send(message)
        except ValueError as exc:
            raise InvalidMessage(f"{self.model.broker}: not sent: {exc}") from None
        await self.write(data, control=False)
        self.model.application_sent()

    def _what_instead(self) -> str:
        """What the application uses instead, for a TypeError that says how to talk to it."""
        ways = []
        if self._requests is not None:
            ways.append("session.request()")
        if self._raw is not None:
            ways.append("session.send() and read answers from session.events()")
        if self._rest is not None:
            ways.append("session.call()")
        return "use " + " or ".join(ways) if ways else "it takes no application messages"

    async def request(self, message: Any) -> Any:
        if self.model.state != AUTHENTICATED:
            raise NotAuthenticated(self.model.broker, self.model.state)
        if self._requests is None:
            raise TypeError(f"{self.model.broker_name} takes no requests with ids: "
                            f"{self._what_instead()}")
        request_id = self._take_request_id()
        data = self._requests.encode_request(message, request_id)
        waiter = _Waiter()
        self._pending[request_id] = waiter
        try:
            await self.write(data, control=False)
            self.model.application_sent()
            await waiter.done.wait()
        finally:
            self._pending.pop(request_id, None)
        if waiter.error is not None:
            raise waiter.error
        return waiter.result

    async def call(self, endpoint: str, body: Any = None, *, retry: bool = True) -> Any:
        """One REST call of the application's with the session's token (Firstock)."""
        model, rest = self.model, self._rest
        broker = model.broker
        if rest is None:
            raise TypeError(f"{model.broker_name} has no REST API behind its session: "
                            f"{self._what_instead()}")
        build = rest.application_request
        for attempt in (1, 2):
            if model.state != AUTHENTICATED:
                raise NotAuthenticated(broker, model.state)
            try:
                request, generation = build(endpoint, body)
            except ValueError as exc:
                raise InvalidMessage(f"{broker}: not sent: {exc}") from None
            answered = await self._http_caller().call(request)
            if isinstance(answered, HttpFailed):
                raise ConnectionLost(f"{broker} {request.call}: {answered.detail}; the broker may "
                                     "or may not have acted on the call")
            answer = rest.read_application_answer(answered, generation)
            if answer.ok:
                return answer.data
            detail = self._scrub(answer.detail)
            if answer.token_refused:
                self.hand(TokenRefused(generation, detail))
                if retry and attempt == 1 and await self._new_token(generation):
                    continue  # the broker acted on nothing: the same call with the new token
            raise RequestFailed(broker, answer.status, detail, name=answer.name,
                                token_refused=answer.token_refused)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _new_token(self, generation: int) -> bool:
        """Wait until the session is authenticated with a token newer than ``generation``.

        Raise the session's error if it ends instead (a fresh login refused: ``LoginFailed``
        with reason ``session_invalid``); False if it does not get there within its own login
        bounds (the caller's error then says what the broker said).
        """
        model, rest = self.model, self._rest
        assert rest is not None
        limit = self.settings.login_timeout + self.settings.connect_timeout
        with trio.move_on_after(2 * limit):
            while True:
                if rest.token_generation != generation and model.state == AUTHENTICATED:
                    return True
                if self._ended():
                    raise self.error()
                await self._next_change()
        return False

    async def _next_change(self) -> None:
        """Wait for the machine's next transition."""
        if self._changed is None:
            self._changed = trio.Event()
        await self._changed.wait()

    def _first_request_id(self) -> int:
        return self._requests.first_request_id if self._requests is not None else 1

    def _take_request_id(self) -> int:
        rid = self._next_request_id
        wrapped = rid >= _MAX_REQUEST_ID
        self._next_request_id = self._first_request_id() if wrapped else rid + 1
        while rid in self._pending:  # only after wrapping around
            rid = self._take_request_id()
        return rid

    def _deliver(self, command: Deliver) -> None:
        rid = command.request_id
        if rid is None:
            self._publish(BrokerMessage(command.message), self._frame_size)
            return
        waiter = self._pending.get(rid)
        if waiter is None:
            self._notice(Notice(
                "unknown_request_id",
                f"{self.model.broker_name} answered request {rid}, which no request is waiting "
                "for; ignored",
                Fault.BROKER,
            ))
        elif command.error is not None:
            waiter.settle(error=RequestFailed(self.model.broker, command.error.code,
                                              self._scrub(command.error.message)))
        else:
            waiter.settle(result=command.message)

    async def wait_authenticated(self) -> None:
        while True:
            if self.model.state == AUTHENTICATED:
                return
            if self._ended():
                raise self.error()
            if self._settled is None:
                self._settled = trio.Event()
            await self._settled.wait()

    def _settle(self) -> None:
        """Wake ``wait_authenticated``'s callers, if any, to look again."""
        settled, self._settled = self._settled, None
        if settled is not None:
            settled.set()

    def _ended(self) -> bool:
        """The session will not become authenticated by itself: terminal, or disconnected for a
        reason (stopped, logged off, displaced)."""
        state = self.model.state
        if state in TERMINAL_STATES:
            return True
        return state == DISCONNECTED and (self._stopping or self.model.reason is not None)

    def outcome(self) -> dict[str, Any]:
        """The model's outcome, with any secret a broker echoed scrubbed from its detail."""
        outcome = self.model.outcome()
        if outcome.get("detail") is not None:
            outcome["detail"] = self._scrub(outcome["detail"])
        return outcome

    def error(self) -> SessionError:
        """The error that describes why the session is not authenticated."""
        outcome = self.outcome()
        kind = _ERRORS_BY_STATE.get(outcome["state"], SessionClosed)
        if outcome.get("reason") == "gave_up":
            kind = GaveUp
        return kind(outcome, broker=self.model.broker, session_id=self.session_id,
                    account=self.model.account)

    def subscribe(self, buffer: int = DEFAULT_BUFFER, max_bytes: int = DEFAULT_MAX_BYTES,
                  overflow: Overflow = "backpressure") -> EventStream:
        stream = EventStream(self, buffer, max_bytes, overflow)
        self._subscribers.append(stream)
        for event in self._early or ():
            stream.offer(event)
        if self._closed:  # the session is over: the stream ends after what it was given
            stream.end()
        return stream

    # What the event streams call (brokergate.engine._events.Publisher).

    def unsubscribe(self, stream: EventStream) -> None:
        if stream in self._subscribers:
            self._subscribers.remove(stream)

    def stream_full(self, full: bool) -> None:
        """A lossless subscriber went over its bounds (True) or came back within them."""
        self._full_streams += 1 if full else -1
        if not self._full_streams and self._room is not None:
            self._room.set()

    def stream_dropped(self, stream: EventStream, count: int) -> Notice:
        """The notice a ``drop_oldest`` subscriber gets for ``count`` messages it lost (also in
        the audit trail)."""
        notice = Notice(
            "messages_dropped",
            f"{count} {self.model.broker_name} messages dropped for a subscriber that asked for "
            f"overflow='drop_oldest' (its buffer holds {stream.buffer} events, "
            f"{stream.max_bytes} bytes); {stream.dropped} in all",
            data={"dropped": count, "total": stream.dropped},
        )
        self._log("notice", kind=notice.kind, detail=notice.detail, fault=None)
        return notice

    async def _wait_for_room(self) -> None:
        """A lossless subscriber is over its bounds: read nothing more until none is. The
        liveness timers wait meanwhile. Once subscribers have been behind for
        ``slow_consumer_after`` seconds, a ``slow_consumer`` notice says so."""
        started = trio.current_time()
        self._paused = True
        self._pauses += 1
        self._suspend_liveness(started)
        if self._slow_since is None:
            self._slow_since = started
            for stream in self._subscribers:
                stream.report_drained = stream.overflow == "backpressure"
        try:
            if not self._slow_told:
                with trio.move_on_at(self._slow_since + self.settings.slow_consumer_after):
                    await self._room_made()
                if self._full_streams:
                    self._slow_told = True
                    events, size = self._backlog()
                    self._notice(Notice(
                        "slow_consumer",
                        f"the application has kept the session from reading "
                        f"{self.model.broker_name} (for {trio.current_time() - started:.3g} s "
                        f"now, behind for {trio.current_time() - self._slow_since:.3g} s): a "
                        f"subscriber is {events} events ({size} bytes) behind; the broker may "
                        "act on a slow reader",
                        data={"events": events, "bytes": size},
                    ))
            await self._room_made()
        finally:
            self._paused = False
            self._resume_liveness(trio.current_time())

    def stream_drained(self) -> None:
        """A subscriber that was behind has received everything: when none is behind any more,
        the subscribers have caught up."""
        if self._slow_since is None or any(s.report_drained for s in self._subscribers):
            return
        since, self._slow_since = self._slow_since, None
        if self._slow_told:
            self._slow_told = False
            behind = trio.current_time() - since
            self._notice(Notice("caught_up",
                                f"the application has caught up with {self.model.broker_name} "
                                f"after {behind:.3g} s behind", data={"behind": behind}))

    async def _room_made(self) -> None:
        while self._full_streams:
            self._room = trio.Event()
            await self._room.wait()
        self._room = None

    def _backlog(self) -> tuple[int, int]:
        """The largest backlog among the subscribers (events, bytes)."""
        return max((stream.backlog for stream in self._subscribers), default=(0, 0))

    def _liveness_timers(self) -> tuple[str, ...]:
        """The timers that judge the connection dead when they fire: the WebSocket ping's and
        the machine's own (CQG's Pong deadline)."""
        return (_PING_TIMER, *self.model.liveness_timers)

    def _suspend_liveness(self, now: float) -> None:
        """Hold the timers that judge the connection's liveness: the reading is paused."""
        for name in self._liveness_timers():
            deadline = self._timers.pop(name, None)
            if deadline is not None:
                self._suspended[name] = max(0.0, deadline - now)

    def _resume_liveness(self, now: float) -> None:
        if not self._suspended:
            return
        for name, left in self._suspended.items():
            self._timers[name] = now + left
        self._suspended.clear()
        self._ask_alarm(min(self._timers.values()))

    async def stop(self, *, logout: bool = True) -> None:
        """Log out if authenticated (unless ``logout`` is False and the broker's session outlives
        the connection), otherwise disconnect; return once the session is at rest."""
        self._stopping = True
        self._settle()  # a session at rest is over for its waiters now, transition or not
        self.hand(Stop(logout))
        told: _Connection | None = None  # a connection whose loss the machine has been told
        while self.model.state not in TERMINAL_STATES and self.model.state != DISCONNECTED:
            if self._left_behind() and not self._busy and not self._closed:
                # The host is cancelling the session's tasks: a worker was cancelled with work
                # left (events queued, commands deferred: the logout itself, or a timer due).
                # This task carries it out itself.
                self._busy = True
                await self._work()
                continue
            conn = self._conn
            if (self.model.state == LOGGING_OUT and conn is not None and conn.gone
                    and conn is not told and not conn.cancelled and not self._busy):
                # The connection's task was cancelled with the session's (the driver did not
                # leave it behind, and it reported no close): no logout answer can be read.
                told = conn
                self.hand(Closed(conn.epoch, 1006, _CANCELLED_BY_HOST))
                continue
            if self._calls_gone and not self._busy:
                # The same for a REST call (Firstock's logout): it will never be answered.
                call = self._calls_gone.pop(0)
                self.hand(HttpFailed(call.call, call.serial, _CANCELLED_BY_HOST))
                continue
            await self._next_change()

    def _left_behind(self) -> bool:
        """Work a cancelled worker left: events queued, commands deferred, a timer due."""
        timers = self._timers
        return bool(self._queue or self._deferred is not None
                    or (timers and min(timers.values()) <= trio.current_time()))

    # ------------------------------------------------------------------ bookkeeping

    def _on_transition(self, record: Transitioned) -> None:
        self.audit.transition(record)
        if record.src == AUTHENTICATED and record.dst != AUTHENTICATED:
            lost = ConnectionLost(
                f"{self.model.broker}: the session left authenticated ({record.dst}) before the "
                "answer; the broker may or may not have acted on the request"
            )
            for waiter in self._pending.values():
                waiter.settle(error=lost)
        self._publish(record)
        self._wake_changed()
        if record.dst == AUTHENTICATED or self._ended():
            self._settle()

    def _publish(self, event: SessionEvent, size: int = 0) -> None:
        for stream in self._subscribers:
            stream.offer(event, size)
        if self._early is not None:
            self._early.append(event)

    def _end_streams(self) -> None:
        for stream in list(self._subscribers):
            stream.end()
        self._subscribers.clear()

    def _log(self, event: str, **fields: Any) -> None:
        self.audit.info(event, **fields)

    def _scrub(self, text: str) -> str:
        return str(scrub(text, self.model.secrets()))

    def _notice(self, notice: Notice) -> None:
        self._log("notice", kind=notice.kind, detail=notice.detail,
                  fault=notice.fault.value if notice.fault else None)
        self._publish(notice)

    def _internal_error(self, what: str, exc: Exception) -> None:
        """Put the session in ``failed`` (internal) after a bug, and say so."""
        self._log("internal_error", detail=f"{what}: {_summarise(exc)}")
        model: Any = self.model
        src = model.state
        model.state = FAILED
        model.reason, model.fault = "internal_error", Fault.INTERNAL
        model.detail = f"{what}: {type(exc).__name__}"
        self._drop_connection(1011, "internal error")
        self._timers.clear()
        self._on_transition(Transitioned("internal_error", src, FAILED, model.epoch,
                                         model.attempt, "internal_error", detail=model.detail))


#: What ``_carry_out`` does with each command that needs no waiting.
_CARRY_OUT: dict[type[Any], Callable[[SessionDriver, Any], None]] = {
    OpenConnection: SessionDriver._open_connection,
    CloseConnection: SessionDriver._close_connection,
    StartTimer: SessionDriver._start_timer,
    CancelTimer: SessionDriver._cancel_timer,
    HttpRequest: SessionDriver._start_http_call,
    FetchCredential: SessionDriver._start_fetch,
    Deliver: SessionDriver._deliver,
    Notice: SessionDriver._notice,
    Transitioned: SessionDriver._on_transition,
}


def _summarise(exc: BaseException) -> str:
    frames = traceback.extract_tb(exc.__traceback__)
    where = f" at {frames[-1].filename}:{frames[-1].lineno}" if frames else ""
    return f"{type(exc).__name__}: {exc}{where}"
