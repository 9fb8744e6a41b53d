"""The QST machine as event lists in, commands out: no sockets, no clocks.

Every row of the QST policy table has a test here.
"""

from __future__ import annotations

import random

import pytest
from qst_frames import error, login_ok, logout_ok, provisioning, translated

from brokergate.machines import (
    Backoff,
    CancelTimer,
    CloseConnection,
    Closed,
    Command,
    Connected,
    ConnectFailed,
    Deliver,
    Fault,
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
from brokergate.machines.qst import Coalescing, QstConfig, QstSession
from brokergate.qst import pb

URL = "ws://127.0.0.1:9000/"


def config(**overrides: object) -> QstConfig:
    values: dict[str, object] = {
        "url": URL, "user_name": "alice", "password": Secret("pw-1"), "client_id": "cid",
    }
    values.update(overrides)
    return QstConfig(**values)  # type: ignore[arg-type]


def session(**overrides: object) -> QstSession:
    return QstSession(config(**overrides), rng=random.Random(7))


def transitions(commands: list[Command]) -> list[tuple[str, str, str]]:
    return [(c.trigger, c.src, c.dst) for c in commands if isinstance(c, Transitioned)]


def last(commands: list[Command]) -> Transitioned:
    return [c for c in commands if isinstance(c, Transitioned)][-1]


def awaiting(s: QstSession) -> None:
    s.handle(Start())
    s.handle(Connected(s.epoch))
    assert s.state == "awaiting_login_response"


def authenticated(s: QstSession) -> None:
    awaiting(s)
    s.handle(FrameReceived(s.epoch, login_ok()))
    assert s.state == "authenticated"


# --- the happy path --------------------------------------------------------------------------


def test_start_opens_a_connection_then_sends_the_login_alone() -> None:
    s = session()
    out = s.handle(Start())
    assert out[:2] == [OpenConnection(URL, 1), StartTimer("connect_timeout", 10.0)]
    assert transitions(out) == [("start", "disconnected", "connecting")]
    out = s.handle(Connected(1))
    sends = [c for c in out if isinstance(c, SendFrame)]
    assert len(sends) == 1 and sends[0].description == "LoginRequest"
    req = pb.Request.FromString(sends[0].data)  # type: ignore[arg-type]
    assert req.request_id == 1 and req.WhichOneof("request") == "login"
    assert req.login.user_name == "alice" and req.login.password.value == "pw-1"
    assert req.login.password.version == 1 and req.login.client_id == "cid"
    assert StartTimer("login_timeout", 10.0) in out
    assert CancelTimer("connect_timeout") in out


def test_user_preferences_absent_unless_configured() -> None:
    s = session()
    s.handle(Start())
    req = pb.Request.FromString(_login_bytes(s.handle(Connected(1))))
    assert not req.login.HasField("user_preferences")
    assert not req.login.HasField("white_label_code") and not req.login.HasField("local_ip")


def test_uncoalesced_is_sent_explicitly_not_dropped_as_a_default() -> None:
    s = session(coalescing_interval=Coalescing.UNCOALESCED, coalesce_last_trade=False,
                white_label_code="CVS", local_ip="192.0.2.1")
    s.handle(Start())
    login = pb.Request.FromString(_login_bytes(s.handle(Connected(1)))).login
    assert login.user_preferences.HasField("coalescing_interval")
    assert login.user_preferences.coalescing_interval == pb.UNCOALESCED
    assert login.user_preferences.HasField("coalesce_last_trade")
    assert login.white_label_code == "CVS" and login.local_ip == "192.0.2.1"


def _login_bytes(out: list[Command]) -> bytes:
    data = next(c.data for c in out if isinstance(c, SendFrame))
    assert isinstance(data, bytes)
    return data


def test_login_response_authenticates_and_records_the_grant() -> None:
    s = session()
    awaiting(s)
    out = s.handle(FrameReceived(1, login_ok(pb._100_MS, True)))
    assert transitions(out) == [("login_response", "awaiting_login_response", "authenticated")]
    assert s.granted == {"coalescing_interval": "_100_MS", "coalesce_last_trade": True}
    assert StartTimer("stable", 10.0) in out and CancelTimer("login_timeout") in out


def test_provisioning_messages_end_in_provisioning_with_the_messages() -> None:
    s = session()
    awaiting(s)
    out = s.handle(FrameReceived(1, provisioning("Exchange agreement", "Risk disclosure")))
    assert s.state == "provisioning" and s.reason == "pending_agreements"
    assert [m.title for m in s.provisioning] == ["Exchange agreement", "Risk disclosure"]
    assert s.fault is Fault.ACCOUNT
    assert CloseConnection(1, 1000, "provisioning") in out
    assert s.outcome()["provisioning_messages"][0]["title"] == "Exchange agreement"


# --- the error table -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "text", "state", "reason"),
    [
        (1, "Login failed. The credentials were not valid (1)", "failed", "invalid_credentials"),
        (2, "Login failed. TOTP Code Missing (2)", "failed", "second_factor_missing"),
        (3, "Login failed. E-Mail validation pending (3)", "failed", "email_validation_pending"),
        (4, "Login failed. 2FA key validation pending (4)", "failed",
         "second_factor_key_validation_pending"),
        (5, "Login failed. Reached limit of failed logins, please contact support (5)",
         "locked_out", "account_locked"),
        (77, "Login failed. Something new (77)", "failed", "unknown_error"),
        (None, "Populate all mandatory fields: username and password are mandatory.", "failed",
         "missing_mandatory_fields"),
        (None, "Unauthorized client_id.", "failed", "unauthorized_client_id"),
        # A future server that sends only text: the code is read from the text.
        (None, "Login failed. The credentials were not valid (1)", "failed",
         "invalid_credentials"),
        (None, "Login failed. Reached limit of failed logins, please contact support (5)",
         "locked_out", "account_locked"),
        (None, "something else entirely", "failed", "unknown_error"),
        (None, None, "failed", "unknown_error"),
    ],
)
def test_final_error_answers(code: int | None, text: str | None, state: str, reason: str) -> None:
    s = session()
    awaiting(s)
    out = s.handle(FrameReceived(1, error(code, text)))
    assert s.state == state and s.reason == reason
    assert CloseConnection(1, 1000, state) in out
    # Never retried: no timer that would lead to another login.
    assert not [c for c in out if isinstance(c, StartTimer)]
    rec = last(out)
    assert rec.trigger == "error_message" and rec.reason == reason
    if code is not None:
        assert rec.error_code == code
    if text:
        assert text in (s.detail or "")


