"""The Firstock login as a state machine: a REST token step, then (optionally) a socket attach.

    disconnected --start--> requesting_token            (POST login with a fresh TOTP)
                       | validating_token               (a stored token from today: userDetails)
                       | refreshing_credentials         (a TOTP provider is asked first)
                       | failed                         (the configuration cannot work)
    refreshing_credentials --credential_ready--> requesting_token | failed
    requesting_token --login_answer--> connecting (socket) | authenticated (no socket)
                     | backoff (429 with Retry-After, 5xx, timeouts; INVALID_TOTP: next window)
                     | failed (INVALID_<field>, unknown, no socket slot here)
                     | locked_out (user blocked)
    requesting_token / validating_token --login_failed--> backoff | failed | locked_out
    validating_token --validation_answer--> connecting | authenticated
                     | backoff | failed                (5xx, 429: the token is not in question)
                     | requesting_token | refreshing_credentials   (the token is no good)
    connecting --connected--> awaiting_login_response --socket_verdict--> authenticated
    awaiting_login_response --socket_verdict (refused)--> requesting_token (once)
                            | refreshing_credentials (once) | failed
    awaiting_login_response --malformed_frame (a message it cannot read)--> failed
                            | backoff | locked_out
    connecting / awaiting_login_response / authenticated
        --closed--> backoff | failed | locked_out   (backoff: the token is still good)
    connecting --connect_failed--> backoff | failed | locked_out
    connecting / awaiting_login_response --timeout--> backoff | failed | locked_out
    backoff --backoff_elapsed--> connecting (a token in hand: no new REST login)
        | validating_token | requesting_token | refreshing_credentials | failed
    authenticated --token_refused (an application call was refused the token)-->
        requesting_token (once) | refreshing_credentials (once) | failed
    authenticated --renew (the daily expiry has passed)--> requesting_token | refreshing_credentials
    authenticated --stable--> authenticated        (attempt count starts afresh)
    authenticated --stop--> logging_out --logout_answer / logout_failed--> disconnected
    authenticated --stop (keeping the session)--> disconnected   (the token lives on)
    requesting_token / validating_token / refreshing_credentials --stop--> disconnected
    connecting / awaiting_login_response / backoff --stop--> disconnected
    disconnected --standby--> standby   (fleet: another process is logging the account in)
    standby --lease_granted--> validating_token | refreshing_credentials | requesting_token
        | failed                        (where start goes, on the same conditions)
        --shared_failure--> failed | locked_out   (that login failed for good)
        --stop--> disconnected

In a fleet (many processes sharing accounts through a coordinator), the sessions of one Firstock
user share its day token, and a login does not displace another: so no lease, but a login flight.
One session logs the account in; the others wait in ``standby`` for its result. A lease granted
brings the token it obtained (``LeaseGranted.stored``), which takes the stored-token path exactly
as a token from the store would when the session was built: a validity check (userDetails), no
login. Without one (that login failed in a way a retry here may mend), the session logs in
itself. A login that failed in a way a retry would repeat (a wrong password) ends the waiting
sessions the same way (``shared_failure``), without asking Firstock again. Nothing is handed over
besides the token, and a session never loses a lease it does not hold (no ``lease_lost``).

The REST policy is ``machines/firstock/policy.py``; the shared failure edges are in
``machines/_edges.py``; tests/test_machine_prose.py holds the diagram above to the table.
"""

from __future__ import annotations

from typing import Any

from brokergate.machines._edges import (
    FLEET_WORDS,
    acts_relogon,
    acts_retry,
    acts_succeed,
    config_invalid,
    failure_edges,
    fleet_edges,
    mark_stopped,
    reset_attempts,
    retry_allowed,
    take_exhausted,
    take_outcome,
    take_retry,
)
from brokergate.machines._runtime import build_machine
from brokergate.machines._states import (
    AUTHENTICATED,
    AWAITING_LOGIN_RESPONSE,
    BACKOFF,
    CONNECTING,
    DISCONNECTED,
    DISPLACED,
    FAILED,
    LOCKED_OUT,
    LOGGING_OUT,
    PROVISIONING,
    RENEW_TRIGGER,
    STANDBY,
    Callback,
    broker_states,
    close_connection,
)
from brokergate.machines.firstock.callbacks import (
    can_relogin,
    can_retry_totp,
    count_attach,
    enter_logging_out,
    enter_refreshing,
    enter_requesting,
    enter_validating,
    forget_token,
    has_code,
    has_current_stored_token,
    holds_candidate,
    holds_token,
    is_current_token,
    keep_validated,
    keeps_session,
    leave_logged_in,
    refuse_credential,
    refuse_relogon,
    refuse_slot,
    refuse_token,
    release_socket,
    relogin,
    socket_accepted,
    socket_limited,
    socket_refused,
    start_heartbeat,
    stop_heartbeat,
    take_renewal,
    take_socket_limit,
    take_socket_slot,
    take_token,
    take_totp,
    uses_totp_provider,
    wait_for_totp_window,
    wants_socket,
)

BROKER = "firstock"

REQUESTING_TOKEN = "requesting_token"
VALIDATING_TOKEN = "validating_token"
REFRESHING_CREDENTIALS = "refreshing_credentials"

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
    {"trigger": "start", "source": DISCONNECTED, "dest": FAILED, "conditions": [config_invalid],
     "before": [take_outcome]},
    {"trigger": "start", "source": DISCONNECTED, "dest": VALIDATING_TOKEN,
     "conditions": [has_current_stored_token]},
    *login_edges("start", DISCONNECTED, [], []),
    # The TOTP provider answered.
    {"trigger": "credential_ready", "source": REFRESHING_CREDENTIALS, "dest": REQUESTING_TOKEN,
     "conditions": [has_code], "before": [take_totp]},
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
    *login_edges(RENEW_TRIGGER, AUTHENTICATED, [], [take_renewal]),
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
# The fleet's login flight: wait as a standby, then go where start goes (no lease to lose).
TRANSITIONS += fleet_edges(TRANSITIONS)


# No provisioning step and no displacement; logging out is a REST call, not a frame.
STATES = broker_states(
    leave_out=(PROVISIONING, LOGGING_OUT, DISPLACED),
    also_on_enter={AUTHENTICATED: [start_heartbeat], FAILED: [release_socket],
                   LOCKED_OUT: [release_socket], DISCONNECTED: [release_socket],
                   BACKOFF: [release_socket], STANDBY: [release_socket]},
    also_on_exit={AUTHENTICATED: [stop_heartbeat]},
    own=[
        {"name": REQUESTING_TOKEN, "on_enter": [close_connection, release_socket,
                                                enter_requesting]},
        {"name": VALIDATING_TOKEN, "on_enter": [enter_validating]},
        {"name": REFRESHING_CREDENTIALS, "on_enter": [close_connection, enter_refreshing]},
        {"name": LOGGING_OUT, "on_enter": [close_connection, release_socket,
                                           enter_logging_out]},
    ],
)

MACHINE = build_machine(STATES, TRANSITIONS, name=BROKER)


#: Each trigger as Firstock or the engine would say it (machines/diagrams/graph.py).
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
    "renew": "the daily expiry passed a minute ago",
    "stop": "application stops",
    "logout_answer": "POST logout answered",
    "logout_failed": "no answer to the logout",
    **FLEET_WORDS,
    "standby": "fleet: another process is logging the account in",
    "lease_granted": "fleet: this session's turn (or the token another got)",
}
