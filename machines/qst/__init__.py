"""QST binary market-data API: the login machine, its policy table, its codec and config."""

from brokergate.machines.qst.codec import Coalescing, MalformedFrame, ProvisioningMessage
from brokergate.machines.qst.config import QstConfig
from brokergate.machines.qst.model import QstSession
from brokergate.machines.qst.table import MACHINE, STATES, TRANSITIONS

__all__ = [
    "MACHINE",
    "STATES",
    "TRANSITIONS",
    "Coalescing",
    "MalformedFrame",
    "ProvisioningMessage",
    "QstConfig",
    "QstSession",
]
