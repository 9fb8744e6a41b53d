"""Seeded property runs: one session per run, through the fault proxy, to a broker's simulator.

Each run draws from its seed an account behaviour (a good login, a wrong password, a flaky
server, a blocked user...), a fault plan for the first connections (latency, throttling, split
writes, drops, resets, truncations, stalls at random byte positions) and, for sessions that log
in, a fault struck once the session is authenticated. Then it checks the properties the engine
promises, whatever the faults:

- the gate: an application request before the login result is refused, and the simulator sees
  no request before a login (its violation list stays empty);
- the end: the session ends in the state its account behaviour calls for, within the time its
  own timeouts and backoff allow, and logging out leaves no task, socket or connection behind;
  nothing escapes the session's nursery;
- credentials: after an invalid-credentials answer nothing is sent again, so a run never locks an
  account by itself;
- CQG: a session that loses its connection once authenticated is restored, with no further
  logon; Firstock: a lost socket is reattached with the token in hand, with no REST login;
- secrets: no password, API key, TOTP or token appears in the JSON-lines audit trail, the
  session's repr and outcome, or any error message.

A run that breaks a property records a line naming the broker, the seed and the plan, so that
``python -m reliability --broker qst --seed N`` replays it.
"""

from __future__ import annotations

import io
import json
import os
import random
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import trio
import trio.testing

from brokergate import (
    AuditLog,
    Backoff,
    ConnectionLost,
    CqgConfig,
    FirstockConfig,
    MemoryTokenStore,
    NotAuthenticated,
    QstConfig,
    Secret,
    Session,
    SessionError,
    open_session,
)
from brokergate.engine._alarms import TASK_NAME as ALARM_CLOCK_TASK
from brokergate.machines import AUTHENTICATED, TERMINAL_STATES, SessionSettings, Transitioned
from brokergate.machines.cqg import cqg_session_pb2 as cqg_pb
from brokergate.machines.qst import qst_pb2 as qst_pb
from brokergate.simulators.cqg import CqgAccount, run_cqg_simulator
from brokergate.simulators.faults import FaultPlan, FaultProxy, random_plan
from brokergate.simulators.firstock import FirstockAccount, run_firstock_simulator
from brokergate.simulators.qst import QstAccount, run_qst_simulator
from reliability.tally import Tally

#: Retry policy of every run: enough attempts for two faulty connections plus an account's own
#: scripted errors, short delays (virtual time makes them free anyway).
BACKOFF = Backoff(initial=0.5, factor=2.0, cap=4.0, max_attempts=8, stability_window=30.0)
#: Timeouts and liveness probes of every run's session.
TIMEOUTS: dict[str, Any] = {"connect_timeout": 5.0, "login_timeout": 5.0, "logout_timeout": 3.0,
                            "ping_interval": 5.0, "ping_timeout": 5.0}
#: The one-shot faults struck at an authenticated session.
STRIKES = ("drop", "reset", "stall", "truncate")


@dataclass(frozen=True, slots=True)
class Behaviour:
    """An account's scripted behaviour and the end it must lead to."""

    name: str
    state: str
    reason: str | None = None
    #: The account answers with an invalid-credentials error (never to be retried).
    bad_credentials: bool = False
    #: Options of the simulator's account that script the behaviour.
    account: dict[str, Any] = field(default_factory=dict)


@dataclass
class World:
    """What a run's session talks to: its configuration and the proxies in the way."""

    config: SessionSettings
    proxies: list[FaultProxy]
    #: The proxy whose connections a strike after login hits.
    strike_proxy: FaultProxy
    sim: Any
    #: Secrets the broker side handed out, read after login (tokens).
    issued: Callable[[], list[str]] = lambda: []


