"""The Firstock simulator's HTTP API: login, userDetails, limit and logout, behind the
simulator-wide rate limit. Each request is routed, checked and answered here; the simulator
owns the accounts, the tokens and the counters, and ``RestView`` is all of it this side sees."""

from __future__ import annotations

import copy
import hashlib
from collections import deque
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Final, Literal

import pyotp
import trio

from brokergate.simulators.firstock import messages, replies
from brokergate.simulators.firstock.accounts import (
    Countdowns,
    FirstockAccount,
    FirstockSimulatorStats,
    StatusCase,
)
from brokergate.simulators.firstock.http11 import Reply, Request
from brokergate.simulators.firstock.tokens import Tokens

ApiVersion = Literal["v3", "v4"]

LOGIN_FIELDS: Final = ("userId", "password", "TOTP", "vendorCode", "apiKey")
SESSION_FIELDS: Final = ("userId", "jKey")
#: The window of the simulator-wide request rate limit, seconds.
RATE_WINDOW: Final = 1.0


@dataclass(frozen=True)
class RestView:
    """What the HTTP API may use of the Firstock simulator, and nothing else of it: its
    accounts and their countdowns, its tokens, its counters, and the options the API answers by.
    Read through, never copied: changing an option or resetting the stats takes effect on the
    next request."""

    #: The counters now (``reset_stats`` replaces them).
    stats: Callable[[], FirstockSimulatorStats]
    account: Callable[[str], FirstockAccount | None]
    countdowns: Callable[[str], Countdowns]
    tokens: Tokens
    api_version: Callable[[], ApiVersion]
    prefix: Callable[[], str]
    #: Requests per second across all HTTP requests (None: no limit).
    rate_limit: Callable[[], float | None]
    token_lifetime: Callable[[], float | None]
    #: How replies spell ``status`` when the account does not say.
    status_case: Callable[[], StatusCase]
    #: Seconds since the epoch, for TOTP codes.
    wall_clock: Callable[[], float]


