"""The CQG WebAPI session as a state machine.

    disconnected --start--> connecting --connected--> awaiting_login_response   (Logon sent)
                 --start--> refreshing_credentials   (only an access-token provider: fetch one)
                 --start--> backoff | failed         (the logon throttle; an invalid config)
    awaiting_login_response --logon_result--> authenticated
        | refreshing_credentials (103 / 108 with a provider) | connecting (106 redirect)
        | failed (policy.LOGON_RESULTS)
    refreshing_credentials --credential_ready--> connecting | failed
    authenticated --closed / timeout / malformed_frame--> restoring   (timeout: no Pong)
    restoring --connected--> restoring   (RestoreOrJoinSession sent, first and only message)
    restoring --restore_result--> authenticated (0: `restored` event) | connecting (full logon)
        | backoff | failed   (the logon throttle)
    connecting / awaiting_login_response / restoring / authenticated
        --closed / timeout--> backoff | failed
    awaiting_login_response / restoring / authenticated --malformed_frame--> backoff | failed
    connecting / restoring --connect_failed--> backoff | failed
    backoff --backoff_elapsed--> restoring (inside the restore window) | connecting
        | backoff | failed   (the logon throttle)
    awaiting_login_response / restoring / authenticated
        --logged_off--> disconnected | connecting (redirect) | failed | displaced
    authenticated --stable--> authenticated   (attempt count starts afresh)
    authenticated --inactive--> logging_out   (CQG's inactivity_timeout: the client must log off)
    authenticated --stop--> logging_out --logged_off / closed / timeout--> disconnected
    connecting / awaiting_login_response / restoring / refreshing_credentials / backoff
        --stop--> disconnected
    disconnected --standby--> standby          (fleet: another process holds the account)
    standby --lease_granted--> restoring   (restore on, a token: the last holder's or its own)
        | refreshing_credentials | connecting | backoff | failed   (where start goes)
        --shared_failure--> failed   (even one locked out elsewhere: CQG has no locked_out)
        --stop--> disconnected
    connecting / awaiting_login_response / restoring / authenticated --lease_lost--> standby
    refreshing_credentials / backoff --lease_lost--> standby   (each closed, with no Logoff)
    logging_out --lease_lost--> disconnected

In a fleet (many processes sharing accounts through a coordinator), a second logon of a CQG user
displaces the first (LoggedOff 4), so one session of the fleet holds each user's lease and the
others wait in ``standby``: they neither log on nor displace it. A session that loses its lease
stops at once from every state that holds a connection, is opening one, or will open one (backoff,
and refreshing_credentials, whose credential leads to a logon): each would write to CQG or log on
again. Its connection is closed without a Logoff, which keeps the session restorable: the next
holder restores it with the session token the session handed over (``machines/cqg/handover.py``:
the session token, its server, and the user's logon history, so that the spacing and the daily
cap hold across processes). ``logging_out`` has sent its Logoff already and only waits for the
answer: it ends in ``disconnected`` as asked, without waiting. The terminal states and
``disconnected`` hold nothing: a lost lease changes nothing there.

Every way to a full logon (start, a retry, a refused restore, a redirect, a fresh credential)
passes the logon throttle first: the daily cap on successful logons (failed
`logon_quota_exhausted`) and the minimum spacing between logons (wait in backoff). Redirects and
credential follow-ups are not spaced: CQG asked for them, and each is bounded.

Only the Logon or the RestoreOrJoinSession is written until its result has arrived; the engine's
writer refuses application messages until the machine is authenticated.
tests/test_machine_prose.py holds the diagram above to the table.
"""

from __future__ import annotations

from typing import Any

from brokergate.machines._edges import (
    FLEET_WORDS,
    acts_disconnect,
    acts_displace,
    acts_fail,
    acts_full_logon,
    acts_redirect,
    acts_relogon,
    acts_restore,
    acts_succeed,
    config_invalid,
    failure_edges,
    fleet_edges,
    has_credential,
    mark_stopped,
    reset_attempts,
    take_outcome,
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
    RESTORING,
    STANDBY,
    Callback,
    broker_states,
    close_connection,
)
from brokergate.machines.cqg.callbacks import (
    can_refresh,
    conclude_quota,
    enter_refreshing,
    enter_restoring,
    exit_restoring,
    forget_session,
    logon_spaced,
    needs_token,
    note_loss,
    quota_spent,
    redirect_allowed,
    refuse_credential,
    refuse_redirect,
    refuse_relogon,
    rest_as_standby,
    restart_at_configured_url,
    restore_enabled,
    restore_possible,
    send_restore,
    settled,
    start_keepalive,
    stop_keepalive,
    take_credential,
    take_first_fetch,
    take_inactivity,
    take_logon,
    take_loss,
    take_redirect,
    take_relogon,
    take_restore,
    take_resume,
    take_spacing,
)

