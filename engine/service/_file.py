"""The service file: one TOML file naming every broker session a ``brokergate run`` holds.

    [service]            where the service listens, its audit file, the fleet's Redis
    [defaults]           values every session takes unless it gives its own
    [sessions.NAME]      one session: ``broker = "..."`` and its configuration's fields

A session's keys are the fields of its broker's configuration dataclass, read off the dataclass
(``_fields``), so a new field can be written at once. A field holding a secret is given only as
``<field>_env = "VARIABLE"`` or ``<field>_file = "PATH"`` (the file's first line); the secret
itself written in the file is refused, and its value never appears in a message. ``schedule``
is a table for ``schedule_from_mapping``, or ``"none"`` (always logged in). Relative paths are
taken from the file's folder.

``load_service_file`` reads it all or nothing: every problem is gathered, with its line and key
path, and raised together as one ``ServiceFileError``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import secrets
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from brokergate.engine.service._fields import (
    FieldKind,
    ValueProblem,
    coerce,
    config_fields,
    toml_type,
)
from brokergate.engine.service._lines import key_lines
from brokergate.engine.service._problems import (
    LOOKS_SECRET,
    FileProblem,
    Report,
    ServiceFileError,
    secret_refused,
    unknown_key,
)
from brokergate.engine.service._settings import ServiceSettings, service_settings
from brokergate.machines._broker import Broker
from brokergate.machines._config import SessionSettings
from brokergate.machines._schedule import Schedule, ScheduleError, schedule_from_mapping
from brokergate.machines._secret import Secret
from brokergate.machines.backoff import Backoff
from brokergate.machines.brokers import BROKERS, broker_named, names

__all__ = ["FileProblem", "ServiceFile", "ServiceFileError", "ServiceSettings", "SessionEntry",
           "load_service_file"]

_SESSION_NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
#: Only a fingerprint of this process can be compared with another: keyed, so that a secret
#: cannot be guessed back from one, even a fingerprint shown on a status page.
_FINGERPRINT_KEY = secrets.token_bytes(32)

Where = tuple[str, ...]


@dataclass(frozen=True, slots=True, kw_only=True)
class SessionEntry:
    """One ``[sessions.NAME]``: its broker's configuration (``session_id`` is the name), its
    schedule (None: always logged in) and the line of its table header.

    ``fingerprint``: equal for two loads of the file in one process exactly when the session's
    declared values (with ``[defaults]``) and the secrets it read are the same: a session whose
    fingerprint did not change need not be restarted."""

    name: str
    broker: str
    config: SessionSettings
    schedule: Schedule | None
    line: int
    fingerprint: str = field(repr=False)


@dataclass(frozen=True, slots=True)
class ServiceFile:
    path: Path
    settings: ServiceSettings
    #: In the order of the file.
    sessions: dict[str, SessionEntry]


#: The backoff of a session whose declaration names none: the library's, with no bound on
#: attempts (see ``_Reader._config``).
UNBOUNDED_BACKOFF = Backoff(max_attempts=None)


def load_service_file(path: str | Path, *,
                      environ: Mapping[str, str] | None = None) -> ServiceFile:
    """Read the service file at ``path`` (secrets' variables from ``environ``, by default the
    process's); ``ServiceFileError`` lists every problem."""
    path = Path(path)
    try:
        text = path.read_bytes().decode("utf-8")
    except OSError as exc:
        raise ServiceFileError(path, [FileProblem(0, "", f"cannot read it: {exc.strerror}")]) \
            from None
    except UnicodeDecodeError as exc:
        raise ServiceFileError(path, [FileProblem(1, "", f"not UTF-8 text ({exc.reason})")]) \
            from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ServiceFileError(path, [_syntax_problem(str(exc), text)]) from None
    report = Report(key_lines(text))
    reader = _Reader(report, path.parent, os.environ if environ is None else environ)
    for key in data:
        if key not in ("service", "defaults", "sessions"):
            report.add((key,), unknown_key(key, ("service", "defaults", "sessions"), "the file")
                       + ": it holds [service], [defaults] and [sessions.NAME] tables")
    settings = service_settings(data.get("service", {}), report, path.parent)
    defaults = reader.defaults(data.get("defaults", {}))
    sessions = reader.sessions(data.get("sessions", {}), defaults)
    if len(report):
        raise ServiceFileError(path, report.problems)
    return ServiceFile(path, settings, sessions)


def _syntax_problem(message: str, text: str) -> FileProblem:
    """tomllib's message ends "(at line N, column M)" or "(at end of document)"."""
    found = re.fullmatch(r"(.*) \(at line (\d+), column (\d+)\)", message, re.DOTALL)
    if found:
        what, line, column = found.groups()
        return FileProblem(int(line), "", f"not valid TOML: {what} (column {column})")
    what = message.removesuffix(" (at end of document)")
    return FileProblem(max(1, len(text.splitlines())), "",
                       f"not valid TOML: {what} (at the end of the file)")


@dataclass(slots=True)
class _Declared:
    """What one session (or ``[defaults]`` on its own) declares, read."""

    values: dict[str, Any] = field(default_factory=dict)
    secrets: dict[str, Secret] = field(default_factory=dict)
    #: Where each field's value was written (a secret: its _env or _file key).
    where: dict[str, Where] = field(default_factory=dict)
    schedule: Schedule | None = None
    #: Fields given but unusable (already reported).
    failed: set[str] = field(default_factory=set)


class _Reader:
    def __init__(self, report: Report, folder: Path, environ: Mapping[str, str]) -> None:
        self.report = report
        self.folder = folder
        self.environ = environ

    # --- [defaults] ---------------------------------------------------------------------------

    def defaults(self, table: object) -> dict[str, Any]:
        """``[defaults]``, checked on its own for every broker with each key (so that a mistake
        there is reported even with no session to take it)."""
        if not isinstance(table, dict):
            self.report.add(("defaults",), f"must be a table, not {toml_type(table)}")
            return {}
        known: set[str] = {"schedule"}
        for broker in BROKERS:
            fields = config_fields(broker.config_type)
            known |= _keys(fields)
            mine: dict[str, tuple[Any, Where]] = {
                key: (value, ("defaults", key)) for key, value in table.items()
                if key == "schedule" or _applies(key, fields)}
            self._declared(broker, mine)
        for key in table:
            if key == "broker":
                self.report.add(("defaults", key), "is chosen by each session, not in "
                                                   "[defaults]")
            elif key != "schedule" and not any(_applies(key, config_fields(b.config_type))
                                               for b in BROKERS):
                self.report.add(("defaults", key), unknown_key(key, known, "[defaults]"))
        return table

    # --- [sessions.NAME] ----------------------------------------------------------------------

    def sessions(self, table: object, defaults: dict[str, Any]) -> dict[str, SessionEntry]:
        if not isinstance(table, dict):
            self.report.add(("sessions",), f"must be a table, not {toml_type(table)}")
            return {}
        entries = {}
        for name, own in table.items():
            where = ("sessions", name)
            if not _SESSION_NAME.fullmatch(name):
                self.report.add(where, "a session's name is 1 to 64 letters, digits, _ . or -")
            elif not isinstance(own, dict):
                self.report.add(where, f"must be a table, not {toml_type(own)}")
            else:
                entry = self._session(name, own, defaults, self.report.line(where))
                if entry is not None:
                    entries[name] = entry
        return entries

    def _session(self, name: str, own: dict[str, Any], defaults: dict[str, Any],
                 line: int) -> SessionEntry | None:
        here = ("sessions", name)
        broker = self._broker(here, own)
        if broker is None:
            return None
        fields = config_fields(broker.config_type)
        given = {_group(key, fields) or key for key in own}
        merged: dict[str, tuple[Any, Where]] = {
            key: (value, ("defaults", key)) for key, value in defaults.items()
            if (key == "schedule" or _applies(key, fields))
            and (_group(key, fields) or key) not in given}
        merged |= {key: (value, (*here, key)) for key, value in own.items() if key != "broker"}
        before = self.report.added
        declared = self._declared(broker, merged)
        for kind in fields.values():
            if kind.required and kind.name not in (*declared.values, *declared.secrets,
                                                   *declared.failed):
                how = (f': give {kind.name}_env = "VARIABLE" or {kind.name}_file = "PATH"'
                       if kind.secret else "")
                self.report.add((*here, kind.name), f"is required{how}")
        if self.report.added > before:
            return None  # its configuration's own checks would only repeat what was said
        config = self._config(here, broker, declared, name, fields)
        if config is None:
            return None
        return SessionEntry(name=name, broker=broker.name, config=config,
                            schedule=declared.schedule, line=line,
                            fingerprint=_fingerprint(name, broker.name, merged, declared))

    def _broker(self, here: Where, own: dict[str, Any]) -> Broker[Any] | None:
        value = own.get("broker")
        if value is None:
            self.report.add((*here, "broker"), f"is required: one of {', '.join(names())}")
        elif not isinstance(value, str):
            self.report.add((*here, "broker"), f"must be one of {', '.join(names())} (a "
                                               f"string), not {toml_type(value)}")
        elif value not in names():
            self.report.add((*here, "broker"),
                            f"{value!r} is not a broker: one of {', '.join(names())}")
        else:
            return broker_named(value)
        for key in own:  # still refuse a secret written in, whatever the broker
            if (key != "broker" and not key.endswith(("_env", "_file"))
                    and LOOKS_SECRET.search(key) and not _brokers_with(key, secret=False)):
                self.report.add((*here, key), secret_refused(key))
        return None

    def _config(self, here: Where, broker: Broker[Any], declared: _Declared, name: str,
                fields: Mapping[str, FieldKind]) -> SessionSettings | None:
        values = dict(declared.values)
        # A service holds its sessions all day: a broker's outage that outlasts eight attempts
        # must not leave a session given up until someone restarts it. Unless the file bounds
        # them, retries of what a retry can fix go on (spaced by the backoff's cap); what a
        # retry cannot fix (a wrong password) is never retried, bound or not.
        values.setdefault("backoff", UNBOUNDED_BACKOFF)
        try:
            config: SessionSettings = broker.config_type(
                session_id=name, **values, **declared.secrets)
        except (TypeError, ValueError) as exc:
            self.report.add(here, f"cannot make the configuration: {exc}")
            return None
        problems = config.problems()
        for problem in problems:
            word = re.match(r"[A-Za-z_][A-Za-z0-9_]*", problem)
            subject = word.group() if word else ""
            # A problem that starts with a field's name is about that field: it is reported
            # where the field's value was written (the session's header when it was not).
            where = (here if subject not in fields
                     else declared.where.get(subject, (*here, subject)))
            self.report.add(where, problem)
        return None if problems else config

    # --- one table's keys ---------------------------------------------------------------------

    def _declared(self, broker: Broker[Any], merged: dict[str, tuple[Any, Where]]) -> _Declared:
        fields = config_fields(broker.config_type)
        out = _Declared()
        forms: dict[str, list[tuple[str, Any, Where]]] = {}
        for key, (value, where) in merged.items():
            kind = fields.get(key)
            group = _group(key, fields)
            if key == "schedule":
                out.schedule = self._schedule(value, where)
            elif key == "session_id":
                self.report.add(where, "is not set in the file: a session's id is its name "
                                       "(the NAME of [sessions.NAME])")
            elif kind is not None and kind.secret:
                self.report.add(where, secret_refused(key))
                out.failed.add(key)
            elif kind is not None and kind.code_only:
                self.report.add(where, f"{key} exists only for code (a callable given to the "
                                       "configuration in Python); a file cannot set it")
                out.failed.add(key)
            elif kind is not None:
                self._value(out, kind, value, where)
            elif group is not None:
                forms.setdefault(group, []).append((key.rpartition("_")[2], value, where))
            elif others := _brokers_with(key, secret=False):
                self.report.add(where, f"is not a field of a {broker.name} session (only of "
                                       f"{' and '.join(others)} sessions)")
            else:
                self.report.add(where, unknown_key(key, _keys(fields) | {"broker", "schedule"},
                                                   f"a {broker.name} session"))
        for group, given in forms.items():
            out.where[group] = given[-1][2]
            if len(given) > 1:
                self.report.add(given[-1][2], f"give {group}_env or {group}_file, not both")
                out.failed.add(group)
                continue
            how, value, where = given[0]
            try:
                out.secrets[group] = self._secret(how, value)
            except ValueProblem as exc:
                self.report.add(where, exc.message)
                out.failed.add(group)
        return out

    def _value(self, out: _Declared, kind: FieldKind, value: object, where: Where) -> None:
        out.where[kind.name] = where
        try:
            result = coerce(kind, value)
        except ValueProblem as exc:
            for under, message in exc.each():
                self.report.add((*where, *under), message)
            out.failed.add(kind.name)
            return
        if kind.type is str and kind.name.endswith("_file") and isinstance(result, str):
            result = str(self.folder / result)  # a file named in the file: from its folder
        out.values[kind.name] = result

    def _schedule(self, value: object, where: Where) -> Schedule | None:
        if isinstance(value, str) and value.lower() == "none":
            return None
        if not isinstance(value, dict):
            self.report.add(where, 'must be a table (start, end, timezone...) or "none", not '
                                   f"{toml_type(value)}")
            return None
        try:
            return schedule_from_mapping(value)
        except ScheduleError as exc:
            self.report.add((*where, exc.field) if exc.field else where, str(exc))
        except (TypeError, ValueError) as exc:
            self.report.add(where, str(exc))
        return None

    def _secret(self, how: str, value: object) -> Secret:
        """A secret from the variable named, or the first line of the file named. Neither the
        value given nor what was read is ever put in a message."""
        if not isinstance(value, str):
            raise ValueProblem(f"must be a string, not {toml_type(value)}")
        if how == "env":
            if not _ENV_NAME.fullmatch(value):
                raise ValueProblem("expected the NAME of an environment variable (letters, "
                                   "digits and _); what was given is not one, and is not "
                                   "repeated here in case it is a secret")
            found = self.environ.get(value)
            if not found:
                raise ValueProblem(f"the environment variable {value} is not set or empty")
            return Secret(found)
        try:
            lines = (self.folder / value).read_text(encoding="utf-8").splitlines()
        except FileNotFoundError:
            raise ValueProblem("no such file (the path is not repeated here in case it is a "
                               "secret)") from None
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) else "not UTF-8 text"
            raise ValueProblem(f"the file cannot be read: {reason}") from None
        if not lines or not lines[0]:
            raise ValueProblem("the file's first line is empty")
        return Secret(lines[0])


