"""What every benchmark returns, and how the figures become Markdown."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import statistics
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field


@dataclass
class Section:
    """One benchmark's table: a title, the column names, rows of cells, and notes under it
    (what was run, the baseline, the target and whether it was met)."""

    title: str
    columns: list[str]
    rows: list[list[str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    #: Targets the benchmark states, with whether each was met (shown in the summary).
    targets: list[tuple[str, bool]] = field(default_factory=list)

    def markdown(self) -> str:
        lines = [f"### {self.title}", ""]
        lines.append("| " + " | ".join(self.columns) + " |")
        lines.append("|" + "---|" * len(self.columns))
        lines += ["| " + " | ".join(row) + " |" for row in self.rows]
        if self.notes:
            lines.append("")
            lines += [f"- {note}" for note in self.notes]
        return "\n".join(lines)


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def spread(values: Sequence[float]) -> str:
    """``min-max`` of a sample, for the reader to judge the noise."""
    if not values:
        return "-"
    return f"{min(values):.3g}-{max(values):.3g}"


def ratio(ours: float, baseline: float) -> str:
    return f"{ours / baseline:.2f}x" if baseline else "-"


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as info:
            for line in info:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _memory() -> str:
    try:
        with open("/proc/meminfo", encoding="utf-8") as info:
            for line in info:
                if line.startswith("MemTotal:"):
                    return f"{int(line.split()[1]) / 1024 / 1024:.0f} GiB"
    except OSError:
        pass
    return "?"


def machine() -> str:
    """The machine and software the figures came from, as one Markdown line per fact."""
    versions = []
    for dist in ("transitions", "trio", "trio-websocket", "protobuf", "httpx", "structlog"):
        try:
            versions.append(f"{dist} {importlib.metadata.version(dist)}")
        except importlib.metadata.PackageNotFoundError:
            versions.append(f"{dist} (not installed)")
    try:
        from google.protobuf.internal import api_implementation  # noqa: PLC0415

        backend = api_implementation.Type()
    except ImportError:  # pragma: no cover - protobuf is a dependency
        backend = "?"
    return "\n".join([
        f"- CPU: {_cpu_model()}, {os.cpu_count()} logical cores; memory {_memory()}",
        f"- {platform.platform()}; Python {sys.version.split()[0]} "
        f"({platform.python_implementation()})",
        f"- {', '.join(versions)}; protobuf backend: {backend}",
    ])
