"""The CQG simulator: a loopback WebSocket server that answers like CQG WebAPI 2.230's session
layer, keeps sessions across connections, and lets tests script faults and push server events."""

from __future__ import annotations

import itertools
import logging
import ssl
from collections.abc import AsyncIterator, Collection, Iterable
from contextlib import asynccontextmanager
from typing import Final, Literal

import trio
import trio_websocket

from brokergate.simulators._accounts import AccountBook
from brokergate.simulators._serving import serve_stream
from brokergate.simulators._websocket import (
    LoopbackServer,
    SlowReaderRule,
    deliver_to_each,
    running,
)
from brokergate.simulators.cqg import frames
from brokergate.simulators.cqg.accounts import CqgAccount, CqgSimulatorStats
from brokergate.simulators.cqg.connection import Connection
from brokergate.simulators.cqg.registry import ServerView, SessionRegistry
from brokergate.simulators.cqg.sessions import Countdowns

log = logging.getLogger(__name__)

#: The base_time of every session: ISO 8601 without a zone, as CQG sends it. Fixed, so runs
#: are repeatable; each session's server_time counts from its own start.
DEFAULT_BASE_TIME: Final = "2026-11-21T00:00:00"
#: How long a restorable session outlives its last connection: CQG's conformance tests restore
#: "within 60 seconds"; the real lifetime is not documented.
DEFAULT_SESSION_LIFETIME: Final = 60.0
#: CQG's collapsing rule: a real-time data lag of this many seconds or more gets a UserMessage
#: and the connection closed.
DEFAULT_MAX_DATA_LAG: Final = 60.0


