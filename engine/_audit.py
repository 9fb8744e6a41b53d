"""The audit trail: one structlog event per transition, as JSON lines, with no secret in it.

Events pass through a small processor chain: a UTC ISO-8601 timestamp, then the redaction
processor, then the sink. Redaction scrubs every secret value the session registered (its
password, tokens it obtained) from every string in the event, whatever key it hides under, and
renders any ``Secret`` object as ``[REDACTED]``. It is a second line of defence: audit events are
built from non-secret fields in the first place.
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Iterable, MutableMapping
from pathlib import Path
from typing import IO, Any, TextIO

import structlog

from machines import REDACTED, Secret

_SECRETS_KEY = "_secrets"
_registry: set[str] = set()
_registry_lock = threading.Lock()


def register_secret(value: str | Secret) -> None:
    """Scrub this value from every audit event of this process, not only one session's."""
    raw = value.reveal() if isinstance(value, Secret) else value
    if raw:
        with _registry_lock:
            _registry.add(raw)


def scrub(value: Any, secrets: Iterable[str]) -> Any:
    """``value`` with every occurrence of every secret replaced by ``[REDACTED]``."""
    if isinstance(value, Secret):
        return REDACTED
    if isinstance(value, str):
        for secret in secrets:
            if secret and secret in value:
                value = value.replace(secret, REDACTED)
        return value
    if isinstance(value, bytes):
        return scrub(value.decode("utf-8", "backslashreplace"), secrets)
    if isinstance(value, dict):
        return {k: scrub(v, secrets) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [scrub(v, secrets) for v in value]
    if isinstance(value, int | float | bool) or value is None:
        return value
    return scrub(repr(value), secrets)


def redact_secrets(
    logger: Any, method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """structlog processor: scrub registered secrets from every value of the event.

    Usable in an application's own structlog chain too.
    """
    own = event_dict.pop(_SECRETS_KEY, ())
    secrets = sorted({*own, *_registry}, key=len, reverse=True)
    for key, value in event_dict.items():
        event_dict[key] = scrub(value, secrets)
    return event_dict


class _Forward:
    """A structlog "logger" that hands the processed event to another structlog logger."""

    def __init__(self, target: Any) -> None:
        self._target = target

    def msg(self, *args: Any, **event: Any) -> None:
        name = event.pop("event", "audit")
        self._target.info(name, **event)

    info = warning = error = debug = msg


class _Discard:
    def msg(self, *args: Any, **kwargs: Any) -> None:
        return None

    info = warning = error = debug = msg


class AuditLog:
    """Where audit events go. Build one with a class method and pass it to ``open_session``."""

    def __init__(self, sink: Any, processors: list[Any], *, owned: IO[str] | None = None) -> None:
        self._logger = structlog.wrap_logger(
            sink,
            processors=processors,
            context_class=dict,
            cache_logger_on_first_use=True,
        )
        self._owned = owned

    @staticmethod
    def _chain(final: Any) -> list[Any]:
        return [
            structlog.processors.TimeStamper(fmt="iso", utc=True, key="timestamp"),
            redact_secrets,
            final,
        ]

    @classmethod
    def to_stream(cls, stream: TextIO) -> AuditLog:
        """JSON lines written (and flushed) to an open text stream."""
        return cls(structlog.WriteLogger(stream), cls._chain(structlog.processors.JSONRenderer()))

    @classmethod
    def to_file(cls, path: str | Path) -> AuditLog:
        """JSON lines appended to a file (mode 0600: the trail names accounts). A file already
        there that others could read is made private before anything is written to it."""
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        if os.name == "posix" and os.fstat(fd).st_mode & 0o077:
            os.fchmod(fd, 0o600)
        stream: TextIO = open(fd, "a", encoding="utf-8", buffering=1)  # noqa: SIM115 - closed by close()
        log = cls.to_stream(stream)
        log._owned = stream
        return log

    @classmethod
    def stderr(cls) -> AuditLog:
        return cls.to_stream(sys.stderr)

    @classmethod
    def to_structlog(cls, logger: Any) -> AuditLog:
        """Forward redacted events to an application's structlog logger (its own rendering)."""
        return cls(_Forward(logger), cls._chain(lambda _l, _m, ev: ((), ev)))

    @classmethod
    def collect(cls, into: list[dict[str, Any]]) -> AuditLog:
        """Append each redacted event dict to a list (tests, dashboards)."""

        def keep(_l: Any, _m: str, ev: MutableMapping[str, Any]) -> Any:
            into.append(dict(ev))
            raise structlog.DropEvent

        return cls(_Discard(), cls._chain(keep))

    @classmethod
    def disabled(cls) -> AuditLog:
        def drop(_l: Any, _m: str, ev: MutableMapping[str, Any]) -> Any:
            raise structlog.DropEvent

        return cls(_Discard(), [drop])

    def session(self, *, broker: str, session_id: str, account: str, secrets: list[str]) -> Any:
        """A logger bound to one session; its secrets travel with it to the redaction step."""
        return self._logger.bind(
            broker=broker, session_id=session_id, account=account, **{_SECRETS_KEY: secrets}
        )

    def close(self) -> None:
        if self._owned is not None:
            self._owned.close()
            self._owned = None
