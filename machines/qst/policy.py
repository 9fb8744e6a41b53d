"""What each QST answer makes a session do. docs/brokers/qst.md mirrors these tables.

Error codes come from QST's LoginRequest documentation. A wrong password is never retried: QST
locks the account after a number of failed logins (code 5), and a retry loop would get it there.
"""

from __future__ import annotations

import re

from brokergate.machines._policy import Action, Displace, Fail, LockOut, PolicyRow, Retry
from brokergate.machines._sansio import Fault

#: ErrorMessage.code in answer to a LoginRequest.
ERROR_CODES: dict[int, Action] = {
    1: Fail("invalid_credentials", Fault.CONFIGURATION),
    2: Fail("second_factor_missing", Fault.ACCOUNT),
    3: Fail("email_validation_pending", Fault.ACCOUNT),
    4: Fail("second_factor_key_validation_pending", Fault.ACCOUNT),
    5: LockOut("account_locked", Fault.ACCOUNT),
    6: Retry("server_error", Fault.BROKER),
    1000: Retry("login_failed_other", Fault.BROKER, max_attempts=3, exhausted="login_failed_other"),
}

#: ErrorMessage texts that carry no code, matched by their start.
ERROR_TEXTS: dict[str, Action] = {
    "Populate all mandatory fields": Fail("missing_mandatory_fields", Fault.CONFIGURATION),
    "Unauthorized client_id": Fail("unauthorized_client_id", Fault.CONFIGURATION),
}

#: Any other code, or a text we cannot place.
UNKNOWN_ERROR = Fail("unknown_error", Fault.BROKER)

#: WebSocket close codes from the server.
CLOSE_CODES: dict[int, Action] = {
    # Only one connection per user: another device took over. Fighting back would make two
    # processes kick each other off forever.
    4101: Displace(),
    4102: Retry("slow_reader", Fault.BROKER),
    # Our side closes with 1009 when the broker sends a frame above max_frame_size (QST would
    # for a frame of ours above its own limit).
    1009: Retry("frame_too_large", Fault.BROKER),
    1000: Retry("server_closed", Fault.BROKER, immediate=True),
}
#: Any other close, including a dropped TCP connection (1006).
CONNECTION_LOST = Retry("connection_lost", Fault.NETWORK, immediate=True)

CONNECT_FAILED = Retry("connect_failed", Fault.NETWORK)
TIMEOUT = Retry("timeout", Fault.NETWORK)
#: The server sent bytes that are not a valid frame. Before the login response we cannot know
#: what the server made of our credentials, so we stop rather than risk a failed-login count.
MALFORMED_DURING_LOGIN = Fail("protocol_error", Fault.BROKER)
MALFORMED_AFTER_LOGIN = Retry("protocol_error", Fault.BROKER)
#: Close codes that say a frame from the broker was invalid at the WebSocket level (1002: it
#: broke the protocol; 1007: a text frame that is not UTF-8). Our side closes with them before
#: the codec sees the frame, so they are malformed frames like the ones the codec refuses.
INVALID_FRAME_CLOSES = (1002, 1007)

_TRAILING_CODE = re.compile(r"\((\d+)\)\s*\.?\s*$")


def classify_error(code: int | None, text: str | None) -> tuple[Action, int | None]:
    """The action for a login ErrorMessage, and the code it was decided on.

    The code decides when present; otherwise the text: a known phrase, or a "(N)" at its end.
    """
    if code is None and text:
        for prefix, action in ERROR_TEXTS.items():
            if text.startswith(prefix):
                return action, None
        found = _TRAILING_CODE.search(text)
        if found:
            code = int(found.group(1))
    if code is None:
        return UNKNOWN_ERROR, None
    return ERROR_CODES.get(code, UNKNOWN_ERROR), code


def classify_close(code: int, *, during_login: bool = False) -> Action:
    """The action for a close; ``during_login``: before the login response."""
    if code in INVALID_FRAME_CLOSES:
        return MALFORMED_DURING_LOGIN if during_login else MALFORMED_AFTER_LOGIN
    return CLOSE_CODES.get(code, CONNECTION_LOST)


def policy_rows() -> list[PolicyRow]:
    """The whole policy as reviewer-facing rows, in the order docs/brokers/qst.md shows them."""
    err, close = ("error_message",), ("closed",)
    rows = [PolicyRow(f"ErrorMessage code {c}", a, triggers=err) for c, a in ERROR_CODES.items()]
    rows += [PolicyRow(f'ErrorMessage "{t}…" (no code)', a, triggers=err)
             for t, a in ERROR_TEXTS.items()]
    rows.append(PolicyRow("ErrorMessage, any other code or text", UNKNOWN_ERROR, triggers=err))
    rows += [PolicyRow(f"close {c}", a, triggers=close) for c, a in CLOSE_CODES.items()]
    rows.append(PolicyRow("close, any other code (1006: connection dropped)", CONNECTION_LOST,
                          triggers=close))
    rows.append(PolicyRow("connection refused / handshake failed", CONNECT_FAILED,
                          triggers=("connect_failed",)))
    rows.append(PolicyRow("connect or login-response timeout", TIMEOUT, triggers=("timeout",)))
    rows.append(PolicyRow("malformed frame before the login response", MALFORMED_DURING_LOGIN,
                          triggers=("malformed_frame",), states=("awaiting_login_response",)))
    rows.append(PolicyRow("malformed frame while authenticated", MALFORMED_AFTER_LOGIN,
                          triggers=("malformed_frame",), states=("authenticated",)))
    rows.append(PolicyRow("close 1002 / 1007 (an invalid WebSocket frame) before the login "
                          "response", MALFORMED_DURING_LOGIN, triggers=close,
                          states=("awaiting_login_response",)))
    rows.append(PolicyRow("close 1002 / 1007 (an invalid WebSocket frame) while authenticated",
                          MALFORMED_AFTER_LOGIN, triggers=close, states=("authenticated",)))
    return rows