BROKER = "cqg"

REFRESHING_CREDENTIALS = "refreshing_credentials"

LIVE = [CONNECTING, AWAITING_LOGIN_RESPONSE, RESTORING, AUTHENTICATED]


def logon_edges(
    trigger: str,
    source: str | list[str],
    conditions: list[Callback],
    before: list[Callback],
    *,
    spaced: bool = True,
) -> list[dict[str, Any]]:
    """The ways to a full logon: refused by the daily cap, held back by the spacing, or go."""
    edges: list[dict[str, Any]] = [
        {"trigger": trigger, "source": source, "dest": FAILED,
         "conditions": [*conditions, quota_spent], "before": [*before, conclude_quota]},
    ]
    if spaced:
        edges.append({"trigger": trigger, "source": source, "dest": BACKOFF,
                      "conditions": [*conditions, logon_spaced],
                      "before": [*before, take_spacing]})
    edges.append({"trigger": trigger, "source": source, "dest": CONNECTING,
                  "conditions": conditions, "before": before})
    return edges


def loss_edges(trigger: str, sources: list[str]) -> list[dict[str, Any]]:
    """A lost connection: restore an authenticated session at once if it had settled; otherwise
    the policy's retry (a Restore that cannot happen at once retries through backoff)."""
    return [
        {"trigger": trigger, "source": AUTHENTICATED, "dest": RESTORING,
         "conditions": [acts_restore, restore_enabled, settled], "before": [take_loss]},
        *[{**e, "before": [note_loss, *e["before"]]}
          for e in failure_edges(trigger, sources, lockout=False)],
    ]


