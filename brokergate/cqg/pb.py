"""CQG WebAPI's session-layer protobuf messages (``ClientMsg``, ``ServerMsg``, ``Logon``, ...),
under a stable name.

The classes are the generated module's own (``brokergate.machines.cqg.cqg_session_pb2``);
a test checks that every message, enum and enum value of the schema is here.
"""

from brokergate.machines.cqg.cqg_session_pb2 import *  # noqa: F403
