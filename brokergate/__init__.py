"""brokergate logs trading processes in to their brokers and keeps them logged in.

    import brokergate

    async with brokergate.open_session(brokergate.QstConfig(...)) as session:
        await session.wait_authenticated()
        answer = await session.request(...)           # CQG and Firstock: see their docs

    async with brokergate.open_gateway() as gw:       # sessions that share what is shared
        async with gw.session(brokergate.CqgConfig(...)) as orders:
            ...

Every name a user needs is importable from here; ``brokergate.qst``, ``brokergate.cqg`` and
``brokergate.firstock`` add each broker's own types (its protobuf messages as ``pb``).
Importing this package loads the library only: no simulator, benchmark or test code.
``brokergate.simulators`` (fake brokers on loopback) and its pytest plugin are for tests.
"""

from brokergate.engine._audit import AuditLog, redact_secrets, register_secret
from brokergate.engine._coordinator import Coordinator, LocalCoordinator
from brokergate.engine._errors import (
    ConfigurationError,
    ConnectionLost,
    Displaced,
    GaveUp,
    InvalidMessage,
    LockedOut,
    LoginFailed,
    NotAuthenticated,
    ProvisioningRequired,
    RequestFailed,
    SessionClosed,
    SessionError,
)
from brokergate.engine._events import BrokerMessage, EventStream, Overflow, SessionEvent
from brokergate.engine._gateway import Gateway, GatewayClosed, open_gateway, open_session
from brokergate.engine._metrics import Metrics
from brokergate.engine._session import Session
from brokergate.engine._tokens import FileTokenStore, MemoryTokenStore, StoredToken, TokenStore
from brokergate.engine._transport import TcpTransport, WebSocketTransport
from brokergate.machines import (
    TERMINAL_STATES,
    Backoff,
    CredentialProvider,
    Fault,
    Notice,
    Schedule,
    Secret,
    Transitioned,
)
from brokergate.machines._sansio import BrokergateError
from brokergate.machines.cqg import CqgConfig, CqgServerMessage
from brokergate.machines.firstock import FirstockConfig, SocketKind
from brokergate.machines.qst import Coalescing, QstConfig

#: The release; equal to the distribution's version in pyproject.toml (a test keeps them equal).
__version__ = "0.1.0"

__all__ = [
    "TERMINAL_STATES",
    "AuditLog",
    "Backoff",
    "BrokerMessage",
    "BrokergateError",
    "Coalescing",
    "ConfigurationError",
    "ConnectionLost",
    "Coordinator",
    "CqgConfig",
    "CqgServerMessage",
    "CredentialProvider",
    "Displaced",
    "EventStream",
    "Fault",
    "FileTokenStore",
    "FirstockConfig",
    "Gateway",
    "GatewayClosed",
    "GaveUp",
    "InvalidMessage",
    "LocalCoordinator",
    "LockedOut",
    "LoginFailed",
    "MemoryTokenStore",
    "Metrics",
    "NotAuthenticated",
    "Notice",
    "Overflow",
    "ProvisioningRequired",
    "QstConfig",
    "RequestFailed",
    "Schedule",
    "Secret",
    "Session",
    "SessionClosed",
    "SessionError",
    "SessionEvent",
    "SocketKind",
    "StoredToken",
    "TcpTransport",
    "TokenStore",
    "Transitioned",
    "WebSocketTransport",
    "__version__",
    "open_gateway",
    "open_session",
    "redact_secrets",
    "register_secret",
]