class Broker:
    """One broker's part in the property runs. Subclasses fill in the simulator and requests."""

    name = ""
    behaviours: tuple[Behaviour, ...] = ()

    def world(self, behaviour: Behaviour, plan: FaultPlan, seed: int
              ) -> AbstractAsyncContextManager[World]:
        """Start the simulator and its proxies; yield the session's configuration."""
        raise NotImplementedError

    async def early(self, session: Session) -> None:
        raise NotImplementedError

    async def use(self, session: Session) -> None:
        """One application request on an authenticated session; raises if it fails."""
        raise NotImplementedError

    def violations(self, sim: Any) -> list[str]:
        return list(sim.stats.violations)

    def after_recovery(self, before: dict[str, Any], after: dict[str, Any],
                       steps: list[Transitioned], tally: Tally) -> list[str]:
        """Problems with how the session came back after the strike (broker-specific);
        ``steps`` are the transitions from the strike to authenticated again."""
        return []

    def secrets(self, config: Any) -> list[str]:
        found = []
        for name in ("password", "api_key", "totp", "totp_seed", "access_token", "otp_seed"):
            value = getattr(config, name, None)
            if isinstance(value, Secret):
                found.append(value.reveal())
        return found



# --- QST ----------------------------------------------------------------------------------------


class Qst(Broker):
    name = "qst"
    behaviours = (
        Behaviour("good", AUTHENTICATED),
        Behaviour("good", AUTHENTICATED),
        Behaviour("flaky server (code 6 twice)", AUTHENTICATED, account={"server_errors": 2}),
        Behaviour("drops the first login", AUTHENTICATED, account={"drop_mid_login": 1}),
        Behaviour("wrong password", "failed", "invalid_credentials", bad_credentials=True,
                  account={"lockout_after": 4}),
        Behaviour("pending agreements", "provisioning", "pending_agreements",
                  account={"provisioning": [("t1", "Terms", "Accept", "https://x.invalid")]}),
        Behaviour("locked (code 5)", "locked_out", account={"error_code": 5}),
    )


    @asynccontextmanager
    async def world(self, behaviour: Behaviour, plan: FaultPlan,
                    seed: int) -> AsyncIterator[World]:
        user = _user(seed)
        account = QstAccount(user, "right-pw-Q7", **behaviour.account)
        async with run_qst_simulator([account]) as sim, _proxied(
                [(sim.port, plan)], seed) as (proxy,):
            password = "wrong-pw-Q7" if behaviour.bad_credentials else "right-pw-Q7"
            config = QstConfig(url=proxy.url(sim.url), user_name=user,
                               password=Secret(password), client_id="reliability",
                               backoff=BACKOFF, **TIMEOUTS)
            yield World(config, [proxy], proxy, sim)

    async def early(self, session: Session) -> None:
        await session.request(qst_pb.TranslateInstrumentSymbolRequest(
            symbol_source=1, instrument_symbols=["ESZ6"]))

    async def use(self, session: Session) -> None:
        answer = await session.request(qst_pb.TranslateInstrumentSymbolRequest(
            symbol_source=1, instrument_symbols=["ESZ6"]))
        if not answer.records:
            raise AssertionError("the translation came back empty")


# --- CQG ----------------------------------------------------------------------------------------


