"""The QST login as a state machine.

    disconnected --start--> connecting --connected--> awaiting_login_response
                 --start--> failed                  (configuration invalid: QST is not asked)
    awaiting_login_response --login_response--> authenticated
                            --provisioning_messages--> provisioning
                            --error_message--> failed | locked_out | backoff   (policy.ERROR_CODES)
    connecting / awaiting_login_response / authenticated
                            --closed--> backoff | failed | locked_out | displaced
                                             (policy: close 4101 says another login displaced it)
    connecting --connect_failed--> backoff | failed | locked_out
    connecting / awaiting_login_response --timeout--> backoff | failed | locked_out
    awaiting_login_response / authenticated --malformed_frame--> backoff | failed | locked_out
    backoff --backoff_elapsed--> connecting
    authenticated --stable--> authenticated        (attempt count starts afresh)
    authenticated --stop--> logging_out --logout_response / closed / timeout--> disconnected
    connecting / awaiting_login_response / backoff --stop--> disconnected
    disconnected --standby--> standby          (fleet: another process holds the account)
    standby --lease_granted--> connecting | failed   (where start goes, on the same conditions)
            --shared_failure--> failed | locked_out   (the holder's login failed for good)
            --stop--> disconnected
    connecting / awaiting_login_response / authenticated / backoff --lease_lost--> standby
    logging_out --lease_lost--> disconnected

In a fleet (many processes sharing accounts through a coordinator), a second login of a QST user
displaces the first (close 4101), so one session of the fleet holds each account's lease and the
others wait in ``standby``: they neither log in nor displace it. A session that loses its lease
stops at once from every state that holds a connection, is opening one or will open one (backoff):
each would write to QST or log in again, displacing the new holder. The connection is closed
without a LogoutRequest. ``logging_out`` has sent its LogoutRequest already and only waits for the
answer: it ends in ``disconnected`` as the application asked, without waiting. The terminal states
and ``disconnected`` hold nothing: a lost lease changes nothing there. QST hands nothing over to the
next holder (a QST session ends with its connection).

The table below is the whole machine; ``machines/_edges.py`` holds the failure edges every
failure signal fans into, chosen by the action the policy table gives, and
tests/test_machine_prose.py holds the diagram above to the table.

QST closes the connection if any request arrives before the login response, so the login request
is the only frame this machine sends until it is authenticated; the engine's writer refuses
application frames until then.
"""

from __future__ import annotations

from typing import Any

from brokergate.machines._edges import (
    FLEET_WORDS,
    config_invalid,
    failure_edges,
    fleet_edges,
    mark_stopped,
    reset_attempts,
    take_outcome,
)
from brokergate.machines._runtime import build_machine
from brokergate.machines._states import (
    AUTHENTICATED,
    AWAITING_LOGIN_RESPONSE,
    BACKOFF,
    COMMON_STATES,
    CONNECTING,
    DISCONNECTED,
    FAILED,
    LOGGING_OUT,
    PROVISIONING,
)
from brokergate.machines.qst.callbacks import take_grant, take_provisioning

BROKER = "qst"

ACTIVE = [CONNECTING, AWAITING_LOGIN_RESPONSE, AUTHENTICATED]

TRANSITIONS: list[dict[str, Any]] = [
    # A configuration that cannot work never reaches the broker: a doomed login would count
    # towards the account's failed-login limit.
    {"trigger": "start", "source": DISCONNECTED, "dest": FAILED, "conditions": [config_invalid],
     "before": [take_outcome]},
    {"trigger": "start", "source": DISCONNECTED, "dest": CONNECTING},
    {"trigger": "connected", "source": CONNECTING, "dest": AWAITING_LOGIN_RESPONSE},
    {"trigger": "login_response", "source": AWAITING_LOGIN_RESPONSE, "dest": AUTHENTICATED,
     "before": [take_grant]},
    {"trigger": "provisioning_messages", "source": AWAITING_LOGIN_RESPONSE, "dest": PROVISIONING,
     "before": [take_provisioning]},
    *failure_edges("error_message", [AWAITING_LOGIN_RESPONSE]),
    *failure_edges("connect_failed", [CONNECTING]),
    *failure_edges("timeout", [CONNECTING, AWAITING_LOGIN_RESPONSE]),
    *failure_edges("closed", ACTIVE, displace=True),
    *failure_edges("malformed_frame", [AWAITING_LOGIN_RESPONSE, AUTHENTICATED]),
    {"trigger": "backoff_elapsed", "source": BACKOFF, "dest": CONNECTING},
    {"trigger": "stable", "source": AUTHENTICATED, "dest": None, "after": [reset_attempts]},
    {"trigger": "stop", "source": AUTHENTICATED, "dest": LOGGING_OUT},
    {"trigger": "stop", "source": [CONNECTING, AWAITING_LOGIN_RESPONSE, BACKOFF],
     "dest": DISCONNECTED, "before": [mark_stopped]},
    {"trigger": "logout_response", "source": LOGGING_OUT, "dest": DISCONNECTED,
     "before": [mark_stopped]},
    {"trigger": "closed", "source": LOGGING_OUT, "dest": DISCONNECTED, "before": [mark_stopped]},
    {"trigger": "timeout", "source": LOGGING_OUT, "dest": DISCONNECTED, "before": [mark_stopped]},
]
# A lost lease sends each state that holds, opens or will open a connection to standby.
TRANSITIONS += fleet_edges(TRANSITIONS, held=[*ACTIVE, BACKOFF])

STATES = COMMON_STATES

MACHINE = build_machine(STATES, TRANSITIONS, name=BROKER)

#: Each trigger as QST or the engine would say it (machines/diagrams/graph.py).
TRIGGER_WORDS = {
    "start": "start",
    "connected": "WebSocket open (LoginRequest sent)",
    "login_response": "LoginResponse",
    "provisioning_messages": "LoginResponse with provisioning messages",
    "error_message": "ErrorMessage",
    "closed": "close",
    "connect_failed": "connection refused / handshake failed",
    "timeout": "timeout",
    "malformed_frame": "malformed frame",
    "backoff_elapsed": "backoff elapsed",
    "stable": "up for the stability window",
    "stop": "application stops",
    "logout_response": "LogoutResponse",
    **FLEET_WORDS,
}
