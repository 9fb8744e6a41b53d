"""What every broker's login machine shares: state names, the session model's bookkeeping, and the
transitions that turn a policy decision into a state.

One ``transitions.Machine`` is built per broker at import time and shared by every session of that
broker: a session is a small model object (``__slots__``, no per-session callbacks) that the shared
machine moves between states by ``MACHINE.events[trigger].trigger(model, ...)``. Nothing here does
I/O; callbacks only append commands to the model's outbox.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterable, Sequence
from functools import partial
from typing import Any, ClassVar, cast

from transitions import Event as TransitionsEvent
from transitions import EventData, Machine
from transitions.core import Condition, Transition

from brokergate.machines._policy import (
    Action,
    Disconnect,
    Displace,
    Fail,
    FullLogon,
    LockOut,
    Redirect,
    Relogon,
    Restore,
    Retry,
    Succeed,
)
from brokergate.machines._sansio import (
    CancelTimer,
    CloseConnection,
    Closed,
    Command,
    Connected,
    ConnectFailed,
    Event,
    Fault,
    FrameReceived,
    OpenConnection,
    Start,
    StartTimer,
    Stop,
    TimerFired,
    Transitioned,
)
from brokergate.machines._secret import Secret
from brokergate.machines.backoff import Backoff, backoff_delay

# State names shared by every broker: the same name means the same thing everywhere.
DISCONNECTED = "disconnected"
CONNECTING = "connecting"
AWAITING_LOGIN_RESPONSE = "awaiting_login_response"
AUTHENTICATED = "authenticated"
PROVISIONING = "provisioning"
FAILED = "failed"
LOCKED_OUT = "locked_out"
DISPLACED = "displaced"
BACKOFF = "backoff"
LOGGING_OUT = "logging_out"

#: States a session never leaves on its own: a person must act (or a new session be opened).
TERMINAL_STATES = frozenset({FAILED, LOCKED_OUT, PROVISIONING, DISPLACED})

# Timer names.
CONNECT_TIMER = "connect_timeout"
LOGIN_TIMER = "login_timeout"
LOGOUT_TIMER = "logout_timeout"
BACKOFF_TIMER = "backoff"
STABLE_TIMER = "stable"

_shared_rng = random.Random()
#: A model's outbox between events: a callback emits only while ``handle`` runs, and an emit at
#: any other time fails here (a tuple has no append) rather than queue a command no one reads.
_NOT_HANDLING: list[Command] = ()  # type: ignore[assignment]

Callback = Callable[[EventData], Any]


# --- conditions and callbacks on the failure edges -------------------------------------------


def model_of(ev: EventData) -> LoginModel:
    return cast(LoginModel, ev.model)


def edge(ev: EventData) -> Transition:
    assert ev.transition is not None
    return ev.transition


def action_of(ev: EventData) -> Action | None:
    """The policy action a failure or answer signal carries (``action=`` on the trigger)."""
    action = ev.kwargs.get("action")
    assert action is None or isinstance(action, Action)
    return action


def _as_retry(action: Action | None) -> Retry | None:
    """A restore that cannot happen (restore off, no session yet) is a reconnect like any other."""
    if isinstance(action, Restore):
        return Retry(action.reason, action.fault, immediate=True)
    return action if isinstance(action, Retry) else None


def acts_lock_out(ev: EventData) -> bool:
    return isinstance(action_of(ev), LockOut)


def acts_displace(ev: EventData) -> bool:
    return isinstance(action_of(ev), Displace)


def acts_fail(ev: EventData) -> bool:
    return isinstance(action_of(ev), Fail)


def acts_retry(ev: EventData) -> bool:
    return _as_retry(action_of(ev)) is not None


def acts_succeed(ev: EventData) -> bool:
    return isinstance(action_of(ev), Succeed)


def acts_relogon(ev: EventData) -> bool:
    return isinstance(action_of(ev), Relogon)


def acts_redirect(ev: EventData) -> bool:
    return isinstance(action_of(ev), Redirect)


def acts_full_logon(ev: EventData) -> bool:
    return isinstance(action_of(ev), FullLogon)


def acts_restore(ev: EventData) -> bool:
    return isinstance(action_of(ev), Restore)


def acts_disconnect(ev: EventData) -> bool:
    return isinstance(action_of(ev), Disconnect)


def retry_allowed(ev: EventData) -> bool:
    """The policy says retry, and neither the session's nor the row's attempt bound is spent."""
    action = _as_retry(action_of(ev))
    if action is None:
        return False
    model = model_of(ev)
    limit = model.backoff.max_attempts
    if limit is not None and model.attempt >= limit:
        return False
    return action.max_attempts is None or model.next_streak(action) < action.max_attempts


def take_outcome(ev: EventData) -> None:
    """Record a final verdict (fail / lock_out, or a refused redirect or relogon) on the model."""
    action = action_of(ev)
    assert action is not None
    model_of(ev).conclude(action.reason, action.fault, ev.kwargs.get("detail"))


def take_retry(ev: EventData) -> None:
    """Count the retry and draw the delay the backoff state will wait."""
    action = _as_retry(action_of(ev))
    assert action is not None
    model = model_of(ev)
    model.streak = model.next_streak(action)
    model.streak_reason = action.reason
    # Only a session that had stayed up (attempt count reset) gets an immediate first retry.
    immediate = action.immediate and edge(ev).source == AUTHENTICATED and model.attempt == 0
    model.delay = backoff_delay(
        model.backoff,
        max(model.attempt, 1),
        model.rng.random(),
        immediate=immediate,
        min_delay=max(action.min_delay, float(ev.kwargs.get("min_delay") or 0.0)),
    )
    model.reason = action.reason
    model.fault = action.fault
    model.detail = ev.kwargs.get("detail")


def take_exhausted(ev: EventData) -> None:
    """Retries are spent: fail with the row's own reason, or ``gave_up``."""
    action = _as_retry(action_of(ev))
    assert action is not None
    model = model_of(ev)
    limit = model.backoff.max_attempts
    row_spent = action.max_attempts is not None and model.next_streak(action) >= action.max_attempts
    reason = action.exhausted if row_spent or limit is None else "gave_up"
    cause = ev.kwargs.get("detail") or action.reason
    model.conclude(reason, action.fault, f"after {model.attempt} attempts; last: {cause}")


