"""Building the CQG simulator's frames (ServerMsg bytes) and reading the client's (ClientMsg).

Pure functions: no I/O, no clock. Every ``*_time`` argument is already milliseconds since the
session's base_time.
"""

from __future__ import annotations

from typing import Final

from google.protobuf.message import DecodeError

from brokergate.machines.cqg import cqg_session_pb2 as pb

PROTOCOL_VERSION_MAJOR: Final = 2
PROTOCOL_VERSION_MINOR: Final = 230

#: UserMessage.source of everything the simulator says on its own behalf.
SOURCE: Final = "WebAPI"
#: The token CQG's own server Pings carry (seen in public client tests).
HEARTBEAT_TOKEN: Final = "WebAPI Server Heartbeat"

#: text_message of a refused LogonResult, by code. CQG's exact wording is not public.
LOGON_TEXTS: Final = {
    101: "Logon failed",
    103: "One-time password required",
    104: "Password expired: change the password before logging on",
    105: "Concurrent session: the user is already logged on and drop was not requested",
    106: "Redirected: log on at the redirect_url",
    107: "Logon routine error",
    108: "Access token expired",
}


def logon_text(code: int) -> str:
    """The text for a refused logon; codes CQG does not document read "Logon failed (N)"."""
    return LOGON_TEXTS.get(code, f"Logon failed ({code})")


def user_message(message_type: int, text: str, subject: str | None = None) -> pb.UserMessage:
    msg = pb.UserMessage(message_type=message_type, source=SOURCE, text=text)
    if subject is not None:
        msg.subject = subject
    return msg


def logon_result(
    code: int,
    *,
    base_time: str,
    server_time: int,
    text: str | None = None,
    session_token: str | None = None,
    user_id: int | None = None,
    inactivity_timeout: int | None = None,
    redirect_url: str | None = None,
    welcome: str | None = None,
) -> bytes:
    """A LogonResult frame; ``welcome`` adds an INFO UserMessage to the same ServerMsg."""
    result = pb.LogonResult(
        result_code=code,
        base_time=base_time,
        server_time=server_time,
        protocol_version_major=PROTOCOL_VERSION_MAJOR,
        protocol_version_minor=PROTOCOL_VERSION_MINOR,
    )
    if text is not None:
        result.text_message = text
    if session_token is not None:
        result.session_token = session_token
    if user_id is not None:
        result.user_id = user_id
    if inactivity_timeout is not None:
        result.inactivity_timeout = inactivity_timeout
    if redirect_url is not None:
        result.redirect_url = redirect_url
    msg = pb.ServerMsg(logon_result=result)
    if welcome is not None:
        msg.user_messages.append(user_message(pb.UserMessage.MESSAGE_TYPE_INFO, welcome))
    return msg.SerializeToString()


def restore_result(
    code: int,
    *,
    base_time: str,
    server_time: int,
    text: str | None = None,
    inactivity_timeout: int | None = None,
) -> bytes:
    result = pb.RestoreOrJoinSessionResult(
        result_code=code, base_time=base_time, server_time=server_time
    )
    if text is not None:
        result.text_message = text
    if inactivity_timeout is not None:
        result.inactivity_timeout = inactivity_timeout
    return pb.ServerMsg(restore_or_join_session_result=result).SerializeToString()


def logged_off(reason: int, text: str | None = None, redirect_url: str | None = None) -> bytes:
    msg = pb.LoggedOff(logoff_reason=reason)
    if text is not None:
        msg.text_message = text
    if redirect_url is not None:
        msg.redirect_url = redirect_url
    return pb.ServerMsg(logged_off=msg).SerializeToString()


def user_messages(message: pb.UserMessage) -> bytes:
    return pb.ServerMsg(user_messages=[message]).SerializeToString()


def data_lag_notice(max_lag: float | None, why: str) -> bytes:
    """The UserMessage of CQG's collapsing rule, before it closes a connection that lags."""
    return user_messages(user_message(
        pb.UserMessage.MESSAGE_TYPE_CRITICAL_ERROR,
        f"Real-time data lags by {max_lag:g} seconds or more ({why}): the "
        "connection is closed. The session can be restored.",
        subject="Data lag",
    ))


