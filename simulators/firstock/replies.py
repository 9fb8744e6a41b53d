"""Building the Firstock API's replies: pure functions from decisions to HTTP replies.

Every JSON reply follows Firstock's schema: ``{"status": "Success", "data": ...}`` or
``{"status": "Failed", "code": "<string>", "name": "<NAME>", "error": {"field", "message"}}``.
``code`` is a string and need not match the HTTP status (the documented 500 says "401").
"""

from __future__ import annotations

import json
import math
from typing import Final

from brokergate.simulators.firstock.accounts import StatusCase
from brokergate.simulators.firstock.http11 import Reply

#: Noren's own words for a blocked user (Shoonya issue #87); Firstock documents no name for it.
BLOCKED_TEXT: Final = "Invalid Input : User Blocked due to multiple wrong attempts"
#: What a proxy in front of the API says when the API behind it is down.
BAD_GATEWAY_PAGE: Final = (
    b"<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    b"<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n"
    b"</body>\r\n</html>\r\n"
)
LOGGED_OUT_TEXT: Final = "Successfully logged out"


def status_word(ok: bool, case: StatusCase) -> str:
    word = "Success" if ok else "Failed"
    return word.lower() if case == "lowercase" else word


def _json(status: int, payload: dict[str, object], *, reason: str | None = None,
          headers: tuple[tuple[str, str], ...] = ()) -> Reply:
    return Reply(status, json.dumps(payload).encode(), headers=headers, reason=reason)


def success(data: object, case: StatusCase) -> Reply:
    return _json(200, {"status": status_word(True, case), "data": data})


def failure(status: int, name: str, field: str, message: str, case: StatusCase, *,
            code: str | None = None, reason: str | None = None,
            headers: tuple[tuple[str, str], ...] = ()) -> Reply:
    """A failure in Firstock's schema; ``code`` defaults to the HTTP status, as a string."""
    payload: dict[str, object] = {
        "status": status_word(False, case),
        "code": str(status) if code is None else code,
        "name": name,
        "error": {"field": field, "message": message},
    }
    return _json(status, payload, reason=reason, headers=headers)


def missing(field: str, case: StatusCase, *, wrong_type: bool = False) -> Reply:
    """400 BAD_REQUEST naming the first required field that is absent, empty or not a string."""
    message = (f"{field} parameter must be a string" if wrong_type
               else f"{field} parameter is required")
    return failure(400, "BAD_REQUEST", field, message, case)


def invalid(field: str, case: StatusCase) -> Reply:
    """401 INVALID_<FIELD>, Firstock's ``INVALID_[variable]`` pattern."""
    return failure(401, f"INVALID_{field.upper()}", field, f"{field} parameter is invalid", case)


def blocked(case: StatusCase) -> Reply:
    return failure(401, "INVALID_INPUT", "userId", BLOCKED_TEXT, case)


def session_expired(case: StatusCase) -> Reply:
    return failure(401, "SESSION_EXPIRED", "jKey", "Session expired: log in again", case)


def server_error(case: StatusCase) -> Reply:
    """The documented quirk: ``HTTP/1.1 500 Server error`` whose body says code "401"."""
    return failure(500, "SERVER_ERROR", "", "Server error", case, code="401",
                   reason="Server error")


def bad_gateway() -> Reply:
    return Reply(502, BAD_GATEWAY_PAGE, content_type="text/html")


def rate_limited(name: str, retry_after: float, case: StatusCase) -> Reply:
    """429 with ``Retry-After`` in whole seconds (rounded up: HTTP has no fractions there)."""
    seconds = max(1, math.ceil(retry_after))
    return failure(429, name, "", f"Too many requests: retry after {seconds} seconds", case,
                   headers=(("retry-after", str(seconds)),))


def not_found(path: str, case: StatusCase) -> Reply:
    return failure(404, "RESOURCE_NOT_FOUND", "", f"no such endpoint: {path}", case)


def method_not_allowed(method: str, case: StatusCase) -> Reply:
    return failure(405, "METHOD_NOT_ALLOWED", "", f"{method} is not allowed here: use POST",
                   case, headers=(("allow", "POST"),))


def not_an_object(case: StatusCase) -> Reply:
    return failure(400, "BAD_REQUEST", "", "the body must be a JSON object", case)


def http_refusal(status: int, message: str, case: StatusCase) -> Reply:
    """The answer to a request HTTP itself could not carry (garbage, too large, too slow)."""
    names = {408: "REQUEST_TIMEOUT", 413: "PAYLOAD_TOO_LARGE", 431: "HEADERS_TOO_LARGE",
             500: "INTERNAL_SERVER_ERROR"}
    return failure(status, names.get(status, "BAD_REQUEST"), "", message, case)
