"""A fake QST server speaking the real wire protocol (protobuf over WebSocket) on loopback."""

from brokergate.simulators.qst.accounts import QstAccount, SimulatorStats, demo_accounts
from brokergate.simulators.qst.kit import KIT
from brokergate.simulators.qst.server import QstSimulator, run_qst_simulator

__all__ = [
    "KIT",
    "QstAccount",
    "QstSimulator",
    "SimulatorStats",
    "demo_accounts",
    "run_qst_simulator",
]
