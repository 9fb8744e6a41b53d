"""What the CQG simulator decides about a Logon or a restore from the request (and the session
it names) alone: pure functions, no I/O."""

from __future__ import annotations

from collections.abc import Callable
from typing import Final

import pyotp

from brokergate.machines.cqg import cqg_session_pb2 as pb
from brokergate.simulators.cqg import frames
from brokergate.simulators.cqg.accounts import CqgAccount
from brokergate.simulators.cqg.sessions import Countdowns, ServerSession

#: Connections one session may have joined at once (CQG's documented default).
MAX_JOINED: Final = 10


def logon_field_problem(logon: pb.Logon, knows_app: Callable[[str], bool]) -> str | None:
    """What makes this Logon unacceptable before anyone looks at the credentials."""
    if not logon.client_version:
        return "client_version is required"
    if logon.HasField("partner_token"):
        return "partner_token logons are not supported by the simulator"
    by_token = logon.HasField("access_token")
    if by_token and any(
        logon.HasField(f) for f in ("user_name", "password", "one_time_password")
    ):
        return "access_token cannot be combined with user_name, password or one_time_password"
    if not by_token and not logon.user_name:
        return "user_name and password (or access_token) are required"
    if logon.client_app_id:
        if not knows_app(logon.client_app_id):
            return f"unknown client_app_id {logon.client_app_id!r}"
    elif not by_token:
        return "client_app_id is required"
    return None


def refusal(
    logon: pb.Logon, account: CqgAccount, countdowns: Countdowns, *, by_token: bool, expired: bool
) -> tuple[int, str, str | None] | None:
    """(code, text, redirect_url) of the LogonResult refusing this logon, or None to go on."""
    if expired:
        return 108, frames.logon_text(108), None
    if not by_token and logon.password != account.password:
        return 101, "unknown user name or wrong password", None
    if countdowns.take_redirect():
        return 106, frames.logon_text(106), account.redirect_to
    if account.logon_result is not None and countdowns.take_result():
        return account.logon_result, frames.logon_text(account.logon_result), None
    if account.otp_seed is not None and not by_token:
        if not logon.one_time_password:
            return 103, frames.logon_text(103), None
        if not pyotp.TOTP(account.otp_seed).verify(logon.one_time_password, valid_window=1):
            return 101, "wrong one-time password", None
    return None


def restore_denial(
    req: pb.RestoreOrJoinSession, session: ServerSession, knows_app: Callable[[str], bool]
) -> str | None:
    """Why a restore (or join) of ``session`` is denied (result code 102), or None to go on."""
    if not knows_app(req.client_app_id):
        return f"unknown client_app_id {req.client_app_id!r}"
    if not (session.restorable or session.joinable):
        return "the session was not opened with ALLOW_SESSION_RESTORE"
    others = len(session.connections)
    if session.joinable and others >= MAX_JOINED:
        return f"the session already has {others} connections"
    return None