def test_unknown_code_keeps_the_code() -> None:
    s = session()
    awaiting(s)
    out = s.handle(FrameReceived(1, error(77, "new")))
    assert last(out).error_code == 77 and s.fault is Fault.BROKER


def test_invalid_credentials_blame_the_configuration() -> None:
    s = session()
    awaiting(s)
    s.handle(FrameReceived(1, error(1, "Login failed. The credentials were not valid (1)")))
    assert s.fault is Fault.CONFIGURATION


def test_server_error_code_6_is_retried_with_backoff() -> None:
    s = session()
    awaiting(s)
    out = s.handle(FrameReceived(1, error(6, "Login failed. Server error (6)")))
    assert s.state == "backoff" and s.reason == "server_error"
    timer = next(c for c in out if isinstance(c, StartTimer))
    assert timer.name == "backoff" and 0 <= timer.seconds <= 0.5
    assert last(out).delay == timer.seconds
    out = s.handle(TimerFired("backoff"))
    assert s.state == "connecting" and OpenConnection(URL, 2) in out and s.attempt == 2


def test_code_1000_is_retried_at_most_three_attempts_then_fails() -> None:
    s = session()
    for attempt in (1, 2, 3):
        if attempt == 1:
            awaiting(s)
        else:
            s.handle(TimerFired("backoff"))
            s.handle(Connected(s.epoch))
        assert s.attempt == attempt
        s.handle(FrameReceived(s.epoch, error(1000, "Login failed (1000)")))
    assert s.state == "failed" and s.reason == "login_failed_other"
    assert "after 3 attempts" in (s.detail or "")


