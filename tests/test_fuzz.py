"""Hostile servers and bad input: every decoder fuzzed, and sessions against hostile brokers on
loopback ending where they must, with an error that names the broker.

The long runs are ``python -m reliability``; these run the same code with modest counts."""

from __future__ import annotations

from typing import Any

import pytest
import trio
import trio.testing

from brokergate.machines import SessionSettings
from reliability import fuzz
from reliability.tally import Tally

DECODERS = (fuzz.QST_FRAMES, fuzz.CQG_FRAMES, fuzz.FIRSTOCK_REST, fuzz.FIRSTOCK_SOCKET)
HOSTILE = (fuzz.QST_HOSTILE, fuzz.CQG_HOSTILE, fuzz.FIRSTOCK_HOSTILE_REST,
           fuzz.FIRSTOCK_HOSTILE_SOCKET)
NAMES = {"qst": "QST", "cqg": "CQG", "firstock": "Firstock"}


@pytest.mark.parametrize("seed", [1, 2])
def test_every_decoder_survives_random_and_mutated_input(seed: int) -> None:
    tally = Tally()
    fuzz.fuzz_decoders(tally, seed=seed, count=300)
    assert tally.problems == []
    assert {label: tally.fuzzed[label] for label in DECODERS} == dict.fromkeys(DECODERS, 300)


def test_fuzzing_is_deterministic_per_seed() -> None:
    def inputs(seed: int) -> list[Any]:
        import random

        rng = random.Random(seed)
        return list(fuzz.stream_of(rng, 200, [], fuzz.qst_valid()))

    assert inputs(5) == inputs(5)
    assert inputs(5) != inputs(6)


async def test_every_hostile_server_ends_as_expected(clock: trio.testing.MockClock) -> None:
    tally = Tally()
    await fuzz.hostile_servers(tally, seed=1, count=4)
    assert tally.problems == []
    assert all(tally.fuzzed[label] > 0 for label in HOSTILE)
    assert sum(tally.fuzzed[label] for label in HOSTILE) == len(fuzz.CASES) + 4 * 4
    assert tally.sessions == tally.expected
    assert set(tally.sessions) == {"qst", "cqg", "firstock"}


def test_the_default_frame_limit_is_one_mebibyte() -> None:
    assert SessionSettings().max_frame_size == 1 << 20 == fuzz.DEFAULT_LIMIT


# --- each hostile case the issue lists, with the exact end it must reach ----------------------

