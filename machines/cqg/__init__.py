"""CQG WebAPI (protocol 2.230): session logon, restore, ping/pong, logoff and redirects."""

from brokergate.machines._config import CredentialProvider
from brokergate.machines._states import RESTORING
from brokergate.machines.cqg.codec import CqgServerMessage, InvalidClientMessage, MalformedFrame
from brokergate.machines.cqg.config import DEFAULT_CLIENT_VERSION, CqgConfig
from brokergate.machines.cqg.model import CqgSession
from brokergate.machines.cqg.policy import policy_rows
from brokergate.machines.cqg.table import MACHINE, REFRESHING_CREDENTIALS
from brokergate.machines.cqg.throttle import LogonHistory

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