def _group(key: str, fields: Mapping[str, FieldKind]) -> str | None:
    """The secret field a key gives: ``password`` for password, password_env, password_file."""
    if key in fields:
        return key if fields[key].secret else None
    base, _, how = key.rpartition("_")
    kind = fields.get(base)
    return base if how in ("env", "file") and kind is not None and kind.secret else None


def _brokers_with(key: str, *, secret: bool) -> list[str]:
    """The brokers whose configuration has a field ``key`` (holding a secret, or not)."""
    return [broker.name for broker in BROKERS
            if (kind := config_fields(broker.config_type).get(key)) is not None
            and kind.secret == secret and key != "session_id"]


def _applies(key: str, fields: Mapping[str, FieldKind]) -> bool:
    return key in fields or _group(key, fields) is not None


def _keys(fields: Mapping[str, FieldKind]) -> set[str]:
    """The keys a file can use for these fields, to suggest in place of an unknown one (not a
    secret's own name, nor a field only code can set)."""
    keys = {name for name, kind in fields.items()
            if name != "session_id" and not kind.secret and not kind.code_only}
    return keys | {f"{name}_{how}" for name, kind in fields.items() if kind.secret
                   for how in ("env", "file")}


def _fingerprint(name: str, broker: str, merged: dict[str, tuple[Any, Where]],
                 declared: _Declared) -> str:
    document = {
        "name": name,
        "broker": broker,
        "values": {key: value for key, (value, _) in merged.items()},
        "secrets": {key: secret.reveal() for key, secret in declared.secrets.items()},
    }
    data = json.dumps(document, sort_keys=True, default=str).encode()
    return hmac.new(_FINGERPRINT_KEY, data, hashlib.sha256).hexdigest()
