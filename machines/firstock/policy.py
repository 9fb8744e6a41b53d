"""What each Firstock answer makes a session do. docs/brokers/firstock.md mirrors these tables.

Firstock names its errors (``INVALID_PASSWORD``, ``INVALID_TOTP``, ``SESSION_EXPIRED``...) and
follows an ``INVALID_<field>`` pattern rather than a fixed list, so a name is matched by prefix
and the error's field is reported. A wrong password or user id is never retried: Noren, behind
Firstock, blocks a user after a few wrong attempts.
"""

from __future__ import annotations

from brokergate.machines._policy import Action, Fail, LockOut, PolicyRow, Relogon, Retry, Succeed
from brokergate.machines._sansio import Fault
from brokergate.machines.firstock.codec import Answer

SUCCESS = Succeed(note="token acquired (susertoken kept as a secret)")

#: Error names matched exactly, before the patterns below.
#: The token was refused: a fresh REST login, once (a refusal of that token too ends it).
TOKEN_REFUSED = Relogon("token", "session_invalid", Fault.BROKER,
                        note="log in again once for a fresh token; refused again: failed")

NAMES: dict[str, Action] = {
    # A code from an authenticator is only good for its 30-second window: with a seed, wait for
    # the next window and try once more; a fixed code or a provider's code cannot get better.
    "INVALID_TOTP": Relogon("totp", "invalid_totp", Fault.CONFIGURATION,
                            note="with a TOTP seed: once more in the next 30-second window; "
                                 "else failed"),
    "API_RATE_LIMIT": Retry("rate_limited", Fault.BROKER),
    "RATE_LIMIT_EXCEEDED": Retry("rate_limited", Fault.BROKER),
    "INVALID_JKEY": TOKEN_REFUSED,
    "SESSION_EXPIRED": TOKEN_REFUSED,
    "UNAUTHORIZED": TOKEN_REFUSED,
}
#: Any other ``INVALID_<field>`` (password, userid, apikey, vendorcode...).
INVALID_FIELD = Fail("invalid_credentials", Fault.CONFIGURATION)
#: Noren's answer after repeated wrong passwords, whatever name Firstock wraps it in.
BLOCKED_TEXT = "user blocked"
BLOCKED = LockOut("user_blocked", Fault.ACCOUNT)
#: HTTP 429 without a name we know.
HTTP_429 = Retry("rate_limited", Fault.BROKER)
#: HTTP 5xx (a JSON body that names no known error, or a proxy's page).
SERVER_ERROR = Retry("server_error", Fault.BROKER)
#: A non-5xx answer whose body is not Firstock's JSON.
UNREADABLE = Fail("unreadable_answer", Fault.BROKER)
#: A non-5xx answer whose body is larger than max_frame_size: not read into memory.
TOO_LARGE = Fail("answer_too_large", Fault.BROKER)
#: Anything else: report the name and message, do not guess.
UNKNOWN = Fail("unknown_error", Fault.BROKER)

CONNECT_FAILED = Retry("connect_failed", Fault.NETWORK)
TIMEOUT = Retry("timeout", Fault.NETWORK)
#: The socket closed: reattach with the token in hand (no REST login).
CONNECTION_LOST = Retry("connection_lost", Fault.NETWORK, immediate=True)
#: Our side closes with 1009 when Firstock sends a socket frame above max_frame_size.
FRAME_TOO_LARGE_CLOSE = 1009
FRAME_TOO_LARGE = Retry("frame_too_large", Fault.BROKER)
#: Close codes that say a socket frame from Firstock was invalid at the WebSocket level (1002:
#: it broke the protocol; 1007: a text frame that is not UTF-8).
INVALID_FRAME_CLOSES = (1002, 1007)
#: A socket message that cannot be read (not UTF-8, not JSON, not a JSON object) before the
#: verdict on our token, as QST and CQG treat a malformed frame before their login result.
MALFORMED_BEFORE_VERDICT = Fail("protocol_error", Fault.BROKER)
#: The same once authenticated, where only the WebSocket layer can refuse a frame (the
#: application reads market data as it comes): reattach.
MALFORMED_AFTER_VERDICT = Retry("protocol_error", Fault.BROKER)
#: A login "success" without a token: nothing to work with.
MISSING_TOKEN = Fail("protocol_error", Fault.BROKER)


