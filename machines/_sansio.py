"""The surface between a pure login machine and the engine that does its I/O.

A machine consumes **events** (what happened: a connection opened, a frame arrived, a timer fired)
and produces **commands** (what to do: open a connection, send a frame, start a timer). It never
touches a socket or a clock. Events that belong to a connection carry its ``epoch``; the engine
drops those from an older connection before they reach the machine.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, ClassVar, Protocol

from brokergate.machines._secret import Secret

# ---------------------------------------------------------------------------------------------
# Events: engine -> machine



class BrokergateError(Exception):
    """Base of every error brokergate raises on purpose (the engine's errors derive from it)."""


@dataclass(frozen=True, slots=True)
class Start:
    """The application asked for a session."""


@dataclass(frozen=True, slots=True)
class StoredToken:
    """A session token kept for a later session (``KeepsTokens``), as a token store holds it."""

    token: Secret
    #: When the broker issued it (timezone-aware).
    created: datetime


@dataclass(frozen=True, slots=True)
class Standby:
    """Another session of the fleet holds this account (a processes-wide coordinator says so):
    wait, neither logging in nor displacing it. ``holder`` says who (no secret)."""

    holder: str


@dataclass(frozen=True, slots=True)
class LeaseGranted:
    """The account is this session's now: log in as ``Start`` would, with what the fleet kept.

    ``stored`` is the account's day token as the token store has it now (a token another
    process obtained while this one waited). ``handover`` is what the previous holder left for
    its successor (a CQG session to restore, its logon history), or None.
    """

    stored: StoredToken | None = None
    handover: Mapping[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class LeaseLost:
    """The session no longer holds its account (it could not renew its lease in time, or
    another took it): stop writing at once and wait as a standby. ``detail`` says why."""

    detail: str


@dataclass(frozen=True, slots=True)
class SharedOutcome:
    """Another session of the fleet logged this account in and failed in a way a retry here
    would repeat (a wrong password): end the same way without asking the broker again."""

    state: str
    reason: str
    fault: Fault | None
    detail: str


@dataclass(frozen=True, slots=True)
class Stop:
    """The application is done: log out if logged in, otherwise just disconnect.

    ``logout=False`` leaves without logging out where the broker's session outlives the
    connection (a broker with the ``token_store`` capability): the next process reuses it.
    """

    logout: bool = True


@dataclass(frozen=True, slots=True)
class Connected:
    epoch: int


@dataclass(frozen=True, slots=True)
class ConnectFailed:
    """The connection could not be opened (refused, DNS, TLS, HTTP handshake rejected)."""

    epoch: int
    detail: str


@dataclass(frozen=True, slots=True)
class FrameReceived:
    epoch: int
    data: bytes | str


@dataclass(frozen=True, slots=True)
class Closed:
    """The connection ended. ``code`` is the WebSocket close code; 1006 when it just dropped."""

    epoch: int
    code: int
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class TimerFired:
    """A timer the machine started has expired (the engine never delivers a cancelled one)."""

    name: str


@dataclass(frozen=True, slots=True)
class CredentialReady:
    """The engine ran a credential provider the machine asked for (``FetchCredential``).

    ``value`` is the fresh credential, or None with ``problem`` saying why there is none.
    """

    kind: str
    value: Any = None
    problem: str | None = None


@dataclass(frozen=True, slots=True)
class HttpAnswered:
    """The broker answered an ``HttpRequest`` (any HTTP status: the body decides).

    ``serial`` is the request's; a machine ignores answers to requests it no longer waits for.
    """

    call: str
    serial: int
    status: int
    body: bytes
    retry_after: str | None = None
    #: Set when the body ran past this many bytes (the session's ``max_frame_size``): the
    #: engine stopped reading it there, and ``body`` is empty.
    body_limit: int | None = None


@dataclass(frozen=True, slots=True)
class HttpFailed:
    """An ``HttpRequest`` got no answer: refused, TLS failed, or ``timed_out``."""

    call: str
    serial: int
    detail: str
    timed_out: bool = False


@dataclass(frozen=True, slots=True)
class TokenRefused:
    """The broker refused the session's token on a call the application made with it.

    ``generation`` says which token (the model's ``token_generation`` when the call was built),
    so refusals of a token the session has already replaced are ignored.
    """

    generation: int
    detail: str


Event = (
    Start | Stop | Connected | ConnectFailed | FrameReceived | Closed | TimerFired
    | CredentialReady | HttpAnswered | HttpFailed | TokenRefused
    | Standby | LeaseGranted | LeaseLost | SharedOutcome
)

# ---------------------------------------------------------------------------------------------
# Commands: machine -> engine


@dataclass(frozen=True, slots=True)
class OpenConnection:
    url: str
    epoch: int


@dataclass(frozen=True, slots=True)
class SendFrame:
    """A session-control frame (login, logout). Only a machine can ask for one."""

    data: bytes | str
    description: str


@dataclass(frozen=True, slots=True)
class CloseConnection:
    epoch: int
    code: int = 1000
    reason: str = ""


@dataclass(frozen=True, slots=True)
class StartTimer:
    """Start (or restart) the named timer."""

    name: str
    seconds: float


@dataclass(frozen=True, slots=True)
class CancelTimer:
    name: str


@dataclass(frozen=True, slots=True)
class FetchCredential:
    """Run the configured provider of a credential (a one-time password, an access token).

    Providers may do I/O (an OAuth refresh), so the engine runs them, bounded by ``seconds``,
    and answers with ``CredentialReady``.
    """

    kind: str
    seconds: float


@dataclass(frozen=True, slots=True)
class HttpRequest:
    """POST ``body`` as JSON to ``url``; answered by ``HttpAnswered`` or ``HttpFailed``.

    ``body`` may hold credentials: the engine never logs it. Requests to one host share the
    process's client-side rate limit (``per_second``).
    """

    call: str
    serial: int
    url: str
    body: dict[str, Any] = field(repr=False)
    timeout: float = 10.0
    per_second: float | None = None


@dataclass(frozen=True, slots=True)
class SaveToken:
    """Keep the session token in the configured token store (None: delete it)."""

    token: Any = field(repr=False)
    created: Any = None


@dataclass(frozen=True, slots=True)
class RequestError:
    """The broker answered an application request with an error."""

    code: int | None
    message: str


@dataclass(frozen=True, slots=True)
class Deliver:
    """A broker message for the application: a response to ``request_id``, or asynchronous."""

    request_id: int | None
    message: Any
    error: RequestError | None = None


class Fault(enum.Enum):
    """Whose move it is when something goes wrong."""

    CONFIGURATION = "configuration"  # the user's settings or credentials
    ACCOUNT = "account"  # the account needs attention at the broker (support, terms, 2FA)
    BROKER = "broker"  # the broker failed or sent something invalid
    NETWORK = "network"  # the path to the broker failed
    INTERNAL = "internal"  # a bug in brokergate


@dataclass(frozen=True, slots=True)
class Notice:
    """Something worth telling the application and the audit trail that changes no state."""

    kind: str
    detail: str
    fault: Fault | None = None
    data: Any = None


@dataclass(frozen=True, slots=True)
class Transitioned:
    """One executed transition. The engine writes it to the audit trail and the event stream."""

    trigger: str
    src: str
    dst: str
    epoch: int
    attempt: int
    reason: str | None = None
    error_code: int | None = None
    close_code: int | None = None
    delay: float | None = None
    detail: str | None = None


Command = (
    OpenConnection
    | SendFrame
    | CloseConnection
    | StartTimer
    | CancelTimer
    | FetchCredential
    | HttpRequest
    | SaveToken
    | Deliver
    | Notice
    | Transitioned
)


class LoginProtocol(Protocol):
    """What the engine needs from a broker's machine model (one per session). What a model can
    do beyond logging in is a capability (``brokergate.machines._broker``)."""

    broker: ClassVar[str]
    #: The broker's name as people write it ("QST", "CQG", "Firstock").
    broker_name: ClassVar[str]
    #: Whether the engine probes the connection with WebSocket pings.
    websocket_pings: ClassVar[bool]
    #: Timers whose firing says the connection is dead (a deadline for the broker's answer to
    #: a probe): the engine holds them while it has stopped reading for a slow subscriber.
    liveness_timers: ClassVar[frozenset[str]]
    state: str
    epoch: int
    attempt: int
    reason: str | None
    detail: str | None
    fault: Fault | None

    @property
    def account(self) -> str: ...

    def handle(self, event: Event) -> list[Command]: ...

    def secrets(self) -> list[str]: ...

    def application_sent(self) -> None: ...

    def outcome(self) -> dict[str, Any]: ...
