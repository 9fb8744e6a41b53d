"""One client connection to the CQG simulator: Logon or restore first and alone, then traffic.

Every frame is read as soon as it arrives (so a message pipelined behind the Logon is caught),
and everything the server says goes through one queue and one writer task, so frames leave in
the order they were decided (a LoggedOff can never overtake the Pong before it).
"""

from __future__ import annotations

import enum
from collections import deque
from typing import Final

import trio
import trio_websocket

from brokergate.machines.cqg import cqg_session_pb2 as pb
from brokergate.simulators._websocket import Close, Ending, QueuedConnection, SlowReaderRule
from brokergate.simulators.cqg import checks, frames
from brokergate.simulators.cqg.accounts import CqgAccount
from brokergate.simulators.cqg.registry import ServerView
from brokergate.simulators.cqg.sessions import ServerSession

#: The window of ``CqgAccount.rate_limit``, seconds (CQG counts client messages per 10 s).
RATE_WINDOW: Final = 10.0

#: Close codes (RFC 6455). A text frame is data of a type CQG does not accept (1003); every
#: other protocol violation (bad first message, a message before the logon result, bytes that
#: are not a ClientMsg, a rate limit exceeded) is a policy violation (1008).
UNSUPPORTED_DATA: Final = 1003
POLICY_VIOLATION: Final = 1008


class Phase(enum.Enum):
    AWAITING = "awaiting logon"  # nothing yet, or the last Logon/restore was refused
    PENDING = "awaiting result"  # a Logon or restore arrived; its result is not on its way yet
    ESTABLISHED = "established"
    CLOSING = "closing"  # about to close: frames from the client are ignored


