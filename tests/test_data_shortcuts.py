"""The data path's shortcuts, each held to the full decoding it stands in for.

CQG: a frame whose top-level fields are all ones the session schema does not declare is handed to
the application without being decoded; ``application_only`` walks only the field keys and
lengths. On the way out, an application message whose top-level fields are all ones ClientMsg
does not declare is sent without being parsed (``application_message``, the same walk). Firstock:
a socket message with none of the verdict markers in it is handed on without parsing its JSON
(``plainly_data``)."""

from __future__ import annotations

import json

import hypothesis.strategies as st
from google.protobuf.message import DecodeError
from hypothesis import given, settings

from brokergate.cqg import pb
from brokergate.machines.cqg.codec import (
    CONTROL_FIELDS,
    CqgServerMessage,
    InvalidClientMessage,
    MalformedFrame,
    application_message,
    application_only,
    decode_server,
    has_application_part,
)
from brokergate.machines.firstock.codec import plainly_data, read_socket_message

DECLARED = sorted(f.number for f in pb.ServerMsg.DESCRIPTOR.fields)


def varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


@st.composite
def numbered_field(draw: st.DrawFn, numbers: st.SearchStrategy[int]) -> tuple[int, bytes]:
    number = draw(numbers)
    wire = draw(st.sampled_from([0, 1, 2, 5]))
    key = varint(number << 3 | wire)
    if wire == 0:
        return number, key + varint(draw(st.integers(0, (1 << 64) - 1)))
    if wire == 1:
        return number, key + draw(st.binary(min_size=8, max_size=8))
    if wire == 5:
        return number, key + draw(st.binary(min_size=4, max_size=4))
    payload = draw(st.binary(max_size=300))
    return number, key + varint(len(payload)) + payload


def field(numbers: st.SearchStrategy[int]) -> st.SearchStrategy[bytes]:
    return numbered_field(numbers).map(lambda pair: pair[1])


UNDECLARED = st.integers(1, (1 << 29) - 1).filter(lambda n: n not in DECLARED)
ANY_NUMBER = st.one_of(st.sampled_from(DECLARED), UNDECLARED)


@given(st.lists(field(UNDECLARED), min_size=1, max_size=6).map(b"".join))
@settings(max_examples=400, deadline=None)
def test_a_well_formed_frame_of_undeclared_fields_takes_the_shortcut(raw: bytes) -> None:
    assert application_only(raw)
    msg = decode_server(raw)
    assert msg.ListFields() == [] and has_application_part(msg, raw)
    assert CqgServerMessage(raw).session == msg


def _agrees_with_the_full_decoding(raw: bytes) -> None:
    """Whenever the shortcut is taken, the full decoding would have found nothing for the
    session layer and something for the application, and would not have refused the frame."""
    if not application_only(raw):
        return
    try:
        msg = decode_server(raw)
    except MalformedFrame as exc:  # pragma: no cover - the property under test
        raise AssertionError(f"the shortcut took a frame the decoder refuses: {exc}") from None
    assert msg.ListFields() == []
    assert has_application_part(msg, raw)


@given(st.lists(numbered_field(ANY_NUMBER), max_size=6))
@settings(max_examples=600, deadline=None)
def test_mixed_frames_take_the_shortcut_only_when_the_decoder_agrees(
    fields: list[tuple[int, bytes]],
) -> None:
    raw = b"".join(part for _, part in fields)
    _agrees_with_the_full_decoding(raw)
    if any(number in DECLARED for number, _ in fields):
        assert not application_only(raw)


@given(st.binary(max_size=200))
@settings(max_examples=1500, deadline=None)
def test_arbitrary_bytes_take_the_shortcut_only_when_the_decoder_agrees(raw: bytes) -> None:
    _agrees_with_the_full_decoding(raw)


@given(st.lists(field(UNDECLARED), min_size=1, max_size=4).map(b"".join),
       st.integers(1, 20))
@settings(max_examples=200, deadline=None)
def test_a_truncated_frame_never_takes_the_shortcut(raw: bytes, cut: int) -> None:
    short = raw[:max(0, len(raw) - cut)]
    _agrees_with_the_full_decoding(short)


