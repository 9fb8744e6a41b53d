"""Firstock's JSON on the wire <-> what the machine needs.

REST: every call is a POST of a JSON object; the session travels as ``jKey`` in later bodies.
Answers are ``{"status": "Success"|"success", "data": ...}`` or ``{"status": "Failed",
"code": "401", "name": "INVALID_PASSWORD", "error": {"field", "message"}}``, whatever the HTTP
status (a 500 may carry code "401"), so the body is read first and the status second.

Sockets: the Noren-style socket authenticates with a ``{"t": "c", ...}`` message answered by
``{"t": "ck", "s": "OK"}``; the newer socket takes the token in its query string and says
"Authentication successful" or "unauthenticated" in its first message.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from typing import Any, Final
from urllib.parse import urlencode

#: Versions that take the password as it is; every later one wants its sha256 hex.
PLAIN_PASSWORD_VERSIONS: Final = frozenset({"v2", "v3"})

#: Status values Firstock has used for success (compared case-insensitively).
_SUCCESS: Final = "success"
#: The longest wait a Retry-After may ask for, in seconds; a longer one is cut to this (a
#: hostile or broken server must not park a session for ever; the retries stay bounded).
MAX_RETRY_AFTER: Final = 300.0


def password_for(version: str, password: str) -> str:
    """The password as the login body carries it for API ``version`` (the apiKey never changes)."""
    if version.lower() in PLAIN_PASSWORD_VERSIONS:
        return password
    return hashlib.sha256(password.encode("utf-8")).hexdigest()


def login_body(*, user_id: str, password: str, totp: str, vendor_code: str, api_key: str,
               version: str) -> dict[str, str]:
    return {
        "userId": user_id,
        "password": password_for(version, password),
        "TOTP": totp,
        "vendorCode": vendor_code,
        "apiKey": api_key,
    }


def session_body(user_id: str, token: str) -> dict[str, str]:
    """The body of userDetails and logout."""
    return {"userId": user_id, "jKey": token}


@dataclass(frozen=True, slots=True)
class Answer:
    """One REST answer, read whatever its HTTP status.

    ``ok`` is the body's own verdict. ``name``/``code``/``field``/``message`` describe a failure
    (``name`` is ``None`` when the body was not Firstock's JSON at all: a proxy's error page).
    ``over_limit`` is set (to the limit, in bytes) when the body was too large to be read.
    """

    http_status: int
    ok: bool
    data: Any = None
    name: str | None = None
    code: str | None = None
    field: str | None = None
    message: str | None = None
    retry_after: float | None = None
    not_json: bool = False
    over_limit: int | None = None

    def describe(self) -> str:
        """A one-line account of a failed answer, for details and errors."""
        if self.over_limit is not None:
            return (f"HTTP {self.http_status} with a body larger than {self.over_limit} bytes "
                    "(max_frame_size), not read")
        if self.not_json:
            return f"HTTP {self.http_status} with a body that is not Firstock's JSON"
        parts = [f"HTTP {self.http_status}"]
        if self.name:
            parts.append(self.name)
        if self.code and self.code != str(self.http_status):
            parts.append(f"code {self.code}")
        if self.field:
            parts.append(f"field {self.field}")
        text = " ".join(parts)
        return f"{text}: {self.message!r}" if self.message else text


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header (the HTTP-date form is not worth supporting here),
    at most ``MAX_RETRY_AFTER``; None for anything that is not a finite number of seconds."""
    if value is None:
        return None
    try:
        seconds = float(value.strip())
    except ValueError:
        return None
    if not math.isfinite(seconds) or seconds < 0:
        return None
    return min(seconds, MAX_RETRY_AFTER)


