"""The CQG simulator's sessions and the connections carrying them: what a connection's logon,
restore and logoff change, and what the server's controls look up; and ``ServerView``, all a
connection sees of the server.

Indexed for a server holding thousands of sessions: each user's sessions, and the sessions
waiting for a restore (the only ones that can expire).
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import trio

from brokergate.machines.cqg import cqg_session_pb2 as pb
from brokergate.simulators._websocket import CONTROL_WAIT, NORMAL_CLOSURE
from brokergate.simulators.cqg import frames
from brokergate.simulators.cqg.accounts import CqgAccount, CqgSimulatorStats
from brokergate.simulators.cqg.sessions import Countdowns, ServerSession

if TYPE_CHECKING:
    from brokergate.simulators.cqg.connection import Connection



class SessionRegistry:
    """Sessions by token and by user, and the connections attached to them.

    ``lifetime`` is how long (trio seconds) a restorable session outlives its last connection,
    ``base_time`` the base_time of new sessions, ``stats`` the server's counters now: all read
    when needed, so that changing the server's settings or resetting its stats takes effect.
    """

    def __init__(self, *, lifetime: Callable[[], float], base_time: Callable[[], str],
                 stats: Callable[[], CqgSimulatorStats]) -> None:
        self._lifetime = lifetime
        self._base_time = base_time
        self._stats = stats
        self._sessions: dict[str, ServerSession] = {}
        #: Connections carrying a session, in the order they got it (a session the registry
        #: forgot, through ``forget``, still has its connections here until they end).
        self._attached: dict[Connection, None] = {}
        self._by_user: dict[str, list[ServerSession]] = {}
        self._detached: dict[str, ServerSession] = {}
        self._attached_changed = trio.Event()

    # -- sessions -------------------------------------------------------------------------------

    def _purge(self) -> None:
        """Forget sessions that outlived their lifetime without a connection."""
        now = trio.current_time()
        lifetime = self._lifetime()
        for session in list(self._detached.values()):
            if session.expired(now, lifetime):
                self.forget(session)

    def user_sessions(self, user_name: str) -> list[ServerSession]:
        """The user's sessions that have not ended (live, or waiting for a restore)."""
        self._purge()
        return list(self._by_user.get(user_name, ()))

    def live_session(self, user_name: str) -> ServerSession | None:
        """The user's session that has not ended (it may be between connections), if any."""
        sessions = self.user_sessions(user_name)
        return max(sessions, key=lambda s: s.started) if sessions else None

    def find_session(self, token: str) -> ServerSession | None:
        self._purge()
        return self._sessions.get(token)

    def open_session(self, account: CqgAccount, logon: pb.Logon) -> ServerSession:
        settings = set(logon.session_settings)
        session = ServerSession(
            token=secrets.token_urlsafe(24),
            account=account,
            base_time=self._base_time(),
            started=trio.current_time(),
            restorable=pb.Logon.SESSION_SETTING_ALLOW_SESSION_RESTORE in settings,
            joinable=pb.Logon.SESSION_SETTING_ALLOW_SESSION_JOIN in settings,
            client_app_id=logon.client_app_id,
            private_label=logon.private_label or logon.client_app_id,
        )
        self._sessions[session.token] = session
        self._by_user.setdefault(session.user_name, []).append(session)
        return session

    def forget(self, session: ServerSession) -> None:
        """The session has ended: nothing can restore it (its connections are left alone)."""
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
        self.forget(session)
        return self.log_off_connections(list(session.connections), reason, text, redirect_url)

    async def push_out(self, session: ServerSession) -> None:
        """The user logged on again elsewhere: end the live ``session`` (LoggedOff FORCED) and
        wait until its connections are gone."""
        connections = list(session.connections)
        self.end_session(
            session,
            pb.LoggedOff.LOGOFF_REASON_FORCED,
            "the user logged on again elsewhere: this session was dropped",
        )
        await self.wait_finished(connections)

    async def reassign(self, conns: list[Connection]) -> None:
        """Another connection restored the session ``conns`` carried: LoggedOff REASSIGNED on
        each, then wait until they are gone."""
        self.log_off_connections(
            conns,
            pb.LoggedOff.LOGOFF_REASON_REASSIGNED,
            "another connection restored this session",
        )
        await self.wait_finished(conns)

    # -- connections ----------------------------------------------------------------------------

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
        the session waits ``lifetime`` seconds for one.
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
            self.forget(session)

    def _changed(self) -> None:
        self._attached_changed.set()
        self._attached_changed = trio.Event()

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
                self._stats().logged_off_reasons.append(reason)
                count += 1
        return count

    async def wait_finished(self, conns: Iterable[Connection]) -> None:
        """Until these connections are closed, dropped or silent (bounded: a client that never
        answers the close frame must not hold up the server)."""
        with trio.move_on_after(CONTROL_WAIT):
            for conn in conns:
                await conn.finished.wait()

    def connections(self, user_name: str) -> list[Connection]:
        """The connections carrying the user's sessions right now."""
        return [c for c in self._attached if c.session and c.session.user_name == user_name]

    async def wait_changed(self) -> None:
        """Until a connection is attached or detached."""
        await self._attached_changed.wait()


@dataclass(frozen=True)
class ServerView:
    """What a connection may use of its CQG simulator, and nothing else of it: the accounts
    (and who owns an access token), the stats counters, the session registry, and the options
    it serves by. Read through, never copied: ``reset_stats`` and a changed option take effect
    on live connections."""

    account: Callable[[str], CqgAccount | None]
    countdowns: Callable[[str], Countdowns]
    #: (account, expired) for an access token any account knows; None for a stranger.
    token_owner: Callable[[str], tuple[CqgAccount, bool] | None]
    knows_app: Callable[[str], bool]
    #: The counters now (``reset_stats`` replaces them).
    stats: Callable[[], CqgSimulatorStats]
    sessions: SessionRegistry
    #: Seconds every logon or restore takes to check, at least.
    login_settle: Callable[[], float]
    #: The base_time of a refused logon's or restore's result.
    base_time: Callable[[], str]
    echo_application: Callable[[], bool]
    max_data_lag: Callable[[], float | None]