def test_session_fields_and_empty_frames_go_the_long_way() -> None:
    ping = pb.ServerMsg(ping=pb.Ping(ping_utc_time=1)).SerializeToString()
    assert not application_only(ping)
    assert not application_only(b"")
    assert not application_only(bytes([10 << 3 | 3]))  # a group: the decoder decides
    market_data = bytes([10 << 3 | 2, 3]) + b"abc"
    assert application_only(market_data)
    assert not application_only(market_data + ping)


# -- Firstock ----------------------------------------------------------------------------------

KEYS = st.sampled_from(["t", "s", "message", "status", "emsg", "lp", "tk", "e", "v"])
VALUES = st.one_of(
    st.sampled_from(["ck", "ok", "OK", "Authentication successful", "unauthenticated", "failed",
                     "Failed", "Maximum sessions limit reached", "df", "22000.05", "NSE"]),
    st.text(max_size=12), st.integers(), st.none(), st.booleans())
DOCS = st.recursive(st.dictionaries(KEYS, VALUES, max_size=5),
                    lambda inner: st.dictionaries(KEYS, st.one_of(VALUES, inner), max_size=4),
                    max_leaves=12)


@given(DOCS, st.booleans())
@settings(max_examples=800, deadline=None)
def test_a_message_that_is_plainly_data_is_never_a_verdict(doc: dict[str, object],
                                                           ascii_only: bool) -> None:
    text = json.dumps(doc, ensure_ascii=ascii_only)
    if plainly_data(text):
        assert read_socket_message(text).ok is None


@given(st.text(max_size=120))
@settings(max_examples=800, deadline=None)
def test_arbitrary_text_that_is_plainly_data_is_never_a_verdict(text: str) -> None:
    if plainly_data(text):
        assert read_socket_message(text).ok is None


def test_market_data_is_plainly_data_and_every_verdict_is_not() -> None:
    assert plainly_data('{"t":"df","e":"NSE","tk":"26000","lp":"22000.05"}')
    for verdict in ('{"t":"ck","s":"OK"}', '{"status":"failed","message":"unauthenticated"}',
                    '{"message":"Authentication successful"}', "Maximum sessions limit",
                    '{"\\u0074":"\\u0063k"}'):
        assert not plainly_data(verdict)


# --- outbound: the application's ClientMsg bytes ----------------------------------------------

CLIENT_DECLARED = sorted(f.number for f in pb.ClientMsg.DESCRIPTOR.fields)
CLIENT_NUMBER = st.one_of(st.sampled_from(CLIENT_DECLARED),
                          st.integers(1, (1 << 29) - 1).filter(lambda n: n not in CLIENT_DECLARED))


def _checked_by_parsing(raw: bytes) -> bytes | str:
    """What checking an application message by parsing it says (the way before the shortcut):
    the bytes to send, or why they are refused."""
    probe = pb.ClientMsg()
    try:
        probe.ParseFromString(raw)
    except DecodeError:
        return "do not parse"
    control = [f.name for f, _ in probe.ListFields() if f.name in CONTROL_FIELDS]
    return f"{control[0]} is brokergate's" if control else raw


def _agrees_with_parsing(raw: bytes) -> None:
    expected = _checked_by_parsing(raw)
    try:
        got: bytes | str = application_message(raw)
    except InvalidClientMessage as exc:
        assert isinstance(expected, str) and expected in str(exc), (raw, expected, exc)
        return
    assert got == expected


@given(st.lists(numbered_field(CLIENT_NUMBER), min_size=1, max_size=6))
@settings(max_examples=600, deadline=None)
def test_an_application_message_is_checked_as_parsing_would(
    fields: list[tuple[int, bytes]],
) -> None:
    _agrees_with_parsing(b"".join(part for _, part in fields))


@given(st.binary(min_size=1, max_size=200))
@settings(max_examples=1500, deadline=None)
def test_arbitrary_outbound_bytes_are_checked_as_parsing_would(raw: bytes) -> None:
    _agrees_with_parsing(raw)


def test_control_messages_are_still_refused_with_application_fields_beside_them() -> None:
    order = bytes([3 << 3 | 2, 5]) + b"order"
    logoff = pb.ClientMsg(logoff=pb.Logoff()).SerializeToString()
    assert application_message(order) == order
    for raw in (logoff, order + logoff, logoff + order):
        _agrees_with_parsing(raw)
        assert isinstance(_checked_by_parsing(raw), str)
