"""What every broker's simulator kit shares (``brokergate.machines._broker.SimulatorKit``): the
line that lists its demo accounts, and its demo scenarios, loaded only when the demo asks."""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from brokergate.engine.demo.scenarios import BrokerDemo, Scenario


def accounts_line(names: Sequence[str], package: str, secrets: str = "") -> str:
    """The accounts a person may log in with; ``secrets`` adds the demo secrets beyond
    ``<user>-pw`` (it begins with "; ")."""
    return (f"accounts: {', '.join(names)} (password <user>-pw{secrets}; see "
            f"`pydoc brokergate.simulators.{package}.demo_accounts`)")


class DemoScenarios:
    """Mixin for a kit: its broker's demo (``brokergate demo``), from the module
    ``demo_module`` (whose ``DEMO`` is a ``BrokerDemo``), imported on first use."""

    demo_module: str

    def demo(self) -> BrokerDemo[Any]:
        part: BrokerDemo[Any] = importlib.import_module(self.demo_module).DEMO
        return part

    @property
    def scenarios(self) -> Sequence[Scenario[Any]]:
        return self.demo().scenarios
