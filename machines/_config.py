"""Settings every broker session shares, and checks that need no network."""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from urllib.parse import urlsplit

from brokergate.machines._secret import Secret
from brokergate.machines.backoff import Backoff

DEFAULT_BACKOFF = Backoff()

#: A callable that returns a fresh credential. A coroutine function is awaited (use one for
#: anything that does I/O, such as an OAuth refresh); a plain function runs on the event loop and
#: must return at once. Either is bounded by ``login_timeout``.
CredentialProvider = Callable[[], "str | Secret | Awaitable[str | Secret]"]


@dataclass(frozen=True, slots=True, kw_only=True)
class SessionSettings:
    """Timeouts, retry policy and transport options common to every broker.

    ``connect_timeout`` and ``login_timeout`` bound the connection handshake and the wait for the
    login response; both count as transient failures and are retried with backoff.
    ``ca_file`` adds a CA bundle to trust for TLS (a private CA or a test server); certificate
    verification itself is always on.

    ``ping_interval`` is how often an open connection is probed with a WebSocket ping (``None``:
    never); a pong that does not come within ``ping_timeout`` means the connection is dead (a
    half-open TCP connection shows no other sign), and it is handled like a dropped one. The same
    timeout bounds how long a session-control frame may take to send.

    ``slow_consumer_after``: once a subscriber that loses nothing has kept the session from
    reading its connection this long, a ``slow_consumer`` notice says so (and ``caught_up`` when
    the reading resumes).
    """

    connect_timeout: float = 10.0
    login_timeout: float = 10.0
    logout_timeout: float = 5.0
    backoff: Backoff = DEFAULT_BACKOFF  # frozen: one shared by every default configuration
    session_id: str | None = None
    ca_file: str | None = None
    max_frame_size: int = 1 << 20
    ping_interval: float | None = 20.0
    ping_timeout: float = 10.0
    slow_consumer_after: float = 5.0

    @property
    def account(self) -> str:
        """Who logs in (never a secret): what logs, metrics and status pages name the session
        by. Each broker's configuration says which of its fields that is (empty here: these
        settings alone are no broker's)."""
        return ""

    def problems(self) -> list[str]:
        """Everything wrong with this configuration; empty when it can be used (each broker's
        configuration says more)."""
        return self.settings_problems()

    def settings_problems(self) -> list[str]:
        problems = []
        if self.ping_interval is not None and not self.ping_interval > 0:
            problems.append("ping_interval must be positive (or None to disable pings)")
        for name in ("connect_timeout", "login_timeout", "logout_timeout", "ping_timeout",
                     "slow_consumer_after"):
            if not getattr(self, name) > 0:
                problems.append(f"{name} must be positive")
        if self.max_frame_size < 1024:
            problems.append("max_frame_size must be at least 1024 bytes")
        return problems


@functools.lru_cache(maxsize=1024)  # checked for every session's configuration
def is_loopback_host(host: str) -> bool:
    if host.lower() in ("localhost", "localhost."):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def with_default_scheme(url: str, secure: str) -> str:
    """TLS by default: a URL given without a scheme gets ``secure://``."""
    return url if "://" in url else f"{secure}://{url}"


def url_problems(url: str, *, secure: str, plain: str, what: str = "url") -> list[str]:
    """TLS by default: ``secure`` (wss/https) anywhere, ``plain`` (ws/http) only to loopback."""
    problem = _url_problem(url, secure, plain, what)
    return [problem] if problem else []  # a fresh list: callers add their own problems to it


@functools.lru_cache(maxsize=1024)  # every session of a fleet checks the same few URLs
def _url_problem(url: str, secure: str, plain: str, what: str) -> str | None:
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises on a malformed port
    except ValueError as exc:
        return f"{what} {url!r} is not a valid URL ({exc})"
    if parts.scheme not in (secure, plain):
        return (f"{what} must start with {secure}:// (or {plain}:// to a loopback host), "
                f"got {url!r}")
    if not parts.hostname:
        return f"{what} {url!r} has no host"
    if parts.username or parts.password:
        return f"{what} must not carry credentials; configure them separately"
    if parts.scheme == plain and not is_loopback_host(parts.hostname):
        return (f"{what} uses plaintext {plain}:// to {parts.hostname}, which is not a "
                f"loopback host; use {secure}://")
    return None