def test_attempt_bound_gives_up() -> None:
    s = session(backoff=Backoff(max_attempts=2))
    awaiting(s)
    s.handle(FrameReceived(1, error(6, "Login failed. Server error (6)")))
    s.handle(TimerFired("backoff"))
    out = s.handle(ConnectFailed(2, "connection refused"))
    assert s.state == "failed" and s.reason == "gave_up"
    assert "after 2 attempts" in (s.detail or "") and "connection refused" in (s.detail or "")
    assert last(out).trigger == "connect_failed"


# --- closes and timeouts ---------------------------------------------------------------------


def test_close_4101_is_displaced_and_never_reconnects() -> None:
    s = session()
    authenticated(s)
    out = s.handle(Closed(1, 4101, "connected from another device"))
    assert s.state == "displaced" and s.reason == "displaced"
    assert not [c for c in out if isinstance(c, OpenConnection | StartTimer)]
    assert last(out).close_code == 4101


def test_close_4102_reconnects_with_backoff() -> None:
    s = session()
    authenticated(s)
    s.handle(TimerFired("stable"))
    out = s.handle(Closed(1, 4102, "slow reader"))
    assert s.state == "backoff" and s.reason == "slow_reader"
    delay = next(c for c in out if isinstance(c, StartTimer)).seconds
    assert delay > 0  # a slow reader is not reconnected in a hurry


def test_drop_while_authenticated_reconnects_at_once_then_backs_off() -> None:
    s = session()
    authenticated(s)
    s.handle(TimerFired("stable"))
    out = s.handle(Closed(1, 1006))
    assert s.state == "backoff" and last(out).delay == 0.0
    s.handle(TimerFired("backoff"))
    s.handle(Connected(2))
    s.handle(FrameReceived(2, login_ok()))
    # Dropped again before the stability window passed: this time it waits.
    out = s.handle(Closed(2, 1006))
    assert s.state == "backoff" and (last(out).delay or 0) > 0


def test_stability_window_resets_the_attempt_count() -> None:
    s = session(backoff=Backoff(max_attempts=2))
    authenticated(s)
    for epoch in (1, 2, 3, 4):
        s.handle(TimerFired("stable"))
        assert s.attempt == 0
        s.handle(Closed(epoch, 1006))
        s.handle(TimerFired("backoff"))
        s.handle(Connected(s.epoch))
        s.handle(FrameReceived(s.epoch, login_ok()))
    # Four drops with max_attempts=2, yet still up: each drop came after a stable period.
    assert s.state == "authenticated" and s.epoch == 5


@pytest.mark.parametrize("state", ["connecting", "awaiting_login_response"])
def test_timeouts_and_drops_while_logging_in_are_retried(state: str) -> None:
    s = session()
    s.handle(Start())
    if state == "awaiting_login_response":
        s.handle(Connected(1))
        timer = "login_timeout"
    else:
        timer = "connect_timeout"
    out = s.handle(TimerFired(timer))
    assert s.state == "backoff" and s.reason == "timeout"
    assert CloseConnection(1, 1000, "retrying: timeout") in out
    assert f"{timer.replace('_', ' ')} after 10 s" in (s.detail or "")
    s.handle(TimerFired("backoff"))
    s.handle(Closed(2, 1006))
    assert s.state == "backoff" and s.reason == "connection_lost"


def test_connect_failure_is_retried() -> None:
    s = session()
    s.handle(Start())
    s.handle(ConnectFailed(1, "connection refused"))
    assert s.state == "backoff" and s.reason == "connect_failed" and s.fault is Fault.NETWORK


# --- configuration ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "problem"),
    [
        ({"user_name": ""}, "user_name is missing"),
        ({"password": Secret("")}, "password is missing"),
        ({"client_id": ""}, "client_id is missing"),
        ({"url": "ws://broker.example.com/"}, "not a loopback host"),
        ({"url": "http://127.0.0.1/"}, "must start with wss://"),
        ({"url": "wss://user:pw@broker.example.com/"}, "must not carry credentials"),
        ({"login_timeout": 0}, "login_timeout must be positive"),
        ({"ping_interval": 0}, "ping_interval must be positive"),
    ],
)
def test_invalid_config_fails_without_connecting(overrides: dict[str, object],
                                                 problem: str) -> None:
    s = session(**overrides)
    out = s.handle(Start())
    assert s.state == "failed" and s.reason == "invalid_config"
    assert s.fault is Fault.CONFIGURATION and problem in (s.detail or "")
    assert not [c for c in out if isinstance(c, OpenConnection)]


