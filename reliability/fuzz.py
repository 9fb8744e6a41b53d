"""Hostile input for every broker decoder, and hostile servers over real loopback sockets.

``fuzz_decoders`` feeds each decoder (QST and CQG protobuf frames, Firstock REST bodies and socket
messages) and each sans-IO session in the states that read them with seeded random bytes,
mutations of valid frames and bodies, and hand-made hostile ones (unknown enum values and fields,
wrong wire types, several oneof members, text where binary belongs, invalid UTF-8, deeply nested
or wrongly typed JSON, huge numbers). Per input it checks that only the codec's own exception
leaves a decoder, that a session never raises and stays in one of its declared states, and that
whenever the input ended or interrupted the login, the session says the broker sent it.

``hostile_servers`` does the same end to end: minimal hostile brokers on loopback
(``reliability.hostile``) answer ``open_session``'s login with oversized frames, text or invalid
UTF-8 where binary belongs, frames that break the WebSocket protocol, random bytes, duplicate or
unsolicited login results, answers for request ids nobody used, hostile REST bodies and socket
messages. Every session must end in the state its case expects with an error naming the broker
(or stay authenticated where the input is harmless). Run it under ``trio.testing.MockClock``.

Everything is counted in a ``Tally``; a failure becomes one ``problem`` line with a short,
reproducible description of the input (credentials are never shown).
"""

from __future__ import annotations

import itertools
import json
import math
import random
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

import trio

from brokergate import (
    AuditLog,
    Backoff,
    BrokerMessage,
    CqgConfig,
    FirstockConfig,
    MemoryTokenStore,
    Notice,
    QstConfig,
    Secret,
    SessionError,
    open_session,
)
from brokergate.machines import (
    AUTHENTICATED,
    AWAITING_LOGIN_RESPONSE,
    BACKOFF,
    DISCONNECTED,
    DISPLACED,
    FAILED,
    LOCKED_OUT,
    TERMINAL_STATES,
    Closed,
    Command,
    Connected,
    Fault,
    FrameReceived,
    HttpAnswered,
    LoginModel,
    SessionSettings,
    Start,
    TimerFired,
    Transitioned,
)
from brokergate.machines._states import RESTORING
from brokergate.machines.cqg import codec as cqg_codec
from brokergate.machines.cqg import table as cqg_table
from brokergate.machines.cqg.model import CqgSession
from brokergate.machines.firstock import codec as fs_codec
from brokergate.machines.firstock import table as fs_table
from brokergate.machines.firstock.model import FirstockSession
from brokergate.machines.qst import codec as qst_codec
from brokergate.machines.qst import table as qst_table
from brokergate.machines.qst.model import QstSession
from brokergate.simulators._websocket import running
from brokergate.simulators.firstock.http11 import Reply
from reliability.corpus import (
    API_KEY,
    CQG_RESULT_CODE_AS_BYTES,
    CQG_UNKNOWN_FIELD,
    DEEP,
    DEFAULT_LIMIT,
    FS_RETRY_AFTER,
    FS_STATUSES,
    PASSWORD,
    SECRETS,
    SMALL_LIMIT,
    STORED_TOKEN,
    TOKEN,
    WALL,
    Data,
    cqg_crafted,
    cqg_logon,
    cqg_restore,
    cqg_valid,
    fs_crafted_bodies,
    fs_crafted_messages,
    fs_failure,
    fs_json,
    fs_login_ok,
    fs_noren_ok,
    fs_valid_bodies,
    fs_valid_messages,
    length_delimited,
    mutate,
    names_broker,
    padded,
    qst_crafted,
    qst_error,
    qst_login_ok,
    qst_translated,
    qst_valid,
    random_bytes,
    show,
    stream_of,
    utf8_broken,
    varint_field,
)
from reliability.hostile import (
    BINARY,
    TEXT,
    Drop,
    Garbage,
    HostileHttpServer,
    HostileWebSocketServer,
    Out,
    Pause,
    Plan,
    Raw,
    scripted,
)
from reliability.tally import Tally

# --- labels ---------------------------------------------------------------------------------------

QST_FRAMES: Final = "QST frames"
CQG_FRAMES: Final = "CQG frames"
FIRSTOCK_REST: Final = "Firstock REST bodies"
FIRSTOCK_SOCKET: Final = "Firstock socket messages"
QST_HOSTILE: Final = "QST hostile server"
CQG_HOSTILE: Final = "CQG hostile server"
FIRSTOCK_HOSTILE_REST: Final = "Firstock hostile REST server"
FIRSTOCK_HOSTILE_SOCKET: Final = "Firstock hostile socket server"


# --- the sans-IO sessions, put in the state that reads an input ----------------------------------


def _qst_config(url: str = "ws://127.0.0.1:9/", user: str = "fuzz", **overrides: Any) -> QstConfig:
    values: dict[str, Any] = {"url": url, "user_name": user, "password": Secret(PASSWORD),
                              "client_id": "brokergate-fuzz"}
    values.update(overrides)
    return QstConfig(**values)


def _cqg_config(url: str = "ws://127.0.0.1:9/", user: str = "fuzz", **overrides: Any) -> CqgConfig:
    values: dict[str, Any] = {"url": url, "user_name": user, "password": Secret(PASSWORD),
                              "client_app_id": "brokergate-fuzz", "min_logon_interval": 0.5}
    values.update(overrides)
    return CqgConfig(**values)


def _fs_config(base_url: str = "http://127.0.0.1:9/api/V3",
               socket_url: str | None = "ws://127.0.0.1:9/NorenWSTP/", user: str = "FZ1",
               **overrides: Any) -> FirstockConfig:
    values: dict[str, Any] = {
        "base_url": base_url, "user_id": user, "password": Secret(PASSWORD),
        "api_key": Secret(API_KEY), "vendor_code": f"{user}_API", "totp": Secret("123456"),
        "socket": "noren" if socket_url else "none", "socket_url": socket_url,
        "requests_per_second": None,
    }
    values.update(overrides)
    return FirstockConfig(**values)


def _ready(session: LoginModel, where: str) -> LoginModel:
    if session.state != where:
        raise AssertionError(f"the {session.broker} fuzz session reached {session.state}, "
                             f"not {where}")
    return session


def qst_session(where: str) -> QstSession:
    s = QstSession(_qst_config(), rng=random.Random(1))
    s.handle(Start())
    s.handle(Connected(s.epoch))
    if where == AUTHENTICATED:
        s.handle(FrameReceived(s.epoch, qst_login_ok()))
        s.handle(TimerFired("stable"))
    _ready(s, where)
    return s


