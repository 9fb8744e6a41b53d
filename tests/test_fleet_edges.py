"""The fleet's states and edges (``machines/_edges.fleet_edges``) in every broker's machine: they
add to each machine and change nothing it did before, a lease granted goes exactly where a start
goes, and the descriptors say which brokers hold leases. Each broker's own fleet behaviour is
tested with its machine (tests/test_<broker>_machine.py)."""

from __future__ import annotations

import dataclasses
import random
from typing import Any

import pytest
import test_runtime_equivalence as eq
from broker_models import CONFIGS, build_model

from brokergate.machines import STANDBY, TERMINAL_STATES, Command, LoginModel
from brokergate.machines._edges import FLEET_TRIGGERS, config_invalid, end_standby
from brokergate.machines._runtime import build_machine
from brokergate.machines.brokers import BROKERS
from brokergate.machines.cqg.throttle import DAY, LogonHistory

_IDS = [b.name for b in BROKERS]


def _is_fleet(row: Any) -> bool:
    sources = [row["source"]] if isinstance(row["source"], str) else row["source"]
    return row["trigger"] in FLEET_TRIGGERS or STANDBY in sources


def _fields(model: LoginModel) -> dict[str, Any]:
    """The model's fields but its clocks (each model of a pair has its own wall-clock lambda)."""
    return {name: value for name, value in eq._fields(model).items() if not callable(value)}


@pytest.mark.parametrize("broker", sorted(eq.BROKERS))
def test_without_a_coordinator_every_machine_does_what_it_did_before(broker: str) -> None:
    """The machine without its fleet rows and its standby state is the machine as it was: driven
    side by side through the random walks of the equivalence tests (every event but the fleet's,
    which only a fleet's coordinator feeds), the two do the same, step for step."""
    module, build, frames, start = eq.BROKERS[broker]
    rows = [row for row in module.TRANSITIONS if not _is_fleet(row)]
    assert len(rows) < len(module.TRANSITIONS)
    states = [state for state in module.STATES if state["name"] != STANDBY]
    assert len(states) == len(module.STATES) - 1
    before = build_machine(states, rows, name=f"before-{broker}")
    for seed in range(20):
        clock = eq._Clock()
        now_model, before_model = build(module.MACHINE, clock, seed), build(before, clock, seed)
        rng = random.Random(seed)
        asked = eq._Asked()
        for step in range(len(start) + eq.STEPS):
            if now_model.state in TERMINAL_STATES:
                now_model = build(module.MACHINE, clock, seed + step)
                before_model = build(before, clock, seed + step)
                asked = eq._Asked()
            event = start[step] if step < len(start) else eq._next_event(rng, now_model, asked,
                                                                          frames)
            clock.now += rng.choice([0.0, 0.5, 5.0, 120.0])
            out: list[Command] = now_model.handle(event)
            where = f"{broker} seed {seed} step {step} {event!r}"
            assert out == before_model.handle(event), where
            assert now_model.state == before_model.state != STANDBY, where
            assert _fields(now_model) == _fields(before_model), where
            asked.note(out)


@pytest.mark.parametrize("broker", BROKERS, ids=_IDS)
def test_a_lease_granted_goes_where_start_goes_on_the_same_conditions(broker: Any) -> None:
    starts = [row for row in broker.transitions if row["trigger"] == "start"]
    granted = [row for row in broker.transitions if row["trigger"] == "lease_granted"]
    assert all(row["source"] == STANDBY and row["before"][0] is end_standby for row in granted)
    # The broker's own ways to resume come after the invalid configuration's row, and are the
    # only rows that are not a start row's copy.
    copies = [row for row in granted if any(
        row["dest"] == s["dest"] and row.get("conditions") == s.get("conditions")
        and row["before"][1:] == s.get("before", []) for s in starts)]
    assert [(r["dest"], r.get("conditions")) for r in copies] == [
        (s["dest"], s.get("conditions")) for s in starts]
    assert config_invalid in granted[0]["conditions"]
    resumed = [row["dest"] for row in granted if row not in copies]
    assert resumed == (["restoring"] if broker.name == "cqg" else [])


