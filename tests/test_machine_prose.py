"""Each broker's ``table.py`` opens with its machine drawn in prose; these tests hold the prose to
the table, so that it cannot drift.

The prose is a block of indented lines in the module's docstring:

    src --trigger--> dst                     an edge of ``trigger`` from ``src`` to ``dst``
    a / b --t1 / t2--> c | d --t3--> e       every source, trigger and destination combined
                                             (``/`` or ``|`` between alternatives), chained
        --t4--> f                            a line opening with ``--`` starts again from the
                                             first state(s) of the line above
        | g                                  a line opening with ``|`` adds destinations
    (words in parentheses)                   comments, ignored

Every state named must be one of the broker's, every trigger one of its table's, and each
combination a real edge; and every edge of the table must be drawn (its conditions and order are
the table's business, and the diagrams', not the prose's).
"""

from __future__ import annotations

import importlib
import inspect
import re
from collections.abc import Iterable, Mapping, Sequence
from types import ModuleType
from typing import Any

import pytest

from brokergate.machines.brokers import BROKERS

Arrow = tuple[str, str, str]  # (source, trigger, destination)

_COMMENT = re.compile(r"\([^()]*\)")
_ARROW = re.compile(r"--\s*([^>]+?)\s*-->")


def _table(package: str) -> ModuleType:
    return importlib.import_module(f"{package}.table")


def diagram_lines(doc: str) -> list[str]:
    """The first block of indented lines in a docstring (the diagram)."""
    block: list[str] = []
    for line in inspect.cleandoc(doc).splitlines():
        if line.startswith("    ") and line.strip():
            block.append(line)
        elif block and line.strip():
            break
    return block


def _strip_comments(text: str) -> str:
    while True:
        stripped = _COMMENT.sub(" ", text)
        if stripped == text:
            return text
        text = stripped


def _names(group: str) -> list[str]:
    names = [name.strip() for name in re.split(r"[|/]", group)]
    if any(not re.fullmatch(r"[a-z_]+", name) for name in names):
        raise ValueError(f"not a list of names: {group!r}")
    return names


def parse(doc: str) -> tuple[list[Arrow], set[str]]:
    """The arrows a docstring's diagram draws, and every state name it mentions."""
    logical: list[str] = []
    for raw in diagram_lines(doc):
        line = _strip_comments(raw).strip()
        if not line:
            continue
        if line.startswith("|"):
            if not logical:
                raise ValueError(f"a continuation with nothing to continue: {raw!r}")
            logical[-1] += " " + line
        elif line.startswith("--"):
            if not logical:
                raise ValueError(f"an arrow from nowhere: {raw!r}")
            first = _ARROW.split(logical[-1])[0].strip()
            logical.append(f"{first} {line}")
        elif logical and logical[-1].rstrip().endswith("-->"):
            logical[-1] += " " + line  # the destinations of an arrow that ended a line
        else:
            logical.append(line)
    arrows: list[Arrow] = []
    states: set[str] = set()
    for line in logical:
        parts = _ARROW.split(line)
        groups = [_names(part) for part in parts[0::2]]
        triggers = [_names(part) for part in parts[1::2]]
        states.update(name for group in groups for name in group)
        for sources, trigs, dests in zip(groups, triggers, groups[1:], strict=False):
            arrows += [(s, t, d) for s in sources for t in trigs for d in dests]
    return arrows, states


def edges(transitions: Iterable[Mapping[str, Any]]) -> set[Arrow]:
    """Every (source, trigger, destination) of a table; an internal edge goes to its source."""
    found: set[Arrow] = set()
    for row in transitions:
        sources = [row["source"]] if isinstance(row["source"], str) else row["source"]
        for source in sources:
            found.add((source, row["trigger"], row["dest"] or source))
    return found


def problems(doc: str, states: Sequence[str],
             transitions: Iterable[Mapping[str, Any]]) -> list[str]:
    table = edges(transitions)
    triggers = {t for _, t, _ in table}
    arrows, named = parse(doc)
    found = [f"unknown state {s!r}" for s in sorted(named - set(states))]
    found += [f"unknown trigger {t!r}" for t in sorted({t for _, t, _ in arrows} - triggers)]
    found += [f"{s} --{t}--> {d} is not an edge of the table" for s, t, d in arrows
              if (s, t, d) not in table and s in states and d in states and t in triggers]
    found += [f"state {s!r} is not in the prose" for s in states if s not in named]
    found += [f"{s} --{t}--> {d} is in the table, not in the prose"
              for s, t, d in sorted(table - set(arrows))]
    return found


@pytest.mark.parametrize("broker", BROKERS, ids=[b.name for b in BROKERS])
def test_the_prose_diagram_draws_the_table(broker: Any) -> None:
    table = _table(broker.package)
    assert table.__doc__ is not None
    states = [s["name"] for s in table.STATES]
    assert diagram_lines(table.__doc__), f"{broker.name}: table.py has no prose diagram"
    assert problems(table.__doc__, states, table.TRANSITIONS) == []
    arrows, _ = parse(table.__doc__)
    assert len(arrows) >= 20  # the parser read the diagram, not a line of it


@pytest.mark.parametrize("broker", BROKERS, ids=[b.name for b in BROKERS])
def test_an_arrow_the_table_lacks_is_caught(broker: Any) -> None:
    table = _table(broker.package)
    states = [s["name"] for s in table.STATES]
    doc = table.__doc__
    lines = diagram_lines(doc)
    # A line added at the end of the diagram, in each of the forms the prose uses.
    for extra in ["    authenticated --start--> connecting",
                  "    failed --backoff_elapsed--> connecting",
                  "    backoff --backoff_elapsed--> connecting | authenticated",
                  "        --stop--> failed",
                  "        | authenticated"]:
        drifted = doc.replace(lines[-1], f"{lines[-1]}\n{extra}", 1)
        assert problems(drifted, states, table.TRANSITIONS), (broker.name, extra)
    # And an edge the prose does not draw.
    transitions = [*table.TRANSITIONS, {"trigger": "stop", "source": "failed",
                                        "dest": "disconnected"}]
    assert problems(doc, states, transitions) == [
        "failed --stop--> disconnected is in the table, not in the prose"]
    for extra in ["    authenticated --no_such_trigger--> connecting",
                  "    authenticated --stop--> nowhere"]:
        drifted = doc.replace(lines[-1], f"{lines[-1]}\n{extra}", 1)
        assert any("unknown" in p for p in problems(drifted, states, table.TRANSITIONS))


def test_the_parser_reads_each_form() -> None:
    doc = """Title.

        a --go / run--> b | c --stop--> d   (a comment)
          --go--> e
            | f (another)
        g / h --go-->
            b

    Prose after the diagram: a --nope--> z is not read.
    """
    arrows, states = parse(doc)
    assert set(arrows) == {
        ("a", "go", "b"), ("a", "go", "c"), ("a", "run", "b"), ("a", "run", "c"),
        ("b", "stop", "d"), ("c", "stop", "d"),
        ("a", "go", "e"), ("a", "go", "f"),
        ("g", "go", "b"), ("h", "go", "b"),
    }
    assert states == set("abcdefgh")