FAILS = [
    # (case, state, reason, fault, what the detail must say)
    ("qst-oversized-login-answer", "failed", "gave_up", "broker",
     "close 1009 QST sent a frame larger than max_frame_size (4096 bytes)"),
    ("qst-default-frame-limit", "failed", "gave_up", "broker",
     "QST sent a frame larger than max_frame_size (1048576 bytes)"),
    ("qst-text-frame", "failed", "protocol_error", "broker",
     "QST sent an invalid frame: a text frame where QST sends only binary frames"),
    ("qst-invalid-utf8-text", "failed", "protocol_error", "broker",
     "close 1007 QST broke the WebSocket protocol: text that is not valid UTF-8"),
    ("qst-invalid-utf8-field", "failed", "protocol_error", "broker",
     "QST sent an invalid frame: a Response whose error.message is not valid UTF-8"),
    ("qst-broken-websocket-frame", "failed", "protocol_error", "broker",
     "close 1002 QST broke the WebSocket protocol: an invalid frame (Invalid opcode 0x3)"),
    ("qst-garbage-on-the-stream", "failed", "protocol_error", "broker",
     "close 1002 QST broke the WebSocket protocol"),
    ("qst-unknown-oneof", "failed", "protocol_error", "broker",
     "QST sent an invalid frame: 10 bytes that carry no known Response field"),
    ("qst-wrong-wire-type", "failed", "protocol_error", "broker",
     "QST sent an invalid frame: 4 bytes that carry no known Response field"),
    ("qst-several-oneofs", "failed", "invalid_credentials", "configuration",
     "QST ErrorMessage: 'Wrong password (1)'"),
    ("qst-answer-before-login", "failed", "protocol_error", "broker",
     "QST sent an invalid frame: a translate_instrument_symbol for request 16 before the login "
     "response"),
    ("qst-login-result-for-another-request", "failed", "protocol_error", "broker",
     "QST sent an invalid frame: a login for request 7 before the login response"),
    ("cqg-oversized-logon-result", "failed", "gave_up", "broker",
     "close 1009 CQG sent a frame larger than max_frame_size (4096 bytes)"),
    ("cqg-default-frame-limit", "failed", "gave_up", "broker",
     "CQG sent a frame larger than max_frame_size (1048576 bytes)"),
    ("cqg-text-frame", "failed", "protocol_error", "broker",
     "CQG sent an invalid frame: a text frame"),
    ("cqg-invalid-utf8-text", "failed", "protocol_error", "broker",
     "close 1007 CQG broke the WebSocket protocol: text that is not valid UTF-8"),
    ("cqg-invalid-utf8-field", "failed", "protocol_error", "broker",
     "CQG sent an invalid frame: a LogonResult whose text_message is not valid UTF-8"),
    ("cqg-broken-websocket-frame", "failed", "protocol_error", "broker",
     "close 1002 CQG broke the WebSocket protocol: an invalid frame (Reserved bit set"),
    ("cqg-unknown-result-code", "failed", "unknown_result", "broker",
     "CQG LogonResult 999: 'a code from the future'"),
    ("cqg-missing-required-field", "failed", "protocol_error", "broker",
     "CQG sent an invalid frame: a LogonResult without its required base_time"),
    ("cqg-wrong-wire-type", "failed", "protocol_error", "broker",
     "CQG sent an invalid frame: a LogonResult without its required result_code"),
    ("cqg-hostile-restore-result", "failed", "gave_up", "broker",
     "last: CQG sent an invalid frame: a text frame (12 characters)"),
    ("cqg-redirect-to-unencodable-host", "failed", "gave_up", "network",
     "could not connect: UnicodeError"),
    ("firstock-socket-binary-not-utf8", "failed", "protocol_error", "broker",
     "Firstock sent an unreadable socket message: a binary frame of 3 bytes that is not UTF-8"),
    ("firstock-socket-invalid-utf8-text", "failed", "protocol_error", "broker",
     "close 1007 Firstock broke the WebSocket protocol: text that is not valid UTF-8"),
    ("firstock-socket-not-json", "failed", "protocol_error", "broker",
     "Firstock sent an unreadable socket message: 21 characters that are not JSON"),
    ("firstock-socket-not-an-object", "failed", "protocol_error", "broker",
     "Firstock sent an unreadable socket message: JSON an array where an object belongs"),
    ("firstock-socket-deeply-nested-json", "failed", "protocol_error", "broker",
     "Firstock sent an unreadable socket message: 200000 characters of JSON nested too deeply"),
    ("firstock-socket-oversized", "failed", "gave_up", "broker",
     "close 1009 Firstock sent a frame larger than max_frame_size (4096 bytes)"),
    ("firstock-rest-deeply-nested-json", "failed", "unreadable_answer", "broker",
     "login: Firstock answered HTTP 200 with a body that is not Firstock's JSON"),
    ("firstock-rest-list", "failed", "unreadable_answer", "broker",
     "login: Firstock answered HTTP 200 with a body that is not Firstock's JSON"),
    ("firstock-rest-null", "failed", "unreadable_answer", "broker",
     "login: Firstock answered HTTP 200 with a body that is not Firstock's JSON"),
    ("firstock-rest-number", "failed", "unreadable_answer", "broker",
     "login: Firstock answered HTTP 200 with a body that is not Firstock's JSON"),
    ("firstock-rest-invalid-utf8", "failed", "unreadable_answer", "broker",
     "login: Firstock answered HTTP 200 with a body that is not Firstock's JSON"),
    ("firstock-rest-huge-number", "failed", "unreadable_answer", "broker",
     "login: Firstock answered HTTP 200 with a body that is not Firstock's JSON"),
    ("firstock-rest-empty", "failed", "unreadable_answer", "broker",
     "login: Firstock answered HTTP 200 with a body that is not Firstock's JSON"),
    ("firstock-rest-too-large", "failed", "answer_too_large", "broker",
     "login: Firstock answered HTTP 200 with a body larger than 4096 bytes (max_frame_size), "
     "not read"),
    ("firstock-rest-default-limit", "failed", "answer_too_large", "broker",
     "login: Firstock answered HTTP 200 with a body larger than 1048576 bytes"),
    ("firstock-rest-token-a-number", "failed", "protocol_error", "broker",
     "login: Firstock answered success without a susertoken (a number where a string belongs)"),
    ("firstock-rest-token-an-object", "failed", "protocol_error", "broker",
     "login: Firstock answered success without a susertoken (an object where a string belongs)"),
    ("firstock-rest-data-a-string", "failed", "protocol_error", "broker",
     "login: Firstock answered success without a susertoken (data is a string, not an object)"),
    ("firstock-rest-status-wrong-type", "failed", "unknown_error", "broker",
     "login: Firstock answered HTTP 200"),
    ("firstock-rest-retry-after-infinite", "failed", "gave_up", "broker",
     "after 2 attempts; last: login: Firstock answered HTTP 429 API_RATE_LIMIT: 'slow down'"),
]

