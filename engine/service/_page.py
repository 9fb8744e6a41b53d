"""The status page of ``brokergate run``: one self-contained HTML document.

Each session is a card: its state, health and schedule, its recent transitions, and its broker's
state diagram (the Graphviz drawing ``brokergate diagrams`` commits, shipped in the package) with
the current state filled (green when healthy, red when not), the states of its recent path
outlined and the edges it took drawn bold. The page is rendered here first, so it says where
every session stands without its script; the script then fetches ``/status`` every two seconds
and redraws, and marks the page stale while the service does not answer. Nothing is loaded from
anywhere else: the style, the script and the drawings are all inline. Every value from the
status is escaped here and set as text by the script (never as markup).
"""

from __future__ import annotations

import functools
import html
import importlib.resources
import json
import re
from typing import Any

from brokergate.machines.brokers import BROKERS

REFRESH_SECONDS = 2.0

_SVG_START = re.compile(r"<svg\b")


@functools.cache
def diagram_svg(broker: str) -> str | None:
    """The broker's Graphviz drawing as inline SVG (no XML prolog), or None if it is not
    shipped (a checkout whose ``diagrams/`` were not generated)."""
    try:
        text = (importlib.resources.files("brokergate.diagrams") / f"{broker}.svg").read_text(
            encoding="utf-8")
    except (FileNotFoundError, ModuleNotFoundError, OSError):
        return None
    found = _SVG_START.search(text)
    if found is None:
        return None
    svg = text[found.start():]
    # Scaled by the page, not by the drawing's own size in points.
    return re.sub(r'<svg width="[^"]*" height="[^"]*"', "<svg", svg, count=1)


def _card(session: dict[str, Any]) -> str:
    e = html.escape
    name, broker = str(session["name"]), str(session["broker"])
    health_class = "ok" if session["healthy"] else "bad"
    schedule = session.get("schedule")
    when = e(schedule["describe"]) if schedule else "always (no schedule)"
    steps = "".join(
        f"<li>{e(str(s['at']))} {e(s['src'])} → <b>{e(s['dst'])}</b>"
        f"{' (' + e(str(s['reason'])) + ')' if s.get('reason') else ''}</li>"
        for s in reversed(session.get("transitions", [])))
    return (
        f'<section class="card {health_class}" data-session="{e(name)}" '
        f'data-broker="{e(broker)}">'
        f'<h2><span class="name">{e(name)}</span> '
        f'<span class="broker">{e(str(session.get("broker_title", broker)))}</span> '
        f'<span class="account">{e(str(session["account"]))}</span></h2>'
        f'<p><span class="state">{e(str(session["state"]))}</span> '
        f'<span class="health">{e(_besides(str(session["state"]), str(session["health"])))}'
        f'</span></p>'
        f'<p class="schedule">{when}</p>'
        f'<div class="diagram"></div>'
        f'<details><summary>recent transitions</summary><ol class="steps">{steps}</ol>'
        f"</details></section>")


def _besides(state: str, health: str) -> str:
    """The health words without the state they start with (the card shows it just before)."""
    if health.startswith(state):
        return health[len(state):].removeprefix(": ")
    return health


