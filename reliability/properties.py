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
  session's repr and outcome, or any error message;
- data: after each login (the first, and the one after the strike) the simulator streams
  numbered frames on the session's connection, and a lossless subscriber, slow for some seeds,
  receives every one that reached the session before its connection ended, in order, none twice
  (``check_delivery`` says precisely what is counted).

A run that breaks a property records a line naming the broker, the seed and the plan, so that
``python -m reliability --broker qst --seed N`` replays it.
"""

from __future__ import annotations

import io
import json
import os
import random
from collections import Counter
from collections.abc import AsyncIterator, Callable, Collection, Iterable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import trio
import trio.testing

from brokergate import (
    AuditLog,
    Backoff,
    BrokerMessage,
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
from brokergate.engine._events import DEFAULT_BUFFER, EventStream
from brokergate.machines import AUTHENTICATED, TERMINAL_STATES, SessionSettings, Transitioned
from brokergate.machines.cqg import cqg_session_pb2 as cqg_pb
from brokergate.machines.qst import qst_pb2 as qst_pb
from brokergate.simulators.cqg import CqgAccount, run_cqg_simulator
from brokergate.simulators.faults import ONE_SHOT, FaultPlan, FaultProxy, random_plan
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
    #: The account's user name at the simulator (where ``sim.send`` streams the data).
    user: str = ""


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

    def feed(self, stream: int, count: int) -> list[Any]:
        """``count`` numbered frames of stream ``stream``, as ``sim.send`` takes them: data the
        session layer only hands on (market data), each saying (stream, number)."""
        raise NotImplementedError

    def numbered(self, message: Any) -> tuple[int, int] | None:
        """(stream, number) of a broker message ``feed`` made; None for anything else."""
        raise NotImplementedError

    def numbered_frame(self, frame: bytes | str) -> tuple[int, int] | None:
        """(stream, number) of a frame ``feed`` made, as the simulator holds it."""
        return self.numbered(frame)

    def discarded(self, sim: Any) -> list[bytes | str]:
        """Frames the simulator queued and then threw away unwritten: it cut off a client that
        read too slowly (QST's 4102, CQG's data lag). Firstock's simulator has no such rule."""
        return list(getattr(sim.stats, "discarded", ()))

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
            yield World(config, [proxy], proxy, sim, user=user)

    async def early(self, session: Session) -> None:
        await session.request(qst_pb.TranslateInstrumentSymbolRequest(
            symbol_source=1, instrument_symbols=["ESZ6"]))

    async def use(self, session: Session) -> None:
        answer = await session.request(qst_pb.TranslateInstrumentSymbolRequest(
            symbol_source=1, instrument_symbols=["ESZ6"]))
        if not answer.records:
            raise AssertionError("the translation came back empty")

    def feed(self, stream: int, count: int) -> list[Any]:
        # An unsolicited Response (no request_id): the session delivers its payload as data.
        frames = []
        for n in range(count):
            data = qst_pb.TranslateInstrumentSymbolResponse(
                records=[qst_pb.InstrumentSymbol(symbol=f"{_FEED} {stream} {n}")])
            frames.append(qst_pb.Response(translate_instrument_symbol=data).SerializeToString())
        return frames

    def numbered(self, message: Any) -> tuple[int, int] | None:
        records = getattr(message, "records", None)
        return _numbers(records[0].symbol) if records else None

    def numbered_frame(self, frame: bytes | str) -> tuple[int, int] | None:
        if not isinstance(frame, bytes):
            return None
        try:
            response = qst_pb.Response.FromString(frame)
        except Exception:  # not one of ours, whatever it is
            return None
        return self.numbered(response.translate_instrument_symbol)


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

            yield World(config, [proxy], proxy, sim, issued, user)

    async def early(self, session: Session) -> None:
        await session.send(_cqg_app_message())

    async def use(self, session: Session) -> None:
        await session.send(_cqg_app_message())

    def feed(self, stream: int, count: int) -> list[Any]:
        frames = []
        for n in range(count):
            payload = f"{_FEED} {stream} {n}".encode()
            # A length-delimited field the session schema does not declare (CQG keeps 1-30 for
            # the application's traffic), so the frame takes the application-only path.
            frames.append(bytes([_CQG_FEED_FIELD << 3 | 2, len(payload)]) + payload)
        return frames

    def numbered(self, message: Any) -> tuple[int, int] | None:
        return self.numbered_frame(getattr(message, "raw", b""))

    def numbered_frame(self, frame: bytes | str) -> tuple[int, int] | None:
        if not isinstance(frame, bytes) or frame[:1] != bytes([_CQG_FEED_FIELD << 3 | 2]):
            return None
        if len(frame) != frame[1] + 2:
            return None
        return _numbers(frame[2:].decode("ascii", "replace"))

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


