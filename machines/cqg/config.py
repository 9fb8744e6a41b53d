"""What a CQG WebAPI session needs to know, and the checks that need no network."""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import urlsplit

from brokergate.machines._config import (
    CredentialProvider,
    SessionSettings,
    is_loopback_host,
    url_problems,
)
from brokergate.machines._secret import Secret

#: The default ``client_version`` sent in Logon (CQG requires one).
DEFAULT_CLIENT_VERSION = "brokergate 0.1"


# Two-label public suffixes common enough to matter for the redirect allow-list default; a full
# public-suffix list is not worth a dependency (configure ``redirect_hosts`` for anything else).
_TWO_LABEL_SUFFIXES = frozenset({
    "co.uk", "org.uk", "ac.uk", "com.au", "net.au", "co.jp", "co.in", "co.nz", "com.br",
    "com.cn", "com.hk", "com.sg", "co.za", "com.tr", "com.mx", "co.kr",
})


def registered_domain(host: str) -> str:
    """``demoapi.cqg.com`` -> ``cqg.com``; an IP address or a one-label name stays as it is."""
    host = host.lower().rstrip(".")
    if is_loopback_host(host) or host.replace(".", "").isdigit() or ":" in host:
        return host
    labels = host.split(".")
    keep = 3 if ".".join(labels[-2:]) in _TWO_LABEL_SUFFIXES else 2
    return ".".join(labels[-keep:])


def host_allowed(host: str, allowed: tuple[str, ...]) -> bool:
    """``host`` equals an allowed name or is a subdomain of one."""
    host = host.lower().rstrip(".")
    return any(host == a or host.endswith("." + a) for a in allowed)


def _seed_problems(seed: Secret) -> list[str]:
    """Whether a TOTP seed can make codes (the message never shows the seed)."""
    import pyotp  # noqa: PLC0415 - only sessions with a TOTP seed need it

    try:
        pyotp.TOTP(seed.reveal()).byte_secret()
    except (ValueError, TypeError) as exc:
        kind = "too short" if "112 bits" in str(exc) else "not valid base32"
        return [f"otp_seed is {kind}: a TOTP seed is base32 text of at least 112 bits"]
    return []


