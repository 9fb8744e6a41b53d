"""What the fuzzer feeds the decoders: valid frames, bodies and socket messages of each broker,
hand-made hostile ones, and the random bytes and mutations made from them.

Valid protobuf frames are built with the generated modules; frames those refuse to build (wrong
wire types, unknown fields, broken lengths, strings that are not UTF-8) are put together from
wire pieces. Firstock's JSON follows the reference and the simulator's replies.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from typing import Any, Final

from brokergate.machines import SessionSettings
from brokergate.machines.cqg import cqg_session_pb2 as cpb
from brokergate.machines.qst import qst_pb2 as qpb
from brokergate.simulators.qst import frames as qst_frames

#: Credentials of the fuzzed sessions: never shown in a problem line.
PASSWORD: Final = "fuzz-password-Zq81"
API_KEY: Final = "fuzz-api-key-Zq82"
TOKEN: Final = "fuzz-susertoken-Zq83"
CQG_TOKEN: Final = "fuzz-session-token-Zq84"
STORED_TOKEN: Final = "fuzz-stored-token-Zq85"
SECRETS: Final = (PASSWORD, API_KEY, TOKEN, CQG_TOKEN, STORED_TOKEN)

#: The wall clock the Firstock sessions read (a weekday morning, after the daily expiry).
WALL: Final = datetime(2026, 1, 5, 4, 0, tzinfo=UTC)
#: How deep the deeply nested JSON goes.
DEEP: Final = 100_000
#: The frame limit the hostile servers are run against (the default, 1 MiB, is run too).
SMALL_LIMIT: Final = 4096
DEFAULT_LIMIT: Final = SessionSettings().max_frame_size

Data = bytes | str


def show(data: Data, limit: int = 48) -> str:
    """A short, reproducible description of an input (secrets replaced)."""
    if isinstance(data, str):
        text = data
        for secret in SECRETS:
            text = text.replace(secret, "[REDACTED]")
        shown = repr(text[:limit]) + ("..." if len(text) > limit else "")
        return f"str[{len(data)}] {shown}"
    raw = data
    for secret in SECRETS:
        raw = raw.replace(secret.encode(), b"[REDACTED]")
    return f"bytes[{len(data)}] {raw[:limit].hex()}" + ("..." if len(raw) > limit else "")


def names_broker(text: str | None, broker_name: str) -> bool:
    return text is not None and broker_name.lower() in text.lower()


# --- protobuf wire pieces (for frames the generated classes refuse to build) ---------------------


def varint(value: int) -> bytes:
    value &= (1 << 64) - 1
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def key(number: int, wire: int) -> bytes:
    return varint(number << 3 | wire)


def length_delimited(number: int, payload: bytes) -> bytes:
    return key(number, 2) + varint(len(payload)) + payload


def varint_field(number: int, value: int) -> bytes:
    return key(number, 0) + varint(value)


def nested_groups(depth: int, number: int = 99) -> bytes:
    return key(number, 3) * depth + key(number, 4) * depth


def padded(frame: bytes, size: int, number: int = 1000) -> bytes:
    """``frame`` with an unknown length-delimited field that brings it to exactly ``size``."""
    pad = size - len(frame) - len(key(number, 2))
    while len(varint(pad - len(varint(pad)))) != len(varint(pad)):
        pad -= 1
    body = pad - len(varint(pad))
    return frame + length_delimited(number, b"\x00" * body)


# --- mutation -------------------------------------------------------------------------------------

_INTERESTING = (0x00, 0x01, 0x7F, 0x80, 0xFF, 0xFE, 0x0A, 0x22, 0x7B, 0x5B)


def random_bytes(rng: random.Random) -> bytes:
    return rng.randbytes(rng.choice((0, 1, 2, 3, 5, 8, 13, 32, 64, 200, 1500)))


def mutate(rng: random.Random, data: bytes, corpus: Sequence[bytes]) -> bytes:
    """One to three random edits of ``data``: bit flips, truncation, splices with another valid
    input, duplicated, inserted or deleted bytes, interesting byte values."""
    buf = bytearray(data)
    for _ in range(rng.randint(1, 3)):
        op = rng.randrange(7)
        if op == 0 and buf:
            i = rng.randrange(len(buf))
            buf[i] ^= 1 << rng.randrange(8)
        elif op == 1 and buf:
            del buf[rng.randrange(len(buf)):]
        elif op == 2:
            other = rng.choice(corpus)
            buf = buf[:rng.randint(0, len(buf))] + other[rng.randint(0, len(other)):]
        elif op == 3 and buf:
            i = rng.randrange(len(buf))
            j = rng.randint(i, min(len(buf), i + 16))
            k = rng.randint(0, len(buf))
            buf[k:k] = buf[i:j] * rng.randint(1, 4)
        elif op == 4:
            k = rng.randint(0, len(buf))
            buf[k:k] = rng.randbytes(rng.randint(1, 8))
        elif op == 5 and buf:
            i = rng.randrange(len(buf))
            del buf[i:i + rng.randint(1, 8)]
        elif buf:
            buf[rng.randrange(len(buf))] = rng.choice(_INTERESTING)
    return bytes(buf)


def stream_of(rng: random.Random, count: int, crafted: Sequence[Data], valid: Sequence[bytes],
              *, text: bool = False) -> Iterator[Data]:
    """``count`` inputs: the crafted ones first, then a seeded mix of random bytes, mutations of
    valid inputs and valid ones (``text``: some of them as str, for text-frame decoders)."""
    for i in range(count):
        if i < len(crafted):
            yield crafted[i]
            continue
        roll = rng.random()
        if roll < 0.25:
            data = random_bytes(rng)
        elif roll < 0.9:
            data = mutate(rng, rng.choice(valid), valid)
        else:
            data = rng.choice(valid)
        if text and rng.random() < 0.5:
            yield data.decode("utf-8", "replace")
        else:
            yield data


# --- QST: valid and crafted frames ----------------------------------------------------------------


def qst_login_ok(request_id: int | None = 1, interval: int | None = qpb._250_MS) -> bytes:
    """A LoginResponse; ``interval=None`` leaves the coalescing interval off the wire."""
    if interval is not None:
        return qst_frames.login_ok(request_id, interval, False)
    resp = qst_frames.response(request_id)
    resp.login.coalesce_last_trade = False
    return resp.SerializeToString()


def qst_error(code: int | None, text: str | None, request_id: int | None = 1) -> bytes:
    return qst_frames.error(request_id, code=code, text=text)


def qst_translated(request_id: int, *symbols: str) -> bytes:
    return qst_frames.translation(request_id, list(symbols))


def qst_valid() -> list[bytes]:
    provisioning = qpb.Response(request_id=1)
    provisioning.provisioning_messages.messages.add(id="7", title="Terms", text="accept",
                                                    url="https://example.invalid/terms")
    logout = qpb.Response(request_id=2)
    logout.logout.SetInParent()
    return [
        qst_login_ok(), qst_login_ok(interval=None), qst_login_ok(request_id=None),
        qst_error(1, "Login failed. Wrong password (1)"), qst_error(5, "Account locked (5)"),
        qst_error(6, "Login failed. Server error (6)"), qst_error(1000, "Login failed"),
        qst_error(None, "Populate all mandatory fields"), qst_error(None, "Other (4)"),
        provisioning.SerializeToString(), logout.SerializeToString(),
        qst_translated(16, "ESZ6", "NQZ6"), qst_error(3, "unknown symbol", request_id=16),
        qst_error(9, "asynchronous", request_id=None),
    ]


def utf8_broken(frame: bytes, text: str) -> bytes:
    """``frame`` with the first occurrence of ``text`` made invalid UTF-8 (same length)."""
    raw = text.encode()
    return frame.replace(raw, b"\xff" + raw[1:], 1)


def qst_crafted() -> list[Data]:
    login = qst_login_ok()
    login_body = qpb.LoginResponse(coalesce_last_trade=True).SerializeToString()
    return [
        b"",
        "a text frame",
        login.decode("latin-1"),
        # unknown enum values (QST's enums are closed: they go to the unknown fields)
        varint_field(1, 1) + length_delimited(2, varint_field(1, 99)),
        varint_field(1, 1) + length_delimited(2, varint_field(1, 2**64 - 1)),
        # unknown fields, and a oneof member this schema does not know
        login + varint_field(99, 5) + length_delimited(1000, b"future"),
        varint_field(1, 1) + length_delimited(11, b"a future response type"),
        login + nested_groups(50),
        login + nested_groups(101),
        # wrong wire types
        length_delimited(1, b"\x01") + length_delimited(2, login_body),
        varint_field(1, 1) + varint_field(2, 1),
        varint_field(1, 1) + length_delimited(5, key(1, 2) + b"\x01x"),
        varint_field(1, 1) + length_delimited(5, varint_field(2, 5)),
        # several oneof members in one frame (the last one wins)
        login + qst_error(1, "Wrong password (1)"),
        qst_error(1, "Wrong password (1)") + login,
        login + qst_translated(16, "ESZ6") + login,
        # invalid UTF-8 in string fields
        utf8_broken(qst_error(6, "Server error (6)"), "Server"),
        utf8_broken(qst_error(None, "Populate all mandatory fields"), "Populate"),
        utf8_broken(qst_valid()[9], "Terms"),
        utf8_broken(qst_translated(16, "ESZ6"), "ESZ6"),
        # duplicate login results, answers for request ids nobody used
        login + login,
        qst_login_ok(request_id=7),
        qst_translated(999_999, "ESZ6"),
        qst_translated(0, "ESZ6"),
        qst_translated(2**32 - 1, "ESZ6"),
        qst_error(2, "for someone else", request_id=12_345),
        # broken lengths and varints
        key(2, 2) + varint(2**62) + b"x",
        key(1, 0) + b"\xff" * 11,
        padded(login, 5000),
    ]


# --- CQG: valid and crafted frames ----------------------------------------------------------------

CQG_BASE_TIME: Final = "2026-01-05T00:00:00"


def cqg_server(**fields: Any) -> bytes:
    return cpb.ServerMsg(**fields).SerializeToString()


def cqg_logon(code: int = 0, *, text: str | None = None, redirect_url: str | None = None,
              token: str | None = CQG_TOKEN) -> bytes:
    result = cpb.LogonResult(result_code=code, base_time=CQG_BASE_TIME, protocol_version_major=2,
                             protocol_version_minor=230, server_time=1000, user_id=42)
    if token is not None and code == 0:
        result.session_token = token
    if text is not None:
        result.text_message = text
    if redirect_url is not None:
        result.redirect_url = redirect_url
    return cqg_server(logon_result=result)


def cqg_restore(code: int = 0, text: str | None = None) -> bytes:
    result = cpb.RestoreOrJoinSessionResult(result_code=code, base_time=CQG_BASE_TIME,
                                            server_time=5000)
    if text is not None:
        result.text_message = text
    return cqg_server(restore_or_join_session_result=result)


def cqg_logged_off(reason: int, text: str | None = None) -> bytes:
    msg = cpb.LoggedOff(logoff_reason=reason)
    if text is not None:
        msg.text_message = text
    return cqg_server(logged_off=msg)


def _result_code_as_bytes() -> bytes:
    """A LogonResult whose result_code comes with the wrong wire type (length-delimited)."""
    result = cpb.LogonResult(base_time=CQG_BASE_TIME, protocol_version_major=2,
                             protocol_version_minor=230, server_time=1000)
    return length_delimited(100, length_delimited(1, b"\x00") + result.SerializePartialToString())


CQG_RESULT_CODE_AS_BYTES: Final = _result_code_as_bytes()

#: A ServerMsg field this subset does not declare (tag 1): application traffic, e.g. an answer
#: to an information request nobody made.
CQG_UNKNOWN_FIELD: Final = length_delimited(1, varint_field(1, 999_999))


def cqg_valid() -> list[bytes]:
    user = cpb.UserMessage(message_type=2, source="WebAPI", subject="s", text="maintenance")
    return [
        cqg_logon(0), cqg_logon(101, text="Access denied"), cqg_logon(103), cqg_logon(104),
        cqg_logon(105), cqg_logon(106, redirect_url="wss://127.0.0.1:9/"), cqg_logon(107),
        cqg_logon(108), cqg_logon(999, text="new code"),
        cqg_restore(0), cqg_restore(101), cqg_restore(104, "failure"), cqg_restore(555),
        cqg_logged_off(1), cqg_logged_off(3, "forced"), cqg_logged_off(4), cqg_logged_off(77),
        cqg_server(ping=cpb.Ping(token="WebAPI Server Heartbeat", ping_utc_time=777)),
        cqg_server(pong=cpb.Pong(token="brokergate-1", ping_utc_time=1, pong_utc_time=2)),
        cqg_server(user_messages=[user]),
        cqg_server(concurrent_connection_join_results=[
            cpb.ConcurrentConnectionJoin(is_same_app_type=True)]),
        cqg_server(user_session_state_results=[
            cpb.UserSessionStateResult(session_token="someone-else", result_code=0)]),
        CQG_UNKNOWN_FIELD,
        cqg_logon(0) + CQG_UNKNOWN_FIELD,
    ]


def cqg_crafted() -> list[Data]:
    logon = cqg_logon(0)
    partial = cpb.ServerMsg()
    partial.logon_result.result_code = 0
    no_base_time = partial.SerializePartialToString()
    return [
        b"",
        "a text frame",
        logon.decode("latin-1"),
        # unknown enum values (CQG sends them as uint32: any number may come)
        cqg_logon(2**32 - 1), cqg_logged_off(2**32 - 1), cqg_restore(2**31),
        cqg_server(user_messages=[cpb.UserMessage(message_type=99, source="x", text="y")]),
        # unknown fields and nested unknown groups
        logon + varint_field(999, 1),
        CQG_UNKNOWN_FIELD + nested_groups(101, 500),
        # missing required fields, wrong wire types
        no_base_time,
        length_delimited(100, varint_field(1, 0) + length_delimited(2, b"t")),
        varint_field(100, 0),
        CQG_RESULT_CODE_AS_BYTES,
        length_delimited(107, varint_field(1, 5)),
        length_delimited(100, key(1, 2) + b"\x01\x00" + logon[2:]),
        # several session fields in one frame
        logon + cqg_logged_off(4),
        logon + cqg_restore(0),
        cqg_logon(101) + logon,
        logon + cqg_logon(106, redirect_url="wss://" + "a" * 70 + ".example.net/"),
        # invalid UTF-8 in string fields
        utf8_broken(cqg_logon(101, text="Access denied"), "Access"),
        utf8_broken(cqg_logon(0), CQG_BASE_TIME),
        utf8_broken(cqg_server(pong=cpb.Pong(token="brokergate-1", ping_utc_time=1,
                                              pong_utc_time=2)), "brokergate"),
        utf8_broken(cqg_server(user_messages=[
            cpb.UserMessage(message_type=1, source="WebAPI", text="boom")]), "WebAPI"),
        utf8_broken(cqg_logon(106, redirect_url="wss://127.0.0.1:9/"), "wss"),
        # redirects CQG should not be followed to
        cqg_logon(106, redirect_url="wss://evil.example.net/"),
        cqg_logon(106, redirect_url="not a url [::"),
        cqg_logon(106, redirect_url="wss://127.0.0.1:99999/"),
        # duplicate or unsolicited results, answers nobody asked for
        logon + logon,
        cqg_restore(0) + cqg_restore(0),
        cqg_server(user_session_state_results=[
            cpb.UserSessionStateResult(session_token="nobody", result_code=0)]),
        key(100, 2) + varint(2**62),
        padded(logon, 5000),
    ]


# --- Firstock: valid and crafted bodies and socket messages ---------------------------------------


def fs_json(doc: object) -> bytes:
    return json.dumps(doc).encode()


def fs_failure(name: str, message: str, code: str = "401", field_name: str = "") -> bytes:
    return fs_json({"status": "Failed", "code": code, "name": name,
                    "error": {"field": field_name, "message": message}})


def fs_login_ok(token: object = TOKEN) -> bytes:
    return fs_json({"status": "Success", "data": {"actid": "FZ1", "susertoken": token,
                                                  "userName": "FUZZ"}})


def fs_valid_bodies() -> list[bytes]:
    return [
        fs_login_ok(),
        fs_json({"status": "success", "data": {"actid": "FZ1", "email": "x@example.invalid"}}),
        fs_failure("INVALID_PASSWORD", "password parameter is invalid", field_name="password"),
        fs_failure("INVALID_TOTP", "TOTP is invalid", field_name="TOTP"),
        fs_failure("API_RATE_LIMIT", "Too many requests", code="429"),
        fs_failure("SESSION_EXPIRED", "Session expired: log in again", field_name="jKey"),
        fs_failure("INVALID_INPUT", "Invalid Input : User Blocked due to multiple wrong attempts"),
        fs_failure("SERVER_ERROR", "Server error", code="401"),
        fs_json({"status": "Failed", "data": "User not LoggedIn"}),
        b"<html><body>502 Bad Gateway</body></html>",
    ]


def fs_crafted_bodies() -> list[bytes]:
    deep = b"[" * DEEP + b"]" * DEEP
    return [
        b"",
        deep,
        b'{"status": "Success", "data": ' + b"{\"a\": " * 5000 + b"1" + b"}" * 5000 + b"}",
        b"[]", b"[1, 2, 3]", b"42", b"null", b'"success"', b"true",
        b'{"status": "\xff\xfe"}',
        b"\xff\xfe\xfd",
        fs_login_ok(12345), fs_login_ok(None), fs_login_ok(""), fs_login_ok(["t"]),
        fs_login_ok({"t": 1}), fs_login_ok(True),
        fs_json({"status": "Success", "data": "a string where an object belongs"}),
        fs_json({"status": "Success"}),
        fs_json({"status": ["success"], "data": {"susertoken": TOKEN}}),
        fs_json({"status": None}),
        fs_json({"status": "Failed", "name": ["INVALID_PASSWORD"], "code": {"x": 1},
                 "error": "not an object"}),
        fs_json({"status": "Failed", "name": 1e308, "code": 10**40,
                 "error": {"field": [1], "message": {"deep": [[[]]]}}}),
        b'{"status": "Failed", "code": ' + b"9" * 5000 + b"}",
        b'{"status": "Failed", "code": 1e999}',
        b'{"status": "Success", "data": {"susertoken": "' + b"x" * 100_000 + b'"}}',
        b'{"status": "Success"} trailing',
        b'{"status": "Success", "status": "Failed"}',
    ]


#: Statuses the REST answers are read with, and Retry-After values.
FS_STATUSES: Final = (200, 200, 201, 400, 401, 403, 404, 429, 500, 502, 503, 999)
FS_RETRY_AFTER: Final = (None, None, "2", "0.5", "-1", "nan", "inf", "1e400", "soon", "9" * 400)


def fs_noren_ok() -> str:
    return json.dumps({"t": "ck", "s": "OK", "uid": "FZ1"})


def fs_valid_messages() -> list[bytes]:
    return [s.encode() for s in (
        fs_noren_ok(),
        json.dumps({"t": "ck", "s": "Not_Ok", "emsg": "Invalid Session Key"}),
        json.dumps({"status": "success", "message": "Authentication successful"}),
        json.dumps({"status": "failed", "message": "unauthenticated"}),
        "Maximum sessions limit (3) reached",
        json.dumps({"t": "tk", "e": "NSE", "tk": "22", "lp": "100.05"}),
        json.dumps({"t": "df", "e": "NSE", "tk": "22", "lp": "100.10"}),
    )]


def fs_crafted_messages() -> list[Data]:
    return [
        b"",
        "",
        b"\xff\xfe",
        "not json",
        "[1, 2, 3]",
        "42",
        "null",
        '"ck"',
        "[" * DEEP + "]" * DEEP,
        b"[" * DEEP + b"]" * DEEP,
        '{"t": "ck", "s": "\udcff"}'.encode("utf-8", "surrogatepass"),
        '{"t": "ck", "s": ["OK"]}',
        '{"t": "ck", "s": null, "emsg": {"a": [1, 2]}}',
        '{"t": "ck", "s": ' + "[" * 900 + "]" * 900 + "}",
        '{"message": ' + "{\"a\":" * 900 + "1" + "}" * 900 + "}",
        '{"status": 1e999, "message": 123}',
        '{"t": "tk", "tk": ' + "9" * 5000 + "}",
        fs_noren_ok() + fs_noren_ok(),
        fs_noren_ok().encode(),
    ]