class Connection(QueuedConnection):
    """Serves one WebSocket connection until either side ends it."""

    def __init__(
        self,
        server: ServerView,
        ws: trio_websocket.WebSocketConnection,
        label: str,
        slow_reader: SlowReaderRule | None = None,
    ):
        super().__init__(ws, slow_reader)
        self.label = label
        #: The session this connection carries, once a Logon or restore succeeded.
        self.session: ServerSession | None = None
        #: Set by the server once the connection is closed, dropped, or gone silent.
        self.finished = trio.Event()
        self._server = server
        self._sessions = server.sessions
        self._user: str | None = None
        self._phase = Phase.AWAITING
        self._awaited = ""  # the result a PENDING connection owes the client
        self._recent: deque[float] = deque()

    # -- controls, for the simulator ------------------------------------------------------------

    def deliver(self, frame: bytes) -> bool:
        """Queue a frame on an established connection; False if it is not (or no longer) one."""
        if self._phase is not Phase.ESTABLISHED:
            return False
        self._post(frame)
        return True

    def finish(self, frame: bytes | None, ending: Ending) -> bool:
        """Stop listening now, send ``frame`` (if any), then end as ``ending`` says.

        The connection leaves its session at once: the session's fate is decided by the caller,
        not by when the close handshake completes. False if the connection was already ending.
        """
        if self._ended or self._phase is Phase.CLOSING:
            return False
        self._phase = Phase.CLOSING
        self._sessions.detach(self)
        if frame is not None:
            self._post(frame)
        self._post(Close(ending))
        return True

    def _ending_now(self) -> None:
        self._phase = Phase.CLOSING
        self._sessions.detach(self)

    def _too_slow(self, why: str) -> None:
        """CQG's collapsing rule: real-time data that lags by ``max_data_lag`` or more gets a
        UserMessage, then the connection closes (the session stays restorable). What was queued
        and not yet written is lost with the connection."""
        if self._ended or self._phase is Phase.CLOSING:
            return
        self._phase = Phase.CLOSING
        self._sessions.detach(self)
        stats = self._server.stats()
        who = f"user {self._user!r}" if self._user else self.label
        stats.slow_readers.append(f"{who}: {why}")
        stats.user_messages_sent += 1
        notice = frames.data_lag_notice(self._server.max_data_lag(), why)
        stats.discarded += self._cut_off(notice, (POLICY_VIOLATION, "real-time data lag"))

    def _violation(self, what: str) -> None:
        who = f"user {self._user!r}" if self._user else f"{self.label} (no logon yet)"
        self._server.stats().violations.append(f"{who}: {what}")

    def _violated(self, what: str, code: int, reason: str) -> None:
        self._violation(what)
        self._end((code, reason))

    # -- reading --------------------------------------------------------------------------------

    async def _read_loop(self) -> None:
        while True:
            self._on_frame(await self._ws.get_message())

    def _on_frame(self, data: bytes | str) -> None:
        """Decide what a frame means. Synchronous, so phase changes cannot interleave."""
        if self._phase is Phase.CLOSING:
            return
        if isinstance(data, str):
            self._violated(
                f"{frames.describe(data)}; CQG takes binary frames only",
                UNSUPPORTED_DATA,
                "binary frames only",
            )
            return
        if self._phase is Phase.PENDING:
            self._violated(
                f"{frames.describe(data)} arrived before the {self._awaited}",
                POLICY_VIOLATION,
                f"a message arrived before the {self._awaited}",
            )
            return
        msg = frames.parse(data)
        if msg is None:
            self._violated(frames.describe(data), POLICY_VIOLATION, "not a ClientMsg")
        elif self._phase is Phase.AWAITING:
            self._on_first(msg, data)
        else:
            self._on_message(msg, data)

    def _on_first(self, msg: pb.ClientMsg, data: bytes) -> None:
        names = frames.declared(msg)
        alone = len(names) == 1 and frames.application_bytes(msg, data) == 0
        if alone and names[0] == "logon":
            self._phase, self._awaited = Phase.PENDING, "LogonResult"
            self._spawn(self._logon, msg.logon)
        elif alone and names[0] == "restore_or_join_session":
            self._phase, self._awaited = Phase.PENDING, "RestoreOrJoinSessionResult"
            self._spawn(self._restore, msg.restore_or_join_session)
        else:
            self._violated(
                f"the first message was {frames.describe(data)}, "
                "not a Logon or RestoreOrJoinSession alone",
                POLICY_VIOLATION,
                "the first message must be Logon or RestoreOrJoinSession",
            )

    # -- established ----------------------------------------------------------------------------

    def _on_message(self, msg: pb.ClientMsg, data: bytes) -> None:
        server, session = self._server, self.session
        assert session is not None  # established connections are attached until they end
        account = session.account
        if self._over_rate_limit(account.rate_limit):
            self._rate_limited(account.rate_limit)
            return
        names = frames.declared(msg)
        if "logon" in names or "restore_or_join_session" in names:
            self._violated(
                f"{frames.describe(data)} on an established connection",
                POLICY_VIOLATION,
                "already logged on",
            )
            return
        if not names or frames.application_bytes(msg, data):
            server.stats().app_messages.append(bytes(data))
            if server.echo_application() and not names:
                # The bytes go back as a ServerMsg untouched: what our schema does not declare
                # travels through as unknown fields, both ways.
                self._post(bytes(data))
        for name in names:
            self._on_session_part(name, msg, session, account)
        if "logoff" in names:
            server.stats().logoffs += 1
            self._sessions.end_session(session, pb.LoggedOff.LOGOFF_REASON_BY_REQUEST,
                                       "logged off by request")

    def _on_session_part(
        self, name: str, msg: pb.ClientMsg, session: ServerSession, account: CqgAccount
    ) -> None:
        """Answer one session field of an established connection's message (Logoff aside)."""
        if name == "ping":
            if not msg.ping.HasField("ping_utc_time"):
                self._violation("a Ping without its required ping_utc_time")
            if not account.ignore_pings:
                self._post(frames.pong(msg.ping, session.server_ms()))
        elif name == "pong":
            copy = pb.Pong()
            copy.CopyFrom(msg.pong)
            self._server.stats().pongs.append(copy)
        elif name == "password_change":
            self._post(frames.password_change_refused())
        elif name == "obtain_demo_credentials":
            self._post(frames.demo_credentials_refused())
        elif name == "user_session_state_request":
            self._post(frames.session_state_denied(msg.user_session_state_request.session_token))
        elif name == "set_collapsing_level_request":
            request = msg.set_collapsing_level_request
            has_level = request.HasField("max_collapsing_level")
            level = request.max_collapsing_level if has_level else None
            self._post(frames.collapsing_level_set(level))

    def _over_rate_limit(self, limit: int | None) -> bool:
        if limit is None:
            return False
        now = trio.current_time()
        self._recent.append(now)
        while now - self._recent[0] >= RATE_WINDOW:
            self._recent.popleft()
        return len(self._recent) > limit

    def _rate_limited(self, limit: int | None) -> None:
        """CQG's answer to a flood: a UserMessage, then the connection (not the session) ends."""
        self._server.stats().rate_limited += 1
        self._server.stats().user_messages_sent += 1
        notice = frames.rate_limit_notice(limit, RATE_WINDOW)
        self.finish(notice, (POLICY_VIOLATION, "rate limit exceeded"))

    async def _heartbeat(self, interval: float) -> None:
        while True:
            await trio.sleep(interval)
            session = self.session
            if session is None or self._phase is not Phase.ESTABLISHED:
                return
            self._post(frames.ping(session.server_ms()))
            self._server.stats().pings_sent += 1

    def _established(self, session: ServerSession) -> None:
        """From the moment the result is queued: the client may answer it at once."""
        self._phase = Phase.ESTABLISHED
        account = session.account
        if account.server_ping_interval is not None:
            self._spawn(self._heartbeat, account.server_ping_interval)
        if account.drop_after is not None and self._server.countdowns(
            account.user_name
        ).take_late_drop():
            self._spawn(self._drop_later, account.drop_after)

    async def _drop_later(self, delay: float) -> None:
        await trio.sleep(delay)
        self.abort("drop")

    # -- logon ----------------------------------------------------------------------------------

    async def _logon(self, logon: pb.Logon) -> None:
        server = self._server
        copy = pb.Logon()
        copy.CopyFrom(logon)
        server.stats().logon_requests.append(copy)
        self._user = logon.user_name or None
        await trio.sleep(server.login_settle())
        problem = checks.logon_field_problem(logon, server.knows_app)
        if problem is not None:
            self._refuse_logon(101, problem)
            return
        by_token = logon.HasField("access_token")
        token_expired = False
        if by_token:
            owner = server.token_owner(logon.access_token)
            if owner is None:
                self._refuse_logon(101, "unknown access token")
                return
            account, token_expired = owner
        else:
            found = server.account(logon.user_name)
            if found is None:
                self._refuse_logon(101, "unknown user name or wrong password")
                return
            account = found
        self._user = account.user_name
        countdowns = server.countdowns(account.user_name)
        if countdowns.take_drop():
            self._end("drop")
            return
        if account.logon_delay > 0:
            await trio.sleep(max(0.0, account.logon_delay - server.login_settle()))
        refusal = checks.refusal(logon, account, countdowns, by_token=by_token,
                                 expired=token_expired)
        if refusal is not None:
            self._refuse_logon(*refusal)
        else:
            await self._accept_logon(logon, account)

    def _refuse_logon(self, code: int, text: str, redirect_url: str | None = None) -> None:
        """Answer with a failed LogonResult; the connection may try again (as CQG's do)."""
        self._server.stats().logon_results.append(code)
        self._phase = Phase.AWAITING  # before queueing: the client may answer at once
        self._post(
            frames.logon_result(
                code,
                base_time=self._server.base_time(),
                server_time=0,
                text=text,
                redirect_url=redirect_url,
            )
        )

    async def _accept_logon(self, logon: pb.Logon, account: CqgAccount) -> None:
        server, sessions = self._server, self._sessions
        old = sessions.live_session(account.user_name)
        if old is not None:
            if logon.HasField("drop_concurrent_session") and not logon.drop_concurrent_session:
                self._refuse_logon(105, frames.logon_text(105))
                return
            # The old connections are gone before the new session is confirmed, so whoever
            # watches both sees the events in their real order.
            await sessions.push_out(old)
        session = sessions.open_session(account, logon)
        sessions.attach(self, session)
        server.stats().logons_ok += 1
        server.stats().logon_results.append(0)
        if account.welcome_message is not None:
            server.stats().user_messages_sent += 1
        self._established(session)
        self._post(
            frames.logon_result(
                0,
                base_time=session.base_time,
                server_time=session.server_ms(),
                session_token=session.token,
                user_id=account.user_id,
                inactivity_timeout=account.inactivity_timeout,
                welcome=account.welcome_message,
            )
        )

    # -- restore --------------------------------------------------------------------------------

    async def _restore(self, req: pb.RestoreOrJoinSession) -> None:
        server, sessions = self._server, self._sessions
        copy = pb.RestoreOrJoinSession()
        copy.CopyFrom(req)
        server.stats().restore_requests.append(copy)
        await trio.sleep(server.login_settle())
        if not req.session_token or not req.client_app_id:
            self._refuse_restore(103, "session_token and client_app_id are required")
            return
        session = sessions.find_session(req.session_token)
        if session is None:
            self._refuse_restore(101, "unknown session: log on again")
            return
        self._user = session.user_name
        denied = checks.restore_denial(req, session, server.knows_app)
        if denied is not None:
            self._refuse_restore(102, denied)
            return
        others = list(session.connections)
        join = session.joinable and bool(others)
        # Attach first: pushing the old connections out must not leave the session empty.
        sessions.attach(self, session)
        if join:
            same = (req.private_label or req.client_app_id, req.client_app_id) == (
                session.private_label,
                session.client_app_id,
            )
            for other in others:
                other.deliver(frames.concurrent_join(same))
        else:
            # As for a forced logoff: the old connection is closed before the restore is
            # confirmed.
            await sessions.reassign(others)
            if self.session is not session:
                return  # pushed out in turn (or the session ended) while waiting
        server.stats().restores_ok += 1
        server.stats().restore_results.append(0)
        self._established(session)
        self._post(
            frames.restore_result(
                0,
                base_time=session.base_time,
                server_time=session.server_ms(),
                inactivity_timeout=session.account.inactivity_timeout,
            )
        )

    def _refuse_restore(self, code: int, text: str) -> None:
        self._server.stats().restore_results.append(code)
        self._phase = Phase.AWAITING
        self._post(
            frames.restore_result(code, base_time=self._server.base_time(), server_time=0,
                                  text=text)
        )