STAYS = [
    # (case, the notice kind it must publish, or None; a broker message must reach the app)
    ("qst-frame-at-default-limit", None, False),
    ("qst-unknown-enum", None, False),
    ("qst-duplicate-login-result", "unexpected_frame", False),
    ("qst-unsolicited-login-result", "unexpected_frame", False),
    ("qst-unknown-request-id", "unknown_request_id", False),
    ("cqg-duplicate-logon-result", "unexpected_frame", False),
    ("cqg-unsolicited-logon-result", "unexpected_frame", False),
    ("cqg-unsolicited-restore-result", "unexpected_frame", False),
    ("cqg-unknown-request-id", None, True),
    ("cqg-unknown-restore-result-code", "session_lost", False),
    ("firstock-socket-duplicate-verdict", "unexpected_frame", False),
    ("firstock-socket-unsolicited-verdict", "unexpected_frame", False),
    ("firstock-socket-unknown-token-data", None, True),
    ("firstock-socket-garbage-while-authenticated", None, True),
]


def test_every_case_is_tested_here() -> None:
    assert {c for c, *_ in FAILS} | {c for c, *_ in STAYS} == set(fuzz.CASES)


@pytest.mark.parametrize(("case", "expected"), [(c, rest) for c, *rest in FAILS],
                         ids=[c for c, *_ in FAILS])
async def test_a_hostile_answer_ends_the_session_naming_the_broker(
    case: str, expected: list[str], clock: trio.testing.MockClock,
) -> None:
    state, reason, fault, says = expected
    result = await fuzz.run_case(case)
    assert result.settled, f"{case} did not settle"
    assert (result.state, result.reason, result.fault) == (state, reason, fault), result.detail
    assert NAMES[result.broker] in (result.detail or "")
    assert says in (result.detail or "")
    assert result.error is not None and NAMES[result.broker] in result.error
    assert fuzz.case_problems(fuzz.CASES[case], result) == []


@pytest.mark.parametrize(("case", "notice", "message"), STAYS, ids=[c for c, *_ in STAYS])
async def test_a_harmless_hostile_frame_leaves_the_session_authenticated(
    case: str, notice: str | None, message: bool, clock: trio.testing.MockClock,
) -> None:
    result = await fuzz.run_case(case)
    assert result.settled and result.error is None
    assert result.state == "authenticated", result.detail
    kinds = [kind for kind, _, _ in result.notices]
    if notice is not None:
        detail = next(d for kind, d, _ in result.notices if kind == notice)
        assert NAMES[result.broker] in detail
    else:
        assert "unexpected_frame" not in kinds
    assert (result.messages > 0) is message
    assert fuzz.case_problems(fuzz.CASES[case], result) == []


async def test_an_unsolicited_login_result_is_ignored_and_said_so(
    clock: trio.testing.MockClock,
) -> None:
    result = await fuzz.run_case("qst-unsolicited-login-result")
    assert ("unexpected_frame", "QST sent an unsolicited login while authenticated; ignored",
            "broker") in result.notices
    assert result.attempts == 1  # not a reconnect


async def test_an_answer_for_an_unknown_request_id_is_a_notice(
    clock: trio.testing.MockClock,
) -> None:
    result = await fuzz.run_case("qst-unknown-request-id")
    assert ("unknown_request_id",
            "QST answered request 999999, which no request is waiting for; ignored",
            "broker") in result.notices


async def test_hostile_answers_never_show_a_credential(clock: trio.testing.MockClock) -> None:
    for case in ("firstock-rest-token-an-object", "firstock-socket-not-json",
                 "cqg-hostile-restore-result", "qst-text-frame"):
        result = await fuzz.run_case(case)
        text = repr((result.detail, result.error, result.notices, result.audit))
        assert all(secret not in text for secret in fuzz.SECRETS)


def test_problem_lines_show_inputs_without_credentials() -> None:
    shown = fuzz.show(fuzz.fs_login_ok())
    assert fuzz.TOKEN.encode().hex() not in shown and shown.startswith("bytes[")
    assert fuzz.TOKEN not in fuzz.show(fuzz.fs_login_ok().decode())
    assert fuzz.show("x" * 500).endswith("...")
