"""The Firstock machine as event lists in, commands out: REST answers are events, the wall clock
is a fake one."""

from __future__ import annotations

import json
import random
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from brokergate.machines import (
    Backoff,
    Closed,
    Command,
    Connected,
    CredentialReady,
    Deliver,
    Fault,
    FetchCredential,
    FrameReceived,
    HttpAnswered,
    HttpFailed,
    HttpRequest,
    LeaseGranted,
    LeaseLost,
    Notice,
    OpenConnection,
    SaveToken,
    Secret,
    SendFrame,
    SharedOutcome,
    Standby,
    Start,
    StartTimer,
    Stop,
    StoredToken,
    TimerFired,
    TokenRefused,
    Transitioned,
)
from brokergate.machines.firstock import FirstockConfig
from brokergate.machines.firstock.model import FirstockSession
from brokergate.machines.firstock.slots import SocketSlots

SEED = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"
NOW = datetime(2026, 11, 21, 3, 0, 10, tzinfo=UTC)  # 08:30:10 IST


def config(**overrides: Any) -> FirstockConfig:
    values: dict[str, Any] = {
        "base_url": "http://127.0.0.1:9/api/V3", "user_id": "AA1", "password": Secret("pw-1"),
        "api_key": Secret("key-1"), "vendor_code": "AA1_API", "totp": Secret("123456"),
    }
    values.update(overrides)
    return FirstockConfig(**values)


def session(stored: tuple[Secret, datetime] | None = None, **overrides: Any) -> FirstockSession:
    return FirstockSession(config(**overrides), rng=random.Random(3), clock=lambda: 0.0,
                           wall=lambda: NOW, stored=stored)


def moves(out: list[Command]) -> list[tuple[str, str, str]]:
    return [(c.trigger, c.src, c.dst) for c in out if isinstance(c, Transitioned)]


def last(out: list[Command]) -> Transitioned:
    return [c for c in out if isinstance(c, Transitioned)][-1]


def calls(out: list[Command]) -> list[HttpRequest]:
    return [c for c in out if isinstance(c, HttpRequest)]


def answer(s: FirstockSession, status: int, doc: Any, *, call: str = "login",
           retry_after: str | None = None) -> list[Command]:
    body = doc if isinstance(doc, bytes) else json.dumps(doc).encode()
    return s.handle(HttpAnswered(call, s.call_serial, status, body, retry_after))


OK = {"status": "Success", "data": {"actid": "AA1", "susertoken": "tok-1"}}


def failed(name: str, message: str = "", field: str = "") -> dict[str, Any]:
    return {"status": "Failed", "code": "401", "name": name,
            "error": {"field": field, "message": message}}


def test_login_without_a_socket_is_authenticated_with_the_token() -> None:
    s = session()
    [login] = calls(s.handle(Start()))
    assert login.call == "login" and login.url == "http://127.0.0.1:9/api/V3/login"
    assert login.body == {"userId": "AA1", "password": "pw-1", "TOTP": "123456",
                          "vendorCode": "AA1_API", "apiKey": "key-1"}
    assert login.per_second == 10.0 and "pw-1" not in repr(login)
    out = answer(s, 200, OK)
    assert moves(out) == [("login_answer", "requesting_token", "authenticated")]
    assert last(out).reason is None
    saved = [c for c in out if isinstance(c, SaveToken)]
    assert saved[0].token.reveal() == "tok-1" and saved[0].created == NOW
    assert "tok-1" in s.secrets()
    # Renewal a minute after 05:00 IST tomorrow (23:30 UTC today): every token dies then.
    renew = next(c for c in out if isinstance(c, StartTimer) and c.name == "renew")
    assert renew.seconds == (datetime(2026, 11, 21, 23, 31, tzinfo=UTC) - NOW).total_seconds()


def test_v4_sends_the_password_hashed() -> None:
    s = session(base_url="http://127.0.0.1:9/api/V4")
    [login] = calls(s.handle(Start()))
    assert login.body["password"] != "pw-1" and len(login.body["password"]) == 64


@pytest.mark.parametrize("name", ["INVALID_PASSWORD", "INVALID_USERID", "INVALID_APIKEY",
                                  "INVALID_VENDORCODE"])
