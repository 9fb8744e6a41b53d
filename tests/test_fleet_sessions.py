"""Sessions of a fleet: gateways on one Redis coordinator (as processes on several hosts would
be), against the simulators and a real redis-server."""

from __future__ import annotations

import io
import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import trio
from helpers import qst_config
from redis_server import RedisServer

from brokergate import AuditLog, Session, open_gateway
from brokergate.engine.fleet import (
    ClaimTiming,
    RedisCoordinator,
    new_fleet_key,
    open_redis_coordinator,
)
from brokergate.simulators.qst import QstAccount, run_qst_simulator

KEY = new_fleet_key()


@asynccontextmanager
async def fleet(server: RedisServer, *, ttl: float = 1.0) -> AsyncIterator[RedisCoordinator]:
    async with open_redis_coordinator(server.url, env={"BROKERGATE_FLEET_KEY": KEY},
                                      lease_ttl=ttl, answer_within=0.5) as coordinator:
        coordinator.timing = ClaimTiming(ttl=ttl, grace=0.0)
        yield coordinator


def trail(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines() if line]


async def until(condition: Callable[[], bool], within: float = 5.0) -> None:
    with trio.fail_after(within):
        while not condition():  # noqa: ASYNC110 - polls states across two gateways
            await trio.sleep(0.01)


async def hold(session_opened: Callable[[], Any], release: trio.Event,
               out: list[Session]) -> None:
    async with session_opened() as session:
        out.append(session)
        await release.wait()


async def test_two_processes_with_one_qst_user_never_log_in_together(
        redis_server: RedisServer) -> None:
    audit_one, audit_two = io.StringIO(), io.StringIO()
    config = qst_config("ws://127.0.0.1:1", "alice", "pw")
    async with run_qst_simulator([QstAccount("alice", "pw")]) as sim, \
            fleet(redis_server) as one, fleet(redis_server) as two, \
            open_gateway(coordinator=one, audit=AuditLog.to_stream(audit_one)) as gw1, \
            open_gateway(coordinator=two, audit=AuditLog.to_stream(audit_two)) as gw2, \
            trio.open_nursery() as nursery:
        config = qst_config(sim.url, "alice", "pw")
        release_first = trio.Event()
        firsts: list[Session] = []
        nursery.start_soon(hold, lambda: gw1.session(config), release_first, firsts)
        await until(lambda: bool(firsts) and firsts[0].state == "authenticated")
        async with gw2.session(config) as second:
            await until(lambda: second.state == "standby")
            await trio.sleep(1.5)  # more than the lease's TTL: the holder renews it
            assert second.state == "standby"
            assert sim.stats.logins_ok == 1
            assert firsts[0].state == "authenticated"
            release_first.set()  # the holder leaves and lets the lease go
            with trio.fail_after(3):
                await second.wait_authenticated()
            assert sim.stats.logins_ok == 2
    first_trail, second_trail = trail(audit_one), trail(audit_two)
    granted = [e for e in first_trail + second_trail if e["event"] == "claim_granted"]
    assert len(granted) == 2 and granted[0]["fence"] < granted[1]["fence"]
    assert [e["dst"] for e in second_trail if e["event"] == "transition"][:2] == [
        "standby", "connecting"]
    # The holder was never displaced: it logged out when its block ended.
    assert all(e.get("dst") != "displaced" for e in first_trail)
