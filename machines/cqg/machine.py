"""The CQG WebAPI session as a state machine.

    disconnected --start--> connecting --connected--> awaiting_login_response   (Logon sent)
    awaiting_login_response --logon_result--> authenticated
        | refreshing_credentials (103 / 108 with a provider) | connecting (106 redirect)
        | failed (policy.LOGON_RESULTS)
    authenticated --closed / timeout (no Pong) / malformed_frame--> restoring
    restoring --connected--> restoring   (RestoreOrJoinSession sent, first and only message)
    restoring --restore_result--> authenticated (0: `restored` event) | connecting (full logon)
    connecting / awaiting_login_response / restoring --closed / timeout / ...--> backoff | failed
    backoff --backoff_elapsed--> restoring (inside the restore window) | connecting
    authenticated --logged_off--> disconnected | connecting (redirect) | failed
    authenticated --inactive--> logging_out   (CQG's inactivity_timeout: the client must log off)
    authenticated --stop--> logging_out --logged_off | closed | timeout--> disconnected

Every way to a full logon (start, a retry, a refused restore, a redirect, a fresh credential)
passes the logon throttle first: the daily cap on successful logons (failed
`logon_quota_exhausted`) and the minimum spacing between logons (wait in backoff). Redirects and
credential follow-ups are not spaced: CQG asked for them, and each is bounded.

Only the Logon or the RestoreOrJoinSession is written until its result has arrived; the engine's
writer refuses application messages until the machine is authenticated.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

from transitions import EventData

from brokergate.machines._base import (
    AUTHENTICATED,
    AWAITING_LOGIN_RESPONSE,
    BACKOFF,
    COMMON_STATES,
    CONNECT_TIMER,
    CONNECTING,
    DISCONNECTED,
    DISPLACED,
    FAILED,
    LOCKED_OUT,
    LOGGING_OUT,
    LOGIN_TIMER,
    PROVISIONING,
    Callback,
    action_of,
    acts_disconnect,
    acts_displace,
    acts_fail,
    acts_full_logon,
    acts_redirect,
    acts_relogon,
    acts_restore,
    acts_succeed,
    build_machine,
    close_connection,
    edge,
    exit_authenticated,
    failure_edges,
    mark_stopped,
    reset_attempts,
    take_outcome,
)
from brokergate.machines._policy import FullLogon, Redirect, Relogon
from brokergate.machines._sansio import (
    CancelTimer,
    FetchCredential,
    Notice,
    OpenConnection,
    StartTimer,
)
from brokergate.machines._secret import Secret
from brokergate.machines.cqg import cqg_session_pb2 as pb
from brokergate.machines.cqg import policy

BROKER = "cqg"

RESTORING = "restoring"
REFRESHING_CREDENTIALS = "refreshing_credentials"

PING_TIMER = "ping"
PONG_TIMER = "pong"
INACTIVITY_TIMER = "inactivity"

#: Prefix of the tokens in our own Pings, so a Pong can be matched to them.
PING_TOKEN = "brokergate-"

if TYPE_CHECKING:
    from brokergate.machines.cqg.session import CqgSession


def cqg(ev: EventData) -> CqgSession:
    return cast("CqgSession", ev.model)


# --- conditions ---------------------------------------------------------------------------------


def restore_enabled(ev: EventData) -> bool:
    """Restore is configured and the session has a token to restore with."""
    model = cqg(ev)
    return model.config.restore and model.session_token is not None


def settled(ev: EventData) -> bool:
    """The session had stayed up for the stability window: restore at once, not after backoff."""
    return cqg(ev).attempt == 0


def restore_possible(ev: EventData) -> bool:
    """A token to restore with, and the restore window since the loss has not passed."""
    model = cqg(ev)
    if not restore_enabled(ev) or model.lost_at is None:
        return False
    return model.clock() - model.lost_at < model.config.restore_window


def can_refresh(ev: EventData) -> bool:
    """A provider for the credential CQG asked for, not yet used since the last logon."""
    action = action_of(ev)
    assert isinstance(action, Relogon)
    model = cqg(ev)
    return (model.credential_source(action.credential) is not None
            and action.credential not in model.refreshed)


def redirect_allowed(ev: EventData) -> bool:
    model = cqg(ev)
    return model.redirect_problem(ev.kwargs.get("redirect_url")) is None


def quota_spent(ev: EventData) -> bool:
    model = cqg(ev)
    return model.history.successes(model.clock()) >= model.config.daily_logon_limit


def logon_spaced(ev: EventData) -> bool:
    model = cqg(ev)
    return model.history.wait(model.clock(), model.config.min_logon_interval) > 0


def needs_token(ev: EventData) -> bool:
    """An access-token logon with only a provider: fetch the first token before connecting."""
    model = cqg(ev)
    return model.access_token is None and model.config.access_token_provider is not None


def has_credential(ev: EventData) -> bool:
    return ev.kwargs.get("value") is not None


# --- callbacks ----------------------------------------------------------------------------------


def take_logon(ev: EventData) -> None:
    model = cqg(ev)
    result: pb.LogonResult = ev.kwargs["result"]
    if result.HasField("session_token") and result.session_token:
        model.session_token = Secret(result.session_token)
        model.keep_secret(result.session_token)
    else:
        model.session_token = None  # nothing to restore with: a lost connection means a logon
    model.user_id = result.user_id if result.HasField("user_id") else None
    model.server_version = f"{result.protocol_version_major}.{result.protocol_version_minor}"
    model.anchor(result.base_time, result.server_time)
    model.inactivity_timeout = (
        result.inactivity_timeout if result.HasField("inactivity_timeout") else None
    )
    model.session_url = model.logon_url
    model.logons += 1
    model.history.succeeded(model.clock())
    model.redirects = 0
    model.refreshed = frozenset()
    model.one_time_password = None
    if model.logons > 1:
        model.emit(Notice(
            "new_session",
            "logged on with a new session (the previous one could not be restored): "
            "subscribe and request all data again",
            data={"logons": model.logons},
        ))


def take_restore(ev: EventData) -> None:
    model = cqg(ev)
    result: pb.RestoreOrJoinSessionResult = ev.kwargs["result"]
    model.anchor(result.base_time, result.server_time)
    if result.HasField("inactivity_timeout"):
        model.inactivity_timeout = result.inactivity_timeout
    model.restores += 1
    model.lost_at = None
    model.emit(Notice(
        "restored",
        "session restored on a new connection: subscribe and request all data again",
        data={"restores": model.restores},
    ))


def take_loss(ev: EventData) -> None:
    """The connection of an authenticated session is gone: restore from now on."""
    model = cqg(ev)
    model.lost_at = model.clock()
    action = action_of(ev)
    assert action is not None
    model.reason, model.fault, model.detail = action.reason, action.fault, ev.kwargs.get("detail")


def note_loss(ev: EventData) -> None:
    """Leaving authenticated for backoff: the restore window starts now too."""
    model = cqg(ev)
    if edge(ev).source == AUTHENTICATED:
        model.lost_at = model.clock()


def take_relogon(ev: EventData) -> None:
    action = action_of(ev)
    assert isinstance(action, Relogon)
    model = cqg(ev)
    model.refreshed = model.refreshed | {action.credential}
    model.pending_credential = action.credential
    model.reason, model.fault = action.reason, action.fault
    model.detail = ev.kwargs.get("detail")


def refuse_relogon(ev: EventData) -> None:
    action = action_of(ev)
    assert isinstance(action, Relogon)
    model = cqg(ev)
    what = action.credential.replace("_", " ")
    if model.credential_source(action.credential) is None:
        why = f"no {what} provider is configured"
    else:
        why = f"a fresh {what} was refused too"
    detail = ev.kwargs.get("detail")
    model.conclude(action.reason, action.fault, f"{detail}; {why}" if detail else why)


def take_redirect(ev: EventData) -> None:
    model = cqg(ev)
    url = ev.kwargs["redirect_url"]
    model.redirects += 1
    model.logon_url = url
    model.reason, model.fault = "redirected", None
    model.detail = f"redirected to {url} ({model.redirects} in a row)"


def refuse_redirect(ev: EventData) -> None:
    action = action_of(ev)
    assert isinstance(action, Redirect)
    model = cqg(ev)
    problem = model.redirect_problem(ev.kwargs.get("redirect_url"))
    detail = ev.kwargs.get("detail")
    model.conclude(action.reason, action.fault, f"{detail}; {problem}" if detail else problem)


def forget_session(ev: EventData) -> None:
    """The session cannot be restored: a full logon makes a new one."""
    model = cqg(ev)
    action = action_of(ev)
    if isinstance(action, FullLogon):
        model.reason, model.fault = action.reason, action.fault
        model.detail = f"the restore was refused ({ev.kwargs.get('detail')}); logging on again"
        model.emit(Notice("session_lost", model.detail, action.fault))
    elif model.session_token is not None and model.lost_at is not None and not model.config.restore:
        model.reason, model.fault = "restore_disabled", None
        model.detail = "the session is not restored (restore=False); logging on again"
        model.emit(Notice("session_lost", model.detail))
    elif model.session_token is not None and model.lost_at is not None:
        model.reason, model.fault = "restore_window_passed", None
        model.detail = (f"the restore window of {model.config.restore_window:g} s has passed; "
                        "logging on again")
        model.emit(Notice("session_lost", model.detail))
    model.session_token = None
    model.lost_at = None
    model.logon_url = model.config.url


def conclude_quota(ev: EventData) -> None:
    model = cqg(ev)
    limit = model.config.daily_logon_limit
    model.conclude(policy.LOGON_QUOTA.reason, policy.LOGON_QUOTA.fault,
                   f"{limit} successful logons in the last 24 hours (daily_logon_limit); "
                   "CQG caps logons per user per day")


def take_spacing(ev: EventData) -> None:
    model = cqg(ev)
    wait = model.history.wait(model.clock(), model.config.min_logon_interval)
    model.delay = wait
    model.reason, model.fault = "logon_spacing", None
    spacing = (f"the last logon of this user was under {model.config.min_logon_interval:g} s "
               f"ago; the next may go in {wait:.1f} s")
    # After a refused restore, say what CQG said too: it is why a logon is needed at all.
    cause = ev.kwargs.get("detail")
    model.detail = f"{cause}; {spacing}" if cause else spacing


def take_credential(ev: EventData) -> None:
    model = cqg(ev)
    kind = model.pending_credential
    value = ev.kwargs["value"]
    raw = value.reveal() if isinstance(value, Secret) else str(value)
    model.keep_secret(raw)
    if kind == "one_time_password":
        model.one_time_password = Secret(raw)
    else:
        model.access_token = Secret(raw)
    model.pending_credential = None


def refuse_credential(ev: EventData) -> None:
    model = cqg(ev)
    kind = (model.pending_credential or "credential").replace("_", " ")
    problem = ev.kwargs.get("problem") or "it returned nothing"
    model.conclude(policy.CREDENTIAL_FAILED.reason, policy.CREDENTIAL_FAILED.fault,
                   f"the {kind} provider failed: {problem}")
    model.pending_credential = None


def take_first_fetch(ev: EventData) -> None:
    cqg(ev).pending_credential = "access_token"


def take_inactivity(ev: EventData) -> None:
    model = cqg(ev)
    minutes = model.inactivity_timeout
    detail = (f"the application sent nothing for {minutes} minutes (CQG's inactivity_timeout); "
              "logged off as CQG requires")
    model.logout_reason = "inactivity_timeout"
    model.logout_detail = detail
    model.emit(Notice("inactivity_logoff", detail))


# --- state entry and exit -----------------------------------------------------------------------


def enter_restoring(ev: EventData) -> None:
    model = cqg(ev)
    model.epoch += 1
    model.attempt += 1
    model.emit(OpenConnection(model.session_url, model.epoch))
    model.emit(StartTimer(CONNECT_TIMER, model.connect_timeout))


def send_restore(ev: EventData) -> None:
    """The new connection is open: RestoreOrJoinSession is its first and only message."""
    model = cqg(ev)
    model.emit(CancelTimer(CONNECT_TIMER))
    model.emit(model.restore_frame())
    model.emit(StartTimer(LOGIN_TIMER, model.login_timeout))


def exit_restoring(ev: EventData) -> None:
    model = cqg(ev)
    model.emit(CancelTimer(CONNECT_TIMER))
    model.emit(CancelTimer(LOGIN_TIMER))


def enter_refreshing(ev: EventData) -> None:
    model = cqg(ev)
    kind = model.pending_credential
    assert kind is not None
    # The engine always answers, within the bound; the connection is of no more use.
    model.emit(FetchCredential(kind, model.login_timeout))


def start_keepalive(ev: EventData) -> None:
    model = cqg(ev)
    model.last_activity = model.clock()
    model.pong_due = False
    if model.ping_interval is not None:
        model.emit(StartTimer(PING_TIMER, model.ping_interval))
    if model.config.enforce_inactivity_timeout and model.inactivity_timeout:
        model.emit(StartTimer(INACTIVITY_TIMER, model.inactivity_timeout * 60.0))


def stop_keepalive(ev: EventData) -> None:
    model = cqg(ev)
    for name in (PING_TIMER, PONG_TIMER, INACTIVITY_TIMER):
        model.emit(CancelTimer(name))


def restart_at_configured_url(ev: EventData) -> None:
    """A full logon after a retry starts again at the configured URL, not a redirect target."""
    model = cqg(ev)
    model.logon_url = model.config.url


# --- the table ----------------------------------------------------------------------------------

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
    {"trigger": "start", "source": DISCONNECTED, "dest": FAILED, "conditions": [acts_fail],
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


def _states() -> list[dict[str, Any]]:
    # CQG has no lockout answer and no provisioning step: leave those states out of its machine.
    states = [dict(s) for s in COMMON_STATES if s["name"] not in (LOCKED_OUT, PROVISIONING)]
    for state in states:
        if state["name"] == AUTHENTICATED:
            state["on_enter"] = [*state["on_enter"], start_keepalive]
            state["on_exit"] = [exit_authenticated, stop_keepalive]
        elif state["name"] == BACKOFF:
            state["on_enter"] = [*state["on_enter"], restart_at_configured_url]
    states.append({"name": RESTORING, "on_enter": [enter_restoring],
                   "on_exit": [exit_restoring]})
    # The connection (if any) is of no more use while a provider runs: close it.
    states.append({"name": REFRESHING_CREDENTIALS,
                   "on_enter": [close_connection, enter_refreshing]})
    return states


STATES = _states()

MACHINE = build_machine(STATES, TRANSITIONS, name="cqg")


# --- words for the diagrams (machines/diagrams.py) ---------------------------------------------

#: Each trigger as CQG WebAPI or the engine would say it.
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
}
#: Conditions other than the policy's action kinds (those are labelled with the policy's signals).
CONDITION_WORDS = {
    "start:acts_fail": "configuration invalid",
    "needs_token": "only an access-token provider: fetch a token first",
    "quota_spent": "daily logon cap reached",
    "logon_spaced": "too soon after the last logon",
    "can_refresh": "a provider can give a fresh one",
    "redirect_allowed": "allowed host, within the redirect limit",
    "has_credential": "with a value",
    "restore_enabled": "restore on, a session token held",
    "settled": "was up for the stability window",
    "restore_possible": "within the restore window",
    # What a later row of the same trigger implies when an earlier row needed these.
    "not:quota_spent": "under the daily logon cap",
    "not:logon_spaced": "the minimum interval since the last logon has passed",
    "not:can_refresh": "no provider, or it was asked since the last logon",
    "not:redirect_allowed": "host not allowed, or over the redirect limit",
}