def test_invalid_fields_fail_and_are_never_retried(name: str) -> None:
    s = session()
    s.handle(Start())
    out = answer(s, 401, failed(name, "bad", "password"))
    assert s.state == "failed" and s.outcome()["reason"] == "invalid_credentials"
    assert name in s.outcome()["detail"] and calls(out) == []


def test_a_blocked_user_is_locked_out() -> None:
    s = session()
    s.handle(Start())
    answer(s, 401, failed("INVALID_INPUT",
                          "Invalid Input : User Blocked due to multiple wrong attempts"))
    assert s.state == "locked_out" and s.outcome()["reason"] == "user_blocked"


def test_an_invalid_totp_with_a_seed_waits_for_the_next_window_once() -> None:
    s = session(totp=None, totp_seed=Secret(SEED))
    s.handle(Start())
    out = answer(s, 401, failed("INVALID_TOTP"))
    assert moves(out) == [("login_answer", "requesting_token", "backoff")]
    assert last(out).delay == pytest.approx(20.0)  # 08:30:10 -> the window at :30
    out = s.handle(TimerFired("backoff"))
    assert calls(out)[0].body["TOTP"].isdigit()
    answer(s, 401, failed("INVALID_TOTP"))
    assert s.state == "failed" and s.outcome()["reason"] == "invalid_totp"
    assert "refused too" in s.outcome()["detail"]


def test_an_invalid_fixed_totp_fails_at_once() -> None:
    s = session()
    s.handle(Start())
    answer(s, 401, failed("INVALID_TOTP"))
    assert s.state == "failed" and s.outcome()["reason"] == "invalid_totp"


def test_a_totp_provider_is_asked_before_each_login() -> None:
    s = session(totp=None, totp_provider=lambda: "654321")
    out = s.handle(Start())
    assert moves(out) == [("start", "disconnected", "refreshing_credentials")]
    assert FetchCredential("totp", 10.0) in out
    out = s.handle(CredentialReady("totp", Secret("654321")))
    assert calls(out)[0].body["TOTP"] == "654321"
    assert "654321" in s.secrets()


@pytest.mark.parametrize(("status", "doc", "retry_after", "reason", "least"), [
    (429, failed("API_RATE_LIMIT"), "3", "rate_limited", 3.0),
    (429, {"status": "failed"}, None, "rate_limited", 0.0),
    (500, failed("SERVER_ERROR"), None, "server_error", 0.0),
    (502, b"<html>502 Bad Gateway</html>", None, "server_error", 0.0),
])
def test_transient_answers_back_off(status: int, doc: Any, retry_after: str | None, reason: str,
                                    least: float) -> None:
    s = session()
    s.handle(Start())
    out = answer(s, status, doc, retry_after=retry_after)
    assert moves(out) == [("login_answer", "requesting_token", "backoff")]
    assert last(out).reason == reason and (last(out).delay or 0) >= least
    assert calls(s.handle(TimerFired("backoff")))[0].call == "login"


def test_rest_retries_are_bounded_like_connections() -> None:
    s = session(backoff=Backoff(max_attempts=3))
    s.handle(Start())
    for _ in range(2):
        answer(s, 500, failed("SERVER_ERROR"))
        s.handle(TimerFired("backoff"))
    answer(s, 500, failed("SERVER_ERROR"))
    assert s.state == "failed" and s.outcome()["reason"] == "gave_up"
    assert s.outcome()["attempts"] == 3


def test_a_request_timeout_backs_off() -> None:
    s = session()
    s.handle(Start())
    out = s.handle(HttpFailed("login", 1, "timed out waiting for the answer", timed_out=True))
    assert moves(out) == [("login_failed", "requesting_token", "backoff")]
    assert last(out).reason == "timeout"


def test_an_answer_to_an_older_request_is_ignored() -> None:
    s = session()
    s.handle(Start())
    assert s.handle(HttpAnswered("login", 99, 200, json.dumps(OK).encode())) == []


def test_success_without_a_token_is_the_brokers_fault() -> None:
    s = session()
    s.handle(Start())
    answer(s, 200, {"status": "success", "data": {}})
    assert s.state == "failed" and s.outcome()["reason"] == "protocol_error"


# --- stored tokens ------------------------------------------------------------------------------