def render_page(status: dict[str, Any]) -> str:
    """The page for ``status`` (what ``/status`` answers)."""
    # Every broker's drawing, not only those of the sessions now: a reload may add any.
    brokers = sorted({str(s["broker"]) for s in status["sessions"]} | {b.name for b in BROKERS})
    templates = "".join(
        f'<template id="diagram-{html.escape(b)}">{svg}</template>'
        for b in brokers if (svg := diagram_svg(b)) is not None)
    cards = "".join(_card(s) for s in status["sessions"])
    overall = "healthy" if status["healthy"] else "unhealthy"
    initial = json.dumps(status).replace("<", "\\u003c")  # safe inside <script>
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>brokergate: {len(status["sessions"])} sessions, {overall}</title>
<style>{_STYLE}</style></head>
<body data-refreshed="0">
<header><h1>brokergate</h1>
<p id="overall" class="{overall}">{overall}</p>
<p id="meta">{html.escape(str(status["service"].get("file", "")))}, updated
<span id="updated">{html.escape(str(status["generated"]))}</span>
<span id="stale" hidden>(the service does not answer: this is what it last said)</span></p>
<p class="links"><a href="/status">/status</a> <a href="/healthz">/healthz</a>
<a href="/metrics">/metrics</a></p></header>
<main id="sessions">{cards}</main>
{templates}
<script id="initial" type="application/json">{initial}</script>
<script>{_SCRIPT.replace("REFRESH_MS", str(int(REFRESH_SECONDS * 1000)))}</script>
</body></html>
"""


_STYLE = """
body { font: 14px/1.4 system-ui, sans-serif; margin: 0 1.5rem 2rem; color: #0f172a; }
header { display: flex; gap: 1.5rem; align-items: baseline; flex-wrap: wrap; }
h1 { font-size: 1.4rem; }
#overall { font-weight: bold; padding: 0.1rem 0.6rem; border-radius: 0.3rem; }
#overall.healthy { background: #dcfce7; color: #166534; }
#overall.unhealthy { background: #fee2e2; color: #991b1b; }
#stale { color: #b45309; font-weight: bold; }
.links a { margin-right: 0.6rem; }
main { display: grid; grid-template-columns: repeat(auto-fill, minmax(32rem, 1fr)); gap: 1rem; }
.card { border: 1px solid #cbd5e1; border-left: 6px solid #16a34a; border-radius: 0.4rem;
        padding: 0.5rem 1rem; }
.card.bad { border-left-color: #dc2626; }
.card h2 { font-size: 1.1rem; margin: 0.3rem 0; }
.broker, .account { font-weight: normal; color: #475569; margin-left: 0.4rem; }
.state { font-weight: bold; font-family: ui-monospace, monospace; }
.card.bad .state { color: #b91c1c; }
.health, .schedule { color: #334155; }
.diagram svg { width: 100%; height: auto; max-height: 26rem; }
.diagram g.node.visited > path, .diagram g.node.visited > polygon,
.diagram g.node.visited > ellipse { stroke: #d97706; stroke-width: 2.5; }
.diagram g.node.current > path, .diagram g.node.current > polygon,
.diagram g.node.current > ellipse { fill: #86efac; stroke: #15803d; stroke-width: 4; }
.card.bad .diagram g.node.current > path, .card.bad .diagram g.node.current > polygon,
.card.bad .diagram g.node.current > ellipse { fill: #fca5a5; stroke: #b91c1c; }
.diagram g.edge:not(.taken) text { display: none; }  /* the path taken keeps its words */
.diagram g.edge.taken > path { stroke: #d97706; stroke-width: 3; }
.diagram g.edge.taken > polygon { fill: #d97706; stroke: #d97706; }
.steps { font-family: ui-monospace, monospace; font-size: 12px; }
"""

# Everything from /status is set with textContent; no markup is built from it.
_SCRIPT = """
"use strict";
const sessionsEl = document.getElementById("sessions");
let refreshed = 0;

function text(el, value) { el.textContent = value == null ? "" : String(value); }

// The health words without the state they start with (shown just before them).
function besides(state, health) {
  return health.startsWith(state) ? health.slice(state.length).replace(/^: /, "") : health;
}

function card(s) {
  let el = sessionsEl.querySelector(`section[data-session="${CSS.escape(s.name)}"]`);
  if (!el) {
    el = document.createElement("section");
    el.dataset.session = s.name;
    el.dataset.broker = s.broker;
    el.innerHTML = '<h2><span class="name"></span> <span class="broker"></span> ' +
      '<span class="account"></span></h2><p><span class="state"></span> ' +
      '<span class="health"></span></p><p class="schedule"></p><div class="diagram"></div>' +
      '<details><summary>recent transitions</summary><ol class="steps"></ol></details>';
    sessionsEl.appendChild(el);
  }
  return el;
}

function diagram(el, broker) {
  const holder = el.querySelector(".diagram");
  let svg = holder.querySelector("svg");
  if (!svg) {
    const template = document.getElementById("diagram-" + broker);
    if (!template) return null;
    svg = template.content.querySelector("svg").cloneNode(true);
    svg.querySelectorAll("[id]").forEach(n => n.removeAttribute("id"));
    holder.appendChild(svg);
  }
  return svg;
}

function mark(svg, s) {
  const visited = new Set(s.transitions.flatMap(t => [t.src, t.dst]));
  const taken = new Set(s.transitions.map(t => t.src + "->" + t.dst));
  svg.querySelectorAll("g.node").forEach(g => {
    const name = g.querySelector("title").textContent;
    g.classList.toggle("current", name === s.state);
    g.classList.toggle("visited", visited.has(name));
  });
  svg.querySelectorAll("g.edge").forEach(g => {
    g.classList.toggle("taken", taken.has(g.querySelector("title").textContent));
  });
}

function render(status) {
  const seen = new Set();
  for (const s of status.sessions) {
    seen.add(s.name);
    const el = card(s);
    el.className = "card " + (s.healthy ? "ok" : "bad");
    text(el.querySelector(".name"), s.name);
    text(el.querySelector(".broker"), s.broker_title);
    text(el.querySelector(".account"), s.account);
    text(el.querySelector(".state"), s.state);
    text(el.querySelector(".health"), besides(s.state, s.health));
    text(el.querySelector(".schedule"),
         s.schedule ? s.schedule.describe : "always (no schedule)");
    const steps = el.querySelector(".steps");
    steps.replaceChildren(...s.transitions.slice().reverse().map(t => {
      const li = document.createElement("li");
      li.textContent = `${t.at} ${t.src} → ${t.dst}` + (t.reason ? ` (${t.reason})` : "");
      return li;
    }));
    const svg = diagram(el, s.broker);
    if (svg) mark(svg, s);
  }
  sessionsEl.querySelectorAll("section[data-session]").forEach(el => {
    if (!seen.has(el.dataset.session)) el.remove();
  });
  const overall = document.getElementById("overall");
  overall.className = status.healthy ? "healthy" : "unhealthy";
  text(overall, status.healthy ? "healthy" : "unhealthy");
  text(document.getElementById("updated"), status.generated);
  document.title = `brokergate: ${status.sessions.length} sessions, ` +
    (status.healthy ? "healthy" : "unhealthy");
}

async function refresh() {
  try {
    const answer = await fetch("/status", {cache: "no-store"});
    if (!answer.ok) throw new Error("status " + answer.status);
    render(await answer.json());
    refreshed += 1;
    document.body.dataset.refreshed = String(refreshed);
    document.getElementById("stale").hidden = true;
  } catch (err) {
    document.getElementById("stale").hidden = false;
    console.error("brokergate: the status did not refresh:", String(err));
  }
  setTimeout(refresh, REFRESH_MS);
}

render(JSON.parse(document.getElementById("initial").textContent));
setTimeout(refresh, REFRESH_MS);
"""
