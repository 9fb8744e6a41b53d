"""The Firstock simulator: a loopback HTTP/1.1 API (login, userDetails, limit, logout) and a
loopback WebSocket listener (the Noren socket and the new one), sharing accounts, tokens and
faults."""

from __future__ import annotations

import copy
import hashlib
import itertools
import logging
import ssl
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from functools import partial
from typing import Final, Literal, Self
from urllib.parse import urlencode

import pyotp
import trio

from brokergate.simulators._accounts import AccountBook
from brokergate.simulators._websocket import CONTROL_WAIT, LoopbackServer, running
from brokergate.simulators.firstock import messages, replies
from brokergate.simulators.firstock.accounts import (
    STATUS_CASES,
    Countdowns,
    FirstockAccount,
    FirstockSimulatorStats,
    StatusCase,
)
from brokergate.simulators.firstock.http11 import HttpConnection, Reply, Request
from brokergate.simulators.firstock.messages import MAX_SESSIONS
from brokergate.simulators.firstock.sockets import (
    FirstockSocketServer,
    SocketConnection,
    SocketView,
)
from brokergate.simulators.firstock.tokens import Tokens

log = logging.getLogger(__name__)

ApiVersion = Literal["v3", "v4"]

LOGIN_FIELDS: Final = ("userId", "password", "TOTP", "vendorCode", "apiKey")
SESSION_FIELDS: Final = ("userId", "jKey")
#: The window of the simulator-wide request rate limit, seconds.
RATE_WINDOW: Final = 1.0


