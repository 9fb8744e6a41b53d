"""Firstock: REST login (V3 and later), token lifecycle, market-data socket attach."""

from brokergate.machines.firstock.codec import (
    Answer,
    SocketAnswer,
    parse_answer,
    read_socket_message,
)
from brokergate.machines.firstock.config import FirstockConfig, SocketKind
from brokergate.machines.firstock.policy import classify, policy_rows

__all__ = [
    "Answer",
    "FirstockConfig",
    "SocketAnswer",
    "SocketKind",
    "classify",
    "parse_answer",
    "policy_rows",
    "read_socket_message",
]
