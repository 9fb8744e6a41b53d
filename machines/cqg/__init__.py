"""CQG WebAPI (protocol 2.230): session logon, restore, ping/pong, logoff and redirects."""

from machines._config import CredentialProvider
from machines.cqg.codec import CqgServerMessage, InvalidClientMessage, MalformedFrame
from machines.cqg.config import DEFAULT_CLIENT_VERSION, CqgConfig
from machines.cqg.machine import MACHINE, REFRESHING_CREDENTIALS, RESTORING
from machines.cqg.policy import policy_rows
from machines.cqg.session import CqgSession
from machines.cqg.throttle import LogonHistory

__all__ = [
    "DEFAULT_CLIENT_VERSION",
    "MACHINE",
    "REFRESHING_CREDENTIALS",
    "RESTORING",
    "CqgConfig",
    "CqgServerMessage",
    "CqgSession",
    "CredentialProvider",
    "InvalidClientMessage",
    "LogonHistory",
    "MalformedFrame",
    "policy_rows",
]
