"""QST's binary market-data API: its configuration and its protobuf messages.

    from brokergate.qst import QstConfig, pb

    answer = await session.request(pb.TranslateInstrumentSymbolRequest(...))

``pb`` is brokergate's wire schema for QST (QST does not publish its .proto); its name stays
``brokergate.qst.pb`` whatever the generated module is called.
"""

from brokergate.machines.qst import Coalescing, ProvisioningMessage, QstConfig
from brokergate.qst import pb

__all__ = ["Coalescing", "ProvisioningMessage", "QstConfig", "pb"]
