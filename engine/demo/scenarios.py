"""The demo's scenarios: for each, the simulator accounts it needs, the session configuration,
what the application does once logged in, and the outcome the session must reach.

Every scenario runs against the built-in simulators on loopback with short timers, so the
whole fleet finishes in seconds. The scripts use only the public session API.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import trio

from brokergate.engine._errors import NotAuthenticated
from brokergate.engine._session import Session
from brokergate.machines import Backoff, Secret, SessionSettings
from brokergate.machines.cqg import CqgConfig
from brokergate.machines.cqg import cqg_session_pb2 as cqg_pb
from brokergate.machines.firstock import FirstockConfig
from brokergate.machines.qst import Coalescing, QstConfig
from brokergate.machines.qst import qst_pb2 as qst_pb
from brokergate.simulators.cqg import CqgAccount, CqgSimulator
from brokergate.simulators.firstock import FirstockAccount, FirstockSimulator
from brokergate.simulators.qst import QstAccount, QstSimulator

#: Short timers so that the whole demo takes seconds: every session uses these.
DEMO_BACKOFF = Backoff(initial=0.2, factor=2.0, cap=1.0, max_attempts=5, stability_window=2.0)
#: The firstock fleet: how many accounts log in at once, and the broker's request limit.
MORNING_ACCOUNTS = 40
FIRSTOCK_RATE_LIMIT = 20.0
#: The demo's wall clock is moved so that the next 30 s TOTP window opens this soon after the
#: start, and the invalid-TOTP scenario waits seconds, not up to half a minute.
TOTP_WINDOW_AFTER = 6.0
DEMO_SEED = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"
FIXED_TOTP = "123456"


@dataclass(frozen=True)
class DemoClock:
    """The system clock moved by ``offset`` seconds: the demo's sessions and its Firstock
    simulator read TOTP windows from it."""

    offset: float

    def seconds(self) -> float:
        return time.time() + self.offset

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.seconds(), UTC)

    @classmethod
    def with_window_in(cls, seconds: float) -> DemoClock:
        """A clock whose next 30 s TOTP window opens ``seconds`` from now."""
        return cls((30.0 - seconds - time.time() % 30.0) % 30.0)


@dataclass
class Stage:
    """What the scenarios run against: the simulators, and the demo's wall clock."""

    qst: QstSimulator
    cqg: CqgSimulator
    cqg_second: CqgSimulator
    firstock: FirstockSimulator
    clock: DemoClock


@dataclass(frozen=True)
class Setup:
    """What accounts may need to know before the simulators they live on start."""

    #: Where the CQG simulator redirects to (a second simulator, started first).
    cqg_second_url: str


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


#: What the application does once its session is authenticated; returns a note for the summary.
Script = Callable[[Stage, Session], Awaitable[str | None]]
#: The session configuration of a scenario's n-th session.
Builder = Callable[[Stage, str, int], SessionSettings]


@dataclass(frozen=True)
class Scenario:
    name: str
    broker: str
    story: str
    expect: Expect
    accounts: Callable[[Setup], list[Any]]
    build: Builder
    script: Script | None = None
    #: Sessions with this scenario (a fleet when more than one).
    sessions: int = 1
    #: Requests the application tries before the login answer (each must be refused).
    early_requests: int = 0
    #: The path is drawn over the broker's diagram in the output folder (a fleet's first).
    traced: bool = True


# --- early requests: the gate refuses them, nothing reaches the broker --------------------------


async def try_early(session: Session, broker: str) -> bool:
    """One application request before the login answer; True when the gate refused it."""
    try:
        if broker == "qst":
            await session.request(qst_pb.TranslateInstrumentSymbolRequest(
                symbol_source=1, instrument_symbols=["ESZ6"]))
        elif broker == "cqg":
            await session.send(cqg_pb.ClientMsg(
                set_collapsing_level_request=cqg_pb.SetCollapsingLevelRequest(
                    max_collapsing_level=1)))
        else:
            await session.call("limit")
    except NotAuthenticated:
        return True
    return False


# --- QST ----------------------------------------------------------------------------------------


def _qst(user: str, password: str | None = None, **options: Any) -> Builder:
    def build(stage: Stage, session_id: str, n: int) -> SessionSettings:
        return QstConfig(url=stage.qst.url, user_name=user, client_id="brokergate-demo",
                         password=Secret(password or f"{user}-pw"), backoff=DEMO_BACKOFF,
                         connect_timeout=2.0, login_timeout=2.0, session_id=session_id,
                         **options)
    return build