def test_wss_to_a_remote_host_is_accepted() -> None:
    assert config(url="wss://md.example.com/api").problems() == []


# --- after login -----------------------------------------------------------------------------


def test_application_responses_are_delivered_by_request_id() -> None:
    s = session()
    authenticated(s)
    out = s.handle(FrameReceived(1, translated(20, "ESZ6")))
    (d,) = [c for c in out if isinstance(c, Deliver)]
    assert d.request_id == 20 and d.message.records[0].symbol == "ESZ6"
    out = s.handle(FrameReceived(1, error(9, "no such thing", request_id=21)))
    (d,) = [c for c in out if isinstance(c, Deliver)]
    assert d.request_id == 21 and d.error is not None and d.error.code == 9


def test_unsolicited_login_answer_after_login_is_a_notice_not_a_transition() -> None:
    s = session()
    authenticated(s)
    out = s.handle(FrameReceived(1, login_ok()))
    assert s.state == "authenticated" and not transitions(out)
    assert [c.kind for c in out if isinstance(c, Notice)] == ["unexpected_frame"]


@pytest.mark.parametrize("frame", [b"\xff\xff\xff\xff", b"", "a text frame", login_ok()[:-1]])
def test_malformed_frame_during_login_fails_naming_the_broker(frame: bytes | str) -> None:
    s = session()
    awaiting(s)
    s.handle(FrameReceived(1, frame))
    assert s.state == "failed" and s.reason == "protocol_error" and s.fault is Fault.BROKER
    assert (s.detail or "").startswith("QST sent an invalid frame")


def test_answer_to_another_request_before_login_is_a_protocol_error() -> None:
    s = session()
    awaiting(s)
    s.handle(FrameReceived(1, translated(99, "ESZ6")))
    assert s.state == "failed" and s.reason == "protocol_error"


def test_malformed_frame_after_login_reconnects() -> None:
    s = session()
    authenticated(s)
    s.handle(FrameReceived(1, b"\x00\x01garbage"))
    assert s.state == "backoff" and s.reason == "protocol_error"


# --- stopping --------------------------------------------------------------------------------


def test_stop_when_authenticated_logs_out_then_disconnects() -> None:
    s = session()
    authenticated(s)
    out = s.handle(Stop())
    assert s.state == "logging_out"
    req = pb.Request.FromString(next(c.data for c in out if isinstance(c, SendFrame)))  # type: ignore[arg-type]
    assert req.WhichOneof("request") == "logout"
    out = s.handle(FrameReceived(1, logout_ok()))
    assert s.state == "disconnected" and s.reason == "logged_out"
    assert CloseConnection(1, 1000, "disconnected") in out


@pytest.mark.parametrize("event", [Closed(1, 1000), TimerFired("logout_timeout")])
def test_logout_ends_on_close_or_timeout(event: Closed | TimerFired) -> None:
    s = session()
    authenticated(s)
    s.handle(Stop())
    s.handle(event)
    assert s.state == "disconnected"


def test_stop_while_backing_off_disconnects() -> None:
    s = session()
    s.handle(Start())
    s.handle(ConnectFailed(1, "refused"))
    out = s.handle(Stop())
    assert s.state == "disconnected" and s.reason == "stopped"
    assert CancelTimer("backoff") in out


def test_events_in_terminal_states_change_nothing() -> None:
    s = session()
    awaiting(s)
    s.handle(FrameReceived(1, error(5, "locked (5)")))
    for event in (Closed(1, 1006), TimerFired("backoff"), Stop(), Start(), Connected(1)):
        assert s.handle(event) == [] and s.state == "locked_out"


def test_repr_hides_the_password() -> None:
    s = session(password=Secret("hunter2-xyz"))
    assert "hunter2-xyz" not in repr(s) and "hunter2-xyz" not in repr(s.config)


