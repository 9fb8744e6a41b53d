"""The gateway: what a process's sessions share, owned by one block of code.

    async with brokergate.open_gateway() as gw:
        async with gw.session(quotes_config) as quotes, gw.session(orders_config) as orders:
            ...

A gateway holds, for as long as its block runs: the alarm clock every session's timers ring on
(a task in the gateway's own nursery), the token store, the rate limiters of REST hosts, and the
resources the brokers' descriptors declare (``SharedResource``: a user's logon history, a user's
socket slots), each shared by the sessions whose configuration has the same key. It also holds the
transports sessions connect with. ``open_session`` is a gateway of one session.

What sessions share goes through a ``Coordinator``. ``LocalCoordinator``, the default, keeps it
in this process; a coordinator that keeps it in a shared store lets processes on several hosts
share accounts. Nothing else in the engine knows where shared state lives.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import httpx
import trio

from brokergate.engine._alarms import TASK_NAME, AlarmClock
from brokergate.engine._audit import AuditLog
from brokergate.engine._coordinator import (
    AccountClaim,
    ClaimKind,
    Coordinator,
    Granted,
    Held,
    LocalCoordinator,
)
from brokergate.engine._driver import SessionDriver
from brokergate.engine._errors import ConfigurationError, CoordinatorUnavailable
from brokergate.engine._http import HttpCaller
from brokergate.engine._metrics import Metrics, SessionMeter
from brokergate.engine._session import Session
from brokergate.engine._tokens import TokenStore
from brokergate.engine._transport import TcpTransport, WebSocketTransport
from brokergate.machines import SessionSettings, StoredToken
from brokergate.machines._broker import Broker, ModelInputs
from brokergate.machines.brokers import BROKERS, broker_for

#: A wall clock: now, as an aware datetime.
WallClock = Callable[[], datetime]


def system_wall_clock() -> datetime:
    return datetime.now(UTC)


class GatewayClosed(ConfigurationError):
    """A session was asked of a gateway whose block has ended."""


class Gateway:
    """Opens sessions that share one alarm clock, token store, rate limiters and brokers'
    shared resources. Obtain one from ``open_gateway``."""

    __slots__ = ("_alarms", "_audit", "_closed", "_http", "_open", "_rng", "_settled",
                 "_wall", "_websocket", "coordinator", "metrics")

    def __init__(self, *, audit: AuditLog | None, coordinator: Coordinator,
                 rng: random.Random | None, wall_clock: WallClock | None,
                 websocket: WebSocketTransport | None,
                 http_transport: httpx.AsyncBaseTransport | None,
                 metrics: Metrics | None = None) -> None:
        self.coordinator = coordinator
        self.metrics = metrics
        self._audit = audit
        self._rng = rng
        self._wall = wall_clock or system_wall_clock
        self._websocket = websocket or TcpTransport()
        self._http = http_transport
        self._alarms = AlarmClock()
        self._open = 0  # sessions open now
        self._settled: trio.Event | None = None  # set when the last open session ends
        self._closed = False

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"{self._open} sessions open"
        return f"<Gateway {state}>"

    # What a session driver uses (brokergate.engine._driver.SessionHost).

    @property
    def alarms(self) -> AlarmClock:
        return self._alarms

    @property
    def token_store(self) -> TokenStore:
        return self.coordinator.token_store

    @property
    def websocket(self) -> WebSocketTransport:
        return self._websocket

    def http_caller(self, settings: SessionSettings,
                    meter: SessionMeter | None = None) -> HttpCaller:
        return HttpCaller(settings.ca_file, limiter_for=self.coordinator.rate_limiter,
                          max_body=settings.max_frame_size, transport=self._http, meter=meter)

    # Sessions.

    @property
    def open_sessions(self) -> int:
        """How many sessions of this gateway are open now."""
        return self._open

    @asynccontextmanager
    async def session(
        self,
        config: SessionSettings,
        *,
        audit: AuditLog | None = None,
        rng: random.Random | None = None,
        keep_session: bool = False,
    ) -> AsyncIterator[Session]:
        """Start logging in with ``config``; yield the ``Session``; log out cleanly on exit.

        The login proceeds in the background: ``await session.wait_authenticated()`` to wait
        for it. Audit events go to ``audit`` (the gateway's by default). With ``keep_session``
        the block's end leaves without logging out, so that the next session (in this or
        another process sharing the token store) reuses the token: brokers whose session
        outlives the connection only (the ``token_store`` capability); others raise
        ``ConfigurationError``.
        """
        if self._closed:
            raise GatewayClosed("this gateway's block has ended: open sessions inside it")
        broker = broker_for(config)
        if broker is None:
            known = ", ".join(b.config_type.__name__ for b in BROKERS)
            raise ConfigurationError(f"{type(config).__name__} is not a broker configuration "
                                     f"(expected one of: {known})")
        if keep_session and not broker.has("token_store"):
            keeping = ", ".join(b.title for b in BROKERS if b.has("token_store"))
            raise ConfigurationError(
                f"{broker.title} sessions end with their connection: keep_session applies to "
                f"brokers with day-long tokens ({keeping})")
        session_id = config.session_id or f"{broker.name}-{uuid.uuid4().hex[:12]}"
        claim, first = await self._claim(broker, config, session_id)
        # A day token the fleet shares is the fleet's: one session leaving does not log it out
        # under the others (it ends with its day, as a kept session's does).
        shared_token = claim is not None and claim.kind == "flight"
        # A session that waits for another's login builds its model without a token: the
        # token it will use is read when the claim is granted (``LeaseGranted``).
        model = await self._model(broker, config, rng, load_token=not isinstance(first, Held))
        audit = audit or self._audit or AuditLog.stderr()
        logger = audit.session(broker=broker.name, session_id=session_id, account=model.account,
                               secrets=model.secrets())
        metrics = self.metrics
        meter = metrics.session(broker.name, model.account) if metrics is not None else None
        driver = SessionDriver(model, config, session_id, logger, host=self,
                               capabilities=broker.capabilities, meter=meter)
        self._open += 1
        try:
            async with trio.open_nursery() as nursery:
                if claim is None or first is None:
                    driver.start(nursery)
                else:
                    driver.start_claimed(nursery, claim, first, self._reloader(broker, config))
                try:
                    yield Session(driver)
                finally:
                    # Log out even while being cancelled, but never for longer than the logout
                    # allows.
                    with trio.CancelScope(shield=True), trio.move_on_after(
                        config.logout_timeout + 1.0
                    ):
                        await driver.stop(logout=not (keep_session or shared_token))
                    driver.end()
                    nursery.cancel_scope.cancel()
        except BaseExceptionGroup as group:
            # The driver's tasks keep their failures inside the session, so whatever is here
            # came from the caller's block: hand it back unwrapped.
            if len(group.exceptions) == 1:
                raise group.exceptions[0] from None
            raise
        finally:
            await driver.aclose()
            if metrics is not None and meter is not None:
                metrics.ended(meter)
            self._open -= 1
            if not self._open and self._settled is not None:
                self._settled.set()

    async def _claim(self, broker: Broker[Any], config: SessionSettings,
                     session_id: str) -> tuple[AccountClaim | None, Granted | Held | None]:
        """The session's claim on its account, where the coordinator has claims (a fleet), and
        what taking it gave. With the coordinator out of reach, the session starts as a standby
        that waits for it: nothing is sent to the broker until the claim is granted."""
        if broker.displaces:
            kind: ClaimKind = "lease"
        elif broker.has("token_store"):
            kind = "flight"
        else:
            return None, None
        if config.problems():
            return None, None  # the machine fails it as invalid, claiming nothing
        account = broker.fleet_account(config) if broker.fleet_account is not None else None
        if not account:
            return None, None
        claim = self.coordinator.claim(broker.name, account, kind, session_id)
        if claim is None:
            return None, None
        try:
            return claim, await claim.take()
        except CoordinatorUnavailable as exc:
            # Nothing may be granted unchecked: the session waits as a standby, and its claim's
            # task asks again with backoff until the coordinator answers.
            return claim, Held(holder=f"not known yet ({exc})", fence=0)

    def _reloader(self, broker: Broker[Any],
                  config: SessionSettings) -> Callable[[], Awaitable[StoredToken | None]] | None:
        user = _token_user(broker, config)
        if not user:
            return None
        store = self.coordinator.token_store

        async def reload() -> StoredToken | None:
            return await store.load(broker.name, user)

        return reload

    async def _model(self, broker: Broker[Any], config: SessionSettings,
                     rng: random.Random | None, *, load_token: bool = True) -> Any:
        resources = {name: self.coordinator.resource(broker.name, name, key, create)
                     for name, key, create in broker.shared(config)}
        stored = None
        user = _token_user(broker, config)
        if user and load_token:
            stored = await self.coordinator.token_store.load(broker.name, user)
        inputs = ModelInputs(rng=rng if rng is not None else self._rng, clock=trio.current_time,
                             wall=self._wall, resources=resources, stored=stored)
        return broker.create_model(config, inputs)

    async def _run_alarms(self, scope: trio.CancelScope) -> None:
        with scope:
            await self._alarms.run()

    async def _sessions_ended(self) -> None:
        while self._open:
            self._settled = trio.Event()
            await self._settled.wait()
        self._settled = None


def _token_user(broker: Broker[Any], config: SessionSettings) -> str | None:
    """Whose day token a session of ``broker`` keeps, for brokers that keep one."""
    return broker.token_user(config) if broker.token_user is not None else None


@asynccontextmanager
async def open_gateway(
    *,
    audit: AuditLog | None = None,
    token_store: TokenStore | None = None,
    coordinator: Coordinator | str | None = None,
    rng: random.Random | None = None,
    wall_clock: WallClock | None = None,
    websocket: WebSocketTransport | None = None,
    http_transport: httpx.AsyncBaseTransport | None = None,
    metrics: Metrics | None = None,
) -> AsyncIterator[Gateway]:
    """Open a gateway; its sessions share what is shared, for as long as the block runs.

    ``audit`` is where its sessions' audit events go (JSON lines on stderr by default).
    ``token_store`` keeps day-long tokens (the ``token_store`` capability) between sessions: in
    memory by default; a ``FileTokenStore`` lets a restarted process reuse today's token.
    ``coordinator`` replaces where shared state lives altogether (it brings its own token store:
    give one or the other): a ``Coordinator``, or the URL of the fleet's Redis
    (``rediss://...``; ``redis://`` to loopback only), which the gateway then connects to for its
    block with ``brokergate.fleet.open_redis_coordinator``'s defaults (docs/fleet.md). ``rng``
    draws the backoff jitter (seed it for a reproducible run).
    ``wall_clock`` (aware UTC datetimes; the system clock by default) is what TOTP windows and a
    token's day are read from: tests and the demo move it, nothing else should. ``websocket`` opens
    the byte stream under each WebSocket (``TcpTransport`` by default) and ``http_transport``
    carries REST calls (an ``httpx`` transport; each session's own client with the session's
    ``ca_file`` by default); a transport you give is yours to close. ``metrics`` (a
    ``Metrics``, which may serve several gateways) counts what the sessions do for Prometheus
    (``brokergate[ops]``; none by default).

    The block's end waits for sessions opened in other tasks to end; the alarm clock runs until
    then, so their timers (a logout's bound) still ring.
    """
    if coordinator is not None and token_store is not None:
        raise ConfigurationError("give a token_store or a coordinator (which has its own token "
                                 "store), not both")
    if isinstance(coordinator, str):
        # Imported here: the fleet needs the redis extra, one process does not.
        from brokergate.engine.fleet import open_redis_coordinator  # noqa: PLC0415

        async with open_redis_coordinator(coordinator) as fleet, open_gateway(
            audit=audit, coordinator=fleet, rng=rng, wall_clock=wall_clock,
            websocket=websocket, http_transport=http_transport, metrics=metrics,
        ) as gateway:
            yield gateway
        return
    if coordinator is None:
        coordinator = LocalCoordinator(token_store)
    gateway = Gateway(audit=audit, coordinator=coordinator,
                      rng=rng, wall_clock=wall_clock, websocket=websocket,
                      http_transport=http_transport, metrics=metrics)
    # Its own scope, shielded: a host cancelling the gateway's block must not stop the clock
    # while its sessions still log out (they are bounded by their own timers). It is cancelled
    # once every session has ended.
    alarms = trio.CancelScope(shield=True)
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(gateway._run_alarms, alarms, name=TASK_NAME)
            try:
                yield gateway
            finally:
                gateway._closed = True
                try:
                    await gateway._sessions_ended()
                finally:
                    alarms.cancel()
    except BaseExceptionGroup as group:
        # Only the alarm clock runs in the gateway's nursery: anything else here came from the
        # caller's block, and goes back to it unwrapped.
        if len(group.exceptions) == 1:
            raise group.exceptions[0] from None
        raise


@asynccontextmanager
async def open_session(
    config: SessionSettings,
    *,
    audit: AuditLog | None = None,
    rng: random.Random | None = None,
    token_store: TokenStore | None = None,
    keep_session: bool = False,
    wall_clock: WallClock | None = None,
    websocket: WebSocketTransport | None = None,
    http_transport: httpx.AsyncBaseTransport | None = None,
) -> AsyncIterator[Session]:
    """A gateway of one session: ``open_gateway(...)`` and its ``session(config)`` in one.

    Start logging in with ``config``; yield the ``Session``; log out cleanly on exit. The
    arguments are ``open_gateway``'s and ``Gateway.session``'s. Sessions opened this way share
    nothing with each other but a ``token_store`` given to both: to share what brokers' sessions
    share (a user's logon history or socket slots, a REST host's rate limit), open them from one
    gateway.
    """
    gateway_of_one = open_gateway(audit=audit, token_store=token_store, wall_clock=wall_clock,
                                  websocket=websocket, http_transport=http_transport)
    async with gateway_of_one as gateway, gateway.session(
        config, rng=rng, keep_session=keep_session
    ) as session:
        yield session
