"""The conditions and callbacks Firstock's table names (``table.py``): the REST token, the TOTP,
the socket slot and its verdict, the daily renewal. Each condition carries its words for the
diagrams (``machines/_labels.py``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from transitions import EventData

from brokergate.machines._edges import (
    action_of,
    conclude_provider_failed,
    conclude_refused,
    has_credential,
)
from brokergate.machines._labels import condition
from brokergate.machines._policy import Fail, Relogon
from brokergate.machines._sansio import CancelTimer, Fault, StartTimer

if TYPE_CHECKING:
    from brokergate.machines.firstock.model import FirstockSession

HEARTBEAT_TIMER = "heartbeat"
RENEW_TIMER = "renew"


def fs(ev: EventData) -> FirstockSession:
    return cast("FirstockSession", ev.model)


# --- conditions ---------------------------------------------------------------------------------


@condition("a socket is configured", negated="no socket configured")
def wants_socket(ev: EventData) -> bool:
    return fs(ev).config.socket != "none"


@condition("a stored token from today")
def has_current_stored_token(ev: EventData) -> bool:
    return fs(ev).stored_token_is_current()


@condition("a TOTP provider is set", negated="no TOTP provider")
def uses_totp_provider(ev: EventData) -> bool:
    return fs(ev).config.totp_provider is not None


@condition("a token in hand")
def holds_token(ev: EventData) -> bool:
    return fs(ev).token is not None


@condition("a stored token to check")
def holds_candidate(ev: EventData) -> bool:
    """A stored token still waiting for its validity check."""
    return fs(ev).candidate is not None


@condition("a TOTP seed, not yet retried", negated="no seed, or retried once already")
def can_retry_totp(ev: EventData) -> bool:
    """INVALID_TOTP: with a seed, once, in the next window (a provider or fixed code cannot
    know the window)."""
    action = action_of(ev)
    model = fs(ev)
    return (isinstance(action, Relogon) and action.credential == "totp"
            and model.config.totp_seed is not None and not model.totp_retried)


@condition("no fresh login spent on this yet",
           negated="a fresh login already spent on this")
def can_relogin(ev: EventData) -> bool:
    """The token was refused (by the socket or on a REST call): one fresh login, not a loop."""
    return fs(ev).relogged is None


@condition("about the token held now")
def is_current_token(ev: EventData) -> bool:
    """A refusal of the token the session holds now (not of one it has already replaced)."""
    return ev.kwargs.get("generation") == fs(ev).token_generation


@condition("with a code")
def has_code(ev: EventData) -> bool:
    """The TOTP provider answered with a code."""
    return has_credential(ev)


@condition("fewer than 3 sockets of this user here",
           negated="3 sockets of this user here already")
def take_socket_slot(ev: EventData) -> bool:
    """A free socket slot for this user, taken (last condition of its edge, so it is taken
    only when the edge is)."""
    model = fs(ev)
    return model.slots.take(model)


@condition("keeping the session")
def keeps_session(ev: EventData) -> bool:
    """The application leaves without logging out: the token lives on for the next process."""
    return ev.kwargs.get("logout") is False


@condition("Maximum sessions limit")
def socket_limited(ev: EventData) -> bool:
    return bool(ev.kwargs.get("limit"))


@condition("OK / Authentication successful")
def socket_accepted(ev: EventData) -> bool:
    return ev.kwargs.get("ok") is True


@condition("Not_Ok / unauthenticated")
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
    if action.credential != "totp":
        conclude_refused(ev, "a fresh login was refused too")
    elif fs(ev).config.totp_seed is None:
        conclude_refused(ev, "a fixed code or a provider cannot wait for the next window")
    else:
        conclude_refused(ev, "the next window's code was refused too")


def take_totp(ev: EventData) -> None:
    fs(ev).take_totp(ev.kwargs["value"])


def refuse_credential(ev: EventData) -> None:
    # Firstock's policy has no row for it: the provider is the application's, not Firstock's.
    conclude_provider_failed(ev, Fail("credential_unavailable", Fault.CONFIGURATION), "TOTP")


def leave_logged_in(ev: EventData) -> None:
    fs(ev).conclude("session_kept", None,
                    "left without logging out: the token stays valid (and in the token store, "
                    "if the session has one) until the daily expiry")


def take_renewal(ev: EventData) -> None:
    model = fs(ev)
    model.reason, model.fault = "token_renewal", None
    model.detail = "the daily token expiry has passed: logging in again for today's token"


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
