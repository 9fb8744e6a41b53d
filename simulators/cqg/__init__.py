"""A fake CQG WebAPI server speaking the real session layer (protobuf over WebSocket)."""

from brokergate.simulators.cqg.accounts import (
    DEMO_OTP_SEED,
    CqgAccount,
    CqgSimulatorStats,
    demo_accounts,
)
from brokergate.simulators.cqg.kit import KIT
from brokergate.simulators.cqg.server import CqgSimulator, run_cqg_simulator

__all__ = [
    "DEMO_OTP_SEED",
    "KIT",
    "CqgAccount",
    "CqgSimulator",
    "CqgSimulatorStats",
    "demo_accounts",
    "run_cqg_simulator",
]