def cqg_session(where: str) -> CqgSession:
    s = CqgSession(_cqg_config(), rng=random.Random(1), clock=lambda: 1000.0)
    s.handle(Start())
    s.handle(Connected(s.epoch))
    if where in (AUTHENTICATED, RESTORING):
        s.handle(FrameReceived(s.epoch, cqg_logon(0)))
        s.handle(TimerFired("stable"))
    if where == RESTORING:
        s.handle(Closed(s.epoch, 1006))
        s.handle(Connected(s.epoch))
    _ready(s, where)
    return s


def firstock_session(where: str, *, socket: str = "noren") -> FirstockSession:
    stored = (Secret(STORED_TOKEN), WALL) if where == fs_table.VALIDATING_TOKEN else None
    socket_url = None if socket == "none" else "ws://127.0.0.1:9/NorenWSTP/"
    config = _fs_config(socket_url=socket_url, socket=socket)
    s = FirstockSession(config, rng=random.Random(1), clock=lambda: 1000.0, wall=lambda: WALL,
                        stored=stored)
    s.handle(Start())
    if where in (AWAITING_LOGIN_RESPONSE, AUTHENTICATED):
        s.handle(HttpAnswered("login", s.call_serial, 200, fs_login_ok()))
        if socket != "none":
            s.handle(Connected(s.epoch))
    if where == AUTHENTICATED and socket == "noren":
        s.handle(FrameReceived(s.epoch, fs_noren_ok()))
    _ready(s, where)
    return s


# --- the per-input checks ----------------------------------------------------------------------


def _state_names(machine: Any) -> frozenset[str]:
    return frozenset(state["name"] for state in machine.STATES)


QST_STATES: Final = _state_names(qst_table)
CQG_STATES: Final = _state_names(cqg_table)
FS_STATES: Final = _state_names(fs_table)

#: Where a session goes when an input ended or interrupted its login.
_LEFT: Final = frozenset({FAILED, LOCKED_OUT, DISPLACED, BACKOFF, DISCONNECTED,
                          RESTORING})


@dataclass
class Fed:
    """What one input did to one session."""

    before: str
    after: str
    commands: list[Command] = field(default_factory=list)
    raised: BaseException | None = None


def feed(session: LoginModel, event: Any) -> Fed:
    before = session.state
    try:
        commands = session.handle(event)
    except Exception as exc:  # the property under test: nothing escapes a session
        return Fed(before, session.state, [], exc)
    return Fed(before, session.state, commands)


def check_session(tally: Tally, session: LoginModel, fed: Fed, states: frozenset[str],
                  what: str) -> bool:
    """The properties every session keeps, whatever it was fed. True when all hold."""
    broker, name = session.broker, session.broker_name
    if fed.raised is not None:
        tally.problem(broker, f"{what}: the session in {fed.before} raised "
                              f"{type(fed.raised).__name__}: {fed.raised}")
        return False
    if fed.after not in states:
        tally.problem(broker, f"{what}: the session is in {fed.after!r}, not a declared state")
        return False
    ok = True
    moved = fed.after != fed.before and fed.after in _LEFT
    if moved and not names_broker(session.detail, name):
        tally.problem(broker, f"{what}: {fed.before} -> {fed.after} ({session.reason}) with a "
                              f"detail that does not name {name}: {session.detail!r}")
        ok = False
    if moved and session.fault in (Fault.NETWORK, Fault.INTERNAL):
        tally.problem(broker, f"{what}: {fed.before} -> {fed.after} blamed on "
                              f"{session.fault}, not on what {name} sent")
        ok = False
    if fed.after == BACKOFF and not (session.delay is not None and math.isfinite(session.delay)
                                     and session.delay <= fs_codec.MAX_RETRY_AFTER + 60):
        tally.problem(broker, f"{what}: backoff of {session.delay} s")
        ok = False
    for command in fed.commands:
        if isinstance(command, Notice) and command.fault is Fault.BROKER and not names_broker(
                command.detail, name):
            tally.problem(broker, f"{what}: notice {command.kind!r} does not name {name}: "
                                  f"{command.detail!r}")
            ok = False
    return ok


def expect_malformed(tally: Tally, session: LoginModel, fed: Fed, what: str, *,
                     states: dict[str, str], prefix: str) -> None:
    """An input the codec refused: the session goes where its policy says, for protocol_error,
    blaming the broker with a detail that starts with ``prefix``."""
    wanted = states.get(fed.before)
    if wanted is None:
        return
    if (fed.after, session.reason, session.fault) != (wanted, "protocol_error", Fault.BROKER):
        tally.problem(session.broker, f"{what}: refused by the codec, yet {fed.before} -> "
                                      f"{fed.after} ({session.reason}, {session.fault})")
    elif not (session.detail or "").startswith(prefix):
        tally.problem(session.broker, f"{what}: detail {session.detail!r} does not start with "
                                      f"{prefix!r}")


@dataclass(frozen=True)
class _ProtobufTarget:
    """One protobuf broker's decoder, its sessions, and what a refused frame must do."""

    broker: str
    label: str
    decode: Callable[[Data], Any]
    malformed: type[Exception]
    crafted: Callable[[], Sequence[Data]]
    valid: Callable[[], list[bytes]]
    session: Callable[[str], LoginModel]
    states: frozenset[str]
    #: Where a refused frame must take a session, from each state it was read in.
    refused: dict[str, str]
    #: A well-formed frame must leave an authenticated session authenticated.
    keeps_authenticated: bool


def _fuzz_protobuf(tally: Tally, rng: random.Random, count: int, t: _ProtobufTarget) -> None:
    name = t.broker.upper()
    for data in stream_of(rng, count, t.crafted(), t.valid(), text=False):
        tally.fuzzed[t.label] += 1
        what = f"{name} frame {show(data)}"
        refused = False
        try:
            t.decode(data)
        except t.malformed:
            refused = True
        except Exception as exc:
            tally.problem(t.broker, f"{what}: the decoder raised {type(exc).__name__}: {exc}")
            continue
        for where in t.refused:
            session = t.session(where)
            fed = feed(session, FrameReceived(session.epoch, data))
            if not check_session(tally, session, fed, t.states, what):
                continue
            if refused:
                expect_malformed(tally, session, fed, what, states=t.refused,
                                 prefix=f"{name} sent an invalid frame: ")
            elif t.keeps_authenticated and where == AUTHENTICATED and fed.after != AUTHENTICATED:
                tally.problem(t.broker, f"{what}: a well-formed frame moved an authenticated "
                                        f"session to {fed.after}")


def _fuzz_qst(tally: Tally, rng: random.Random, count: int) -> None:
    _fuzz_protobuf(tally, rng, count, _ProtobufTarget(
        "qst", QST_FRAMES, qst_codec.decode_response, qst_codec.MalformedFrame, qst_crafted,
        qst_valid, qst_session, QST_STATES,
        {AWAITING_LOGIN_RESPONSE: FAILED, AUTHENTICATED: BACKOFF}, keeps_authenticated=True))


