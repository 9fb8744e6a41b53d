"""ServerMsg frames as CQG would send them, for machine and engine tests."""

from __future__ import annotations

from typing import Any

from brokergate.cqg import pb

BASE_TIME = "2026-11-21T00:00:00"
TOKEN = "session-token-7f3a9c"


def server(**fields: Any) -> bytes:
    return pb.ServerMsg(**fields).SerializeToString()


def incomplete(**fields: Any) -> bytes:
    """A ServerMsg that lacks required fields (protobuf refuses to serialize it otherwise)."""
    return pb.ServerMsg(**fields).SerializePartialToString()


def logon_ok(token: str | None = TOKEN, *, server_time: int = 1000,
             inactivity_timeout: int | None = None, user_id: int = 42) -> bytes:
    result = pb.LogonResult(result_code=0, base_time=BASE_TIME, protocol_version_major=2,
                            protocol_version_minor=230, server_time=server_time, user_id=user_id)
    if token is not None:
        result.session_token = token
    if inactivity_timeout is not None:
        result.inactivity_timeout = inactivity_timeout
    return server(logon_result=result)


def logon_result(code: int, text: str | None = None, redirect_url: str | None = None) -> bytes:
    result = pb.LogonResult(result_code=code, base_time=BASE_TIME, protocol_version_major=2,
                            protocol_version_minor=230, server_time=0)
    if text is not None:
        result.text_message = text
    if redirect_url is not None:
        result.redirect_url = redirect_url
    return server(logon_result=result)


def restore_result(code: int, *, server_time: int = 5000, base_time: str = BASE_TIME,
                   inactivity_timeout: int | None = None) -> bytes:
    result = pb.RestoreOrJoinSessionResult(result_code=code, base_time=base_time,
                                           server_time=server_time)
    if inactivity_timeout is not None:
        result.inactivity_timeout = inactivity_timeout
    return server(restore_or_join_session_result=result)


def logged_off(reason: int, text: str | None = None, redirect_url: str | None = None) -> bytes:
    msg = pb.LoggedOff(logoff_reason=reason)
    if text is not None:
        msg.text_message = text
    if redirect_url is not None:
        msg.redirect_url = redirect_url
    return server(logged_off=msg)


def ping(token: str | None = "WebAPI Server Heartbeat", ping_utc_time: int = 777) -> bytes:
    msg = pb.Ping(ping_utc_time=ping_utc_time)
    if token is not None:
        msg.token = token
    return server(ping=msg)


def pong(token: str, ping_utc_time: int) -> bytes:
    return server(pong=pb.Pong(token=token, ping_utc_time=ping_utc_time,
                               pong_utc_time=ping_utc_time + 1))


def user_message(text: str, message_type: int = 3, subject: str | None = None) -> pb.UserMessage:
    msg = pb.UserMessage(message_type=message_type, source="WebAPI", text=text)
    if subject is not None:
        msg.subject = subject
    return msg


#: A field our subset does not declare (ServerMsg tag 1, length-delimited, 2 bytes): stands for
#: application traffic such as market data.
UNKNOWN_FIELD = bytes.fromhex("0a020801")


def client(data: bytes) -> pb.ClientMsg:
    msg = pb.ClientMsg()
    msg.ParseFromString(data)
    return msg