async def _translate(stage: Stage, session: Session) -> str:
    answer = await session.request(qst_pb.TranslateInstrumentSymbolRequest(
        symbol_source=1, instrument_symbols=["ESZ6", "NQZ6"]))
    granted = (session.outcome().get("granted") or {}).get("coalescing_interval", "?")
    ids = ", ".join(f"{r.symbol}={r.instrument_id}" for r in answer.records)
    granted = granted.strip("_").replace("_MS", " ms").lower()
    return f"asked for 100 ms quotes, granted {granted}; translated {ids}"


async def _until_ended(stage: Stage, session: Session) -> str | None:
    """Hold the session until the broker ends it (or a few seconds pass)."""
    with trio.move_on_after(5):
        async with session.events() as events:
            async for _ in events:
                if session.state != "authenticated":
                    break
    return None


QST = [
    Scenario("qst-clean-login", "qst",
             "asks for 100 ms quotes, is granted its entitled 250 ms, translates two symbols",
             Expect("authenticated", counts={"attempts": 1}),
             lambda setup: [QstAccount("alice", "alice-pw", entitled_interval=qst_pb._250_MS,
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
             _qst("kim"), _until_ended, early_requests=2),
]


# --- CQG ----------------------------------------------------------------------------------------


def _cqg(user: str | None, **options: Any) -> Builder:
    def build(stage: Stage, session_id: str, n: int) -> SessionSettings:
        values: dict[str, Any] = {
            "url": stage.cqg.url, "client_app_id": "brokergate-demo", "backoff": DEMO_BACKOFF,
            "min_logon_interval": 0.5, "connect_timeout": 2.0, "login_timeout": 2.0,
            "restore_window": 10.0, "session_id": session_id,
        }
        if user is not None:
            values.update(user_name=user, password=Secret(f"{user}-pw"))
        values.update(options)
        return CqgConfig(**values)
    return build


async def _settle() -> None:
    """Stay up past the stability window, so that a drop is restored at once."""
    await trio.sleep(DEMO_BACKOFF.stability_window + 0.5)


async def _wait_for(session: Session, done: Callable[[], bool], limit: float = 10.0) -> None:
    with trio.fail_after(limit):
        async with session.events() as events:
            if done():
                return
            async for _ in events:
                if done():
                    return


async def _drop_twice(stage: Stage, session: Session) -> str:
    for n in (1, 2):
        await _settle()
        await stage.cqg.drop("dana")
        await _wait_for(session, _restored(session, n))
    return "TCP dropped twice by the simulator; restored both times"


def _restored(session: Session, times: int) -> Callable[[], bool]:
    return lambda: session.outcome()["restores"] == times and session.state == "authenticated"


async def _late_restore(stage: Stage, session: Session) -> str:
    await _settle()
    stage.cqg.expire_sessions("lee")  # the server forgets the session: its lifetime is over
    await stage.cqg.drop("lee")
    await _wait_for(session, lambda: session.outcome()["logons"] == 2
                    and session.state == "authenticated")
    return "restore refused (101 UNKNOWN_SESSION): logged on afresh"


async def _redirected(stage: Stage, session: Session) -> str:
    return f"served by the second server ({stage.cqg_second.live_connections('rita')} connection)"


async def _fresh_access_token() -> str:
    await trio.sleep(0.3)  # an OAuth refresh round trip
    return "tina-token-new"


CQG = [
    Scenario("cqg-logon", "cqg", "logs on; the application's early messages are refused",
             Expect("authenticated", counts={"logons": 1}),
             lambda setup: [CqgAccount("carl", "carl-pw", logon_delay=0.4)], _cqg("carl"),
             early_requests=3),
    Scenario("cqg-dropped-twice", "cqg",
             "connection dropped twice: restored each time, no second logon",
             Expect("authenticated", counts={"logons": 1, "restores": 2}),
             lambda setup: [CqgAccount("dana", "dana-pw")], _cqg("dana"), _drop_twice),
    Scenario("cqg-late-restore", "cqg",
             "dropped after the server forgot the session: restore refused, logs on again",
             Expect("authenticated", counts={"logons": 2, "restores": 0}),
             lambda setup: [CqgAccount("lee", "lee-pw")], _cqg("lee"), _late_restore),
    Scenario("cqg-redirect", "cqg", "told to go elsewhere (106 REDIRECTED): logs on there",
             Expect("authenticated", counts={"logons": 1}),
             lambda setup: [CqgAccount("rita", "rita-pw", redirect_to=setup.cqg_second_url)],
             _cqg("rita"), _redirected, early_requests=1),
    Scenario("cqg-token-refresh", "cqg",
             "its access token expired (108): the provider gives a fresh one, logs on with it",
             Expect("authenticated", counts={"logons": 1}),
             lambda setup: [CqgAccount("tina", "tina-pw",
                                       access_tokens=frozenset({"tina-token-new"}),
                                       expired_tokens=frozenset({"tina-token-old"}))],
             _cqg(None, access_token=Secret("tina-token-old"),
                  access_token_provider=_fresh_access_token, client_app_id=None)),
]


# --- Firstock -----------------------------------------------------------------------------------


def _firstock(user: str | None, **options: Any) -> Builder:
    def build(stage: Stage, session_id: str, n: int) -> SessionSettings:
        uid = user or f"FS{n + 1:03d}"
        values: dict[str, Any] = {
            "base_url": stage.firstock.base_url, "user_id": uid,
            "password": Secret(f"{uid}-pw"), "api_key": Secret(f"key-{uid}"),
            "vendor_code": f"{uid}_API", "totp": Secret(FIXED_TOTP), "socket": "noren",
            "socket_url": stage.firstock.noren_url, "backoff": DEMO_BACKOFF,
            "requests_per_second": FIRSTOCK_RATE_LIMIT, "session_id": session_id,
        }
        values.update(options)
        return FirstockConfig(**values)
    return build


def _fs_account(user: str, **options: Any) -> FirstockAccount:
    options.setdefault("fixed_totp", FIXED_TOTP)
    return FirstockAccount(user, f"{user}-pw", **options)


async def _expire_and_call(stage: Stage, session: Session) -> str:
    await session.call("limit")
    stage.firstock.expire_tokens("TOKY")  # the broker ends the token early
    await session.call("limit")  # refused, logged in again once, answered
    return "token expired at the broker; the next call logged in again and went through"


async def _hold(stage: Stage, session: Session) -> str | None:
    await trio.sleep(1.0)  # hold while the rest of the fleet logs in
    return None


FIRSTOCK = [
    Scenario("firstock-morning-login", "firstock",
             f"{MORNING_ACCOUNTS} accounts log in at once under the broker's "
             f"{FIRSTOCK_RATE_LIMIT:g} req/s limit",
             Expect("authenticated", counts={"rest_logins": 1}),
             lambda setup: [_fs_account(f"FS{n + 1:03d}") for n in range(MORNING_ACCOUNTS)],
             _firstock(None), _hold, sessions=MORNING_ACCOUNTS),
    Scenario("firstock-invalid-totp", "firstock",
             "its TOTP is refused once: waits for the next 30 s window, tries once more",
             Expect("authenticated", counts={"rest_logins": 1}),
             lambda setup: [_fs_account("TOTY", fixed_totp=None, totp_seed=DEMO_SEED,
                                  invalid_totp_times=1)],
             _firstock("TOTY", totp=None, totp_seed=Secret(DEMO_SEED), socket="none",
                       socket_url=None)),
    Scenario("firstock-token-expiry", "firstock",
             "its token expires at the broker: the next call logs in again, once",
             Expect("authenticated", counts={"rest_logins": 2}),
             lambda setup: [_fs_account("TOKY", login_delay=0.3)], _firstock("TOKY"),
             _expire_and_call, early_requests=2),
    Scenario("firstock-blocked-user", "firstock",
             "the user is blocked at the broker: locked_out at once, never retried",
             Expect("locked_out", "user_blocked", {"attempts": 1}),
             lambda setup: [_fs_account("BLOCKY", blocked=True)], _firstock("BLOCKY")),
]

SCENARIOS: list[Scenario] = [*QST, *CQG, *FIRSTOCK]


def pick(names: list[str] | None) -> list[Scenario]:
    """The scenarios named (a scenario's name, or a broker for all of its scenarios)."""
    if not names:
        return list(SCENARIOS)
    chosen: list[Scenario] = []
    for name in names:
        found = [s for s in SCENARIOS if name in (s.name, s.broker)]
        if not found:
            known = ", ".join(s.name for s in SCENARIOS)
            raise ValueError(f"no scenario {name!r}; pick a broker (qst, cqg, firstock) or one "
                             f"of: {known}")
        chosen += [s for s in found if s not in chosen]
    return chosen
