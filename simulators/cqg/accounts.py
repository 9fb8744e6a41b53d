"""Who the CQG simulator knows, how each account misbehaves, and what the simulator has seen."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import pyotp

from brokergate.machines.cqg import cqg_session_pb2 as pb

#: The TOTP seed (base32) of the ``otp`` demo account. It is published here on purpose: the
#: demo exists to exercise the one-time-password path, not to protect anything.
DEMO_OTP_SEED = "MJZG623FOJTWC5DFFVSGK3LPFVXXI4BB"

#: The highest value a sint32 ``user_id`` can take; derived ids stay below it.
_USER_ID_SPAN = 2**31 - 1


def derived_user_id(user_name: str) -> int:
    """A user id that is the same in every run (Python's ``hash()`` is salted per process)."""
    digest = hashlib.sha256(user_name.encode()).digest()
    return int.from_bytes(digest[:4], "big") % _USER_ID_SPAN + 1


@dataclass
class CqgAccount:
    """One CQG user and the scripted behaviour of its logons.

    Countdowns (``logon_result_times``, ``redirect_times``, ``drop_mid_logon``) are armed when the
    account is added to a simulator, which keeps its own copy of the counters, so this object
    is never mutated by serving it.
    """

    user_name: str
    password: str
    #: LogonResult.user_id; 0 means "derive a stable id from user_name".
    user_id: int = 0
    #: Base32 TOTP seed. When set, a Logon needs one_time_password: without one it gets 103,
    #: with a wrong one 101. Token logons skip it (CQG: access_token excludes the OTP).
    otp_seed: str | None = None
    #: Answer logons with this LogonResult code (e.g. 104, 105, 107, 999) and a text_message...
    logon_result: int | None = None
    #: ...on this many logons (None: every one); later logons behave normally.
    logon_result_times: int | None = None
    #: The first ``redirect_times`` logons get 106 REDIRECTED with this redirect_url.
    redirect_to: str | None = None
    redirect_times: int = 1
    #: LogonResult.inactivity_timeout, minutes (CQG leaves enforcing it to the client).
    inactivity_timeout: int | None = None
    #: Access tokens that log this account on; a Logon's token is looked up across accounts.
    access_tokens: frozenset[str] = frozenset()
    #: Access tokens of this account that have expired: LogonResult 108.
    expired_tokens: frozenset[str] = frozenset()
    #: Seconds between the server's Pings once logged on or restored (None: no server Pings).
    server_ping_interval: float | None = None
    #: Leave client Pings unanswered, so the client's Pong timeout fires.
    ignore_pings: bool = False
    #: At most this many client messages per 10 s on a logged-on connection; one more gets a
    #: UserMessage (CRITICAL_ERROR) and the connection is closed. The session stays restorable.
    rate_limit: int | None = None
    #: A successful LogonResult frame also carries a UserMessage (INFO) with this text.
    welcome_message: str | None = None
    #: Seconds (trio time) to wait before answering a logon.
    logon_delay: float = 0.0
    #: The first K logons: drop the TCP connection without a close frame and without answering.
    drop_mid_logon: int = 0
    #: Seconds after a logon or restore when the server drops the TCP connection (no close
    #: frame; the session stays restorable)...
    drop_after: float | None = None
    #: ...on this many established connections (later ones stay up).
    drop_after_times: int = 1

    def __post_init__(self) -> None:
        if self.user_id == 0:
            self.user_id = derived_user_id(self.user_name)
        if self.logon_result == 0:
            raise ValueError("logon_result=0 would be a success without a session; leave it None")
        if self.otp_seed is not None:
            try:
                pyotp.TOTP(self.otp_seed).now()
            except ValueError as exc:  # binascii.Error is a ValueError
                raise ValueError(f"otp_seed is not a base32 TOTP seed: {exc}") from None
        if min(self.redirect_times, self.drop_mid_logon, self.drop_after_times) < 0:
            raise ValueError("redirect_times, drop_mid_logon and drop_after_times are counts: "
                             "use 0 or more")
        if self.logon_result_times is not None and self.logon_result_times < 0:
            raise ValueError("logon_result_times counts logons: use None (always) or 0 or more")
        if self.rate_limit is not None and self.rate_limit < 1:
            raise ValueError("rate_limit must allow at least one message per 10 s")
        if self.server_ping_interval is not None and self.server_ping_interval <= 0:
            raise ValueError("server_ping_interval must be positive seconds")
        both = self.access_tokens & self.expired_tokens
        if both:
            raise ValueError(f"tokens both valid and expired: {sorted(both)}")


@dataclass
class CqgSimulatorStats:
    """What the simulator has seen since it started or since ``reset_stats()``."""

    connections: int = 0
    logons_ok: int = 0
    #: Every LogonResult.result_code sent, in order.
    logon_results: list[int] = field(default_factory=list)
    restores_ok: int = 0
    #: Every RestoreOrJoinSessionResult.result_code sent, in order.
    restore_results: list[int] = field(default_factory=list)
    #: Client Logoffs answered.
    logoffs: int = 0
    #: Every LoggedOff.logoff_reason sent, one per connection it went to, in order.
    logged_off_reasons: list[int] = field(default_factory=list)
    #: One human-readable line per protocol violation by a client.
    violations: list[str] = field(default_factory=list)
    #: A copy of every Logon received, for tests that check field presence.
    logon_requests: list[pb.Logon] = field(default_factory=list)
    #: A copy of every RestoreOrJoinSession received.
    restore_requests: list[pb.RestoreOrJoinSession] = field(default_factory=list)
    #: Server Pings sent.
    pings_sent: int = 0
    #: A copy of every Pong received from a client.
    pongs: list[pb.Pong] = field(default_factory=list)
    #: The raw bytes of every application message (a ClientMsg part we do not declare).
    app_messages: list[bytes] = field(default_factory=list)
    #: UserMessages sent (welcome, rate limit, send_user_message), one per connection.
    user_messages_sent: int = 0
    #: Connections closed for exceeding their account's rate_limit.
    rate_limited: int = 0
    #: One line per connection closed for its real-time data lag (the client read too slowly):
    #: who, and why.
    slow_readers: list[str] = field(default_factory=list)
    #: Every frame queued for those connections and thrown away unwritten when they were
    #: closed, in queue order.
    discarded: list[bytes | str] = field(default_factory=list)


def demo_accounts(redirect_url: str | None = None) -> list[CqgAccount]:
    """Named accounts for ``brokergate simulate cqg``. Passwords are ``<user>-pw``.

    ==========  ===================================================================================
    user        behaviour
    ==========  ===================================================================================
    alice       logs on; inactivity_timeout 30 minutes
    otp         needs a one-time password: TOTP with seed ``DEMO_OTP_SEED`` (103 without one)
    tokens      logs on with access token ``demo-access-token``; ``demo-expired-token`` gets 108
    expired     104 PASSWORD_EXPIRED
    concurrent  105 CONCURRENT_SESSION, always
    routine     107 ROUTINE_ERROR
    mystery     999, a code no client knows (CQG: any code above 100 is a failure)
    redirected  106 REDIRECTED to ``redirect_url`` on the first logon, then logs on; only listed
                when ``redirect_url`` is given (typically the simulator's own url)
    pinger      the server Pings every 5 s once logged on
    deaf        never answers the client's Pings
    chatty      rate limit of 5 client messages per 10 s: the 6th gets a UserMessage and a close
    welcome     the LogonResult frame also carries an INFO UserMessage
    busy        waits 30 s before answering the logon
    dropper     the first logon's TCP connection is dropped (client sees 1006), then logs on
    flappy      logs on; the connection drops 1 s after each of its first two logons/restores
    ==========  ===================================================================================
    """
    accounts = [
        CqgAccount("alice", "alice-pw", inactivity_timeout=30),
        CqgAccount("otp", "otp-pw", otp_seed=DEMO_OTP_SEED),
        CqgAccount(
            "tokens",
            "tokens-pw",
            access_tokens=frozenset({"demo-access-token"}),
            expired_tokens=frozenset({"demo-expired-token"}),
        ),
        CqgAccount("expired", "expired-pw", logon_result=104),
        CqgAccount("concurrent", "concurrent-pw", logon_result=105),
        CqgAccount("routine", "routine-pw", logon_result=107),
        CqgAccount("mystery", "mystery-pw", logon_result=999),
        CqgAccount("pinger", "pinger-pw", server_ping_interval=5.0),
        CqgAccount("deaf", "deaf-pw", ignore_pings=True),
        CqgAccount("chatty", "chatty-pw", rate_limit=5),
        CqgAccount("welcome", "welcome-pw", welcome_message="Welcome to the CQG simulator."),
        CqgAccount("busy", "busy-pw", logon_delay=30.0),
        CqgAccount("dropper", "dropper-pw", drop_mid_logon=1),
        CqgAccount("flappy", "flappy-pw", drop_after=1.0, drop_after_times=2),
    ]
    if redirect_url is not None:
        accounts.append(CqgAccount("redirected", "redirected-pw", redirect_to=redirect_url))
    return accounts
