"""What each CQG answer makes a session do. docs/brokers/cqg.md mirrors these tables.

Result codes come from CQG WebAPI 2.230 (LogonResult, RestoreOrJoinSessionResult, LoggedOff).
CQG says any code above 100 is a failure and clients must accept codes they do not know.
A refused logon is never retried in a loop: 101 is usually a wrong password, and CQG also caps
successful logons per user per day.
"""

from __future__ import annotations

from typing import Any

from brokergate.machines._policy import (
    Action,
    Disconnect,
    Displace,
    Fail,
    FullLogon,
    PolicyRow,
    Redirect,
    Relogon,
    Restore,
    Retry,
    Succeed,
)
from brokergate.machines._sansio import Fault
from brokergate.machines.cqg import cqg_session_pb2 as pb

#: LogonResult.result_code.
LOGON_RESULTS: dict[int, Action] = {
    0: Succeed(note="authenticated; session_token kept as a secret for restores"),
    101: Fail("logon_failure", Fault.CONFIGURATION),
    103: Relogon("one_time_password", "one_time_password_required", Fault.CONFIGURATION),
    104: Fail("password_expired", Fault.ACCOUNT),
    105: Fail("concurrent_session", Fault.ACCOUNT),
    106: Redirect(),
    107: Fail("routine_error", Fault.BROKER),
    108: Relogon("access_token", "access_token_expired", Fault.CONFIGURATION),
}
#: Any other LogonResult code: CQG added a failure we do not know.
UNKNOWN_LOGON_RESULT = Fail("unknown_result", Fault.BROKER)

#: RestoreOrJoinSessionResult.result_code (numbered differently from LogonResult).
RESTORE_RESULTS: dict[int, Action] = {
    0: Succeed(note="authenticated again; `restored` event: re-subscribe"),
    101: FullLogon("unknown_session"),
    102: FullLogon("access_denied"),
    103: FullLogon("invalid_params"),
    104: FullLogon("restore_failure"),
}
UNKNOWN_RESTORE_RESULT = FullLogon("unknown_result")

#: LoggedOff.logoff_reason. The server closes the connection after a LoggedOff.
LOGOFF_REASONS: dict[int, Action] = {
    1: Disconnect("logged_off"),
    2: Redirect(),
    3: Fail("forced_logoff", Fault.ACCOUNT),
    # Another connection restored this session: taking it back would make two processes
    # displace each other forever.
    4: Displace(),
}
UNKNOWN_LOGOFF_REASON = Fail("forced_logoff", Fault.BROKER)

#: The connection of an authenticated session was lost: abnormal close, read error, a close
#: without LoggedOff, or no Pong within ping_timeout.
CONNECTION_LOST = Restore("connection_lost", Fault.NETWORK)
#: The same while logging on or restoring.
CONNECTION_LOST_EARLY = Retry("connection_lost", Fault.NETWORK)
CONNECT_FAILED = Retry("connect_failed", Fault.NETWORK)
TIMEOUT = Retry("timeout", Fault.NETWORK)
#: Before the logon result we cannot know what the server made of the credentials: stop.
MALFORMED_DURING_LOGON = Fail("protocol_error", Fault.BROKER)
MALFORMED_AFTER_LOGON = Restore("protocol_error", Fault.BROKER)
#: A restore sends no password, so a garbled answer to it is only worth another try.
MALFORMED_DURING_RESTORE = Retry("protocol_error", Fault.BROKER)
#: Close codes that say a frame from CQG was invalid at the WebSocket level (1002: it broke the
#: protocol; 1007: a text frame that is not UTF-8). Our side closes with them before the codec
#: sees the frame: they are malformed frames, acted on like the ones the codec refuses.
INVALID_FRAME_CLOSES = (1002, 1007)
#: Our side closes with 1009 when CQG sends a frame above max_frame_size.
FRAME_TOO_LARGE_CLOSE = 1009
FRAME_TOO_LARGE = Restore("frame_too_large", Fault.BROKER)
FRAME_TOO_LARGE_EARLY = Retry("frame_too_large", Fault.BROKER)
#: A credential provider raised, timed out or returned nothing.
CREDENTIAL_FAILED = Fail("credential_unavailable", Fault.CONFIGURATION)
#: The daily cap on successful logons is reached: stop before CQG's own cap locks us out.
LOGON_QUOTA = Fail("logon_quota_exhausted", Fault.ACCOUNT)


def logon_action(code: int) -> Action:
    return LOGON_RESULTS.get(code, UNKNOWN_LOGON_RESULT)


