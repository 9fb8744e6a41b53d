"""CQG's simulator kit: the simulator with its demo accounts, for ``brokergate simulate`` and
``brokergate demo``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from brokergate.simulators._kit import DemoScenarios, accounts_line
from brokergate.simulators.cqg.accounts import DEMO_OTP_SEED, demo_accounts
from brokergate.simulators.cqg.server import run_cqg_simulator


class CqgKit(DemoScenarios):
    help = "CQG WebAPI"
    demo_module = "brokergate.simulators.cqg.demo"

    @asynccontextmanager
    async def running(self, host: str, port: int) -> AsyncIterator[list[str]]:
        async with run_cqg_simulator(demo_accounts(), host=host, port=port) as sim:
            # Redirected to this very simulator: its address is known only now.
            sim.add_account(demo_accounts(redirect_url=sim.url)[-1])
            yield [f"CQG WebAPI simulator listening on {sim.url}",
                   accounts_line(sim.account_names(), "cqg",
                                 f"; TOTP seed of otp: {DEMO_OTP_SEED}")]


KIT = CqgKit()
