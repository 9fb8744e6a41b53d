"""What each CQG answer makes a session do. The README mirrors these tables.

Result codes come from CQG WebAPI 2.230 (LogonResult, RestoreOrJoinSessionResult, LoggedOff).
CQG says any code above 100 is a failure and clients must accept codes they do not know.
A refused logon is never retried in a loop: 101 is usually a wrong password, and CQG also caps
successful logons per user per day.
"""

from __future__ import annotations

from machines._policy import (
    Action,
    Disconnect,
    Fail,
    FullLogon,
    PolicyRow,
    Redirect,
    Relogon,
    Restore,
    Retry,
    Succeed,
)
from machines._sansio import Fault

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
    4: Fail("displaced", Fault.ACCOUNT),
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


def policy_rows() -> list[PolicyRow]:
    """The whole policy as reviewer-facing rows, in the order the README shows them."""
    rows = [PolicyRow(f"LogonResult {c}", a) for c, a in LOGON_RESULTS.items()]
    rows.append(PolicyRow("LogonResult, any other code", UNKNOWN_LOGON_RESULT))
    rows += [PolicyRow(f"RestoreOrJoinSessionResult {c}", a) for c, a in RESTORE_RESULTS.items()]
    rows.append(PolicyRow("RestoreOrJoinSessionResult, any other code", UNKNOWN_RESTORE_RESULT))
    rows += [PolicyRow(f"LoggedOff reason {c}", a) for c, a in LOGOFF_REASONS.items()]
    rows.append(PolicyRow("LoggedOff, any other reason", UNKNOWN_LOGOFF_REASON))
    rows.append(PolicyRow("connection lost while authenticated (close, read error, no Pong)",
                          CONNECTION_LOST))
    rows.append(PolicyRow("connection lost while logging on or restoring", CONNECTION_LOST_EARLY))
    rows.append(PolicyRow("connection refused / handshake failed", CONNECT_FAILED))
    rows.append(PolicyRow("connect, logon-result or restore-result timeout", TIMEOUT))
    rows.append(PolicyRow("malformed frame before the logon result", MALFORMED_DURING_LOGON))
    rows.append(PolicyRow("malformed frame before the restore result", MALFORMED_DURING_RESTORE))
    rows.append(PolicyRow("malformed frame while authenticated", MALFORMED_AFTER_LOGON))
    rows.append(PolicyRow("credential provider failed", CREDENTIAL_FAILED))
    rows.append(PolicyRow("daily logon cap reached before a full logon", LOGON_QUOTA))
    return rows
