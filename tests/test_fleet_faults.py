"""The fleet's fault table (docs/fleet.md), each row against a real redis-server: Redis out of
reach at the start, lost mid-day, restarted empty."""

from __future__ import annotations

import socket

import pytest
import trio
from helpers import qst_config
from redis_server import RedisServer
from test_fleet_sessions import KEY, fleet, until

from brokergate import ConfigurationError, NotAuthenticated, Session, open_gateway
from brokergate.engine.fleet import ClaimTiming, CoordinatorUnavailable, new_fleet_key
from brokergate.qst import pb
from brokergate.simulators.qst import QstAccount, QstSimulator, run_qst_simulator


def translate() -> pb.TranslateInstrumentSymbolRequest:
    return pb.TranslateInstrumentSymbolRequest(symbol_source=1, instrument_symbols=["ESZ6"])


def closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


async def test_redis_out_of_reach_at_the_start_is_named(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BROKERGATE_FLEET_KEY", KEY)
    port = closed_port()
    with pytest.raises(CoordinatorUnavailable, match=f"127.0.0.1:{port}.*unreachable"):
        async with open_gateway(coordinator=f"redis://127.0.0.1:{port}/0"):
            pytest.fail("a gateway opened on a Redis that is not there")


@pytest.mark.parametrize(("url", "complaint"), [
    ("redis://10.1.2.3:6379/0", "loopback"),
    ("redis://fleet:hunter2@127.0.0.1:6379/0", "password"),
    ("http://127.0.0.1:6379", "rediss://"),
])
async def test_a_coordinator_url_mistake_is_the_configurations(
        url: str, complaint: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BROKERGATE_FLEET_KEY", KEY)
    with pytest.raises(ConfigurationError, match=complaint) as refused:
        async with open_gateway(coordinator=url):
            pytest.fail("opened")
    assert "hunter2" not in str(refused.value)


async def test_no_fleet_key_is_the_configurations(redis_server: RedisServer,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("BROKERGATE_FLEET_KEY", raising=False)
    monkeypatch.delenv("BROKERGATE_FLEET_KEY_FILE", raising=False)
    with pytest.raises(ConfigurationError, match="fleet key"):
        async with open_gateway(coordinator=redis_server.url):
            pytest.fail("opened")


async def test_redis_lost_mid_day_keeps_the_session_up_and_writes_closed(
        redis_server: RedisServer) -> None:
    """Redis goes away: the session stays authenticated and keeps its connection, but once its
    lease can no longer be confirmed it writes nothing (the application is told); Redis comes
    back empty: the holder re-establishes its lease, writes again, and a standby never logs in
    beside it."""
    with trio.fail_after(30):
        await _lost_mid_day(redis_server)


async def _lost_mid_day(redis_server: RedisServer) -> None:
    async with run_qst_simulator([QstAccount("alice", "pw")]) as sim, \
            fleet(redis_server) as one, fleet(redis_server) as two:
        one.timing = two.timing = ClaimTiming(ttl=1.0, grace=1.0)
        config = qst_config(sim.url, "alice", "pw")
        async with open_gateway(coordinator=one) as gw1, open_gateway(coordinator=two) as gw2, \
                gw1.session(config) as holder:
            await holder.wait_authenticated()  # (after the new Redis's grace period)
            async with gw2.session(config) as standby:
                await until(lambda: standby.state == "standby")
                await _while_redis_is_lost(redis_server, sim, holder, standby)


async def _while_redis_is_lost(redis_server: RedisServer, sim: QstSimulator, holder: Session,
                               standby: Session) -> None:
    await holder.request(translate())
    answered = sim.stats.requests
    redis_server.stop()
    await trio.sleep(1.5)  # past the lease's TTL with no renewal
    assert holder.state == "authenticated"  # still up, still connected
    with pytest.raises(NotAuthenticated, match="lease"):
        await holder.request(translate())
    assert sim.stats.requests == answered  # nothing reached the broker
    redis_server.start()  # empty: the grace period keeps the standby out
    with trio.fail_after(3):
        while True:
            try:
                await holder.request(translate())
                break
            except NotAuthenticated:
                await trio.sleep(0.1)
    await trio.sleep(1.5)  # past the grace period: the standby still waits
    assert standby.state == "standby"
    assert holder.state == "authenticated"
    assert sim.stats.logins_ok == 1


async def test_a_session_opened_while_redis_is_away_waits_for_it(
        redis_server: RedisServer) -> None:
    async with run_qst_simulator([QstAccount("alice", "pw")]) as sim, \
            fleet(redis_server) as one:
        one.timing = ClaimTiming(ttl=1.0, grace=0.0)
        async with open_gateway(coordinator=one) as gw:
            redis_server.stop()
            async with gw.session(qst_config(sim.url, "alice", "pw")) as session:
                await until(lambda: session.state == "standby")
                assert "not known yet" in (session.outcome()["detail"] or "")
                await trio.sleep(1.0)
                assert sim.stats.logins_ok == 0  # nothing granted unchecked
                redis_server.start()
                with trio.fail_after(5):
                    await session.wait_authenticated()
            assert sim.stats.logins_ok == 1


def test_the_fleet_key_is_new_each_time() -> None:
    assert new_fleet_key() != new_fleet_key()
