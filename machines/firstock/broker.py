"""Firstock as the rest of brokergate sees it: one descriptor (see
``brokergate.machines._broker``)."""

from __future__ import annotations

from urllib.parse import urlsplit

from brokergate.machines._broker import Broker, DiagramWording, ModelInputs, SharedResource
from brokergate.machines.firstock.config import FirstockConfig
from brokergate.machines.firstock.model import FirstockSession
from brokergate.machines.firstock.policy import policy_rows
from brokergate.machines.firstock.slots import SocketSlots
from brokergate.machines.firstock.table import BROKER as NAME
from brokergate.machines.firstock.table import STATES, TRANSITIONS, TRIGGER_WORDS


def user_at_socket_host(config: FirstockConfig) -> tuple[str, str]:
    """A Firstock user at one socket server: whose sockets count together."""
    return ((urlsplit(config.socket_url or config.base_url).hostname or "").lower(),
            config.user_id)


def token_user(config: FirstockConfig) -> str | None:
    return config.user_id or None


def fleet_account(config: FirstockConfig) -> str:
    """A Firstock user at one REST server: the sessions that share one day token."""
    return f"{config.user_id}@{(urlsplit(config.base_url).hostname or '').lower()}"


def create_model(config: FirstockConfig, inputs: ModelInputs) -> FirstockSession:
    slots = inputs.resources["socket_slots"]
    assert isinstance(slots, SocketSlots)
    stored = (inputs.stored.token, inputs.stored.created) if inputs.stored else None
    return FirstockSession(config, rng=inputs.rng, clock=inputs.clock, wall=inputs.wall,
                           stored=stored, slots=slots)


BROKER: Broker[FirstockConfig] = Broker(
    name=NAME,
    title="Firstock",
    package="brokergate.machines.firstock",
    config_type=FirstockConfig,
    create_model=create_model,
    states=STATES,
    transitions=TRANSITIONS,
    policy_rows=policy_rows,
    diagram=DiagramWording("Firstock", TRIGGER_WORDS),
    resources=(
        SharedResource(
            "socket_slots", user_at_socket_host, SocketSlots,
            "the user's market-data sockets: Firstock refuses a fourth, so sessions past the "
            "third wait for a slot instead of asking",
        ),
    ),
    capabilities=frozenset({"rest_calls", "credentials", "token_store"}),
    token_user=token_user,
    fleet_account=fleet_account,
    cli_module="brokergate.machines.firstock.cli",
    simulator_module="brokergate.simulators.firstock",
)
