"""What a Firstock session needs to know, and the checks that need no network."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import time
from typing import Literal
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from brokergate.machines._config import CredentialProvider, SessionSettings, url_problems
from brokergate.machines._secret import Secret

SocketKind = Literal["noren", "v2", "none"]

_VERSION_IN_PATH = re.compile(r"/(?:api)?(V\d+)(?:/|$)", re.IGNORECASE)


@dataclass(frozen=True, slots=True, kw_only=True)
class FirstockConfig(SessionSettings):
    """A Firstock login: REST (``base_url``, e.g. ``https://connect.thefirstock.com/api/V3``),
    then optionally a market-data socket attached with the session token.

    ``api_version`` decides how the password travels: ``v2``/``v3`` as it is, ``v4`` and later as
    its sha256 hex; by default it is read from the base URL's path (``/api/V3`` -> v3) and a URL
    without one (``https://api.firstock.in/V1`` is V1, hashed) is taken as hashed too. The apiKey
    is always sent as the portal shows it.

    The TOTP comes from ``totp_seed`` (base32, via pyotp), ``totp_provider`` (a callable or
    coroutine function), or ``totp`` (one fixed code, for a one-off login).

    ``socket``: ``"noren"`` (``{"t":"c"}`` handshake, ``{"t":"h"}`` heartbeats every
    ``heartbeat_interval``), ``"v2"`` (token in the query string), or ``"none"`` (authenticated
    once the token is acquired). ``socket_url`` is required unless ``"none"``.

    Every token dies at the daily expiry (``token_expiry`` in ``token_timezone``; Noren brokers
    expire sessions early in the morning IST), so a live session logs in again a minute after
    it. ``request_timeout`` bounds connecting and
    reading each REST call.
    """

    base_url: str
    user_id: str
    password: Secret
    api_key: Secret
    vendor_code: str
    api_version: str | None = None
    totp_seed: Secret | None = None
    totp_provider: CredentialProvider | None = None
    totp: Secret | None = None
    socket: SocketKind = "none"
    socket_url: str | None = None
    heartbeat_interval: float = 5.0
    request_timeout: float = 10.0
    requests_per_second: float | None = 10.0
    token_expiry: time = time(5, 0)
    token_timezone: str = "Asia/Kolkata"

    def __repr__(self) -> str:
        return (f"FirstockConfig(base_url={self.base_url!r}, user_id={self.user_id!r}, "
                f"vendor_code={self.vendor_code!r}, socket={self.socket!r})")

    @property
    def account(self) -> str:
        return self.user_id

    @property
    def version(self) -> str:
        """The API version the login speaks (lowercase, e.g. ``v3``)."""
        if self.api_version:
            return self.api_version.lower()
        found = _VERSION_IN_PATH.search(urlsplit(self.base_url).path)
        return found.group(1).lower() if found else "v4"

    def endpoint(self, name: str) -> str:
        return f"{self.base_url.rstrip('/')}/{name}"

    def problems(self) -> list[str]:
        """Everything wrong with this configuration; empty when it can be used."""
        problems = url_problems(self.base_url, secure="https", plain="http", what="base_url")
        if not self.user_id:
            problems.append("user_id is missing")
        if not self.vendor_code:
            problems.append("vendor_code is missing")
        for name in ("password", "api_key", "totp_seed", "totp"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, Secret):
                problems.append(f"{name} must be a Secret")
            elif name in ("password", "api_key") and not value:
                problems.append(f"{name} is missing")
        ways = [w for w in ("totp_seed", "totp_provider", "totp") if getattr(self, w) is not None]
        if len(ways) != 1:
            problems.append("give exactly one of totp_seed, totp_provider or totp "
                            f"(found: {' and '.join(ways) or 'none'})")
        if self.api_version is not None and not re.fullmatch(r"[vV]\d+", self.api_version):
            problems.append(f"api_version must look like v3 or v4, got {self.api_version!r}")
        if self.socket not in ("noren", "v2", "none"):
            problems.append(f"socket must be noren, v2 or none, got {self.socket!r}")
        elif self.socket != "none":
            if not self.socket_url:
                problems.append(f"socket_url is required for the {self.socket} socket")
            else:
                problems += url_problems(self.socket_url, secure="wss", plain="ws",
                                         what="socket_url")
        if self.requests_per_second is not None and not self.requests_per_second > 0:
            problems.append("requests_per_second must be positive (or None for no limit)")
        if not self.heartbeat_interval > 0 or not self.request_timeout > 0:
            problems.append("heartbeat_interval and request_timeout must be positive")
        try:
            ZoneInfo(self.token_timezone)
        except (ZoneInfoNotFoundError, ValueError):
            problems.append(f"token_timezone {self.token_timezone!r} is not a known time zone")
        return problems + self.settings_problems()
