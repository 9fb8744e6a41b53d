"""A gateway's alarm clock: it rings for session drivers at their deadlines (engine/_alarms.py)."""

from __future__ import annotations

import pytest
import trio
import trio.testing
from helpers import qst_config, session_kwargs

from brokergate import open_gateway
from brokergate.engine._alarms import TASK_NAME, AlarmClock
from brokergate.simulators.qst import QstAccount, run_qst_simulator


class _Sleeper:
    def __init__(self, rang: list[tuple[str, float, float]], name: str) -> None:
        self.rang, self.name, self.alarm_wanted = rang, name, True

    def alarm(self, deadline: float) -> None:
        self.rang.append((self.name, deadline, trio.current_time()))


async def test_alarms_ring_in_deadline_order_at_their_deadlines(
    clock: trio.testing.MockClock,
) -> None:
    rang: list[tuple[str, float, float]] = []
    async with open_gateway() as gateway:
        alarms = gateway.alarms
        start = trio.current_time()
        for name, after in [("c", 30.0), ("a", 10.0), ("b", 20.0)]:
            alarms.wake_at(start + after, _Sleeper(rang, name))
        await trio.sleep(25)
        assert [(name, at - start) for name, _, at in rang] == [("a", 10.0), ("b", 20.0)]
        await trio.sleep(10)
        assert [name for name, _, _ in rang] == ["a", "b", "c"]
        assert all(deadline == at for _, deadline, at in rang)
        assert len(alarms) == 0


async def test_an_earlier_alarm_brings_the_clock_forward(clock: trio.testing.MockClock) -> None:
    rang: list[tuple[str, float, float]] = []
    async with open_gateway() as gateway:
        alarms = gateway.alarms
        start = trio.current_time()
        alarms.wake_at(start + 100.0, _Sleeper(rang, "late"))
        await trio.sleep(1)  # the clock is asleep until +100
        alarms.wake_at(start + 5.0, _Sleeper(rang, "early"))
        await trio.sleep(10)
        assert [(name, at - start) for name, _, at in rang] == [("early", 5.0)]


def _task_names() -> list[str]:
    found: list[str] = []

    def walk(task: trio.lowlevel.Task) -> None:
        found.append(task.name)
        for nursery in task.child_nurseries:
            for child in nursery.child_tasks:
                walk(child)

    walk(trio.lowlevel.current_root_task())
    return found


async def test_one_clock_per_gateway_in_its_own_nursery_not_a_system_task() -> None:
    async with open_gateway() as first, open_gateway() as second:
        await trio.lowlevel.checkpoint()
        assert first.alarms is not second.alarms
        assert _task_names().count(TASK_NAME) == 2
        system = trio.lowlevel.current_root_task().child_nurseries
        assert TASK_NAME not in [t.name for n in system for t in n.child_tasks]
    assert TASK_NAME not in _task_names()  # gone with the gateways


class _Broken:
    alarm_wanted = True

    def alarm(self, deadline: float) -> None:
        raise RuntimeError("a bug in a driver's alarm")


async def test_a_failing_alarm_ends_its_gateways_block_not_the_run(
    clock: trio.testing.MockClock,
) -> None:
    with pytest.raises(RuntimeError, match="a bug in a driver's alarm"):
        async with open_gateway() as gateway:
            gateway.alarms.wake_at(trio.current_time() + 1.0, _Broken())
            await trio.sleep(10)
    await trio.sleep(1)  # the run goes on


def test_ended_sleepers_are_dropped_once_half_the_heap_is_theirs() -> None:
    alarms = AlarmClock()
    live = [_Sleeper([], f"live{i}") for i in range(4)]
    dead = [_Sleeper([], f"dead{i}") for i in range(5)]
    for i, sleeper in enumerate(live + dead):
        alarms.wake_at(100.0 + i, sleeper)
    for sleeper in dead[:4]:
        sleeper.alarm_wanted = False
        alarms.forget()
    assert len(alarms) == 9  # 4 dead of 9: not yet half
    dead[4].alarm_wanted = False
    alarms.forget()
    assert len(alarms) == 4  # 5 of 9: cleaned, and only the living are left
    assert {entry[2] for entry in alarms._heap} == set(live)


async def test_sessions_keep_few_alarms_however_often_their_timers_move(
    clock: trio.testing.MockClock,
) -> None:
    """Pings every 2 s for 2 minutes restart each session's timers 60 times; the heap stays at a
    few entries per session, and the sessions' entries go once they end."""
    accounts = [QstAccount(f"u{i}", "pw") for i in range(5)]
    async with run_qst_simulator(accounts) as sim, open_gateway(**session_kwargs([])) as gw:
        alarms = gw.alarms
        sizes: list[int] = []
        async with trio.open_nursery() as nursery:
            async def one(user: str, ready: trio.Event, release: trio.Event) -> None:
                config = qst_config(sim.url, user, password="pw", ping_interval=2.0)
                async with gw.session(config) as session:
                    await session.wait_authenticated()
                    ready.set()
                    await release.wait()

            release = trio.Event()
            for account in accounts:
                ready = trio.Event()
                nursery.start_soon(one, account.user_name, ready, release)
                await ready.wait()
            for _ in range(24):
                await trio.sleep(5)
                sizes.append(len(alarms))
            release.set()
        assert max(sizes) <= 3 * len(accounts)
        await trio.sleep(120)  # past every deadline the ended sessions had asked for
        assert len(alarms) == 0