def _fuzz_cqg(tally: Tally, rng: random.Random, count: int) -> None:
    _fuzz_protobuf(tally, rng, count, _ProtobufTarget(
        "cqg", CQG_FRAMES, cqg_codec.decode_server, cqg_codec.MalformedFrame, cqg_crafted,
        cqg_valid, cqg_session, CQG_STATES,
        {AWAITING_LOGIN_RESPONSE: FAILED, AUTHENTICATED: RESTORING,
         RESTORING: BACKOFF}, keeps_authenticated=False))


def json_object(data: Data) -> dict[str, Any] | None:
    """The fuzzer's own reading of a body or message: the JSON object in it, or None."""
    try:
        doc = json.loads(data)
    except (ValueError, RecursionError):
        return None
    return doc if isinstance(doc, dict) else None


def _check_answer(tally: Tally, answer: fs_codec.Answer, what: str) -> None:
    for name in ("name", "code", "field", "message"):
        value = getattr(answer, name)
        if value is not None and not isinstance(value, str):
            tally.problem("firstock", f"{what}: Answer.{name} is {type(value).__name__}")
    try:
        answer.describe()
    except Exception as exc:
        tally.problem("firstock", f"{what}: Answer.describe() raised {type(exc).__name__}")


def _fuzz_firstock_rest(tally: Tally, rng: random.Random, count: int) -> None:
    valid = fs_valid_bodies()
    for i, data in enumerate(stream_of(rng, count, fs_crafted_bodies(), valid)):
        assert isinstance(data, bytes)
        tally.fuzzed[FIRSTOCK_REST] += 1
        status = FS_STATUSES[i % len(FS_STATUSES)] if i < 40 else rng.choice(FS_STATUSES)
        retry_after = rng.choice(FS_RETRY_AFTER)
        limit = SMALL_LIMIT if rng.random() < 0.05 else None
        what = (f"Firstock HTTP {status} body {show(data)} (Retry-After {retry_after!r}"
                + (f", over a {limit}-byte limit)" if limit else ")"))
        try:
            answer = fs_codec.parse_answer(status, b"" if limit else data, retry_after,
                                           body_limit=limit)
        except Exception as exc:
            tally.problem("firstock", f"{what}: parse_answer raised {type(exc).__name__}: {exc}")
            continue
        _check_answer(tally, answer, what)
        body = b"" if limit else data
        for where, call in (("requesting_token", "login"),
                            (fs_table.VALIDATING_TOKEN, "userDetails")):
            session = firstock_session(where, socket="none")
            event = HttpAnswered(call, session.call_serial, status, body, retry_after, limit)
            fed = feed(session, event)
            if check_session(tally, session, fed, FS_STATES, what) and call == "login":
                _expect_rest(tally, session, fed, what, data=data if not limit else None,
                             status=status)
        session = firstock_session(AUTHENTICATED, socket="none")
        try:
            request, generation = session.application_request("limit", None)
            got = session.read_application_answer(
                HttpAnswered("limit", request.serial, status, body, retry_after, limit),
                generation)
            if not isinstance(got.detail, str):
                tally.problem("firstock", f"{what}: CallAnswer.detail is not text")
        except Exception as exc:
            tally.problem("firstock", f"{what}: an application answer raised "
                                      f"{type(exc).__name__}: {exc}")


def _expect_rest(tally: Tally, session: LoginModel, fed: Fed, what: str, *,
                 data: bytes | None, status: int) -> None:
    """What a login answer must do, read independently of the codec."""
    if data is None:
        wanted = ((BACKOFF, "rate_limited") if status == 429 else
                  (BACKOFF, "server_error") if status >= 500 else (FAILED, "answer_too_large"))
    else:
        doc = json_object(data)
        if doc is not None:
            status_word = doc.get("status")
            ok = isinstance(status_word, str) and status_word.lower() == "success"
            token = doc.get("data", {}).get("susertoken") if isinstance(
                doc.get("data"), dict) else None
            if ok and status < 400 and not (isinstance(token, str) and token):
                wanted = (FAILED, "protocol_error")
            else:
                return
        elif status == 429:
            wanted = (BACKOFF, "rate_limited")
        elif status >= 500:
            wanted = (BACKOFF, "server_error")
        else:
            wanted = (FAILED, "unreadable_answer")
    if (fed.after, session.reason) != wanted:
        tally.problem("firstock", f"{what}: login answer ended in {fed.after} "
                                  f"({session.reason}), not {wanted[0]} ({wanted[1]})")


def _fuzz_firstock_socket(tally: Tally, rng: random.Random, count: int) -> None:
    valid = fs_valid_messages()
    for data in stream_of(rng, count, fs_crafted_messages(), valid, text=True):
        tally.fuzzed[FIRSTOCK_SOCKET] += 1
        what = f"Firstock socket message {show(data)}"
        try:
            verdict = fs_codec.read_socket_message(data)
        except Exception as exc:
            tally.problem("firstock", f"{what}: read_socket_message raised "
                                      f"{type(exc).__name__}: {exc}")
            continue
        if not isinstance(verdict.text, str):
            tally.problem("firstock", f"{what}: SocketAnswer.text is not text")
        unreadable = _unreadable(data)
        if (verdict.unreadable is not None) != unreadable:
            tally.problem("firstock", f"{what}: read as {'un' if verdict.unreadable else ''}"
                                      "readable, which it is not")
        for where, socket in ((AWAITING_LOGIN_RESPONSE, "noren"), (AWAITING_LOGIN_RESPONSE, "v2"),
                              (AUTHENTICATED, "noren")):
            session = firstock_session(where, socket=socket)
            fed = feed(session, FrameReceived(session.epoch, data))
            if not check_session(tally, session, fed, FS_STATES, what):
                continue
            if where == AWAITING_LOGIN_RESPONSE and unreadable:
                expect_malformed(tally, session, fed, what,
                                 states={AWAITING_LOGIN_RESPONSE: FAILED},
                                 prefix="Firstock sent an unreadable socket message: ")
                if TOKEN in (session.detail or ""):
                    tally.problem("firstock", f"{what}: the detail shows the token")
            elif where == AUTHENTICATED and fed.after != AUTHENTICATED:
                tally.problem("firstock", f"{what}: a socket message moved an authenticated "
                                          f"session to {fed.after}")


def _unreadable(data: Data) -> bool:
    """Whether a socket message is unreadable, read independently of the codec."""
    if isinstance(data, bytes):
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            return True
    else:
        text = data
    if "Maximum sessions limit" in text:
        return False
    return json_object(text) is None


