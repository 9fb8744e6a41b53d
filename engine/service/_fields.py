"""A broker configuration's fields, read off its dataclass, and the values a TOML file may give
them.

Nothing here lists a broker's fields by hand: ``config_fields`` reads the dataclass, so a field
added to a configuration can be written in the service file at once, as long as its type is one
this module knows how to read from TOML (``coerce``). A field that holds a secret is marked, and
so is one only code can give (a callable).
"""

from __future__ import annotations

import collections.abc
import dataclasses
import enum
import math
import re
import sys
import types
import typing
from datetime import date, datetime, time
from typing import Any, Literal

from brokergate.machines._config import with_default_scheme
from brokergate.machines.backoff import Backoff

#: URL fields given without a scheme get TLS, as on the command line: a REST base URL https://,
#: every other URL (``url``, ``*_url``: WebSocket endpoints) wss://.
_HTTPS_URLS = frozenset({"base_url"})

_TIME = re.compile(r"([01]\d|2[0-3]):([0-5]\d)(?::([0-5]\d))?")


class ValueProblem(Exception):
    """A value a field cannot take; ``under`` names the key inside it at fault, if any, and
    ``also`` holds more problems of the same value (a table with several wrong keys)."""

    def __init__(self, message: str, under: tuple[str, ...] = (),
                 also: collections.abc.Sequence[ValueProblem] = ()) -> None:
        super().__init__(message)
        self.message = message
        self.under = under
        self.also = list(also)

    def each(self) -> list[tuple[tuple[str, ...], str]]:
        """Every problem: the key path inside the value, and the message."""
        return [(self.under, self.message)] + [(p.under, p.message) for p in self.also]


@dataclasses.dataclass(frozen=True, slots=True)
class FieldKind:
    """One field of a configuration dataclass, as the file sees it."""

    name: str
    #: The annotation without its ``| None``; None when it could not be read.
    type: Any
    optional: bool
    #: Has no default: the file must give it.
    required: bool
    #: Holds a secret: given only as ``<name>_env`` or ``<name>_file``.
    secret: bool
    #: A callable (or a type the file cannot express): settable only from code.
    code_only: bool


_KNOWN: dict[type[Any], dict[str, FieldKind]] = {}


def config_fields(config_type: type[Any]) -> dict[str, FieldKind]:
    """The fields of a configuration dataclass, by name, in declaration order."""
    known = _KNOWN.get(config_type)
    if known is None:
        known = _KNOWN[config_type] = _read_fields(config_type)
    return known


def _read_fields(config_type: type[Any]) -> dict[str, FieldKind]:
    kinds = {}
    for field in dataclasses.fields(config_type):
        text = field.type if isinstance(field.type, str) else repr(field.type)
        hint = _evaluate(config_type, field.name, field.type)
        optional = False
        if typing.get_origin(hint) in (typing.Union, types.UnionType):
            rest = [a for a in typing.get_args(hint) if a is not type(None)]
            optional = len(rest) < len(typing.get_args(hint))
            hint = rest[0] if len(rest) == 1 else None
        required = (field.default is dataclasses.MISSING
                    and field.default_factory is dataclasses.MISSING)
        secret = "Secret" in text
        kinds[field.name] = FieldKind(
            name=field.name, type=hint, optional=optional, required=required, secret=secret,
            code_only=not secret and not _readable(hint))
    return kinds


def _evaluate(config_type: type, name: str, annotation: object) -> Any:
    """A field's annotation as an object (``from __future__ import annotations`` leaves strings).

    ``typing.get_type_hints`` cannot be used on the whole class: it also evaluates the strings
    nested in an alias such as ``Callable[[], "str | Awaitable[...]"]``, whose names the
    configuration's module need not import. Each field is evaluated on its own here, in the
    module of the class that declares it, and what is nested stays unevaluated."""
    if not isinstance(annotation, str):
        return annotation
    for cls in config_type.__mro__:
        if name in getattr(cls, "__annotations__", {}):
            namespace = dict(vars(sys.modules[cls.__module__]))
            try:
                return eval(annotation, namespace)  # our own source's annotations
            except Exception:  # an annotation this module cannot read: not settable
                return None
    return None


def _readable(hint: Any) -> bool:
    """Whether ``coerce`` can make a value of this type from TOML."""
    if hint in (str, int, float, bool, time, Backoff):
        return True
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        return True
    if typing.get_origin(hint) is Literal:
        return all(isinstance(choice, str) for choice in typing.get_args(hint))
    return typing.get_origin(hint) is tuple and typing.get_args(hint) == (str, ...)


#: What TOML calls the types tomllib parses into, subtypes first (a bool is an int, a datetime
#: a date).
_TOML_TYPES: tuple[tuple[type, str], ...] = (
    (bool, "a boolean"), (int, "a whole number"), (float, "a decimal number"),
    (str, "a string"), (list, "an array"), (dict, "a table"), (datetime, "a date-time"),
    (date, "a date"), (time, "a time"),
)


