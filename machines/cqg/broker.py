"""CQG WebAPI as the rest of brokergate sees it: one descriptor (see
``brokergate.machines._broker``)."""

from __future__ import annotations

from urllib.parse import urlsplit

from brokergate.machines._broker import Broker, DiagramWording, ModelInputs, SharedResource
from brokergate.machines.cqg.config import CqgConfig
from brokergate.machines.cqg.model import CqgSession
from brokergate.machines.cqg.policy import policy_rows
from brokergate.machines.cqg.table import BROKER as NAME
from brokergate.machines.cqg.table import STATES, TRANSITIONS, TRIGGER_WORDS
from brokergate.machines.cqg.throttle import LogonHistory


def user_at_host(config: CqgConfig) -> tuple[str, str]:
    """A CQG user at one server: whose logons count together."""
    return ((urlsplit(config.url).hostname or "").lower(), config.account)


def fleet_account(config: CqgConfig) -> str:
    """A CQG user at one server: the sessions that would displace one another."""
    host, user = user_at_host(config)
    return f"{user}@{host}"


def create_model(config: CqgConfig, inputs: ModelInputs) -> CqgSession:
    history = inputs.resources["logon_history"]
    assert isinstance(history, LogonHistory)
    return CqgSession(config, rng=inputs.rng, clock=inputs.clock, history=history,
                      wall=inputs.wall)


BROKER: Broker[CqgConfig] = Broker(
    name=NAME,
    title="CQG",
    package="brokergate.machines.cqg",
    config_type=CqgConfig,
    create_model=create_model,
    states=STATES,
    transitions=TRANSITIONS,
    policy_rows=policy_rows,
    diagram=DiagramWording("CQG WebAPI", TRIGGER_WORDS),
    resources=(
        SharedResource(
            "logon_history", user_at_host, LogonHistory,
            "when the user last logged on, and how often today: the least interval between "
            "logons and the daily cap hold for all of the user's sessions",
        ),
    ),
    capabilities=frozenset({"raw_send", "credentials", "handover"}),
    fleet_account=fleet_account,
    displaces=True,
    cli_module="brokergate.machines.cqg.cli",
    simulator_module="brokergate.simulators.cqg",
)
