"""CQG's part of ``brokergate demo``: its scenarios, and its simulators staged for them (two:
the second is where the first redirects)."""

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
    settle,
    wait_for,
)
from brokergate.machines import Secret, SessionSettings
from brokergate.machines.cqg import CqgConfig
from brokergate.machines.cqg import cqg_session_pb2 as pb
from brokergate.simulators.cqg.accounts import CqgAccount
from brokergate.simulators.cqg.server import CqgSimulator, run_cqg_simulator


@dataclass(frozen=True)
class CqgStage:
    """The CQG simulator the demo's CQG sessions log on to, and the one it redirects to."""

    sim: CqgSimulator
    second: CqgSimulator

    @property
    def address(self) -> str:
        return f"{self.sim.url} (and {self.second.url}, where it redirects)"

    def violations(self) -> list[str]:
        return ([f"cqg: {v}" for v in self.sim.stats.violations]
                + [f"cqg (second): {v}" for v in self.second.stats.violations])

    def counts(self) -> dict[str, int]:
        return {"cqg_logons": self.sim.stats.logons_ok + self.second.stats.logons_ok,
                "cqg_restores": self.sim.stats.restores_ok}

    async def early_request(self, session: Session) -> object:
        await session.send(pb.ClientMsg(
            set_collapsing_level_request=pb.SetCollapsingLevelRequest(max_collapsing_level=1)))
        return None


@asynccontextmanager
async def staged(scenarios: Sequence[Scenario[CqgStage]],
                 clock: DemoClock) -> AsyncIterator[CqgStage]:
    """The second simulator first: the accounts that are redirected need its address."""
    async with run_cqg_simulator([CqgAccount("rita", "rita-pw")]) as second:
        accounts = [a for sc in scenarios for a in sc.accounts(second.url)]
        async with run_cqg_simulator(accounts) as sim:
            yield CqgStage(sim, second)


Builder = Callable[[CqgStage, str, int], SessionSettings]


def _cqg(user: str | None, **options: Any) -> Builder:
    def build(stage: CqgStage, session_id: str, n: int) -> SessionSettings:
        values: dict[str, Any] = {
            "url": stage.sim.url, "client_app_id": "brokergate-demo", "backoff": DEMO_BACKOFF,
            "min_logon_interval": 0.5, "connect_timeout": 2.0, "login_timeout": 2.0,
            "restore_window": 10.0, "session_id": session_id,
        }
        if user is not None:
            values.update(user_name=user, password=Secret(f"{user}-pw"))
        values.update(options)
        return CqgConfig(**values)
    return build


async def _drop_twice(stage: CqgStage, session: Session) -> str:
    for n in (1, 2):
        await settle()
        await stage.sim.drop("dana")
        await wait_for(session, _restored(session, n))
    return "TCP dropped twice by the simulator; restored both times"


def _restored(session: Session, times: int) -> Callable[[], bool]:
    return lambda: session.outcome()["restores"] == times and session.state == "authenticated"


async def _late_restore(stage: CqgStage, session: Session) -> str:
    await settle()
    stage.sim.expire_sessions("lee")  # the server forgets the session: its lifetime is over
    await stage.sim.drop("lee")
    await wait_for(session, lambda: session.outcome()["logons"] == 2
                   and session.state == "authenticated")
    return "restore refused (101 UNKNOWN_SESSION): logged on afresh"


async def _redirected(stage: CqgStage, session: Session) -> str:
    return f"served by the second server ({stage.second.live_connections('rita')} connection)"


async def _fresh_access_token() -> str:
    await trio.sleep(0.3)  # an OAuth refresh round trip
    return "tina-token-new"


SCENARIOS: list[Scenario[CqgStage]] = [
    Scenario("cqg-logon", "cqg", "logs on; the application's early messages are refused",
             Expect("authenticated", counts={"logons": 1}),
             lambda second_url: [CqgAccount("carl", "carl-pw", logon_delay=0.4)], _cqg("carl"),
             early_requests=3),
    Scenario("cqg-dropped-twice", "cqg",
             "connection dropped twice: restored each time, no second logon",
             Expect("authenticated", counts={"logons": 1, "restores": 2}),
             lambda second_url: [CqgAccount("dana", "dana-pw")], _cqg("dana"), _drop_twice),
    Scenario("cqg-late-restore", "cqg",
             "dropped after the server forgot the session: restore refused, logs on again",
             Expect("authenticated", counts={"logons": 2, "restores": 0}),
             lambda second_url: [CqgAccount("lee", "lee-pw")], _cqg("lee"), _late_restore),
    Scenario("cqg-redirect", "cqg", "told to go elsewhere (106 REDIRECTED): logs on there",
             Expect("authenticated", counts={"logons": 1}),
             lambda second_url: [CqgAccount("rita", "rita-pw", redirect_to=second_url)],
             _cqg("rita"), _redirected, early_requests=1),
    Scenario("cqg-token-refresh", "cqg",
             "its access token expired (108): the provider gives a fresh one, logs on with it",
             Expect("authenticated", counts={"logons": 1}),
             lambda second_url: [CqgAccount("tina", "tina-pw",
                                            access_tokens=frozenset({"tina-token-new"}),
                                            expired_tokens=frozenset({"tina-token-old"}))],
             _cqg(None, access_token=Secret("tina-token-old"),
                  access_token_provider=_fresh_access_token, client_app_id=None)),
]

DEMO = BrokerDemo(SCENARIOS, staged)