# --- hostile input ------------------------------------------------------------------------------


def _not_utf8(frame: bytes, text: str) -> bytes:
    raw = text.encode()
    return frame.replace(raw, b"\xff" + raw[1:], 1)


@pytest.mark.parametrize(("frame", "field"), [
    (_not_utf8(error(6, "Server error (6)"), "Server"), "error.message"),
    (_not_utf8(error(None, "Populate all mandatory fields"), "Populate"), "error.message"),
    (_not_utf8(provisioning("Terms"), "Terms"), "provisioning_messages.messages.title"),
])
def test_a_string_field_that_is_not_utf8_is_a_malformed_frame(frame: bytes, field: str) -> None:
    # protobuf hands such a field back as bytes; the policy's text matching would raise on it.
    s = session()
    awaiting(s)
    s.handle(FrameReceived(1, frame))
    assert s.state == "failed" and s.reason == "protocol_error" and s.fault is Fault.BROKER
    assert s.detail == f"QST sent an invalid frame: a Response whose {field} is not valid UTF-8"


def test_an_answer_that_is_not_utf8_after_login_reconnects() -> None:
    s = session()
    authenticated(s)
    s.handle(FrameReceived(1, _not_utf8(translated(16, "ESZ6"), "ESZ6")))
    assert s.state == "backoff" and s.reason == "protocol_error" and s.fault is Fault.BROKER


@pytest.mark.parametrize("code", [1002, 1007])
def test_an_invalid_websocket_frame_is_a_malformed_frame(code: int) -> None:
    s = session()
    awaiting(s)
    s.handle(Closed(1, code, "QST broke the WebSocket protocol: an invalid frame"))
    assert (s.state, s.reason, s.fault) == ("failed", "protocol_error", Fault.BROKER)
    assert s.detail == f"close {code} QST broke the WebSocket protocol: an invalid frame"
    s = session()
    authenticated(s)
    s.handle(Closed(1, code))
    assert (s.state, s.reason, s.fault) == ("backoff", "protocol_error", Fault.BROKER)


def test_a_frame_above_the_size_limit_is_retried_and_blamed_on_qst() -> None:
    s = session()
    awaiting(s)
    s.handle(Closed(1, 1009, "QST sent a frame larger than max_frame_size (4096 bytes)"))
    assert (s.state, s.reason, s.fault) == ("backoff", "frame_too_large", Fault.BROKER)
    assert "QST sent a frame larger than max_frame_size" in (s.detail or "")


# --- the fleet: standby, the lease, a login another process tried ------------------------------


def standby(s: QstSession, holder: str = "host-b/pid 4242") -> list[Command]:
    out = s.handle(Standby(holder))
    assert s.state == "standby"
    return out


def test_a_standby_waits_and_says_who_holds_the_account() -> None:
    s = session()
    out = standby(s)
    assert transitions(out) == [("standby", "disconnected", "standby")]
    assert last(out).reason == "standby" and "host-b/pid 4242" in (last(out).detail or "")
    assert (s.reason, s.fault) == ("standby", None) and "host-b/pid 4242" in (s.detail or "")
    assert [c for c in out if not isinstance(c, Transitioned)] == []  # nothing was open


def test_a_lease_granted_logs_in_as_start_does() -> None:
    started, granted = session(), session()
    from_start = started.handle(Start())
    standby(granted)
    from_lease = granted.handle(LeaseGranted())
    assert transitions(from_lease) == [("lease_granted", "standby", "connecting")]
    assert ([c for c in from_lease if not isinstance(c, Transitioned)]
            == [c for c in from_start if not isinstance(c, Transitioned)])
    assert granted.reason is None and granted.detail is None
    assert granted.handle(Connected(1)) == started.handle(Connected(1))


def test_a_lease_granted_with_a_configuration_that_cannot_work_fails_as_start_does() -> None:
    started, granted = session(client_id=""), session(client_id="")
    started.handle(Start())
    standby(granted)
    out = granted.handle(LeaseGranted())
    assert transitions(out) == [("lease_granted", "standby", "failed")]
    assert granted.outcome() == started.outcome()


