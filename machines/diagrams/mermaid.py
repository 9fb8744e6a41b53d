"""A machine's graph as Mermaid ``stateDiagram-v2`` text, with a session's trace drawn over it."""

from __future__ import annotations

from brokergate.machines._states import AUTHENTICATED, DISCONNECTED
from brokergate.machines.diagrams.graph import GENERATED, Graph, arrow_lines
from brokergate.machines.diagrams.traces import Trace, steps_text

_STYLES = (
    "    classDef terminal fill:#fde2e1,stroke:#b42318,stroke-width:2px,font-weight:bold\n"
    "    classDef goal fill:#dcfce7,stroke:#15803d,stroke-width:2px\n"
)
_TRACE_STYLES = (
    "    classDef visited fill:#fef3c7,stroke:#b45309,stroke-width:3px\n"
    "    classDef ended fill:#fde68a,stroke:#b45309,stroke-width:4px,font-weight:bold\n"
)


def _mermaid_text(text: str) -> str:
    """A label Mermaid takes as it is: no statement separators, no HTML."""
    return (text.replace(";", ",").replace("<", "(").replace(">", ")")
            .replace("#", "no.").replace(":", " -"))


def mermaid(g: Graph, trace: Trace | None = None) -> str:
    """``stateDiagram-v2`` text: one arrow per (source, dest), its rows as lines."""
    taken = trace.taken() if trace else {}
    lines = [f"%% {g.title}: {GENERATED}", "stateDiagram-v2", f"    [*] --> {DISCONNECTED}"]
    arrows = g.arrows()
    for (src, dst), edges in arrows.items():
        labels = [_mermaid_text(label) for label in arrow_lines(edges, "… ")]
        steps = taken.get((src, dst))
        if steps:
            labels.insert(0, "STEP " + steps_text(steps))
        lines.append(f"    {src} --> {dst} : {'<br/>'.join(labels)}")
    for (src, dst), steps in taken.items():
        if (src, dst) not in arrows:  # not in the table (an internal error): shown all the same
            text = steps_text(steps)
            lines.append(f"    {src} --> {dst} : STEP {_mermaid_text(text)} (not in the table)")
    styles = _STYLES + (_TRACE_STYLES if trace else "")
    lines.append(styles.rstrip("\n"))
    terminal = sorted(g.terminal)
    if trace:
        visited, last = trace.visited(), trace.last
        terminal = [s for s in terminal if s not in visited]
        passed = sorted(visited - {last} if last else visited)
        if passed:
            lines.append(f"    class {', '.join(passed)} visited")
        if last:
            lines.append(f"    class {last} ended")
    if terminal:
        lines.append(f"    class {', '.join(terminal)} terminal")
    if AUTHENTICATED in g.states and not (trace and AUTHENTICATED in trace.visited()):
        lines.append(f"    class {AUTHENTICATED} goal")
    return "\n".join(lines) + "\n"
