"""A check on parsed protobuf messages that protobuf itself does not make."""

from __future__ import annotations

from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message


def invalid_strings(message: Message, prefix: str = "") -> list[str]:
    """The string fields of ``message`` (and of the messages inside it) that are not UTF-8.

    A proto2 parser accepts any bytes in a string field and hands such a field back as
    ``bytes`` instead of ``str``, so code that expects text would fail on it far from the wire.
    Names are dotted paths (``login.text_message``).
    """
    found: list[str] = []
    for field, value in message.ListFields():
        name = f"{prefix}{field.name}"
        values = list(value) if field.is_repeated else [value]
        if field.type == FieldDescriptor.TYPE_STRING:
            if any(not isinstance(v, str) for v in values):
                found.append(name)
        elif field.type in (FieldDescriptor.TYPE_MESSAGE, FieldDescriptor.TYPE_GROUP):
            for part in values:
                found += invalid_strings(part, f"{name}.")
    return found