def test_a_grant_the_session_does_not_wait_for_changes_nothing() -> None:
    s = session()
    assert s.handle(LeaseGranted()) == [] and s.state == "disconnected"
    authenticated(s)
    assert s.handle(LeaseGranted()) == [] and s.state == "authenticated"


def test_a_lost_lease_closes_without_a_logout_and_waits() -> None:
    s = session()
    authenticated(s)
    out = s.handle(LeaseLost("not renewed within 10 s"))
    assert transitions(out) == [("lease_lost", "authenticated", "standby")]
    assert [c for c in out if isinstance(c, SendFrame)] == []  # no LogoutRequest
    assert CloseConnection(1, 1000, "standby") in out
    assert CancelTimer("stable") in out
    assert s.reason == "lease_lost" and "not renewed within 10 s" in (s.detail or "")
    assert last(out).reason == "lease_lost"
    # What the old connection still says reaches nothing.
    assert transitions(s.handle(Closed(1, 1000))) == []
    assert s.handle(TimerFired("stable")) == [] and s.state == "standby"


@pytest.mark.parametrize("where", ["connecting", "awaiting_login_response", "backoff"])
def test_a_lost_lease_stops_every_state_that_would_write_or_log_in(where: str) -> None:
    s = session()
    s.handle(Start())
    if where != "connecting":
        s.handle(Connected(1))
    if where == "backoff":
        s.handle(Closed(1, 1006))
    assert s.state == where
    timer = {"connecting": "connect_timeout", "awaiting_login_response": "login_timeout",
             "backoff": "backoff"}[where]
    out = s.handle(LeaseLost("taken"))
    assert s.state == "standby" and CancelTimer(timer) in out
    assert s.handle(TimerFired(timer)) == [] and s.state == "standby"


def test_a_lease_lost_while_logging_out_ends_the_logout_without_waiting() -> None:
    s = session()
    authenticated(s)
    s.handle(Stop())
    out = s.handle(LeaseLost("taken"))
    assert transitions(out) == [("lease_lost", "logging_out", "disconnected")]
    assert s.reason == "logged_out" and "logout not confirmed" in (s.detail or "")
    assert CancelTimer("logout_timeout") in out


@pytest.mark.parametrize("where", ["disconnected", "failed", "standby"])
def test_a_lost_lease_changes_nothing_where_nothing_is_held(where: str) -> None:
    s = session(client_id="" if where == "failed" else "cid")
    if where == "failed":
        s.handle(Start())
    elif where == "standby":
        standby(s)
    assert s.state == where
    assert s.handle(LeaseLost("taken")) == [] and s.state == where


def test_a_standby_logs_in_afresh_when_the_lease_comes_back() -> None:
    s = session()
    s.handle(Start())
    s.handle(ConnectFailed(1, "refused"))
    s.handle(TimerFired("backoff"))
    assert s.attempt == 2
    s.handle(LeaseLost("taken"))
    out = s.handle(LeaseGranted())
    assert s.state == "connecting" and OpenConnection(URL, 3) in out
    assert s.attempt == 1  # a fresh run of attempts


@pytest.mark.parametrize(("state", "reason"), [("locked_out", "locked_out"),
                                               ("failed", "invalid_credentials")])
def test_a_login_that_failed_elsewhere_for_good_ends_the_standby_alike(state: str,
                                                                       reason: str) -> None:
    s = session()
    standby(s)
    out = s.handle(SharedOutcome(state, reason, Fault.CONFIGURATION, "QST ErrorMessage: 'no'"))
    assert transitions(out) == [("shared_failure", "standby", state)]
    assert (s.state, s.reason, s.fault, s.detail) == (state, reason, Fault.CONFIGURATION,
                                                      "QST ErrorMessage: 'no'")
    assert [c for c in out if isinstance(c, OpenConnection | SendFrame)] == []


def test_a_standby_stops_without_a_connection() -> None:
    s = session()
    standby(s)
    out = s.handle(Stop())
    assert transitions(out) == [("stop", "standby", "disconnected")]
    assert s.reason == "stopped" and [c for c in out if isinstance(c, SendFrame)] == []
