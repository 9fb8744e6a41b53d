"""QST's part of ``brokergate demo``: its scenarios, and its simulator staged for them."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from brokergate.engine._session import Session
from brokergate.engine.demo.scenarios import (
    DEMO_BACKOFF,
    BrokerDemo,
    DemoClock,
    Expect,
    Scenario,
    until_ended,
)
from brokergate.machines import Secret, SessionSettings
from brokergate.machines.qst import Coalescing, QstConfig
from brokergate.machines.qst import qst_pb2 as pb
from brokergate.simulators.qst.accounts import QstAccount
from brokergate.simulators.qst.server import QstSimulator, run_qst_simulator


@dataclass(frozen=True)
class QstStage:
    """The QST simulator the demo's QST sessions log in to."""

    sim: QstSimulator

    @property
    def address(self) -> str:
        return self.sim.url

    def violations(self) -> list[str]:
        return [f"qst: {v}" for v in self.sim.stats.violations]

    def counts(self) -> dict[str, int]:
        return {"qst_logins": self.sim.stats.logins_ok}

    async def early_request(self, session: Session) -> object:
        return await session.request(pb.TranslateInstrumentSymbolRequest(
            symbol_source=1, instrument_symbols=["ESZ6"]))


Builder = Callable[[QstStage, str, int], SessionSettings]


@asynccontextmanager
async def staged(scenarios: Sequence[Scenario[QstStage]],
                 clock: DemoClock) -> AsyncIterator[QstStage]:
    accounts = [a for sc in scenarios for a in sc.accounts(None)]
    async with run_qst_simulator(accounts) as sim:
        yield QstStage(sim)


def _qst(user: str, password: str | None = None, **options: Any) -> Builder:
    def build(stage: QstStage, session_id: str, n: int) -> SessionSettings:
        return QstConfig(url=stage.sim.url, user_name=user, client_id="brokergate-demo",
                         password=Secret(password or f"{user}-pw"), backoff=DEMO_BACKOFF,
                         connect_timeout=2.0, login_timeout=2.0, session_id=session_id,
                         **options)
    return build


async def _translate(stage: QstStage, session: Session) -> str:
    answer = await session.request(pb.TranslateInstrumentSymbolRequest(
        symbol_source=1, instrument_symbols=["ESZ6", "NQZ6"]))
    granted = (session.outcome().get("granted") or {}).get("coalescing_interval", "?")
    ids = ", ".join(f"{r.symbol}={r.instrument_id}" for r in answer.records)
    granted = granted.strip("_").replace("_MS", " ms").lower()
    return f"asked for 100 ms quotes, granted {granted}; translated {ids}"


SCENARIOS: list[Scenario[QstStage]] = [
    Scenario("qst-clean-login", "qst",
             "asks for 100 ms quotes, is granted its entitled 250 ms, translates two symbols",
             Expect("authenticated", counts={"attempts": 1}),
             lambda setup: [QstAccount("alice", "alice-pw", entitled_interval=pb._250_MS,
                                       login_delay=0.4)],
             _qst("alice", coalescing_interval=Coalescing.MS_100), _translate,
             early_requests=3),
    Scenario("qst-pending-agreements", "qst", "has market-data terms to accept: stops and says so",
             Expect("provisioning", "pending_agreements"),
             lambda setup: [QstAccount("pat", "pat-pw", provisioning=[
                 ("cme-1", "CME data agreement", "Accept the CME terms",
                  "https://support.example/terms")])],
             _qst("pat")),
    Scenario("qst-wrong-password", "qst",
             "wrong password: one attempt, never retried, so the account is not locked",
             Expect("failed", "invalid_credentials", {"attempts": 1}),
             lambda setup: [QstAccount("walt", "the-real-pw", lockout_after=3)],
             _qst("walt", password="a-wrong-guess")),
    Scenario("qst-server-error", "qst",
             "'Server error (6)' twice: retried with backoff, the third login succeeds",
             Expect("authenticated", counts={"attempts": 3}),
             lambda setup: [QstAccount("fran", "fran-pw", server_errors=2)], _qst("fran")),
    Scenario("qst-second-device", "qst",
             "another device logs in as the same user (close 4101): brokergate steps aside",
             Expect("displaced", "displaced", {"attempts": 1}),
             lambda setup: [QstAccount("kim", "kim-pw", close_after_login=4101,
                                       close_after_login_delay=0.5, login_delay=0.3)],
             _qst("kim"), until_ended, early_requests=2),
]

DEMO = BrokerDemo(SCENARIOS, staged)