class Cqg(Broker):
    name = "cqg"
    behaviours = (
        Behaviour("good", AUTHENTICATED),
        Behaviour("good", AUTHENTICATED),
        Behaviour("drops the first logon", AUTHENTICATED, account={"drop_mid_logon": 1}),
        Behaviour("wrong password", "failed", "logon_failure", bad_credentials=True),
        Behaviour("password expired (104)", "failed", "password_expired",
                  account={"logon_result": 104}),
    )

    @asynccontextmanager
    async def world(self, behaviour: Behaviour, plan: FaultPlan,
                    seed: int) -> AsyncIterator[World]:
        user = _user(seed)
        account = CqgAccount(user, "right-pw-C7", **behaviour.account)
        async with run_cqg_simulator([account]) as sim, _proxied(
                [(sim.port, plan)], seed) as (proxy,):
            password = "wrong-pw-C7" if behaviour.bad_credentials else "right-pw-C7"
            config = CqgConfig(url=proxy.url(sim.url), user_name=user,
                               password=Secret(password), client_app_id="reliability",
                               backoff=BACKOFF, min_logon_interval=1.0, restore_window=60.0,
                               **TIMEOUTS)

            def issued() -> list[str]:
                token = sim.session_token(user)
                return [token] if token else []

            yield World(config, [proxy], proxy, sim, issued)

    async def early(self, session: Session) -> None:
        await session.send(_cqg_app_message())

    async def use(self, session: Session) -> None:
        await session.send(_cqg_app_message())

    def after_recovery(self, before: dict[str, Any], after: dict[str, Any],
                       steps: list[Transitioned], tally: Tally) -> list[str]:
        problems = []
        # A full logon is due only where the server refused the restore (it forgot the session).
        refused = sum(1 for t in steps if t.trigger == "restore_result" and t.dst != AUTHENTICATED)
        extra = after["logons"] - before["logons"] - refused
        if extra > 0:
            tally.extra_logons[self.name] += extra
            problems.append(f"{extra} logon(s) where a restore was due")
        if not refused and after["restores"] <= before["restores"]:
            problems.append("the connection came back without a restore")
        return problems


def _cqg_app_message() -> cqg_pb.ClientMsg:
    return cqg_pb.ClientMsg(set_collapsing_level_request=cqg_pb.SetCollapsingLevelRequest(
        max_collapsing_level=1))


# --- Firstock -----------------------------------------------------------------------------------


class Firstock(Broker):
    name = "firstock"
    behaviours = (
        Behaviour("good", AUTHENTICATED),
        Behaviour("good", AUTHENTICATED),
        Behaviour("flaky server (500 twice)", AUTHENTICATED, account={"server_errors": 2}),
        Behaviour("rate limited (429 twice)", AUTHENTICATED,
                  account={"rate_limited_times": 2, "retry_after": 1.0}),
        Behaviour("wrong password", "failed", "invalid_credentials", bad_credentials=True,
                  account={"block_after": 4}),
        Behaviour("blocked user", "locked_out", "user_blocked", account={"blocked": True}),
    )

    @asynccontextmanager
    async def world(self, behaviour: Behaviour, plan: FaultPlan,
                    seed: int) -> AsyncIterator[World]:
        user = _user(seed).upper()
        account = FirstockAccount(user, "right-pw-F7", fixed_totp="481516", **behaviour.account)
        async with run_firstock_simulator([account]) as sim:
            rest_port = sim.port
            socket_port = sim.sockets.port
            # The REST API and the socket each get a proxy; the seed's faults land on the REST
            # connections (the login) or on the socket's, by the plan's draw.
            socket_plan, rest_plan = (plan, FaultPlan.clean()) if seed % 2 else (
                FaultPlan.clean(), plan)
            async with _proxied([(rest_port, rest_plan), (socket_port, socket_plan)],
                                seed) as (rest, sock):
                password = "wrong-pw-F7" if behaviour.bad_credentials else "right-pw-F7"
                config = FirstockConfig(
                    base_url=rest.url(sim.base_url), user_id=user, password=Secret(password),
                    api_key=Secret(f"key-{user}"), vendor_code=f"{user}_API",
                    totp=Secret("481516"),
                    socket="noren", socket_url=sock.url(sim.noren_url), backoff=BACKOFF,
                    request_timeout=5.0, requests_per_second=None, **TIMEOUTS)

                def issued() -> list[str]:
                    token = sim.token_of(user)
                    return [token] if token else []

                yield World(config, [rest, sock], sock, sim, issued)

    async def early(self, session: Session) -> None:
        await session.call("limit")

    async def use(self, session: Session) -> None:
        await session.call("limit")

    def after_recovery(self, before: dict[str, Any], after: dict[str, Any],
                       steps: list[Transitioned], tally: Tally) -> list[str]:
        # A REST login is due only where the socket refused the token in hand (a login the
        # faults delayed may have reached Firstock late and replaced it).
        refused = sum(1 for t in steps if t.trigger == "socket_verdict"
                      and t.dst == "requesting_token")
        if after["rest_logins"] - before["rest_logins"] > refused:
            return ["a REST login where the token in hand would do"]
        if after["socket_attaches"] <= before["socket_attaches"]:
            return ["the socket came back without a reattach"]
        return []