def failure_edges(trigger: str, sources: Sequence[str], *, lockout: bool = True,
                  displace: bool = False) -> list[dict[str, Any]]:
    """The ways a failure signal can end, decided by the policy action it carries: locked out
    (unless the broker has no lockout, and no ``locked_out`` state), displaced (where another
    login can take the session's place), failed, or retried through backoff.

    Order matters: transitions takes the first edge whose conditions hold.
    """
    src = list(sources)
    locks = [
        {
            "trigger": trigger,
            "source": src,
            "dest": LOCKED_OUT,
            "conditions": [acts_lock_out],
            "before": [take_outcome],
        },
    ]
    displaces = [
        {
            "trigger": trigger,
            "source": src,
            "dest": DISPLACED,
            "conditions": [acts_displace],
            "before": [take_outcome],
        },
    ]
    return [
        *(locks if lockout else []),
        *(displaces if displace else []),
        {
            "trigger": trigger,
            "source": src,
            "dest": FAILED,
            "conditions": [acts_fail],
            "before": [take_outcome],
        },
        {
            "trigger": trigger,
            "source": src,
            "dest": BACKOFF,
            "conditions": [retry_allowed],
            "before": [take_retry],
        },
        {
            "trigger": trigger,
            "source": src,
            "dest": FAILED,
            "conditions": [acts_retry],
            "before": [take_exhausted],
        },
    ]


# --- state entry and exit ---------------------------------------------------------------------


