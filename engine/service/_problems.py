"""What is wrong with a service file: every problem with its line and key, gathered before any
is raised, so that one run of the loader names them all."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from brokergate.engine._errors import ConfigurationError
from brokergate.engine.service._fields import suggest
from brokergate.engine.service._lines import KeyLines, dotted

#: A key whose name says it holds a secret (as on the command line): its value is never shown.
LOOKS_SECRET = re.compile(r"pass|pw|secret|token|key|otp|seed|cred", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class FileProblem:
    """One problem: the line it is on (0: the file as a whole), the dotted key path it is about
    (empty for a TOML syntax error), and what is wrong (never a secret's value)."""

    line: int
    field: str
    message: str

    def describe(self, path: Path | str) -> str:
        where = f"{path}:{self.line}" if self.line else f"{path}"
        return f"{where}: {self.field}: {self.message}" if self.field else \
            f"{where}: {self.message}"


class ServiceFileError(ConfigurationError):
    """The service file cannot be used; ``problems`` lists everything wrong with it, by line.
    Nothing of it was started."""

    def __init__(self, path: Path, problems: Iterable[FileProblem]) -> None:
        self.path = path
        self.problems = sorted(problems, key=lambda problem: problem.line)
        super().__init__("\n".join(problem.describe(path) for problem in self.problems))


def secret_refused(key: str) -> str:
    return (f'a secret written into the file is refused (the value is not shown): give '
            f'{key}_env = "VARIABLE" or {key}_file = "PATH"')


def unknown_key(key: str, known: Iterable[str], what: str) -> str:
    """Says that ``key`` is not one of ``what``'s keys; its value is never repeated (a key that
    is not known may well be a secret under a name we did not foresee)."""
    known = list(known)
    hint = suggest(key, known)
    if LOOKS_SECRET.search(key):
        return (f"unknown key in {what}{hint}; its name says it may hold a secret, so its value "
                "is not shown: secrets are given as FIELD_env or FIELD_file, never written in")
    return f"unknown key in {what}{hint}"


class Report:
    """Gathers the problems of one file; each lands on the line of its key path."""

    def __init__(self, lines: KeyLines) -> None:
        self._lines = lines
        self._problems: dict[FileProblem, None] = {}  # ordered, and each problem once
        #: How many times ``add`` was called (a problem met again counts again).
        self.added = 0

    def add(self, path: Sequence[str], message: str) -> None:
        self.added += 1
        self._problems[FileProblem(self.line(path), dotted(path), message)] = None

    def line(self, path: Sequence[str]) -> int:
        return self._lines.line(path)

    def __len__(self) -> int:
        return len(self._problems)

    @property
    def problems(self) -> list[FileProblem]:
        return list(self._problems)
