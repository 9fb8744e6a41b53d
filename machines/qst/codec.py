"""QST frames: typed values to protobuf bytes and back. One message per binary WebSocket frame.

This module and proto/qst/qst.proto are the only places that know QST's wire schema.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Final

from google.protobuf.message import DecodeError, Message

from brokergate.machines._protobuf import invalid_strings
from brokergate.machines.qst import qst_pb2 as pb

LOGIN_REQUEST_ID = 1
LOGOUT_REQUEST_ID = 2
#: Application requests are numbered from here, so they never collide with the session's own.
FIRST_APPLICATION_REQUEST_ID = 16


class Coalescing(enum.IntEnum):
    """``UserPreferences.coalescing_interval``: how the server batches quotes."""

    UNCOALESCED = pb.UNCOALESCED
    MS_100 = pb._100_MS
    MS_250 = pb._250_MS


class MalformedFrame(Exception):
    """The server sent bytes that are not a valid QST Response."""


@dataclass(frozen=True, slots=True)
class ProvisioningMessage:
    """A pending agreement the user must accept through QST support (not over this API)."""

    id: str | None
    title: str | None
    text: str | None
    url: str | None


def encode_login(
    *,
    user_name: str,
    password: str,
    password_version: int | None,
    client_id: str,
    coalescing_interval: Coalescing | None,
    coalesce_last_trade: bool | None,
    white_label_code: str | None,
    local_ip: str | None,
) -> bytes:
    """The login Request. Optional fields left ``None`` stay absent on the wire."""
    req = pb.Request(request_id=LOGIN_REQUEST_ID)
    login = req.login
    login.user_name = user_name
    login.password.value = password
    if password_version is not None:
        login.password.version = password_version
    login.client_id = client_id
    if coalescing_interval is not None:
        login.user_preferences.coalescing_interval = int(coalescing_interval)  # type: ignore[assignment]
    if coalesce_last_trade is not None:
        login.user_preferences.coalesce_last_trade = coalesce_last_trade
    if white_label_code is not None:
        login.white_label_code = white_label_code
    if local_ip is not None:
        login.local_ip = local_ip
    return req.SerializeToString()


def encode_logout() -> bytes:
    req = pb.Request(request_id=LOGOUT_REQUEST_ID)
    req.logout.SetInParent()
    return req.SerializeToString()


_CONTROL_FIELDS: Final = frozenset({"login", "logout"})


#: Which Request field carries each application request type (control requests excluded).
_REQUEST_FIELDS: Final = {
    f.message_type: f.name
    for f in pb.Request.DESCRIPTOR.oneofs_by_name["request"].fields
    if f.message_type is not None and f.name not in _CONTROL_FIELDS
}


def encode_request(message: Message, request_id: int) -> bytes:
    """Wrap an application request (e.g. ``TranslateInstrumentSymbolRequest``) in a Request."""
    name = _REQUEST_FIELDS.get(message.DESCRIPTOR)
    if name is None:
        if message.DESCRIPTOR in (pb.Request.DESCRIPTOR.fields_by_name[c].message_type
                                  for c in _CONTROL_FIELDS):
            raise ValueError(f"{message.DESCRIPTOR.name} is sent by the session itself")
        accepted = sorted(t.name for t in _REQUEST_FIELDS)
        raise TypeError(f"{type(message).__name__} is not a QST request; expected one of: "
                        f"{', '.join(accepted)}")
    req = pb.Request(request_id=request_id)
    getattr(req, name).CopyFrom(message)
    return req.SerializeToString()


def decode_response(data: bytes | str) -> pb.Response:
    """Parse one server frame. Raises MalformedFrame with a description of what was wrong."""
    if isinstance(data, str):
        raise MalformedFrame("a text frame where QST sends only binary frames")
    resp = pb.Response()
    try:
        resp.ParseFromString(data)
    except DecodeError as exc:
        raise MalformedFrame(f"{len(data)} bytes that are not a Response ({exc})") from None
    if resp.WhichOneof("response") is None:
        raise MalformedFrame(f"{len(data)} bytes that carry no known Response field")
    not_text = invalid_strings(resp)
    if not_text:
        raise MalformedFrame(f"a Response whose {', '.join(not_text)} is not valid UTF-8")
    return resp


def provisioning_messages(resp: pb.Response) -> tuple[ProvisioningMessage, ...]:
    def opt(msg: pb.ProvisioningMessage, name: str) -> str | None:
        return str(getattr(msg, name)) if msg.HasField(name) else None

    return tuple(
        ProvisioningMessage(opt(m, "id"), opt(m, "title"), opt(m, "text"), opt(m, "url"))
        for m in resp.provisioning_messages.messages
    )


def granted(resp: pb.Response) -> dict[str, object]:
    """What the server granted in a LoginResponse, by field name; absent fields are left out."""
    out: dict[str, object] = {}
    lr = resp.login
    if lr.HasField("coalescing_interval"):
        out["coalescing_interval"] = pb.CoalescingInterval.Name(lr.coalescing_interval)
    if lr.HasField("coalesce_last_trade"):
        out["coalesce_last_trade"] = lr.coalesce_last_trade
    return out
