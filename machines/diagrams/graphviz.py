"""A machine's graph as Graphviz DOT text, with a session's trace drawn over it. Rendering it to
SVG needs the ``dot`` program: that is the engine's business (``engine/diagrams.py``)."""

from __future__ import annotations

from brokergate.machines._states import AUTHENTICATED, DISCONNECTED
from brokergate.machines.diagrams.graph import GENERATED, Graph, arrow_lines
from brokergate.machines.diagrams.traces import Trace, steps_text


def _dot_text(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"')


def dot(g: Graph, trace: Trace | None = None) -> str:
    """Graphviz DOT text; terminal states are filled red, ``authenticated`` green, and a trace's
    states and edges amber and bold with their step numbers."""
    taken = trace.taken() if trace else {}
    visited = trace.visited() if trace else set()
    last = trace.last if trace else None
    name = g.broker if trace is None else f"{g.broker}_trace"
    title = _dot_text(g.title + (f" — trace of {trace.session_id}" if trace else ""))
    lines = [
        f"// {g.title}: {GENERATED}",
        f'digraph "{name}" {{',
        "    rankdir=TB;",
        f'    label="{title}";',
        '    labelloc="t";',
        '    fontname="Helvetica";',
        '    node [shape=box, style="rounded", fontname="Helvetica", fontsize=12];',
        '    edge [fontname="Helvetica", fontsize=9, color="#475569"];',
        '    "__start" [shape=point, width=0.15];',
        f'    "__start" -> "{DISCONNECTED}";',
    ]
    for state in g.states:
        attrs = _state_attrs(g, state, visited, last)
        lines.append(f'    "{state}"' + (f" [{', '.join(attrs)}]" if attrs else "") + ";")
    arrows = g.arrows()
    for (src, dst), edges in arrows.items():
        # A line ending in \l is left-aligned in DOT.
        label = "".join(_dot_text(text) + "\\l" for text in arrow_lines(edges))
        attrs = [f'label="{label}"']
        if all(e.unused for e in edges):
            attrs += ["style=dashed", 'color="#94a3b8"', 'fontcolor="#64748b"']
        steps = taken.get((src, dst))
        if steps:
            text = _dot_text("step " + steps_text(steps))
            attrs += [f'xlabel="{text}"', 'color="#b45309"', "penwidth=3",
                      'fontcolor="#b45309"']
        lines.append(f'    "{src}" -> "{dst}" [{", ".join(attrs)}];')
    for (src, dst), steps in taken.items():
        if (src, dst) not in arrows:
            text = _dot_text("step " + steps_text(steps) + " (not in table)")
            lines.append(f'    "{src}" -> "{dst}" [label="{text}", style=dashed, '
                         'color="#b45309", penwidth=3];')
    lines.append("}")
    return "\n".join(lines) + "\n"


def _state_attrs(g: Graph, state: str, visited: set[str], last: str | None) -> list[str]:
    """A state's node attributes: terminal red, ``authenticated`` green, a trace's amber."""
    attrs = []
    if state in g.terminal:
        attrs.append('style="rounded,filled,bold", fillcolor="#fde2e1", color="#b42318", '
                     "penwidth=2")
    elif state == AUTHENTICATED:
        attrs.append('style="rounded,filled", fillcolor="#dcfce7", color="#15803d", '
                     "penwidth=2")
    if state in visited:
        width = 4 if state == last else 3
        attrs.append(f'color="#b45309", penwidth={width}')
        if state not in g.terminal and state != AUTHENTICATED:
            attrs.append('style="rounded,filled", fillcolor="#fef3c7"')
    return attrs
