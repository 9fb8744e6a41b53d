"""State diagrams drawn from the very tables the runtime machines are built from.

Pure text out: Mermaid ``stateDiagram-v2``, Graphviz DOT, Markdown. Rendering DOT to SVG is the
engine's business (it needs the ``dot`` program). A ``Trace`` (the transitions one session took,
from its audit log) draws that path over its broker's diagram. One module a job:

- ``graph``: ``Graph`` and its ``Edge`` rows, built from each broker's descriptor and the labels
  its conditions carry (``machines/_labels.py``);
- ``mermaid`` and ``graphviz``: the drawings (``mermaid(g)``, ``dot(g)``);
- ``pages``: the Markdown pages (``policy_page``, ``trace_page``, ``index_page``);
- ``traces``: ``Step`` and ``Trace``, read from audit events (``traces(events)``).

Use the names here (``from brokergate.machines import diagrams as d; d.graph(...)``). Three of
them are also the names of their modules and stand for the function on this package:
``d.graph``, ``d.mermaid`` and ``d.traces`` are functions, so reach a module's other names with
``from brokergate.machines.diagrams.graph import ...``.
"""

from brokergate.machines.diagrams.graph import BROKERS, GENERATED, WRAP, Edge, Graph, compact, graph
from brokergate.machines.diagrams.graphviz import dot
from brokergate.machines.diagrams.mermaid import mermaid
from brokergate.machines.diagrams.pages import index_page, policy_page, trace_page
from brokergate.machines.diagrams.traces import Step, Trace, traces

__all__ = [
    "BROKERS",
    "GENERATED",
    "WRAP",
    "Edge",
    "Graph",
    "Step",
    "Trace",
    "compact",
    "dot",
    "graph",
    "index_page",
    "mermaid",
    "policy_page",
    "trace_page",
    "traces",
]