def parse_answer(http_status: int, body: bytes, retry_after: str | None = None, *,
                 body_limit: int | None = None) -> Answer:
    """Read a REST answer: the JSON body decides, the HTTP status fills in.

    ``body_limit`` says the body ran past that many bytes and was not read (``body`` is then
    empty). Never raises: a body that cannot be read is an answer that says so.
    """
    wait = parse_retry_after(retry_after)
    if body_limit is not None:
        return Answer(http_status, False, retry_after=wait, over_limit=body_limit)
    try:
        doc = json.loads(body) if body else None
    except (ValueError, RecursionError):  # RecursionError: nested too deeply to parse
        doc = None
    if not isinstance(doc, dict):
        return Answer(http_status, False, retry_after=wait, not_json=True)
    status = doc.get("status")
    ok = isinstance(status, str) and status.lower() == _SUCCESS and http_status < 400
    if ok:
        return Answer(http_status, True, data=doc.get("data"), retry_after=wait)
    raw_error = doc.get("error")
    error: dict[str, Any] = raw_error if isinstance(raw_error, dict) else {}
    message = error.get("message")
    if message is None and isinstance(doc.get("data"), str):
        message = doc["data"]  # e.g. {"status": "Failed", "data": "User not LoggedIn"}
    return Answer(
        http_status,
        False,
        data=doc.get("data"),
        name=_text(doc.get("name")),
        code=_text(doc.get("code")),
        field=_text(error.get("field")),
        message=_text(message),
        retry_after=wait,
    )


def _text(value: object) -> str | None:
    """A JSON value as text: strings as they are, numbers and booleans written out, and an
    array or object named rather than written out (it may be nested too deeply to print)."""
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, bool | int | float):
        return str(value)
    return f"({json_kind(value)})"


def json_kind(value: object) -> str:
    """What kind of JSON value ``value`` is, in words."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true or false"
    kinds = {str: "a string", int: "a number", float: "a number", list: "an array",
             dict: "an object"}
    return kinds.get(type(value), type(value).__name__)


# --- sockets ------------------------------------------------------------------------------------


def noren_connect(user_id: str, token: str) -> str:
    return json.dumps({"t": "c", "uid": user_id, "actid": user_id, "susertoken": token,
                       "source": "API"})


NOREN_HEARTBEAT: Final = json.dumps({"t": "h"})


def socket_url(base: str, user_id: str, token: str) -> str:
    """The newer socket's URL: the token travels in the query string."""
    separator = "&" if "?" in base else "?"
    query = urlencode({"userId": user_id, "jKey": token, "source": "developer-api"})
    return f"{base}{separator}{query}"


@dataclass(frozen=True, slots=True)
class SocketAnswer:
    """What a socket said about our authentication: ``ok`` True/False, or None for any other
    message (market data, acknowledgements). ``unreadable`` says why a message could not be
    read at all (not UTF-8, not JSON, not a JSON object); it never quotes the message, which
    may carry the token."""

    ok: bool | None
    text: str = ""
    unreadable: str | None = None


def plainly_data(text: str) -> bool:
    """Whether a text socket message cannot be a verdict on the token (``read_socket_message``
    would find its ``ok`` None): none of the verdict markers is in it. Market data is plainly
    data, so an authenticated session hands it on without parsing its JSON.

    The markers are what a message must contain, as written, to be a verdict: the keys and text
    ``read_socket_message`` looks for, and a backslash (an escape could spell any of them).
    They are spelled out as one expression rather than looped over: this runs for every socket
    message, and the loop cost three times the searches (2.2 against 0.6 us)."""
    return not ("ck" in text or "message" in text or "status" in text
                or "Maximum sessions limit" in text or "\\" in text)


def read_socket_message(data: bytes | str) -> SocketAnswer:
    """Classify one socket message of either variant. Never raises."""
    if isinstance(data, bytes):
        try:
            text = data.decode("utf-8")
        except UnicodeDecodeError:
            return SocketAnswer(None, unreadable=f"a binary frame of {len(data)} bytes that is "
                                                 "not UTF-8")
    else:
        text = data
    if "Maximum sessions limit" in text:
        return SocketAnswer(False, text.strip()[:200])
    try:
        doc = json.loads(text)
    except RecursionError:
        return SocketAnswer(None, unreadable=f"{len(text)} characters of JSON nested too deeply")
    except ValueError:
        return SocketAnswer(None, unreadable=f"{len(text)} characters that are not JSON")
    if not isinstance(doc, dict):
        return SocketAnswer(None, unreadable=f"JSON {json_kind(doc)} where an object belongs")
    if doc.get("t") == "ck":
        ok = (_text(doc.get("s")) or "").lower() == "ok"
        return SocketAnswer(ok, _text(doc.get("emsg") or doc.get("s")) or "")
    message = _text(doc.get("message")) or ""
    if message.lower() == "authentication successful":
        return SocketAnswer(True, message)
    if message.lower() == "unauthenticated" or (_text(doc.get("status")) or "").lower() == "failed":
        return SocketAnswer(False, message or text[:200])
    return SocketAnswer(None, "")
