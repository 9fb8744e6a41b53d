"""Who the QST simulator knows, how each account misbehaves, and what it has seen."""

from __future__ import annotations

from dataclasses import dataclass, field

from brokergate.machines.qst import qst_pb2 as pb

#: Misbehaviour kinds accepted by ``QstAccount.misbehave`` and ``misbehave_before_login``.
MISBEHAVIOURS = frozenset({"garbage", "truncated", "text", "unknown_request_id"})


@dataclass
class QstAccount:
    """One QST user and the scripted behaviour of its logins.

    Countdown fields (``server_errors``, ``other_failures``, ``drop_mid_login``,
    ``close_after_login_times``) are armed when the account is added to a simulator; the
    simulator keeps its own copy of the counters, so this object is never mutated.
    """

    user_name: str
    password: str
    password_version: int = 1
    #: The finest CoalescingInterval the user's subscription allows.
    entitled_interval: int = pb.UNCOALESCED
    #: (id, title, text, url) per pending agreement: answer ProvisioningMessages.
    provisioning: list[tuple[str, str, str, str]] = field(default_factory=list)
    #: Always answer ErrorMessage with this code and QST's standard text for it.
    error_code: int | None = None
    #: Always answer ErrorMessage with only this text (no code field).
    error_text: str | None = None
    #: After this many wrong-password logins (across connections) every login gets code 5.
    lockout_after: int | None = None
    #: The first K logins get code 6, later ones succeed.
    server_errors: int = 0
    #: The first K logins get code 1000, later ones succeed.
    other_failures: int = 0
    #: Seconds (trio time) to wait before answering a login.
    login_delay: float = 0.0
    #: The first K logins: drop the TCP connection without a close frame and without answering.
    drop_mid_login: int = 0
    #: Close code sent after a successful login (e.g. 4101, 4102)...
    close_after_login: int | None = None
    #: ...this many seconds after the LoginResponse...
    close_after_login_delay: float = 0.0
    #: ...on this many successful logins (later ones behave normally).
    close_after_login_times: int = 1
    #: Seconds after a successful login when the connection goes silent: the TCP connection
    #: stays open but nothing is read or answered any more, WebSocket pings included
    #: (a half-open connection)...
    stall_after_login: float | None = None
    #: ...on this many successful logins (later ones behave normally).
    stall_times: int = 1
    #: After a successful login send one bad frame of this kind (see MISBEHAVIOURS).
    misbehave: str | None = None
    #: Send a bad frame of this kind instead of answering the login at all.
    misbehave_before_login: str | None = None
    #: First symbol of a translate request -> seconds to wait before answering it.
    translate_delays: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for kind in (self.misbehave, self.misbehave_before_login):
            if kind is not None and kind not in MISBEHAVIOURS:
                known = ", ".join(sorted(MISBEHAVIOURS))
                raise ValueError(f"unknown misbehaviour {kind!r}; use one of: {known}")


@dataclass
class SimulatorStats:
    """What the simulator has seen since it started or since ``reset_stats()``."""

    connections: int = 0
    logins_ok: int = 0
    #: Every ErrorMessage sent in answer to a login.
    logins_rejected: int = 0
    provisioning: int = 0
    logouts: int = 0
    #: Application requests answered after login (translations and unknown requests).
    requests: int = 0
    #: One human-readable line per protocol violation by a client.
    violations: list[str] = field(default_factory=list)
    #: User -> wrong-password logins so far (this is what lockout counts).
    wrong_passwords: dict[str, int] = field(default_factory=dict)
    #: A copy of every LoginRequest received, for tests that check field presence.
    login_requests: list[pb.LoginRequest] = field(default_factory=list)
    #: One line per connection closed with 4102 for reading too slowly: who, and why.
    slow_readers: list[str] = field(default_factory=list)
    #: Every frame queued for those connections and thrown away unwritten when they were
    #: closed, in queue order.
    discarded: list[bytes | str] = field(default_factory=list)


def demo_accounts() -> list[QstAccount]:
    """Named accounts for ``brokergate simulate qst``. Passwords are ``<user>-pw`` (but see wrong).

    ========  =============================================================================
    user      behaviour
    ========  =============================================================================
    alice     logs in; entitled to 100 ms coalescing
    pending   ProvisioningMessages: one agreement to accept through support
    wrong     every password is wrong (the real one is one nobody types): code 1
    locked    code 5, "Reached limit of failed logins"
    totp      code 2, "TOTP Code Missing"
    flaky     code 6 ("Server error") on the first two logins, then logs in
    busy      waits 30 s before answering the login
    kicked    logged in, then closed with 4101 (another device) after 1 s, once
    slow      logged in, then closed with 4102 (reads too slowly) after 1 s, once
    dropper   the first login's TCP connection is dropped (client sees 1006), then logs in
    ========  =============================================================================
    """
    return [
        QstAccount("alice", "alice-pw", entitled_interval=pb._100_MS),
        QstAccount(
            "pending",
            "pending-pw",
            provisioning=[
                (
                    "terms-2024",
                    "Market data agreement",
                    "Accept the exchange market data agreement before logging in.",
                    "https://example.invalid/agreements/terms-2024",
                )
            ],
        ),
        QstAccount("wrong", "\x00 nobody types this password \x00"),
        QstAccount("locked", "locked-pw", error_code=5),
        QstAccount("totp", "totp-pw", error_code=2),
        QstAccount("flaky", "flaky-pw", server_errors=2),
        QstAccount("busy", "busy-pw", login_delay=30.0),
        QstAccount("kicked", "kicked-pw", close_after_login=4101, close_after_login_delay=1.0),
        QstAccount("slow", "slow-pw", close_after_login=4102, close_after_login_delay=1.0),
        QstAccount("dropper", "dropper-pw", drop_mid_login=1),
    ]