def _user(seed: int) -> str:
    """A user of this run alone: the engine keeps some state per user for a whole process (CQG's
    daily logon count, Firstock's socket slots), and runs must not share it."""
    return f"u{seed}"


BROKERS: dict[str, Broker] = {b.name: b for b in (Qst(), Cqg(), Firstock())}


@asynccontextmanager
async def _proxied(targets: Iterable[tuple[int, FaultPlan]], seed: int
                   ) -> AsyncIterator[tuple[FaultProxy, ...]]:
    async with trio.open_nursery() as nursery:
        proxies = []
        for port, plan in targets:
            proxy = FaultProxy(port, plan, seed=seed)
            await nursery.start(proxy.serve)
            proxies.append(proxy)
        yield tuple(proxies)
        nursery.cancel_scope.cancel()


# --- the run ------------------------------------------------------------------------------------


def _open_fds() -> int | None:
    fd_dir = Path("/proc/self/fd")
    return len(os.listdir(fd_dir)) if fd_dir.is_dir() else None


def _task_count() -> int:
    """Tasks in this trio run, less the engine's alarm clock (one per run, for its life)."""
    count, stack = 0, [trio.lowlevel.current_root_task()]
    while stack:
        task = stack.pop()
        if task is None:
            continue
        count += task.name != ALARM_CLOCK_TASK
        for nursery in task.child_nurseries:
            stack.extend(nursery.child_tasks)
    return count


def _bound(config: SessionSettings) -> float:
    """The longest an honest session can take to end its login: every attempt timing out at
    connect and at login, every backoff at its cap, then a liveness probe's worth."""
    backoff = config.backoff
    attempts = backoff.max_attempts or 10
    per_attempt = config.connect_timeout + config.login_timeout + backoff.cap
    probe = (config.ping_interval or 0.0) + config.ping_timeout
    return attempts * per_attempt + probe + 10.0


@dataclass
class RunReport:
    """What one run was and how it ended."""

    broker: str
    seed: int
    behaviour: str
    plan: str
    strike: str | None
    state: str = "?"
    reason: str | None = None
    problems: list[str] = field(default_factory=list)
    #: The session's audit trail, JSON lines (for replaying a run that failed).
    audit: str = ""

    def label(self) -> str:
        strike = f"; struck {self.strike} after login" if self.strike else ""
        return f"seed {self.seed} ({self.behaviour}; {self.plan}{strike})"