def enter_connecting(ev: EventData) -> None:
    model = model_of(ev)
    model.epoch += 1
    model.attempt += 1
    model.emit(OpenConnection(model.connect_url(), model.epoch))
    model.emit(StartTimer(CONNECT_TIMER, model.connect_timeout))


def exit_connecting(ev: EventData) -> None:
    model_of(ev).emit(CancelTimer(CONNECT_TIMER))


def enter_awaiting(ev: EventData) -> None:
    model = model_of(ev)
    frame = model.login_frame()
    if frame is not None:  # None: the server speaks first (a token in the URL says who we are)
        model.emit(frame)
    model.emit(StartTimer(LOGIN_TIMER, model.login_timeout))


def exit_awaiting(ev: EventData) -> None:
    model_of(ev).emit(CancelTimer(LOGIN_TIMER))


def enter_authenticated(ev: EventData) -> None:
    model = model_of(ev)
    model.reason = model.detail = model.fault = None
    model.emit(StartTimer(STABLE_TIMER, model.backoff.stability_window))


def exit_authenticated(ev: EventData) -> None:
    model_of(ev).emit(CancelTimer(STABLE_TIMER))


def reset_attempts(ev: EventData) -> None:
    """The session stayed up for the stability window: the next drop starts a fresh run."""
    model = model_of(ev)
    model.attempt = 0
    model.streak = 0
    model.streak_reason = None


def enter_backoff(ev: EventData) -> None:
    model = model_of(ev)
    model.emit(CloseConnection(model.epoch, 1000, f"retrying: {model.reason}"))
    model.emit(StartTimer(BACKOFF_TIMER, model.delay or 0.0))


def exit_backoff(ev: EventData) -> None:
    model_of(ev).emit(CancelTimer(BACKOFF_TIMER))


def enter_logging_out(ev: EventData) -> None:
    model = model_of(ev)
    model.emit(model.logout_frame())
    model.emit(StartTimer(LOGOUT_TIMER, model.logout_timeout))


def exit_logging_out(ev: EventData) -> None:
    model_of(ev).emit(CancelTimer(LOGOUT_TIMER))


def close_connection(ev: EventData) -> None:
    model = model_of(ev)
    model.emit(CloseConnection(model.epoch, 1000, model.state))


#: Triggers that leave ``logging_out`` without the broker's answer to the logout: the
#: connection closed, the logout timer ran out, the logout call failed.
UNCONFIRMED_LOGOUT = frozenset({"closed", "timeout", "logout_failed"})


def mark_stopped(ev: EventData) -> None:
    model = model_of(ev)
    if edge(ev).source == LOGGING_OUT:
        # A logout the machine started itself (CQG's inactivity rule) keeps its own reason.
        detail = model.logout_detail
        if ev.event.name in UNCONFIRMED_LOGOUT:
            # The session has ended as asked, but the broker may still hold it: say so, and
            # why, rather than let the trail read like a confirmed logout.
            why = ev.kwargs.get("detail") or ev.event.name
            unconfirmed = f"logout not confirmed by the broker: {why}"
            detail = f"{detail}; {unconfirmed}" if detail else unconfirmed
        model.conclude(model.logout_reason or "logged_out", None, detail)
    else:
        model.conclude("stopped", None, None)


def record(ev: EventData) -> None:
    """after_state_change: one Transitioned per executed transition (the audit trail's source)."""
    model = model_of(ev)
    source = edge(ev).source
    dest = edge(ev).dest or source
    kw = ev.kwargs
    detail = kw.get("detail")
    reason = None
    # Where a policy action (or an end state) moved the session, its callbacks have set the
    # reason and detail on the model; say why.
    action = kw.get("action")
    explained = dest != AUTHENTICATED and (
        (action is not None and not isinstance(action, Succeed))
        or source == BACKOFF
        or kw.get("explain", False)  # a signal whose callbacks say why (e.g. a renewal)
    )
    if explained or dest in TERMINAL_STATES or dest in (BACKOFF, DISCONNECTED):
        detail = model.detail
        reason = model.reason
    model.emit(
        Transitioned(
            trigger=ev.event.name,
            src=source,
            dst=dest,
            epoch=model.epoch,
            attempt=model.attempt,
            reason=reason,
            error_code=kw.get("error_code"),
            close_code=kw.get("close_code"),
            delay=model.delay if dest == BACKOFF else None,
            detail=detail,
        )
    )


