"""Firstock's part of ``brokergate demo``: its scenarios, and its simulator staged for them
(under a request rate limit, with the demo's wall clock for TOTP windows)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import trio

from brokergate.engine._session import Session
from brokergate.engine.demo.scenarios import (
    DEMO_BACKOFF,
    BrokerDemo,
    DemoClock,
    Expect,
    Scenario,
)
from brokergate.machines import Secret, SessionSettings
from brokergate.machines.firstock import FirstockConfig
from brokergate.simulators.firstock.accounts import (
    DEMO_FIXED_TOTP,
    DEMO_TOTP_SEED,
    FirstockAccount,
)
from brokergate.simulators.firstock.server import FirstockSimulator, run_firstock_simulator

#: The morning fleet: how many accounts log in at once, and the broker's request limit.
MORNING_ACCOUNTS = 40
RATE_LIMIT = 20.0


@dataclass(frozen=True)
class FirstockStage:
    """The Firstock simulator (REST and sockets) the demo's Firstock sessions log in to."""

    sim: FirstockSimulator

    @property
    def address(self) -> str:
        return (f"{self.sim.base_url} (REST, {RATE_LIMIT:g} req/s limit), "
                f"{self.sim.noren_url} (socket)")

    def violations(self) -> list[str]:
        return [f"firstock: {v}" for v in self.sim.stats.violations]

    def counts(self) -> dict[str, int]:
        return {"firstock_429": self.sim.stats.status_429,
                "firstock_logins": self.sim.stats.logins_ok}

    async def early_request(self, session: Session) -> object:
        return await session.call("limit")


@asynccontextmanager
async def staged(scenarios: Sequence[Scenario[FirstockStage]],
                 clock: DemoClock) -> AsyncIterator[FirstockStage]:
    accounts = [a for sc in scenarios for a in sc.accounts(None)]
    async with run_firstock_simulator(accounts, rate_limit=RATE_LIMIT,
                                      wall_clock=clock.seconds) as sim:
        yield FirstockStage(sim)


Builder = Callable[[FirstockStage, str, int], SessionSettings]


def _firstock(user: str | None, **options: Any) -> Builder:
    def build(stage: FirstockStage, session_id: str, n: int) -> SessionSettings:
        uid = user or f"FS{n + 1:03d}"
        values: dict[str, Any] = {
            "base_url": stage.sim.base_url, "user_id": uid,
            "password": Secret(f"{uid}-pw"), "api_key": Secret(f"key-{uid}"),
            "vendor_code": f"{uid}_API", "totp": Secret(DEMO_FIXED_TOTP), "socket": "noren",
            "socket_url": stage.sim.noren_url, "backoff": DEMO_BACKOFF,
            "requests_per_second": RATE_LIMIT, "session_id": session_id,
        }
        values.update(options)
        return FirstockConfig(**values)
    return build


def _account(user: str, **options: Any) -> FirstockAccount:
    options.setdefault("fixed_totp", DEMO_FIXED_TOTP)
    return FirstockAccount(user, f"{user}-pw", **options)


async def _expire_and_call(stage: FirstockStage, session: Session) -> str:
    await session.call("limit")
    stage.sim.expire_tokens("TOKY")  # the broker ends the token early
    await session.call("limit")  # refused, logged in again once, answered
    return "token expired at the broker; the next call logged in again and went through"


async def _hold(stage: FirstockStage, session: Session) -> str | None:
    await trio.sleep(1.0)  # hold while the rest of the fleet logs in
    return None


def _under_the_limit(stage: FirstockStage, sessions: int, took: float) -> tuple[str, list[str]]:
    refused = stage.sim.stats.status_429
    note = (f"{sessions} logins in {took:.2f} s = {sessions / took:.1f}/s under a "
            f"{RATE_LIMIT:g} req/s limit; HTTP 429 answers: {refused}")
    return note, ["the broker answered 429: the rate limit was exceeded"] if refused else []


SCENARIOS: list[Scenario[FirstockStage]] = [
    Scenario("firstock-morning-login", "firstock",
             f"{MORNING_ACCOUNTS} accounts log in at once under the broker's "
             f"{RATE_LIMIT:g} req/s limit",
             Expect("authenticated", counts={"rest_logins": 1}),
             lambda setup: [_account(f"FS{n + 1:03d}") for n in range(MORNING_ACCOUNTS)],
             _firstock(None), _hold, sessions=MORNING_ACCOUNTS, fleet_note=_under_the_limit),
    Scenario("firstock-invalid-totp", "firstock",
             "its TOTP is refused once: waits for the next 30 s window, tries once more",
             Expect("authenticated", counts={"rest_logins": 1}),
             lambda setup: [_account("TOTY", fixed_totp=None, totp_seed=DEMO_TOTP_SEED,
                                     invalid_totp_times=1)],
             _firstock("TOTY", totp=None, totp_seed=Secret(DEMO_TOTP_SEED), socket="none",
                       socket_url=None)),
    Scenario("firstock-token-expiry", "firstock",
             "its token expires at the broker: the next call logs in again, once",
             Expect("authenticated", counts={"rest_logins": 2}),
             lambda setup: [_account("TOKY", login_delay=0.3)], _firstock("TOKY"),
             _expire_and_call, early_requests=2),
    Scenario("firstock-blocked-user", "firstock",
             "the user is blocked at the broker: locked_out at once, never retried",
             Expect("locked_out", "user_blocked", {"attempts": 1}),
             lambda setup: [_account("BLOCKY", blocked=True)], _firstock("BLOCKY")),
]

DEMO = BrokerDemo(SCENARIOS, staged)
