"""A minimal valid configuration of each registered broker, and its model built the way the
gateway builds it (through the descriptor), for tests that go over every broker."""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from brokergate.machines import Secret
from brokergate.machines._broker import Broker, ModelInputs
from brokergate.machines.cqg import CqgConfig
from brokergate.machines.firstock import FirstockConfig
from brokergate.machines.qst import QstConfig

WALL = datetime(2026, 11, 21, 3, 0, 10, tzinfo=UTC)  # 08:30:10 in Kolkata: today's token is good


def qst_config(**overrides: Any) -> QstConfig:
    values: dict[str, Any] = {"url": "ws://127.0.0.1:1/", "user_name": "u",
                              "password": Secret("pw"), "client_id": "c"}
    return QstConfig(**{**values, **overrides})


def cqg_config(**overrides: Any) -> CqgConfig:
    values: dict[str, Any] = {"url": "ws://127.0.0.1:1/", "user_name": "u",
                              "password": Secret("pw"), "client_app_id": "c"}
    return CqgConfig(**{**values, **overrides})


def firstock_config(**overrides: Any) -> FirstockConfig:
    values: dict[str, Any] = {
        "base_url": "http://127.0.0.1:9/api/V3", "user_id": "U1", "password": Secret("pw"),
        "api_key": Secret("key"), "vendor_code": "U1_API", "totp": Secret("123456"),
    }
    return FirstockConfig(**{**values, **overrides})


#: Each registered broker's minimal valid configuration, by the broker's name.
CONFIGS: dict[str, Callable[..., Any]] = {
    "qst": qst_config,
    "cqg": cqg_config,
    "firstock": firstock_config,
}


def build_model(broker: Broker[Any], config: Any, *, seed: int = 0,
                clock: Callable[[], float] = lambda: 1000.0,
                wall: Callable[[], datetime] = lambda: WALL) -> Any:
    """``broker``'s model for ``config``, as a gateway of one would build it (fresh shared
    resources, no stored token)."""
    resources = {r.name: r.create() for r in broker.resources}
    inputs = ModelInputs(rng=random.Random(seed), clock=clock, wall=wall, resources=resources)
    return broker.create_model(config, inputs)