def test_todays_stored_token_is_checked_not_replaced() -> None:
    s = session(stored=(Secret("kept"), NOW - timedelta(hours=1)))
    out = s.handle(Start())
    assert moves(out) == [("start", "disconnected", "validating_token")]
    assert calls(out)[0].body == {"userId": "AA1", "jKey": "kept"}
    out = answer(s, 200, {"status": "success", "data": {}}, call="userDetails")
    assert s.state == "authenticated" and s.outcome()["rest_logins"] == 0
    assert s.token is not None and s.token.reveal() == "kept"


def test_yesterdays_stored_token_is_not_even_checked() -> None:
    s = session(stored=(Secret("old"), NOW - timedelta(days=1)))
    out = s.handle(Start())
    assert calls(out)[0].call == "login"


def test_a_refused_stored_token_means_a_fresh_login() -> None:
    s = session(stored=(Secret("kept"), NOW - timedelta(hours=1)))
    s.handle(Start())
    out = answer(s, 401, failed("INVALID_JKEY"), call="userDetails")
    assert moves(out) == [("validation_answer", "validating_token", "requesting_token")]
    assert SaveToken(None) in out and calls(out)[0].call == "login"


# --- sockets ------------------------------------------------------------------------------------


def noren(**overrides: Any) -> FirstockSession:
    return session(socket="noren", socket_url="ws://127.0.0.1:9/NorenWSTP/", **overrides)


def attached(s: FirstockSession) -> None:
    s.handle(Start())
    answer(s, 200, OK)
    s.handle(Connected(s.epoch))
    s.handle(FrameReceived(s.epoch, '{"t":"ck","s":"OK"}'))
    assert s.state == "authenticated"


def test_the_noren_socket_attaches_with_the_token_and_beats() -> None:
    s = noren()
    s.handle(Start())
    out = answer(s, 200, OK)
    assert OpenConnection("ws://127.0.0.1:9/NorenWSTP/", 1) in out
    out = s.handle(Connected(1))
    [hello] = [c for c in out if isinstance(c, SendFrame)]
    assert json.loads(hello.data) == {"t": "c", "uid": "AA1", "actid": "AA1",
                                      "susertoken": "tok-1", "source": "API"}
    out = s.handle(FrameReceived(1, '{"t":"ck","s":"OK","uid":"AA1"}'))
    assert s.state == "authenticated" and StartTimer("heartbeat", 5.0) in out
    out = s.handle(TimerFired("heartbeat"))
    assert [c.data for c in out if isinstance(c, SendFrame)] == ['{"t": "h"}']
    assert s.outcome()["socket_attaches"] == 1


def test_the_newer_socket_takes_the_token_in_its_url() -> None:
    s = session(socket="v2", socket_url="ws://127.0.0.1:9/ws")
    s.handle(Start())
    out = answer(s, 200, OK)
    opened = next(c for c in out if isinstance(c, OpenConnection))
    assert opened.url == "ws://127.0.0.1:9/ws?userId=AA1&jKey=tok-1&source=developer-api"
    out = s.handle(Connected(1))
    assert not any(isinstance(c, SendFrame) for c in out)  # the server speaks first
    s.handle(FrameReceived(1, '{"status":"success","message":"Authentication successful"}'))
    assert s.state == "authenticated"


def test_a_refused_socket_logs_in_again_once_then_fails() -> None:
    s = noren()
    s.handle(Start())
    answer(s, 200, OK)
    s.handle(Connected(1))
    out = s.handle(FrameReceived(1, '{"t":"ck","s":"Not_Ok","emsg":"Invalid Session Key"}'))
    assert moves(out) == [("socket_verdict", "awaiting_login_response", "requesting_token")]
    answer(s, 200, {"status": "success", "data": {"susertoken": "tok-2"}})
    s.handle(Connected(2))
    s.handle(FrameReceived(2, '{"t":"ck","s":"Not_Ok","emsg":"Invalid Session Key"}'))
    assert s.state == "failed" and s.outcome()["reason"] == "session_invalid"
    assert s.outcome()["rest_logins"] == 2


def test_a_dropped_socket_reattaches_without_a_new_login() -> None:
    s = noren()
    attached(s)
    s.handle(TimerFired("stable"))
    out = s.handle(Closed(1, 1006))
    assert moves(out) == [("closed", "authenticated", "backoff")]
    out = s.handle(TimerFired("backoff"))
    assert moves(out) == [("backoff_elapsed", "backoff", "connecting")] and calls(out) == []
    assert s.outcome()["rest_logins"] == 1


