"""The ``[service]`` table of a service file: where the service listens, where its audit goes,
and the fleet's Redis, if any."""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from brokergate.engine.service._fields import (
    ValueProblem,
    read_boolean,
    read_number,
    read_string,
    toml_type,
)
from brokergate.engine.service._problems import Report, unknown_key
from brokergate.machines._config import is_loopback_host


@dataclass(frozen=True, slots=True, kw_only=True)
class ServiceSettings:
    """What ``[service]`` says, with relative paths made absolute against the file's folder.

    ``listen_port`` 0 lets the system pick one. ``audit`` None: audit lines go to stderr. The
    ``redis_*``, ``fleet_key_file``, ``prefix`` and ``lease_ttl`` settings go with
    ``coordinator`` (the fleet's Redis) and are refused without it.
    """

    listen_host: str = "127.0.0.1"
    listen_port: int = 9464
    audit: Path | None = None
    stop_timeout: float = 10.0
    account_label: bool = False
    token_dir: Path | None = None
    coordinator: str | None = None
    redis_user: str | None = None
    redis_password_file: Path | None = None
    redis_ca_file: Path | None = None
    fleet_key_file: Path | None = None
    prefix: str | None = None
    lease_ttl: float | None = None


def _listen(value: object) -> tuple[str, int]:
    """``host:port``, an IPv6 host in brackets (``[::1]:9464``); port 0 to 65535."""
    host, colon, port = read_string(value).rpartition(":")
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise ValueProblem("the host in brackets must be an IPv6 address") from None
    elif ":" in host:
        raise ValueProblem("an IPv6 host goes in brackets: [::1]:9464")
    if not colon or not host:
        raise ValueProblem('must be "HOST:PORT", such as "127.0.0.1:9464"')
    if not (port.isascii() and port.isdigit() and int(port) <= 65535):
        raise ValueProblem("the port must be a number from 0 to 65535 (0: any free port)")
    return host, int(port)


def _positive(value: object) -> float:
    number = read_number(value)
    if not number > 0:
        raise ValueProblem("must be positive")
    return number


def _text(value: object) -> str:
    text = read_string(value)
    if not text:
        raise ValueProblem("must not be empty")
    return text


def _coordinator(value: object) -> str:
    """The fleet's Redis URL. Nothing of it is repeated in a message: it may hold a password."""
    text = read_string(value)
    try:
        parts = urlsplit(text)
        parts.port  # noqa: B018 - raises on a malformed port
    except ValueError:
        raise ValueProblem("is not a URL that can be read (it is not shown: it may hold a "
                           "password)") from None
    if parts.password is not None:
        raise ValueProblem('holds a password, which is refused (the URL is not shown): give '
                           'redis_password_file = "PATH" instead')
    if parts.scheme not in ("redis", "rediss"):
        raise ValueProblem("must start with rediss:// (or redis:// to a loopback host)")
    if not parts.hostname:
        raise ValueProblem("names no host")
    if parts.scheme == "redis" and not is_loopback_host(parts.hostname):
        raise ValueProblem("plaintext redis:// only to a loopback host: use rediss://")
    return text


#: Each key of [service]: how its value is read, and whether it is a path (made absolute) or a
#: file that must be there already.
_KEYS: dict[str, tuple[Callable[[object], Any], str]] = {
    "listen": (_listen, ""),
    "audit": (_text, "path"),
    "stop_timeout": (_positive, ""),
    "account_label": (read_boolean, ""),
    "token_dir": (_text, "path"),
    "coordinator": (_coordinator, ""),
    "redis_user": (_text, ""),
    "redis_password_file": (_text, "input"),
    "redis_ca_file": (_text, "input"),
    "fleet_key_file": (_text, "input"),
    "prefix": (_text, ""),
    "lease_ttl": (_positive, ""),
}
_FLEET_ONLY = ("redis_user", "redis_password_file", "redis_ca_file", "fleet_key_file", "prefix",
               "lease_ttl")


def service_settings(table: object, report: Report, folder: Path) -> ServiceSettings:
    """The settings ``[service]`` gives (problems go to ``report``)."""
    if not isinstance(table, dict):
        report.add(("service",), f"must be a table, not {toml_type(table)}")
        return ServiceSettings()
    given: dict[str, Any] = {}
    for key, value in table.items():
        path = ("service", key)
        if key not in _KEYS:
            report.add(path, unknown_key(key, _KEYS, "[service]"))
            continue
        read, kind = _KEYS[key]
        try:
            result = read(value)
        except ValueProblem as exc:
            report.add(path, exc.message)
            continue
        if kind:
            result = folder / result
            if kind == "input" and not result.is_file():
                # The path is not repeated: a secret pasted in the wrong place would be.
                report.add(path, "no such file (the path is not repeated here)")
                continue
        if key == "listen":
            given["listen_host"], given["listen_port"] = result
        else:
            given[key] = result
    if "coordinator" not in table:
        for key in _FLEET_ONLY:
            if key in table:
                report.add(("service", key), "goes with coordinator (the fleet's Redis), which "
                                             "is not set")
    return ServiceSettings(**given)
