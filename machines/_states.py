"""The states every broker's machine shares: their names, the timers they run, and what entering
and leaving each does (``COMMON_STATES``, in the form ``transitions`` takes).

A broker's machine takes the common states it uses, adds callbacks of its own after the common
ones (``broker_states``) and states of its own. Callbacks take the ``EventData`` and only append
commands to the model's outbox: nothing here does I/O.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, cast

from transitions import EventData
from transitions.core import Transition

from brokergate.machines._sansio import CancelTimer, CloseConnection, StartTimer

if TYPE_CHECKING:
    from brokergate.machines._model import LoginModel

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
#: Another session of the fleet holds this account (or is logging it in): this one neither logs
#: in nor displaces it, and waits for the fleet's coordinator (``machines/_edges.fleet_edges``).
#: Never entered without a coordinator that says so: with one process it does not happen.
STANDBY = "standby"
#: A broker whose sessions outlive their connection restores one on a new connection rather
#: than log in again: the state it does that in, where it has one (metrics tell the two apart).
RESTORING = "restoring"
#: A broker whose tokens die at a fixed time each day logs in again after it with this trigger,
#: from ``authenticated``: a planned renewal (the service counts it as healthy while it runs).
RENEW_TRIGGER = "renew"

#: States a session never leaves on its own: a person must act (or a new session be opened).
TERMINAL_STATES = frozenset({FAILED, LOCKED_OUT, PROVISIONING, DISPLACED})

# Timer names.
CONNECT_TIMER = "connect_timeout"
LOGIN_TIMER = "login_timeout"
LOGOUT_TIMER = "logout_timeout"
BACKOFF_TIMER = "backoff"
STABLE_TIMER = "stable"

Callback = Callable[[EventData], Any]


def model_of(ev: EventData) -> LoginModel:
    return cast("LoginModel", ev.model)


def edge(ev: EventData) -> Transition:
    assert ev.transition is not None
    return ev.transition


# --- entry and exit ---------------------------------------------------------------------------


def enter_connecting(ev: EventData) -> None:
    model = model_of(ev)
    model.open_connection(model.connect_url())


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


def enter_standby(ev: EventData) -> None:
    """Another session of the fleet holds the account: close the connection if the session had
    one (a plain close, no logout: for CQG that keeps the session for the new holder to
    restore), and say who holds it (the trigger's detail). The timers of the state left behind
    were cancelled by its exit callbacks. A later lease starts a fresh run of attempts."""
    model = model_of(ev)
    if edge(ev).source != DISCONNECTED:
        model.emit(CloseConnection(model.epoch, 1000, STANDBY))
    model.reason = "lease_lost" if ev.event.name == "lease_lost" else STANDBY
    model.fault = None
    model.detail = ev.kwargs.get("detail")
    model.attempt = model.streak = 0
    model.streak_reason = None


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
    {"name": STANDBY, "on_enter": [enter_standby]},
]


def broker_states(
    *,
    leave_out: Iterable[str] = (),
    also_on_enter: Mapping[str, Sequence[Callback]] | None = None,
    also_on_exit: Mapping[str, Sequence[Callback]] | None = None,
    own: Sequence[Mapping[str, Any]] = (),
) -> list[dict[str, Any]]:
    """A broker's states: the common ones but those it leaves out, each running the broker's
    ``also_on_enter`` / ``also_on_exit`` callbacks after its common ones, then the broker's
    ``own`` states (a broker that does a common state differently leaves it out and declares its
    own). The common states' lists are copied, never changed."""
    left_out = set(leave_out)
    enter = dict(also_on_enter or {})
    leave = dict(also_on_exit or {})
    states: list[dict[str, Any]] = []
    for common in COMMON_STATES:
        name = common["name"]
        if name in left_out:
            continue
        state = {**common}
        if name in enter:
            state["on_enter"] = [*common.get("on_enter", []), *enter.pop(name)]
        if name in leave:
            state["on_exit"] = [*common.get("on_exit", []), *leave.pop(name)]
        states.append(state)
    if enter or leave:
        raise ValueError(f"callbacks for states that are not common states in this machine: "
                         f"{sorted({*enter, *leave})}")
    states += [dict(state) for state in own]
    return states
