"""What a session driver holds, and the small bookkeeping every part of it uses.

``SessionDriver`` (``brokergate.engine._driver``) is one object made of parts, one module each;
this is the bottom of them: its ``__slots__`` (declared here once), its constructor, the audit
and publishing helpers, and the methods the lower parts call of the upper ones, declared for
the type checker.
"""

from __future__ import annotations

import math
import traceback
from typing import TYPE_CHECKING, Any, Protocol, cast

import trio

from brokergate.engine._alarms import AlarmClock
from brokergate.engine._audit import SessionLog, scrub
from brokergate.engine._coordinator import AccountClaim
from brokergate.engine._events import EventStream, SessionEvent
from brokergate.engine._http import HttpCaller
from brokergate.engine._metrics import SessionMeter
from brokergate.engine._tokens import TokenStore
from brokergate.engine._transport import WebSocketTransport
from brokergate.machines import (
    Command,
    Event,
    HttpRequest,
    LoginProtocol,
    Notice,
    SaveToken,
    SessionSettings,
)
from brokergate.machines._broker import (
    CallsRest,
    HandsOver,
    MatchesRequests,
    NeedsCredentials,
    SendsRaw,
)

if TYPE_CHECKING:
    from brokergate.engine._driver_connection import Connection
    from brokergate.engine._driver_requests import Waiter

#: The driver's own timer for WebSocket pings (the machine never sees it).
PING_TIMER = "_ping"


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

    def http_caller(self, settings: SessionSettings,
                    meter: SessionMeter | None = None) -> HttpCaller:
        """A session's HTTP client, sharing the gateway's rate limiters and transport (and
        counting for the session's ``meter``, if any)."""


class DriverState:
    """The state of one session's driver, shared by all its parts."""

    __slots__ = (
        "_alarm_at",
        "_auth_waiters",
        "_busy",
        "_calls_cancelled",
        "_changed",
        "_claim",
        "_clock",
        "_closed",
        "_conn",
        "_credentials",
        "_deferred",
        "_frame_size",
        "_full_streams",
        "_handed_over",
        "_handover",
        "_host",
        "_http",
        "_live_epoch",
        "_meter",
        "_next_request_id",
        "_nursery",
        "_paused",
        "_pauses",
        "_pending",
        "_published_at_start",
        "_queue",
        "_raw",
        "_requests",
        "_rest",
        "_room",
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
        meter: SessionMeter | None = None,
    ) -> None:
        self.model = model
        # What the session counts for the gateway's metrics (None: no metrics asked for).
        self._meter = meter
        self._host = host
        # What the model can do beyond logging in, as its broker's descriptor declares it
        # (brokergate.machines._broker): each is the model, typed, or None.
        self._requests = cast(MatchesRequests, model) if "requests" in capabilities else None
        self._raw = cast(SendsRaw, model) if "raw_send" in capabilities else None
        self._rest = cast(CallsRest, model) if "rest_calls" in capabilities else None
        self._credentials = (cast(NeedsCredentials, model) if "credentials" in capabilities
                             else None)
        self._handover = cast(HandsOver, model) if "handover" in capabilities else None
        # The handover last left with the account's lease (``_driver_claims``).
        self._handed_over: dict[str, Any] | None = None
        self.settings = settings
        self.session_id = session_id
        self.audit = audit
        # Events waiting their turn while another is handled: a plain list, not a memory
        # channel. Every session has one, and a channel's three objects and its deque are much of
        # a session's memory; nothing ever waits to send.
        self._queue: list[Event] = []
        # An event is being handled, or a task holds the session to carry out its commands.
        self._busy = False
        self._closed = False
        self._timers: dict[str, float] = {}
        # The deadline the run's alarm clock will wake us at (inf: none asked for).
        self._alarm_at = math.inf
        self._clock: AlarmClock | None = None  # the run's, from ``start`` to ``aclose``
        # Commands a fed event left to be awaited, by whoever holds the session (see ``feed``).
        self._deferred: list[Command] | None = None
        self._conn: Connection | None = None
        self._live_epoch: int | None = None
        self._pending: dict[int, Waiter] = {}
        self._next_request_id = self._first_request_id()
        self._subscribers: list[EventStream] = []
        # Backpressure (see brokergate.engine._events): how many lossless subscribers are over
        # their bounds; the reading waits on ``_room`` while any is. The bytes of the frame being
        # fed, which its broker messages count for.
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
        self._published_at_start: list[SessionEvent] | None = None
        self._changed: trio.Event | None = None  # made when someone waits for a change
        # Made when someone waits for authenticated or the end (``wait_authenticated``): a login
        # passes through several states, and its waiter need not wake for each.
        self._auth_waiters: trio.Event | None = None
        self._stopping = False
        self._nursery: trio.Nursery | None = None
        self._http: HttpCaller | None = None  # made on the first REST call
        # The session's claim on its account in a fleet (``_driver_claims``); None in one process.
        self._claim: AccountClaim | None = None
        # REST calls whose task the host cancelled before they were answered (see ``stop``).
        self._calls_cancelled: list[HttpRequest] = []

    def _first_request_id(self) -> int:
        return self._requests.first_request_id if self._requests is not None else 1

    def _log(self, event: str, **fields: Any) -> None:
        self.audit.info(event, **fields)

    def _scrub(self, text: str) -> str:
        return str(scrub(text, self.model.secrets()))

    def _notice(self, notice: Notice) -> None:
        self._log("notice", kind=notice.kind, detail=notice.detail,
                  fault=notice.fault.value if notice.fault else None)
        self._publish(notice)

    def _publish(self, event: SessionEvent, size: int = 0) -> None:
        for stream in self._subscribers:
            stream.offer(event, size)
        if self._published_at_start is not None:
            self._published_at_start.append(event)

    def _forget_start(self) -> None:
        """One of the session's tasks has begun: what the start published is no longer news."""
        self._published_at_start = None

    def _wake_changed(self) -> None:
        changed, self._changed = self._changed, None
        if changed is not None:
            changed.set()

    async def _next_change(self) -> None:
        """Wait for the machine's next transition (or a task's end that a stop waits for)."""
        if self._changed is None:
            self._changed = trio.Event()
        await self._changed.wait()

    if TYPE_CHECKING:
        # What a lower part calls of an upper one (the parts are stacked in this order: state,
        # subscribers, loop, connection, ending, requests, calls, and SessionDriver on top).

        def _ask_alarm(self, deadline: float) -> None: ...

        def _carry_out(self, command: Command) -> None: ...

        def _internal_error(self, what: str, exc: Exception) -> None: ...

        def _arm_ping(self) -> None: ...

        def _ping(self) -> None: ...

        async def write(self, data: bytes | str, *, control: bool) -> None: ...

        async def _keep_token(self, command: SaveToken) -> None: ...


def summarise(exc: BaseException) -> str:
    """An exception's type, message and where it was raised, for an ``internal_error`` line."""
    frames = traceback.extract_tb(exc.__traceback__)
    where = f" at {frames[-1].filename}:{frames[-1].lineno}" if frames else ""
    return f"{type(exc).__name__}: {exc}{where}"
