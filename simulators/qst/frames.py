"""Building the QST simulator's answers: pure functions from requests to Response messages."""

from __future__ import annotations

import hashlib

from google.protobuf.message import DecodeError

from brokergate.machines.qst import qst_pb2 as pb

MANDATORY_FIELDS_TEXT = "Populate all mandatory fields: username and password are mandatory."
UNAUTHORIZED_CLIENT_TEXT = "Unauthorized client_id."

#: QST's documented ErrorMessage texts by code.
ERROR_TEXTS: dict[int, str] = {
    1: "Login failed. The credentials were not valid (1)",
    2: "Login failed. TOTP Code Missing (2)",
    3: "Login failed. E-Mail validation pending (3)",
    4: "Login failed. 2FA key validation pending (4)",
    5: "Login failed. Reached limit of failed logins, please contact support (5)",
    6: "Login failed. Server error (6)",
}

#: request_id of the unsolicited answer sent by the "unknown_request_id" misbehaviour.
UNKNOWN_REQUEST_ID = 999999


def error_text(code: int) -> str:
    """QST's text for a login error code; codes it does not document read "Login failed (N)"."""
    return ERROR_TEXTS.get(code, f"Login failed ({code})")


def response(request_id: int | None) -> pb.Response:
    """An empty Response that echoes ``request_id`` (left absent when None)."""
    resp = pb.Response()
    if request_id is not None:
        resp.request_id = request_id
    return resp


def error(request_id: int | None, *, code: int | None = None, text: str | None = None) -> bytes:
    """An ErrorMessage frame; ``code`` alone gets QST's standard text for it."""
    resp = response(request_id)
    resp.error.SetInParent()
    if code is not None:
        resp.error.code = code
        resp.error.message = error_text(code) if text is None else text
    elif text is not None:
        resp.error.message = text
    return resp.SerializeToString()


def grant(prefs: pb.UserPreferences | None, entitled: int) -> tuple[int, bool]:
    """The (coalescing_interval, coalesce_last_trade) the server grants for these preferences.

    A bigger interval value is coarser. A requested interval is raised to the entitlement, never
    lowered below it; an absent one means 250 ms. Coalescing the last trade needs coalescing.
    """
    if prefs is not None and prefs.HasField("coalescing_interval"):
        interval = max(int(prefs.coalescing_interval), entitled)
    else:
        interval = max(int(pb._250_MS), entitled)
    last_trade = (
        prefs is not None
        and prefs.HasField("coalesce_last_trade")
        and prefs.coalesce_last_trade
        and interval != pb.UNCOALESCED
    )
    return interval, bool(last_trade)


def login_ok(request_id: int | None, interval: int, last_trade: bool) -> bytes:
    resp = response(request_id)
    resp.login.coalescing_interval = interval  # type: ignore[assignment]
    resp.login.coalesce_last_trade = last_trade
    return resp.SerializeToString()


def provisioning(request_id: int | None, messages: list[tuple[str, str, str, str]]) -> bytes:
    resp = response(request_id)
    resp.provisioning_messages.SetInParent()
    for id_, title, text, url in messages:
        resp.provisioning_messages.messages.add(id=id_, title=title, text=text, url=url)
    return resp.SerializeToString()


def logout_ok(request_id: int | None) -> bytes:
    resp = response(request_id)
    resp.logout.SetInParent()
    return resp.SerializeToString()


def instrument_id(symbol: str) -> int:
    """A stable, non-zero id for a symbol: the same in every run (unlike the salted ``hash()``)."""
    digest = hashlib.blake2b(symbol.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big") % (2**53 - 1) + 1


def translation(request_id: int | None, symbols: list[str]) -> bytes:
    """Symbols starting with "BAD" are unknown; every other symbol gets its stable id."""
    resp = response(request_id)
    resp.translate_instrument_symbol.SetInParent()
    for symbol in symbols:
        if symbol.startswith("BAD"):
            resp.translate_instrument_symbol.records.add(symbol=symbol, error="unknown symbol")
        else:
            resp.translate_instrument_symbol.records.add(
                symbol=symbol, instrument_id=instrument_id(symbol)
            )
    return resp.SerializeToString()


#: Bytes that fail to parse as a Response: the tag's varint runs past ten bytes.
_GARBAGE = bytes.fromhex("ffffffffffffffffffffff01") + b"\x9c\x07not protobuf"


def bad_frame(kind: str) -> bytes | str:
    """One frame of a misbehaviour kind (see ``accounts.MISBEHAVIOURS``)."""
    if kind == "garbage":
        return _GARBAGE
    if kind == "truncated":
        # Cut inside the length-delimited answer, so the parser runs out of bytes.
        whole = translation(UNKNOWN_REQUEST_ID, ["ESZ20", "ESZ21"])
        return whole[: len(whole) // 2]
    if kind == "text":
        return '{"login": "this is a text frame, not a protobuf Response"}'
    if kind == "unknown_request_id":
        return translation(UNKNOWN_REQUEST_ID, ["ESZ20"])
    raise ValueError(f"unknown misbehaviour {kind!r}")


def describe(data: bytes | str) -> str:
    """A short account of a client frame, for violation lines."""
    if isinstance(data, str):
        return f"a text frame ({len(data)} characters)"
    req = pb.Request()
    try:
        req.ParseFromString(data)
    except DecodeError:
        return f"{len(data)} bytes that do not parse as a Request"
    kind = req.WhichOneof("request") or "no request field"
    rid = f"request_id {req.request_id}" if req.HasField("request_id") else "no request_id"
    return f"a Request with {kind} ({rid})"
