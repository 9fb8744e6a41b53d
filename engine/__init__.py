"""brokergate's engine: runs broker login machines under trio and keeps sessions logged in.

    async with open_session(QstConfig(...)) as session:      # or CqgConfig(...)
        await session.wait_authenticated()
        answer = await session.request(...)                  # CQG: await session.send(...)
"""

from engine._audit import AuditLog, redact_secrets, register_secret
from engine._driver import BrokerMessage, EventStream, SessionEvent
from engine._errors import (
    BrokergateError,
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
from engine._session import Session, open_session
from engine._tokens import FileTokenStore, MemoryTokenStore, StoredToken, TokenStore
from machines import Backoff, Fault, Notice, Secret, Transitioned
from machines.cqg import CqgConfig, CqgServerMessage
from machines.firstock import FirstockConfig
from machines.qst import Coalescing, QstConfig

__all__ = [
    "AuditLog",
    "Backoff",
    "BrokerMessage",
    "BrokergateError",
    "Coalescing",
    "ConfigurationError",
    "ConnectionLost",
    "CqgConfig",
    "CqgServerMessage",
    "Displaced",
    "EventStream",
    "Fault",
    "FileTokenStore",
    "FirstockConfig",
    "GaveUp",
    "InvalidMessage",
    "LockedOut",
    "LoginFailed",
    "MemoryTokenStore",
    "NotAuthenticated",
    "Notice",
    "ProvisioningRequired",
    "QstConfig",
    "RequestFailed",
    "Secret",
    "Session",
    "SessionClosed",
    "SessionError",
    "SessionEvent",
    "StoredToken",
    "TokenStore",
    "Transitioned",
    "open_session",
    "redact_secrets",
    "register_secret",
]
