"""A value that must never be shown: passwords, TOTP seeds and codes, API keys, tokens."""

from __future__ import annotations

import hmac
from typing import Any, NoReturn

REDACTED = "[REDACTED]"


class Secret:
    """Holds a secret string. ``repr``, ``str`` and ``format`` hide it; ``reveal()`` returns it.

    Only the code that puts the value on the wire calls ``reveal()``. The audit trail's redaction
    processor also scrubs every value a session registered, as a second line of defence.
    """

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        if not isinstance(value, str):
            raise TypeError("Secret holds a str")
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __bool__(self) -> bool:
        return bool(self._value)

    def __len__(self) -> int:
        return len(self._value)

    def __repr__(self) -> str:
        return f"Secret({REDACTED!r})"

    def __str__(self) -> str:
        return REDACTED

    def __format__(self, spec: str) -> str:
        return REDACTED

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Secret):
            return NotImplemented
        return hmac.compare_digest(self._value.encode(), other._value.encode())

    def __hash__(self) -> int:
        return hash((Secret, self._value))

    def __reduce__(self) -> NoReturn:
        raise TypeError("a Secret is not picklable")

    def __deepcopy__(self, memo: dict[int, Any]) -> Secret:
        return self