@pytest.mark.parametrize("broker", BROKERS, ids=_IDS)
def test_only_a_broker_whose_logins_displace_each_other_holds_leases(broker: Any) -> None:
    assert broker.displaces == (broker.name in ("qst", "cqg"))
    lost = {(source, row["dest"]) for row in broker.transitions
            if row["trigger"] == "lease_lost"
            for source in ([row["source"]] if isinstance(row["source"], str) else row["source"])}
    if not broker.displaces:
        assert lost == set()
        return
    sources = {source for source, _ in lost}
    assert ("logging_out", "disconnected") in lost
    assert {"connecting", "awaiting_login_response", "authenticated", "backoff"} <= sources
    assert not sources & (TERMINAL_STATES | {"disconnected", STANDBY})
    assert all(dest == STANDBY for source, dest in lost if source != "logging_out")


@pytest.mark.parametrize("broker", BROKERS, ids=_IDS)
def test_the_descriptor_check_holds_the_fleet_edges_to_displaces(broker: Any) -> None:
    assert broker.check() == []
    flipped = dataclasses.replace(broker, displaces=not broker.displaces)
    assert flipped.check() == ["lease_lost edges go with displaces=True, and only with it"]
    bare = dataclasses.replace(broker, transitions=[r for r in broker.transitions
                                                    if not _is_fleet(r)], displaces=False)
    assert any("fleet_edges" in problem for problem in bare.check())


@pytest.mark.parametrize("broker", BROKERS, ids=_IDS)
def test_standby_is_a_state_of_every_machine_and_not_a_terminal_one(broker: Any) -> None:
    assert STANDBY in [state["name"] for state in broker.states]
    assert STANDBY not in TERMINAL_STATES
    assert isinstance(build_model(broker, CONFIGS[broker.name]()), LoginModel)


# --- a logon history handed from one process to the next ----------------------------------------


def test_a_logon_history_goes_to_another_clock_and_back() -> None:
    history = LogonHistory()
    history.attempted(100.0)
    history.succeeded(100.0)
    exported = history.export(200.0, 1_000_000.0)  # wall now = 1_000_200
    assert exported == {"last_attempt": 1_000_100.0, "successes": [1_000_100.0]}
    other = LogonHistory()
    other.merge(exported, 5000.0, 1_000_200.0 - 5000.0)  # another process, same wall time
    assert other.wait(5000.0, 300.0) == pytest.approx(200.0)  # attempted 100 s ago
    assert other.successes(5000.0) == 1


def test_a_merge_keeps_the_later_attempt_and_counts_a_logon_seen_twice_once() -> None:
    history = LogonHistory()
    history.attempted(500.0)
    history.succeeded(400.0)
    history.merge({"last_attempt": 450.0, "successes": [400.3, 300.0, 500.0 - DAY]}, 600.0, 0.0)
    assert history.wait(600.0, 200.0) == pytest.approx(100.0)  # 500 + 200 - 600: its own
    assert history.successes(600.0) == 2  # 300 and 400 (400.3 is 400 again; one a day old)
    history.merge({"last_attempt": 590.0}, 600.0, 0.0)
    assert history.wait(600.0, 200.0) == pytest.approx(190.0)


def test_a_time_ahead_of_now_counts_as_now() -> None:
    history = LogonHistory()
    history.merge({"last_attempt": 10_000.0, "successes": [10_000.0]}, 600.0, 0.0)
    assert history.wait(600.0, 60.0) == pytest.approx(60.0)
    assert history.successes(600.0) == 1


@pytest.mark.parametrize("exported", [
    {"last_attempt": "soon"}, {"last_attempt": True}, {"successes": "many"},
    {"successes": [1.0, float("nan")]}, {"last_attempt": 1.0, "successes": [None]},
])
def test_a_history_not_of_its_form_is_refused_and_changes_nothing(exported: Any) -> None:
    history = LogonHistory()
    history.attempted(5.0)
    with pytest.raises((TypeError, ValueError)):
        history.merge(exported, 600.0, 0.0)
    assert history.export(600.0, 0.0) == {"last_attempt": 5.0, "successes": []}
