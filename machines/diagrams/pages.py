"""Markdown pages: a broker's policy page, one session's trace page, and ``diagrams/README.md``."""

from __future__ import annotations

from collections.abc import Sequence

from brokergate.machines._policy import policy_markdown
from brokergate.machines.diagrams.graph import GENERATED, Graph
from brokergate.machines.diagrams.mermaid import mermaid
from brokergate.machines.diagrams.traces import Trace


def policy_page(g: Graph) -> str:
    """The broker's policy table with its retry and backoff, as Markdown."""
    b = g.backoff
    bound = f"at most {b.max_attempts} attempts in a row" if b.max_attempts else "no bound"
    return (
        f"# {g.title}: what each broker signal makes the session do\n\n"
        f"<!-- {GENERATED} -->\n\n"
        f"{policy_markdown(list(g.policy))}\n"
        "Retry with backoff: the n-th failure in a row waits a random time (full jitter) up to "
        f"{b.initial:g} s * {b.factor:g}^(n-1), capped at {b.cap:g} s; {bound} (then failed "
        f"`gave_up`); a session up for {b.stability_window:g} s starts counting afresh. A row "
        "with its own bound ends in its own reason. These are the defaults; each session's "
        "configuration may set others.\n"
    )


def trace_page(g: Graph, trace: Trace, diagram_name: str) -> str:
    """The steps of one session as a Markdown table with its path drawn over the diagram."""
    lines = [
        f"# Trace of session `{trace.session_id}` ({g.title})",
        "",
        f"<!-- drawn by `brokergate diagrams --trace` from the audit log over `{diagram_name}` -->",
        "",
        "| step | trigger | from | to | reason | delay | detail |",
        "|---|---|---|---|---|---|---|",
    ]
    for s in trace.steps:
        delay = f"{s.delay:.2f} s" if s.delay is not None else ""
        detail = (s.detail or "").replace("|", "\\|").replace("\n", " ")
        lines.append(f"| {s.number} | {s.trigger} | {s.src} | {s.dst} | {s.reason or ''} "
                     f"| {delay} | {detail} |")
    lines += ["", "```mermaid", mermaid(g, trace).rstrip("\n"), "```", ""]
    return "\n".join(lines)


def index_page(graphs: Sequence[Graph]) -> str:
    """``diagrams/README.md``: every broker's diagram and policy table, with a legend."""
    lines = [
        "# State diagrams",
        "",
        f"<!-- {GENERATED} -->",
        "",
        "Drawn by `brokergate diagrams` (or `python3 tasks.py diagrams`) from the same tables",
        "(`machines/<broker>/table.py`) the runtime machines are built from; a test fails if",
        "what is committed here drifts from them. Each broker also has `<broker>.dot` and",
        "`<broker>.svg` (Graphviz) and `<broker>-policy.md`.",
        "",
        "Legend:",
        "",
        "- An arrow carries every table row between its two states, one per line: the trigger in",
        "  the broker's own words, then `[conditions]` (`&`: all must hold; `/`: any of these",
        "  signals). Rows of one trigger are tried in table order; the first whose conditions",
        "  hold is taken, and `otherwise` marks the row taken when none before it was. A row",
        "  that an earlier row of its trigger rules out in part says so (`attempts used up`,",
        "  `under the daily logon cap`).",
        "- `(unused today)`: rows of the shared failure pattern that no policy row of this",
        "  broker reaches today (dashed in the Graphviz drawings). They stay in the machine, so a",
        "  policy row added later is acted on; the drawings show them so nothing is hidden.",
        "- Red, bold: terminal states (the session stops and says why). Green: `authenticated`.",
        "- `fleet: ...`: edges only a fleet's coordinator drives, where processes on many hosts",
        "  share accounts: `standby` (another process holds the account, or is logging it in),",
        "  the lease granted (it goes where `start` goes) or lost, and another process's login",
        "  that failed for good. With one process (the default) none is ever taken.",
        "- `brokergate diagrams --trace AUDIT.jsonl --session ID` draws the path one session took",
        "  over its broker's diagram: visited states amber, the edges taken labelled with their",
        "  step numbers and the backoff delays chosen.",
        "",
    ]
    for g in graphs:
        lines += [
            f"## {g.title}",
            "",
            f"[Graphviz SVG]({g.broker}.svg) · [DOT]({g.broker}.dot) · "
            f"[Mermaid]({g.broker}.mmd) · [policy]({g.broker}-policy.md)",
            "",
            "```mermaid",
            mermaid(g).rstrip("\n"),
            "```",
            "",
            policy_markdown(list(g.policy)),
        ]
    return "\n".join(lines)