class _Run:
    """One seeded run of one session, and everything it saw."""

    def __init__(self, broker: Broker, seed: int, tally: Tally) -> None:
        rng = random.Random(f"{broker.name}:{seed}")
        self.broker = broker
        self.tally = tally
        self.behaviour = rng.choice(broker.behaviours)
        plan = random_plan(rng, faulty=rng.choice((0, 1, 1, 2)))
        self.plan = plan
        logs_in = self.behaviour.state == AUTHENTICATED
        strike = rng.choice(STRIKES) if logs_in and rng.random() < 0.8 else None
        self.report = RunReport(broker.name, seed, self.behaviour.name, plan.describe(), strike)
        self.problems = self.report.problems
        self.audit = io.StringIO()
        #: Every text the run produced besides the audit: reprs, outcomes, error messages.
        self.seen: list[str] = []
        self.secrets: list[str] = []
        self.bound = 0.0

    async def run(self) -> RunReport:
        broker, tally = self.broker, self.tally
        tally.sessions[broker.name] += 1
        fds_before, tasks_before = _open_fds(), _task_count()
        leaked: list[str] = []
        try:
            async with broker.world(self.behaviour, self.plan, self.report.seed) as world:
                self.secrets += broker.secrets(world.config)
                self.bound = _bound(world.config)
                await self._session(world, self.bound)
                leaked += await self._open_connections(world)
                tally.faults.update(sum((p.stats.injected for p in world.proxies), Counter()))
                violations = broker.violations(world.sim)
                tally.violations[broker.name] += len(violations)
                self.problems += [f"simulator violation: {v}" for v in violations]
        except Exception as exc:
            # The session keeps its failures inside; anything here escaped its nursery.
            self.problems.append(f"an exception escaped: {_describe(exc)}")
            self.seen.append(f"{exc!r} {exc}")
        await trio.testing.wait_all_tasks_blocked()
        tasks_after, fds_after = _task_count(), _open_fds()
        if tasks_after > tasks_before:
            leaked.append(f"{tasks_after - tasks_before} task(s) left running")
        if fds_before is not None and fds_after is not None and fds_after > fds_before:
            leaked.append(f"{fds_after - fds_before} file descriptor(s) left open")
        tally.leaks[broker.name] += len(leaked)
        self.problems += leaked
        self._check_output()
        self.report.audit = self.audit.getvalue()
        if not self.problems:
            tally.expected[broker.name] += 1
        for problem in self.problems:
            tally.problem(broker.name, f"{self.report.label()}: {problem}")
        return self.report

    async def _open_connections(self, world: World) -> list[str]:
        """The session has logged out and closed: every proxied connection must close too."""
        with trio.move_on_after(30.0):
            while any(p.stats.open_connections for p in world.proxies):  # noqa: ASYNC110
                await trio.sleep(0.5)
        still = sum(p.stats.open_connections for p in world.proxies)
        return [f"{still} connection(s) still open after the session closed"] if still else []

    def _check_output(self) -> None:
        audit = self.audit.getvalue()
        everything = "\n".join([audit, *self.seen])
        hits = {s for s in self.secrets if s and s in everything}
        if hits:
            self.tally.secret_hits[self.broker.name] += len(hits)
            self.problems.append(f"{len(hits)} secret(s) found in the output")
        retried = _credential_retries(audit)
        if retried:
            self.tally.credential_retries[self.broker.name] += retried
            self.problems.append(f"{retried} login attempt(s) after an invalid-credentials "
                                 "answer")

    async def _session(self, world: World, bound: float) -> None:
        report, behaviour = self.report, self.behaviour
        with trio.move_on_after(bound * 3) as cap:
            async with open_session(world.config, audit=AuditLog.to_stream(self.audit),
                                    rng=random.Random(report.seed),
                                    token_store=MemoryTokenStore()) as session:
                await self._early(session)
                ended = await self._wait_end(session, bound)
                report.state = session.state
                report.reason = session.outcome().get("reason")
                wanted = (behaviour.state, behaviour.reason or report.reason)
                if ended and (report.state, report.reason) != wanted:
                    self.problems.append(
                        f"ended {report.state} ({report.reason}), expected {behaviour.state} "
                        f"({behaviour.reason or 'any reason'})")
                if session.state == AUTHENTICATED:
                    self.secrets += world.issued()
                    await self._use(session, "a request after login")
                    if report.strike is not None:
                        await self._strike(world, session, report.strike, bound)
                self.seen += [repr(session), json.dumps(session.outcome(), default=str)]
            if session.state == AUTHENTICATED:
                self.problems.append("still authenticated after the session was closed")
        if cap.cancelled_caught:
            self.problems.append(f"the session did not finish within {bound * 3:.0f} s")

    async def _early(self, session: Session) -> None:
        """The gate: a request before the login result is refused, and nothing is sent."""
        try:
            await self.broker.early(session)
        except NotAuthenticated as exc:
            self.seen.append(f"{exc!r} {exc}")
        else:
            self.problems.append("an application request before the login result was accepted")

    async def _use(self, session: Session, what: str) -> None:
        """An application request, as an application would make it: a request the connection
        took down with it (``ConnectionLost``) is made again once the session is back, since
        these requests only read. The plan breaks at most two connections."""
        for tries_left in (2, 1, 0):
            try:
                await self.broker.use(session)
            except ConnectionLost as exc:
                self.seen.append(f"{exc!r} {exc}")
                if tries_left and await self._wait_end(session, self.bound):
                    continue
                self.problems.append(f"{what} failed: {type(exc).__name__}: {exc}")
            except Exception as exc:
                self.problems.append(f"{what} failed: {type(exc).__name__}: {exc}")
                self.seen.append(f"{exc!r} {exc}")
            return

    async def _wait_end(self, session: Session, bound: float) -> bool:
        """Wait for the login to end one way or the other; False if it never did."""
        try:
            with trio.fail_after(bound):
                await session.wait_authenticated()
        except SessionError as exc:
            self.seen.append(f"{exc!r} {exc}")
        except trio.TooSlowError:
            self.problems.append(f"no end to the login within {bound:.0f} s "
                                 f"(state {session.state})")
            return False
        return True

    async def _strike(self, world: World, session: Session, kind: str, bound: float) -> None:
        """Break the live connection, then check the session comes back as the broker wants."""
        before = session.outcome()
        back = False
        steps: list[Transitioned] = []
        async with session.events() as events:
            if not world.strike_proxy.strike(kind):
                self.problems.append(f"the {kind} strike found no open connection")
                return
            with trio.move_on_after(bound):
                async for event in events:
                    if not isinstance(event, Transitioned):
                        continue
                    steps.append(event)
                    if event.dst == AUTHENTICATED and event.src != AUTHENTICATED:
                        back = True
                        break
                    if event.dst in TERMINAL_STATES:
                        break
        if not back:
            self.problems.append(f"not authenticated again after a {kind} "
                                 f"(state {session.state})")
            return
        self.problems += self.broker.after_recovery(before, session.outcome(), steps,
                                                    self.tally)
        await self._use(session, f"a request after the {kind}")