def test_renewal_logs_in_again_before_the_expiry() -> None:
    s = noren()
    attached(s)
    out = s.handle(TimerFired("renew"))
    assert moves(out) == [("renew", "authenticated", "requesting_token")]
    assert last(out).reason == "token_renewal" and calls(out)[0].call == "login"


def test_stop_logs_out_over_rest_and_forgets_the_token() -> None:
    s = noren()
    attached(s)
    out = s.handle(Stop())
    assert calls(out)[0].call == "logout" and SaveToken(None) in out
    answer(s, 200, {"status": "success", "data": "Successfully logged out"}, call="logout")
    assert s.state == "disconnected" and s.outcome()["reason"] == "logged_out"
    assert s.outcome()["detail"] is None  # confirmed: nothing to add


def test_a_logout_call_that_gets_no_answer_ends_the_session_and_says_so() -> None:
    s = noren()
    attached(s)
    out = s.handle(Stop())
    serial = calls(out)[0].serial
    out = s.handle(HttpFailed("logout", serial, "timed out waiting for the answer",
                              timed_out=True))
    assert moves(out) == [("logout_failed", "logging_out", "disconnected")]
    outcome = s.outcome()
    assert outcome["reason"] == "logged_out"
    assert outcome["detail"] == ("logout not confirmed by the broker: logout: timed out "
                                 "waiting for the answer")
    assert last(out).detail == outcome["detail"]  # the audit record says it too


def test_a_fourth_socket_of_a_user_is_not_even_asked_for() -> None:
    slots = SocketSlots()
    held = [noren() for _ in range(3)]
    for s in held:
        s.slots = slots
        attached(s)
    fourth = noren()
    fourth.slots = slots
    fourth.handle(Start())
    out = answer(fourth, 200, OK)
    assert fourth.state == "failed" and fourth.outcome()["reason"] == "socket_limit"
    assert not any(isinstance(c, OpenConnection) for c in out)
    held[0].handle(Stop())  # a slot comes free when a session leaves its socket
    assert slots.in_use == 2


def test_the_brokers_socket_limit_fails_without_a_relogin() -> None:
    s = noren()
    s.handle(Start())
    answer(s, 200, OK)
    s.handle(Connected(1))
    s.handle(FrameReceived(1, '{"t":"ck","s":"Not_Ok","emsg":"Maximum sessions limit (3) '
                              'reached"}'))
    assert s.state == "failed" and s.outcome()["reason"] == "socket_limit"
    assert s.outcome()["rest_logins"] == 1


def test_leaving_without_logging_out_keeps_the_token() -> None:
    s = noren()
    attached(s)
    out = s.handle(Stop(logout=False))
    assert moves(out) == [("stop", "authenticated", "disconnected")]
    assert calls(out) == [] and not any(isinstance(c, SaveToken) for c in out)
    assert s.outcome()["reason"] == "session_kept" and s.outcome()["fault"] is None


# --- the application's REST calls ---------------------------------------------------------------


def app_answer(s: FirstockSession, request: HttpRequest, status: int, doc: Any) -> Any:
    return HttpAnswered(request.call, request.serial, status, json.dumps(doc).encode(), None)


def test_an_application_call_carries_the_user_and_the_token() -> None:
    s = session()
    s.handle(Start())
    answer(s, 200, OK)
    request, generation = s.application_request("limit", {"exchange": "NSE"})
    assert request.url == "http://127.0.0.1:9/api/V3/limit"
    assert request.body == {"exchange": "NSE", "userId": "AA1", "jKey": "tok-1"}
    assert generation == 1 and "tok-1" not in repr(request)
    got = s.read_application_answer(
        app_answer(s, request, 200, {"status": "Success", "data": {"cash": "1.00"}}), generation)
    assert got.ok and got.data == {"cash": "1.00"}


