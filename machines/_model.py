"""The session model every broker's model extends: one session's state and bookkeeping.

One ``transitions.Machine`` is built per broker at import time and shared by every session of that
broker: a session is a small model object (``__slots__``, no per-session callbacks) that the shared
machine moves between states by ``MACHINE.events[trigger].trigger(model, ...)``. Nothing here does
I/O; callbacks only append commands to the model's outbox, and the engine carries them out.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

from transitions import Machine

from brokergate.machines._config import SessionSettings
from brokergate.machines._policy import Action, Fail, LockOut, Retry
from brokergate.machines._sansio import (
    Closed,
    Command,
    Connected,
    ConnectFailed,
    Event,
    Fault,
    FrameReceived,
    LeaseGranted,
    LeaseLost,
    OpenConnection,
    SharedOutcome,
    Standby,
    Start,
    StartTimer,
    Stop,
    StoredToken,
    TimerFired,
)
from brokergate.machines._secret import Secret
from brokergate.machines._states import (
    BACKOFF_TIMER,
    CONNECT_TIMER,
    DISCONNECTED,
    LOCKED_OUT,
    LOGIN_TIMER,
    LOGOUT_TIMER,
    STABLE_TIMER,
    STANDBY,
)

_shared_rng = random.Random()
#: A model's outbox between events: a callback emits only while ``handle`` runs, and an emit at
#: any other time fails here (a tuple has no append) rather than queue a command no one reads.
_NOT_HANDLING: list[Command] = ()  # type: ignore[assignment]


class LoginModel:
    """One session's state and bookkeeping, driven by its broker's shared machine.

    Subclasses set ``broker`` and ``MACHINE`` and implement the broker's frames
    (``login_frame``, ``logout_frame``, ``on_frame``) and its policies (``close_action``...).
    """

    __slots__ = (
        "_out",
        "_secret_values",
        "attempt",
        "backoff",
        "clock",
        "connect_timeout",
        "delay",
        "detail",
        "epoch",
        "fault",
        "login_timeout",
        "logout_detail",
        "logout_reason",
        "logout_timeout",
        "reason",
        "rng",
        "state",
        "streak",
        "streak_reason",
    )

    broker: ClassVar[str]
    #: The broker's name as people write it ("QST", "CQG", "Firstock"), for error texts.
    broker_name: ClassVar[str]
    MACHINE: ClassVar[Machine]
    #: Whether the engine should probe the connection with WebSocket pings (``ping_interval``).
    #: A broker with its own application-level ping says False and pings in its machine.
    websocket_pings: ClassVar[bool] = True
    #: Timers that declare the connection dead when they fire (held while the engine has
    #: stopped reading for a slow subscriber: no answer can arrive then).
    liveness_timers: ClassVar[frozenset[str]] = frozenset()

    def __init__(
        self,
        settings: SessionSettings,
        *,
        rng: random.Random | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.state = DISCONNECTED
        self.epoch = 0
        self.attempt = 0
        self.streak = 0
        self.streak_reason: str | None = None
        self.reason: str | None = None
        self.detail: str | None = None
        self.fault: Fault | None = None
        self.delay: float | None = None
        self.backoff = settings.backoff
        self.connect_timeout = settings.connect_timeout
        self.login_timeout = settings.login_timeout
        self.logout_timeout = settings.logout_timeout
        self.rng = rng or _shared_rng
        # Read only where a broker's rules are about elapsed time (CQG: restore window, logon
        # throttle); the engine passes trio's clock, machine tests a fake one.
        self.clock = clock
        self.logout_reason: str | None = None
        self.logout_detail: str | None = None
        self._out: list[Command] = _NOT_HANDLING
        # One list for the session's life: the audit logger holds it, so a token obtained later
        # is scrubbed from events too.
        self._secret_values: list[str] = []

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.account!r} state={self.state} epoch={self.epoch}>"

    @property
    def account(self) -> str:
        raise NotImplementedError

    def secrets(self) -> list[str]:
        """Every secret value this session knows (credentials, tokens it obtained)."""
        return self._secret_values

    def keep_secret(self, value: str | Secret | None) -> None:
        """Remember a secret value so that it is scrubbed wherever it might show."""
        raw = value.reveal() if isinstance(value, Secret) else value
        if raw and raw not in self._secret_values:
            self._secret_values.append(raw)

    # -- driving

    def handle(self, event: Event) -> list[Command]:
        """Feed one event; return the commands it produced, in order."""
        out: list[Command] = []
        self._out = out
        try:
            if type(event) is FrameReceived:
                # Frames are nearly everything a session is fed once it is up: straight to the
                # broker's frame handler, not through the match in each ``dispatch``.
                self.on_frame(event)
            else:
                self.dispatch(event)
        finally:
            self._out = _NOT_HANDLING
        return out

    def fire(self, trigger: str, **kwargs: Any) -> None:
        event = self.MACHINE.events[trigger]
        # A signal the current state has no edge for is ignored (a late timer, a close after we
        # gave up). Checked here so transitions does not log a warning for each one.
        if self.state in event.transitions:
            event.trigger(self, **kwargs)

    def emit(self, command: Command) -> None:
        self._out.append(command)

    def dispatch(self, event: Event) -> None:
        """Turn an event other than a frame into a trigger (``handle`` gives frames to
        ``on_frame``). Broker subclasses add their own events and timers."""
        match event:
            case Start():
                self._start("start")
            case Stop(logout=logout):
                self.fire("stop", logout=logout)
            case Connected():
                self.fire("connected")
            case ConnectFailed(detail=detail):
                self.fire("connect_failed", action=self.connect_failed_action(), detail=detail)
            case Closed(code=code, reason=reason):
                detail = f"close {code}" + (f" {reason}" if reason else "")
                self.fire("closed", action=self.close_action(code), close_code=code,
                          detail=detail)
            case TimerFired(name=name):
                self.on_timer(name)
            case Standby(holder=holder):
                self.fire("standby", explain=True,
                          detail=f"another session of the fleet holds the account: {holder}")
            case LeaseGranted(stored=stored, handover=handover):
                if self.state == STANDBY:  # a grant the session does not wait for changes nothing
                    self.adopt_lease(stored, handover)
                    self._start("lease_granted", explain=True)
            case LeaseLost(detail=detail):
                if "lease_lost" in self.MACHINE.events:  # only where a login displaces another
                    self.fire("lease_lost", explain=True,
                              detail=f"the account's lease was lost: {detail}")
            case SharedOutcome(state=state, reason=reason, fault=fault, detail=detail):
                action = LockOut(reason) if state == LOCKED_OUT else Fail(reason)
                self.fire("shared_failure", action=action, fault=fault, detail=detail)

    def _start(self, trigger: str, **kwargs: Any) -> None:
        """Log in (``start``, or a lease granted), unless the configuration cannot work."""
        problems = self.config_problems()
        if problems:
            detail = "; ".join(problems)
            self.fire(trigger, action=Fail("invalid_config", Fault.CONFIGURATION),
                      detail=detail, **kwargs)
        else:
            self.fire(trigger, **kwargs)

    def adopt_lease(self, stored: StoredToken | None,
                    handover: Mapping[str, Any] | None) -> None:
        """Take in what a lease granted carries before the session logs in: the account's
        stored token (brokers with the ``token_store`` capability) and what the previous holder
        left (brokers with the ``handover`` capability). A broker with neither ignores both."""

    def on_timer(self, name: str) -> None:
        if name == BACKOFF_TIMER:
            self.fire("backoff_elapsed")
        elif name == STABLE_TIMER:
            self.fire("stable")
        elif name in (CONNECT_TIMER, LOGIN_TIMER):
            seconds = self.connect_timeout if name == CONNECT_TIMER else self.login_timeout
            self.fire("timeout", action=self.timeout_action(name),
                      detail=f"{name.replace('_', ' ')} after {seconds:g} s")
        elif name == LOGOUT_TIMER:
            self.fire("timeout", detail="no logout response")

    # -- bookkeeping used by the callbacks

    def open_connection(self, url: str) -> None:
        """A new connection (a new epoch, one more attempt), and the deadline for opening it."""
        self.epoch += 1
        self.attempt += 1
        self.emit(OpenConnection(url, self.epoch))
        self.emit(StartTimer(CONNECT_TIMER, self.connect_timeout))

    def next_streak(self, action: Retry) -> int:
        return self.streak + 1 if self.streak_reason == action.reason else 1

    def conclude(self, reason: str, fault: Fault | None, detail: str | None) -> None:
        self.reason = reason
        self.fault = fault
        self.detail = detail

    def outcome(self) -> dict[str, Any]:
        """A machine-readable summary of where the session stands."""
        return {
            "state": self.state,
            "reason": self.reason,
            "fault": self.fault.value if self.fault else None,
            "detail": self.detail,
            "attempts": self.attempt,
        }

    def application_sent(self) -> None:
        """The engine wrote an application message (brokers that track inactivity override)."""

    # -- what each broker supplies

    def config_problems(self) -> list[str]:
        raise NotImplementedError

    def connect_url(self) -> str:
        raise NotImplementedError

    def login_frame(self) -> Command | None:
        raise NotImplementedError

    def logout_frame(self) -> Command:
        raise NotImplementedError

    def on_frame(self, event: FrameReceived) -> None:
        raise NotImplementedError

    def close_action(self, code: int) -> Action:
        raise NotImplementedError

    def connect_failed_action(self) -> Action:
        return Retry("connect_failed", Fault.NETWORK)

    def timeout_action(self, timer: str) -> Action:
        return Retry(timer, Fault.NETWORK)