COMMON_STATES: list[dict[str, Any]] = [
    {"name": DISCONNECTED, "on_enter": [close_connection]},
    {"name": CONNECTING, "on_enter": [enter_connecting], "on_exit": [exit_connecting]},
    {"name": AWAITING_LOGIN_RESPONSE, "on_enter": [enter_awaiting], "on_exit": [exit_awaiting]},
    {"name": AUTHENTICATED, "on_enter": [enter_authenticated], "on_exit": [exit_authenticated]},
    {"name": PROVISIONING, "on_enter": [close_connection]},
    {"name": FAILED, "on_enter": [close_connection]},
    {"name": LOCKED_OUT, "on_enter": [close_connection]},
    {"name": DISPLACED, "on_enter": [close_connection]},
    {"name": BACKOFF, "on_enter": [enter_backoff], "on_exit": [exit_backoff]},
    {"name": LOGGING_OUT, "on_enter": [enter_logging_out], "on_exit": [exit_logging_out]},
]


# --- the runtime machine ----------------------------------------------------------------------
#
# Stock transitions resolves callbacks by name on each call, writes a debug log record around
# every step (six per transition, each a logger call even when debug logging is off) and looks
# every state up through several layers of accessors. Every callback here is a function taking
# the EventData (send_event=True), every state a string, and the model's state lives in
# ``model.state``, so the runtime machine takes the short road through the same steps, in
# transitions' own order:
#
#   prepare_event; for each edge from the current state: prepare, conditions (first edge whose
#   conditions hold wins), before_state_change, before, exit the source, set the state, enter
#   the destination, on_final, after, after_state_change; finalize_event; on_exception if one
#   raised.
#
# Queueing (queued=True: a trigger fired from inside a callback runs after the current one) is
# transitions' own ``Machine._process``, untouched. The machines are built from the same
# definitions as the diagrams, and tests/test_runtime_equivalence.py drives every broker's models
# through stock transitions and through this machine side by side and compares every command.
# Halves the machine's cost per transition (bench/transitions.py).


class _Condition(Condition):
    def check(self, event_data: EventData) -> bool:
        # A function, never a name: _check_callables refused names when the machine was built.
        return bool(self.func(event_data) == self.target)  # type: ignore[operator]


class _Transition(Transition):
    condition_cls = _Condition

    def execute(self, event_data: EventData) -> bool:
        machine: Any = event_data.machine  # its callback lists hold functions only
        for func in self.prepare:
            func(event_data)  # type: ignore[operator]
        for condition in self.conditions:
            if condition.func(event_data) != condition.target:  # type: ignore[operator]
                return False
        for func in machine.before_state_change:
            func(event_data)
        for func in self.before:
            func(event_data)  # type: ignore[operator]
        if self.dest:  # None: an internal transition, no change of state
            self._change_state(event_data)
        for func in self.after:
            func(event_data)  # type: ignore[operator]
        for func in machine.after_state_change:
            func(event_data)
        return True

    def _change_state(self, event_data: EventData) -> None:
        machine: Any = event_data.machine
        states = machine.states
        for func in states[self.source].on_exit:
            func(event_data)
        dest = states[self.dest]
        model: Any = event_data.model
        model.state = self.dest
        event_data.state = dest
        for func in dest.on_enter:
            func(event_data)
        if dest.final:
            for func in machine.on_final:
                func(event_data)