@pytest.mark.parametrize(("endpoint", "body", "why"), [
    ("login", None, "session's own call"),
    ("logout", {}, "session's own call"),
    ("../admin", None, "not an endpoint name"),
    ("", None, "not an endpoint name"),
    ("limit", {"jKey": "mine"}, "own jKey"),
    ("limit", {"userId": "BB2"}, "not the session's user"),
    ("limit", {"when": datetime(2026, 1, 1)}, "not JSON"),
    ("limit", ["NSE"], "must be a mapping"),
])
def test_calls_the_session_will_not_make(endpoint: str, body: Any, why: str) -> None:
    s = session()
    s.handle(Start())
    answer(s, 200, OK)
    with pytest.raises(ValueError, match=why) as caught:
        s.application_request(endpoint, body)
    assert "tok-1" not in str(caught.value)


@pytest.mark.parametrize(("status", "doc"), [
    (401, failed("INVALID_JKEY", "jKey is invalid", "jKey")),
    (401, failed("SESSION_EXPIRED", "Session expired")),
    (403, {"status": "failed", "message": "Forbidden"}),
    (401, {"status": "failed", "message": "Unauthorized"}),
])
def test_a_refused_token_on_a_call_logs_in_again_once_then_fails(status: int, doc: Any) -> None:
    s = noren()
    attached(s)
    request, generation = s.application_request("limit", None)
    got = s.read_application_answer(app_answer(s, request, status, doc), generation)
    assert not got.ok and got.token_refused and f"HTTP {status}" in got.detail
    out = s.handle(TokenRefused(generation, got.detail))
    assert moves(out) == [("token_refused", "authenticated", "requesting_token")]
    assert [c.call for c in calls(out)] == ["login"]
    assert SaveToken(None) in out  # the refused token leaves the store
    answer(s, 200, {"status": "success", "data": {"susertoken": "tok-2"}})
    s.handle(Connected(s.epoch))
    s.handle(FrameReceived(s.epoch, '{"t":"ck","s":"OK"}'))
    assert s.state == "authenticated"  # the socket taking the new token proves nothing for REST
    request, generation = s.application_request("limit", None)
    assert request.body["jKey"] == "tok-2" and generation == 2
    s.handle(TokenRefused(generation, "limit: HTTP 401 SESSION_EXPIRED"))
    assert s.state == "failed" and s.outcome()["reason"] == "session_invalid"
    assert "refused the token of a fresh login too" in s.outcome()["detail"]


def test_a_successful_call_with_the_new_token_earns_another_fresh_login_later() -> None:
    s = session()
    s.handle(Start())
    answer(s, 200, OK)
    s.handle(TokenRefused(1, "limit: HTTP 401 INVALID_JKEY"))
    answer(s, 200, {"status": "success", "data": {"susertoken": "tok-2"}})
    request, generation = s.application_request("limit", None)
    s.read_application_answer(app_answer(s, request, 200, {"status": "success", "data": {}}),
                              generation)
    out = s.handle(TokenRefused(generation, "limit: HTTP 401 SESSION_EXPIRED"))
    assert moves(out) == [("token_refused", "authenticated", "requesting_token")]


def test_refusals_of_a_replaced_token_or_outside_authenticated_are_ignored() -> None:
    s = session()
    s.handle(Start())
    answer(s, 200, OK)
    s.handle(TokenRefused(1, "first"))
    assert s.state == "requesting_token"
    assert s.handle(TokenRefused(1, "a second call refused at the same time")) == []
    answer(s, 200, {"status": "success", "data": {"susertoken": "tok-2"}})
    assert s.handle(TokenRefused(1, "late")) == [] and s.state == "authenticated"


def test_an_error_answer_to_a_call_is_reported_not_acted_on() -> None:
    s = session()
    s.handle(Start())
    answer(s, 200, OK)
    request, generation = s.application_request("orderBook", None)
    got = s.read_application_answer(app_answer(
        s, request, 400, failed("ORDERS_NOT_FOUND", "No orders today")), generation)
    assert (got.ok, got.token_refused, got.name, got.status) == (
        False, False, "ORDERS_NOT_FOUND", 400)
    assert "No orders today" in got.detail and s.state == "authenticated"


# --- hostile answers ----------------------------------------------------------------------------


def awaiting_verdict(s: FirstockSession) -> None:
    s.handle(Start())
    answer(s, 200, OK)
    s.handle(Connected(s.epoch))
    assert s.state == "awaiting_login_response"


