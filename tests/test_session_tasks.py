"""Which tasks a session runs: none of its own while it waits. An event is fed at once by the task
that brings it, a connection's reader writes the frames its own frame calls for, and a worker task
exists only while commands are left that must be awaited. Still one event at a time, with its
commands in order. Seen from outside: trio's task tree and an instrument counting task steps."""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import trio
import trio.testing
from helpers import cqg_config, qst_config, session_kwargs

import brokergate.engine
from brokergate import FirstockConfig, MemoryTokenStore, Secret, Transitioned, open_session
from brokergate.qst import pb
from brokergate.simulators.cqg import CqgAccount, run_cqg_simulator
from brokergate.simulators.firstock import FirstockAccount, run_firstock_simulator
from brokergate.simulators.qst import QstAccount, run_qst_simulator

#: The trio task name of the run's alarm clock, as a user sees it in the task tree.
ALARM_CLOCK_TASK = "brokergate alarm clock"
#: Where the session layer's own code lives: a task whose coroutine is defined here is one of
#: brokergate's (a connection, an HTTP call, a worker), whatever the engine calls it.
ENGINE_DIR = Path(brokergate.engine.__file__).resolve().parent


@functools.cache
def _in_engine(filename: str) -> bool:
    return Path(filename).resolve().is_relative_to(ENGINE_DIR)


def engine_task(task: trio.lowlevel.Task) -> bool:
    """Whether ``task`` is one the session layer runs for a session (not its alarm clock)."""
    code = getattr(task.coro, "cr_code", None)
    return (code is not None and _in_engine(code.co_filename)
            and task.name != ALARM_CLOCK_TASK)


def live_engine_tasks() -> list[trio.lowlevel.Task]:
    """Every session-layer task alive in this run, found by walking the whole task tree."""
    found: list[trio.lowlevel.Task] = []
    todo = [trio.lowlevel.current_root_task()]
    while todo:
        task = todo.pop()
        found += [task] if engine_task(task) else []
        todo += [child for nursery in task.child_nurseries for child in nursery.child_tasks]
    return found


class _Steps(trio.abc.Instrument):
    """Counts the session layer's tasks spawned and the steps they take, the alarm clock's steps,
    and the steps of other tasks by name."""

    def __init__(self) -> None:
        self.engine_spawned = 0
        self.engine_steps = 0
        self.steps: dict[str, int] = {}

    def task_spawned(self, task: trio.lowlevel.Task) -> None:
        self.engine_spawned += engine_task(task)

    def before_task_step(self, task: trio.lowlevel.Task) -> None:
        if engine_task(task):
            self.engine_steps += 1
        else:
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
            assert len(live_engine_tasks()) == 1  # its connection's
            await trio.sleep(120)  # pings and their pongs come and go: still none
            assert session.state == "authenticated"
            await trio.testing.wait_all_tasks_blocked()
            assert len(live_engine_tasks()) == 1


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
    # No worker, and no session-layer task woke at all: trio-websocket's reader fed every
    # answer to the session in its own step (brokergate.engine._websocket), which is what a
    # raw client's reader costs.
    assert counter.engine_spawned == 0
    assert counter.engine_steps == 0
    readers = sum(n for name, n in counter.steps.items() if name.endswith("._reader_task"))
    assert readers >= 20


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
    assert counter.engine_spawned <= alarms < 10  # a worker per alarm at most, none per pong
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
    assert counter.engine_spawned == 1  # its connection's, and no worker
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
    assert counter.engine_spawned == 2  # the login call's and the socket's; no worker
