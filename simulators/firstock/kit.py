"""Firstock's simulator kit: the simulator (REST and sockets) with its demo accounts, for
``brokergate simulate`` and ``brokergate demo``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from brokergate.simulators._kit import DemoScenarios, accounts_line
from brokergate.simulators.firstock.accounts import (
    DEMO_FIXED_TOTP,
    DEMO_TOTP_SEED,
    demo_accounts,
)
from brokergate.simulators.firstock.server import run_firstock_simulator


class FirstockKit(DemoScenarios):
    help = "Firstock (REST and sockets)"
    demo_module = "brokergate.simulators.firstock.demo"

    @asynccontextmanager
    async def running(self, host: str, port: int) -> AsyncIterator[list[str]]:
        async with run_firstock_simulator(demo_accounts(), host=host, port=port) as sim:
            secrets = (f"; API keys key-<user>, vendor codes <user>_API; TOTP seed of totp: "
                       f"{DEMO_TOTP_SEED}; code of fixed: {DEMO_FIXED_TOTP}")
            yield [f"Firstock simulator listening on {sim.url}",
                   f"REST base URL {sim.base_url}; sockets: noren {sim.noren_url}, "
                   f"v2 {sim.socket_url}",
                   accounts_line(sim.account_names(), "firstock", secrets)]


KIT = FirstockKit()
