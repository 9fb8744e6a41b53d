"""The demo's scenarios, and what a broker gives the demo to run them.

Each broker's simulator kit (``Broker.simulator()``) has a demo part, a ``BrokerDemo``: its
scenarios (for each, the simulator accounts it needs, the session configuration, what the
application does once logged in, and the outcome the session must reach) and how to stage its
simulators for them. The demo runs every registered broker's scenarios, in the registry's order.

Every scenario runs against the built-in simulators on loopback with short timers, so the
whole fleet finishes in seconds. The scripts use only the public session API.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Generic, Protocol, TypeVar

import trio

from brokergate.engine._session import Session
from brokergate.machines import Backoff, SessionSettings
from brokergate.machines._broker import Broker
from brokergate.machines.brokers import BROKERS

#: Short timers so that the whole demo takes seconds: every session uses these.
DEMO_BACKOFF = Backoff(initial=0.2, factor=2.0, cap=1.0, max_attempts=5, stability_window=2.0)
#: The demo's wall clock is moved so that the next 30 s TOTP window opens this soon after the
#: start, and a scenario whose TOTP is refused waits seconds, not up to half a minute.
TOTP_WINDOW_AFTER = 6.0


@dataclass(frozen=True)
class DemoClock:
    """The system clock moved by ``offset`` seconds: the demo's sessions and simulators read
    TOTP windows from it."""

    offset: float

    def seconds(self) -> float:
        return time.time() + self.offset

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.seconds(), UTC)

    @classmethod
    def with_window_in(cls, seconds: float) -> DemoClock:
        """A clock whose next 30 s TOTP window opens ``seconds`` from now."""
        return cls((30.0 - seconds - time.time() % 30.0) % 30.0)


class Stage(Protocol):
    """A broker's simulators, running for the demo's scenarios."""

    @property
    def address(self) -> str:
        """Where they listen, in a line that follows the broker's title."""

    def violations(self) -> list[str]:
        """The protocol violations they saw, each prefixed with the simulator's name."""

    def counts(self) -> dict[str, int]:
        """What they counted, for the summary's ``simulators`` section."""

    async def early_request(self, session: Session) -> object:
        """One application request, sent before the login answer (the gate must refuse it
        with ``NotAuthenticated``)."""


StageT = TypeVar("StageT", bound=Stage)


@dataclass(frozen=True)
class Expect:
    """The outcome a session must reach: its state (and reason), and counts from its outcome
    that must match (``{"restores": 2}``)."""

    state: str
    reason: str | None = None
    counts: Mapping[str, int] = field(default_factory=dict)

    def describe(self) -> str:
        text = self.state + (f":{self.reason}" if self.reason else "")
        extra = ", ".join(f"{k}={v}" for k, v in self.counts.items())
        return f"{text} ({extra})" if extra else text


@dataclass(frozen=True)
class Scenario(Generic[StageT]):
    name: str
    #: The broker's name (``Broker.name``).
    broker: str
    story: str
    expect: Expect
    #: The simulator accounts it needs, from what the broker's stage knows before its simulators
    #: start (the broker's own business: the engine never calls it).
    accounts: Callable[[Any], list[Any]]
    #: The session configuration of its n-th session: (stage, session id, n).
    build: Callable[[StageT, str, int], SessionSettings]
    #: What the application does once its session is authenticated; returns a note for the
    #: summary.
    script: Callable[[StageT, Session], Awaitable[str | None]] | None = None
    #: Sessions with this scenario (a fleet when more than one).
    sessions: int = 1
    #: Requests the application tries before the login answer (each must be refused).
    early_requests: int = 0
    #: The path is drawn over the broker's diagram in the output folder (a fleet's first).
    traced: bool = True
    #: For a fleet: its note for the summary and any problems, from the stage, the number of
    #: sessions and the seconds the slowest took to authenticate.
    fleet_note: Callable[[StageT, int, float], tuple[str, list[str]]] | None = None


@dataclass(frozen=True)
class BrokerDemo(Generic[StageT]):
    """A broker's part of the demo (its simulator kit's ``demo()``)."""

    scenarios: Sequence[Scenario[StageT]]
    #: Its simulators, with the accounts of these scenarios (its chosen ones, perhaps none),
    #: running for the block; the clock is the demo's wall clock.
    staged: Callable[[Sequence[Scenario[StageT]], DemoClock],
                     AbstractAsyncContextManager[StageT]]


def broker_demo(broker: Broker[Any]) -> BrokerDemo[Any]:
    """The demo part of ``broker``'s simulator kit (imports its simulator)."""
    part = broker.simulator().demo()
    if not isinstance(part, BrokerDemo):
        raise TypeError(f"the {broker.title} simulator kit's demo() is not a BrokerDemo")
    return part


# --- helpers for the brokers' scripts -----------------------------------------------------------


async def settle() -> None:
    """Stay up past the stability window, so that a drop is restored at once."""
    await trio.sleep(DEMO_BACKOFF.stability_window + 0.5)


async def wait_for(session: Session, done: Callable[[], bool], limit: float = 10.0) -> None:
    """Until ``done()`` holds after one of the session's events (at most ``limit`` seconds)."""
    with trio.fail_after(limit):
        async with session.events() as events:
            if done():
                return
            async for _ in events:
                if done():
                    return


async def until_ended(stage: object, session: Session) -> str | None:
    """A script: hold the session until the broker ends it (or a few seconds pass)."""
    with trio.move_on_after(5):
        async with session.events() as events:
            async for _ in events:
                if session.state != "authenticated":
                    break
    return None


# --- every broker's scenarios --------------------------------------------------------------------

_ALL: list[Scenario[Any]] | None = None


def all_scenarios() -> list[Scenario[Any]]:
    """Every registered broker's scenarios, in the registry's order (loaded once: the list is
    ``SCENARIOS``, which tests may change in place)."""
    global _ALL  # noqa: PLW0603 - loaded on first use: it imports every broker's simulator
    if _ALL is None:
        _ALL = [sc for broker in BROKERS for sc in broker_demo(broker).scenarios]
    return _ALL


def __getattr__(name: str) -> Any:
    if name == "SCENARIOS":
        return all_scenarios()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def pick(names: list[str] | None) -> list[Scenario[Any]]:
    """The scenarios named (a scenario's name, or a broker for all of its scenarios)."""
    every = all_scenarios()
    if not names:
        return list(every)
    chosen: list[Scenario[Any]] = []
    for name in names:
        found = [s for s in every if name in (s.name, s.broker)]
        if not found:
            known = ", ".join(s.name for s in every)
            brokers = ", ".join(b.name for b in BROKERS)
            raise ValueError(f"no scenario {name!r}; pick a broker ({brokers}) or one "
                             f"of: {known}")
        chosen += [s for s in found if s not in chosen]
    return chosen
