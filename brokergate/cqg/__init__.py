"""CQG WebAPI (protocol 2.230): its configuration, its messages and its protobuf schema.

    from brokergate.cqg import CqgConfig, pb

``pb`` holds the session-layer part of CQG's ``ClientMsg``/``ServerMsg`` schema at the field
numbers of protocol 2.230, under a stable name.
"""

from brokergate.cqg import pb
from brokergate.machines.cqg import DEFAULT_CLIENT_VERSION, CqgConfig, CqgServerMessage

__all__ = ["DEFAULT_CLIENT_VERSION", "CqgConfig", "CqgServerMessage", "pb"]