def fuzz_decoders(tally: Tally, *, seed: int, count: int) -> None:
    """Feed ``count`` seeded inputs to each decoder and the sessions that read them."""
    _fuzz_qst(tally, random.Random(f"{seed}-qst"), count)
    _fuzz_cqg(tally, random.Random(f"{seed}-cqg"), count)
    _fuzz_firstock_rest(tally, random.Random(f"{seed}-firstock-rest"), count)
    _fuzz_firstock_socket(tally, random.Random(f"{seed}-firstock-socket"), count)


# --- hostile servers over loopback ----------------------------------------------------------------

#: Retries short and few, so a hostile case ends in a few virtual seconds.
HOSTILE_BACKOFF: Final = Backoff(initial=0.2, factor=2.0, cap=1.0, max_attempts=2,
                                 stability_window=5.0)
#: Virtual seconds a hostile session gets to settle before it counts as hung.
SETTLE_SECONDS: Final = 120.0
#: Virtual seconds between a login answer and the hostile frame that follows it.
PAUSE_SECONDS: Final = 1.0


@dataclass
class HostileResult:
    """How a session against a hostile server ended."""

    case: str
    broker: str
    state: str
    reason: str | None
    fault: str | None
    detail: str | None
    #: ``str()`` of the error ``wait_authenticated`` raised, if it did.
    error: str | None
    #: (kind, detail, fault) of each notice the session published.
    notices: list[tuple[str, str, str | None]]
    #: How many broker messages reached the application.
    messages: int
    #: False when the session had not settled within SETTLE_SECONDS (a hang).
    settled: bool
    attempts: int = 0
    audit: list[dict[str, Any]] = field(default_factory=list, repr=False)


@dataclass(frozen=True)
class Case:
    """A hostile server and what the session must end as: ``state`` and ``reason`` (None: the
    reason is not checked), ``notice`` (a notice kind it must publish), ``message`` (a broker
    message must reach the application), ``mentions`` (text the detail must contain)."""

    name: str
    broker: str
    label: str
    state: str
    reason: str | None
    fault: Fault | None = Fault.BROKER
    notice: str | None = None
    message: bool = False
    mentions: str = ""


def _ok(items: Sequence[Out], follow: Sequence[Out] = ()) -> Plan:
    return lambda number: (items, follow)


# QST: what answers the LoginRequest.
_QST_OK = qst_login_ok()
_QST_CASES: dict[str, tuple[Plan, dict[str, Any]]] = {
    "qst-oversized-login-answer": (_ok([b"\x00" * (SMALL_LIMIT + 1)]), {}),
    "qst-default-frame-limit": (_ok([b"\x00" * (DEFAULT_LIMIT + 1)]), {"max_frame_size": None}),
    "qst-frame-at-default-limit": (_ok([padded(_QST_OK, DEFAULT_LIMIT)]),
                                   {"max_frame_size": None}),
    "qst-text-frame": (_ok([_QST_OK.decode("latin-1")]), {}),
    "qst-invalid-utf8-text": (_ok([Raw(TEXT, b"\xff\xfe login")]), {}),
    "qst-invalid-utf8-field": (_ok([utf8_broken(qst_error(6, "Server error (6)"), "Server")]),
                               {}),
    "qst-broken-websocket-frame": (_ok([Raw(0x3, b"reserved opcode")]), {}),
    "qst-garbage-on-the-stream": (_ok([Garbage(b"\xff" * 32)]), {}),
    "qst-unknown-enum": (_ok([varint_field(1, 1) + length_delimited(2, varint_field(1, 99))]),
                         {}),
    "qst-unknown-oneof": (_ok([varint_field(1, 1) + length_delimited(11, b"future")]), {}),
    "qst-wrong-wire-type": (_ok([varint_field(1, 1) + varint_field(2, 1)]), {}),
    "qst-several-oneofs": (_ok([_QST_OK + qst_error(1, "Wrong password (1)")]), {}),
    "qst-duplicate-login-result": (_ok([_QST_OK, _QST_OK]), {}),
    "qst-unsolicited-login-result": (_ok([_QST_OK], [_QST_OK]), {}),
    "qst-unknown-request-id": (_ok([_QST_OK], [qst_translated(999_999, "ESZ6")]), {}),
    "qst-answer-before-login": (_ok([qst_translated(16, "ESZ6")]), {}),
    "qst-login-result-for-another-request": (_ok([qst_login_ok(request_id=7)]), {}),
}

_CQG_OK = cqg_logon(0)


def _cqg_restore_plan(hostile: Sequence[Out], then: Sequence[Out] | None = None) -> Plan:
    """Log on, drop the connection after the stability window, answer the restore with
    ``hostile``, and every later connection with ``then`` (by default ``hostile`` again)."""
    def plan(number: int) -> tuple[Sequence[Out], Sequence[Out]]:
        if number == 1:
            return [_CQG_OK], [Pause(HOSTILE_BACKOFF.stability_window), Drop()]
        if number == 2 or then is None:
            return hostile, []
        return then, []
    return plan


_CQG_CASES: dict[str, tuple[Plan, dict[str, Any]]] = {
    "cqg-oversized-logon-result": (_ok([b"\x00" * (SMALL_LIMIT + 1)]), {}),
    "cqg-default-frame-limit": (_ok([b"\x00" * (DEFAULT_LIMIT + 1)]), {"max_frame_size": None}),
    "cqg-text-frame": (_ok([_CQG_OK.decode("latin-1")]), {}),
    "cqg-invalid-utf8-text": (_ok([Raw(TEXT, b"\xff\xfe logon")]), {}),
    "cqg-invalid-utf8-field": (_ok([utf8_broken(cqg_logon(101, text="Access denied"),
                                                 "Access")]), {}),
    "cqg-broken-websocket-frame": (_ok([Raw(BINARY, _CQG_OK, rsv=4)]), {}),
    "cqg-unknown-result-code": (_ok([cqg_logon(999, text="a code from the future")]), {}),
    "cqg-missing-required-field": (_ok([cqg_crafted()[9]]), {}),
    "cqg-wrong-wire-type": (_ok([CQG_RESULT_CODE_AS_BYTES]), {}),
    "cqg-duplicate-logon-result": (_ok([_CQG_OK, _CQG_OK]), {}),
    "cqg-unsolicited-logon-result": (_ok([_CQG_OK], [_CQG_OK]), {}),
    "cqg-unsolicited-restore-result": (_ok([_CQG_OK], [cqg_restore(0)]), {}),
    "cqg-unknown-request-id": (_ok([_CQG_OK], [CQG_UNKNOWN_FIELD]), {}),
    # A redirect to an allowed domain whose host name cannot even be encoded (a label over 63
    # characters): connecting must fail like any connection, not take the process down.
    "cqg-redirect-to-unencodable-host": (
        _ok([cqg_logon(106, redirect_url="wss://" + "a" * 70 + ".cqg.com/")]),
        {"config": {"redirect_hosts": ("cqg.com",)}}),
    "cqg-hostile-restore-result": (_cqg_restore_plan(["a text frame"]), {}),
    "cqg-unknown-restore-result-code": (_cqg_restore_plan([cqg_restore(777)], then=[_CQG_OK]),
                                        {}),
}

