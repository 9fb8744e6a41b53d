"""CQG WebAPI session messages: bytes on the wire <-> what the machine needs.

One ClientMsg per binary WebSocket frame, one ServerMsg per frame from the server; no length
prefix. A ServerMsg may carry several session fields at once, and fields we do not declare
(market data, orders...) survive parsing as unknown fields, so the application gets them intact.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

from google.protobuf.message import DecodeError, EncodeError, Message

from brokergate.machines._protobuf import invalid_strings
from brokergate.machines.cqg import cqg_session_pb2 as pb

PROTOCOL_VERSION_MAJOR: Final = pb.PROTOCOL_VERSION_MAJOR
PROTOCOL_VERSION_MINOR: Final = pb.PROTOCOL_VERSION_MINOR
ALLOW_SESSION_RESTORE: Final = pb.Logon.SESSION_SETTING_ALLOW_SESSION_RESTORE

#: ServerMsg fields the session layer acts on, in the order a frame's parts are handled.
SESSION_FIELDS: Final = (
    "logon_result",
    "restore_or_join_session_result",
    "user_messages",
    "concurrent_connection_join_results",
    "ping",
    "pong",
    "logged_off",
)
#: ClientMsg fields only the session machine may send.
CONTROL_FIELDS: Final = frozenset({"logon", "restore_or_join_session", "logoff"})
_CONSUMED: Final = frozenset(SESSION_FIELDS)
_REPEATED_SESSION_FIELDS: Final = frozenset(
    name for name in SESSION_FIELDS
    if pb.ServerMsg.DESCRIPTOR.fields_by_name[name].is_repeated
)


class MalformedFrame(ValueError):
    """The server sent something that is not a valid ServerMsg (the server's fault)."""


class InvalidClientMessage(ValueError):
    """The application's message cannot go to CQG as it is (the application's fault)."""


class CqgServerMessage:
    """One ServerMsg frame for the application: the raw bytes (parse them with CQG's full
    schema for market data, orders and the rest) and our decoding of its session part.

    A frame with no field the session schema declares (market data, orders: the application's
    traffic) reaches the application without being decoded at all; ``session`` decodes it
    then, on first use (an empty session part, the rest kept as unknown fields)."""

    __slots__ = ("_session", "raw")

    def __init__(self, raw: bytes, session: pb.ServerMsg | None = None) -> None:
        self.raw = raw
        self._session = session

    @property
    def session(self) -> pb.ServerMsg:
        if self._session is None:
            self._session = pb.ServerMsg.FromString(self.raw)
        return self._session

    def __eq__(self, other: object) -> bool:
        return isinstance(other, CqgServerMessage) and other.raw == self.raw

    def __hash__(self) -> int:
        return hash(self.raw)

    def __repr__(self) -> str:
        fields = [f.name for f, _ in self.session.ListFields()]
        return f"<CqgServerMessage {len(self.raw)} bytes session={fields}>"


def _put(msg: Message, **fields: Any) -> None:
    """Set only the fields that have a value: an absent field stays absent on the wire."""
    for name, value in fields.items():
        if value is not None:
            setattr(msg, name, value)


def encode_logon(
    *,
    client_version: str,
    user_name: str | None = None,
    password: str | None = None,
    one_time_password: str | None = None,
    access_token: str | None = None,
    partner_token: str | None = None,
    client_app_id: str | None = None,
    private_label: str | None = None,
    drop_concurrent_session: bool | None = None,
    max_collapsing_level: int | None = None,
    market_data_bandwidth: int | None = None,
    session_settings: Sequence[int] = (),
    dialect_id: str | None = None,
    fingerprint: str | None = None,
    operating_system: str | None = None,
    browser: str | None = None,
    device_model: str | None = None,
) -> bytes:
    msg = pb.ClientMsg()
    logon = msg.logon
    _put(
        logon,
        user_name=user_name,
        password=password,
        one_time_password=one_time_password,
        access_token=access_token,
        partner_token=partner_token,
        private_label=private_label,
        client_app_id=client_app_id,
        client_version=client_version,
        drop_concurrent_session=drop_concurrent_session,
        max_collapsing_level=max_collapsing_level,
        market_data_bandwidth=market_data_bandwidth,
        protocol_version_minor=PROTOCOL_VERSION_MINOR,
        protocol_version_major=PROTOCOL_VERSION_MAJOR,
        dialect_id=dialect_id,
        fingerprint=fingerprint,
        operating_system=operating_system,
        browser=browser,
        device_model=device_model,
    )
    logon.session_settings.extend(session_settings)
    return msg.SerializeToString()


def encode_restore(
    *,
    session_token: str,
    client_app_id: str | None = None,
    private_label: str | None = None,
    max_collapsing_level: int | None = None,
    market_data_bandwidth: int | None = None,
) -> bytes:
    msg = pb.ClientMsg()
    _put(
        msg.restore_or_join_session,
        session_token=session_token,
        private_label=private_label,
        client_app_id=client_app_id,
        max_collapsing_level=max_collapsing_level,
        protocol_version_minor=PROTOCOL_VERSION_MINOR,
        protocol_version_major=PROTOCOL_VERSION_MAJOR,
        market_data_bandwidth=market_data_bandwidth,
    )
    return msg.SerializeToString()


def encode_logoff(text_message: str | None = None) -> bytes:
    msg = pb.ClientMsg()
    msg.logoff.SetInParent()
    _put(msg.logoff, text_message=text_message)
    return msg.SerializeToString()


def encode_ping(token: str, ping_utc_time: int) -> bytes:
    return pb.ClientMsg(ping=pb.Ping(token=token, ping_utc_time=ping_utc_time)).SerializeToString()


def encode_pong(token: str | None, ping_utc_time: int, pong_utc_time: int) -> bytes:
    pong = pb.Pong(ping_utc_time=ping_utc_time, pong_utc_time=pong_utc_time)
    _put(pong, token=token)
    return pb.ClientMsg(pong=pong).SerializeToString()


#: The field numbers ServerMsg declares here (the session layer's, and results of requests the
#: session layer knows). Application traffic uses other numbers (CQG keeps 1-30 and 200 for it).
_DECLARED_TAGS: Final = frozenset(f.number for f in pb.ServerMsg.DESCRIPTOR.fields)
#: The same for ClientMsg: the session's own requests (logon, restore, logoff, ping, pong...).
_DECLARED_CLIENT_TAGS: Final = frozenset(f.number for f in pb.ClientMsg.DESCRIPTOR.fields)
_MAX_FIELD_NUMBER: Final = (1 << 29) - 1


def application_only(raw: bytes) -> bool:
    """Whether ``raw`` is a frame for the application alone: a well-formed ServerMsg top level
    whose fields all have numbers this schema does not declare. Only the field keys and lengths
    are read; no message is built.

    False when it holds a declared field, is empty, or its top level cannot be walked (a group,
    a bad wire type, a truncated field): ``decode_server`` then decides, and says what is
    wrong. A test holds this to the full decoding on generated frames."""
    return undeclared_only(raw, _DECLARED_TAGS)


def undeclared_only(raw: bytes, declared: frozenset[int]) -> bool:
    """Whether ``raw``'s top level walks cleanly (keys, lengths, an exact end) and every field in
    it has a number outside ``declared``: such bytes are what parsing them against a schema
    declaring ``declared`` would accept as unknown fields and nothing else."""
    # The varint reads are written out in place, not in a helper: this runs for every frame, and
    # a call per field would cost more than the read itself.
    pos, end = 0, len(raw)
    if not end:
        return False
    while pos < end:
        key = raw[pos]
        pos += 1
        if key & 0x80:  # a key of more than one byte
            key &= 0x7F
            shift = 7
            while True:
                if pos >= end or shift > 28:
                    return False
                byte = raw[pos]
                pos += 1
                key |= (byte & 0x7F) << shift
                if not byte & 0x80:
                    break
                shift += 7
        number, wire = key >> 3, key & 7
        if number == 0 or number > _MAX_FIELD_NUMBER or number in declared:
            return False
        if wire == 2:  # length-delimited: a varint length, then that many bytes
            length = 0
            shift = 0
            while True:
                if pos >= end or shift > 63:
                    return False
                byte = raw[pos]
                pos += 1
                length |= (byte & 0x7F) << shift
                if not byte & 0x80:
                    break
                shift += 7
            pos += length
        elif wire == 0:  # a varint value
            start = pos
            while True:
                if pos >= end or pos - start >= 10:
                    return False
                byte = raw[pos]
                pos += 1
                if not byte & 0x80:
                    break
        elif wire == 1:
            pos += 8
        elif wire == 5:
            pos += 4
        else:  # groups (3, 4) and wire types 6 and 7
            return False
        if pos > end:
            return False
    return True


def decode_server(data: bytes | str) -> pb.ServerMsg:
    """Parse one server frame, checking every session field we act on is complete."""
    if isinstance(data, str):
        raise MalformedFrame(f"a text frame ({len(data)} characters); CQG sends binary frames")
    msg = pb.ServerMsg()
    try:
        msg.ParseFromString(data)
    except DecodeError as exc:
        raise MalformedFrame(
            f"{len(data)} bytes that do not parse as a ServerMsg ({exc})"
        ) from None
    # Only the fields the frame holds (ListFields), checked in SESSION_FIELDS order.
    present = {field.name: value for field, value in msg.ListFields()}
    for name in SESSION_FIELDS:
        value = present.get(name)
        if value is None:
            continue
        for part in value if name in _REPEATED_SESSION_FIELDS else (value,):
            kind = type(part).__name__
            missing = part.FindInitializationErrors()
            if missing:
                raise MalformedFrame(f"a {kind} without its required {', '.join(missing)}")
            not_text = invalid_strings(part)
            if not_text:
                raise MalformedFrame(f"a {kind} whose {', '.join(not_text)} is not valid UTF-8")
    return msg


def has_application_part(msg: pb.ServerMsg, raw: bytes) -> bool:
    """Whether a frame carries anything the session layer does not consume itself.

    Session fields become transitions and session events; anything else (a field we do not
    declare, kept as an unknown one, or a declared non-session result) is the application's.
    """
    names = {field.name for field, _ in msg.ListFields()}
    if not names <= _CONSUMED:
        return True
    consumed = pb.ServerMsg()
    consumed.MergeFrom(msg)
    consumed.DiscardUnknownFields()
    return consumed.ByteSize() != len(raw)


def application_message(message: bytes | Message) -> bytes:
    """The wire bytes of an application ClientMsg, refusing what only the session may send.

    ``message`` is serialized ClientMsg bytes or any protobuf message whose wire form is a
    ClientMsg (CQG's own generated ``ClientMsg`` included).
    """
    if isinstance(message, Message):
        try:
            data = message.SerializeToString()
        except EncodeError as exc:
            raise InvalidClientMessage(f"the message is incomplete: {exc}") from None
    elif isinstance(message, bytes | bytearray | memoryview):
        data = bytes(message)
    else:
        raise InvalidClientMessage(
            f"expected ClientMsg bytes or a protobuf message, got {type(message).__name__}"
        )
    if not data:
        raise InvalidClientMessage("the message is empty")
    if undeclared_only(data, _DECLARED_CLIENT_TAGS):
        # Application fields only (orders, subscriptions): the parse below would accept them as
        # unknown fields and find no control field among them, so it is skipped (this runs for
        # every message the application sends; a test holds the two to each other).
        return data
    probe = pb.ClientMsg()
    try:
        probe.ParseFromString(data)
    except DecodeError:
        raise InvalidClientMessage(f"{len(data)} bytes that do not parse as a ClientMsg") from None
    control = sorted(f.name for f, _ in probe.ListFields() if f.name in CONTROL_FIELDS)
    if control:
        raise InvalidClientMessage(
            f"{', '.join(control)} is brokergate's to send (the session logs on, restores and "
            "logs off by itself); send application messages only"
        )
    return data