def restore_action(code: int) -> Action:
    return RESTORE_RESULTS.get(code, UNKNOWN_RESTORE_RESULT)


def logoff_action(reason: int) -> Action:
    return LOGOFF_REASONS.get(reason, UNKNOWN_LOGOFF_REASON)


def _name(message: Any, enum: str, code: int, prefix: str) -> str:
    """``106 REDIRECTED``: a code with its name in CQG's protocol, where it has one."""
    values = message.DESCRIPTOR.enum_types_by_name[enum].values_by_number
    return f"{code} {values[code].name.removeprefix(prefix)}" if code in values else str(code)


def policy_rows() -> list[PolicyRow]:
    """The whole policy as reviewer-facing rows, in the order docs/brokers/cqg.md shows them."""
    logon, restore, off = ("logon_result",), ("restore_result",), ("logged_off",)
    malformed = ("malformed_frame",)
    rows = [PolicyRow(f"LogonResult {_name(pb.LogonResult, 'ResultCode', c, 'RESULT_CODE_')}", a,
                      triggers=logon) for c, a in LOGON_RESULTS.items()]
    rows.append(PolicyRow("LogonResult, any other code", UNKNOWN_LOGON_RESULT, triggers=logon))
    rows += [PolicyRow("RestoreOrJoinSessionResult "
                       f"{_name(pb.RestoreOrJoinSessionResult, 'ResultCode', c, 'RESULT_CODE_')}",
                       a, triggers=restore) for c, a in RESTORE_RESULTS.items()]
    rows.append(PolicyRow("RestoreOrJoinSessionResult, any other code", UNKNOWN_RESTORE_RESULT,
                          triggers=restore))
    rows += [PolicyRow("LoggedOff reason "
                       f"{_name(pb.LoggedOff, 'LogoffReason', c, 'LOGOFF_REASON_')}", a,
                       triggers=off) for c, a in LOGOFF_REASONS.items()]
    rows.append(PolicyRow("LoggedOff, any other reason", UNKNOWN_LOGOFF_REASON, triggers=off))
    rows.append(PolicyRow("connection lost while authenticated (any other close code, read "
                          "error, no Pong)", CONNECTION_LOST, triggers=("closed", "timeout"),
                          states=("authenticated",)))
    rows.append(PolicyRow("connection lost (any other close code) while logging on or restoring",
                          CONNECTION_LOST_EARLY, triggers=("closed",),
                          states=("connecting", "awaiting_login_response", "restoring")))
    rows.append(PolicyRow("connection refused / handshake failed", CONNECT_FAILED,
                          triggers=("connect_failed",)))
    rows.append(PolicyRow("connect, logon-result or restore-result timeout", TIMEOUT,
                          triggers=("timeout",),
                          states=("connecting", "awaiting_login_response", "restoring")))
    rows.append(PolicyRow("malformed frame before the logon result", MALFORMED_DURING_LOGON,
                          triggers=malformed, states=("awaiting_login_response",)))
    rows.append(PolicyRow("malformed frame before the restore result", MALFORMED_DURING_RESTORE,
                          triggers=malformed, states=("restoring",)))
    rows.append(PolicyRow("malformed frame while authenticated", MALFORMED_AFTER_LOGON,
                          triggers=malformed, states=("authenticated",)))
    invalid = "close 1002 / 1007 (an invalid WebSocket frame)"
    rows.append(PolicyRow(f"{invalid} before the logon result", MALFORMED_DURING_LOGON,
                          triggers=("closed",), states=("awaiting_login_response",)))
    rows.append(PolicyRow(f"{invalid} before the restore result", MALFORMED_DURING_RESTORE,
                          triggers=("closed",), states=("restoring",)))
    rows.append(PolicyRow(f"{invalid} while authenticated", MALFORMED_AFTER_LOGON,
                          triggers=("closed",), states=("authenticated",)))
    rows.append(PolicyRow("close 1009 (a frame above max_frame_size) while authenticated",
                          FRAME_TOO_LARGE, triggers=("closed",), states=("authenticated",)))
    rows.append(PolicyRow("close 1009 (a frame above max_frame_size) while logging on or "
                          "restoring", FRAME_TOO_LARGE_EARLY, triggers=("closed",),
                          states=("awaiting_login_response", "restoring")))
    rows.append(PolicyRow("credential provider failed", CREDENTIAL_FAILED,
                          triggers=("credential_ready",)))
    rows.append(PolicyRow("daily logon cap reached before a full logon", LOGON_QUOTA))
    return rows