@pytest.mark.parametrize(("message", "why"), [
    (b"\xff\xfe", "a binary frame of 2 bytes that is not UTF-8"),
    ("<html>tok-1</html>", "18 characters that are not JSON"),
    ("[1, 2, 3]", "JSON an array where an object belongs"),
    ("[" * 100_000 + "]" * 100_000, "200000 characters of JSON nested too deeply"),
])
def test_an_unreadable_socket_message_before_the_verdict_fails_the_session(
    message: bytes | str, why: str,
) -> None:
    s = noren()
    awaiting_verdict(s)
    out = s.handle(FrameReceived(1, message))
    assert moves(out) == [("malformed_frame", "awaiting_login_response", "failed")]
    outcome = s.outcome()
    assert (outcome["reason"], outcome["fault"]) == ("protocol_error", "broker")
    assert outcome["detail"] == f"Firstock sent an unreadable socket message: {why}"
    assert "tok-1" not in outcome["detail"]  # never the content: it may carry the token


def test_the_unreadable_socket_message_row_is_in_the_policy() -> None:
    from brokergate.machines import Fail, Fault
    from brokergate.machines.firstock import policy

    assert Fail("protocol_error", Fault.BROKER) == policy.MALFORMED_BEFORE_VERDICT
    [row] = [r for r in policy.policy_rows()
             if r.signal == "unreadable socket message before the verdict"]
    assert row.action is policy.MALFORMED_BEFORE_VERDICT
    assert (row.triggers, row.states) == (("malformed_frame",), ("awaiting_login_response",))


def test_messages_once_authenticated_go_to_the_application_as_they_are() -> None:
    s = noren()
    attached(s)
    for message in (b"\xff\xfe", "not json", '{"t":"tf","lp":"1"}'):
        out = s.handle(FrameReceived(1, message))
        assert s.state == "authenticated" and [c.message for c in out
                                               if isinstance(c, Deliver)] == [message]


def test_a_second_verdict_while_authenticated_is_a_notice() -> None:
    s = noren()
    attached(s)
    out = s.handle(FrameReceived(1, '{"t":"ck","s":"Not_Ok","emsg":"Invalid Session Key"}'))
    assert s.state == "authenticated" and not moves(out)
    [notice] = [c for c in out if isinstance(c, Notice)]
    assert notice.kind == "unexpected_frame" and notice.detail.startswith("Firstock's socket")


@pytest.mark.parametrize(("code", "setup", "state", "reason"), [
    (1007, awaiting_verdict, "failed", "protocol_error"),
    (1002, awaiting_verdict, "failed", "protocol_error"),
    (1002, attached, "backoff", "protocol_error"),
    (1009, awaiting_verdict, "backoff", "frame_too_large"),
    (1009, attached, "backoff", "frame_too_large"),
    (1006, attached, "backoff", "connection_lost"),
])
def test_socket_close_codes(code: int, setup: Any, state: str, reason: str) -> None:
    s = noren()
    setup(s)
    s.handle(Closed(1, code))
    assert (s.state, s.outcome()["reason"]) == (state, reason)
    assert s.outcome()["fault"] == ("network" if code == 1006 else "broker")


def test_an_oversized_login_answer_fails_naming_firstock() -> None:
    s = session()
    s.handle(Start())
    out = s.handle(HttpAnswered("login", s.call_serial, 200, b"", None, body_limit=4096))
    assert moves(out) == [("login_answer", "requesting_token", "failed")]
    assert s.outcome()["reason"] == "answer_too_large" and s.outcome()["fault"] == "broker"
    assert s.outcome()["detail"] == ("login: Firstock answered HTTP 200 with a body larger than "
                                     "4096 bytes (max_frame_size), not read")


@pytest.mark.parametrize(("data", "why"), [
    ({"susertoken": 12345}, "a number where a string belongs"),
    ({"susertoken": ["t"]}, "an array where a string belongs"),
    ({"susertoken": ""}, "empty"),
    ({"actid": "AA1"}, "absent"),
    ("tok-1", "data is a string, not an object"),
])
def test_a_success_without_a_usable_token_says_what_was_wrong(data: Any, why: str) -> None:
    s = session()
    s.handle(Start())
    answer(s, 200, {"status": "Success", "data": data})
    assert s.state == "failed" and s.outcome()["reason"] == "protocol_error"
    assert s.outcome()["detail"] == f"login: Firstock answered success without a susertoken ({why})"