@dataclass(frozen=True, slots=True, kw_only=True)
class CqgConfig(SessionSettings):
    """A CQG WebAPI logon. Exactly one way in: ``user_name`` + ``password``, ``access_token``
    (optionally with ``access_token_provider`` to fetch a fresh one when CQG says it expired),
    or ``partner_token``.

    One-time passwords (LogonResult 103) come from ``otp_seed`` (a TOTP seed, base32) or
    ``otp_provider`` (a callable or coroutine function returning the code).

    Restore: with ``restore`` on (the default) the Logon asks CQG to keep the session after an
    accidental disconnect, and a lost connection is restored with RestoreOrJoinSession for up to
    ``restore_window`` seconds before falling back to a full logon.

    Logon throttle: full logons of one user are spaced ``min_logon_interval`` seconds apart
    (a redirect or a one-time-password / access-token follow-up is not held back) and at most
    ``daily_logon_limit`` succeed in any 24 hours; then the session fails with
    ``logon_quota_exhausted``.

    Redirects go only to hosts in ``redirect_hosts`` (default: the registered domain of ``url``'s
    host, e.g. ``cqg.com``), at most ``max_redirects`` in a row.

    ``ping_interval`` / ``ping_timeout`` drive CQG's own Ping/Pong messages here (not WebSocket
    pings). ``enforce_inactivity_timeout`` logs off when the application has sent nothing for the
    ``inactivity_timeout`` CQG gives in LogonResult, as CQG asks clients to.
    """

    url: str
    user_name: str | None = None
    password: Secret | None = None
    access_token: Secret | None = None
    access_token_provider: CredentialProvider | None = None
    partner_token: Secret | None = None
    otp_seed: Secret | None = None
    otp_provider: CredentialProvider | None = None
    client_app_id: str | None = None
    private_label: str | None = None
    client_version: str = DEFAULT_CLIENT_VERSION
    drop_concurrent_session: bool | None = None
    max_collapsing_level: int | None = None
    market_data_bandwidth: int | None = None
    dialect_id: str | None = None
    fingerprint: str | None = None
    operating_system: str | None = None
    browser: str | None = None
    device_model: str | None = None
    restore: bool = True
    restore_window: float = 60.0
    redirect_hosts: tuple[str, ...] | None = None
    max_redirects: int = 3
    min_logon_interval: float = 60.0
    daily_logon_limit: int = 200
    enforce_inactivity_timeout: bool = True

    def __repr__(self) -> str:
        way = ("password" if self.password is not None else
               "access_token" if self.access_token or self.access_token_provider else
               "partner_token" if self.partner_token is not None else "none")
        return (f"CqgConfig(url={self.url!r}, user_name={self.user_name!r}, "
                f"client_app_id={self.client_app_id!r}, logon={way})")

    @property
    def uses_access_token(self) -> bool:
        return self.access_token is not None or self.access_token_provider is not None

    @property
    def account(self) -> str:
        """Who logs on, for logs and the throttle (a token logon has no user name to show)."""
        if self.user_name:
            return self.user_name
        kind = "access-token" if self.uses_access_token else "partner-token"
        return f"{kind}:{self.private_label or self.client_app_id or 'default'}"

    def totp_provider(self) -> CredentialProvider | None:
        """A provider of the current TOTP code from ``otp_seed`` (None without a seed)."""
        seed = self.otp_seed
        if not isinstance(seed, Secret) or not seed:
            return None
        import pyotp  # noqa: PLC0415 - only sessions with a TOTP seed need it

        totp = pyotp.TOTP(seed.reveal())
        return totp.now

    def allowed_redirect_hosts(self) -> tuple[str, ...]:
        if self.redirect_hosts is not None:
            return tuple(h.lower().rstrip(".") for h in self.redirect_hosts)
        host = urlsplit(self.url).hostname or ""
        return (registered_domain(host),) if host else ()

    def problems(self) -> list[str]:
        """Everything wrong with this configuration; empty when it can be used."""
        problems = url_problems(self.url, secure="wss", plain="ws")
        for name in ("password", "access_token", "partner_token", "otp_seed"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, Secret):
                problems.append(f"{name} must be a Secret")
        ways = [
            name
            for name, present in (
                ("user_name/password", self.user_name or self.password is not None),
                ("access_token", self.uses_access_token),
                ("partner_token", self.partner_token is not None),
            )
            if present
        ]
        if len(ways) != 1:
            found = " and ".join(ways) if ways else "none"
            problems.append("give exactly one of user_name + password, access_token or "
                            f"partner_token (found: {found})")
        elif ways == ["user_name/password"]:
            if not self.user_name:
                problems.append("user_name is missing")
            if self.password is None or (isinstance(self.password, Secret) and not self.password):
                problems.append("password is missing")
        if isinstance(self.otp_seed, Secret) and self.otp_seed:
            problems += _seed_problems(self.otp_seed)
        if self.otp_seed is not None and self.otp_provider is not None:
            problems.append("give otp_seed or otp_provider, not both")
        if (self.otp_seed is not None or self.otp_provider is not None) and self.uses_access_token:
            problems.append("a one-time password is not used with access_token")
        if not self.client_app_id and not self.uses_access_token:
            problems.append("client_app_id is required (CQG assigns it) unless logging on "
                            "with access_token")
        if not self.client_version:
            problems.append("client_version is required")
        if self.max_collapsing_level is not None and self.market_data_bandwidth is not None:
            problems.append("max_collapsing_level and market_data_bandwidth are mutually "
                            "exclusive")
        for name in ("max_collapsing_level", "market_data_bandwidth"):
            value = getattr(self, name)
            if value is not None and not 0 <= value < 2**32:
                problems.append(f"{name} must fit in a uint32")
        if not self.restore_window > 0:
            problems.append("restore_window must be positive")
        if self.max_redirects < 0:
            problems.append("max_redirects must not be negative")
        if self.min_logon_interval < 0:
            problems.append("min_logon_interval must not be negative")
        if self.daily_logon_limit < 1:
            problems.append("daily_logon_limit must be at least 1")
        if self.redirect_hosts is not None and not all(self.redirect_hosts):
            problems.append("redirect_hosts must not contain an empty name")
        return problems + self.settings_problems()