TRANSITIONS: list[dict[str, Any]] = [
    # A configuration that cannot work never reaches CQG (101 counts towards a lockout).
    {"trigger": "start", "source": DISCONNECTED, "dest": FAILED, "conditions": [config_invalid],
     "before": [take_outcome]},
    {"trigger": "start", "source": DISCONNECTED, "dest": REFRESHING_CREDENTIALS,
     "conditions": [needs_token], "before": [take_first_fetch]},
    *logon_edges("start", DISCONNECTED, [], []),
    {"trigger": "connected", "source": CONNECTING, "dest": AWAITING_LOGIN_RESPONSE},
    {"trigger": "connected", "source": RESTORING, "dest": None, "after": [send_restore]},
    # LogonResult
    {"trigger": "logon_result", "source": AWAITING_LOGIN_RESPONSE, "dest": AUTHENTICATED,
     "conditions": [acts_succeed], "before": [take_logon]},
    {"trigger": "logon_result", "source": AWAITING_LOGIN_RESPONSE, "dest": REFRESHING_CREDENTIALS,
     "conditions": [acts_relogon, can_refresh], "before": [take_relogon]},
    {"trigger": "logon_result", "source": AWAITING_LOGIN_RESPONSE, "dest": FAILED,
     "conditions": [acts_relogon], "before": [refuse_relogon]},
    *logon_edges("logon_result", AWAITING_LOGIN_RESPONSE, [acts_redirect, redirect_allowed],
                 [take_redirect], spaced=False),
    {"trigger": "logon_result", "source": AWAITING_LOGIN_RESPONSE, "dest": FAILED,
     "conditions": [acts_redirect], "before": [refuse_redirect]},
    {"trigger": "logon_result", "source": AWAITING_LOGIN_RESPONSE, "dest": FAILED,
     "conditions": [acts_fail], "before": [take_outcome]},
    # Fresh credentials (one-time password, access token)
    *logon_edges("credential_ready", REFRESHING_CREDENTIALS, [has_credential],
                 [take_credential], spaced=False),
    {"trigger": "credential_ready", "source": REFRESHING_CREDENTIALS, "dest": FAILED,
     "before": [refuse_credential]},
    # RestoreOrJoinSessionResult
    {"trigger": "restore_result", "source": RESTORING, "dest": AUTHENTICATED,
     "conditions": [acts_succeed], "before": [take_restore]},
    *logon_edges("restore_result", RESTORING, [acts_full_logon], [forget_session]),
    # LoggedOff
    {"trigger": "logged_off", "source": LOGGING_OUT, "dest": DISCONNECTED,
     "before": [mark_stopped]},
    {"trigger": "logged_off", "source": LIVE[1:], "dest": DISCONNECTED,
     "conditions": [acts_disconnect], "before": [take_outcome]},
    *logon_edges("logged_off", LIVE[1:], [acts_redirect, redirect_allowed],
                 [forget_session, take_redirect], spaced=False),
    {"trigger": "logged_off", "source": LIVE[1:], "dest": FAILED,
     "conditions": [acts_redirect], "before": [refuse_redirect]},
    {"trigger": "logged_off", "source": LIVE[1:], "dest": FAILED,
     "conditions": [acts_fail], "before": [take_outcome]},
    {"trigger": "logged_off", "source": LIVE[1:], "dest": DISPLACED,
     "conditions": [acts_displace], "before": [take_outcome]},
    # Lost connections, timeouts, bad frames
    *loss_edges("closed", LIVE),
    *loss_edges("timeout", LIVE),
    *loss_edges("malformed_frame", LIVE[1:]),
    *failure_edges("connect_failed", [CONNECTING, RESTORING], lockout=False),
    # Backoff ends in a restore while the window lasts, else in a (throttled) full logon.
    {"trigger": "backoff_elapsed", "source": BACKOFF, "dest": RESTORING,
     "conditions": [restore_possible]},
    *logon_edges("backoff_elapsed", BACKOFF, [], [forget_session]),
    {"trigger": "stable", "source": AUTHENTICATED, "dest": None, "after": [reset_attempts]},
    {"trigger": "inactive", "source": AUTHENTICATED, "dest": LOGGING_OUT,
     "before": [take_inactivity]},
    {"trigger": "stop", "source": AUTHENTICATED, "dest": LOGGING_OUT},
    {"trigger": "stop",
     "source": [CONNECTING, AWAITING_LOGIN_RESPONSE, RESTORING, REFRESHING_CREDENTIALS, BACKOFF],
     "dest": DISCONNECTED, "before": [mark_stopped]},
    {"trigger": "closed", "source": LOGGING_OUT, "dest": DISCONNECTED, "before": [mark_stopped]},
    {"trigger": "timeout", "source": LOGGING_OUT, "dest": DISCONNECTED, "before": [mark_stopped]},
]
# The fleet: a lease granted with a session to restore restores it; otherwise it goes where
# start goes. A lost lease sends each state that holds, opens or will open a connection to
# standby.
TRANSITIONS += fleet_edges(
    TRANSITIONS,
    held=[*LIVE, REFRESHING_CREDENTIALS, BACKOFF],
    resume=[{"dest": RESTORING, "conditions": [restore_enabled], "before": [take_resume]}],
    lockout=False,
)


# CQG has no lockout answer and no provisioning step: those states are not in its machine.
STATES = broker_states(
    leave_out=(LOCKED_OUT, PROVISIONING),
    also_on_enter={AUTHENTICATED: [start_keepalive], BACKOFF: [restart_at_configured_url],
                   STANDBY: [rest_as_standby]},
    also_on_exit={AUTHENTICATED: [stop_keepalive]},
    own=[
        {"name": RESTORING, "on_enter": [enter_restoring], "on_exit": [exit_restoring]},
        # The connection (if any) is of no more use while a provider runs: close it.
        {"name": REFRESHING_CREDENTIALS, "on_enter": [close_connection, enter_refreshing]},
    ],
)

MACHINE = build_machine(STATES, TRANSITIONS, name=BROKER)


#: Each trigger as CQG WebAPI or the engine would say it (machines/diagrams/graph.py).
TRIGGER_WORDS = {
    "start": "start",
    "connected": "WebSocket open (Logon or RestoreOrJoinSession sent)",
    "logon_result": "LogonResult",
    "restore_result": "RestoreOrJoinSessionResult",
    "logged_off": "LoggedOff",
    "credential_ready": "provider answered",
    "inactive": "inactivity timeout reached (Logoff sent)",
    "closed": "close",
    "connect_failed": "connection refused / handshake failed",
    "timeout": "timeout",
    "malformed_frame": "malformed frame",
    "backoff_elapsed": "backoff elapsed",
    "stable": "up for the stability window",
    "stop": "application stops",
    **FLEET_WORDS,
    "lease_granted": "fleet: the lease is this session's (with a handover)",
}
