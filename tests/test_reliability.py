"""The reliability properties over seeded runs through the fault proxy (the short version of
``python3 tasks.py reliability``), and proof that the checks catch what they look for."""

from __future__ import annotations

import json
from contextlib import asynccontextmanager
from typing import Any

import pytest
import trio
import trio.testing

from brokergate import AuditLog, QstConfig, Secret, Session, open_session
from brokergate.simulators.faults import Fault, FaultPlan
from brokergate.simulators.qst import QstAccount, run_qst_simulator
from reliability import properties, report
from reliability.properties import BROKERS, Behaviour, Qst, check_delivery, run_one
from reliability.tally import Tally

#: Seeds per broker in the test suite; the long run uses 200 or more.
SEEDS = 30


@pytest.mark.parametrize("broker", sorted(BROKERS))
async def test_properties_hold_over_seeded_fault_runs(
    broker: str, clock: trio.testing.MockClock
) -> None:
    tally = Tally()
    for seed in range(SEEDS):
        await run_one(BROKERS[broker], seed, tally)
    assert tally.problems == []
    assert tally.sessions[broker] == tally.expected[broker] == SEEDS
    assert not (+tally.violations or +tally.leaks or +tally.secret_hits
                or +tally.credential_retries or +tally.extra_logons)
    assert tally.clean
    # The runs did meet trouble: most kinds of fault took effect somewhere.
    assert len(tally.faults) >= 5, tally.faults
    # And they streamed data: some of it to a slow consumer that filled its buffer (the session
    # stopped reading), some of it on connections a fault cut short; nothing lost, duplicated
    # or out of order (``clean`` says so).
    assert tally.streams[broker] >= SEEDS // 3
    assert tally.frames_received[broker] >= 10 * tally.streams[broker] // 2
    assert tally.slow_consumers[broker] >= 1 and tally.reading_paused[broker] >= 1


@pytest.mark.parametrize(("delivered", "excused", "found"), [
    # (lost, duplicated, out of order)
    ([(0, 0), (0, 1), (0, 2), (1, 0), (1, 1)], (), (0, 0, 0)),
    ([(0, 0), (0, 2), (1, 0), (1, 1)], (), (1, 0, 0)),  # a gap
    ([(0, 0), (0, 1), (1, 0), (1, 1)], (), (1, 0, 0)),  # a tail, on a connection not cut
    ([(0, 0), (0, 1), (1, 0)], (0, 1), (0, 0, 0)),  # tails whose connections were cut
    ([(0, 0), (0, 2), (1, 0)], (0, 1), (1, 0, 0)),  # a gap is a loss even then
    ([(0, 0), (0, 1), (0, 1), (0, 2), (1, 0), (1, 1)], (), (0, 1, 0)),
    ([(0, 1), (0, 0), (0, 2), (1, 0), (1, 1)], (), (0, 0, 1)),
    ([(0, 0), (0, 1), (1, 0), (0, 2), (1, 1)], (), (0, 0, 1)),  # an old stream after a new one
    ([(0, 0), (0, 1), (0, 2), (0, 3), (1, 0), (1, 1)], (), (0, 0, 1)),  # never sent
])
def test_the_data_check_catches_a_lost_duplicated_or_reordered_frame(
    delivered: list[tuple[int, int]], excused: tuple[int, ...], found: tuple[int, int, int]
) -> None:
    result = check_delivery(delivered, {0: 3, 1: 2}, excused)
    assert (result.lost, result.duplicated, result.out_of_order) == found
    assert bool(result.problems) == any(found)


def test_frames_a_simulator_threw_away_unwritten_are_not_owed() -> None:
    # Stream 0's frames from 1 on were thrown away: frame 0 is owed, and nothing after it.
    assert check_delivery([(0, 0), (1, 0), (1, 1)], {0: 3, 1: 2}, owed={0: 1}).problems == []
    missed = check_delivery([(1, 0), (1, 1)], {0: 3, 1: 2}, owed={0: 1})
    assert missed.lost == 1 and missed.problems


