"""The Firstock login as a state machine: a REST token step, then (optionally) a socket attach.

    disconnected --start--> requesting_token            (POST login with a fresh TOTP)
                       | validating_token               (a stored token from today: userDetails)
                       | refreshing_credentials         (a TOTP provider is asked first)
    requesting_token --login_answer--> connecting (socket) | authenticated (no socket)
                     | backoff (429 with Retry-After, 5xx, timeouts; INVALID_TOTP: next window)
                     | failed (INVALID_<field>, unknown) | locked_out (user blocked)
    validating_token --validation_answer--> connecting | authenticated | requesting_token
    connecting --connected--> awaiting_login_response --socket_verdict--> authenticated
    awaiting_login_response --socket_verdict (refused)--> requesting_token (once) | failed
    awaiting_login_response --malformed_frame (a message it cannot read)--> failed
    connecting / awaiting_login_response / authenticated --closed...--> backoff --> connecting
        (the token is still good: no new REST login)
    authenticated --token_refused--> requesting_token (once) | failed
        (an application call was refused the token)
    authenticated --renew--> requesting_token     (before the daily expiry)
    authenticated --stop--> logging_out --logout_answer | logout_failed--> disconnected
    authenticated --stop (keeping the session)--> disconnected   (the token lives on)

The REST policy is ``machines/firstock/policy.py``; the shared failure edges are in
``machines/_base.py``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

from transitions import EventData

from brokergate.machines._base import (
    AUTHENTICATED,
    AWAITING_LOGIN_RESPONSE,
    BACKOFF,
    COMMON_STATES,
    CONNECTING,
    DISCONNECTED,
    DISPLACED,
    FAILED,
    LOCKED_OUT,
    LOGGING_OUT,
    PROVISIONING,
    Callback,
    action_of,
    acts_fail,
    acts_relogon,
    acts_retry,
    acts_succeed,
    build_machine,
    close_connection,
    exit_authenticated,
    failure_edges,
    mark_stopped,
    reset_attempts,
    retry_allowed,
    take_exhausted,
    take_outcome,
    take_retry,
)
from brokergate.machines._policy import Relogon
from brokergate.machines._sansio import CancelTimer, Fault, StartTimer

if TYPE_CHECKING:
    from brokergate.machines.firstock.session import FirstockSession

BROKER = "firstock"

REQUESTING_TOKEN = "requesting_token"
VALIDATING_TOKEN = "validating_token"
REFRESHING_CREDENTIALS = "refreshing_credentials"

HEARTBEAT_TIMER = "heartbeat"
RENEW_TIMER = "renew"


def fs(ev: EventData) -> FirstockSession:
    return cast("FirstockSession", ev.model)


# --- conditions ---------------------------------------------------------------------------------


def wants_socket(ev: EventData) -> bool:
    return fs(ev).config.socket != "none"


def has_current_stored_token(ev: EventData) -> bool:
    return fs(ev).stored_token_is_current()


def uses_totp_provider(ev: EventData) -> bool:
    return fs(ev).config.totp_provider is not None


def holds_token(ev: EventData) -> bool:
    return fs(ev).token is not None


def holds_candidate(ev: EventData) -> bool:
    """A stored token still waiting for its validity check."""
    return fs(ev).candidate is not None


def can_retry_totp(ev: EventData) -> bool:
    """INVALID_TOTP: with a seed, once, in the next window (a provider or fixed code cannot
    know the window)."""
    action = action_of(ev)
    model = fs(ev)
    return (isinstance(action, Relogon) and action.credential == "totp"
            and model.config.totp_seed is not None and not model.totp_retried)


def can_relogin(ev: EventData) -> bool:
    """The token was refused (by the socket or on a REST call): one fresh login, not a loop."""
    return fs(ev).relogged is None


def is_current_token(ev: EventData) -> bool:
    """A refusal of the token the session holds now (not of one it has already replaced)."""
    return ev.kwargs.get("generation") == fs(ev).token_generation


def has_credential(ev: EventData) -> bool:
    return ev.kwargs.get("value") is not None


def take_socket_slot(ev: EventData) -> bool:
    """A free socket slot for this user, taken (last condition of its edge, so it is taken
    only when the edge is)."""
    model = fs(ev)
    return model.slots.take(model)


def keeps_session(ev: EventData) -> bool:
    """The application leaves without logging out: the token lives on for the next process."""
    return ev.kwargs.get("logout") is False


def socket_limited(ev: EventData) -> bool:
    return bool(ev.kwargs.get("limit"))


def socket_accepted(ev: EventData) -> bool:
    return ev.kwargs.get("ok") is True


def socket_refused(ev: EventData) -> bool:
    return ev.kwargs.get("ok") is False


# --- callbacks ----------------------------------------------------------------------------------


def take_token(ev: EventData) -> None:
    fs(ev).take_token(ev.kwargs.get("data"))


def keep_validated(ev: EventData) -> None:
    fs(ev).adopt_stored()


def forget_token(ev: EventData) -> None:
    model = fs(ev)
    model.drop_token()
    action = action_of(ev)
    model.reason = action.reason if action is not None else "session_invalid"
    model.fault = action.fault if action is not None else None
    model.detail = ev.kwargs.get("detail")


def relogin(ev: EventData) -> None:
    """Log in afresh once; remember what refused the token (the trigger), since only a success
    of that same thing with the new token earns another fresh login later."""
    model = fs(ev)
    model.relogged = ev.event.name
    forget_token(ev)


def refuse_token(ev: EventData) -> None:
    model = fs(ev)
    model.drop_token()
    who = "Firstock's socket" if ev.event.name == "socket_verdict" else "Firstock"
    model.conclude("session_invalid", Fault.BROKER,
                   f"{who} refused the token of a fresh login too: {ev.kwargs.get('detail')}")


def refuse_slot(ev: EventData) -> None:
    model = fs(ev)
    model.conclude("socket_limit", Fault.CONFIGURATION,
                   f"this process already holds {model.slots.limit} sockets for "
                   f"{model.config.user_id}, Firstock's limit per user")


def take_socket_limit(ev: EventData) -> None:
    fs(ev).conclude("socket_limit", Fault.ACCOUNT,
                    f"Firstock refused the socket: {ev.kwargs.get('detail')} (other sockets of "
                    "this user are open elsewhere)")


def wait_for_totp_window(ev: EventData) -> None:
    model = fs(ev)
    model.totp_retried = True
    model.delay = model.seconds_to_next_totp_window()
    model.reason, model.fault = "invalid_totp", None
    model.detail = f"{ev.kwargs.get('detail')}; trying once more in the next TOTP window"


def refuse_relogon(ev: EventData) -> None:
    action = action_of(ev)
    assert isinstance(action, Relogon)
    model = fs(ev)
    if action.credential == "totp":
        why = ("a fixed code or a provider cannot wait for the next window"
               if model.config.totp_seed is None else "the next window's code was refused too")
    else:
        why = "a fresh login was refused too"
    detail = ev.kwargs.get("detail")
    model.conclude(action.reason, action.fault, f"{detail}; {why}" if detail else why)


def take_totp(ev: EventData) -> None:
    fs(ev).take_totp(ev.kwargs["value"])


def refuse_credential(ev: EventData) -> None:
    model = fs(ev)
    problem = ev.kwargs.get("problem") or "it returned nothing"
    model.conclude("credential_unavailable", Fault.CONFIGURATION,
                   f"the TOTP provider failed: {problem}")


def leave_logged_in(ev: EventData) -> None:
    fs(ev).conclude("session_kept", None,
                    "left without logging out: the token stays valid (and in the token store, "
                    "if the session has one) until the daily expiry")


def take_renewal(ev: EventData) -> None:
    model = fs(ev)
    model.reason, model.fault = "token_renewal", None
    model.detail = "the daily token expiry is near: logging in again ahead of it"


def count_attach(ev: EventData) -> None:
    model = fs(ev)
    model.socket_attaches += 1
    if model.relogged == "socket_verdict":
        model.relogged = None  # the new token works: a later refusal may have its fresh login


# --- state entry and exit -----------------------------------------------------------------------


def enter_requesting(ev: EventData) -> None:
    model = fs(ev)
    model.attempt += 1  # a REST attempt counts towards the retry bound like a connection
    model.request_login()


def enter_validating(ev: EventData) -> None:
    model = fs(ev)
    model.attempt += 1
    model.request_user_details()


def enter_refreshing(ev: EventData) -> None:
    fs(ev).request_totp()


def enter_logging_out(ev: EventData) -> None:
    fs(ev).request_logout()


def start_heartbeat(ev: EventData) -> None:
    model = fs(ev)
    if model.config.socket == "noren":
        model.emit(StartTimer(HEARTBEAT_TIMER, model.config.heartbeat_interval))


def stop_heartbeat(ev: EventData) -> None:
    fs(ev).emit(CancelTimer(HEARTBEAT_TIMER))


def release_socket(ev: EventData) -> None:
    fs(ev).release_socket_slot()


# --- the table ----------------------------------------------------------------------------------

SOCKET = [CONNECTING, AWAITING_LOGIN_RESPONSE, AUTHENTICATED]


def socket_edges(trigger: str, source: str, conditions: list[Callback],
                 before: list[Callback]) -> list[dict[str, Any]]:
    """Attach the socket if a socket slot of this user is free, else fail without asking."""
    return [
        {"trigger": trigger, "source": source, "dest": CONNECTING,
         "conditions": [*conditions, wants_socket, take_socket_slot], "before": before},
        {"trigger": trigger, "source": source, "dest": FAILED,
         "conditions": [*conditions, wants_socket], "before": [*before, refuse_slot]},
    ]


def token_edges(trigger: str, source: str, conditions: list[Callback],
                before: list[Callback]) -> list[dict[str, Any]]:
    """A token in hand: attach the socket, or be authenticated at once without one."""
    return [
        *socket_edges(trigger, source, conditions, before),
        {"trigger": trigger, "source": source, "dest": AUTHENTICATED,
         "conditions": conditions, "before": before},
    ]


def login_edges(trigger: str, source: str | list[str], conditions: list[Callback],
                before: list[Callback]) -> list[dict[str, Any]]:
    """A new login: through the TOTP provider first if there is one."""
    return [
        {"trigger": trigger, "source": source, "dest": REFRESHING_CREDENTIALS,
         "conditions": [*conditions, uses_totp_provider], "before": before},
        {"trigger": trigger, "source": source, "dest": REQUESTING_TOKEN,
         "conditions": conditions, "before": before},
    ]


TRANSITIONS: list[dict[str, Any]] = [
    {"trigger": "start", "source": DISCONNECTED, "dest": FAILED, "conditions": [acts_fail],
     "before": [take_outcome]},
    {"trigger": "start", "source": DISCONNECTED, "dest": VALIDATING_TOKEN,
     "conditions": [has_current_stored_token]},
    *login_edges("start", DISCONNECTED, [], []),
    # The TOTP provider answered.
    {"trigger": "credential_ready", "source": REFRESHING_CREDENTIALS, "dest": REQUESTING_TOKEN,
     "conditions": [has_credential], "before": [take_totp]},
    {"trigger": "credential_ready", "source": REFRESHING_CREDENTIALS, "dest": FAILED,
     "before": [refuse_credential]},
    # POST login answered.
    *token_edges("login_answer", REQUESTING_TOKEN, [acts_succeed], [take_token]),
    {"trigger": "login_answer", "source": REQUESTING_TOKEN, "dest": BACKOFF,
     "conditions": [acts_relogon, can_retry_totp], "before": [wait_for_totp_window]},
    {"trigger": "login_answer", "source": REQUESTING_TOKEN, "dest": FAILED,
     "conditions": [acts_relogon], "before": [refuse_relogon]},
    *failure_edges("login_answer", [REQUESTING_TOKEN]),
    *failure_edges("login_failed", [REQUESTING_TOKEN, VALIDATING_TOKEN]),
    # userDetails on a stored token answered.
    *token_edges("validation_answer", VALIDATING_TOKEN, [acts_succeed], [keep_validated]),
    # A 5xx or 429 says nothing about the token: ask again after backoff (bounded).
    {"trigger": "validation_answer", "source": VALIDATING_TOKEN, "dest": BACKOFF,
     "conditions": [retry_allowed], "before": [take_retry]},
    {"trigger": "validation_answer", "source": VALIDATING_TOKEN, "dest": FAILED,
     "conditions": [acts_retry], "before": [take_exhausted]},
    # Anything else: the token is no good; log in afresh.
    *login_edges("validation_answer", VALIDATING_TOKEN, [], [forget_token]),
    # The socket.
    {"trigger": "connected", "source": CONNECTING, "dest": AWAITING_LOGIN_RESPONSE},
    {"trigger": "socket_verdict", "source": AWAITING_LOGIN_RESPONSE, "dest": FAILED,
     "conditions": [socket_limited], "before": [take_socket_limit]},
    {"trigger": "socket_verdict", "source": AWAITING_LOGIN_RESPONSE, "dest": AUTHENTICATED,
     "conditions": [socket_accepted], "before": [count_attach]},
    *login_edges("socket_verdict", AWAITING_LOGIN_RESPONSE, [socket_refused, can_relogin],
                 [relogin]),
    {"trigger": "socket_verdict", "source": AWAITING_LOGIN_RESPONSE, "dest": FAILED,
     "conditions": [socket_refused], "before": [refuse_token]},
    # The application's REST call was refused the token (INVALID_JKEY, SESSION_EXPIRED, 401/403).
    *login_edges("token_refused", AUTHENTICATED, [is_current_token, can_relogin], [relogin]),
    {"trigger": "token_refused", "source": AUTHENTICATED, "dest": FAILED,
     "conditions": [is_current_token], "before": [refuse_token]},
    *failure_edges("closed", SOCKET),
    *failure_edges("connect_failed", [CONNECTING]),
    *failure_edges("timeout", [CONNECTING, AWAITING_LOGIN_RESPONSE]),
    *failure_edges("malformed_frame", [AWAITING_LOGIN_RESPONSE]),
    # Backoff: reattach with the token in hand, else log in again.
    {"trigger": "backoff_elapsed", "source": BACKOFF, "dest": VALIDATING_TOKEN,
     "conditions": [holds_candidate]},
    *socket_edges("backoff_elapsed", BACKOFF, [holds_token], []),
    *login_edges("backoff_elapsed", BACKOFF, [], []),
    {"trigger": "stable", "source": AUTHENTICATED, "dest": None, "after": [reset_attempts]},
    *login_edges("renew", AUTHENTICATED, [], [take_renewal]),
    {"trigger": "stop", "source": AUTHENTICATED, "dest": DISCONNECTED,
     "conditions": [keeps_session], "before": [leave_logged_in]},
    {"trigger": "stop", "source": AUTHENTICATED, "dest": LOGGING_OUT},
    {"trigger": "stop",
     "source": [REQUESTING_TOKEN, VALIDATING_TOKEN, REFRESHING_CREDENTIALS, CONNECTING,
                AWAITING_LOGIN_RESPONSE, BACKOFF],
     "dest": DISCONNECTED, "before": [mark_stopped]},
    {"trigger": "logout_answer", "source": LOGGING_OUT, "dest": DISCONNECTED,
     "before": [mark_stopped]},
    {"trigger": "logout_failed", "source": LOGGING_OUT, "dest": DISCONNECTED,
     "before": [mark_stopped]},
]


def _states() -> list[dict[str, Any]]:
    states = [dict(s) for s in COMMON_STATES
              if s["name"] not in (PROVISIONING, LOGGING_OUT, DISPLACED)]
    for state in states:
        if state["name"] == AUTHENTICATED:
            state["on_enter"] = [*state["on_enter"], start_heartbeat]
            state["on_exit"] = [exit_authenticated, stop_heartbeat]
        elif state["name"] in (FAILED, LOCKED_OUT, DISCONNECTED, BACKOFF):
            state["on_enter"] = [*state["on_enter"], release_socket]
    states += [
        {"name": REQUESTING_TOKEN, "on_enter": [close_connection, release_socket,
                                                enter_requesting]},
        {"name": VALIDATING_TOKEN, "on_enter": [enter_validating]},
        {"name": REFRESHING_CREDENTIALS, "on_enter": [close_connection, enter_refreshing]},
        {"name": LOGGING_OUT, "on_enter": [close_connection, release_socket,
                                           enter_logging_out]},
    ]
    return states


STATES = _states()

MACHINE = build_machine(STATES, TRANSITIONS, name="firstock")


# --- words for the diagrams (machines/diagrams.py) ---------------------------------------------

#: Each trigger as Firstock or the engine would say it.
TRIGGER_WORDS = {
    "start": "start",
    "credential_ready": "TOTP provider answered",
    "login_answer": "POST login answered",
    "login_failed": "no answer to the REST call",
    "validation_answer": "POST userDetails answered",
    "connected": "WebSocket open",
    "socket_verdict": "socket verdict (ck / first message)",
    "token_refused": "an application call was refused the jKey",
    "closed": "close",
    "connect_failed": "connection refused / handshake failed",
    "timeout": "timeout",
    "malformed_frame": "unreadable socket message",
    "backoff_elapsed": "backoff elapsed",
    "stable": "up for the stability window",
    "renew": "daily expiry in 5 minutes",
    "stop": "application stops",
    "logout_answer": "POST logout answered",
    "logout_failed": "no answer to the logout",
}
#: Conditions other than the policy's action kinds (those are labelled with the policy's signals).
CONDITION_WORDS = {
    "start:acts_fail": "configuration invalid",
    "has_current_stored_token": "a stored token from today",
    "uses_totp_provider": "a TOTP provider is set",
    "wants_socket": "a socket is configured",
    "take_socket_slot": "fewer than 3 sockets of this user here",
    "can_retry_totp": "a TOTP seed, not yet retried",
    "socket_limited": "Maximum sessions limit",
    "socket_accepted": "OK / Authentication successful",
    "socket_refused": "Not_Ok / unauthenticated",
    "can_relogin": "no fresh login spent on this yet",
    "is_current_token": "about the token held now",
    "holds_candidate": "a stored token to check",
    "holds_token": "a token in hand",
    "keeps_session": "keeping the session",
    "has_credential": "with a code",
    # What a later row of the same trigger implies when an earlier row needed these.
    "not:wants_socket": "no socket configured",
    "not:take_socket_slot": "3 sockets of this user here already",
    "not:can_retry_totp": "no seed, or retried once already",
    "not:uses_totp_provider": "no TOTP provider",
    "not:can_relogin": "a fresh login already spent on this",
}