_FS_OK_SOCKET = fs_noren_ok()
_FS_SOCKET_CASES: dict[str, tuple[Plan, dict[str, Any]]] = {
    "firstock-socket-binary-not-utf8": (_ok([b"\xff\xfe\x00"]), {}),
    "firstock-socket-invalid-utf8-text": (_ok([Raw(TEXT, b'{"t":"ck","s":"\xff"}')]), {}),
    "firstock-socket-not-json": (_ok(["<html>not json</html>"]), {}),
    "firstock-socket-not-an-object": (_ok(["[1, 2, 3]"]), {}),
    "firstock-socket-deeply-nested-json": (_ok(["[" * DEEP + "]" * DEEP]),
                                           {"max_frame_size": None}),
    "firstock-socket-oversized": (_ok(["x" * (SMALL_LIMIT + 1)]), {}),
    "firstock-socket-duplicate-verdict": (_ok([_FS_OK_SOCKET, _FS_OK_SOCKET]), {}),
    "firstock-socket-unsolicited-verdict": (_ok([_FS_OK_SOCKET], [json.dumps(
        {"t": "ck", "s": "Not_Ok", "emsg": "Invalid Session Key"})]), {}),
    "firstock-socket-unknown-token-data": (_ok([_FS_OK_SOCKET], [json.dumps(
        {"t": "tk", "e": "NSE", "tk": "999999", "lp": "1.00"})]), {}),
    "firstock-socket-garbage-while-authenticated": (_ok([_FS_OK_SOCKET], [b"\xff\xfe"]), {}),
}

#: Firstock REST: the body (and status, headers) answering the login.
_FS_REST_CASES: dict[str, tuple[Reply, dict[str, Any]]] = {
    "firstock-rest-deeply-nested-json": (Reply(200, b"[" * DEEP + b"]" * DEEP),
                                         {"max_frame_size": None}),
    "firstock-rest-list": (Reply(200, b"[1, 2, 3]"), {}),
    "firstock-rest-null": (Reply(200, b"null"), {}),
    "firstock-rest-number": (Reply(200, b"42"), {}),
    "firstock-rest-invalid-utf8": (Reply(200, b'{"status": "Success\xff"}'), {}),
    "firstock-rest-huge-number": (Reply(200, b'{"status": ' + b"9" * 5000 + b"}"),
                                  {"max_frame_size": None}),
    "firstock-rest-empty": (Reply(200, b""), {}),
    "firstock-rest-too-large": (Reply(200, b" " * (SMALL_LIMIT + 1)), {}),
    "firstock-rest-default-limit": (Reply(200, b" " * (DEFAULT_LIMIT + 1)),
                                    {"max_frame_size": None}),
    "firstock-rest-token-a-number": (Reply(200, fs_login_ok(12345)), {}),
    "firstock-rest-token-an-object": (Reply(200, fs_login_ok({"value": TOKEN})), {}),
    "firstock-rest-data-a-string": (Reply(200, fs_json({"status": "Success",
                                                        "data": "susertoken"})), {}),
    "firstock-rest-status-wrong-type": (Reply(200, fs_json({"status": ["Success"],
                                                            "data": {"susertoken": TOKEN}})), {}),
    "firstock-rest-retry-after-infinite": (Reply(429, fs_failure("API_RATE_LIMIT", "slow down",
                                                                 code="429"),
                                                 headers=(("retry-after", "inf"),)), {}),
}

