"""A fake Firstock Connect API on loopback: HTTP/1.1 login, userDetails, limit and logout, plus the
legacy Noren WebSocket and the new one, with scripted faults."""

from brokergate.simulators.firstock.accounts import (
    DEMO_FIXED_TOTP,
    DEMO_TOTP_SEED,
    FirstockAccount,
    FirstockSimulatorStats,
    demo_accounts,
)
from brokergate.simulators.firstock.kit import KIT
from brokergate.simulators.firstock.server import FirstockSimulator, run_firstock_simulator

__all__ = [
    "DEMO_FIXED_TOTP",
    "DEMO_TOTP_SEED",
    "KIT",
    "FirstockAccount",
    "FirstockSimulator",
    "FirstockSimulatorStats",
    "demo_accounts",
    "run_firstock_simulator",
]
