"""Firstock: its configuration and the market-data socket kinds a session attaches.

Firstock speaks JSON over REST and its sockets, so there is no protobuf schema here;
``Session.call`` returns the answer's ``data`` as Firstock sends it.
"""

from brokergate.machines.firstock import FirstockConfig, SocketKind

__all__ = ["FirstockConfig", "SocketKind"]