class _Event(TransitionsEvent):
    def trigger(self, model: Any, *args: Any, **kwargs: Any) -> bool:
        data = EventData(None, self, self.machine, model, args=args, kwargs=kwargs)
        return bool(self.machine._process(partial(self._trigger, data)))

    def _trigger(self, event_data: EventData) -> bool:
        machine: Any = self.machine
        model: Any = event_data.model
        try:
            state = machine.states[model.state]
            event_data.state = state
            edges = self.transitions.get(state.name)
            if edges is not None:  # otherwise ignored, as ignore_invalid_triggers asks
                for func in machine.prepare_event:
                    func(event_data)
                for trans in edges:
                    event_data.transition = trans
                    if trans.execute(event_data):
                        event_data.result = True
                        break
        except BaseException as err:
            event_data.error = err  # type: ignore[assignment]  # as transitions does
            if not machine.on_exception:
                raise
            for func in machine.on_exception:
                func(event_data)
        finally:
            for func in machine.finalize_event:
                func(event_data)
        return bool(event_data.result)


class RuntimeMachine(Machine):
    """``transitions.Machine`` for function callbacks and string states, run the short way
    (see above)."""

    transition_cls = _Transition
    event_cls = _Event

    def callbacks(self, funcs: Iterable[str | Callable[..., bool | None]],
                  event_data: EventData) -> None:
        for func in funcs:
            func(event_data)  # type: ignore[operator]  # functions only (_check_callables)


def _check_callables(machine: Machine) -> None:
    """Refuse a callback or condition given by name: the runtime machine would not resolve it."""
    found: list[object] = [*machine.before_state_change, *machine.after_state_change,
                           *machine.prepare_event, *machine.finalize_event,
                           *machine.on_exception, *machine.on_final]
    for state in machine.states.values():
        found += [*state.on_enter, *state.on_exit]
    for event in machine.events.values():
        for edges in event.transitions.values():
            for t in edges:
                found += [*t.prepare, *t.before, *t.after, *(c.func for c in t.conditions)]
    named = [f for f in found if not callable(f)]
    if named:
        raise TypeError(f"{machine.name}: callbacks must be functions, not names: {named!r}")


def build_machine(
    states: list[dict[str, Any]], transitions: list[dict[str, Any]], name: str,
    machine_class: type[Machine] = RuntimeMachine,
) -> Machine:
    """The one runtime machine of a broker, shared by all its sessions (no diagram extension).

    ``machine_class`` is for tests, which build stock ``transitions.Machine`` from the same
    definitions to check that the runtime machine behaves the same.
    """
    machine = machine_class(
        model=None,
        states=states,
        transitions=transitions,
        initial=DISCONNECTED,
        auto_transitions=False,
        send_event=True,
        queued=True,
        ignore_invalid_triggers=True,
        after_state_change=[record],
        name=name,
    )
    _check_callables(machine)
    return machine


# --- the session model ------------------------------------------------------------------------


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
    first_request_id: ClassVar[int] = 1
    #: Whether the engine should probe the connection with WebSocket pings (``ping_interval``).
    #: A broker with its own application-level ping says False and pings in its machine.
    websocket_pings: ClassVar[bool] = True
    #: Timers that declare the connection dead when they fire (held while the engine has
    #: stopped reading for a slow subscriber: no answer can arrive then).
    liveness_timers: ClassVar[frozenset[str]] = frozenset()

    def __init__(
        self,
        *,
        backoff: Backoff,
        connect_timeout: float,
        login_timeout: float,
        logout_timeout: float,
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
        self.backoff = backoff
        self.connect_timeout = connect_timeout
        self.login_timeout = login_timeout
        self.logout_timeout = logout_timeout
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
                problems = self.config_problems()
                if problems:
                    detail = "; ".join(problems)
                    self.fire("start", action=Fail("invalid_config", Fault.CONFIGURATION),
                              detail=detail)
                else:
                    self.fire("start")
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
