"""The conditions and callbacks CQG's table names (``table.py``): logons, restores, redirects,
fresh credentials, the logon throttle and the keepalive. Each condition carries its words for the
diagrams (``machines/_labels.py``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, cast
from urllib.parse import urlsplit

from transitions import EventData

from brokergate.machines._config import url_problems
from brokergate.machines._edges import action_of, conclude_provider_failed, conclude_refused
from brokergate.machines._labels import condition
from brokergate.machines._policy import FullLogon, Redirect, Relogon
from brokergate.machines._sansio import CancelTimer, FetchCredential, Notice, StartTimer
from brokergate.machines._secret import Secret
from brokergate.machines._states import (
    AUTHENTICATED,
    CONNECT_TIMER,
    DISCONNECTED,
    LOGIN_TIMER,
    edge,
)
from brokergate.machines.cqg import cqg_session_pb2 as pb
from brokergate.machines.cqg import policy
from brokergate.machines.cqg.config import host_allowed

if TYPE_CHECKING:
    from brokergate.machines.cqg.model import CqgSession

PING_TIMER = "ping"
PONG_TIMER = "pong"
INACTIVITY_TIMER = "inactivity"

#: Prefix of the tokens in our own Pings, so a Pong can be matched to them.
PING_TOKEN = "brokergate-"


def cqg(ev: EventData) -> CqgSession:
    return cast("CqgSession", ev.model)


def redirect_problem(model: CqgSession, url: str | None) -> str | None:
    """Why a redirect to ``url`` is refused, or None when it may be followed."""
    limit = model.config.max_redirects
    if not url:
        return "CQG redirected without a redirect_url"
    problems = url_problems(url, secure="wss", plain="ws", what="redirect_url")
    if problems:
        return problems[0]
    host = urlsplit(url).hostname or ""
    allowed = model.config.allowed_redirect_hosts()
    if not host_allowed(host, allowed):
        return (f"redirect to {host} refused: not in the allowed hosts "
                f"({', '.join(allowed) or 'none'}; set redirect_hosts)")
    if model.redirects >= limit:
        return f"redirect to {url} refused: already {model.redirects} redirects in a row"
    return None


# --- conditions ---------------------------------------------------------------------------------


@condition("restore on, a session token held")
def restore_enabled(ev: EventData) -> bool:
    """Restore is configured and the session has a token to restore with."""
    model = cqg(ev)
    return model.config.restore and model.session_token is not None


@condition("was up for the stability window")
def settled(ev: EventData) -> bool:
    """The session had stayed up for the stability window: restore at once, not after backoff."""
    return cqg(ev).attempt == 0


@condition("within the restore window")
def restore_possible(ev: EventData) -> bool:
    """A token to restore with, and the restore window since the loss has not passed."""
    model = cqg(ev)
    if not restore_enabled(ev) or model.lost_at is None:
        return False
    return model.clock() - model.lost_at < model.config.restore_window


@condition("a provider can give a fresh one",
           negated="no provider, or it was asked since the last logon")
def can_refresh(ev: EventData) -> bool:
    """A provider for the credential CQG asked for, not yet used since the last logon."""
    action = action_of(ev)
    assert isinstance(action, Relogon)
    model = cqg(ev)
    return (model.credential_source(action.credential) is not None
            and action.credential not in model.refreshed)


@condition("allowed host, within the redirect limit",
           negated="host not allowed, or over the redirect limit")
def redirect_allowed(ev: EventData) -> bool:
    model = cqg(ev)
    return redirect_problem(model, ev.kwargs.get("redirect_url")) is None


@condition("daily logon cap reached", negated="under the daily logon cap")
def quota_spent(ev: EventData) -> bool:
    model = cqg(ev)
    return model.history.successes(model.clock()) >= model.config.daily_logon_limit


@condition("too soon after the last logon",
           negated="the minimum interval since the last logon has passed")
def logon_spaced(ev: EventData) -> bool:
    model = cqg(ev)
    return model.history.wait(model.clock(), model.config.min_logon_interval) > 0


@condition("only an access-token provider: fetch a token first")
def needs_token(ev: EventData) -> bool:
    """An access-token logon with only a provider: fetch the first token before connecting."""
    model = cqg(ev)
    return model.access_token is None and model.config.access_token_provider is not None


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
    what = action.credential.replace("_", " ")
    if cqg(ev).credential_source(action.credential) is None:
        conclude_refused(ev, f"no {what} provider is configured")
    else:
        conclude_refused(ev, f"a fresh {what} was refused too")


def take_redirect(ev: EventData) -> None:
    model = cqg(ev)
    url = ev.kwargs["redirect_url"]
    model.redirects += 1
    model.logon_url = url
    model.reason, model.fault = "redirected", None
    model.detail = f"redirected to {url} ({model.redirects} in a row)"


def refuse_redirect(ev: EventData) -> None:
    assert isinstance(action_of(ev), Redirect)
    conclude_refused(ev, redirect_problem(cqg(ev), ev.kwargs.get("redirect_url")))


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
    conclude_provider_failed(ev, policy.CREDENTIAL_FAILED, kind)
    model.pending_credential = None


def take_resume(ev: EventData) -> None:
    """The lease is the session's, with a CQG session to restore (the one the previous holder
    left, or this session's own from before it lost the lease): restore it, as after a lost
    connection; the restore window starts now."""
    model = cqg(ev)
    model.lost_at = model.clock()
    model.reason, model.fault = "session_handover", None
    model.detail = (f"the lease is this session's: restoring the session at "
                    f"{model.session_url} rather than logging on")


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
    """A new connection to the session's server, like ``connecting``'s (``enter_connecting``)."""
    model = cqg(ev)
    model.open_connection(model.session_url)


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


def rest_as_standby(ev: EventData) -> None:
    """Waiting as a standby of the fleet: a later lease starts afresh at the configured URL,
    with no one-time password or credential request left over. A session token is kept (this
    session may restore its own session if the lease comes back without another's), unless the
    session had ended (a standby from ``disconnected``: logged off, or never logged on)."""
    model = cqg(ev)
    if edge(ev).source == DISCONNECTED:
        model.session_token = None
    model.lost_at = None
    model.logon_url = model.config.url
    model.redirects = 0
    model.one_time_password = None
    model.pending_credential = None
    model.refreshed = frozenset()


def restart_at_configured_url(ev: EventData) -> None:
    """A full logon after a retry starts again at the configured URL, not a redirect target."""
    model = cqg(ev)
    model.logon_url = model.config.url