def classify(answer: Answer, *, with_token: bool = False) -> Action:
    """The action for a REST answer. ``with_token``: the call carried a jKey (not the login)."""
    if answer.ok:
        return SUCCESS
    text = (answer.message or "").lower()
    if BLOCKED_TEXT in text:
        return BLOCKED
    name = (answer.name or "").upper()
    if name in NAMES:
        return NAMES[name]
    if name.startswith("INVALID_"):
        return INVALID_FIELD
    if answer.http_status == 429:
        return HTTP_429
    if answer.http_status >= 500:
        return SERVER_ERROR
    if answer.over_limit is not None:
        return TOO_LARGE
    if answer.not_json:
        return UNREADABLE
    if with_token and answer.http_status in (401, 403):
        return TOKEN_REFUSED
    return UNKNOWN


def policy_rows() -> list[PolicyRow]:
    """The whole policy as reviewer-facing rows, in the order docs/brokers/firstock.md shows
    them."""
    rest = ("login_answer", "validation_answer")
    with_token = ("validation_answer", "token_refused")
    rows = [PolicyRow('status "success" (any case)', SUCCESS, triggers=rest)]
    rows.append(PolicyRow('status "success" without a susertoken', MISSING_TOKEN,
                          triggers=("login_answer",)))
    rows.append(PolicyRow('message containing "User Blocked"', BLOCKED, triggers=rest))
    rows += [PolicyRow(f"name {n}", a, triggers=with_token if a is TOKEN_REFUSED else rest)
             for n, a in NAMES.items()]
    rows.append(PolicyRow("name INVALID_<field> (password, userid, apikey, vendorcode...)",
                          INVALID_FIELD, triggers=rest))
    rows.append(PolicyRow("HTTP 429, no known name (Retry-After honoured)", HTTP_429,
                          triggers=rest))
    rows.append(PolicyRow("HTTP 5xx, no known name (JSON or not)", SERVER_ERROR, triggers=rest))
    rows.append(PolicyRow("a body that is not JSON, below 500", UNREADABLE, triggers=rest))
    rows.append(PolicyRow("a body larger than max_frame_size, below 500", TOO_LARGE,
                          triggers=rest))
    rows.append(PolicyRow("HTTP 401/403 on a call with the token", TOKEN_REFUSED,
                          triggers=with_token))
    rows.append(PolicyRow("anything else", UNKNOWN, triggers=rest))
    rows.append(PolicyRow("connection refused / TLS failed", CONNECT_FAILED,
                          triggers=("login_failed", "connect_failed")))
    rows.append(PolicyRow("connect or read timeout", TIMEOUT, triggers=("login_failed", "timeout")))
    rows.append(PolicyRow("unreadable socket message before the verdict",
                          MALFORMED_BEFORE_VERDICT, triggers=("malformed_frame",),
                          states=("awaiting_login_response",)))
    invalid = "socket close 1002 / 1007 (an invalid WebSocket frame)"
    rows.append(PolicyRow(f"{invalid} before the verdict", MALFORMED_BEFORE_VERDICT,
                          triggers=("closed",), states=("awaiting_login_response",)))
    rows.append(PolicyRow(f"{invalid} while authenticated", MALFORMED_AFTER_VERDICT,
                          triggers=("closed",), states=("authenticated",)))
    rows.append(PolicyRow("socket close 1009 (a frame above max_frame_size)", FRAME_TOO_LARGE,
                          triggers=("closed",), states=("awaiting_login_response",
                                                        "authenticated")))
    rows.append(PolicyRow("socket closed or dropped (any other close code)", CONNECTION_LOST,
                          triggers=("closed",)))
    return rows


def classify_close(code: int, *, before_verdict: bool) -> Action:
    """The action for a socket close; ``before_verdict``: while awaiting the verdict."""
    if code in INVALID_FRAME_CLOSES:
        return MALFORMED_BEFORE_VERDICT if before_verdict else MALFORMED_AFTER_VERDICT
    if code == FRAME_TOO_LARGE_CLOSE:
        return FRAME_TOO_LARGE
    return CONNECTION_LOST
