"""The registry: every broker brokergate knows, one line per broker folder.

Adding a broker is a folder ``machines/<name>/`` that ends in ``broker.py`` (its ``BROKER``
descriptor), a simulator in ``simulators/<name>/``, and one line here.
"""

from __future__ import annotations

import importlib
from typing import Any

from brokergate.machines._broker import Broker
from brokergate.machines._config import SessionSettings

#: The broker folders, in the order brokergate lists them (CLI, demo, diagrams).
FOLDERS = (
    "brokergate.machines.qst",
    "brokergate.machines.cqg",
    "brokergate.machines.firstock",
)


def _load(package: str) -> Broker[Any]:
    broker = importlib.import_module(f"{package}.broker").BROKER
    if not isinstance(broker, Broker):
        raise TypeError(f"{package}.broker.BROKER is not a Broker descriptor")
    return broker


BROKERS: tuple[Broker[Any], ...] = tuple(_load(package) for package in FOLDERS)
_BY_NAME = {broker.name: broker for broker in BROKERS}
_BY_CONFIG = {broker.config_type: broker for broker in BROKERS}


def broker_named(name: str) -> Broker[Any]:
    """The broker called ``name``; ``KeyError`` with the known names otherwise."""
    try:
        return _BY_NAME[name]
    except KeyError:
        raise KeyError(f"no broker {name!r} (known: {', '.join(_BY_NAME)})") from None


def broker_for(config: SessionSettings) -> Broker[Any] | None:
    """The broker whose configuration ``config`` is (None: not a broker's configuration)."""
    return _BY_CONFIG.get(type(config))


def names() -> tuple[str, ...]:
    return tuple(_BY_NAME)
