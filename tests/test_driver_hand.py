"""A session has no task of its own while it waits: an event is fed at once by the task that
brings it (``hand``), a connection task writes the frames its own frame calls for, and a worker
task exists only while commands are left that must be awaited. Still one event at a time, with
its commands in order."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import trio
import trio.testing
from helpers import cqg_config, qst_config, session_kwargs

from brokergate import FirstockConfig, MemoryTokenStore, Secret, Transitioned, open_session
from brokergate.engine._alarms import TASK_NAME as ALARM_CLOCK_TASK
from brokergate.qst import pb
from brokergate.simulators.cqg import CqgAccount, run_cqg_simulator
from brokergate.simulators.firstock import FirstockAccount, run_firstock_simulator
from brokergate.simulators.qst import QstAccount, run_qst_simulator

WORKER_TASK = "brokergate.engine._driver.SessionDriver._work"
CONNECTION_TASK = "brokergate.engine._driver.SessionDriver._connection_task"


class _Steps(trio.abc.Instrument):
    """Counts the steps each task name takes, and the tasks of each name spawned."""

    def __init__(self) -> None:
        self.steps: dict[str, int] = {}
        self.spawned: dict[str, int] = {}

    def task_spawned(self, task: trio.lowlevel.Task) -> None:
        self.spawned[task.name] = self.spawned.get(task.name, 0) + 1

    def before_task_step(self, task: trio.lowlevel.Task) -> None:
        self.steps[task.name] = self.steps.get(task.name, 0) + 1

    def stop(self) -> None:
        """Stop counting (again is fine)."""
        with contextlib.suppress(KeyError):
            trio.lowlevel.remove_instrument(self)


@contextlib.contextmanager
def counting() -> Iterator[_Steps]:
    """Count task steps and spawns while the block runs (or until ``stop``)."""
    counter = _Steps()
    trio.lowlevel.add_instrument(counter)
    try:
        yield counter
    finally:
        counter.stop()


async def test_an_authenticated_session_waits_with_no_task_but_its_connection(
    clock: trio.testing.MockClock,
) -> None:
    async with run_qst_simulator([QstAccount("alice", "alice-pw")]) as sim:
        async with open_session(qst_config(sim.url, "alice"), **session_kwargs([])) as session:
            await session.wait_authenticated()
            await trio.testing.wait_all_tasks_blocked()
            nursery = session._driver._nursery
            assert nursery is not None
            assert [task.name for task in nursery.child_tasks] == [CONNECTION_TASK]
            await trio.sleep(120)  # pings and their pongs come and go: still none
            assert session.state == "authenticated"
            await trio.testing.wait_all_tasks_blocked()
            assert [task.name for task in nursery.child_tasks] == [CONNECTION_TASK]


async def test_answers_reach_requests_without_a_worker_task(
    clock: trio.testing.MockClock,
) -> None:
    async with run_qst_simulator([QstAccount("alice", "alice-pw")]) as sim:
        async with open_session(qst_config(sim.url, "alice"), **session_kwargs([])) as session:
            await session.wait_authenticated()
            with counting() as counter:
                for index in range(20):
                    answer = await session.request(pb.TranslateInstrumentSymbolRequest(
                        symbol_source=1, instrument_symbols=[f"ES{index}"]))
                    assert answer.records[0].symbol == f"ES{index}"
    assert counter.steps.get(WORKER_TASK, 0) == 0
    assert counter.steps.get(CONNECTION_TASK, 0) >= 20


async def test_a_frame_that_calls_for_a_frame_is_answered_by_the_connection_task(
    clock: trio.testing.MockClock,
) -> None:
    """A CQG server ping is answered with a pong, a frame to write: the connection task writes
    it to its own connection, with no worker task; the session stays up through many. Only the
    session's timers (its own pings) take a worker, one per alarm."""
    events: list[dict[str, Any]] = []
    account = CqgAccount("alice", "alice-pw", server_ping_interval=1.0)
    async with run_cqg_simulator([account]) as sim:
        async with open_session(cqg_config(sim.url, "alice"), **session_kwargs(events)) as session:
            await session.wait_authenticated()
            with counting() as counter:
                await trio.sleep(30)
            assert session.state == "authenticated"
        pongs = len(sim.stats.pongs)
    assert pongs >= 25
    alarms = counter.steps.get(ALARM_CLOCK_TASK, 0)
    assert counter.spawned.get(WORKER_TASK, 0) <= alarms < 10
    assert [e["dst"] for e in events if e.get("event") == "transition"][-1] == "disconnected"


async def test_a_login_wakes_its_waiter_once_not_at_every_state(
    clock: trio.testing.MockClock,
) -> None:
    """``wait_authenticated`` wakes when the session is authenticated (or over), not at each of
    the states a login passes through on the way."""
    async def waiter(session: Any, done: trio.Event) -> None:
        await session.wait_authenticated()
        done.set()

    events: list[dict[str, Any]] = []
    async with run_qst_simulator([QstAccount("alice", "alice-pw")]) as sim:
        with counting() as counter:
            async with open_session(qst_config(sim.url, "alice"),
                                    **session_kwargs(events)) as session, \
                    trio.open_nursery() as nursery:
                done = trio.Event()
                nursery.start_soon(waiter, session, done, name="waiter")
                await done.wait()
    passed = [e["dst"] for e in events if e.get("event") == "transition"]
    assert passed[:3] == ["connecting", "awaiting_login_response", "authenticated"]
    assert counter.steps["waiter"] == 2  # its start, and authenticated


async def test_a_login_takes_no_worker_and_a_late_subscriber_no_replay(
    clock: trio.testing.MockClock,
) -> None:
    """``Start`` is fed in the caller's task and the login frame written by the connection task:
    a QST login spawns no worker. What the start published is kept for a subscriber who comes
    at once (test_qst_session checks that one), and only until the session's first task runs."""
    async with run_qst_simulator([QstAccount("alice", "alice-pw")]) as sim:
        with counting() as counter:
            async with open_session(qst_config(sim.url, "alice"), **session_kwargs([])) as session:
                await session.wait_authenticated()
                counter.stop()
                late = session.events()
    assert counter.spawned.get(WORKER_TASK, 0) == 0
    assert counter.spawned.get(CONNECTION_TASK) == 1
    seen = [event.dst async for event in late if isinstance(event, Transitioned)]
    assert seen == ["logging_out", "disconnected"]


async def test_a_rest_answer_is_carried_out_by_its_own_call_task(
    clock: trio.testing.MockClock,
) -> None:
    """A Firstock login answer calls for a token to save and the socket to open: the HTTP call
    task that brought the answer does that work itself, so a login spawns no worker, and the
    token is in the store."""
    store = MemoryTokenStore()
    account = FirstockAccount("AA1", "AA1-pw", fixed_totp="123456")
    async with run_firstock_simulator([account]) as sim:
        config = FirstockConfig(
            base_url=sim.base_url, user_id="AA1", password=Secret("AA1-pw"),
            api_key=Secret(account.api_key), vendor_code=account.vendor_code,
            totp=Secret("123456"), socket="v2", socket_url=sim.socket_url)
        with counting() as counter:
            async with open_session(config, token_store=store,
                                    **session_kwargs([])) as session:
                await session.wait_authenticated()
                counter.stop()
                assert await store.load("firstock", "AA1") is not None
    assert counter.spawned.get(WORKER_TASK, 0) == 0
    assert counter.spawned.get("brokergate.engine._driver.SessionDriver._http_call") == 1