def _describe(exc: BaseException) -> str:
    """An exception in one line; a group names its innermost exceptions."""
    if isinstance(exc, BaseExceptionGroup):
        return "; ".join(_describe(e) for e in exc.exceptions)
    return f"{type(exc).__name__}: {exc}"


async def run_one(broker: Broker, seed: int, tally: Tally) -> RunReport:
    """One seeded run of one session. Everything it finds goes into ``tally``."""
    return await _Run(broker, seed, tally).run()


def _credential_retries(audit_jsonl: str) -> int:
    """Connection attempts after a transition whose reason said the credentials were wrong."""
    bad = {"invalid_credentials", "logon_failure"}
    seen_bad, retries = False, 0
    for line in audit_jsonl.splitlines():
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if event.get("event") != "transition":
            continue
        if seen_bad and event.get("dst") in ("connecting", "requesting_token"):
            retries += 1
        if event.get("reason") in bad:
            seen_bad = True
    return retries


async def run_broker(name: str, seeds: Iterable[int], tally: Tally,
                     progress: Callable[[RunReport], None] | None = None) -> None:
    broker = BROKERS[name]
    for seed in seeds:
        report = await run_one(broker, seed, tally)
        if progress is not None:
            progress(report)


def run(names: Iterable[str], seeds: Iterable[int], tally: Tally,
        progress: Callable[[RunReport], None] | None = None) -> None:
    """Run the property runs under virtual time (the proxies' delays and the sessions' timers
    cost nothing), one broker after another."""
    seeds = list(seeds)

    async def main() -> None:
        for name in names:
            await run_broker(name, seeds, tally, progress)

    trio.run(main, clock=trio.testing.MockClock(autojump_threshold=0.005))