#: Every named case and what it must end as.
CASES: Final[dict[str, Case]] = {c.name: c for c in [
    Case("qst-oversized-login-answer", "qst", QST_HOSTILE, FAILED, "gave_up",
         mentions=f"QST sent a frame larger than max_frame_size ({SMALL_LIMIT} bytes)"),
    Case("qst-default-frame-limit", "qst", QST_HOSTILE, FAILED, "gave_up",
         mentions=f"QST sent a frame larger than max_frame_size ({DEFAULT_LIMIT} bytes)"),
    Case("qst-frame-at-default-limit", "qst", QST_HOSTILE, AUTHENTICATED, None, None),
    Case("qst-text-frame", "qst", QST_HOSTILE, FAILED, "protocol_error",
         mentions="QST sent an invalid frame: a text frame"),
    Case("qst-invalid-utf8-text", "qst", QST_HOSTILE, FAILED, "protocol_error",
         mentions="QST broke the WebSocket protocol: text that is not valid UTF-8"),
    Case("qst-invalid-utf8-field", "qst", QST_HOSTILE, FAILED, "protocol_error",
         mentions="QST sent an invalid frame: a Response whose error.message is not valid UTF-8"),
    Case("qst-broken-websocket-frame", "qst", QST_HOSTILE, FAILED, "protocol_error",
         mentions="QST broke the WebSocket protocol: an invalid frame"),
    Case("qst-garbage-on-the-stream", "qst", QST_HOSTILE, FAILED, "protocol_error",
         mentions="QST broke the WebSocket protocol"),
    Case("qst-unknown-enum", "qst", QST_HOSTILE, AUTHENTICATED, None, None),
    Case("qst-unknown-oneof", "qst", QST_HOSTILE, FAILED, "protocol_error",
         mentions="QST sent an invalid frame: 10 bytes that carry no known Response field"),
    Case("qst-wrong-wire-type", "qst", QST_HOSTILE, FAILED, "protocol_error",
         mentions="QST sent an invalid frame"),
    Case("qst-several-oneofs", "qst", QST_HOSTILE, FAILED, "invalid_credentials",
         Fault.CONFIGURATION, mentions="QST ErrorMessage: 'Wrong password (1)'"),
    Case("qst-duplicate-login-result", "qst", QST_HOSTILE, AUTHENTICATED, None, None,
         notice="unexpected_frame"),
    Case("qst-unsolicited-login-result", "qst", QST_HOSTILE, AUTHENTICATED, None, None,
         notice="unexpected_frame"),
    Case("qst-unknown-request-id", "qst", QST_HOSTILE, AUTHENTICATED, None, None,
         notice="unknown_request_id"),
    Case("qst-answer-before-login", "qst", QST_HOSTILE, FAILED, "protocol_error",
         mentions="QST sent an invalid frame: a translate_instrument_symbol for request 16"),
    Case("qst-login-result-for-another-request", "qst", QST_HOSTILE, FAILED, "protocol_error",
         mentions="QST sent an invalid frame: a login for request 7"),
    Case("cqg-oversized-logon-result", "cqg", CQG_HOSTILE, FAILED, "gave_up",
         mentions=f"CQG sent a frame larger than max_frame_size ({SMALL_LIMIT} bytes)"),
    Case("cqg-default-frame-limit", "cqg", CQG_HOSTILE, FAILED, "gave_up",
         mentions=f"CQG sent a frame larger than max_frame_size ({DEFAULT_LIMIT} bytes)"),
    Case("cqg-text-frame", "cqg", CQG_HOSTILE, FAILED, "protocol_error",
         mentions="CQG sent an invalid frame: a text frame"),
    Case("cqg-invalid-utf8-text", "cqg", CQG_HOSTILE, FAILED, "protocol_error",
         mentions="CQG broke the WebSocket protocol: text that is not valid UTF-8"),
    Case("cqg-invalid-utf8-field", "cqg", CQG_HOSTILE, FAILED, "protocol_error",
         mentions="CQG sent an invalid frame: a LogonResult whose text_message is not valid"),
    Case("cqg-broken-websocket-frame", "cqg", CQG_HOSTILE, FAILED, "protocol_error",
         mentions="CQG broke the WebSocket protocol: an invalid frame"),
    Case("cqg-unknown-result-code", "cqg", CQG_HOSTILE, FAILED, "unknown_result",
         mentions="CQG LogonResult 999"),
    Case("cqg-missing-required-field", "cqg", CQG_HOSTILE, FAILED, "protocol_error",
         mentions="CQG sent an invalid frame: a LogonResult without its required"),
    Case("cqg-wrong-wire-type", "cqg", CQG_HOSTILE, FAILED, "protocol_error",
         mentions="CQG sent an invalid frame: a LogonResult without its required result_code"),
    Case("cqg-duplicate-logon-result", "cqg", CQG_HOSTILE, AUTHENTICATED, None, None,
         notice="unexpected_frame"),
    Case("cqg-unsolicited-logon-result", "cqg", CQG_HOSTILE, AUTHENTICATED, None, None,
         notice="unexpected_frame"),
    Case("cqg-unsolicited-restore-result", "cqg", CQG_HOSTILE, AUTHENTICATED, None, None,
         notice="unexpected_frame"),
    Case("cqg-unknown-request-id", "cqg", CQG_HOSTILE, AUTHENTICATED, None, None,
         message=True),
    Case("cqg-redirect-to-unencodable-host", "cqg", CQG_HOSTILE, FAILED, "gave_up",
         Fault.NETWORK, mentions="could not connect: UnicodeError"),
    Case("cqg-hostile-restore-result", "cqg", CQG_HOSTILE, FAILED, "gave_up",
         mentions="CQG sent an invalid frame: a text frame"),
    Case("cqg-unknown-restore-result-code", "cqg", CQG_HOSTILE, AUTHENTICATED, None, None,
         notice="session_lost"),
    Case("firstock-socket-binary-not-utf8", "firstock", FIRSTOCK_HOSTILE_SOCKET, FAILED,
         "protocol_error", mentions="Firstock sent an unreadable socket message: a binary "
                                    "frame of 3 bytes that is not UTF-8"),
    Case("firstock-socket-invalid-utf8-text", "firstock", FIRSTOCK_HOSTILE_SOCKET, FAILED,
         "protocol_error", mentions="Firstock broke the WebSocket protocol: text that is not"),
    Case("firstock-socket-not-json", "firstock", FIRSTOCK_HOSTILE_SOCKET, FAILED,
         "protocol_error", mentions="Firstock sent an unreadable socket message: 21 characters "
                                    "that are not JSON"),
    Case("firstock-socket-not-an-object", "firstock", FIRSTOCK_HOSTILE_SOCKET, FAILED,
         "protocol_error", mentions="Firstock sent an unreadable socket message: JSON an array"),
    Case("firstock-socket-deeply-nested-json", "firstock", FIRSTOCK_HOSTILE_SOCKET, FAILED,
         "protocol_error", mentions="Firstock sent an unreadable socket message: "
                                    f"{2 * DEEP} characters of JSON nested too deeply"),
    Case("firstock-socket-oversized", "firstock", FIRSTOCK_HOSTILE_SOCKET, FAILED, "gave_up",
         mentions=f"Firstock sent a frame larger than max_frame_size ({SMALL_LIMIT} bytes)"),
    Case("firstock-socket-duplicate-verdict", "firstock", FIRSTOCK_HOSTILE_SOCKET,
         AUTHENTICATED, None, None, notice="unexpected_frame"),
    Case("firstock-socket-unsolicited-verdict", "firstock", FIRSTOCK_HOSTILE_SOCKET,
         AUTHENTICATED, None, None, notice="unexpected_frame"),
    Case("firstock-socket-unknown-token-data", "firstock", FIRSTOCK_HOSTILE_SOCKET,
         AUTHENTICATED, None, None, message=True),
    Case("firstock-socket-garbage-while-authenticated", "firstock", FIRSTOCK_HOSTILE_SOCKET,
         AUTHENTICATED, None, None, message=True),
    Case("firstock-rest-deeply-nested-json", "firstock", FIRSTOCK_HOSTILE_REST, FAILED,
         "unreadable_answer", mentions="login: Firstock answered HTTP 200 with a body that is "
                                       "not Firstock's JSON"),
    Case("firstock-rest-list", "firstock", FIRSTOCK_HOSTILE_REST, FAILED, "unreadable_answer",
         mentions="Firstock answered HTTP 200"),
    Case("firstock-rest-null", "firstock", FIRSTOCK_HOSTILE_REST, FAILED, "unreadable_answer",
         mentions="Firstock answered HTTP 200"),
    Case("firstock-rest-number", "firstock", FIRSTOCK_HOSTILE_REST, FAILED, "unreadable_answer",
         mentions="Firstock answered HTTP 200"),
    Case("firstock-rest-invalid-utf8", "firstock", FIRSTOCK_HOSTILE_REST, FAILED,
         "unreadable_answer", mentions="Firstock answered HTTP 200"),
    Case("firstock-rest-huge-number", "firstock", FIRSTOCK_HOSTILE_REST, FAILED,
         "unreadable_answer", mentions="Firstock answered HTTP 200"),
    Case("firstock-rest-empty", "firstock", FIRSTOCK_HOSTILE_REST, FAILED, "unreadable_answer",
         mentions="Firstock answered HTTP 200"),
    Case("firstock-rest-too-large", "firstock", FIRSTOCK_HOSTILE_REST, FAILED,
         "answer_too_large", mentions=f"login: Firstock answered HTTP 200 with a body larger "
                                      f"than {SMALL_LIMIT} bytes"),
    Case("firstock-rest-default-limit", "firstock", FIRSTOCK_HOSTILE_REST, FAILED,
         "answer_too_large", mentions=f"with a body larger than {DEFAULT_LIMIT} bytes"),
    Case("firstock-rest-token-a-number", "firstock", FIRSTOCK_HOSTILE_REST, FAILED,
         "protocol_error", mentions="Firstock answered success without a susertoken (a number "
                                    "where a string belongs)"),
    Case("firstock-rest-token-an-object", "firstock", FIRSTOCK_HOSTILE_REST, FAILED,
         "protocol_error", mentions="without a susertoken (an object where a string belongs)"),
    Case("firstock-rest-data-a-string", "firstock", FIRSTOCK_HOSTILE_REST, FAILED,
         "protocol_error", mentions="without a susertoken (data is a string, not an object)"),
    Case("firstock-rest-status-wrong-type", "firstock", FIRSTOCK_HOSTILE_REST, FAILED,
         "unknown_error", mentions="login: Firstock answered HTTP 200"),
    Case("firstock-rest-retry-after-infinite", "firstock", FIRSTOCK_HOSTILE_REST, FAILED,
         "gave_up", mentions="Firstock answered HTTP 429 API_RATE_LIMIT"),
]}