class _Overflowing(Qst):
    """A QST run whose simulator cuts off any connection with more than 200 bytes queued (its
    4102 rule): every stream overflows it at once, and what was queued is thrown away."""

    def __init__(self) -> None:
        self.behaviours = (Behaviour("good", "authenticated"),)

    @asynccontextmanager  # type: ignore[arg-type]
    async def world(self, behaviour: Behaviour, plan: FaultPlan, seed: int) -> Any:
        user = properties._user(seed)
        async with run_qst_simulator([QstAccount(user, "right-pw-Q7")],
                                     outbound_queue_limit=200) as sim, properties._proxied(
                [(sim.port, FaultPlan.clean())], seed) as (proxy,):
            config = QstConfig(url=proxy.url(sim.url), user_name=user,
                               password=Secret("right-pw-Q7"), client_id="reliability",
                               backoff=properties.BACKOFF, **properties.TIMEOUTS)
            yield properties.World(config, [proxy], proxy, sim, user=user)


async def test_a_stream_a_simulator_cut_off_owes_only_what_was_written(
    clock: trio.testing.MockClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(properties.DataPlan, "draw",
                        classmethod(lambda cls, broker, seed: cls(60)))
    tally = Tally()
    result = await run_one(_Overflowing(), 1, tally)
    assert tally.problems == [] and tally.clean, result.audit
    assert tally.streams["qst"] == tally.streams_cut["qst"] == 2
    assert tally.frames_received["qst"] < tally.frames_sent["qst"]


class _Forgetful(Qst):
    """A QST run whose subscriber misses one frame of the first stream, as a session that lost
    it would make it."""

    def __init__(self) -> None:
        self.behaviours = (Behaviour("good", "authenticated"),)

    @asynccontextmanager  # type: ignore[arg-type]
    async def world(self, behaviour: Behaviour, plan: FaultPlan, seed: int) -> Any:
        async with super().world(behaviour, FaultPlan.clean(), seed) as world:
            yield world

    def numbered(self, message: Any) -> tuple[int, int] | None:
        numbers = super().numbered(message)
        return None if numbers == (0, 3) else numbers


async def test_a_run_whose_subscriber_misses_a_frame_records_it_for_replay(
    clock: trio.testing.MockClock,
) -> None:
    tally = Tally()
    result = await run_one(_Forgetful(), 2, tally)
    assert tally.frames_lost["qst"] == 1 and not tally.clean
    assert tally.problems == [f"qst: {result.label()}: {result.problems[0]}"]
    assert "seed 2 (" in tally.problems[0] and "frames never received" in tally.problems[0]


class _Throttled(Qst):
    """A QST run whose first connection crawls at 50 bytes a second, so that the pong waits
    behind the stream and the session gives up on the connection before the stream is read."""

    def __init__(self) -> None:
        self.behaviours = (Behaviour("good", "authenticated"),)

    @asynccontextmanager  # type: ignore[arg-type]
    async def world(self, behaviour: Behaviour, plan: FaultPlan, seed: int) -> Any:
        crawl = FaultPlan.scripted([Fault("throttle", "down", rate=50)])
        async with super().world(behaviour, crawl, seed) as world:
            yield world


async def test_a_stream_whose_connection_ended_early_is_excused_its_tail_only(
    clock: trio.testing.MockClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(properties.DataPlan, "draw",
                        classmethod(lambda cls, broker, seed: cls(120)))
    tally = Tally()
    await run_one(_Throttled(), 1, tally)
    assert tally.problems == [] and tally.clean
    # The first stream was cut short (received in part, with no gap), the one after the
    # strike was received whole.
    assert tally.streams["qst"] == 2 and tally.streams_cut["qst"] == 1
    assert 120 < tally.frames_received["qst"] < 240


def _trail(*steps: tuple[str, str, str | None]) -> str:
    return "\n".join(json.dumps({"event": "transition", "src": src, "dst": dst, "reason": reason})
                     for src, dst, reason in steps)


def test_a_login_after_an_invalid_credentials_answer_is_counted() -> None:
    honest = _trail(("disconnected", "connecting", None),
                    ("awaiting_login_response", "failed", "invalid_credentials"))
    assert properties._credential_retries(honest) == 0
    retried = _trail(("awaiting_login_response", "backoff", "invalid_credentials"),
                     ("backoff", "connecting", "invalid_credentials"))
    assert properties._credential_retries(retried) == 1


class _Leaky(Qst):
    """A QST run whose application request misbehaves in a way the checks must catch."""

    def __init__(self, how: str) -> None:
        self.how = how
        self.behaviours = (Behaviour("good", "authenticated"),)

    @asynccontextmanager  # type: ignore[arg-type]
    async def world(self, behaviour: Behaviour, plan: FaultPlan, seed: int) -> Any:
        async with super().world(behaviour, FaultPlan.clean(), seed) as world:
            yield world

    async def use(self, session: Session) -> None:
        await super().use(session)
        if self.how == "task":
            trio.lowlevel.spawn_system_task(trio.sleep_forever)
        elif self.how == "secret":
            raise RuntimeError("the password was right-pw-Q7")


@pytest.mark.parametrize(("how", "column"), [("task", "leaks"), ("secret", "secret_hits")])
async def test_the_checks_catch_a_leaked_task_and_a_leaked_secret(
    how: str, column: str, clock: trio.testing.MockClock
) -> None:
    tally = Tally()
    await run_one(_Leaky(how), 0, tally)
    assert getattr(tally, column)["qst"] >= 1
    assert not tally.clean
    assert tally.problems


async def test_a_cqg_session_struck_after_logon_is_restored_not_logged_on_again(
    clock: trio.testing.MockClock,
) -> None:
    broker = BROKERS["cqg"]
    async with broker.world(Behaviour("good", "authenticated"), FaultPlan.clean(), 0) as world:
        async with open_session(world.config, audit=AuditLog.disabled()) as session:
            await session.wait_authenticated()
            for kind in ("reset", "stall", "truncate", "drop"):
                assert world.strike_proxy.strike(kind) == 1
                with trio.fail_after(60):
                    async with session.events() as events:
                        async for event in events:
                            if getattr(event, "dst", None) == "authenticated":
                                break
            outcome = session.outcome()
        assert (outcome["logons"], outcome["restores"]) == (1, 4)
        assert world.sim.stats.violations == []


async def test_logins_survive_one_byte_writes_and_a_crawl(clock: trio.testing.MockClock) -> None:
    """Every frame split into single bytes both ways, throttled to 500 B/s: still one login."""
    slow = FaultPlan.scripted(after=[Fault("split", "down", piece=1), Fault("split", "up", piece=1),
                                     Fault("throttle", "down", rate=500)])
    for name in ("qst", "cqg"):
        async with BROKERS[name].world(Behaviour("good", "authenticated"), slow, 0) as world:
            async with open_session(world.config, audit=AuditLog.disabled()) as session:
                await session.wait_authenticated()
                assert session.outcome()["attempts"] == 1
                await BROKERS[name].use(session)
            assert world.proxies[0].stats.injected["split"] >= 2


def test_the_report_names_every_column() -> None:
    tally = Tally()
    tally.sessions["qst"] = tally.expected["qst"] = 3
    tally.faults["reset"] = 2
    tally.fuzzed["QST frames"] = 10
    text = report.render(tally, command="python3 tasks.py reliability", seeds=3, elapsed=1.0)
    assert "| QST | 3 | 0 | 3 | 0 | 0 | 0 | 0 | n/a |" in text
    assert "| data path |" not in text  # no streams, no table
    tally.streams["qst"], tally.frames_sent["qst"], tally.frames_received["qst"] = 2, 50, 47
    tally.streams_cut["qst"] = tally.slow_consumers["qst"] = tally.reading_paused["qst"] = 1
    text = report.render(tally, command="python3 tasks.py reliability", seeds=3, elapsed=1.0)
    assert ("| data path | streams | frames sent | frames received | streams cut short "
            "| slow consumers | reading paused | lost | duplicated | out of order |") in text
    assert "| QST | 2 | 50 | 47 | 1 | 1 | 1 | 0 | 0 | 0 |" in text
    assert "| count | 0 | 0 | 0 | 0 | 2 | 0 | 0 | 2 |" in text
    assert "| QST frames | 10 |" in text
