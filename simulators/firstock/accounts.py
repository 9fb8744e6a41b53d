"""Who the Firstock simulator knows, how each account misbehaves, and what it has seen."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Final, Literal, get_args

import pyotp

#: How a reply spells its ``status``: 3.x SDKs expect "Success"/"Failed", 4.x "success"/"failed".
StatusCase = Literal["capitalised", "lowercase"]
STATUS_CASES: Final = frozenset(get_args(StatusCase))

#: The TOTP seed (base32) of the ``totp`` demo account. Published on purpose: the demo exists to
#: exercise the one-time-password path, not to protect anything.
DEMO_TOTP_SEED: Final = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"
#: The one code the ``fixed`` demo account accepts (no clock involved, so scripts can type it).
DEMO_FIXED_TOTP: Final = "123456"


@dataclass
class FirstockAccount:
    """One Firstock user and the scripted behaviour of its logins.

    Fields left None get Firstock-shaped defaults in ``__post_init__`` (vendor code
    ``<user>_API``, API key ``key-<user>``), so a test only spells out what it checks.

    The "first K logins" counts (``invalid_totp_times``, ``server_errors``, ``bad_gateway``,
    ``rate_limited_times``) and the wrong-password tally behind ``block_after`` are armed when the
    account is added to a simulator, which keeps its own copy: serving never mutates this object,
    so one account can be handed to several simulators.
    """

    user_id: str
    password: str
    #: Base32 TOTP seed: a login's TOTP must be the current code (wall clock, no window slack).
    totp_seed: str | None = None
    #: A TOTP that is always accepted, for deterministic tests. With neither this nor a seed,
    #: any non-empty TOTP passes (Firstock once took a date of birth or PAN there instead).
    fixed_totp: str | None = None
    #: The vendor code a login must carry; None means ``<user_id>_API``.
    vendor_code: str | None = None
    #: The API key a login must carry, exactly as sent (Firstock never hashes it); None means
    #: ``key-<user_id>``.
    api_key: str | None = None
    #: After this many wrong passwords every login, right password or not, gets Noren's
    #: "User Blocked due to multiple wrong attempts" (the fix is to call support).
    block_after: int | None = None
    #: Blocked before the simulator starts (someone else's wrong passwords): every login gets
    #: "User Blocked ...".
    blocked: bool = False
    #: ``data.userName`` of a successful login; None means the user id.
    name: str | None = None
    #: ``data.email`` of a successful login; None means ``<user_id>@example.invalid``.
    email: str | None = None
    #: The first K logins that get as far as the TOTP get INVALID_TOTP, even with a right code.
    invalid_totp_times: int = 0
    #: How this account's replies spell ``status``; None follows the simulator.
    status_case: StatusCase | None = None
    #: The first K logins: HTTP 500 "Server error" whose body claims code "401" (a documented
    #: Firstock quirk: parse the body whatever the status says).
    server_errors: int = 0
    #: The first K logins: HTTP 502 with an HTML page, as a proxy in front of the API sends.
    bad_gateway: int = 0
    #: Seconds (trio time) every login of this account waits before it is answered.
    login_delay: float = 0.0
    #: The first K logins: HTTP 429 with ``Retry-After``...
    rate_limited_times: int = 0
    #: ...of this many seconds (sent rounded up to whole seconds, as HTTP requires)...
    retry_after: float = 2.0
    #: ...and this error name (the old docs say API_RATE_LIMIT, the new ones RATE_LIMIT_EXCEEDED).
    rate_limit_name: str = "API_RATE_LIMIT"

    def __post_init__(self) -> None:
        if not self.user_id:
            raise ValueError("user_id must not be empty")
        if self.vendor_code is None:
            self.vendor_code = f"{self.user_id}_API"
        if self.api_key is None:
            self.api_key = f"key-{self.user_id}"
        if self.name is None:
            self.name = self.user_id
        if self.email is None:
            self.email = f"{self.user_id.lower()}@example.invalid"
        if self.totp_seed is not None:
            try:
                pyotp.TOTP(self.totp_seed).now()
            except ValueError as exc:  # binascii.Error is a ValueError
                raise ValueError(f"totp_seed is not a base32 TOTP seed: {exc}") from None
        if self.status_case is not None and self.status_case not in STATUS_CASES:
            raise ValueError(f"status_case must be one of {sorted(STATUS_CASES)}")
        counts = (self.invalid_totp_times, self.server_errors, self.bad_gateway,
                  self.rate_limited_times)
        if min(counts) < 0:
            raise ValueError("invalid_totp_times, server_errors, bad_gateway and "
                             "rate_limited_times count logins: use 0 or more")
        if self.block_after is not None and self.block_after < 1:
            raise ValueError("block_after must allow at least one wrong password (or be None)")
        if self.login_delay < 0:
            raise ValueError("login_delay must be 0 or more seconds")
        if self.retry_after <= 0:
            raise ValueError("retry_after must be positive seconds")
        if not self.rate_limit_name:
            raise ValueError("rate_limit_name must not be empty")


@dataclass
class Countdowns:
    """The scripted "first K logins" behaviours still to come for one account, and its
    wrong-password tally. Kept by the simulator, beside the account, never inside it."""

    invalid_totps: int
    server_errors: int
    bad_gateways: int
    rate_limits: int
    wrong_passwords: int = 0

    @classmethod
    def arm(cls, account: FirstockAccount) -> Countdowns:
        return cls(account.invalid_totp_times, account.server_errors, account.bad_gateway,
                   account.rate_limited_times)

    def take(self, name: Literal["invalid_totps", "server_errors", "bad_gateways",
                                 "rate_limits"]) -> bool:
        """Spend one of the named countdown; False when it has run out."""
        left: int = getattr(self, name)
        if left > 0:
            setattr(self, name, left - 1)
            return True
        return False


@dataclass
class FirstockSimulatorStats:
    """What the simulator has seen since it started or since ``reset_stats()``."""

    #: TCP connections to the HTTP API (a client that keeps its connections alive opens few).
    http_connections: int = 0
    #: Every complete HTTP request, whatever became of it (malformed ones are not requests).
    requests: int = 0
    #: The trio time each of those requests arrived, in order.
    request_times: list[float] = field(default_factory=list)
    logins_ok: int = 0
    #: The error name of every refused login, in order ("BAD_GATEWAY" for the HTML 502).
    login_failures: list[str] = field(default_factory=list)
    #: Every HTTP 429 sent: an account's scripted ones and the simulator's rate limit.
    status_429: int = 0
    #: Successful userDetails answers.
    user_details: int = 0
    #: Successful limit (funds) answers.
    limits: int = 0
    #: Successful logouts.
    logouts: int = 0
    #: A copy of every login body that was a JSON object, for tests that check what was sent.
    login_bodies: list[dict[str, object]] = field(default_factory=list)
    #: Requests so malformed that HTTP itself failed (answered 4xx and closed).
    malformed_requests: int = 0
    #: WebSocket handshakes accepted, on either socket.
    sockets_opened: int = 0
    #: Sockets refused because the user already had the maximum open.
    sockets_refused: int = 0
    #: Sockets whose token (or user) did not check out: Not_Ok / "unauthenticated".
    socket_auth_failures: int = 0
    #: Noren ``{"t":"h"}`` heartbeats received.
    heartbeats: int = 0
    #: Noren sockets closed for missing heartbeats.
    heartbeat_timeouts: int = 0
    #: WebSocket Pings the new socket sent, and Pongs that answered them.
    pings_sent: int = 0
    pongs: int = 0
    #: New sockets dropped because a Ping went unanswered.
    ping_timeouts: int = 0
    #: One human-readable line per protocol violation by a client.
    violations: list[str] = field(default_factory=list)


def demo_accounts() -> list[FirstockAccount]:
    """Named accounts for demos. Passwords are ``<user>-pw``, vendor codes ``<user>_API`` and
    API keys ``key-<user>``; a TOTP is needed only where the table says so (else anything).

    =========  ===================================================================================
    user       behaviour
    =========  ===================================================================================
    alice      logs in
    totp       the TOTP must be the current code of ``DEMO_TOTP_SEED``
    fixed      the TOTP must be ``DEMO_FIXED_TOTP`` (123456)
    blocky     blocked after 3 wrong passwords: then every login gets "User Blocked ..."
    flaky      HTTP 500 with body code "401" (SERVER_ERROR) on the first two logins, then logs in
    proxy      HTTP 502 with an HTML page on the first login, then logs in
    limited    HTTP 429 API_RATE_LIMIT with Retry-After: 2 on the first two logins, then logs in
    slow       every login takes 30 s to answer
    lower      logs in; replies say "success"/"failed" (V4 style)
    otpfail    INVALID_TOTP on the first login even with a right TOTP, then logs in
    =========  ===================================================================================
    """
    return [
        FirstockAccount("alice", "alice-pw", name="Alice Example"),
        FirstockAccount("totp", "totp-pw", totp_seed=DEMO_TOTP_SEED),
        FirstockAccount("fixed", "fixed-pw", fixed_totp=DEMO_FIXED_TOTP),
        FirstockAccount("blocky", "blocky-pw", block_after=3),
        FirstockAccount("flaky", "flaky-pw", server_errors=2),
        FirstockAccount("proxy", "proxy-pw", bad_gateway=1),
        FirstockAccount("limited", "limited-pw", rate_limited_times=2),
        FirstockAccount("slow", "slow-pw", login_delay=30.0),
        FirstockAccount("lower", "lower-pw", status_case="lowercase"),
        FirstockAccount("otpfail", "otpfail-pw", invalid_totp_times=1),
    ]
