"""QST's simulator kit: the simulator with its demo accounts, for ``brokergate simulate`` and
``brokergate demo``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from brokergate.simulators._kit import DemoScenarios, accounts_line
from brokergate.simulators.qst.accounts import demo_accounts
from brokergate.simulators.qst.server import run_qst_simulator


class QstKit(DemoScenarios):
    help = "the QST market-data API"
    demo_module = "brokergate.simulators.qst.demo"

    @asynccontextmanager
    async def running(self, host: str, port: int) -> AsyncIterator[list[str]]:
        async with run_qst_simulator(demo_accounts(), host=host, port=port) as sim:
            yield [f"QST simulator listening on {sim.url}",
                   accounts_line(sim.account_names(), "qst")]


KIT = QstKit()
