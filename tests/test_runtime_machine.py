"""The runtime machine calls callbacks directly, so it takes functions only."""

from __future__ import annotations

import pytest

from brokergate.machines._runtime import RuntimeMachine, build_machine
from brokergate.machines._states import COMMON_STATES, DISCONNECTED
from brokergate.machines.cqg.table import MACHINE as CQG
from brokergate.machines.firstock.table import MACHINE as FIRSTOCK
from brokergate.machines.qst.table import MACHINE as QST


@pytest.mark.parametrize("machine", [QST, CQG, FIRSTOCK], ids=["qst", "cqg", "firstock"])
def test_every_broker_runs_on_the_runtime_machine(machine: object) -> None:
    assert isinstance(machine, RuntimeMachine)


@pytest.mark.parametrize("where", ["condition", "before", "on_enter"])
def test_a_callback_given_by_name_is_refused_when_the_machine_is_built(where: str) -> None:
    states = [dict(s) for s in COMMON_STATES]
    edge: dict[str, object] = {"trigger": "start", "source": DISCONNECTED, "dest": "connecting"}
    if where == "condition":
        edge["conditions"] = ["is_ready"]
    elif where == "before":
        edge["before"] = ["prepare_login"]
    else:
        states[1]["on_enter"] = ["enter_connecting"]
    with pytest.raises(TypeError, match="callbacks must be functions"):
        build_machine(states, [edge], name="test")