def toml_type(value: object) -> str:
    """What TOML calls the type of a parsed value, for messages that must not show the value."""
    for kind, name in _TOML_TYPES:
        if isinstance(value, kind):
            return name
    return type(value).__name__


def coerce(kind: FieldKind, value: object) -> object:
    """``value`` (as ``tomllib`` parsed it) for the field; ``ValueProblem`` otherwise.

    An optional field takes the string ``"none"`` for None (TOML has no null), unless the field
    is text, where "none" is just text."""
    if (kind.optional and kind.type is not str and isinstance(value, str)
            and value.lower() == "none"):
        return None
    coerced = read_value(kind.type, value)
    if kind.type is str:
        text = typing.cast(str, coerced)
        if kind.name == "url" or kind.name.endswith("_url"):
            return with_default_scheme(text, "https" if kind.name in _HTTPS_URLS else "wss")
    return coerced


def read_value(hint: Any, value: object) -> object:
    """``value`` as the type ``hint``; ``ValueProblem`` saying what was expected otherwise."""
    if hint is Backoff:
        return read_backoff(value)
    reader = _READERS.get(hint)
    if reader is not None:
        return reader(value)
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        return _enum(hint, value)
    if typing.get_origin(hint) is Literal:
        choices = typing.get_args(hint)
        if value not in choices:
            raise ValueProblem(f"must be one of {', '.join(map(str, choices))}")
        return value
    # tuple[str, ...]: the only other type _readable lets through
    if not (isinstance(value, list) and all(isinstance(item, str) for item in value)):
        raise ValueProblem(f"must be an array of strings, not {toml_type(value)}")
    return tuple(value)


def read_string(value: object) -> str:
    if not isinstance(value, str):
        raise ValueProblem(f"must be a string, not {toml_type(value)}")
    return value


def _integer(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueProblem(f"must be a whole number, not {toml_type(value)}")
    return value


def read_number(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueProblem(f"must be a number, not {toml_type(value)}")
    if not math.isfinite(value):
        raise ValueProblem("must be a finite number")
    return float(value)


def read_boolean(value: object) -> bool:
    if not isinstance(value, bool):
        raise ValueProblem(f"must be true or false, not {toml_type(value)}")
    return value


def _time(value: object) -> time:
    """A TOML local time (``05:00:00``) or a string ``"HH:MM"`` / ``"HH:MM:SS"``."""
    if isinstance(value, time) and not isinstance(value, datetime):
        return value
    if isinstance(value, str) and (match := _TIME.fullmatch(value)):
        hours, minutes, seconds = match.groups()
        return time(int(hours), int(minutes), int(seconds or 0))
    raise ValueProblem('must be a time of day: a TOML time (05:00:00) or a string "HH:MM"')


_READERS: dict[Any, collections.abc.Callable[[object], object]] = {
    str: read_string, int: _integer, float: read_number, bool: read_boolean, time: _time,
}


def _words(text: str) -> list[str]:
    return sorted(re.findall(r"[a-z]+|\d+", text.lower()))


def _enum(cls: type[enum.Enum], value: object) -> enum.Enum:
    """A member by name, case, separators and word order ignored (``100ms`` is ``MS_100``),
    which takes the command line's spellings too."""
    if isinstance(value, str):
        found = [member for member in cls if _words(member.name) == _words(value)]
        if len(found) == 1:
            return found[0]
    names = ", ".join(member.name.lower() for member in cls)
    raise ValueProblem(f"must be one of {names} (case, separators and word order do not "
                       "matter)")


def read_backoff(value: object) -> Backoff:
    """A ``Backoff`` from a table of its fields; ``max_attempts = 0`` means no bound."""
    if not isinstance(value, dict):
        raise ValueProblem(f"must be a table of backoff fields, not {toml_type(value)}")
    hints = typing.get_type_hints(Backoff)
    known = [field.name for field in dataclasses.fields(Backoff)]
    given: dict[str, Any] = {}
    wrong: list[ValueProblem] = []
    for key, item in value.items():
        if key not in known:
            hint = suggest(key, known) or f" (its fields: {', '.join(known)})"
            wrong.append(ValueProblem(f"is not a backoff field{hint}", (key,)))
        elif key == "max_attempts" and type(item) is int and item == 0:
            given[key] = None
        else:
            hint = hints[key]
            inner = [a for a in typing.get_args(hint) if a is not type(None)] or [hint]
            try:
                given[key] = read_value(inner[0], item)
            except ValueProblem as exc:
                wrong.append(ValueProblem(exc.message, (key,)))
    if wrong:
        raise ValueProblem(wrong[0].message, wrong[0].under, wrong[1:])
    try:
        return Backoff(**given)
    except ValueError as exc:
        raise ValueProblem(str(exc)) from None


def suggest(key: str, known: collections.abc.Iterable[str]) -> str:
    """`` (did you mean X?)`` for the nearest known name, or nothing."""
    import difflib  # noqa: PLC0415 - only a file with a mistake needs it

    close = difflib.get_close_matches(key, list(known), n=1, cutoff=0.6)
    return f" (did you mean {close[0]}?)" if close else ""