class FirstockSimulator(LoopbackServer, AccountBook[FirstockAccount, Countdowns]):
    """A fake Firstock Connect API (``api_version`` "v3": plain passwords; "v4": the body carries
    sha256 hex of the password) plus both of its WebSockets.

    HTTP is served on ``port``, WebSockets on ``ws_port`` (0: any free port). ``rate_limit`` is
    requests per second across all HTTP requests (a sliding 1 s window); ``token_lifetime`` is
    trio seconds from login to SESSION_EXPIRED. A new login replaces the user's earlier token
    (the old one gets INVALID_JKEY): Firstock documents no rule, and one session per user is
    the stricter reading, which a client must survive anyway.
    """

    name = "Firstock"

    def __init__(
        self,
        accounts: Iterable[FirstockAccount] = (),
        *,
        api_version: ApiVersion = "v3",
        prefix: str = "/api/V3",
        rate_limit: float | None = None,
        token_lifetime: float | None = None,
        socket_ping_interval: float = 5.0,
        noren_heartbeat_timeout: float | None = None,
        status_case: StatusCase | None = None,
        ws_port: int = 0,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__()
        if api_version not in ("v3", "v4"):
            raise ValueError(f"api_version must be 'v3' or 'v4', not {api_version!r}")
        if prefix and (not prefix.startswith("/") or prefix.endswith("/")):
            raise ValueError(f"prefix must start with '/' and not end with one: {prefix!r}")
        if rate_limit is not None and rate_limit <= 0:
            raise ValueError("rate_limit must be positive requests per second (or None)")
        for name, value in (("token_lifetime", token_lifetime),
                            ("noren_heartbeat_timeout", noren_heartbeat_timeout),
                            ("socket_ping_interval", socket_ping_interval)):
            if value is not None and value <= 0:
                raise ValueError(f"{name} must be positive seconds")
        if status_case is not None and status_case not in STATUS_CASES:
            raise ValueError(f"status_case must be one of {sorted(STATUS_CASES)}")
        self.api_version: ApiVersion = api_version
        self.prefix = prefix
        self.rate_limit = rate_limit
        self.token_lifetime = token_lifetime
        self.socket_ping_interval = socket_ping_interval
        self.noren_heartbeat_timeout = noren_heartbeat_timeout
        #: How replies spell ``status`` when the account does not say (3.x: "Success",
        #: 4.x: "success", unless given).
        self.status_case: StatusCase = status_case or (
            "capitalised" if api_version == "v3" else "lowercase")
        #: Seconds since the epoch, for TOTP codes (the real server's clock is the wall clock;
        #: tests may pin it).
        self.wall_clock = wall_clock
        self.ws_port = ws_port
        self.stats = FirstockSimulatorStats()
        self._tokens = Tokens()
        self.sockets = FirstockSocketServer(SocketView(
            stats=lambda: self.stats, check_token=self._tokens.check, admit=self._admit,
            release=self._release, login_settle=lambda: self.login_settle,
            socket_ping_interval=lambda: self.socket_ping_interval,
            noren_heartbeat_timeout=lambda: self.noren_heartbeat_timeout))
        self._live: list[SocketConnection] = []
        #: Set (and replaced) whenever a socket starts or stops counting.
        self._live_changed = trio.Event()
        self._recent: deque[float] = deque()
        self._numbers = itertools.count(1)
        self._routes = {
            f"{prefix}/login": self._login,
            f"{prefix}/userDetails": self._user_details,
            f"{prefix}/limit": self._limit,
            f"{prefix}/logout": self._logout,
        }
        self._open_book(accounts)

    # -- addresses ------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """``http://host:port/`` (``https://`` when serving TLS), once serving."""
        return "http" + super().url.removeprefix("ws")

    @property
    def base_url(self) -> str:
        """The API root the endpoints hang off, e.g. ``http://127.0.0.1:PORT/api/V3``."""
        return self.url.rstrip("/") + self.prefix

    @property
    def noren_url(self) -> str:
        """The legacy Noren socket, e.g. ``ws://127.0.0.1:PORT/NorenWSTP/``."""
        return self.sockets.url + "NorenWSTP/"

    @property
    def socket_url(self) -> str:
        """The new socket without its query, e.g. ``ws://127.0.0.1:PORT/ws``."""
        return self.sockets.url + "ws"

    def socket_url_for(self, user_id: str, jkey: str, source: str = "developer-api") -> str:
        """The new socket's URL as the SDKs build it: ``?userId=U&jKey=K&source=...``."""
        return f"{self.socket_url}?{urlencode({'userId': user_id, 'jKey': jkey, 'source': source})}"

    # -- accounts and controls ------------------------------------------------------------------

    def _account_key(self, account: FirstockAccount) -> str:
        return account.user_id

    def _arm(self, account: FirstockAccount) -> Countdowns:
        """Its countdowns and its wrong-password tally, afresh."""
        return Countdowns.arm(account)

    def reset_stats(self) -> None:
        """Start counting afresh. Tokens, sockets, countdowns and blocks are left as they are."""
        self.stats = FirstockSimulatorStats()

    def token_of(self, user_id: str) -> str | None:
        """The user's token that would pass a check right now, if any."""
        good = self._tokens.good(user_id)
        return good[-1] if good else None

    def expire_tokens(self, user_id: str) -> int:
        """Expire the user's good tokens (SESSION_EXPIRED from now on); how many.

        Sockets already open on them stay open, as a session check happens only at connect.
        """
        return self._tokens.expire(user_id)

    def live_sockets(self, user_id: str) -> int:
        """How many authenticated sockets (either kind) the user has open right now."""
        return sum(1 for conn in self._live if conn.user_id == user_id)

    async def wait_live_sockets(self, user_id: str, count: int) -> None:
        """Until the user has exactly ``count`` sockets open: the server notices a socket the
        client closed a moment after the client did, and a test may need to wait for that."""
        while self.live_sockets(user_id) != count:
            await self._live_changed.wait()

    async def drop_sockets(self, user_id: str) -> int:
        """Drop the TCP connections of the user's sockets, with no close frame (the client sees
        1006); returns how many, once they are gone."""
        mine = [conn for conn in self._live if conn.user_id == user_id]
        conns = [conn for conn in mine if conn.abort("drop")]  # aborting leaves self._live
        with trio.move_on_after(CONTROL_WAIT):
            for conn in conns:
                await conn.finished.wait()
        return len(conns)

    def send(self, user_id: str, messages: Iterable[str]) -> int:
        """Queue ``messages`` (market data, order updates: text frames, as Firstock's sockets
        send them) on every authenticated socket of the user, in order. Returns how many sockets
        took them; the simulator's writer sends them as fast as the client reads."""
        messages = list(messages)
        mine = [conn for conn in self._live if conn.user_id == user_id]
        for conn in mine:
            for message in messages:
                conn.deliver(message)
        return len(mine)

    async def drop(self, user_id: str) -> int:
        """``drop_sockets``, under the name the QST and CQG simulators use for the same thing.

        Only the sockets: the user's token stays good, so a client can open a new socket on it
        without logging in again."""
        return await self.drop_sockets(user_id)

    # -- the registry of authenticated sockets (in the sockets' view) --------------------------

    def _admit(self, conn: SocketConnection, user_id: str) -> bool:
        """Count an authenticated socket for ``user_id``; False if the user is at the limit."""
        if self.live_sockets(user_id) >= MAX_SESSIONS:
            return False
        conn.user_id = user_id
        self._live.append(conn)
        self._live_changed.set()
        self._live_changed = trio.Event()
        return True

    def _release(self, conn: SocketConnection) -> None:
        """A socket stopped counting (it is ending, any way at all). Idempotent."""
        if conn in self._live:
            self._live.remove(conn)
            self._live_changed.set()
            self._live_changed = trio.Event()

    # -- serving --------------------------------------------------------------------------------

    async def serve(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        ssl_context: ssl.SSLContext | None = None,
        task_status: trio.TaskStatus[Self] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Serve HTTP on ``port`` and the WebSockets on ``ws_port`` until cancelled."""
        async with trio.open_nursery() as nursery:
            await nursery.start(partial(self.sockets.serve, host, self.ws_port,
                                        ssl_context=ssl_context))
            await nursery.start(partial(super().serve, host, port, ssl_context=ssl_context))
            task_status.started(self)

    async def _handle_stream(self, stream: trio.abc.Stream) -> None:
        """One HTTP connection. Nothing may escape: a bad client must not stop the server."""
        label = f"HTTP connection {next(self._numbers)}"
        self.stats.http_connections += 1
        try:
            await HttpConnection(stream, self._answer, self._http_refusal,
                                 self._malformed).run()
        except Exception:
            log.exception("Firstock simulator: %s failed", label)
        finally:
            await trio.aclose_forcefully(stream)

    def _malformed(self) -> None:
        self.stats.malformed_requests += 1

    def _http_refusal(self, status: int, message: str) -> Reply:
        return replies.http_refusal(status, message, self.status_case)

    async def _answer(self, request: Request) -> Reply:
        """Route one request: the rate limit first (it counts every request), then the path,
        the method and the JSON body."""
        now = trio.current_time()
        stats = self.stats
        stats.requests += 1
        stats.request_times.append(now)
        endpoint = self._routes.get(request.path)
        is_login = request.path == f"{self.prefix}/login"
        if self._over_rate_limit(now):
            stats.status_429 += 1
            if is_login:
                stats.login_failures.append("RATE_LIMIT_EXCEEDED")
            return replies.rate_limited("RATE_LIMIT_EXCEEDED", RATE_WINDOW, self.status_case)
        if endpoint is None:
            return replies.not_found(request.path, self.status_case)
        if request.method != "POST":
            return replies.method_not_allowed(request.method, self.status_case)
        body = messages.parse(request.body)
        if is_login and body is not None:
            stats.login_bodies.append(copy.deepcopy(body))
        if body is None:
            if is_login:
                stats.login_failures.append("BAD_REQUEST")
            return replies.not_an_object(self.status_case)
        return await endpoint(body)

    def _over_rate_limit(self, now: float) -> bool:
        """Sliding window: a request is refused when ``rate_limit`` requests (a fraction rounds
        up) were let through in the last second. Refused requests do not count, so a client
        that backs off for a second gets through again."""
        if self.rate_limit is None:
            return False
        while self._recent and now - self._recent[0] >= RATE_WINDOW:
            self._recent.popleft()
        if len(self._recent) >= self.rate_limit:
            return True
        self._recent.append(now)
        return False

    def _case(self, account: FirstockAccount | None) -> StatusCase:
        if account is not None and account.status_case is not None:
            return account.status_case
        return self.status_case

    # -- login ----------------------------------------------------------------------------------

    async def _login(self, body: dict[str, object]) -> Reply:
        reply, failure = await self._login_reply(body)
        if failure is None:
            self.stats.logins_ok += 1
        else:
            self.stats.login_failures.append(failure)
            if reply.status == 429:
                self.stats.status_429 += 1
        return reply

    async def _login_reply(self, body: dict[str, object]) -> tuple[Reply, str | None]:
        """The reply to a login, and the failure's name (None for a success).

        Order: fields present; user known; then the account's scripted faults, slowest first
        in the request's life (a proxy's 502, a rate limiter's 429, the API's 500), each login
        spending at most one; then blocked, password, vendor code, API key and TOTP.
        """
        case = self.status_case
        problem = _missing(body, LOGIN_FIELDS)
        if problem is not None:
            return replies.missing(problem[0], case, wrong_type=problem[1]), "BAD_REQUEST"
        fields = {name: str(body[name]) for name in LOGIN_FIELDS}
        account = self._accounts.get(fields["userId"])
        if account is None:
            return replies.invalid("userId", case), "INVALID_USERID"
        case = self._case(account)
        countdowns = self._countdowns[account.user_id]
        if account.login_delay > 0:
            await trio.sleep(account.login_delay)
        if countdowns.take("bad_gateways"):
            return replies.bad_gateway(), "BAD_GATEWAY"
        if countdowns.take("rate_limits"):
            reply = replies.rate_limited(account.rate_limit_name, account.retry_after, case)
            return reply, account.rate_limit_name
        if countdowns.take("server_errors"):
            return replies.server_error(case), "SERVER_ERROR"
        if account.blocked or (account.block_after is not None
                               and countdowns.wrong_passwords >= account.block_after):
            return replies.blocked(case), "INVALID_INPUT"
        if fields["password"] != self._expected_password(account):
            countdowns.wrong_passwords += 1
            return replies.invalid("password", case), "INVALID_PASSWORD"
        for name, expected in (("vendorCode", account.vendor_code), ("apiKey", account.api_key)):
            if fields[name] != expected:
                return replies.invalid(name, case), f"INVALID_{name.upper()}"
        if countdowns.take("invalid_totps") or not self._totp_ok(account, fields["TOTP"]):
            return replies.invalid("TOTP", case), "INVALID_TOTP"
        token = self._tokens.issue(account.user_id, self.token_lifetime)
        data = {"actid": account.user_id, "userName": account.name, "susertoken": token,
                "email": account.email}
        return replies.success(data, case), None

    def _expected_password(self, account: FirstockAccount) -> str:
        """V3 takes the password as typed; V4 takes its sha256, in lowercase hex."""
        if self.api_version == "v4":
            return hashlib.sha256(account.password.encode()).hexdigest()
        return account.password

    def _totp_ok(self, account: FirstockAccount, code: str) -> bool:
        if account.fixed_totp is not None and code == account.fixed_totp:
            return True
        if account.totp_seed is not None:
            totp = pyotp.TOTP(account.totp_seed)
            return totp.verify(code, for_time=self.wall_clock(), valid_window=0)
        return account.fixed_totp is None  # no second factor configured: anything goes

    # -- userDetails and logout ----------------------------------------------------------------

    def _session(self, body: dict[str, object]) -> tuple[FirstockAccount | None, Reply | None]:
        """The account a ``{userId, jKey}`` body has a good session for, or the refusal."""
        problem = _missing(body, SESSION_FIELDS)
        if problem is not None:
            return None, replies.missing(problem[0], self.status_case, wrong_type=problem[1])
        user_id, jkey = str(body["userId"]), str(body["jKey"])
        account = self._accounts.get(user_id)
        case = self._case(account)
        verdict = self._tokens.check(user_id, jkey)
        if account is None or verdict == "invalid":
            return None, replies.invalid("jKey", case)
        if verdict == "expired":
            return None, replies.session_expired(case)
        return account, None

    async def _user_details(self, body: dict[str, object]) -> Reply:
        account, refusal = self._session(body)
        if refusal is not None:
            return refusal
        assert account is not None
        self.stats.user_details += 1
        data = {"actid": account.user_id, "userName": account.name, "email": account.email}
        return replies.success(data, self._case(account))

    async def _limit(self, body: dict[str, object]) -> Reply:
        """The account's funds, as an application call an order router makes before trading."""
        account, refusal = self._session(body)
        if refusal is not None:
            return refusal
        assert account is not None
        self.stats.limits += 1
        data = {"actid": account.user_id, "cash": "250000.00", "payin": "0.00",
                "marginused": "0.00", "availableMargin": "250000.00"}
        return replies.success(data, self._case(account))

    async def _logout(self, body: dict[str, object]) -> Reply:
        account, refusal = self._session(body)
        if refusal is not None:
            return refusal
        assert account is not None
        self._tokens.revoke(str(body["jKey"]))
        self.stats.logouts += 1
        return replies.success(replies.LOGGED_OUT_TEXT, self._case(account))


def _missing(body: dict[str, object], names: Iterable[str]) -> tuple[str, bool] | None:
    """(field, wrong_type) for the first field that is absent, empty or not a string."""
    for name in names:
        value = body.get(name)
        if value is None or value == "":
            return name, False
        if not isinstance(value, str):
            return name, True
    return None


@asynccontextmanager
async def run_firstock_simulator(
    accounts: Iterable[FirstockAccount] = (),
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    ws_port: int = 0,
    api_version: ApiVersion = "v3",
    prefix: str = "/api/V3",
    rate_limit: float | None = None,
    token_lifetime: float | None = None,
    socket_ping_interval: float = 5.0,
    noren_heartbeat_timeout: float | None = None,
    status_case: StatusCase | None = None,
    wall_clock: Callable[[], float] = time.time,
    ssl_context: ssl.SSLContext | None = None,
) -> AsyncIterator[FirstockSimulator]:
    """Serve a Firstock simulator (HTTP API and WebSockets) for the duration of the block."""
    sim = FirstockSimulator(
        accounts,
        api_version=api_version,
        prefix=prefix,
        rate_limit=rate_limit,
        token_lifetime=token_lifetime,
        socket_ping_interval=socket_ping_interval,
        noren_heartbeat_timeout=noren_heartbeat_timeout,
        status_case=status_case,
        ws_port=ws_port,
        wall_clock=wall_clock,
    )
    async with running(sim, host, port, ssl_context) as serving:
        yield serving