def test_an_infinite_retry_after_does_not_park_the_session() -> None:
    s = session()
    s.handle(Start())
    answer(s, 429, failed("API_RATE_LIMIT"), retry_after="inf")
    assert s.state == "backoff" and s.delay is not None and s.delay < 60


# --- the fleet's login flight: wait as a standby, then log in or take the token another got ----


def standby(s: FirstockSession, holder: str = "host-b/pid 4242") -> list[Command]:
    out = s.handle(Standby(holder))
    assert s.state == "standby"
    return out


def others(out: list[Command]) -> list[Command]:
    return [c for c in out if not isinstance(c, Transitioned)]


def test_a_standby_waits_for_the_login_another_process_makes() -> None:
    s = session()
    out = standby(s)
    assert moves(out) == [("standby", "disconnected", "standby")]
    assert s.reason == "standby" and "host-b/pid 4242" in (s.detail or "")
    assert calls(out) == []


def test_a_lease_granted_without_a_token_logs_in_as_start_does() -> None:
    started, granted = session(), session()
    from_start = started.handle(Start())
    standby(granted)
    from_lease = granted.handle(LeaseGranted())
    assert moves(from_lease) == [("lease_granted", "standby", "requesting_token")]
    assert others(from_lease) == others(from_start)


def test_a_lease_granted_with_a_totp_provider_asks_it_as_start_does() -> None:
    started = session(totp=None, totp_provider=lambda: "1")
    granted = session(totp=None, totp_provider=lambda: "1")
    from_start = started.handle(Start())
    standby(granted)
    from_lease = granted.handle(LeaseGranted())
    assert moves(from_lease) == [("lease_granted", "standby", "refreshing_credentials")]
    assert others(from_lease) == others(from_start)


def test_the_token_another_process_obtained_takes_the_stored_token_path() -> None:
    created = NOW - timedelta(minutes=2)
    built = session(stored=(Secret("day-tok"), created))
    from_store = built.handle(Start())
    s = session()
    standby(s)
    out = s.handle(LeaseGranted(stored=StoredToken(Secret("day-tok"), created)))
    assert moves(out) == [("lease_granted", "standby", "validating_token")]
    assert others(out) == others(from_store)  # a validity check, no login
    assert [c.call for c in calls(out)] == ["userDetails"]
    assert calls(out)[0].body == {"userId": "AA1", "jKey": "day-tok"}
    assert "day-tok" in s.secrets()
    out = answer(s, 200, {"status": "success", "data": {}}, call="userDetails")
    assert s.state == "authenticated" and s.outcome()["rest_logins"] == 0
    assert s.token is not None and s.token.reveal() == "day-tok"


def test_a_token_from_before_the_daily_expiry_is_not_even_checked() -> None:
    s = session()
    standby(s)
    out = s.handle(LeaseGranted(stored=StoredToken(Secret("old"), NOW - timedelta(days=1))))
    assert [c.call for c in calls(out)] == ["login"]


@pytest.mark.parametrize(("state", "reason", "fault"),
                         [("locked_out", "user_blocked", Fault.ACCOUNT),
                          ("failed", "invalid_credentials", Fault.CONFIGURATION)])
def test_a_login_that_failed_elsewhere_for_good_ends_the_standby_alike(
        state: str, reason: str, fault: Fault) -> None:
    s = session()
    standby(s)
    out = s.handle(SharedOutcome(state, reason, fault, "login: Firstock answered 401"))
    assert moves(out) == [("shared_failure", "standby", state)]
    assert (s.state, s.reason, s.fault) == (state, reason, fault)
    assert s.detail == "login: Firstock answered 401" and calls(out) == []


def test_firstock_never_loses_a_lease() -> None:
    s = session()
    standby(s)
    assert s.handle(LeaseLost("taken")) == [] and s.state == "standby"
    s = session()
    s.handle(Start())
    answer(s, 200, OK)
    assert s.handle(LeaseLost("taken")) == [] and s.state == "authenticated"


def test_a_standby_stops() -> None:
    s = session()
    standby(s)
    out = s.handle(Stop())
    assert moves(out) == [("stop", "standby", "disconnected")] and calls(out) == []
    assert s.reason == "stopped"
