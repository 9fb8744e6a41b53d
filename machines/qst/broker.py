"""QST as the rest of brokergate sees it: one descriptor (see ``brokergate.machines._broker``)."""

from __future__ import annotations

from brokergate.machines._broker import Broker, DiagramWording, ModelInputs
from brokergate.machines.qst.config import QstConfig
from brokergate.machines.qst.model import QstSession
from brokergate.machines.qst.policy import policy_rows
from brokergate.machines.qst.table import BROKER as NAME
from brokergate.machines.qst.table import STATES, TRANSITIONS, TRIGGER_WORDS


def create_model(config: QstConfig, inputs: ModelInputs) -> QstSession:
    return QstSession(config, rng=inputs.rng)


BROKER: Broker[QstConfig] = Broker(
    name=NAME,
    title="QST",
    package="brokergate.machines.qst",
    config_type=QstConfig,
    create_model=create_model,
    states=STATES,
    transitions=TRANSITIONS,
    policy_rows=policy_rows,
    diagram=DiagramWording("QST market data", TRIGGER_WORDS),
    capabilities=frozenset({"requests"}),
    displaces=True,
    cli_module="brokergate.machines.qst.cli",
    simulator_module="brokergate.simulators.qst",
)
