"""The audit trail: one structlog event per transition, as JSON lines, with no secret in it.

Events pass through a small processor chain: a UTC ISO-8601 timestamp, then the redaction
processor, then the sink. Redaction scrubs every secret value the session registered (its
password, tokens it obtained) from every string in the event, whatever key it hides under, and
renders any ``Secret`` object as ``[REDACTED]``. It is a second line of defence: audit events are
built from non-secret fields in the first place.

The file sink writes each line through to the operating system as it is logged (line
buffering): a process that crashes leaves every transition before the crash in the trail, which
is when the trail matters most. That costs about a microsecond per event over a buffered file, of
the 8 or so an event costs in all (bench/transitions.py).
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import threading
import time
from collections.abc import Iterable, MutableMapping
from pathlib import Path
from typing import IO, Any, TextIO

import structlog

from brokergate.machines import REDACTED, Secret, Transitioned

_SECRETS_KEY = "_secrets"
#: Every field of a Transitioned goes into its audit event.
_RECORD_FIELDS = tuple(f.name for f in dataclasses.fields(Transitioned))
_registry: set[str] = set()
_registry_lock = threading.Lock()
#: Grows with each new process-wide secret, after the secret is in the registry: an ordering
#: computed under an older generation may lack it and is computed afresh.
_registry_generation = 0


def register_secret(value: str | Secret) -> None:
    """Scrub this value from every audit event of this process, not only one session's."""
    global _registry_generation  # noqa: PLW0603 - the registry is process-wide by design
    raw = value.reveal() if isinstance(value, Secret) else value
    if raw:
        with _registry_lock:
            if raw not in _registry:
                _registry.add(raw)
                _registry_generation += 1


def _longest_first(own: Iterable[str]) -> tuple[str, ...]:
    """``own`` and the process-wide secrets, without empties, longest first: a secret that
    contains another is scrubbed whole before the shorter one could cut it apart."""
    with _registry_lock:
        process_wide = list(_registry)
    return tuple(sorted({s for s in (*own, *process_wide) if s}, key=len, reverse=True))


class _SessionSecrets:
    """The live list of one session's secret values, as bound to its audit logger.

    The session appends to the list as it learns secrets (a token it obtains), so the list is
    read at every event; what is kept is the longest-first ordering merged with the registry,
    computed again only when the list's contents or the registry have changed since.
    """

    __slots__ = ("_cached", "_values")

    def __init__(self, values: list[str]) -> None:
        self._values = values
        # (contents seen, registry generation, ordering): one attribute, replaced whole, so a
        # reader never pairs one event's contents with another's ordering.
        self._cached: tuple[tuple[str, ...], int, tuple[str, ...]] | None = None

    def __repr__(self) -> str:
        return f"<{len(self._values)} session secrets>"

    def ordered(self) -> tuple[str, ...]:
        generation = _registry_generation  # read before the registry is
        seen = tuple(self._values)
        cached = self._cached
        if cached is not None and cached[1] == generation and cached[0] == seen:
            return cached[2]
        ordered = _longest_first(seen)
        self._cached = (seen, generation, ordered)
        return ordered


def _scrub_text(text: str, secrets: Iterable[str]) -> str:
    for secret in secrets:
        if secret and secret in text:
            text = text.replace(secret, REDACTED)
    return text


