"""Builders shared by the integration tests."""

from __future__ import annotations

import random
from typing import Any

from brokergate import AuditLog, Backoff, CqgConfig, QstConfig, Secret

TEST_BACKOFF = Backoff(initial=0.5, factor=2.0, cap=5.0, max_attempts=5, stability_window=10.0)


def qst_config(url: str, user: str, password: str | None = None, **overrides: Any) -> QstConfig:
    values: dict[str, Any] = {
        "url": url,
        "user_name": user,
        "password": Secret(f"{user}-pw" if password is None else password),
        "client_id": "brokergate-tests",
        "backoff": TEST_BACKOFF,
    }
    values.update(overrides)
    return QstConfig(**values)


def cqg_config(url: str, user: str | None, password: str | None = None,
               **overrides: Any) -> CqgConfig:
    """A CQG logon as the simulator's accounts expect (password ``<user>-pw``)."""
    values: dict[str, Any] = {
        "url": url,
        "client_app_id": "brokergate-tests",
        "backoff": TEST_BACKOFF,
        "min_logon_interval": 5.0,
    }
    if user is not None:
        values.update(user_name=user,
                      password=Secret(f"{user}-pw" if password is None else password))
    values.update(overrides)
    return CqgConfig(**values)


def session_kwargs(events: list[dict[str, Any]]) -> dict[str, Any]:
    """open_session keyword arguments: audit collected into ``events``, seeded jitter."""
    return {"audit": AuditLog.collect(events), "rng": random.Random(1234)}


def transitions(events: list[dict[str, Any]]) -> list[tuple[str, str, str]]:
    return [(e["trigger"], e["src"], e["dst"]) for e in events if e["event"] == "transition"]


def states(events: list[dict[str, Any]]) -> list[str]:
    return [e["dst"] for e in events if e["event"] == "transition"]