#: The application field the CQG stream's frames carry.
_CQG_FEED_FIELD = 10


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

                yield World(config, [rest, sock], sock, sim, issued, user)

    async def early(self, session: Session) -> None:
        await session.call("limit")

    async def use(self, session: Session) -> None:
        await session.call("limit")

    def feed(self, stream: int, count: int) -> list[Any]:
        # Touchline-like socket messages with none of the verdict markers in them.
        return [json.dumps({"t": "tf", "e": "NSE", "tk": _FEED, "lp": f"{stream} {n}"})
                for n in range(count)]

    def numbered(self, message: Any) -> tuple[int, int] | None:
        if not isinstance(message, str):
            return None
        try:
            doc = json.loads(message)
        except ValueError:
            return None
        if not isinstance(doc, dict) or doc.get("tk") != _FEED:
            return None
        return _numbers(f"{_FEED} {doc.get('lp')}")

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


#: What marks a frame of the data stream: "feed <stream> <number>".
_FEED = "feed"


def _numbers(text: str) -> tuple[int, int] | None:
    """(stream, number) from "feed <stream> <number>"; None if it is not that."""
    parts = text.split(" ")
    if len(parts) != 3 or parts[0] != _FEED or not (parts[1].isdigit() and parts[2].isdigit()):
        return None
    return int(parts[1]), int(parts[2])


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


# --- the data path ------------------------------------------------------------------------------

#: Frames in each stream, drawn per run.
STREAM_FRAMES = (10, 25, 60)
#: A slow consumer's time per event, and its buffer: small, so that it fills and the session
#: stops reading (TCP then holds the rest in the proxy and the simulator).
SLOW_DELAYS = (0.005, 0.02, 0.1)
SLOW_BUFFERS = (1, 4, 16)
#: A slow consumer sleeps off the time it owes once it owes this much (or has nothing left to
#: read): every sleep under the mock clock costs its autojump threshold in real time.
SLOW_QUANTUM = 0.5


@dataclass(frozen=True, slots=True)
class DataPlan:
    """How a run streams data after each login, and how its subscriber reads it."""

    frames: int
    #: Seconds the subscriber takes over each event (0: a consumer that keeps up).
    delay: float = 0.0
    #: The subscriber's buffer, in events.
    buffer: int = DEFAULT_BUFFER

    @classmethod
    def draw(cls, broker: str, seed: int) -> DataPlan:
        # A generator of its own, so that adding the data path changed no seed's behaviour or
        # fault plan: old failures still replay as they were.
        rng = random.Random(f"{broker}:{seed}:data")
        frames = rng.choice(STREAM_FRAMES)
        if rng.random() < 0.5:
            return cls(frames, rng.choice(SLOW_DELAYS), rng.choice(SLOW_BUFFERS))
        return cls(frames)

    def describe(self) -> str:
        if not self.delay:
            return f"streams of {self.frames} frames"
        return (f"streams of {self.frames} frames to a slow consumer "
                f"({self.delay * 1000:g} ms per event, buffer {self.buffer})")


@dataclass
class StreamRecord:
    """One stream: the frames the simulator queued on the session's connection after a login."""

    number: int
    frames: int
    #: The proxy's number for the connection that carried it.
    link: int
    #: Where the audit trail stood when it started (the transitions after say how it ended).
    audit_at: int
    #: The one-shot fault the proxy had struck on that connection by the time the session left
    #: it, if any (a strike later on, at a connection the session had already left, is not it).
    cut: str | None = None
    #: Why a missing tail is no loss (the connection was cut or given up); None: it is one.
    excused: str | None = None


@dataclass
class Delivery:
    """What ``check_delivery`` found."""

    lost: int = 0
    duplicated: int = 0
    out_of_order: int = 0
    problems: list[str] = field(default_factory=list)


