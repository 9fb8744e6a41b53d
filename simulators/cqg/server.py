"""The CQG simulator: a loopback WebSocket server that answers like CQG WebAPI 2.230's session
layer, keeps sessions across connections, and lets tests script faults and push server events."""

from __future__ import annotations

import itertools
import logging
import secrets
import ssl
from collections.abc import AsyncIterator, Collection, Iterable
from contextlib import asynccontextmanager
from typing import Final, Literal

import trio

from brokergate.machines.cqg import cqg_session_pb2 as pb
from brokergate.simulators._accounts import AccountBook
from brokergate.simulators._websocket import (
    CLOSE_TIMEOUT,
    NORMAL_CLOSURE,
    STALL_SECONDS,
    Ending,
    LoopbackServer,
    SlowReaderRule,
    closing_race,
    deliver_to_each,
    finish,
    handshake,
    running,
)
from brokergate.simulators.cqg import frames
from brokergate.simulators.cqg.accounts import CqgAccount, CqgSimulatorStats
from brokergate.simulators.cqg.connection import Connection
from brokergate.simulators.cqg.sessions import Countdowns, ServerSession

log = logging.getLogger(__name__)

#: Seconds a control method (drop, log_off...) waits for the connections it ended to be gone.
CONTROL_WAIT: Final = CLOSE_TIMEOUT + 1.0
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
        self._sessions: dict[str, ServerSession] = {}
        #: Connections carrying a session, in the order they got it (a session the registry
        #: forgot, through expire_sessions, still has its connections here until they end).
        self._attached: dict[Connection, None] = {}
        #: The registry indexed for a server holding thousands of sessions: each user's sessions,
        #: and the sessions waiting for a restore (the only ones that can expire).
        self._by_user: dict[str, list[ServerSession]] = {}
        self._detached: dict[str, ServerSession] = {}
        self.session_lifetime = session_lifetime
        self.echo_application = echo_application
        self.base_time = base_time
        self.max_data_lag = max_data_lag
        self._attached_changed = trio.Event()
        self.stats = CqgSimulatorStats()
        self._open_book(accounts)

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

    # -- sessions (for connections) -------------------------------------------------------------

    def _purge(self) -> None:
        """Forget sessions that outlived their lifetime without a connection."""
        now = trio.current_time()
        for session in list(self._detached.values()):
            if session.expired(now, self.session_lifetime):
                self._forget(session)

    def _user_sessions(self, user_name: str) -> list[ServerSession]:
        self._purge()
        return list(self._by_user.get(user_name, ()))

    def live_session(self, user_name: str) -> ServerSession | None:
        """The user's session that has not ended (it may be between connections), if any."""
        sessions = self._user_sessions(user_name)
        return max(sessions, key=lambda s: s.started) if sessions else None

    def find_session(self, token: str) -> ServerSession | None:
        self._purge()
        return self._sessions.get(token)

    def open_session(self, account: CqgAccount, logon: pb.Logon) -> ServerSession:
        settings = set(logon.session_settings)
        session = ServerSession(
            token=secrets.token_urlsafe(24),
            account=account,
            base_time=self.base_time,
            started=trio.current_time(),
            restorable=pb.Logon.SESSION_SETTING_ALLOW_SESSION_RESTORE in settings,
            joinable=pb.Logon.SESSION_SETTING_ALLOW_SESSION_JOIN in settings,
            client_app_id=logon.client_app_id,
            private_label=logon.private_label or logon.client_app_id,
        )
        self._sessions[session.token] = session
        self._by_user.setdefault(session.user_name, []).append(session)
        return session

    def attach(self, conn: Connection, session: ServerSession) -> None:
        session.connections.append(conn)
        session.lost_at = None
        self._detached.pop(session.token, None)
        conn.session = session
        self._attached[conn] = None
        self._changed()

    def detach(self, conn: Connection) -> None:
        """A connection left its session (any way at all). Idempotent.

        The last connection leaving ends the session, unless the Logon allowed a restore: then
        the session waits ``session_lifetime`` seconds for one.
        """
        session, conn.session = conn.session, None
        if session is None:
            return
        session.connections.remove(conn)
        del self._attached[conn]
        self._changed()
        if session.connections or session.ended:
            return
        if session.restorable:
            session.lost_at = trio.current_time()
            self._detached[session.token] = session
        else:
            self._forget(session)

    def _changed(self) -> None:
        self._attached_changed.set()
        self._attached_changed = trio.Event()

    def _forget(self, session: ServerSession) -> None:
        session.ended = True
        if self._sessions.pop(session.token, None) is not None:
            self._detached.pop(session.token, None)
            self._by_user[session.user_name].remove(session)

    def end_session(
        self,
        session: ServerSession,
        reason: int,
        text: str | None = None,
        redirect_url: str | None = None,
    ) -> int:
        """End a session: LoggedOff on each of its connections, which then close."""
        self._forget(session)
        return self.log_off_connections(list(session.connections), reason, text, redirect_url)

    def log_off_connections(
        self,
        conns: Iterable[Connection],
        reason: int,
        text: str | None = None,
        redirect_url: str | None = None,
    ) -> int:
        frame = frames.logged_off(reason, text, redirect_url)
        count = 0
        for conn in conns:
            if conn.finish(frame, (NORMAL_CLOSURE, "logged off")):
                self.stats.logged_off_reasons.append(reason)
                count += 1
        return count

    # -- controls (for tests and demos) ---------------------------------------------------------

    async def wait_finished(self, conns: Iterable[Connection]) -> None:
        """Until these connections are closed, dropped or silent (bounded: a client that never
        answers the close frame must not hold up the server)."""
        with trio.move_on_after(CONTROL_WAIT):
            for conn in conns:
                await conn.finished.wait()

    def _connections(self, user_name: str) -> list[Connection]:
        return [c for c in self._attached if c.session and c.session.user_name == user_name]

    def live_connections(self, user_name: str) -> int:
        """How many connections carry the user's sessions right now."""
        return len(self._connections(user_name))

    async def wait_live_connections(self, user_name: str, count: int) -> None:
        """Until ``count`` connections carry the user's sessions (0: until the last one left)."""
        while self.live_connections(user_name) != count:
            await self._attached_changed.wait()

    def session_token(self, user_name: str) -> str | None:
        """The token of the user's current session (live or restorable), if any."""
        session = self.live_session(user_name)
        return session.token if session is not None else None

    def expire_sessions(self, user_name: str) -> int:
        """Forget the user's sessions, so a restore gets 101. Returns how many.

        Connections still carrying them are left alone: they keep working until they end, and
        the controls (drop, log_off...) still reach them.
        """
        sessions = self._user_sessions(user_name)
        for session in sessions:
            self._forget(session)
        return len(sessions)

    def send(self, user_name: str, frames: Iterable[bytes]) -> int:
        """Queue ``frames`` (serialized ``ServerMsg``s: market data, order updates, whatever the
        test needs the client to receive) on every established connection of the user's
        sessions, in order, behind what is already queued. Returns how many connections took
        them. The simulator's writer sends them as fast as the client reads."""
        return deliver_to_each(self._connections(user_name), frames)

    async def _abort(self, user_name: str, how: Literal["drop", "stall"]) -> int:
        conns = [c for c in self._connections(user_name) if c.abort(how)]
        await self.wait_finished(conns)
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
        conns = self._connections(user_name)
        sessions = self._user_sessions(user_name)
        sessions += [c.session for c in conns if c.session and c.session not in sessions]
        count = sum(self.end_session(s, reason, text, redirect_url) for s in sessions)
        await self.wait_finished(conns)
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
        count = sum(1 for c in self._connections(user_name) if c.deliver(bytes(data)))
        await trio.lowlevel.checkpoint()
        return count

    # -- serving --------------------------------------------------------------------------------

    async def _handle_stream(self, stream: trio.abc.Stream) -> None:
        """One TCP connection. Nothing may escape: a bad client must not stop the server."""
        label = f"connection {next(self._numbers)}"
        conn: Connection | None = None
        ending: Ending = None
        try:
            # trio_websocket's reader task for this connection lives in this nursery.
            async with trio.open_nursery() as ws_tasks:
                ws = await handshake(ws_tasks, stream)
                if ws is not None:
                    self.stats.connections += 1
                    rule = None if self.max_data_lag is None else SlowReaderRule(
                        max_lag=self.max_data_lag)
                    conn = Connection(self, ws, label, rule)
                    ending = await conn.run()
                    await finish(ws, stream, ending)
                ws_tasks.cancel_scope.cancel()
            if conn is not None and ending == "stall":
                # The reader task is gone, so nothing answers pings, but the TCP connection
                # stays open: to the client this is a peer that vanished without a FIN.
                conn.finished.set()
                await trio.sleep(STALL_SECONDS)
        except Exception as exc:
            if closing_race(exc):
                log.debug("CQG simulator: %s: a ping met our close (harmless)", label)
            else:
                log.exception("CQG simulator: %s failed", label)
        finally:
            if conn is not None:
                conn.finished.set()
            await trio.aclose_forcefully(stream)


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