class CqgSimulator(LoopbackServer, AccountBook[CqgAccount, Countdowns]):
    """A fake CQG WebAPI server (session layer only; application messages can be echoed).

    ``client_app_ids=None`` accepts any non-empty client_app_id. ``session_lifetime`` is how
    long (trio seconds) a session logged on with ALLOW_SESSION_RESTORE stays restorable after its
    last connection went away. ``echo_application`` sends every application-only client message
    back as a ServerMsg, byte for byte. ``max_data_lag`` is CQG's collapsing rule: once a frame
    has waited that long (trio seconds) to be written, because the client reads too slowly, the
    connection gets a CRITICAL_ERROR UserMessage and is closed (1008); the session stays
    restorable. None turns the rule off.
    """

    name = "CQG"

    def __init__(
        self,
        accounts: Iterable[CqgAccount] = (),
        *,
        client_app_ids: Collection[str] | None = None,
        session_lifetime: float = DEFAULT_SESSION_LIFETIME,
        echo_application: bool = True,
        base_time: str = DEFAULT_BASE_TIME,
        max_data_lag: float | None = DEFAULT_MAX_DATA_LAG,
    ) -> None:
        super().__init__()
        self._app_ids = None if client_app_ids is None else frozenset(client_app_ids)
        self._numbers = itertools.count(1)
        self.session_lifetime = session_lifetime
        self.echo_application = echo_application
        self.base_time = base_time
        self.max_data_lag = max_data_lag
        self.stats = CqgSimulatorStats()
        self._registry = SessionRegistry(lifetime=lambda: self.session_lifetime,
                                         base_time=lambda: self.base_time,
                                         stats=lambda: self.stats)
        self._open_book(accounts)
        #: All a connection sees of this server.
        self._view = ServerView(
            account=self.account, countdowns=self.countdowns, token_owner=self.token_owner,
            knows_app=self.knows_app, stats=lambda: self.stats, sessions=self._registry,
            login_settle=lambda: self.login_settle, base_time=lambda: self.base_time,
            echo_application=lambda: self.echo_application,
            max_data_lag=lambda: self.max_data_lag)

    def _account_key(self, account: CqgAccount) -> str:
        return account.user_name

    def _arm(self, account: CqgAccount) -> Countdowns:
        return Countdowns.arm(account)

    def token_owner(self, token: str) -> tuple[CqgAccount, bool] | None:
        """(account, expired) for an access token any account knows; None for a stranger."""
        for account in self._accounts.values():
            if token in account.access_tokens:
                return account, False
            if token in account.expired_tokens:
                return account, True
        return None

    def knows_app(self, client_app_id: str) -> bool:
        return bool(client_app_id) and (self._app_ids is None or client_app_id in self._app_ids)

    def reset_stats(self) -> None:
        """Start counting afresh. Sessions and countdowns are left as they are."""
        self.stats = CqgSimulatorStats()

    # -- controls (for tests and demos) ---------------------------------------------------------

    def live_connections(self, user_name: str) -> int:
        """How many connections carry the user's sessions right now."""
        return len(self._registry.connections(user_name))

    async def wait_live_connections(self, user_name: str, count: int) -> None:
        """Until ``count`` connections carry the user's sessions (0: until the last one left)."""
        while self.live_connections(user_name) != count:
            await self._registry.wait_changed()

    def session_token(self, user_name: str) -> str | None:
        """The token of the user's current session (live or restorable), if any."""
        session = self._registry.live_session(user_name)
        return session.token if session is not None else None

    def expire_sessions(self, user_name: str) -> int:
        """Forget the user's sessions, so a restore gets 101. Returns how many.

        Connections still carrying them are left alone: they keep working until they end, and
        the controls (drop, log_off...) still reach them.
        """
        sessions = self._registry.user_sessions(user_name)
        for session in sessions:
            self._registry.forget(session)
        return len(sessions)

    def send(self, user_name: str, frames: Iterable[bytes]) -> int:
        """Queue ``frames`` (serialized ``ServerMsg``s: market data, order updates, whatever the
        test needs the client to receive) on every established connection of the user's
        sessions, in order, behind what is already queued. Returns how many connections took
        them. The simulator's writer sends them as fast as the client reads."""
        return deliver_to_each(self._registry.connections(user_name), frames)

    async def _abort(self, user_name: str, how: Literal["drop", "stall"]) -> int:
        conns = [c for c in self._registry.connections(user_name) if c.abort(how)]
        await self._registry.wait_finished(conns)
        return len(conns)

    async def drop(self, user_name: str) -> int:
        """Drop the TCP connections of the user's sessions, with no close frame (the client sees
        1006). Returns how many. The sessions stay restorable if their Logon allowed it."""
        return await self._abort(user_name, "drop")

    async def silence(self, user_name: str) -> int:
        """The user's connections go silent but stay open: nothing is read or answered any more,
        WebSocket pings included (a half-open connection). Returns how many.

        The server counts them as lost at once, so their sessions wait for a restore.
        """
        return await self._abort(user_name, "stall")

    async def log_off(
        self,
        user_name: str,
        reason: int,
        text: str | None = None,
        redirect_url: str | None = None,
    ) -> int:
        """End the user's sessions with LoggedOff{reason, text, redirect_url} on every live
        connection, which then closes. Returns how many connections were told."""
        conns = self._registry.connections(user_name)
        sessions = self._registry.user_sessions(user_name)
        sessions += [c.session for c in conns if c.session and c.session not in sessions]
        count = sum(self._registry.end_session(s, reason, text, redirect_url) for s in sessions)
        await self._registry.wait_finished(conns)
        return count

    async def send_user_message(
        self, user_name: str, text: str, message_type: int = 3, subject: str | None = None
    ) -> int:
        """Send a UserMessage (source "WebAPI") to the user's live connections; how many."""
        frame = frames.user_messages(frames.user_message(message_type, text, subject))
        count = await self.send_raw(user_name, frame)
        self.stats.user_messages_sent += count
        return count

    async def send_raw(self, user_name: str, data: bytes) -> int:
        """Send ``data`` as one binary frame to the user's live connections; how many."""
        count = sum(1 for c in self._registry.connections(user_name) if c.deliver(bytes(data)))
        await trio.lowlevel.checkpoint()
        return count

    # -- serving --------------------------------------------------------------------------------

    async def _handle_stream(self, stream: trio.abc.Stream) -> None:
        """One TCP connection. Nothing may escape: a bad client must not stop the server."""
        label = f"connection {next(self._numbers)}"

        def connect(ws: trio_websocket.WebSocketConnection) -> Connection:
            self.stats.connections += 1
            lag = self.max_data_lag
            return Connection(self._view, ws, label,
                              None if lag is None else SlowReaderRule(max_lag=lag))

        await serve_stream(stream, self.name, label, connect)


@asynccontextmanager
async def run_cqg_simulator(
    accounts: Iterable[CqgAccount] = (),
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    ssl_context: ssl.SSLContext | None = None,
    client_app_ids: Collection[str] | None = None,
    session_lifetime: float = DEFAULT_SESSION_LIFETIME,
    echo_application: bool = True,
    base_time: str = DEFAULT_BASE_TIME,
    max_data_lag: float | None = DEFAULT_MAX_DATA_LAG,
) -> AsyncIterator[CqgSimulator]:
    """Serve a CQG simulator for the duration of the block."""
    sim = CqgSimulator(
        accounts,
        client_app_ids=client_app_ids,
        session_lifetime=session_lifetime,
        echo_application=echo_application,
        base_time=base_time,
        max_data_lag=max_data_lag,
    )
    async with running(sim, host, port, ssl_context) as serving:
        yield serving
