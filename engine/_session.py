"""``open_session``: the library entry point."""

from __future__ import annotations

import random
import uuid
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any
from urllib.parse import urlsplit

import trio
from trio.lowlevel import RunVar

from brokergate.engine._audit import AuditLog
from brokergate.engine._driver import SessionDriver
from brokergate.engine._errors import ConfigurationError
from brokergate.engine._events import DEFAULT_BUFFER, DEFAULT_MAX_BYTES, EventStream, Overflow
from brokergate.engine._tokens import MemoryTokenStore, TokenStore
from brokergate.machines import SessionSettings
from brokergate.machines.cqg import CqgConfig, CqgSession, LogonHistory
from brokergate.machines.firstock import FirstockConfig
from brokergate.machines.firstock.session import FirstockSession
from brokergate.machines.firstock.slots import SocketSlots
from brokergate.machines.qst import QstConfig, QstSession

#: A wall clock: now, as an aware datetime.
WallClock = Callable[[], datetime]

#: The token store of sessions that name none: in memory, one per trio run.
_DEFAULT_STORE: RunVar[TokenStore] = RunVar("brokergate_token_store")


def default_token_store() -> TokenStore:
    try:
        return _DEFAULT_STORE.get()
    except LookupError:
        store = MemoryTokenStore()
        _DEFAULT_STORE.set(store)
        return store

#: Each CQG user's logon history, shared by all of that user's sessions in this trio run.
_LOGON_HISTORIES: RunVar[dict[tuple[str, str], LogonHistory]] = RunVar("brokergate_logons")


def logon_history(config: CqgConfig) -> LogonHistory:
    """The logon history of ``config``'s user at ``config``'s host (created on first use)."""
    try:
        histories = _LOGON_HISTORIES.get()
    except LookupError:
        histories = {}
        _LOGON_HISTORIES.set(histories)
    key = ((urlsplit(config.url).hostname or "").lower(), config.account)
    return histories.setdefault(key, LogonHistory())


async def _cqg_model(config: CqgConfig, *, rng: random.Random | None,
                     store: TokenStore, wall: WallClock | None) -> CqgSession:
    return CqgSession(config, rng=rng, clock=trio.current_time, history=logon_history(config))


async def _qst_model(config: QstConfig, *, rng: random.Random | None,
                     store: TokenStore, wall: WallClock | None) -> QstSession:
    return QstSession(config, rng=rng)


_SOCKET_SLOTS: RunVar[dict[tuple[str, str], SocketSlots]] = RunVar("brokergate_socket_slots")


def socket_slots(config: FirstockConfig) -> SocketSlots:
    """The socket slots of ``config``'s user, shared by the user's sessions in this trio run."""
    try:
        slots = _SOCKET_SLOTS.get()
    except LookupError:
        slots = {}
        _SOCKET_SLOTS.set(slots)
    host = (urlsplit(config.socket_url or config.base_url).hostname or "").lower()
    return slots.setdefault((host, config.user_id), SocketSlots())


async def _firstock_model(config: FirstockConfig, *, rng: random.Random | None,
                          store: TokenStore, wall: WallClock | None) -> FirstockSession:
    kept = await store.load(FirstockSession.broker, config.user_id) if config.user_id else None
    extra = {"wall": wall} if wall is not None else {}
    return FirstockSession(config, rng=rng, clock=trio.current_time,
                           stored=(kept.token, kept.created) if kept else None,
                           slots=socket_slots(config), **extra)


#: How to build a session's machine model from its configuration, per broker.
_MODELS: dict[type[Any], Callable[..., Any]] = {
    QstConfig: _qst_model,
    CqgConfig: _cqg_model,
    FirstockConfig: _firstock_model,
}


