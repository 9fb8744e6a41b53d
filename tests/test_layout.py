"""The house reads one broker per folder: the engine names no broker, and every module fits its
job."""

from __future__ import annotations

import re
from pathlib import Path

from brokergate.machines.brokers import BROKERS

ROOT = Path(__file__).resolve().parent.parent
#: Generated protobuf modules are not written by hand.
GENERATED = re.compile(r"_pb2\.pyi?$")
#: Modules allowed past the size most modules keep to, with why.
LONG_MODULES: dict[str, str] = {}
MAX_LINES = 420


def _broker_names() -> re.Pattern[str]:
    words = {b.name for b in BROKERS} | {b.title for b in BROKERS}
    return re.compile(r"\b(" + "|".join(sorted(map(re.escape, words))) + r")\b", re.IGNORECASE)


def test_the_engine_names_no_broker() -> None:
    """Broker knowledge lives in the broker's folder and reaches the engine, the CLI, the demo
    and the diagram tooling through its descriptor."""
    pattern = _broker_names()
    found = []
    for path in sorted((ROOT / "engine").rglob("*.py")):
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if pattern.search(line):
                found.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert not found, "broker names in engine/:\n" + "\n".join(found)


def test_modules_fit_their_job() -> None:
    long = []
    for folder in ("engine", "machines", "simulators"):
        for path in sorted((ROOT / folder).rglob("*.py")):
            name = str(path.relative_to(ROOT))
            if GENERATED.search(name) or name in LONG_MODULES:
                continue
            lines = len(path.read_text(encoding="utf-8").splitlines())
            if lines > MAX_LINES:
                long.append(f"{name}: {lines} lines")
    assert not long, "modules over the size a reader takes in:\n" + "\n".join(long)
