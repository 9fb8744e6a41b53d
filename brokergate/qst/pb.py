"""QST's protobuf messages (``Request``, ``Response`` and what they carry), under a stable name.

The classes are the generated module's own (``brokergate.machines.qst.qst_pb2``), not copies;
a test checks that every message, enum and enum value of the schema is here.
"""

from brokergate.machines.qst.qst_pb2 import *  # noqa: F403

# Enum values whose names start with "_" (a name cannot start with a digit) are not star-imported.
from brokergate.machines.qst.qst_pb2 import _100_MS as _100_MS  # noqa: PLC0414 - re-exported
from brokergate.machines.qst.qst_pb2 import _250_MS as _250_MS  # noqa: PLC0414 - re-exported