def check_delivery(delivered: Sequence[tuple[int, int]], sent: Mapping[int, int],
                   excused: Collection[int] = (),
                   owed: Mapping[int, int] | None = None) -> Delivery:
    """Hold what a lossless subscriber received, ``delivered`` ((stream, number) in the order
    received), to what was sent, ``sent`` (stream -> frames queued, numbered from 0).

    TCP delivers a prefix of what was written, and a fault can only cut a connection short, never
    take bytes out of its middle. So on every stream the subscriber must receive 0, 1, 2... with
    no number twice, none out of order (nor a stream's frame after a later stream's), and no gap
    below the highest number received. And it must receive the whole stream unless the stream is
    ``excused`` (its connection ended before it was all read: the tail is what never reached the
    session). ``owed`` lowers what a stream that is not excused must deliver whole to its first
    ``owed[stream]`` frames: the rest were thrown away unwritten by a simulator that cut off a
    slow reader. A frame that was never sent counts as out of order.
    """
    found = Delivery()
    notes: list[str] = []
    seen: set[tuple[int, int]] = set()
    highest: dict[int, int] = {}
    latest = -1
    for stream, number in delivered:
        if (stream, number) in seen:
            found.duplicated += 1
            notes.append(f"frame {number} of stream {stream} received twice")
            continue
        seen.add((stream, number))
        if not 0 <= number < sent.get(stream, 0):
            found.out_of_order += 1
            notes.append(f"frame {number} of stream {stream} received, never sent")
        elif stream < latest:
            found.out_of_order += 1
            notes.append(f"frame {number} of stream {stream} after stream {latest}'s")
        elif number < highest.get(stream, -1):
            found.out_of_order += 1
            notes.append(f"frame {number} of stream {stream} after frame {highest[stream]}")
        latest = max(latest, stream)
        highest[stream] = max(highest.get(stream, -1), number)
    for stream, count in sorted(sent.items()):
        top = highest.get(stream, -1) + 1
        due = top if stream in excused else max(top, (owed or {}).get(stream, count))
        missing = [n for n in range(due) if (stream, n) not in seen]
        if missing:
            found.lost += len(missing)
            where = ("below the highest received" if stream in excused
                     else "on a connection no fault ended")
            notes.append(f"stream {stream}: {len(missing)} of {count} frames never received "
                         f"{where} (the first: {missing[0]})")
    if notes:
        shown = "; ".join(notes[:5]) + (f"; and {len(notes) - 5} more" if len(notes) > 5 else "")
        found.problems.append(f"data path: {found.lost} frame(s) lost, {found.duplicated} "
                              f"duplicated, {found.out_of_order} out of order: {shown}")
    return found


class _DataPath:
    """One run's streams and the lossless subscriber that reads them."""

    def __init__(self, broker: Broker, plan: DataPlan) -> None:
        self.broker = broker
        self.plan = plan
        self.streams: list[StreamRecord] = []
        #: (stream, number) of every numbered frame, in the order the subscriber received them.
        self.delivered: list[tuple[int, int]] = []
        self.received: Counter[int] = Counter()
        #: The slow subscriber found its buffer over its bound: the session had stopped reading.
        self.paused = False
        self._arrived = trio.Event()

    async def consume(self, events: EventStream) -> None:
        """Read everything until the session ends, as an application would: slowly if the plan
        says so."""
        owed = 0.0
        async with events:
            async for event in events:
                if type(event) is BrokerMessage:
                    numbers = self.broker.numbered(event.message)
                    if numbers is not None:
                        self.delivered.append(numbers)
                        self.received[numbers[0]] += 1
                        self._arrived.set()
                        self._arrived = trio.Event()
                if not self.plan.delay:
                    continue
                backlog = events.backlog[0]
                # Still at its bound after taking one: it was over it, which pauses the reading.
                self.paused |= backlog >= events.buffer
                owed += self.plan.delay
                if owed >= SLOW_QUANTUM or not backlog:
                    await trio.sleep(owed)
                    owed = 0.0

    async def stream(self, world: World, session: Session, audit: io.StringIO,
                     bound: float) -> None:
        """Stream the next numbered frames on the session's connection, and wait until the
        subscriber has them all or that connection is gone (then the run goes on)."""
        if session.state != AUTHENTICATED:
            return
        number, epoch = len(self.streams), session.epoch
        # The session's connection is the proxy's newest: nothing else connects through it.
        link = world.strike_proxy.stats.connections
        record = StreamRecord(number, self.plan.frames, link, audit.tell())
        self.streams.append(record)
        if not world.sim.send(world.user, self.broker.feed(number, self.plan.frames)):
            # No connection took the whole stream: the simulator had let the session's go
            # already, or cut it off for reading too slowly halfway through taking it. What
            # it did take must still arrive in order, with no gap.
            record.excused = "no connection took the whole stream"
            return
        with trio.move_on_after(bound):
            while (self.received[number] < self.plan.frames and session.epoch == epoch
                   and session.state == AUTHENTICATED):
                # The session says nothing of its connection ending to the run but through
                # its own events; a look every (virtual) second is as good, and each look
                # costs the mock clock's autojump threshold in real time.
                with trio.move_on_after(1.0):
                    await self._arrived.wait()
        record.cut = _cut_links(world.strike_proxy).get(link)

    def check(self, world: World, audit: str, tally: Tally) -> list[str]:
        """Excuse the tails of streams whose connection ended early, then check the rest."""
        for record in self.streams:
            if self.received[record.number] >= record.frames:
                continue
            # How the session left the stream's connection: its first transition out of
            # authenticated after the stream began (none: it never left it).
            ended = _left_authenticated(audit[record.audit_at:])
            if ended is None:
                continue
            if _gave_up(ended):
                # Its own liveness check ended a connection whose answers were stuck behind a
                # stalled or throttled stream: what had not reached it then never will.
                record.excused = (f"the session gave up on connection {record.link} "
                                  f"({ended.get('detail')})")
            elif record.cut is not None:
                record.excused = f"the proxy cut connection {record.link} ({record.cut})"
        # Frames the simulator threw away unwritten (it cut off a slow reader) were never sent:
        # a stream owes only those before the first of them. (The same stream may also have
        # gone to an older connection the session had left, and been thrown away there: then
        # this asks less of the stream than it could, never more.)
        thrown: dict[int, int] = {}
        for frame in self.broker.discarded(world.sim):
            numbers = self.broker.numbered_frame(frame)
            if numbers is not None:
                thrown[numbers[0]] = min(numbers[1], thrown.get(numbers[0], numbers[1]))
        name = self.broker.name
        tally.streams[name] += len(self.streams)
        tally.frames_sent[name] += sum(r.frames for r in self.streams)
        tally.frames_received[name] += len(self.delivered)
        tally.streams_cut[name] += sum(
            1 for r in self.streams
            if self.received[r.number] < r.frames and (r.excused or r.number in thrown))
        if self.plan.delay and self.streams:
            tally.slow_consumers[name] += 1
            tally.reading_paused[name] += self.paused
        found = check_delivery(self.delivered, {r.number: r.frames for r in self.streams},
                               {r.number for r in self.streams if r.excused}, thrown)
        tally.frames_lost[name] += found.lost
        tally.frames_duplicated[name] += found.duplicated
        tally.frames_out_of_order[name] += found.out_of_order
        return found.problems