def scrub(value: Any, secrets: Iterable[str]) -> Any:
    """``value`` with every occurrence of every secret replaced by ``[REDACTED]``."""
    kind = type(value)
    # The exact types audit events are made of, tested first: this runs for every value of
    # every event. Subclasses (a StrEnum, an IntEnum) take the general path below.
    if kind is str:
        return _scrub_text(value, secrets)
    if value is None or kind is int or kind is float or kind is bool:
        return value
    if isinstance(value, Secret):
        return REDACTED
    if isinstance(value, str):
        return _scrub_text(value, secrets)
    if isinstance(value, bytes):
        return scrub(value.decode("utf-8", "backslashreplace"), secrets)
    if isinstance(value, dict):
        return {k: scrub(v, secrets) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [scrub(v, secrets) for v in value]
    if isinstance(value, int | float | bool):
        return value
    return scrub(repr(value), secrets)


def redact_secrets(
    logger: Any, method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """structlog processor: scrub registered secrets from every value of the event.

    Usable in an application's own structlog chain too.
    """
    own = event_dict.pop(_SECRETS_KEY, ())
    secrets = own.ordered() if isinstance(own, _SessionSecrets) else _longest_first(own)
    for key, value in event_dict.items():
        # scrub(), with its two commonest cases written out: a call per value is a good part
        # of the cost of an event. ``secrets`` holds no empty string.
        kind = type(value)
        if kind is str:
            text = value
            for secret in secrets:
                if secret in text:
                    text = text.replace(secret, REDACTED)
            event_dict[key] = text
        elif not (value is None or kind is int or kind is float or kind is bool):
            event_dict[key] = scrub(value, secrets)
    return event_dict


#: (the second, its text): the date and time part of the last timestamp, kept because it
#: changes once a second; replaced whole, never edited.
_stamped_second: tuple[int, str] = (-1, "")


def add_timestamp(
    logger: Any, method: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """structlog processor: ``timestamp``, UTC ISO 8601 with microseconds and a ``Z``
    (``2026-11-21T08:30:00.000123Z``; structlog's TimeStamper formats a new datetime per event)."""
    global _stamped_second  # noqa: PLW0603 - a one-entry cache
    now = time.time()
    second = int(now)
    cached = _stamped_second
    if cached[0] != second:
        cached = (second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second)))
        _stamped_second = cached
    event_dict["timestamp"] = f"{cached[1]}.{int((now - second) * 1e6):06d}Z"
    return event_dict


def _unrenderable(value: Any) -> str:
    # Not reached from the audit chain: redaction has made every value a JSON type already.
    return REDACTED


#: json's C encoder, made once: ``json.dumps`` and ``JSONEncoder.encode`` build a new one (and a
#: float formatter) for every call. No circular-reference check: redaction has rebuilt every
#: container of the event afresh.
_C_ENCODER = json.encoder.c_make_encoder(  # type: ignore[attr-defined]
    None, _unrenderable, json.encoder.encode_basestring_ascii, None, ": ", ", ",
    False, False, True,
) if json.encoder.c_make_encoder is not None else None  # type: ignore[attr-defined]
_ENCODER = json.JSONEncoder(default=_unrenderable)


def render_json(logger: Any, method: str, event_dict: MutableMapping[str, Any]) -> str:
    """structlog processor: the event as one JSON object, as ``JSONRenderer`` writes it with
    the standard encoder, but with an encoder made once rather than one per event."""
    if _C_ENCODER is not None and type(event_dict) is dict:
        return "".join(_C_ENCODER(event_dict, 0))
    return _ENCODER.encode(event_dict)


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


class _TrailLogger(structlog.BoundLoggerBase):
    """The bound logger of an audit trail: structlog's base, with ``log_event`` for an event
    whose fields are already in a dict of its own (the one way events come in)."""

    def log_event(self, event: str, fields: dict[str, Any]) -> None:
        """``info(event, **fields)``, without unpacking ``fields`` into keywords and packing them
        again on the way to the processors (this runs for every transition of every session).
        """
        try:
            args, kw = self._process_event("info", event, fields)
        except structlog.DropEvent:
            return
        self._logger.info(*args, **kw)


class SessionLog:
    """One session's audit logger: the trail's structlog logger and the session's context.

    What ``bind`` would give, without a bound logger per session: a process holding thousands
    of sessions keeps one small object each, and every event goes through the same processors.
    """

    __slots__ = ("_context", "_logger")

    def __init__(self, logger: Any, context: dict[str, Any]) -> None:
        self._logger = logger
        self._context = context

    def __repr__(self) -> str:
        return f"<SessionLog {self._context['broker']} {self._context['session_id']}>"

    def info(self, event: str, **fields: Any) -> None:
        self._logger.log_event(event, {**self._context, **fields})

    def transition(self, record: Transitioned) -> None:
        """The audit event of one transition: every field of its record."""
        fields = self._context.copy()
        for name in _RECORD_FIELDS:
            fields[name] = getattr(record, name)
        self._logger.log_event("transition", fields)


class AuditLog:
    """Where audit events go. Build one with a class method and pass it to ``open_session``."""

    def __init__(self, sink: Any, processors: list[Any], *, owned: IO[str] | None = None) -> None:
        # Bound once, here: the lazy proxy ``wrap_logger`` returns would assemble (or look up)
        # the bound logger again at every event.
        self._logger = structlog.wrap_logger(
            sink,
            processors=processors,
            wrapper_class=_TrailLogger,
            context_class=dict,
            cache_logger_on_first_use=True,
        ).bind()
        self._owned = owned

    @staticmethod
    def _chain(final: Any) -> list[Any]:
        return [
            add_timestamp,
            redact_secrets,
            final,
        ]

    @classmethod
    def to_stream(cls, stream: TextIO) -> AuditLog:
        """JSON lines written (and flushed) to an open text stream."""
        return cls(structlog.WriteLogger(stream), cls._chain(render_json))

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

    def session(self, *, broker: str, session_id: str, account: str,
                secrets: list[str]) -> SessionLog:
        """A logger for one session; its secrets travel with it to the redaction step."""
        return SessionLog(self._logger, {
            "broker": broker, "session_id": session_id, "account": account,
            _SECRETS_KEY: _SessionSecrets(secrets),
        })

    def close(self) -> None:
        if self._owned is not None:
            self._owned.close()
            self._owned = None
