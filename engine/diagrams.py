"""``brokergate diagrams``: write the machines' diagrams and policy pages, or draw one session's
trace over its broker's diagram. The text comes from ``brokergate.machines.diagrams``; this
module writes files and runs Graphviz's ``dot`` for the SVGs when it is installed."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from brokergate.engine._errors import ConfigurationError
from brokergate.machines import diagrams as d
from brokergate.machines import policy_markdown

#: How to get ``dot`` where it is missing (only the .svg files need it).
INSTALL_DOT = ("Graphviz's `dot` is not installed, so no .svg was written (the .mmd and .dot "
               "files were). Install it with `apt-get install graphviz` (Debian, Ubuntu), "
               "`brew install graphviz` (macOS) or from https://graphviz.org/download/.")


def dot_program() -> str | None:
    return shutil.which("dot")


def render_svg(dot_file: Path, program: str) -> Path:
    """``<name>.svg`` beside ``dot_file``, rendered by ``dot``."""
    svg = dot_file.with_suffix(".svg")
    subprocess.run([program, "-Tsvg", str(dot_file), "-o", str(svg)], check=True,
                   capture_output=True, timeout=60)
    return svg


def write_all(out: Path, *, svg: bool = True) -> tuple[list[Path], str | None]:
    """Every broker's .mmd, .dot, -policy.md (and .svg with ``dot``), and README.md, into
    ``out``. Returns the files written and a note for the user (``dot`` missing), if any."""
    out.mkdir(parents=True, exist_ok=True)
    graphs = [d.graph(name) for name in d.BROKERS]
    texts: dict[Path, str] = {}
    for g in graphs:
        texts[out / f"{g.broker}.mmd"] = d.mermaid(g)
        texts[out / f"{g.broker}.dot"] = d.dot(g)
        texts[out / f"{g.broker}-policy.md"] = d.policy_page(g)
    texts[out / "README.md"] = d.index_page(graphs)
    return _write(texts, svg=svg)


def _write(texts: dict[Path, str], *, svg: bool) -> tuple[list[Path], str | None]:
    """Each text to its file, in order, then (with ``svg``) the .svg of each .dot file with
    ``dot``, or none and how to install it. Returns the files written and that note, if any."""
    for path, text in texts.items():
        path.write_text(text, encoding="utf-8")
    written = list(texts)
    if not svg:
        return written, None
    program = dot_program()
    if program is None:
        return written, INSTALL_DOT
    return written + [render_svg(path, program) for path in written if path.suffix == ".dot"], None


#: Where each broker's policy table is kept, relative to the repository's root: its page in the
#: docs, between ``<!-- policy table: <broker> ... -->`` and
#: ``<!-- end of policy table: <broker> -->``.
BROKER_DOCS: dict[str, Path] = {name: Path("docs", "brokers", f"{name}.md") for name in d.BROKERS}


def with_policy_table(text: str, broker: str) -> str:
    """``text`` (the broker's page in the docs) with ``broker``'s policy table, between its
    markers, replaced by the runtime's table."""
    g = d.graph(broker)
    pattern = re.compile(rf"(<!-- policy table: {broker}\b[^>]*-->\n)(.*?)"
                         rf"(<!-- end of policy table: {broker} -->)", re.S)
    # A callable replacement: the table is inserted as it is, backslashes and all.
    text, count = pattern.subn(_between(policy_markdown(list(g.policy))), text)
    if count != 1:
        raise ConfigurationError(f"{BROKER_DOCS[broker]} has {count} policy-table markers for "
                                 f"{broker}; it needs one pair")
    return text


def _between(table: str) -> Callable[[re.Match[str]], str]:
    return lambda m: m.group(1) + table + m.group(3)


def refresh_broker_docs(root: Path) -> dict[Path, bool]:
    """Rewrite the policy table in each broker's page under ``root`` (``docs/brokers/<broker>.md``
    in the repository); for each page, whether it changed."""
    changed: dict[Path, bool] = {}
    for broker, relative in BROKER_DOCS.items():
        path = root / relative
        old = path.read_text(encoding="utf-8")
        new = with_policy_table(old, broker)
        if new != old:
            path.write_text(new, encoding="utf-8")
        changed[relative] = new != old
    return changed


def load_trace(audit_file: Path, session: str | None) -> d.Trace:
    """One session's trace from a JSON-lines audit log (the only session, or ``session``)."""
    found = d.traces(_audit_events(audit_file))
    if not found:
        raise ConfigurationError(f"{audit_file} holds no transitions")
    if session is None:
        if len(found) > 1:
            raise ConfigurationError(
                f"{audit_file} holds {len(found)} sessions; pick one with --session: "
                + ", ".join(sorted(found)))
        return next(iter(found.values()))
    if session not in found:
        raise ConfigurationError(f"no session {session!r} in {audit_file} (it holds: "
                                 f"{', '.join(sorted(found))})")
    return found[session]


def _audit_events(audit_file: Path) -> list[dict[str, Any]]:
    """The events of a JSON-lines audit log, blank lines skipped."""
    try:
        lines = audit_file.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise ConfigurationError(f"cannot read the audit log {audit_file}: "
                                 f"{exc.strerror or exc}") from None
    events = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            event = json.loads(line)
        except ValueError:
            raise ConfigurationError(f"{audit_file}:{number} is not a JSON line; is this an "
                                     "audit log (--audit-log)?") from None
        if isinstance(event, dict):
            events.append(event)
    return events


def write_trace(trace: d.Trace, out: Path, *, svg: bool = True) -> tuple[list[Path], str | None]:
    """``trace-<session>.mmd``, ``.dot``, ``.md`` (and ``.svg``) into ``out``."""
    if trace.broker not in d.BROKERS:
        raise ConfigurationError(f"the session's broker {trace.broker!r} has no machine here")
    g = d.graph(trace.broker)
    out.mkdir(parents=True, exist_ok=True)
    stem = "trace-" + "".join(c if c.isalnum() or c in "-_." else "_" for c in trace.session_id)
    return _write({out / f"{stem}.mmd": d.mermaid(g, trace),
                   out / f"{stem}.dot": d.dot(g, trace),
                   out / f"{stem}.md": d.trace_page(g, trace, f"{g.broker}.mmd")}, svg=svg)


def main(out: Path, trace_file: Path | None, session: str | None) -> Sequence[Path]:
    """What the CLI runs; prints what it wrote, and how to get ``dot`` when it is missing."""
    import sys  # noqa: PLC0415

    if trace_file is not None:
        written, note = write_trace(load_trace(trace_file, session), out)
    else:
        if session is not None:
            raise ConfigurationError("--session picks a session of --trace AUDIT.jsonl")
        written, note = write_all(out)
    for path in written:
        print(path)
    if note:
        print(note, file=sys.stderr)
    return written
