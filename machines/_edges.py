"""The edges every broker's machine shares: how a failure signal ends, decided by the policy
action it carries (``failure_edges``), the conditions that read that action (``acts_*``), the
callbacks that record the verdict on the model (``take_*``), how a session ends when stopped
(``mark_stopped``), the fleet's edges every broker adds (``fleet_edges``), and the audit record of
every transition (``record``).

Every condition is labelled (``machines/_labels.py``) with what it means in a diagram.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from transitions import EventData

from brokergate.machines._labels import condition, implies_not
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
from brokergate.machines._sansio import Transitioned
from brokergate.machines._states import (
    AUTHENTICATED,
    BACKOFF,
    DISCONNECTED,
    DISPLACED,
    FAILED,
    LOCKED_OUT,
    LOGGING_OUT,
    STANDBY,
    TERMINAL_STATES,
    edge,
    model_of,
)
from brokergate.machines.backoff import backoff_delay


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


# --- conditions on the policy's action --------------------------------------------------------


@condition(policy="lock_out")
def acts_lock_out(ev: EventData) -> bool:
    return isinstance(action_of(ev), LockOut)


@condition(policy="displace")
def acts_displace(ev: EventData) -> bool:
    return isinstance(action_of(ev), Displace)


@condition(policy="fail")
def acts_fail(ev: EventData) -> bool:
    return isinstance(action_of(ev), Fail)


@condition(policy="retry")
def acts_retry(ev: EventData) -> bool:
    return _as_retry(action_of(ev)) is not None


@condition(policy="succeed")
def acts_succeed(ev: EventData) -> bool:
    return isinstance(action_of(ev), Succeed)


@condition(policy="relogon")
def acts_relogon(ev: EventData) -> bool:
    return isinstance(action_of(ev), Relogon)


@condition(policy="redirect")
def acts_redirect(ev: EventData) -> bool:
    return isinstance(action_of(ev), Redirect)


@condition(policy="full_logon")
def acts_full_logon(ev: EventData) -> bool:
    return isinstance(action_of(ev), FullLogon)


@condition(policy="restore")
def acts_restore(ev: EventData) -> bool:
    return isinstance(action_of(ev), Restore)


@condition(policy="disconnect")
def acts_disconnect(ev: EventData) -> bool:
    return isinstance(action_of(ev), Disconnect)


@condition("configuration invalid")
def config_invalid(ev: EventData) -> bool:
    """``start`` carries a Fail only when the configuration cannot work
    (``LoginModel.dispatch``)."""
    return acts_fail(ev)


@condition("attempts left", negated="attempts used up", policy="retry")
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


@condition("with a value")
def has_credential(ev: EventData) -> bool:
    """The credential provider the engine ran answered with a value."""
    return ev.kwargs.get("value") is not None


# --- verdicts ---------------------------------------------------------------------------------


def take_outcome(ev: EventData) -> None:
    """Record a final verdict (fail / lock_out, or a refused redirect or relogon) on the model."""
    action = action_of(ev)
    assert action is not None
    model_of(ev).conclude(action.reason, action.fault, ev.kwargs.get("detail"))


def conclude_refused(ev: EventData, why: str | None) -> None:
    """Fail with the action's reason: what the broker said (the trigger's detail), then ``why``
    the session cannot do what the action asked (follow a redirect, fetch a credential)."""
    action = action_of(ev)
    assert action is not None
    detail = ev.kwargs.get("detail")
    model_of(ev).conclude(action.reason, action.fault, f"{detail}; {why}" if detail else why)


def conclude_provider_failed(ev: EventData, verdict: Fail, what: str) -> None:
    """The ``what`` provider the engine ran failed or gave nothing: the login cannot go on."""
    problem = ev.kwargs.get("problem") or "it returned nothing"
    model_of(ev).conclude(verdict.reason, verdict.fault, f"the {what} provider failed: {problem}")


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


@implies_not(retry_allowed)
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


def reset_attempts(ev: EventData) -> None:
    """The session stayed up for the stability window: the next drop starts a fresh run."""
    model = model_of(ev)
    model.attempt = 0
    model.streak = 0
    model.streak_reason = None


# --- how a session ends, and the record of every step -----------------------------------------

#: Triggers that leave ``logging_out`` without the broker's answer to the logout: the
#: connection closed, the logout timer ran out, the logout call failed, the fleet's lease on the
#: account was lost.
UNCONFIRMED_LOGOUT = frozenset({"closed", "timeout", "logout_failed", "lease_lost"})


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


# --- the fleet: standby, the lease, a login another process tried --------------------------------
#
# Processes on many hosts that share accounts (a fleet) agree through a coordinator who logs an
# account in: a lease for brokers where a second login displaces the first, a login flight where
# sessions share a day token. ``LoginModel.dispatch`` turns its events into these triggers:
# ``Standby`` -> standby, ``LeaseGranted`` -> lease_granted, ``LeaseLost`` -> lease_lost,
# ``SharedOutcome`` -> shared_failure. With one process (the default) none is ever fed.

#: The fleet's triggers as the diagrams say them (each table adds them to its words, and may
#: say one in its broker's terms).
FLEET_WORDS: dict[str, str] = {
    "standby": "fleet: another process holds the account",
    "lease_granted": "fleet: the lease is this session's",
    "lease_lost": "fleet: the lease is lost (closed, no logout)",
    "shared_failure": "fleet: another process's login failed for good",
}

#: The triggers only a fleet's coordinator fires.
FLEET_TRIGGERS = frozenset(FLEET_WORDS)


@condition("locked out there")
def shared_lock_out(ev: EventData) -> bool:
    """The login another session of the fleet tried ended locked out (``SharedOutcome``)."""
    return isinstance(action_of(ev), LockOut)


def take_shared_outcome(ev: EventData) -> None:
    """End as the fleet's other session ended: its reason, fault and detail (the ``fault``
    keyword, where given, over the action's: a shared outcome may name none)."""
    action = action_of(ev)
    model = model_of(ev)
    if action is None:
        model.conclude("shared_failure", None, ev.kwargs.get("detail"))
        return
    model.conclude(action.reason, ev.kwargs.get("fault", action.fault), ev.kwargs.get("detail"))


