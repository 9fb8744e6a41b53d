"""A frame that reaches a parked driver is fed at once by the connection task (``hand``): no hop
through the driver's task, and still one event at a time with its commands in order."""

from __future__ import annotations

from typing import Any

import trio
import trio.testing
from helpers import cqg_config, qst_config, session_kwargs

from engine import open_session
from machines.qst import qst_pb2 as pb
from simulators.cqg import CqgAccount, run_cqg_simulator
from simulators.qst import QstAccount, run_qst_simulator

DRIVER_TASK = "engine._driver.SessionDriver.run"


class _Steps(trio.abc.Instrument):
    """Counts the steps each task name takes."""

    def __init__(self) -> None:
        self.steps: dict[str, int] = {}

    def before_task_step(self, task: trio.lowlevel.Task) -> None:
        self.steps[task.name] = self.steps.get(task.name, 0) + 1


async def test_answers_reach_requests_without_waking_the_driver(
    clock: trio.testing.MockClock,
) -> None:
    async with run_qst_simulator([QstAccount("alice", "alice-pw")]) as sim:
        async with open_session(qst_config(sim.url, "alice"), **session_kwargs([])) as session:
            await session.wait_authenticated()
            counter = _Steps()
            trio.lowlevel.add_instrument(counter)
            try:
                for index in range(20):
                    answer = await session.request(pb.TranslateInstrumentSymbolRequest(
                        symbol_source=1, instrument_symbols=[f"ES{index}"]))
                    assert answer.records[0].symbol == f"ES{index}"
            finally:
                trio.lowlevel.remove_instrument(counter)
    assert counter.steps.get(DRIVER_TASK, 0) == 0
    assert counter.steps.get("engine._driver.SessionDriver._connection_task", 0) >= 20


async def test_a_frame_whose_commands_must_wait_leaves_them_to_the_driver_in_order(
    clock: trio.testing.MockClock,
) -> None:
    """A CQG server ping is answered with a pong (a frame to write: the driver's task writes
    it); the session stays up through many, with every pong sent in order."""
    events: list[dict[str, Any]] = []
    account = CqgAccount("alice", "alice-pw", server_ping_interval=1.0)
    async with run_cqg_simulator([account]) as sim:
        async with open_session(cqg_config(sim.url, "alice"), **session_kwargs(events)) as session:
            await session.wait_authenticated()
            await trio.sleep(30)
            assert session.state == "authenticated"
        pongs = len(sim.stats.pongs)
    assert pongs >= 25
    assert [e["dst"] for e in events if e.get("event") == "transition"][-1] == "disconnected"
