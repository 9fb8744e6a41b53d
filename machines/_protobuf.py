"""A check on parsed protobuf messages that protobuf itself does not make."""

from __future__ import annotations

import functools
from collections.abc import Callable
from operator import attrgetter
from typing import Any

from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message

_NESTED = (FieldDescriptor.TYPE_MESSAGE, FieldDescriptor.TYPE_GROUP)


class _Plan:
    """Where the string fields of one message type are: read once per type, not per message."""

    __slots__ = ("nested", "repeated", "singles", "singles_of")

    def __init__(self, descriptor: Descriptor) -> None:
        fields = descriptor.fields
        self.singles = tuple(f.name for f in fields
                             if f.type == FieldDescriptor.TYPE_STRING and not f.is_repeated)
        self.singles_of = _values_of(self.singles)
        self.repeated = tuple(f.name for f in fields
                              if f.type == FieldDescriptor.TYPE_STRING and f.is_repeated)
        self.nested = tuple((f.name, f.is_repeated) for f in fields
                            if f.type in _NESTED and _holds_strings(f.message_type))


def _values_of(names: tuple[str, ...]) -> Callable[[Message], tuple[Any, ...]] | None:
    """A function reading all these fields of a message at once, as a tuple (None for none)."""
    if not names:
        return None
    if len(names) == 1:
        one = attrgetter(names[0])
        return lambda message: (one(message),)
    return attrgetter(*names)


@functools.cache
def _plan(descriptor: Descriptor) -> _Plan:
    return _Plan(descriptor)


@functools.cache
def _holds_strings(descriptor: Descriptor, seen: frozenset[str] = frozenset()) -> bool:
    if descriptor.full_name in seen:
        return False  # a recursive type: its strings are found at the first level
    inner = seen | {descriptor.full_name}
    return any(f.type == FieldDescriptor.TYPE_STRING
               or (f.type in _NESTED and _holds_strings(f.message_type, inner))
               for f in descriptor.fields)


def invalid_strings(message: Message, prefix: str = "") -> list[str]:
    """The string fields of ``message`` (and of the messages inside it) that are not UTF-8.

    A proto2 parser accepts any bytes in a string field and hands such a field back as
    ``bytes`` instead of ``str``, so code that expects text would fail on it far from the wire.
    Names are dotted paths (``login.text_message``). Runs for every frame a session reads, so
    it reads each message type's layout once and a repeated field's values in one pass.
    """
    return _invalid(message, prefix)


def _invalid(message: Message, prefix: str) -> list[str]:
    plan = _plan(message.DESCRIPTOR)
    found: list[str] = []
    if plan.singles_of is not None:
        for name, value in zip(plan.singles, plan.singles_of(message), strict=True):
            if type(value) is not str:
                found.append(prefix + name)
    for name in plan.repeated:
        if any(type(v) is not str for v in getattr(message, name)):
            found.append(prefix + name)
    for name, repeated in plan.nested:
        if repeated:
            parts = getattr(message, name)
            if parts:
                found += _invalid_many(parts, f"{prefix}{name}.")
        elif message.HasField(name):
            found += _invalid(getattr(message, name), f"{prefix}{name}.")
    return found


def _invalid_many(parts: Any, prefix: str) -> list[str]:
    """``_invalid`` over the messages of a repeated field, one name per bad field (not per
    element)."""
    plan = _plan(parts[0].DESCRIPTOR)
    found: list[str] = []
    if plan.singles_of is not None:
        getter = plan.singles_of
        if any(type(v) is not str for part in parts for v in getter(part)):
            for index, name in enumerate(plan.singles):
                if any(type(getter(part)[index]) is not str for part in parts):
                    found.append(prefix + name)
    if plan.repeated or plan.nested:
        for part in parts:
            for name in _invalid(part, prefix):
                if name not in found:
                    found.append(name)
    return found
