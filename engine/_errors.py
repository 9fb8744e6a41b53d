"""Errors a caller of brokergate can meet. Each says what happened and whose move it is."""

from __future__ import annotations

from typing import Any

from brokergate.machines import Fault
from brokergate.machines._sansio import BrokergateError


class ConfigurationError(BrokergateError, ValueError):
    """The configuration cannot work; nothing was sent to the broker."""

    fault = Fault.CONFIGURATION


class CoordinatorUnavailable(BrokergateError):
    """The fleet's coordinator (Redis) could not be reached, or stopped answering: the network's
    or Redis's fault, not the configuration's. What needed it waits or fails closed
    (docs/fleet.md); a request that needed a rate-limit slot from it was not sent."""

    fault = Fault.NETWORK


class NotAuthenticated(BrokergateError):
    """An application request was refused because the session is not authenticated.

    Nothing was written to the broker. Callers who want to wait use
    ``await session.wait_authenticated()`` first.
    """

    def __init__(self, broker: str, state: str) -> None:
        self.broker = broker
        self.state = state
        super().__init__(
            f"{broker}: request refused, the session is {state}, not authenticated; "
            "nothing was sent (await session.wait_authenticated() first)"
        )


class InvalidMessage(BrokergateError, ValueError):
    """The application's message was refused before sending (not a valid message, or one only
    the session itself may send). Nothing was written."""


class ConnectionLost(BrokergateError):
    """The connection dropped while a request waited for its answer.

    The broker may or may not have acted on the request.
    """


class RequestFailed(BrokergateError):
    """The broker answered an application request with an error."""

    fault = Fault.BROKER

    def __init__(self, broker: str, code: int | None, message: str, *,
                 name: str | None = None, token_refused: bool = False) -> None:
        self.broker = broker
        #: The broker's numeric code (for a REST call: the HTTP status).
        self.code = code
        self.message = message
        #: The broker's error name, where it names its errors (such as ``ORDER_NOT_FOUND``).
        self.name = name
        #: The broker refused the session's token: the session logs in again (once).
        self.token_refused = token_refused
        shown = f"code {code}: " if code is not None else ""
        super().__init__(f"{broker} rejected the request ({shown}{message!r})")


class SessionError(BrokergateError):
    """The session ended without (or lost) authentication. See ``reason`` and ``fault``."""

    def __init__(self, outcome: dict[str, Any], *, broker: str, session_id: str, account: str):
        self.outcome = outcome
        self.broker = broker
        self.session_id = session_id
        self.account = account
        self.state: str = outcome["state"]
        self.reason: str | None = outcome.get("reason")
        fault = outcome.get("fault")
        self.fault: Fault | None = Fault(fault) if fault else None
        self.detail: str | None = outcome.get("detail")
        text = f"{broker} session {session_id} for {account!r} is {self.state}"
        if self.reason:
            text += f": {self.reason}"
        if self.detail:
            text += f" ({self.detail})"
        if self.fault:
            text += f" [{_FAULT_HINTS[self.fault]}]"
        super().__init__(text)


_FAULT_HINTS = {
    Fault.CONFIGURATION: "fix the configuration or credentials",
    Fault.ACCOUNT: "the account needs attention at the broker",
    Fault.BROKER: "the broker failed or misbehaved",
    Fault.NETWORK: "the network path to the broker failed",
    Fault.INTERNAL: "a bug in brokergate; please report it",
}


class LoginFailed(SessionError):
    """The broker refused the login, or it cannot work; retrying would not help."""


class Displaced(LoginFailed):
    """Another connection of the same user took over; brokergate does not fight back."""


class LockedOut(SessionError):
    """The broker locked the account. Do not retry: contact the broker."""


class ProvisioningRequired(SessionError):
    """The user has pending agreements to accept with the broker before logging in."""

    @property
    def messages(self) -> list[dict[str, Any]]:
        return list(self.outcome.get("provisioning_messages", []))


class GaveUp(SessionError):
    """Retries were exhausted (timeouts, dropped connections, transient broker errors)."""


class SessionClosed(SessionError):
    """The session was stopped or logged out."""


def cannot_listen(exc: BaseException) -> OSError | None:
    """The ``OSError`` of a server that could not listen (the address in use, or not this
    host's): bare, or alone in the exception groups of the nurseries it passed through."""
    if isinstance(exc, BaseExceptionGroup):
        matched, rest = exc.split(OSError)
        if matched is None or rest is not None:
            return None
        first: BaseException = matched
        while isinstance(first, BaseExceptionGroup):
            first = first.exceptions[0]
        return first if isinstance(first, OSError) else None
    return exc if isinstance(exc, OSError) else None
