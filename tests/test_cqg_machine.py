"""The CQG machine as event lists in, commands out: no sockets, no clocks but a fake one.

Every row of the CQG policy table has a test here.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime
from typing import Any

import pytest
from cqg_frames import (
    BASE_TIME,
    TOKEN,
    UNKNOWN_FIELD,
    client,
    incomplete,
    logged_off,
    logon_ok,
    logon_result,
    ping,
    pong,
    restore_result,
    server,
    user_message,
)

from brokergate.cqg import pb
from brokergate.machines import (
    Backoff,
    CancelTimer,
    CloseConnection,
    Closed,
    Command,
    Connected,
    ConnectFailed,
    CredentialReady,
    Deliver,
    Fault,
    FetchCredential,
    FrameReceived,
    LeaseGranted,
    LeaseLost,
    Notice,
    OpenConnection,
    Secret,
    SendFrame,
    SharedOutcome,
    Standby,
    Start,
    StartTimer,
    Stop,
    TimerFired,
    Transitioned,
)
from brokergate.machines.cqg import (
    CqgConfig,
    CqgServerMessage,
    CqgSession,
    LogonHistory,
    codec,
    policy,
)
from brokergate.machines.cqg.config import registered_domain

URL = "wss://demoapi.cqg.com/"
SEED = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def config(**overrides: Any) -> CqgConfig:
    values: dict[str, Any] = {
        "url": URL, "user_name": "alice", "password": Secret("pw-1"),
        "client_app_id": "WebApiTest", "min_logon_interval": 60.0,
        "backoff": Backoff(initial=0.5, factor=2.0, cap=5.0, max_attempts=6,
                           stability_window=10.0),
    }
    values.update(overrides)
    return CqgConfig(**values)


def session(clock: FakeClock | None = None, history: LogonHistory | None = None,
            **overrides: Any) -> CqgSession:
    return CqgSession(config(**overrides), rng=random.Random(7), clock=clock or FakeClock(),
                      history=history)


def moves(commands: list[Command]) -> list[tuple[str, str, str]]:
    return [(c.trigger, c.src, c.dst) for c in commands if isinstance(c, Transitioned)]


def last(commands: list[Command]) -> Transitioned:
    return [c for c in commands if isinstance(c, Transitioned)][-1]


def frames(commands: list[Command]) -> list[pb.ClientMsg]:
    return [client(bytes(c.data)) for c in commands if isinstance(c, SendFrame)]


def notices(commands: list[Command], kind: str) -> list[Notice]:
    return [c for c in commands if isinstance(c, Notice) and c.kind == kind]


def awaiting(s: CqgSession) -> list[Command]:
    s.handle(Start())
    out = s.handle(Connected(s.epoch))
    assert s.state == "awaiting_login_response"
    return out


def authenticated(s: CqgSession, frame: bytes | None = None) -> None:
    awaiting(s)
    s.handle(FrameReceived(s.epoch, frame or logon_ok()))
    assert s.state == "authenticated"


def settled(s: CqgSession, frame: bytes | None = None) -> None:
    """Authenticated and up for the stability window: a drop now restores at once."""
    authenticated(s, frame)
    s.handle(TimerFired("stable"))


# --- wire ---------------------------------------------------------------------------------------


def test_the_shared_test_vectors_match_byte_for_byte() -> None:
    logon = codec.encode_logon(user_name="u", password="p", client_app_id="WebApiTest",
                               client_version="1.0", session_settings=[1])
    assert logon.hex() == "a2061e0a01751201702a0a576562417069546573743203312e3048e60150025801"
    assert codec.encode_ping("t", 1000).hex() == "da06060a017410d00f"
    assert codec.encode_logoff() == bytes.fromhex("b20600")


def test_the_machine_logon_is_the_reference_logon() -> None:
    s = session(user_name="u", password=Secret("p"), client_version="1.0")
    out = awaiting(s)
    sent = [c for c in out if isinstance(c, SendFrame)]
    assert [c.description for c in sent] == ["Logon"]
    assert bytes(sent[0].data).hex() == (
        "a2061e0a01751201702a0a576562417069546573743203312e3048e60150025801")


def test_logon_fields_follow_the_configuration() -> None:
    s = session(restore=False, drop_concurrent_session=False, private_label="Firm",
                max_collapsing_level=2, fingerprint="fp-1")
    logon = frames(awaiting(s))[0].logon
    assert (logon.protocol_version_major, logon.protocol_version_minor) == (2, 230)
    assert list(logon.session_settings) == []  # restore is advertised only when we do it
    assert logon.HasField("drop_concurrent_session") and not logon.drop_concurrent_session
    assert (logon.private_label, logon.max_collapsing_level, logon.fingerprint) == (
        "Firm", 2, "fp-1")
    assert not logon.HasField("market_data_bandwidth")
    assert not logon.HasField("one_time_password")


def test_an_access_token_logon_sends_no_user_name_or_password() -> None:
    s = session(user_name=None, password=None, access_token=Secret("tok-1"), client_app_id=None)
    logon = frames(awaiting(s))[0].logon
    assert logon.access_token == "tok-1"
    assert not logon.HasField("user_name") and not logon.HasField("password")
    assert not logon.HasField("client_app_id")


@pytest.mark.parametrize(
    ("overrides", "problem"),
    [
        ({"password": None}, "password is missing"),
        ({"access_token": Secret("t")}, "exactly one of"),
        ({"user_name": None, "password": None}, "exactly one of"),
        ({"user_name": None, "password": None, "access_token": Secret("t"),
          "partner_token": Secret("p")}, "exactly one of"),
        ({"client_app_id": None}, "client_app_id is required"),
        ({"client_version": ""}, "client_version is required"),
        ({"max_collapsing_level": 1, "market_data_bandwidth": 100}, "mutually exclusive"),
        ({"url": "ws://demoapi.cqg.com/"}, "not a loopback host"),
        ({"password": "plain"}, "password must be a Secret"),
        ({"otp_seed": Secret(SEED), "otp_provider": lambda: "1"}, "not both"),
        ({"restore_window": 0}, "restore_window must be positive"),
        ({"otp_seed": Secret("JBSWY3DP")}, "otp_seed is too short"),
        ({"otp_seed": Secret("not base32!")}, "otp_seed is not valid base32"),
        ({"daily_logon_limit": 0}, "daily_logon_limit"),
    ],
)
def test_a_configuration_that_cannot_work_fails_before_connecting(
    overrides: dict[str, Any], problem: str
) -> None:
    s = session(**overrides)
    out = s.handle(Start())
    assert not any(isinstance(c, OpenConnection) for c in out)
    assert s.state == "failed"
    assert s.outcome()["reason"] == "invalid_config"
    assert problem in (s.outcome()["detail"] or "")


def test_an_access_token_logon_needs_no_client_app_id() -> None:
    s = session(user_name=None, password=None, access_token=Secret("t"), client_app_id=None)
    s.handle(Start())
    assert s.state == "connecting"


# --- LogonResult rows ---------------------------------------------------------------------------


def test_result_0_authenticates_and_keeps_the_session_token_secret() -> None:
    s = session()
    awaiting(s)
    out = s.handle(FrameReceived(1, logon_ok(inactivity_timeout=30, user_id=77)))
    assert moves(out) == [("logon_result", "awaiting_login_response", "authenticated")]
    assert isinstance(s.session_token, Secret) and s.session_token.reveal() == TOKEN
    assert TOKEN in s.secrets() and "pw-1" in s.secrets()
    assert TOKEN not in repr(s) and TOKEN not in str(s.outcome())
    outcome = s.outcome()
    assert (outcome["user_id"], outcome["server_protocol_version"]) == (77, "2.230")
    assert (outcome["inactivity_timeout"], outcome["logons"], outcome["restores"]) == (30, 1, 0)
    assert StartTimer("ping", 20.0) in out and StartTimer("inactivity", 1800.0) in out
    assert not any(isinstance(c, Deliver) for c in out)  # the session's own frame


@pytest.mark.parametrize(
    ("code", "reason", "fault"),
    [
        (101, "logon_failure", "configuration"),
        (104, "password_expired", "account"),
        (105, "concurrent_session", "account"),
        (107, "routine_error", "broker"),
        (999, "unknown_result", "broker"),
        (42, "unknown_result", "broker"),
    ],
)
def test_failed_logon_results_are_never_retried(code: int, reason: str, fault: str) -> None:
    s = session()
    awaiting(s)
    out = s.handle(FrameReceived(1, logon_result(code, "no")))
    assert s.state == "failed"
    assert s.outcome()["reason"] == reason and s.outcome()["fault"] == fault
    assert last(out).error_code == code
    assert "no" in (s.outcome()["detail"] or "")
    assert CloseConnection(1, 1000, "failed") in out
    assert not any(isinstance(c, OpenConnection | StartTimer) for c in out)


def test_103_without_a_one_time_password_provider_fails() -> None:
    s = session()
    awaiting(s)
    s.handle(FrameReceived(1, logon_result(103)))
    assert s.state == "failed"
    assert s.outcome()["reason"] == "one_time_password_required"
    assert "no one time password provider" in s.outcome()["detail"]


def test_103_with_a_provider_logs_on_again_once_with_a_fresh_code() -> None:
    s = session(otp_provider=lambda: "123456")
    awaiting(s)
    out = s.handle(FrameReceived(1, logon_result(103)))
    assert moves(out) == [("logon_result", "awaiting_login_response", "refreshing_credentials")]
    assert FetchCredential("one_time_password", 10.0) in out
    assert CloseConnection(1, 1000, "refreshing_credentials") in out
    out = s.handle(CredentialReady("one_time_password", Secret("123456")))
    assert moves(out) == [("credential_ready", "refreshing_credentials", "connecting")]
    assert OpenConnection(URL, 2) in out  # not held back by the logon spacing
    logon = frames(s.handle(Connected(2)))[0].logon
    assert logon.one_time_password == "123456"
    assert "123456" in s.secrets()
    # The fresh code is refused too: no second round.
    out = s.handle(FrameReceived(2, logon_result(103)))
    assert s.state == "failed" and s.outcome()["reason"] == "one_time_password_required"
    assert "a fresh one time password was refused too" in s.outcome()["detail"]


def test_a_failing_credential_provider_fails_the_session_and_says_why() -> None:
    s = session(otp_provider=lambda: "1")
    awaiting(s)
    s.handle(FrameReceived(1, logon_result(103)))
    s.handle(CredentialReady("one_time_password", None, "it raised RuntimeError"))
    assert s.state == "failed"
    assert s.outcome()["reason"] == "credential_unavailable"
    assert s.outcome()["fault"] == "configuration"
    assert "one time password provider failed: it raised RuntimeError" in s.outcome()["detail"]


def test_the_otp_seed_makes_a_totp_provider() -> None:
    s = session(otp_seed=Secret(SEED))
    provider = s.credential_source("one_time_password")
    assert provider is not None
    code = provider()
    assert isinstance(code, str) and len(code) == 6 and code.isdigit()
    assert SEED in s.secrets()


def test_108_without_a_token_provider_fails() -> None:
    s = session(user_name=None, password=None, access_token=Secret("old"))
    awaiting(s)
    s.handle(FrameReceived(1, logon_result(108)))
    assert s.state == "failed" and s.outcome()["reason"] == "access_token_expired"


def test_108_with_a_provider_fetches_a_new_token_and_logs_on_again() -> None:
    s = session(user_name=None, password=None, access_token=Secret("old"),
                access_token_provider=lambda: "new")
    awaiting(s)
    out = s.handle(FrameReceived(1, logon_result(108)))
    assert FetchCredential("access_token", 10.0) in out
    s.handle(CredentialReady("access_token", Secret("new")))
    logon = frames(s.handle(Connected(2)))[0].logon
    assert logon.access_token == "new"
    assert {"old", "new"} <= set(s.secrets())


def test_a_token_provider_alone_fetches_the_first_token_before_connecting() -> None:
    s = session(user_name=None, password=None, access_token_provider=lambda: "first")
    out = s.handle(Start())
    assert moves(out) == [("start", "disconnected", "refreshing_credentials")]
    s.handle(CredentialReady("access_token", Secret("first")))
    assert frames(s.handle(Connected(1)))[0].logon.access_token == "first"
    # The first fetch is not the one refresh a 108 allows.
    out = s.handle(FrameReceived(1, logon_result(108)))
    assert s.state == "refreshing_credentials"


def test_106_redirects_at_once_to_an_allowed_host() -> None:
    s = session()
    awaiting(s)
    out = s.handle(FrameReceived(1, logon_result(106, redirect_url="wss://api2.cqg.com:443/")))
    assert moves(out) == [("logon_result", "awaiting_login_response", "connecting")]
    assert OpenConnection("wss://api2.cqg.com:443/", 2) in out
    assert last(out).reason == "redirected"
    assert "wss://api2.cqg.com:443/" in (last(out).detail or "")


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("wss://evil.example.net/", "not in the allowed hosts"),
        ("ws://api2.cqg.com/", "not a loopback host"),
        (None, "without a redirect_url"),
    ],
)
def test_a_redirect_to_a_host_not_allowed_is_refused(url: str | None, why: str) -> None:
    s = session()
    awaiting(s)
    out = s.handle(FrameReceived(1, logon_result(106, redirect_url=url)))
    assert s.state == "failed" and s.outcome()["reason"] == "redirect_refused"
    assert why in s.outcome()["detail"]
    assert not any(isinstance(c, OpenConnection) for c in out)


def test_redirect_hosts_replace_the_default_allow_list() -> None:
    s = session(redirect_hosts=("backup.example.org",))
    awaiting(s)
    s.handle(FrameReceived(1, logon_result(106, redirect_url="wss://eu.backup.example.org/")))
    assert s.state == "connecting"


def test_at_most_three_redirects_in_a_row() -> None:
    s = session()
    awaiting(s)
    for n in range(3):
        s.handle(FrameReceived(s.epoch, logon_result(106, redirect_url=f"wss://r{n}.cqg.com/")))
        assert s.state == "connecting"
        s.handle(Connected(s.epoch))
    s.handle(FrameReceived(s.epoch, logon_result(106, redirect_url="wss://r9.cqg.com/")))
    assert s.state == "failed" and s.outcome()["reason"] == "redirect_refused"
    assert "already 3 redirects in a row" in s.outcome()["detail"]


def test_registered_domain_of_a_host() -> None:
    assert registered_domain("demoapi.cqg.com") == "cqg.com"
    assert registered_domain("api.broker.co.uk") == "broker.co.uk"
    assert registered_domain("127.0.0.1") == "127.0.0.1"
    assert registered_domain("localhost") == "localhost"


# --- restore ------------------------------------------------------------------------------------


def test_a_settled_session_restores_at_once_with_restore_as_the_only_message() -> None:
    clock = FakeClock()
    s = session(clock)
    settled(s)
    out = s.handle(Closed(1, 1006))
    assert moves(out) == [("closed", "authenticated", "restoring")]
    assert OpenConnection(URL, 2) in out
    assert last(out).reason == "connection_lost"
    out = s.handle(Connected(2))
    sent = frames(out)
    assert len(sent) == 1 and sent[0].HasField("restore_or_join_session")
    restore = sent[0].restore_or_join_session
    assert restore.session_token == TOKEN and restore.client_app_id == "WebApiTest"
    assert (restore.protocol_version_major, restore.protocol_version_minor) == (2, 230)
    out = s.handle(FrameReceived(2, restore_result(0)))
    assert moves(out) == [("restore_result", "restoring", "authenticated")]
    assert [n.kind for n in notices(out, "restored")] == ["restored"]
    assert s.outcome()["restores"] == 1 and s.outcome()["logons"] == 1


def test_a_restore_is_not_a_logon_for_the_throttle() -> None:
    history = LogonHistory()
    clock = FakeClock()
    s = session(clock, history)
    settled(s)
    s.handle(Closed(1, 1006))
    s.handle(Connected(2))
    s.handle(FrameReceived(2, restore_result(0)))
    assert history.successes(clock.now) == 1


def test_an_unsettled_session_restores_after_backoff() -> None:
    s = session()
    authenticated(s)
    out = s.handle(Closed(1, 1006))
    assert moves(out) == [("closed", "authenticated", "backoff")]
    assert last(out).delay is not None and 0 < last(out).delay <= 0.5
    out = s.handle(TimerFired("backoff"))
    assert moves(out) == [("backoff_elapsed", "backoff", "restoring")]


def test_restore_retries_with_backoff_while_the_window_lasts() -> None:
    clock = FakeClock()
    s = session(clock)
    settled(s)
    s.handle(Closed(1, 1006))
    out = s.handle(ConnectFailed(2, "refused"))
    assert moves(out) == [("connect_failed", "restoring", "backoff")]
    clock.now += 1
    out = s.handle(TimerFired("backoff"))
    assert moves(out) == [("backoff_elapsed", "backoff", "restoring")]


@pytest.mark.parametrize(("code", "reason"), [
    (101, "unknown_session"), (102, "access_denied"), (103, "invalid_params"),
    (104, "restore_failure"), (150, "unknown_result"),
])
def test_a_refused_restore_falls_back_to_a_full_logon(code: int, reason: str) -> None:
    clock = FakeClock()
    s = session(clock)
    settled(s)
    clock.now += 120  # the last logon is long enough ago: no spacing
    s.handle(Closed(1, 1006))
    s.handle(Connected(2))
    out = s.handle(FrameReceived(2, restore_result(code)))
    assert moves(out) == [("restore_result", "restoring", "connecting")]
    assert last(out).reason == reason and last(out).error_code == code
    assert notices(out, "session_lost")
    assert s.session_token is None
    assert frames(s.handle(Connected(3)))[0].HasField("logon")
    out = s.handle(FrameReceived(3, logon_ok("second-token")))
    assert [n.kind for n in notices(out, "new_session")] == ["new_session"]
    assert s.outcome()["logons"] == 2


def test_a_refused_restore_waits_for_the_logon_spacing() -> None:
    clock = FakeClock()
    s = session(clock)
    settled(s)
    clock.now += 20
    s.handle(Closed(1, 1006))
    s.handle(Connected(2))
    out = s.handle(FrameReceived(2, restore_result(101)))
    assert moves(out) == [("restore_result", "restoring", "backoff")]
    assert last(out).reason == "logon_spacing"
    assert last(out).delay == pytest.approx(40.0)
    clock.now += 40
    out = s.handle(TimerFired("backoff"))
    assert moves(out) == [("backoff_elapsed", "backoff", "connecting")]


def test_past_the_restore_window_the_session_logs_on_afresh() -> None:
    clock = FakeClock()
    s = session(clock, restore_window=60.0)
    settled(s)
    clock.now += 100
    s.handle(Closed(1, 1006))
    s.handle(ConnectFailed(2, "refused"))
    clock.now += 61
    out = s.handle(TimerFired("backoff"))
    assert moves(out) == [("backoff_elapsed", "backoff", "connecting")]
    assert last(out).reason == "restore_window_passed"
    assert notices(out, "session_lost")
    assert frames(s.handle(Connected(3)))[0].HasField("logon")


def test_without_restore_a_lost_connection_means_a_full_logon() -> None:
    clock = FakeClock()
    s = session(clock, restore=False)
    settled(s)
    clock.now += 100
    out = s.handle(Closed(1, 1006))
    assert moves(out) == [("closed", "authenticated", "backoff")]
    assert last(out).delay == 0.0  # a settled session's first retry is immediate
    out = s.handle(TimerFired("backoff"))
    assert moves(out) == [("backoff_elapsed", "backoff", "connecting")]
    # Said as it is, not as a restore window that passed.
    assert last(out).reason == "restore_disabled"
    assert "restore=False" in (last(out).detail or "")
    assert notices(out, "session_lost")
    assert frames(s.handle(Connected(3)))[0].HasField("logon")


def test_a_logon_result_without_a_token_cannot_be_restored() -> None:
    clock = FakeClock()
    s = session(clock)
    settled(s, logon_ok(token=None))
    clock.now += 100
    out = s.handle(Closed(1, 1006))
    assert moves(out) == [("closed", "authenticated", "backoff")]


def test_the_restore_goes_to_the_server_the_session_lives_on() -> None:
    clock = FakeClock()
    s = session(clock)
    awaiting(s)
    s.handle(FrameReceived(1, logon_result(106, redirect_url="wss://api2.cqg.com/")))
    s.handle(Connected(2))
    s.handle(FrameReceived(2, logon_ok()))
    s.handle(TimerFired("stable"))
    out = s.handle(Closed(2, 1006))
    assert OpenConnection("wss://api2.cqg.com/", 3) in out


def test_a_restore_timeout_is_retried() -> None:
    s = session()
    settled(s)
    s.handle(Closed(1, 1006))
    s.handle(Connected(2))
    out = s.handle(TimerFired("login_timeout"))
    assert moves(out) == [("timeout", "restoring", "backoff")]
    assert "no restore result within 10 s" in (last(out).detail or "")


# --- throttle -----------------------------------------------------------------------------------


def test_logons_of_one_user_are_spaced_across_sessions() -> None:
    clock = FakeClock()
    history = LogonHistory()
    first = session(clock, history)
    authenticated(first)
    clock.now += 5
    second = session(clock, history)
    out = second.handle(Start())
    assert moves(out) == [("start", "disconnected", "backoff")]
    assert last(out).delay == pytest.approx(55.0)
    clock.now += 55
    assert moves(second.handle(TimerFired("backoff"))) == [
        ("backoff_elapsed", "backoff", "connecting")]


def test_the_daily_logon_cap_fails_the_session() -> None:
    clock = FakeClock()
    history = LogonHistory()
    for _ in range(3):
        history.attempted(clock.now)
        history.succeeded(clock.now)
        clock.now += 100
    s = session(clock, history, daily_logon_limit=3)
    s.handle(Start())
    assert s.state == "failed"
    assert s.outcome()["reason"] == "logon_quota_exhausted"
    assert s.outcome()["fault"] == "account"
    clock.now += 86_400
    assert session(clock, history, daily_logon_limit=3).handle(Start())
    assert history.successes(clock.now) == 0


# --- LoggedOff ----------------------------------------------------------------------------------


@pytest.mark.parametrize(("reason", "state", "why"), [
    (1, "disconnected", "logged_off"),
    (3, "failed", "forced_logoff"),
    (4, "displaced", "displaced"),
    (9, "failed", "forced_logoff"),
])
def test_logged_off_reasons(reason: int, state: str, why: str) -> None:
    s = session()
    settled(s)
    out = s.handle(FrameReceived(1, logged_off(reason, "bye")))
    assert s.state == state and s.outcome()["reason"] == why
    assert last(out).error_code == reason
    # The server closes next; that close belongs to a connection the session has left.
    assert not any(isinstance(c, OpenConnection) for c in out)
    assert not any(isinstance(c, OpenConnection) for c in s.handle(Closed(1, 1000)))


def test_logged_off_redirect_logs_on_at_the_new_url() -> None:
    s = session()
    settled(s)
    out = s.handle(FrameReceived(1, logged_off(2, redirect_url="wss://api3.cqg.com/")))
    assert moves(out) == [("logged_off", "authenticated", "connecting")]
    assert OpenConnection("wss://api3.cqg.com/", 2) in out
    assert s.session_token is None
    assert frames(s.handle(Connected(2)))[0].HasField("logon")


def test_a_logged_off_redirect_to_a_foreign_host_is_refused() -> None:
    s = session()
    settled(s)
    s.handle(FrameReceived(1, logged_off(2, redirect_url="wss://elsewhere.example/")))
    assert s.state == "failed" and s.outcome()["reason"] == "redirect_refused"


def test_stop_logs_off_and_waits_for_logged_off() -> None:
    s = session()
    authenticated(s)
    out = s.handle(Stop())
    assert moves(out) == [("stop", "authenticated", "logging_out")]
    assert frames(out)[0].HasField("logoff")
    out = s.handle(FrameReceived(1, logged_off(1)))
    assert moves(out) == [("logged_off", "logging_out", "disconnected")]
    assert s.outcome()["reason"] == "logged_out"


def test_stop_while_restoring_disconnects() -> None:
    s = session()
    settled(s)
    s.handle(Closed(1, 1006))
    out = s.handle(Stop())
    assert moves(out) == [("stop", "restoring", "disconnected")]
    assert s.outcome()["reason"] == "stopped"


# --- messages that change no state --------------------------------------------------------------


def test_one_frame_with_several_session_fields_is_handled_field_by_field() -> None:
    s = session()
    awaiting(s)
    frame = pb.ServerMsg()
    frame.ParseFromString(logon_ok())
    frame.user_messages.append(user_message("welcome", subject="hello"))
    frame.concurrent_connection_join_results.add(is_same_app_type=True)
    out = s.handle(FrameReceived(1, frame.SerializeToString()))
    assert s.state == "authenticated"
    [message] = notices(out, "user_message")
    assert "welcome" in message.detail and message.data["subject"] == "hello"
    assert notices(out, "concurrent_connection_join")[0].data == {"is_same_app_type": True}


def test_a_critical_user_message_is_the_brokers_fault() -> None:
    s = session()
    authenticated(s)
    out = s.handle(FrameReceived(1, server(user_messages=[user_message("rate", 1)])))
    assert notices(out, "user_message")[0].fault is not None


def test_a_server_ping_is_answered_at_once_in_server_time() -> None:
    clock = FakeClock()
    s = session(clock)
    authenticated(s, logon_ok(server_time=1000))
    clock.now += 2.5
    out = s.handle(FrameReceived(1, ping(ping_utc_time=3400)))
    [answer] = frames(out)
    assert answer.pong.token == "WebAPI Server Heartbeat"
    assert answer.pong.ping_utc_time == 3400
    assert answer.pong.pong_utc_time == 3500  # 1000 ms at logon + 2.5 s since
    assert not any(isinstance(c, Deliver) for c in out)


def test_a_ping_before_the_logon_result_is_not_answered() -> None:
    s = session()
    awaiting(s)
    out = s.handle(FrameReceived(1, ping()))
    assert frames(out) == []
    assert notices(out, "unexpected_frame")


def test_our_own_ping_and_its_pong() -> None:
    clock = FakeClock()
    s = session(clock)
    authenticated(s, logon_ok(server_time=0))
    clock.now += 20
    out = s.handle(TimerFired("ping"))
    [sent] = frames(out)
    assert sent.ping.token == "brokergate-1" and sent.ping.ping_utc_time == 20_000
    assert StartTimer("pong", 10.0) in out and StartTimer("ping", 20.0) in out
    clock.now += 0.25
    out = s.handle(FrameReceived(1, pong("brokergate-1", 20_000)))
    assert CancelTimer("pong") in out
    assert s.rtt == pytest.approx(0.25)


def test_no_pong_in_time_means_the_connection_is_dead() -> None:
    s = session()
    settled(s)
    s.handle(TimerFired("ping"))
    out = s.handle(TimerFired("pong"))
    assert moves(out) == [("timeout", "authenticated", "restoring")]
    assert "no Pong within 10 s" in (last(out).detail or "")


def test_inactivity_logs_off_cleanly_and_says_why() -> None:
    clock = FakeClock()
    s = session(clock)
    authenticated(s, logon_ok(inactivity_timeout=1))
    clock.now += 30
    s.application_sent()
    clock.now += 30
    out = s.handle(TimerFired("inactivity"))
    assert out == [StartTimer("inactivity", 30.0)]  # activity 30 s ago: 30 s to go
    clock.now += 30
    out = s.handle(TimerFired("inactivity"))
    assert moves(out) == [("inactive", "authenticated", "logging_out")]
    assert frames(out)[0].logoff.text_message == "brokergate: inactivity timeout"
    assert "sent nothing for 1 minutes" in notices(out, "inactivity_logoff")[0].detail
    s.handle(FrameReceived(1, logged_off(1)))
    assert s.state == "disconnected" and s.outcome()["reason"] == "inactivity_timeout"


def test_inactivity_is_not_enforced_when_turned_off() -> None:
    s = session(enforce_inactivity_timeout=False)
    awaiting(s)
    out = s.handle(FrameReceived(1, logon_ok(inactivity_timeout=1)))
    assert not any(isinstance(c, StartTimer) and c.name == "inactivity" for c in out)


# --- application traffic ------------------------------------------------------------------------


def test_frames_with_application_fields_go_to_the_application_raw() -> None:
    s = session()
    authenticated(s)
    raw = UNKNOWN_FIELD + ping()
    out = s.handle(FrameReceived(1, raw))
    [delivered] = [c for c in out if isinstance(c, Deliver)]
    message = delivered.message
    assert isinstance(message, CqgServerMessage)
    assert message.raw == raw and message.session.ping.ping_utc_time == 777
    assert len(frames(out)) == 1  # the ping in it was answered too


def test_application_messages_are_checked_before_sending() -> None:
    assert codec.application_message(UNKNOWN_FIELD) == UNKNOWN_FIELD
    assert codec.application_message(pb.ClientMsg(ping=pb.Ping(ping_utc_time=1))) == (
        pb.ClientMsg(ping=pb.Ping(ping_utc_time=1)).SerializeToString())
    for bad, why in [
        (pb.ClientMsg(logoff=pb.Logoff()), "logoff is brokergate's to send"),
        (b"", "empty"),
        (b"\xff\xff\xff", "do not parse"),
        ("text", "expected ClientMsg bytes"),
    ]:
        with pytest.raises(codec.InvalidClientMessage, match=why):
            codec.application_message(bad)


# --- bad frames ---------------------------------------------------------------------------------


@pytest.mark.parametrize("frame", [b"\xff\xff", "a text frame",
                                   incomplete(logon_result=pb.LogonResult(result_code=0))])
def test_a_malformed_frame_before_the_logon_result_fails(frame: bytes | str) -> None:
    s = session()
    awaiting(s)
    s.handle(FrameReceived(1, frame))
    assert s.state == "failed" and s.outcome()["reason"] == "protocol_error"
    assert s.outcome()["fault"] == "broker"


def test_a_missing_required_field_is_named() -> None:
    s = session()
    awaiting(s)
    s.handle(FrameReceived(1, incomplete(logon_result=pb.LogonResult(result_code=0))))
    assert "LogonResult without its required base_time" in s.outcome()["detail"]


def test_a_malformed_frame_while_authenticated_restores() -> None:
    s = session()
    settled(s)
    out = s.handle(FrameReceived(1, b"\xff\xff"))
    assert moves(out) == [("malformed_frame", "authenticated", "restoring")]


def test_late_results_are_ignored_with_a_notice() -> None:
    s = session()
    authenticated(s)
    out = s.handle(FrameReceived(1, restore_result(0)))
    assert s.state == "authenticated" and notices(out, "unexpected_frame")
    assert s.base_time == BASE_TIME


def test_every_policy_row_is_shown_once() -> None:
    rows = policy.policy_rows()
    signals = [r.signal for r in rows]
    assert len(signals) == len(set(signals))
    assert "LogonResult 103 NO_ONETIME_PASSWORD" in signals
    assert "LoggedOff reason 4 REASSIGNED" in signals


def test_no_secret_in_the_repr_of_a_configuration_or_a_session() -> None:
    c = config(password=Secret("pw-Zz9"), otp_seed=Secret(SEED), otp_provider=None)
    s = CqgSession(c, clock=FakeClock())
    authenticated(s)
    text = repr(c) + str(c) + repr(s) + str(s.outcome())
    assert "pw-Zz9" not in text and SEED not in text and TOKEN not in text
    assert "logon=password" in repr(c)


# --- hostile input ------------------------------------------------------------------------------


def _not_utf8(frame: bytes, text: str) -> bytes:
    raw = text.encode()
    return frame.replace(raw, b"\xff" + raw[1:], 1)


@pytest.mark.parametrize(("frame", "what"), [
    (_not_utf8(logon_result(101, "Access denied"), "Access"), "LogonResult whose text_message"),
    (_not_utf8(logon_ok(), BASE_TIME), "LogonResult whose base_time"),
    (_not_utf8(logon_ok(), TOKEN), "LogonResult whose session_token"),
    (_not_utf8(logon_result(106, redirect_url="wss://api2.cqg.com/"), "wss"),
     "LogonResult whose redirect_url"),
])
def test_a_logon_result_string_that_is_not_utf8_is_a_malformed_frame(frame: bytes,
                                                                     what: str) -> None:
    s = session()
    awaiting(s)
    s.handle(FrameReceived(1, frame))
    assert (s.state, s.outcome()["reason"], s.outcome()["fault"]) == (
        "failed", "protocol_error", "broker")
    assert s.outcome()["detail"] == f"CQG sent an invalid frame: a {what} is not valid UTF-8"


def test_a_pong_whose_token_is_not_utf8_does_not_raise() -> None:
    s = session()
    settled(s)
    out = s.handle(FrameReceived(1, _not_utf8(pong("brokergate-1", 5), "brokergate")))
    assert moves(out) == [("malformed_frame", "authenticated", "restoring")]
    assert s.outcome()["reason"] == "protocol_error"


@pytest.mark.parametrize(("frame", "detail"), [
    (logon_result(999, "new"), "CQG LogonResult 999: 'new'"),
    (logged_off(77), "CQG LoggedOff reason 77"),
])
def test_results_name_cqg(frame: bytes, detail: str) -> None:
    s = session()
    awaiting(s)
    s.handle(FrameReceived(1, frame))
    assert s.state == "failed" and s.outcome()["detail"] == detail


def test_a_refused_redirect_says_what_cqg_answered() -> None:
    s = session()
    awaiting(s)
    s.handle(FrameReceived(1, logon_result(106, redirect_url="wss://evil.example.net/")))
    assert s.outcome()["detail"].startswith("CQG LogonResult 106; redirect to evil.example.net")


def test_a_connection_cqg_redirected_to_names_cqg_when_it_fails() -> None:
    s = session()
    awaiting(s)
    s.handle(FrameReceived(1, logon_result(106, redirect_url="wss://api2.cqg.com/")))
    out = s.handle(ConnectFailed(s.epoch, "connection refused"))
    assert last(out).detail == ("connection refused (at wss://api2.cqg.com/, where CQG "
                                "redirected the session)")


@pytest.mark.parametrize(("setup", "code", "state", "reason"), [
    ("awaiting", 1009, "backoff", "frame_too_large"),
    ("settled", 1009, "restoring", "frame_too_large"),
    ("awaiting", 1007, "failed", "protocol_error"),
    ("awaiting", 1002, "failed", "protocol_error"),
    ("settled", 1002, "restoring", "protocol_error"),
])
def test_frames_the_websocket_layer_refused_are_blamed_on_cqg(setup: str, code: int,
                                                              state: str, reason: str) -> None:
    s = session()
    awaiting(s) if setup == "awaiting" else settled(s)
    s.handle(Closed(1, code, "CQG sent something"))
    assert (s.state, s.outcome()["reason"], s.outcome()["fault"]) == (state, reason, "broker")


# --- the fleet: standby, the lease and its handover ----------------------------------------------

WALL = datetime(2026, 11, 21, 3, 0, 10, tzinfo=UTC)
#: The wall clock's now, in epoch seconds: what a handover's logon history is written in.
EPOCH = WALL.timestamp()


def fleet_session(clock: FakeClock | None = None, history: LogonHistory | None = None,
                  **overrides: Any) -> CqgSession:
    return CqgSession(config(**overrides), rng=random.Random(7), clock=clock or FakeClock(),
                      history=history, wall=lambda: WALL)


def standby(s: CqgSession, holder: str = "host-b/pid 4242") -> list[Command]:
    out = s.handle(Standby(holder))
    assert s.state == "standby"
    return out


def others(commands: list[Command]) -> list[Command]:
    return [c for c in commands if not isinstance(c, Transitioned)]


def test_a_standby_waits_and_says_who_holds_the_user() -> None:
    s = fleet_session()
    out = standby(s)
    assert moves(out) == [("standby", "disconnected", "standby")]
    assert s.reason == "standby" and "host-b/pid 4242" in (s.detail or "")
    assert others(out) == [] and s.handover() is None  # nothing to leave: never logged on


def test_a_lease_granted_without_a_handover_logs_on_as_start_does() -> None:
    started, granted = fleet_session(), fleet_session()
    from_start = started.handle(Start())
    standby(granted)
    from_lease = granted.handle(LeaseGranted())
    assert moves(from_lease) == [("lease_granted", "standby", "connecting")]
    assert others(from_lease) == others(from_start)
    assert granted.handle(Connected(1)) == started.handle(Connected(1))


def test_a_lease_granted_with_only_an_access_token_provider_fetches_one_as_start_does() -> None:
    overrides: dict[str, Any] = {"user_name": None, "password": None,
                                 "access_token_provider": lambda: "a"}
    started, granted = fleet_session(**overrides), fleet_session(**overrides)
    from_start = started.handle(Start())
    standby(granted)
    from_lease = granted.handle(LeaseGranted())
    assert moves(from_lease) == [("lease_granted", "standby", "refreshing_credentials")]
    assert others(from_lease) == others(from_start)


def test_a_handed_over_session_is_restored_with_restore_as_the_only_message() -> None:
    s = fleet_session()
    standby(s)
    other = "wss://api2.cqg.com/"  # where CQG had redirected the previous holder
    out = s.handle(LeaseGranted(handover={"session_token": "handed-tok", "url": other}))
    assert moves(out) == [("lease_granted", "standby", "restoring")]
    assert OpenConnection(other, 1) in out
    assert s.reason == "session_handover" and "handed-tok" in s.secrets()
    out = s.handle(Connected(1))
    sent = frames(out)
    assert len(sent) == 1 and sent[0].HasField("restore_or_join_session")
    assert sent[0].restore_or_join_session.session_token == "handed-tok"
    out = s.handle(FrameReceived(1, restore_result(0)))
    assert moves(out) == [("restore_result", "restoring", "authenticated")]
    assert s.outcome()["logons"] == 0 and s.outcome()["restores"] == 1


def test_a_refused_handed_over_session_logs_on_at_the_configured_url() -> None:
    s = fleet_session(min_logon_interval=0.0)
    standby(s)
    s.handle(LeaseGranted(handover={"session_token": "handed-tok",
                                    "url": "wss://api2.cqg.com/"}))
    s.handle(Connected(1))
    out = s.handle(FrameReceived(1, restore_result(103)))
    assert moves(out) == [("restore_result", "restoring", "connecting")]
    assert OpenConnection(URL, 2) in out


def test_a_handover_at_a_url_the_session_would_not_go_to_is_not_restored() -> None:
    s = fleet_session()
    standby(s)
    out = s.handle(LeaseGranted(handover={"session_token": "handed-tok",
                                          "url": "wss://evil.example/"}))
    assert moves(out) == [("lease_granted", "standby", "connecting")]
    assert OpenConnection(URL, 1) in out
    [ignored] = notices(out, "handover_ignored")
    assert "evil.example" in ignored.detail and "handed-tok" not in ignored.detail
    assert "handed-tok" in s.secrets()  # scrubbed all the same


def test_a_handover_without_a_url_restores_at_the_configured_one() -> None:
    s = fleet_session()
    standby(s)
    out = s.handle(LeaseGranted(handover={"session_token": "handed-tok"}))
    assert s.state == "restoring" and OpenConnection(URL, 1) in out


def test_with_restore_off_a_handed_over_session_is_not_restored() -> None:
    s = fleet_session(restore=False)
    standby(s)
    out = s.handle(LeaseGranted(handover={"session_token": "handed-tok", "url": URL}))
    assert moves(out) == [("lease_granted", "standby", "connecting")]


def test_the_handed_over_logon_history_holds_the_spacing() -> None:
    clock = FakeClock()
    s = fleet_session(clock)  # min_logon_interval 60 s
    standby(s)
    history = {"last_attempt": EPOCH - 10.0, "successes": [EPOCH - 10.0]}
    out = s.handle(LeaseGranted(handover={"logon_history": history}))
    assert moves(out) == [("lease_granted", "standby", "backoff")]
    assert last(out).delay == pytest.approx(50.0)
    assert StartTimer("backoff", pytest.approx(50.0)) in out  # type: ignore[arg-type]
    assert s.reason == "logon_spacing"
    clock.now += 50.0
    out = s.handle(TimerFired("backoff"))
    assert moves(out) == [("backoff_elapsed", "backoff", "connecting")]


def test_the_handed_over_logon_history_holds_the_daily_cap() -> None:
    s = fleet_session(daily_logon_limit=3)
    standby(s)
    history = {"last_attempt": EPOCH - 3600.0,
               "successes": [EPOCH - 80_000.0, EPOCH - 7200.0, EPOCH - 3600.0]}
    out = s.handle(LeaseGranted(handover={"logon_history": history}))
    assert moves(out) == [("lease_granted", "standby", "failed")]
    assert s.outcome()["reason"] == "logon_quota_exhausted"
    assert [c for c in out if isinstance(c, OpenConnection)] == []


def test_a_malformed_logon_history_is_ignored_with_a_notice() -> None:
    s = fleet_session()
    standby(s)
    out = s.handle(LeaseGranted(handover={"logon_history": {"last_attempt": "soon"}}))
    assert notices(out, "handover_ignored") and s.state == "connecting"


def test_a_handover_goes_from_one_process_to_the_next_through_wall_clock_time() -> None:
    first_clock, next_clock = FakeClock(), FakeClock()
    next_clock.now = 50_000.0  # another process: another monotonic clock
    first = fleet_session(first_clock)
    authenticated(first)
    left = first.handover()
    assert left is not None
    assert left["session_token"] == TOKEN and left["url"] == URL
    assert left["logon_history"] == {"last_attempt": EPOCH, "successes": [EPOCH]}
    successor = fleet_session(next_clock)
    standby(successor)
    successor.handle(LeaseGranted(handover=left))
    assert successor.state == "restoring" and TOKEN in successor.secrets()
    assert successor.history.wait(next_clock.now, 60.0) == pytest.approx(60.0)
    assert successor.history.successes(next_clock.now) == 1


def test_a_lost_lease_closes_without_a_logoff_and_keeps_the_session_restorable() -> None:
    s = fleet_session()
    settled(s, logon_ok(inactivity_timeout=30))
    s.handle(TimerFired("ping"))  # a Pong is due
    out = s.handle(LeaseLost("another process took the lease"))
    assert moves(out) == [("lease_lost", "authenticated", "standby")]
    assert frames(out) == []  # no Logoff: the session stays for the next holder to restore
    assert CloseConnection(1, 1000, "standby") in out
    for timer in ("stable", "ping", "pong", "inactivity"):
        assert CancelTimer(timer) in out
    assert s.reason == "lease_lost"
    left = s.handover()
    assert left is not None and left["session_token"] == TOKEN
    # Granted back without another's handover, the session restores its own.
    out = s.handle(LeaseGranted())
    assert moves(out) == [("lease_granted", "standby", "restoring")]


@pytest.mark.parametrize("where", ["connecting", "awaiting_login_response", "restoring",
                                   "refreshing_credentials", "backoff"])
def test_a_lost_lease_stops_every_state_that_would_write_or_log_on(where: str) -> None:
    s = fleet_session(min_logon_interval=0.0)
    if where == "restoring":
        settled(s)
        s.handle(Closed(1, 1006))
    elif where == "refreshing_credentials":
        s = fleet_session(user_name=None, password=None, access_token_provider=lambda: "a")
        s.handle(Start())
    else:
        s.handle(Start())
        if where != "connecting":
            s.handle(Connected(1))
        if where == "backoff":
            s.handle(Closed(1, 1006))
    assert s.state == where
    out = s.handle(LeaseLost("taken"))
    assert moves(out) == [("lease_lost", where, "standby")]
    assert frames(out) == []
    assert s.handle(TimerFired("backoff")) == [] and s.state == "standby"


def test_a_lease_lost_while_logging_off_ends_without_waiting() -> None:
    s = fleet_session()
    authenticated(s)
    s.handle(Stop())
    out = s.handle(LeaseLost("taken"))
    assert moves(out) == [("lease_lost", "logging_out", "disconnected")]
    assert "logout not confirmed" in (s.detail or "")
    assert s.handover() is not None and "session_token" not in (s.handover() or {})


def test_a_session_that_logged_off_has_no_session_to_restore_as_a_standby() -> None:
    s = fleet_session()
    authenticated(s)
    s.handle(Stop())
    s.handle(FrameReceived(1, logged_off(1)))
    assert s.state == "disconnected"
    standby(s)
    assert s.session_token is None
    out = s.handle(LeaseGranted())
    assert s.state in ("connecting", "backoff")
    assert [c for c in out if isinstance(c, OpenConnection | StartTimer)]


def test_a_login_that_failed_elsewhere_ends_the_standby_failed_even_when_locked_out() -> None:
    s = fleet_session()
    standby(s)
    out = s.handle(SharedOutcome("locked_out", "locked_out", Fault.ACCOUNT, "CQG said so"))
    assert moves(out) == [("shared_failure", "standby", "failed")]  # CQG has no locked_out
    assert (s.reason, s.fault, s.detail) == ("locked_out", Fault.ACCOUNT, "CQG said so")


def test_a_standby_stops() -> None:
    s = fleet_session()
    standby(s)
    out = s.handle(Stop())
    assert moves(out) == [("stop", "standby", "disconnected")] and frames(out) == []
    assert s.reason == "stopped"