def rate_limit_notice(limit: int | None, window: float) -> bytes:
    """The UserMessage before CQG closes a connection that sent too many messages."""
    return user_messages(user_message(
        pb.UserMessage.MESSAGE_TYPE_CRITICAL_ERROR,
        f"More than {limit} client messages in {window:g} seconds: "
        "the connection is closed. The session can be restored.",
        subject="Rate limit",
    ))


def ping(server_time: int) -> bytes:
    return pb.ServerMsg(
        ping=pb.Ping(token=HEARTBEAT_TOKEN, ping_utc_time=server_time)
    ).SerializeToString()


def pong(client_ping: pb.Ping, server_time: int) -> bytes:
    """The Pong for a client Ping: token and ping_utc_time echoed as they came."""
    answer = pb.Pong(ping_utc_time=client_ping.ping_utc_time, pong_utc_time=server_time)
    if client_ping.HasField("token"):
        answer.token = client_ping.token
    return pb.ServerMsg(pong=answer).SerializeToString()


def concurrent_join(same_app_type: bool) -> bytes:
    join = pb.ConcurrentConnectionJoin(is_same_app_type=same_app_type)
    return pb.ServerMsg(concurrent_connection_join_results=[join]).SerializeToString()


def password_change_refused() -> bytes:
    result = pb.PasswordChangeResult(
        result_code=pb.PasswordChangeResult.RESULT_CODE_FAILURE,
        text_message="password changes are not supported by the simulator",
    )
    return pb.ServerMsg(password_change_result=result).SerializeToString()


def demo_credentials_refused() -> bytes:
    result = pb.ObtainDemoCredentialsResult(
        result_code=101, text_message="demo credentials are not issued by the simulator"
    )
    return pb.ServerMsg(obtain_demo_credentials_results=[result]).SerializeToString()


def session_state_denied(session_token: str) -> bytes:
    # 103 ACCESS_DENIED: CQG answers this request only for allow-listed IP addresses.
    result = pb.UserSessionStateResult(session_token=session_token, result_code=103)
    return pb.ServerMsg(user_session_state_results=[result]).SerializeToString()


def collapsing_level_set(level: int | None) -> bytes:
    result = pb.SetCollapsingLevelResult(result_code=0)
    if level is not None:
        result.max_collapsing_level = level
    return pb.ServerMsg(set_collapsing_level_results=[result]).SerializeToString()


# -- reading client frames -------------------------------------------------------------------------


def parse(data: bytes) -> pb.ClientMsg | None:
    """The ClientMsg in a binary frame, or None for bytes that do not parse as one.

    Missing required fields do not make a frame unparseable (protobuf keeps it, uninitialized);
    the handlers check the fields they rely on.
    """
    msg = pb.ClientMsg()
    try:
        msg.ParseFromString(data)
    except DecodeError:
        return None
    return msg


def declared(msg: pb.ClientMsg) -> list[str]:
    """The names of the ClientMsg fields our schema declares (the session messages)."""
    return [f.name for f, _ in msg.ListFields()]


def application_bytes(msg: pb.ClientMsg, data: bytes) -> int:
    """How many bytes of a frame are fields our schema does not declare (application traffic)."""
    known = pb.ClientMsg()
    known.CopyFrom(msg)
    known.DiscardUnknownFields()
    # Partial: a Logon missing its required client_version is still measured, not refused.
    return len(data) - len(known.SerializePartialToString())


def describe(data: bytes | str) -> str:
    """A client frame in a few words, for violation lines."""
    if isinstance(data, str):
        return f"a text frame ({len(data)} characters)"
    msg = parse(data)
    if msg is None:
        return f"{len(data)} bytes that do not parse as a ClientMsg"
    names = declared(msg)
    extra = application_bytes(msg, data)
    if not names and not extra:
        return "an empty ClientMsg"
    if not names:
        return f"a ClientMsg with application fields only ({extra} bytes)"
    what = f"a ClientMsg with {' and '.join(names)}"
    return f"{what} and {extra} bytes of application fields" if extra else what
