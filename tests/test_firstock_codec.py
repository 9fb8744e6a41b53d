"""Firstock's wire and policy, pure: login bodies, answers read whatever their status, socket
verdicts, and the action every answer leads to."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest

from brokergate.machines import Fail, Fault, LockOut, Relogon, Retry, Secret, Succeed
from brokergate.machines.firstock import (
    FirstockConfig,
    classify,
    codec,
    parse_answer,
    read_socket_message,
)


def config(**overrides: Any) -> FirstockConfig:
    values: dict[str, Any] = {
        "base_url": "https://connect.thefirstock.com/api/V3", "user_id": "AA123",
        "password": Secret("Trade@111"), "api_key": Secret("NVDewefds2343q2334"),
        "vendor_code": "AA123_API", "totp": Secret("123456"),
    }
    values.update(overrides)
    return FirstockConfig(**values)


def body(**doc: Any) -> bytes:
    return json.dumps(doc).encode()


# --- login bodies -------------------------------------------------------------------------------


def test_v3_sends_the_password_as_it_is_and_v4_its_sha256_hex() -> None:
    v3 = codec.login_body(user_id="AA123", password="Trade@111", totp="1", vendor_code="V",
                          api_key="K", version="v3")
    assert v3 == {"userId": "AA123", "password": "Trade@111", "TOTP": "1", "vendorCode": "V",
                  "apiKey": "K"}
    v4 = codec.login_body(user_id="AA123", password="Trade@111", totp="1", vendor_code="V",
                          api_key="K", version="v4")
    assert v4["password"] == hashlib.sha256(b"Trade@111").hexdigest()
    assert v4["apiKey"] == "K"  # never transformed


@pytest.mark.parametrize(("url", "version"), [
    ("https://connect.thefirstock.com/api/V3", "v3"),
    ("https://connect.thefirstock.com/api/V4/", "v4"),
    ("https://connect.thefirstock.com/apiV2", "v2"),
    ("https://api.firstock.in/V1", "v1"),
    ("https://broker.example/custom", "v4"),
])
def test_the_api_version_is_read_from_the_base_url(url: str, version: str) -> None:
    assert config(base_url=url).version == version
    assert config(base_url=url, api_version="V3").version == "v3"


@pytest.mark.parametrize(("overrides", "problem"), [
    ({"base_url": "http://connect.thefirstock.com/api/V3"}, "not a loopback host"),
    ({"totp": None}, "exactly one of totp_seed, totp_provider or totp"),
    ({"totp_seed": Secret("JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP")}, "exactly one of"),
    ({"password": Secret("")}, "password is missing"),
    ({"api_key": "plain"}, "api_key must be a Secret"),
    ({"socket": "v2"}, "socket_url is required"),
    ({"socket": "noren", "socket_url": "ws://ws.example.com/"}, "not a loopback host"),
    ({"api_version": "three"}, "api_version must look like v3"),
    ({"token_timezone": "Mars/Olympus"}, "not a known time zone"),
])
def test_configuration_problems(overrides: dict[str, Any], problem: str) -> None:
    assert any(problem in p for p in config(**overrides).problems())


def test_a_good_configuration_has_no_problems_and_no_secret_in_its_repr() -> None:
    c = config(socket="noren", socket_url="wss://norenapi.thefirstock.com/NorenWSTP/")
    assert c.problems() == []
    assert "Trade@111" not in repr(c) and "NVDewefds2343q2334" not in repr(c)
    assert c.endpoint("login") == "https://connect.thefirstock.com/api/V3/login"


# --- answers ------------------------------------------------------------------------------------


@pytest.mark.parametrize("status", ["Success", "success", "SUCCESS"])
def test_success_in_any_case(status: str) -> None:
    answer = parse_answer(200, body(status=status, data={"susertoken": "tok"}))
    assert answer.ok and answer.data == {"susertoken": "tok"}
    assert isinstance(classify(answer), Succeed)


def test_a_failure_body_is_read_whatever_the_http_status() -> None:
    answer = parse_answer(500, body(status="Failed", code="401", name="INVALID_PASSWORD",
                                    error={"field": "password",
                                           "message": "password parameter is invalid"}))
    assert not answer.ok
    assert (answer.name, answer.code, answer.field) == ("INVALID_PASSWORD", "401", "password")
    assert answer.describe() == (
        "HTTP 500 INVALID_PASSWORD code 401 field password: 'password parameter is invalid'")
    assert classify(answer) == Fail("invalid_credentials", Fault.CONFIGURATION)


def test_a_success_status_with_an_error_http_status_is_not_success() -> None:
    assert not parse_answer(500, body(status="success")).ok


def test_a_proxy_page_is_not_json_and_says_so() -> None:
    answer = parse_answer(502, b"<html><body>502 Bad Gateway</body></html>")
    assert answer.not_json and not answer.ok
    assert answer.describe() == "HTTP 502 with a body that is not Firstock's JSON"
    assert classify(answer) == Retry("server_error", Fault.BROKER)
    assert classify(parse_answer(200, b"not json")).reason == "unreadable_answer"


@pytest.mark.parametrize(("status", "doc", "action"), [
    (401, {"status": "failed", "name": "INVALID_USERID", "error": {"field": "userid"}},
     "invalid_credentials"),
    (401, {"status": "failed", "name": "INVALID_APIKEY"}, "invalid_credentials"),
    (401, {"status": "failed", "name": "INVALID_VENDORCODE"}, "invalid_credentials"),
    (401, {"status": "failed", "name": "INVALID_TOTP"}, "invalid_totp"),
    (429, {"status": "failed", "name": "API_RATE_LIMIT"}, "rate_limited"),
    (429, {"status": "failed", "name": "RATE_LIMIT_EXCEEDED"}, "rate_limited"),
    (429, {"status": "failed"}, "rate_limited"),
    (503, {"status": "failed", "name": "SERVER_ERROR", "code": "401"}, "server_error"),
    (401, {"status": "failed", "name": "INVALID_JKEY"}, "session_invalid"),
    (401, {"status": "failed", "name": "SESSION_EXPIRED"}, "session_invalid"),
    (400, {"status": "failed", "name": "BAD_REQUEST", "error": {"field": "TOTP"}},
     "unknown_error"),
    (401, {"status": "failed", "name": "INVALID_INPUT",
           "error": {"message": "Invalid Input : User Blocked due to multiple wrong attempts"}},
     "user_blocked"),
])
def test_each_answer_has_its_action(status: int, doc: dict[str, Any], action: str) -> None:
    assert classify(parse_answer(status, body(**doc))).reason == action


def test_blocked_is_a_lockout_and_totp_a_single_relogon() -> None:
    blocked = parse_answer(401, body(status="Failed", name="X",
                                     error={"message": "User Blocked due to multiple wrong"}))
    assert isinstance(classify(blocked), LockOut)
    totp = classify(parse_answer(401, body(status="Failed", name="INVALID_TOTP")))
    assert isinstance(totp, Relogon) and totp.credential == "totp"


def test_401_with_a_token_is_a_dead_session_but_not_at_login() -> None:
    answer = parse_answer(403, body(status="failed"))
    assert classify(answer, with_token=True).reason == "session_invalid"
    assert classify(answer).reason == "unknown_error"


@pytest.mark.parametrize(("header", "seconds"), [("2", 2.0), (" 0.5 ", 0.5), ("soon", None),
                                                 ("-1", None), (None, None), ("inf", None),
                                                 ("nan", None), ("1e400", None),
                                                 ("86400", 300.0)])
def test_retry_after(header: str | None, seconds: float | None) -> None:
    assert parse_answer(429, body(status="failed"), header).retry_after == seconds


def test_the_data_string_of_a_failure_is_its_message() -> None:
    answer = parse_answer(200, body(status="Failed", data="User not LoggedIn"))
    assert answer.message == "User not LoggedIn"


# --- sockets ------------------------------------------------------------------------------------


def test_noren_connect_and_its_answers() -> None:
    assert json.loads(codec.noren_connect("AA123", "tok")) == {
        "t": "c", "uid": "AA123", "actid": "AA123", "susertoken": "tok", "source": "API"}
    assert read_socket_message('{"t":"ck","s":"OK","uid":"AA123"}').ok is True
    refused = read_socket_message('{"t":"ck","s":"Not_Ok","emsg":"Invalid Session Key"}')
    assert refused.ok is False and refused.text == "Invalid Session Key"
    assert read_socket_message('{"t":"tf","lp":"100"}').ok is None


def test_the_newer_socket_url_and_answers() -> None:
    url = codec.socket_url("wss://socket.firstock.in/V2/ws", "AA123", "tok")
    assert url == "wss://socket.firstock.in/V2/ws?userId=AA123&jKey=tok&source=developer-api"
    assert read_socket_message(
        '{"status":"success","message":"Authentication successful"}').ok is True
    assert read_socket_message('{"status":"failed","message":"unauthenticated"}').ok is False
    assert read_socket_message("Maximum sessions limit (3) reached").ok is False
    assert read_socket_message(b"\xff garbage").ok is None


# --- hostile answers ----------------------------------------------------------------------------

DEEP = 100_000


@pytest.mark.parametrize("raw", [b"[" * DEEP + b"]" * DEEP, b'{"a": ' * 5000 + b"1" + b"}" * 5000,
                                 b'{"status": "Success\xff"}', b'{"code": ' + b"9" * 5000 + b"}",
                                 b"[]", b"null", b"42", b'"success"', b""])
def test_a_body_that_is_not_a_json_object_is_unreadable_never_an_exception(raw: bytes) -> None:
    # json.loads raises RecursionError (not ValueError) on deep nesting: it must not escape.
    answer = parse_answer(200, raw)
    assert answer.not_json and not answer.ok
    assert classify(answer).reason == "unreadable_answer"


def test_a_body_over_the_limit_is_answer_too_large() -> None:
    answer = parse_answer(200, b"", body_limit=4096)
    assert answer.over_limit == 4096 and not answer.ok
    assert answer.describe() == (
        "HTTP 200 with a body larger than 4096 bytes (max_frame_size), not read")
    assert classify(answer) == Fail("answer_too_large", Fault.BROKER)
    assert classify(parse_answer(503, b"", body_limit=4096)).reason == "server_error"
    assert classify(parse_answer(429, b"", body_limit=4096)).reason == "rate_limited"


def test_fields_of_the_wrong_type_are_named_not_printed() -> None:
    answer = parse_answer(400, body(status="Failed", name=["INVALID_PASSWORD"], code={"a": 1},
                                    error={"field": 7, "message": [[[]]]}))
    assert (answer.name, answer.code, answer.field, answer.message) == (
        "(an array)", "(an object)", "7", "(an array)")
    assert classify(answer).reason == "unknown_error"


@pytest.mark.parametrize(("message", "why"), [
    (b"\xff\xfe", "a binary frame of 2 bytes that is not UTF-8"),
    ("not json", "8 characters that are not JSON"),
    ("[1, 2]", "JSON an array where an object belongs"),
    ("null", "JSON null where an object belongs"),
    ("[" * DEEP + "]" * DEEP, f"{2 * DEEP} characters of JSON nested too deeply"),
    (b"[" * DEEP + b"]" * DEEP, f"{2 * DEEP} characters of JSON nested too deeply"),
])
def test_an_unreadable_socket_message_says_why_without_quoting_it(message: bytes | str,
                                                                  why: str) -> None:
    answer = read_socket_message(message)
    assert answer.ok is None and answer.unreadable == why


def test_a_readable_socket_message_is_not_unreadable() -> None:
    assert read_socket_message('{"t":"tf","lp":"100"}').unreadable is None
    assert read_socket_message(b'{"t":"ck","s":"OK"}').ok is True
    assert read_socket_message("Maximum sessions limit (3) reached").unreadable is None
    nested = read_socket_message('{"t":"ck","s":' + "[" * 900 + "]" * 900 + "}")
    assert nested.ok is False and nested.text == "(an array)"