class Session:
    """An open broker session. Obtain one from ``open_session``."""

    __slots__ = ("_driver",)

    def __init__(self, driver: SessionDriver) -> None:
        self._driver = driver

    def __repr__(self) -> str:
        d = self._driver
        return (f"<Session {d.model.broker} {d.session_id} account={d.model.account!r} "
                f"state={d.model.state}>")

    @property
    def broker(self) -> str:
        return self._driver.model.broker

    @property
    def session_id(self) -> str:
        return self._driver.session_id

    @property
    def account(self) -> str:
        return self._driver.model.account

    @property
    def state(self) -> str:
        return self._driver.model.state

    @property
    def epoch(self) -> int:
        """Which connection the session is on (1 for the first; grows with each reconnect)."""
        return self._driver.model.epoch

    def outcome(self) -> dict[str, Any]:
        """Where the session stands: state, reason, fault, detail, attempts, what was granted."""
        return self._driver.outcome()

    async def wait_authenticated(self) -> None:
        """Return once authenticated. Raise ``LoginFailed``, ``LockedOut``,
        ``ProvisioningRequired``, ``GaveUp`` (all ``SessionError``) if the session ends instead."""
        await self._driver.wait_authenticated()

    async def send(self, message: Any) -> None:
        """Send one application message to the broker as it is (CQG: a ``ClientMsg``, as bytes or
        as any protobuf message whose wire form is one). Answers arrive as ``BrokerMessage``
        events.

        Raises ``NotAuthenticated`` at once, having sent nothing, unless the session is
        authenticated (while CQG restores a session, too); ``InvalidMessage`` for a message that
        is not one, or that only the session may send (logon, restore, logoff);
        ``ConnectionLost`` if the connection closes while sending.
        """
        await self._driver.send(message)

    async def request(self, message: Any) -> Any:
        """Send an application request and return the broker's answer to it.

        Raises ``NotAuthenticated`` at once, having sent nothing, unless the session is
        authenticated; ``RequestFailed`` if the broker answers with an error; ``ConnectionLost``
        if the connection drops first.
        """
        return await self._driver.request(message)

    async def call(self, endpoint: str, body: Mapping[str, Any] | None = None, *,
                   retry: bool = True) -> Any:
        """Call one of the broker's REST endpoints with the session's token (Firstock) and
        return the answer's ``data``.

        The session adds ``userId`` and ``jKey`` to ``body``; the call shares the process's
        rate limit with every other session's. If Firstock refuses the token (``INVALID_JKEY``,
        ``SESSION_EXPIRED``, HTTP 401/403) the session logs in again, once, and with ``retry``
        the call is made once more with the new token (a refused token means Firstock acted on
        nothing). A second refusal fails the session (``session_invalid``).

        Raises ``NotAuthenticated`` at once, having sent nothing, unless the session is
        authenticated; ``InvalidMessage`` for a call the session will not make (login, logout,
        a body with its own jKey); ``RequestFailed`` with Firstock's error name and HTTP status
        for an error answer (never retried: the broker may have acted on it); ``ConnectionLost``
        if no answer came (timed out or refused); ``LoginFailed`` if the fresh login failed.
        """
        return await self._driver.call(endpoint, body, retry=retry)

    def events(self, *, buffer: int = DEFAULT_BUFFER, max_bytes: int = DEFAULT_MAX_BYTES,
               overflow: Overflow = "backpressure") -> EventStream:
        """Subscribe to this session's events: transitions, notices and broker messages, in the
        order they happened, until the session ends.

        The subscriber's buffer holds up to ``buffer`` events and ``max_bytes`` bytes of broker
        messages. With ``overflow="backpressure"`` (the default) nothing is ever dropped: while
        the buffer is full the session stops reading from the broker, and says so in a
        ``slow_consumer`` notice after ``slow_consumer_after`` seconds (``caught_up`` when it
        reads again). ``overflow="drop_oldest"`` is for a subscriber that only wants the latest
        data: it never holds back the reading, and its oldest broker messages make room for new
        ones, each run of drops told in a ``messages_dropped`` notice. Transitions and notices
        are never dropped. Raises ``ValueError`` for a bound below 1 or an unknown policy.
        """
        return self._driver.subscribe(buffer, max_bytes, overflow)


def _session_id(config: SessionSettings, broker: str) -> str:
    return config.session_id or f"{broker}-{uuid.uuid4().hex[:12]}"


@asynccontextmanager
async def open_session(
    config: SessionSettings,
    *,
    audit: AuditLog | None = None,
    rng: random.Random | None = None,
    token_store: TokenStore | None = None,
    keep_session: bool = False,
    wall_clock: WallClock | None = None,
) -> AsyncIterator[Session]:
    """Start logging in with ``config``; yield the ``Session``; log out cleanly on exit.

    The login proceeds in the background: ``await session.wait_authenticated()`` to wait for
    it. Audit events go to ``audit`` (JSON lines on stderr by default). Brokers whose tokens
    last a day (Firstock) keep them in ``token_store`` (in memory by default; a
    ``FileTokenStore`` lets a restarted process reuse today's token). With ``keep_session`` the
    block's end leaves without logging out, so that the next process reuses the token (brokers
    whose session outlives the connection only; others raise ``ConfigurationError``).
    ``wall_clock`` (aware UTC datetimes; the system clock by default) is what TOTP windows and a
    token's day are read from: tests and the demo move it, nothing else should.
    """
    factory = _MODELS.get(type(config))
    if factory is None:
        known = ", ".join(sorted(t.__name__ for t in _MODELS))
        raise ConfigurationError(f"{type(config).__name__} is not a broker configuration "
                                 f"(expected one of: {known})")
    store = token_store if token_store is not None else default_token_store()
    model = await factory(config, rng=rng, store=store, wall=wall_clock)
    if keep_session and not model.keeps_sessions:
        raise ConfigurationError(f"{model.broker} sessions end with their connection: "
                                 "keep_session applies to brokers with day-long tokens (Firstock)")
    session_id = _session_id(config, model.broker)
    audit = audit or AuditLog.stderr()
    logger = audit.session(broker=model.broker, session_id=session_id, account=model.account,
                           secrets=model.secrets())
    driver = SessionDriver(model, config, session_id, logger, store)
    try:
        async with trio.open_nursery() as nursery:
            driver.start(nursery)
            try:
                yield Session(driver)
            finally:
                # Log out even while being cancelled, but never for longer than the logout allows.
                with trio.CancelScope(shield=True), trio.move_on_after(
                    config.logout_timeout + 1.0
                ):
                    await driver.stop(logout=not keep_session)
                driver.end()
                nursery.cancel_scope.cancel()
    except BaseExceptionGroup as group:
        # The driver's tasks keep their failures inside the session, so whatever is here came
        # from the caller's block: hand it back unwrapped.
        if len(group.exceptions) == 1:
            raise group.exceptions[0] from None
        raise
    finally:
        await driver.aclose()