class RestApi:
    """Answers the simulator's HTTP requests (``answer``), as ``HttpConnection`` asks."""

    def __init__(self, server: RestView, prefix: str) -> None:
        self._server = server
        self._recent: deque[float] = deque()
        self._routes: dict[str, Callable[[dict[str, object]], Awaitable[Reply]]] = {
            f"{prefix}/login": self._login,
            f"{prefix}/userDetails": self._user_details,
            f"{prefix}/limit": self._limit,
            f"{prefix}/logout": self._logout,
        }

    def malformed(self) -> None:
        """A request HTTP/1.1 could not read (it is not counted as a request)."""
        self._server.stats().malformed_requests += 1

    def http_refusal(self, status: int, message: str) -> Reply:
        return replies.http_refusal(status, message, self._server.status_case())

    async def answer(self, request: Request) -> Reply:
        """Route one request: the rate limit first (it counts every request), then the path,
        the method and the JSON body."""
        now = trio.current_time()
        stats = self._server.stats()
        case = self._server.status_case()
        stats.requests += 1
        stats.request_times.append(now)
        endpoint = self._routes.get(request.path)
        is_login = request.path == f"{self._server.prefix()}/login"
        if self._over_rate_limit(now):
            stats.status_429 += 1
            if is_login:
                stats.login_failures.append("RATE_LIMIT_EXCEEDED")
            return replies.rate_limited("RATE_LIMIT_EXCEEDED", RATE_WINDOW, case)
        if endpoint is None:
            return replies.not_found(request.path, case)
        if request.method != "POST":
            return replies.method_not_allowed(request.method, case)
        body = messages.parse(request.body)
        if is_login and body is not None:
            stats.login_bodies.append(copy.deepcopy(body))
        if body is None:
            if is_login:
                stats.login_failures.append("BAD_REQUEST")
            return replies.not_an_object(case)
        return await endpoint(body)

    def _over_rate_limit(self, now: float) -> bool:
        """Sliding window: a request is refused when ``rate_limit`` requests (a fraction rounds
        up) were let through in the last second. Refused requests do not count, so a client
        that backs off for a second gets through again."""
        rate_limit = self._server.rate_limit()
        if rate_limit is None:
            return False
        while self._recent and now - self._recent[0] >= RATE_WINDOW:
            self._recent.popleft()
        if len(self._recent) >= rate_limit:
            return True
        self._recent.append(now)
        return False

    def _case(self, account: FirstockAccount | None) -> StatusCase:
        if account is not None and account.status_case is not None:
            return account.status_case
        return self._server.status_case()

    # -- login ----------------------------------------------------------------------------------

    async def _login(self, body: dict[str, object]) -> Reply:
        reply, failure = await self._login_reply(body)
        stats = self._server.stats()
        if failure is None:
            stats.logins_ok += 1
        else:
            stats.login_failures.append(failure)
            if reply.status == 429:
                stats.status_429 += 1
        return reply

    async def _login_reply(self, body: dict[str, object]) -> tuple[Reply, str | None]:
        """The reply to a login, and the failure's name (None for a success).

        Order: fields present; user known; then the account's scripted faults, slowest first
        in the request's life (a proxy's 502, a rate limiter's 429, the API's 500), each login
        spending at most one; then blocked, password, vendor code, API key and TOTP.
        """
        server = self._server
        case = server.status_case()
        problem = _missing(body, LOGIN_FIELDS)
        if problem is not None:
            return replies.missing(problem[0], case, wrong_type=problem[1]), "BAD_REQUEST"
        fields = {name: str(body[name]) for name in LOGIN_FIELDS}
        account = server.account(fields["userId"])
        if account is None:
            return replies.invalid("userId", case), "INVALID_USERID"
        case = self._case(account)
        countdowns = server.countdowns(account.user_id)
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
        token = server.tokens.issue(account.user_id, server.token_lifetime())
        data = {"actid": account.user_id, "userName": account.name, "susertoken": token,
                "email": account.email}
        return replies.success(data, case), None

    def _expected_password(self, account: FirstockAccount) -> str:
        """V3 takes the password as typed; V4 takes its sha256, in lowercase hex."""
        if self._server.api_version() == "v4":
            return hashlib.sha256(account.password.encode()).hexdigest()
        return account.password

    def _totp_ok(self, account: FirstockAccount, code: str) -> bool:
        if account.fixed_totp is not None and code == account.fixed_totp:
            return True
        if account.totp_seed is not None:
            totp = pyotp.TOTP(account.totp_seed)
            return totp.verify(code, for_time=self._server.wall_clock(), valid_window=0)
        return account.fixed_totp is None  # no second factor configured: anything goes

    # -- userDetails, limit and logout ----------------------------------------------------------

    def _session(self, body: dict[str, object]) -> tuple[FirstockAccount | None, Reply | None]:
        """The account a ``{userId, jKey}`` body has a good session for, or the refusal."""
        problem = _missing(body, SESSION_FIELDS)
        if problem is not None:
            refusal = replies.missing(problem[0], self._server.status_case(),
                                      wrong_type=problem[1])
            return None, refusal
        user_id, jkey = str(body["userId"]), str(body["jKey"])
        account = self._server.account(user_id)
        case = self._case(account)
        verdict = self._server.tokens.check(user_id, jkey)
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
        self._server.stats().user_details += 1
        data = {"actid": account.user_id, "userName": account.name, "email": account.email}
        return replies.success(data, self._case(account))

    async def _limit(self, body: dict[str, object]) -> Reply:
        """The account's funds, as an application call an order router makes before trading."""
        account, refusal = self._session(body)
        if refusal is not None:
            return refusal
        assert account is not None
        self._server.stats().limits += 1
        data = {"actid": account.user_id, "cash": "250000.00", "payin": "0.00",
                "marginused": "0.00", "availableMargin": "250000.00"}
        return replies.success(data, self._case(account))

    async def _logout(self, body: dict[str, object]) -> Reply:
        account, refusal = self._session(body)
        if refusal is not None:
            return refusal
        assert account is not None
        self._server.tokens.revoke(str(body["jKey"]))
        self._server.stats().logouts += 1
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
