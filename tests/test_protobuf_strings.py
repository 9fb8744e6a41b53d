"""``invalid_strings``: every string field that a proto2 parser handed back as bytes is named,
however deep or repeated it is, and a message with none costs one pass."""

from __future__ import annotations

from brokergate.machines._protobuf import invalid_strings
from brokergate.machines.cqg import cqg_session_pb2 as cqg_pb
from brokergate.qst import pb


def _parsed(message: pb.Response, text: str) -> pb.Response:
    """``message`` as a parser sees it after ``text``'s first byte became 0xFF on the wire."""
    raw = text.encode()
    data = message.SerializeToString().replace(raw, b"\xff" + raw[1:], 1)
    out = pb.Response()
    out.ParseFromString(data)
    return out


def _translated(*pairs: tuple[str, str]) -> pb.Response:
    resp = pb.Response(request_id=9)
    for symbol, error in pairs:
        record = resp.translate_instrument_symbol.records.add()
        record.symbol = symbol
        if error:
            record.error = error
    return resp


def test_clean_messages_have_none() -> None:
    big = _translated(*((f"S{n}", "unknown" if n % 3 else "") for n in range(500)))
    assert invalid_strings(_parsed(big, "nothing to replace")) == []
    assert invalid_strings(pb.Response()) == []


def test_a_field_of_one_element_of_a_repeated_message_is_named_once() -> None:
    resp = _translated(("AAPL", ""), ("BADX", "no such symbol"), ("MSFT", "BADY"))
    assert invalid_strings(_parsed(resp, "BADX")) == ["translate_instrument_symbol.records.symbol"]
    twice = _parsed(_parsed(resp, "BADX"), "no such")
    assert invalid_strings(twice) == ["translate_instrument_symbol.records.symbol",
                                      "translate_instrument_symbol.records.error"]


def test_a_repeated_string_field_is_named() -> None:
    req = pb.Request(request_id=3)
    req.translate_instrument_symbol.instrument_symbols.extend(["ES", "ZZTOP"])
    data = req.SerializeToString().replace(b"ZZTOP", b"\xffZTOP")
    parsed = pb.Request()
    parsed.ParseFromString(data)
    assert invalid_strings(parsed) == ["translate_instrument_symbol.instrument_symbols"]


def test_a_singular_nested_field_is_named_with_its_path() -> None:
    resp = pb.Response(request_id=1)
    resp.error.message = "Broken pipe"
    assert invalid_strings(_parsed(resp, "Broken")) == ["error.message"]
    msg = cqg_pb.ServerMsg(logon_result=cqg_pb.LogonResult(
        result_code=0, base_time="2026-11-21T00:00:00", protocol_version_major=2,
        protocol_version_minor=230, server_time=0, text_message="Welcome"))
    data = msg.SerializeToString().replace(b"Welcome", b"\xffelcome")
    parsed = cqg_pb.ServerMsg()
    parsed.ParseFromString(data)
    assert invalid_strings(parsed, "ServerMsg.") == ["ServerMsg.logon_result.text_message"]