# --- running the hostile sessions -------------------------------------------------------------

_USERS = itertools.count(1)
_STATES_OF: Final = {"qst": QST_STATES, "cqg": CQG_STATES, "firstock": FS_STATES}
_NAMES: Final = {"qst": "QST", "cqg": "CQG", "firstock": "Firstock"}


def _hostile_config(broker: str, url: str, options: dict[str, Any], *,
                    rest_url: str | None = None) -> SessionSettings:
    common: dict[str, Any] = {"connect_timeout": 2.0, "login_timeout": 2.0,
                              "logout_timeout": 1.0, "ping_interval": None,
                              "backoff": HOSTILE_BACKOFF}
    limit = options.get("max_frame_size", SMALL_LIMIT)
    if limit is not None:
        common["max_frame_size"] = limit
    common.update(options.get("config", {}))
    user = f"hostile{next(_USERS)}"
    if broker == "qst":
        return _qst_config(url, user, **common)
    if broker == "cqg":
        return _cqg_config(url, user, **common)
    socket_url = f"{url}NorenWSTP/" if url else None
    return _fs_config(rest_url or url, socket_url, user, request_timeout=2.0, **common)


def _rest_handler(login: Callable[[int], Reply]) -> Callable[[Any], Awaitable[Reply]]:
    """Answer the n-th login with ``login(n)``, a logout with success, anything else 404."""
    logins = itertools.count(1)

    async def handle(request: Any) -> Reply:
        if request.path.endswith("/login"):
            return login(next(logins))
        if request.path.endswith("/logout"):
            return Reply(200, fs_json({"status": "Success", "data": "Successfully logged out"}))
        return Reply(404, fs_failure("RESOURCE_NOT_FOUND", "no such endpoint", code="404"))

    return handle


async def _until_ended(session: Any) -> None:
    """Return once the session reaches a terminal state."""
    async with session.events() as stream:
        if session.state in TERMINAL_STATES:
            return
        async for event in stream:
            if isinstance(event, Transitioned) and event.dst in TERMINAL_STATES:
                return


async def _drive(name: str, config: SessionSettings, sent: trio.Event, *,
                 expect_auth: bool | None, seed: int) -> HostileResult:
    """Open a session against a hostile server and watch it until it settles.

    ``expect_auth``: True, it must stay authenticated through what the server sends after the
    login (wait for that); False, it must end (wait for a terminal state even after a login);
    None, either will do (stop at the first verdict).
    """
    audit: list[dict[str, Any]] = []
    notices: list[tuple[str, str, str | None]] = []
    messages = [0]
    error: str | None = None
    async with open_session(config, audit=AuditLog.collect(audit), rng=random.Random(seed),
                            token_store=MemoryTokenStore()) as session:
        stream = session.events()

        async def collect() -> None:
            async for event in stream:
                if isinstance(event, Notice):
                    notices.append((event.kind, event.detail,
                                    event.fault.value if event.fault else None))
                elif isinstance(event, BrokerMessage):
                    messages[0] += 1

        async with trio.open_nursery() as nursery:
            nursery.start_soon(collect)
            with trio.move_on_after(SETTLE_SECONDS) as waited:
                try:
                    await session.wait_authenticated()
                except SessionError as exc:
                    error = str(exc)
                else:
                    if expect_auth:
                        await sent.wait()
                        await trio.sleep(PAUSE_SECONDS)
                    elif expect_auth is not None:
                        await _until_ended(session)
                        try:
                            await session.wait_authenticated()
                        except SessionError as exc:
                            error = str(exc)
            outcome = session.outcome()
            nursery.cancel_scope.cancel()
        stream.close()
    return HostileResult(name, session.broker, outcome["state"], outcome["reason"],
                         outcome["fault"], outcome["detail"], error, notices, messages[0],
                         not waited.cancelled_caught, outcome["attempts"], audit)


async def _run_websocket(name: str, broker: str, plan: Plan, options: dict[str, Any], *,
                         expect_auth: bool | None, seed: int,
                         login: Callable[[int], Reply] | None = None) -> HostileResult:
    sent = trio.Event()
    server = HostileWebSocketServer(scripted(plan, sent, PAUSE_SECONDS))
    async with running(server, "127.0.0.1", 0):
        if broker != "firstock":
            config = _hostile_config(broker, server.url, options)
            return await _drive(name, config, sent, expect_auth=expect_auth, seed=seed)
        rest = HostileHttpServer(_rest_handler(login or (lambda n: Reply(200, fs_login_ok()))))
        async with running(rest, "127.0.0.1", 0):
            config = _hostile_config(broker, server.url, options, rest_url=rest.base_url)
            return await _drive(name, config, sent, expect_auth=expect_auth, seed=seed)


async def _run_rest(name: str, login: Callable[[int], Reply], options: dict[str, Any], *,
                    expect_auth: bool | None, seed: int) -> HostileResult:
    rest = HostileHttpServer(_rest_handler(login))
    async with running(rest, "127.0.0.1", 0):
        config = _hostile_config("firstock", "", options, rest_url=rest.base_url)
        return await _drive(name, config, trio.Event(), expect_auth=expect_auth, seed=seed)


