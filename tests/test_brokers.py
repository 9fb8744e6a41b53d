"""Every registered broker: a sound descriptor, a model with exactly the capabilities the
descriptor declares, and a folder laid out like every other broker's."""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import pytest
from broker_models import CONFIGS, build_model

from brokergate.machines._broker import CAPABILITIES
from brokergate.machines.brokers import BROKERS

#: Every broker folder has these, each with the same job.
STANDARD = frozenset({
    "__init__.py",
    "broker.py",     # the descriptor
    "table.py",      # prose diagram, STATES, TRANSITIONS, TRIGGER_WORDS, MACHINE
    "callbacks.py",  # the conditions and callbacks the table names
    "model.py",      # the session model
    "policy.py",
    "codec.py",
    "config.py",
    "cli.py",        # its part of the command line (CLI)
})
#: What a broker may have besides: generated protobuf modules, and its own rules' helpers.
OWN = {
    "qst": {"qst_pb2.py", "qst_pb2.pyi"},
    "cqg": {"cqg_session_pb2.py", "cqg_session_pb2.pyi", "throttle.py", "handover.py"},
    "firstock": {"expiry.py", "slots.py"},
}

_IDS = [b.name for b in BROKERS]


@pytest.mark.parametrize("broker", BROKERS, ids=_IDS)
def test_the_descriptor_passes_its_check(broker: Any) -> None:
    assert broker.check() == []
    assert broker.package == f"brokergate.machines.{broker.name}"


@pytest.mark.parametrize("broker", BROKERS, ids=_IDS)
def test_the_model_has_exactly_the_declared_capabilities(broker: Any) -> None:
    model = build_model(broker, CONFIGS[broker.name]())
    for name, protocol in CAPABILITIES.items():
        declared = broker.has(name)
        assert isinstance(model, protocol) == declared, (
            f"{broker.name} {'declares' if declared else 'does not declare'} {name!r} "
            f"({protocol.__name__}), but its model {'lacks' if declared else 'has'} it")


@pytest.mark.parametrize("broker", BROKERS, ids=_IDS)
def test_every_broker_folder_has_the_standard_files(broker: Any) -> None:
    package = importlib.import_module(broker.package)
    assert package.__file__ is not None
    folder = Path(package.__file__).parent
    files = {p.name for p in folder.iterdir() if p.is_file()} - {"py.typed"}
    assert files >= STANDARD, f"{broker.name} lacks {sorted(STANDARD - files)}"
    assert files - STANDARD == OWN[broker.name], f"{broker.name}: {sorted(files - STANDARD)}"
    assert not (folder / "machine.py").exists() and not (folder / "session.py").exists()
    table = importlib.import_module(f"{broker.package}.table")
    assert table.STATES is broker.states and table.TRANSITIONS is broker.transitions
    assert table.TRIGGER_WORDS is broker.diagram.triggers
    assert type(build_model(broker, CONFIGS[broker.name]())).MACHINE is table.MACHINE