def end_standby(ev: EventData) -> None:
    """The lease is the session's: what it said while it waited no longer holds."""
    model = model_of(ev)
    model.reason = model.detail = model.fault = None


def fleet_edges(
    transitions: Sequence[Mapping[str, Any]],
    *,
    held: Sequence[str] = (),
    resume: Sequence[Mapping[str, Any]] = (),
    lockout: bool = True,
) -> list[dict[str, Any]]:
    """The fleet's edges of a broker's machine, from its own table (``transitions``):

    - ``disconnected --standby--> standby``: another session of the fleet holds the account;
    - ``standby --lease_granted--> ...``: a copy of each of the table's ``start`` rows, from
      standby (the same conditions and callbacks, in the same order), so a lease goes exactly
      where a start goes; the broker's ``resume`` rows (CQG: restore the session the previous
      holder left) come right after the rows that fail an invalid configuration;
    - ``standby --stop--> disconnected``;
    - ``standby --shared_failure--> locked_out | failed``: another session's login of the account
      failed in a way a retry here would repeat (``lockout=False``: a broker without a
      ``locked_out`` state ends failed);
    - for a broker whose second login displaces the first (``Broker.displaces``), ``held``: the
      states that hold or are opening a connection, or will open one (a backoff, a credential
      fetch), each ``--lease_lost--> standby``; and ``logging_out --lease_lost--> disconnected``
      (the session is already leaving as asked: it stops waiting for the answer).
    """
    starts = [row for row in transitions if row["trigger"] == "start"]
    if not starts or any(row["source"] != DISCONNECTED for row in starts):
        raise ValueError("fleet_edges copies the start rows, all from disconnected")
    granted = [{**row, "trigger": "lease_granted", "source": STANDBY,
                "before": [end_standby, *row.get("before", [])]} for row in starts]
    # A configuration that cannot work fails first, as it does on start.
    first = 0
    while first < len(granted) and config_invalid in granted[first].get("conditions", []):
        first += 1
    own = [{**row, "trigger": "lease_granted", "source": STANDBY,
            "before": [end_standby, *row.get("before", [])]} for row in resume]
    edges: list[dict[str, Any]] = [
        {"trigger": "standby", "source": DISCONNECTED, "dest": STANDBY},
        *granted[:first], *own, *granted[first:],
        {"trigger": "stop", "source": STANDBY, "dest": DISCONNECTED, "before": [mark_stopped]},
    ]
    if lockout:
        edges.append({"trigger": "shared_failure", "source": STANDBY, "dest": LOCKED_OUT,
                      "conditions": [shared_lock_out], "before": [take_shared_outcome]})
    edges.append({"trigger": "shared_failure", "source": STANDBY, "dest": FAILED,
                  "before": [take_shared_outcome]})
    if held:
        edges += [
            {"trigger": "lease_lost", "source": list(held), "dest": STANDBY},
            {"trigger": "lease_lost", "source": LOGGING_OUT, "dest": DISCONNECTED,
             "before": [mark_stopped]},
        ]
    return edges


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
