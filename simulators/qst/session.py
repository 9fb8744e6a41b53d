"""One client connection to the QST simulator: login first and alone, then requests."""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

import trio
import trio_websocket
from google.protobuf.message import DecodeError

from brokergate.machines.qst import qst_pb2 as pb
from brokergate.simulators._websocket import Close, QueuedConnection, SlowReaderRule
from brokergate.simulators.qst import frames
from brokergate.simulators.qst.accounts import QstAccount, SimulatorStats

#: Seconds between a failed login's answer and the server's close (the client closes anyway).
CLOSE_GRACE: Final = 0.1
#: WebSocket close code for a policy violation (RFC 6455).
POLICY_VIOLATION: Final = 1008
#: QST's close code for a client that reads too slowly (its outbound queue overflowed).
TOO_SLOW: Final = 4102

_CLOSE_REASONS: Final = {
    1000: "normal closure",
    4101: "the same user connected from another device",
    4102: "the client reads too slowly",
}



@dataclass
class Countdowns:
    """The scripted "first K logins" behaviours still to come for one account."""

    drops: int
    server_errors: int
    other_failures: int
    kicks: int
    stalls: int = 0

    @classmethod
    def arm(cls, account: QstAccount) -> Countdowns:
        kicks = account.close_after_login_times if account.close_after_login is not None else 0
        stalls = account.stall_times if account.stall_after_login is not None else 0
        return cls(account.drop_mid_login, account.server_errors, account.other_failures, kicks,
                   stalls)


@dataclass(frozen=True)
class ServerView:
    """What a connection may use of its QST simulator, and nothing else of it: the accounts
    and their countdowns, the stats counters, the registry of logged-in connections, and what a
    login is judged by. Read through, never copied: ``reset_stats`` and a benchmark's
    ``login_settle`` take effect on live connections."""

    account: Callable[[str], QstAccount | None]
    countdowns: Callable[[str], Countdowns]
    #: The counters now (``reset_stats`` replaces them).
    stats: Callable[[], SimulatorStats]
    #: The registry of logged-in connections: a connection logged in; one is ending
    #: (idempotent).
    attach: Callable[[Connection], None]
    detach: Callable[[Connection], None]
    knows_client: Callable[[str], bool]
    #: Seconds every login takes to check, at least.
    login_settle: Callable[[], float]


class Phase(enum.Enum):
    AWAITING_LOGIN = "awaiting login"
    LOGGING_IN = "logging in"  # the login arrived and its answer is not yet on its way
    LOGGED_IN = "logged in"
    CLOSING = "closing"  # answered with an error, logged out, or about to close: frames ignored


