"""Where a key sits in a TOML text: ``tomllib`` keeps no positions, so the service file's
errors find their line here.

``key_lines`` reads a text that ``tomllib`` has already accepted and notes the line of every
table header (``[a.b]``, ``[[a.b]]``), every ``key = value`` under it (dotted keys included) and
every key of an inline table (on the line that holds the inline table). ``KeyLines.line`` answers
for a key path with the line of the longest prefix of it that was noted: a key not written in
the file (a missing field) is placed on its table's header, and anything else on line 1.
"""

from __future__ import annotations

import contextlib
import json
import re
from bisect import bisect_right
from collections.abc import Sequence

Path = tuple[str, ...]

_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")
#: Where an unquoted value (a number, a date, true...) ends.
_VALUE_END = re.compile(r"[,\]}#\n]")


def dotted(path: Sequence[str]) -> str:
    """``("sessions", "my.desk", "url")`` -> ``sessions."my.desk".url``, as TOML writes it."""
    return ".".join(part if _BARE_KEY.fullmatch(part) else json.dumps(part) for part in path)


class KeyLines:
    """The line of each key path in one TOML text."""

    def __init__(self, found: dict[Path, int]) -> None:
        self._found = found

    def line(self, path: Sequence[str]) -> int:
        """The line of ``path``, else of its nearest enclosing key or table, else 1."""
        key = tuple(path)
        for cut in range(len(key), 0, -1):
            line = self._found.get(key[:cut])
            if line is not None:
                return line
        return 1


def key_lines(text: str) -> KeyLines:
    scanner = _Scanner(text)
    with contextlib.suppress(IndexError, ValueError):  # not TOML after all: keep what was found
        scanner.document()
    return KeyLines(scanner.found)


class _Scanner:
    """Just enough of TOML to tell keys from values; trusts the text to be valid TOML."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0
        self.found: dict[Path, int] = {}
        self._starts = [0] + [m.end() for m in re.finditer("\n", text)]

    # --- the document -------------------------------------------------------------------------

    def document(self) -> None:
        table: Path = ()
        while True:
            self._skip(newlines=True)
            if self.pos >= len(self.text):
                return
            line = self._line()
            if self.text[self.pos] == "[":
                depth = 2 if self.text.startswith("[[", self.pos) else 1
                self.pos += depth
                table = self._key()
                self._skip()
                self.pos += depth  # the closing bracket(s)
                self._note(table, line)
                if depth == 1:  # its own header, though a sub-table's came first
                    self.found[table] = line
            else:
                before = self.pos
                key = table + self._key()
                self._note(key, line)
                self._skip()
                self.pos += 1  # the "="
                self._value(key)
                if self.pos == before:  # not a key after all: never loop in place
                    raise ValueError("no progress")
            self._rest_of_line()

    def _note(self, path: Path, line: int) -> None:
        for cut in range(1, len(path) + 1):
            self.found.setdefault(path[:cut], line)

    def _line(self) -> int:
        return bisect_right(self._starts, self.pos)

    # --- keys ---------------------------------------------------------------------------------

    def _key(self) -> Path:
        parts: list[str] = []
        while True:
            self._skip()
            parts.append(self._key_part())
            self._skip()
            if self.pos < len(self.text) and self.text[self.pos] == ".":
                self.pos += 1
                continue
            return tuple(parts)

    def _key_part(self) -> str:
        text = self.text
        if text[self.pos] == '"':
            raw = self._basic_string()
            try:
                part: str = json.loads(raw)
            except ValueError:  # a TOML escape JSON lacks (\e, \U...): the raw text will do
                part = raw[1:-1]
            return part
        if text[self.pos] == "'":
            end = text.index("'", self.pos + 1)
            part = text[self.pos + 1:end]
            self.pos = end + 1
            return part
        match = _BARE_KEY.match(text, self.pos)
        if match is None:
            raise ValueError("not a key")
        self.pos = match.end()
        return match.group()

    # --- values -------------------------------------------------------------------------------

    def _value(self, path: Path) -> None:
        self._skip()
        text = self.text
        if text.startswith(('"""', "'''"), self.pos):
            self._multiline_string()
        elif text[self.pos] == '"':
            self._basic_string()
        elif text[self.pos] == "'":
            self.pos = text.index("'", self.pos + 1) + 1
        elif text[self.pos] == "[":
            self._array(path)
        elif text[self.pos] == "{":
            self._inline_table(path)
        else:
            match = _VALUE_END.search(text, self.pos)
            self.pos = match.start() if match else len(text)

    def _array(self, path: Path) -> None:
        self.pos += 1
        while True:
            self._skip(newlines=True)
            if self.text[self.pos] == "]":
                self.pos += 1
                return
            self._value(path)  # the items of an array have no keys to note
            self._skip(newlines=True)
            if self.text[self.pos] == ",":
                self.pos += 1

    def _inline_table(self, path: Path) -> None:
        line = self._line()
        self.pos += 1
        while True:
            self._skip()
            if self.text[self.pos] == "}":
                self.pos += 1
                return
            key = path + self._key()
            self._note(key, line)
            self._skip()
            self.pos += 1  # the "="
            self._value(key)
            self._skip()
            if self.text[self.pos] == ",":
                self.pos += 1

    def _basic_string(self) -> str:
        """A "..." string from the opening quote; returns it with its quotes."""
        start = self.pos
        self.pos += 1
        while self.text[self.pos] != '"':
            self.pos += 2 if self.text[self.pos] == "\\" else 1
        self.pos += 1
        return self.text[start:self.pos]

    def _multiline_string(self) -> None:
        quote = self.text[self.pos]
        self.pos += 3
        while not self.text.startswith(quote * 3, self.pos):
            self.pos += 2 if quote == '"' and self.text[self.pos] == "\\" else 1
        self.pos += 3
        while self.pos < len(self.text) and self.text[self.pos] == quote:  # up to two more
            self.pos += 1

    # --- blanks -------------------------------------------------------------------------------

    def _skip(self, *, newlines: bool = False) -> None:
        """Past spaces and tabs (and newlines and comments, when ``newlines``)."""
        text = self.text
        while self.pos < len(text):
            char = text[self.pos]
            if char in " \t\r" or (newlines and char == "\n"):
                self.pos += 1
            elif newlines and char == "#":
                self._rest_of_line()
            else:
                return

    def _rest_of_line(self) -> None:
        end = self.text.find("\n", self.pos)
        self.pos = len(self.text) if end < 0 else end + 1