def _cut_links(proxy: FaultProxy) -> dict[int, str]:
    """The proxy's connections that a one-shot fault ended (planned or struck), and how."""
    cut: dict[int, str] = {}
    for line in proxy.stats.log:
        head, _, what = line.partition(": ")
        if head.startswith("connection ") and what.split(" ", 1)[0] in ONE_SHOT:
            cut.setdefault(int(head.removeprefix("connection ")), what)
    return cut


#: How the session words ending a connection itself because it heard nothing in time: its
#: WebSocket ping went unanswered, or a write of its own could not get out
#: (engine/_driver_connection.py).
#: Should that wording change, streams cut that way count as lost: a false alarm, not a miss.
_GAVE_UP = ("no pong within", "sending stalled")


def _gave_up(transition: dict[str, Any]) -> bool:
    """Whether the session ended the connection itself (a liveness timer or an unanswered
    ping), rather than the far end closing it."""
    if transition.get("trigger") == "timeout":
        return True
    detail = transition.get("detail") or ""
    return transition.get("trigger") == "closed" and any(words in detail for words in _GAVE_UP)


def _left_authenticated(audit_jsonl: str) -> dict[str, Any] | None:
    """The first transition out of authenticated in an audit trail, if any."""
    for line in audit_jsonl.splitlines():
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if event.get("event") == "transition" and event.get("src") == AUTHENTICATED:
            return event if isinstance(event, dict) else None
    return None


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
    #: The data plan (streams after each login, the consumer), for a session that logs in.
    data: str = ""

    def label(self) -> str:
        strike = f"; struck {self.strike} after login" if self.strike else ""
        data = f"; {self.data}" if self.data else ""
        return f"seed {self.seed} ({self.behaviour}; {self.plan}{strike}{data})"


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
        self.data = _DataPath(broker, DataPlan.draw(broker.name, seed))
        if logs_in:
            self.report.data = self.data.plan.describe()
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
                self.problems += self.data.check(world, self.audit.getvalue(), tally)
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
            # The data subscriber's task outlives the session: once it closes, the subscriber
            # still reads what was published before, then its stream ends.
            async with trio.open_nursery() as subscriber, open_session(
                    world.config, audit=AuditLog.to_stream(self.audit),
                    rng=random.Random(report.seed), token_store=MemoryTokenStore()) as session:
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
                    plan = self.data.plan
                    subscriber.start_soon(self.data.consume, session.events(buffer=plan.buffer))
                    await self._stream(world, session)
                    await self._use(session, "a request after login")
                    if report.strike is not None:
                        await self._strike(world, session, report.strike, bound)
                self.seen += [repr(session), json.dumps(session.outcome(), default=str)]
            if session.state == AUTHENTICATED:
                self.problems.append("still authenticated after the session was closed")
        if cap.cancelled_caught:
            self.problems.append(f"the session did not finish within {bound * 3:.0f} s")

    async def _stream(self, world: World, session: Session) -> None:
        """Stream data on the session's connection; if a fault ends that connection meanwhile,
        wait for the session to come back, as an application would before its next request."""
        await self.data.stream(world, session, self.audit, self.bound)
        if session.state != AUTHENTICATED:
            await self._wait_end(session, self.bound)

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
        await self._stream(world, session)
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