async def run_case(name: str, *, seed: int = 0) -> HostileResult:
    """Run one named hostile case (a key of ``CASES``) and say how its session ended."""
    case = CASES[name]
    expect_auth = case.state == AUTHENTICATED
    for table in (_QST_CASES, _CQG_CASES, _FS_SOCKET_CASES):
        if name in table:
            plan, options = table[name]
            return await _run_websocket(name, case.broker, plan, options,
                                        expect_auth=expect_auth, seed=seed)
    reply, options = _FS_REST_CASES[name]
    return await _run_rest(name, lambda n: reply, options, expect_auth=expect_auth, seed=seed)


def case_problems(case: Case, result: HostileResult) -> list[str]:
    """How ``result`` falls short of what ``case`` must end as (empty: it does not)."""
    problems = _general_problems(result, network_ok=case.fault is Fault.NETWORK)
    if (result.state, result.reason) != (case.state, case.reason or result.reason):
        problems.append(f"ended {result.state} ({result.reason}), not {case.state} "
                        f"({case.reason}): {result.detail!r}")
    fault = case.fault.value if case.fault else None
    if case.state != AUTHENTICATED and result.fault != fault:
        problems.append(f"blamed on {result.fault}, not {fault}")
    if case.mentions and case.mentions not in (result.detail or ""):
        problems.append(f"detail {result.detail!r} does not say {case.mentions!r}")
    if case.notice and case.notice not in [kind for kind, _, _ in result.notices]:
        problems.append(f"no {case.notice!r} notice among {result.notices!r}")
    if case.message and not result.messages:
        problems.append("no broker message reached the application")
    return problems


def _general_problems(result: HostileResult, *, network_ok: bool = False) -> list[str]:
    """What every hostile session must keep: it settles, in a declared state, saying whose
    fault it was, with every notice about the broker naming it, and no credential shown.

    An end blamed on the network is allowed for a timeout (a frame the session has no use for
    leaves it waiting for its login answer), for a server the broker redirected the session to
    (the detail names the broker), and where ``network_ok`` says so.
    """
    name = _NAMES[result.broker]
    problems = []
    if not result.settled:
        problems.append(f"did not settle within {SETTLE_SECONDS:g} s (state {result.state})")
    if result.state not in _STATES_OF[result.broker]:
        problems.append(f"ended in {result.state!r}, not a declared state")
    if result.state != AUTHENTICATED:
        detail = result.detail or ""
        if result.fault == "internal":
            problems.append(f"blamed on a bug in brokergate: {detail!r}")
        elif result.fault == "network":
            if not (network_ok or "timeout" in detail or names_broker(detail, name)):
                problems.append(f"blamed on the network: {detail!r}")
        elif not names_broker(detail, name):
            problems.append(f"detail does not name {name}: {detail!r}")
    for kind, detail, fault in result.notices:
        if fault == "broker" and not names_broker(detail, name):
            problems.append(f"notice {kind!r} does not name {name}: {detail!r}")
    shown = json.dumps([result.detail, result.error, result.notices, result.audit], default=str)
    for secret in SECRETS:
        if secret in shown:
            problems.append("a credential shows in the outcome, notices or audit")
    return problems


def _random_answer(rng: random.Random, valid: Sequence[bytes]) -> bytes:
    return random_bytes(rng) if rng.random() < 0.3 else mutate(rng, rng.choice(valid), valid)


async def _run_random(kind: str, rng: random.Random, seed: int) -> tuple[HostileResult, str]:
    """One session against a server that answers with random or mutated bytes; the result and
    a description of the first answer, for the problem line."""
    answers: list[Data] = []

    def remember(data: Data) -> Data:
        answers.append(data)
        return data

    name = f"{kind}-random-{seed}"
    if kind in ("qst", "cqg"):
        valid = qst_valid() if kind == "qst" else cqg_valid()
        draws = [_random_answer(rng, valid) for _ in range(HOSTILE_BACKOFF.max_attempts or 1)]

        def plan(number: int) -> tuple[Sequence[Out], Sequence[Out]]:
            return [remember(draws[(number - 1) % len(draws)])], []

        result = await _run_websocket(name, kind, plan, {}, expect_auth=None, seed=seed)
    elif kind == "firstock-socket":
        valid = fs_valid_messages()
        draws = [_random_answer(rng, valid) for _ in range(HOSTILE_BACKOFF.max_attempts or 1)]
        as_text = [rng.random() < 0.5 for _ in draws]

        def socket_plan(number: int) -> tuple[Sequence[Out], Sequence[Out]]:
            i = (number - 1) % len(draws)
            data = draws[i]
            return [remember(data.decode("utf-8", "replace") if as_text[i] else data)], []

        result = await _run_websocket(name, "firstock", socket_plan, {}, expect_auth=None,
                                      seed=seed)
    else:
        valid = fs_valid_bodies()
        replies = []
        for _ in range(HOSTILE_BACKOFF.max_attempts or 1):
            retry_after = rng.choice(("1", "0.5", None, "soon"))
            replies.append(Reply(rng.choice(FS_STATUSES[:-1]), _random_answer(rng, valid),
                                 headers=(("retry-after", retry_after),) if retry_after else ()))

        def login(number: int) -> Reply:
            reply = replies[(number - 1) % len(replies)]
            remember(reply.body)
            return reply

        result = await _run_rest(name, login, {}, expect_auth=None, seed=seed)
    return result, show(answers[0]) if answers else "(nothing was asked)"


_RANDOM_LABELS: Final = {"qst": QST_HOSTILE, "cqg": CQG_HOSTILE,
                         "firstock-rest": FIRSTOCK_HOSTILE_REST,
                         "firstock-socket": FIRSTOCK_HOSTILE_SOCKET}


async def hostile_servers(tally: Tally, *, seed: int, count: int) -> None:
    """Every named case once, then ``count`` sessions per kind of hostile server (QST, CQG,
    Firstock REST, Firstock socket) answering with seeded random or mutated bytes."""
    for name, case in CASES.items():
        result = await run_case(name, seed=seed)
        _record(tally, case.broker, case.label, name, case_problems(case, result))
    rng = random.Random(f"{seed}-hostile")
    for i in range(count):
        for kind, label in _RANDOM_LABELS.items():
            result, first = await _run_random(kind, rng, seed * 1000 + i)
            problems = _general_problems(result)
            _record(tally, result.broker, label, f"{result.case} (first answer {first})",
                    problems)


def _record(tally: Tally, broker: str, label: str, what: str, problems: list[str]) -> None:
    tally.fuzzed[label] += 1
    tally.sessions[broker] += 1
    tally.hostile[broker] += 1
    if problems:
        for problem in problems:
            tally.problem(broker, f"{what}: {problem}")
    else:
        tally.expected[broker] += 1
