"""What a CQG session leaves the next holder of its user's lease in a fleet, and how the next one
takes it in (the ``handover`` capability: ``CqgSession.handover`` and ``adopt_lease``).

A handover is a mapping of plain JSON values. Every key is optional:

``session_token`` (str, a secret)
    The session's token, while CQG may still hold the session (not once it logged off, was
    displaced or failed). With ``restore`` configured, the successor restores that session
    (RestoreOrJoinSession, the first and only message on its new connection) instead of logging
    on: a restore does not count towards CQG's logon limits, and a holder that lost its lease
    closed its connection without a Logoff precisely so that its session can be restored. Both
    sides register it with ``keep_secret``: it is scrubbed from audit events.
``url`` (str)
    The server the session lives on (after any redirect), where it is restored. A URL the
    successor would not follow as a redirect is not used (nor is the token): it logs on at its
    configured URL instead.
``logon_history`` (``{"last_attempt": float | None, "successes": [float, ...]}``)
    When the user last attempted a full logon and when its logons of the last day succeeded, in
    wall-clock epoch seconds (each process of a fleet has a monotonic clock of its own). The
    successor merges it into its own history (``LogonHistory.merge``), so the minimum interval
    between logons and the daily cap hold across the handover.

Anything else in the mapping is ignored; a part that is not of its form is dropped with a notice.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from brokergate.machines._sansio import Fault, Notice
from brokergate.machines._secret import Secret
from brokergate.machines._states import DISCONNECTED, DISPLACED, FAILED, LOGGING_OUT
from brokergate.machines.cqg.callbacks import redirect_problem

if TYPE_CHECKING:
    from brokergate.machines.cqg.model import CqgSession

SESSION_TOKEN = "session_token"
URL = "url"
LOGON_HISTORY = "logon_history"

#: States in which CQG no longer holds the session for anyone to restore.
_SESSION_GONE = frozenset({DISCONNECTED, LOGGING_OUT, FAILED, DISPLACED})


def _offset(model: CqgSession, now: float) -> float:
    """Wall-clock epoch seconds minus the model's monotonic seconds."""
    return model.wall().timestamp() - now


def handover_of(model: CqgSession) -> dict[str, Any] | None:
    """What ``model`` would leave its successor now, or None when it has nothing to leave."""
    now = model.clock()
    out: dict[str, Any] = {}
    history = model.history.export(now, _offset(model, now))
    if history["last_attempt"] is not None or history["successes"]:
        out[LOGON_HISTORY] = history
    if model.session_token is not None and model.state not in _SESSION_GONE:
        out[SESSION_TOKEN] = model.session_token.reveal()
        out[URL] = model.session_url
    return out or None


def adopt(model: CqgSession, handover: Mapping[str, Any]) -> None:
    """Take in what the previous holder left (before ``lease_granted`` picks its edge)."""
    history = handover.get(LOGON_HISTORY)
    if history is not None:
        problem = _merge_history(model, history)
        if problem is not None:
            _ignored(model, f"its logon history ({problem})")
    if SESSION_TOKEN not in handover:
        return
    # The previous holder's session is the user's current one: any older one of this session's
    # own is not worth restoring, whether or not the handover's can be.
    model.session_token = None
    token = handover[SESSION_TOKEN]
    raw = token.reveal() if isinstance(token, Secret) else token
    url = handover.get(URL) or model.config.url
    if not isinstance(raw, str) or not raw:
        _ignored(model, "its session token (not a non-empty string)")
        return
    model.keep_secret(raw)
    if not isinstance(url, str):
        _ignored(model, "its session (the URL is not a string)")
        return
    problem = None if url == model.config.url else redirect_problem(model, url)
    if problem is not None:
        _ignored(model, f"its session, at a URL this session would not go to: {problem}")
        return
    model.session_token = Secret(raw)
    model.session_url = url


def _merge_history(model: CqgSession, history: object) -> str | None:
    """Merge the previous holder's logon history into the user's; what was wrong with it."""
    if not isinstance(history, Mapping):
        return f"not a mapping: {type(history).__name__}"
    now = model.clock()
    try:
        model.history.merge(history, now, _offset(model, now))
    except (TypeError, ValueError) as exc:
        return str(exc)
    return None


def _ignored(model: CqgSession, what: str) -> None:
    model.emit(Notice("handover_ignored", f"the previous holder's handover: {what}; ignored",
                      Fault.CONFIGURATION))