class Connection(QueuedConnection):
    """Reads every client frame as it arrives (so early requests are caught) and answers each
    from its own task (so answers can overtake one another, as QST allows); every frame leaves
    through the one ordered writer of ``QueuedConnection``."""

    def __init__(
        self,
        server: ServerView,
        ws: trio_websocket.WebSocketConnection,
        label: str,
        slow_reader: SlowReaderRule | None = None,
    ):
        super().__init__(ws, slow_reader)
        self._server = server
        self._label = label
        self._user: str | None = None
        self._account: QstAccount | None = None
        self._phase = Phase.AWAITING_LOGIN
        #: Set by the server once the connection is closed, dropped or silent.
        self.finished = trio.Event()

    @property
    def user_name(self) -> str | None:
        """The user logged in on this connection (None before a successful login)."""
        return self._account.user_name if self._account is not None else None

    def deliver(self, frame: bytes) -> bool:
        """Queue a frame behind what is already queued, on a logged-in connection only; False if
        it is not (or no longer) one."""
        if self._ended or self._phase is not Phase.LOGGED_IN:
            return False
        self._post(frame)
        return True

    def close(self, code: int, reason: str | None = None) -> bool:
        """Close with ``code`` once the frames already queued are out; False if already ending.

        Stops reading at once, as QST does when it decides to close.
        """
        if self._ended or self._phase is Phase.CLOSING:
            return False
        self._phase = Phase.CLOSING
        self._server.detach(self)
        self._post(Close((code, reason or _CLOSE_REASONS.get(code, "closed by the simulator"))))
        return True

    def _ending_now(self) -> None:
        self._phase = Phase.CLOSING
        self._server.detach(self)

    def _too_slow(self, why: str) -> None:
        """QST's rule: a client that reads too slowly is closed with 4102. What was queued for
        it and not yet written is lost with the connection."""
        if self._ended or self._phase is Phase.CLOSING:
            return
        self._phase = Phase.CLOSING
        self._server.detach(self)
        who = f"user {self._user!r}" if self._user else self._label
        self._server.stats().slow_readers.append(f"{who}: {why}")
        reason = f"{_CLOSE_REASONS[TOO_SLOW]}: {why}"
        self._server.stats().discarded += self._cut_off(None, (TOO_SLOW, reason))

    def _violation(self, what: str) -> None:
        who = f"user {self._user!r}" if self._user else f"{self._label} (no login yet)"
        self._server.stats().violations.append(f"{who}: {what}")

    # -- reading --------------------------------------------------------------------------------

    async def _read_loop(self) -> None:
        while True:
            self._on_frame(await self._ws.get_message())

    def _on_frame(self, data: bytes | str) -> None:
        """Decide what a frame means. Synchronous, so phase changes cannot interleave."""
        if self._phase is Phase.CLOSING:
            return
        if self._phase is Phase.LOGGING_IN:
            self._violation(f"{frames.describe(data)} arrived before the login answer")
            self._end((POLICY_VIOLATION, "a request arrived before the login response"))
            return
        req = _parse(data)
        if self._phase is Phase.AWAITING_LOGIN:
            if req is None or req.WhichOneof("request") != "login":
                self._violation(f"the first frame was {frames.describe(data)}, not a login")
                self._end((POLICY_VIOLATION, "the first request must be the login"))
                return
            self._phase = Phase.LOGGING_IN
            self._spawn(self._login, req)
            return
        if req is None:
            self._post(frames.error(None, text="malformed request"))
            return
        rid = req.request_id if req.HasField("request_id") else None
        kind = req.WhichOneof("request")
        if kind == "translate_instrument_symbol":
            symbols = list(req.translate_instrument_symbol.instrument_symbols)
            self._spawn(self._translate, rid, symbols)
        elif kind == "logout":
            self._phase = Phase.CLOSING
            self._spawn(self._logout, rid)
        elif kind == "login":
            self._violation("a second login on a logged-in connection")
            self._post(frames.error(rid, text="already logged in"))
        else:
            self._answer(frames.error(rid, text="unknown request"))

    # -- after login ----------------------------------------------------------------------------

    def _answer(self, frame: bytes) -> None:
        self._post(frame)
        self._server.stats().requests += 1

    async def _translate(self, rid: int | None, symbols: list[str]) -> None:
        delays = self._account.translate_delays if self._account else {}
        delay = delays.get(symbols[0], 0.0) if symbols else 0.0
        if delay > 0:
            await trio.sleep(delay)
        self._answer(frames.translation(rid, symbols))

    async def _logout(self, rid: int | None) -> None:
        self._server.stats().logouts += 1
        self._post(frames.logout_ok(rid))
        self._post(Close((1000, "logged out")))

    async def _stall_later(self, delay: float) -> None:
        await trio.sleep(delay)
        self._end("stall")

    async def _close_later(self, code: int, delay: float) -> None:
        await trio.sleep(delay)
        self._post(Close((code, _CLOSE_REASONS.get(code, "closed by the simulator"))))

    # -- login ----------------------------------------------------------------------------------

    async def _login(self, req: pb.Request) -> None:
        server, login = self._server, req.login
        rid = req.request_id if req.HasField("request_id") else None
        copy = pb.LoginRequest()
        copy.CopyFrom(login)
        server.stats().login_requests.append(copy)
        self._user = login.user_name or None
        await trio.sleep(server.login_settle())
        if not login.user_name or not login.password.value:
            await self._refuse(frames.error(rid, text=frames.MANDATORY_FIELDS_TEXT))
            return
        if not login.client_id or not server.knows_client(login.client_id):
            await self._refuse(frames.error(rid, text=frames.UNAUTHORIZED_CLIENT_TEXT))
            return
        account = server.account(login.user_name)
        if account is None:
            await self._refuse(frames.error(rid, code=1))
            return
        countdowns = server.countdowns(account.user_name)
        if countdowns.drops > 0:
            countdowns.drops -= 1
            self._end("drop")
            return
        if account.login_delay > 0:
            await trio.sleep(max(0.0, account.login_delay - server.login_settle()))
        if account.misbehave_before_login is not None:
            # Instead of an answer: the login stays unanswered, so anything more is a violation.
            self._post(frames.bad_frame(account.misbehave_before_login))
            return
        refusal = self._refusal(login, account, countdowns, rid)
        if refusal is not None:
            await self._refuse(refusal)
        elif account.provisioning:
            server.stats().provisioning += 1
            await self._refuse(frames.provisioning(rid, account.provisioning), counted=False)
        else:
            await self._accept(login, account, countdowns, rid)

    def _refusal(
        self, login: pb.LoginRequest, account: QstAccount, countdowns: Countdowns, rid: int | None
    ) -> bytes | None:
        """The ErrorMessage for this login, or None when it may go on."""
        wrong = self._server.stats().wrong_passwords
        user = account.user_name
        if account.lockout_after is not None and wrong.get(user, 0) >= account.lockout_after:
            return frames.error(rid, code=5)
        if (
            login.password.value != account.password
            or not login.password.HasField("version")
            or login.password.version != account.password_version
        ):
            wrong[user] = wrong.get(user, 0) + 1
            return frames.error(rid, code=1)
        if account.error_code is not None:
            return frames.error(rid, code=account.error_code)
        if account.error_text is not None:
            return frames.error(rid, text=account.error_text)
        if countdowns.server_errors > 0:
            countdowns.server_errors -= 1
            return frames.error(rid, code=6)
        if countdowns.other_failures > 0:
            countdowns.other_failures -= 1
            return frames.error(rid, code=1000)
        return None

    async def _refuse(self, frame: bytes, *, counted: bool = True) -> None:
        """Answer the login with an error (or provisioning), then close shortly after."""
        if counted:
            self._server.stats().logins_rejected += 1
        self._phase = Phase.CLOSING  # before sending: the client may answer at once
        self._post(frame)
        await trio.sleep(CLOSE_GRACE)
        self._post(Close((1000, None)))

    async def _accept(
        self, login: pb.LoginRequest, account: QstAccount, countdowns: Countdowns, rid: int | None
    ) -> None:
        prefs = login.user_preferences if login.HasField("user_preferences") else None
        interval, last_trade = frames.grant(prefs, account.entitled_interval)
        self._server.stats().logins_ok += 1
        self._account = account
        kick = account.close_after_login is not None and countdowns.kicks > 0
        if kick:
            countdowns.kicks -= 1
        # Logged in from the moment the answer is on its way: a client may send its next
        # request as soon as it reads the answer, possibly before send_message() returns here.
        self._phase = Phase.LOGGED_IN
        self._server.attach(self)
        self._post(frames.login_ok(rid, interval, last_trade))
        if account.misbehave is not None:
            self._post(frames.bad_frame(account.misbehave))
        if kick and account.close_after_login is not None:
            code, delay = account.close_after_login, account.close_after_login_delay
            self._spawn(self._close_later, code, delay)
        if account.stall_after_login is not None and countdowns.stalls > 0:
            countdowns.stalls -= 1
            self._spawn(self._stall_later, account.stall_after_login)


def _parse(data: bytes | str) -> pb.Request | None:
    """The Request in a frame, or None for a text frame or bytes that are not a Request."""
    if isinstance(data, str):
        return None
    req = pb.Request()
    try:
        req.ParseFromString(data)
    except DecodeError:
        return None
    return req
