"""Sessions of a fleet: gateways on one Redis coordinator (as processes on several hosts would
be), against the simulators and a real redis-server."""

from __future__ import annotations

import io
import json
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import trio
from helpers import cqg_config, qst_config
from redis_server import RedisServer

from brokergate import (
    AuditLog,
    FirstockConfig,
    Gateway,
    LoginFailed,
    Secret,
    Session,
    open_gateway,
)
from brokergate.engine.fleet import (
    ClaimTiming,
    RedisCoordinator,
    new_fleet_key,
    open_redis_coordinator,
)
from brokergate.simulators.cqg import CqgAccount, run_cqg_simulator
from brokergate.simulators.firstock import (
    FirstockAccount,
    FirstockSimulator,
    run_firstock_simulator,
)
from brokergate.simulators.qst import QstAccount, run_qst_simulator

KEY = new_fleet_key()


@asynccontextmanager
async def fleet(server: RedisServer, *, ttl: float = 1.0) -> AsyncIterator[RedisCoordinator]:
    async with open_redis_coordinator(server.url, env={"BROKERGATE_FLEET_KEY": KEY},
                                      lease_ttl=ttl, answer_within=0.5) as coordinator:
        coordinator.timing = ClaimTiming(ttl=ttl, grace=0.0)
        yield coordinator


@asynccontextmanager
async def processes(server: RedisServer, count: int) -> AsyncIterator[list[Gateway]]:
    """``count`` gateways, each on its own coordinator and link to Redis, as processes are."""
    async with AsyncExitStack() as stack:
        yield [await stack.enter_async_context(open_gateway(
                   coordinator=await stack.enter_async_context(fleet(server))))
               for _ in range(count)]


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


def firstock(sim: FirstockSimulator, user: str, password: str) -> FirstockConfig:
    acct = sim.account(user)
    assert acct is not None
    return FirstockConfig(base_url=sim.base_url, user_id=user, password=Secret(password),
                          api_key=Secret(acct.api_key), vendor_code=acct.vendor_code,
                          totp=Secret("123456"), socket="none")


async def test_processes_sharing_a_firstock_account_log_it_in_once(
        redis_server: RedisServer) -> None:
    account = FirstockAccount("AA1", "AA1-pw", fixed_totp="123456", login_delay=0.3)
    async with run_firstock_simulator([account]) as sim, \
            processes(redis_server, 3) as (gw1, gw2, gw3):
        config = firstock(sim, "AA1", "AA1-pw")
        async with gw1.session(config) as s1, gw2.session(config) as s2, \
                gw3.session(config) as s3:
            with trio.fail_after(10):
                for session in (s1, s2, s3):
                    await session.wait_authenticated()
            # One login; the two that waited took its day token (checked with userDetails).
            assert sim.stats.logins_ok == 1
            assert sim.stats.user_details == 2
    # Leaving does not log the fleet's day token out under the others.
    assert sim.stats.logouts == 0


async def test_a_wrong_password_is_tried_once_for_the_whole_fleet(
        redis_server: RedisServer) -> None:
    account = FirstockAccount("AA1", "AA1-pw", fixed_totp="123456", login_delay=0.2)
    async with run_firstock_simulator([account]) as sim, \
            processes(redis_server, 3) as (gw1, gw2, gw3):
        config = firstock(sim, "AA1", "not-the-password")
        async with gw1.session(config) as s1, gw2.session(config) as s2, \
                gw3.session(config) as s3:
            outcomes = []
            for session in (s1, s2, s3):
                with trio.fail_after(10), pytest.raises(LoginFailed) as failed:
                    await session.wait_authenticated()
                outcomes.append(failed.value)
        assert len(sim.stats.login_failures) == 1  # the broker saw one wrong password, not three
        assert {e.reason for e in outcomes} == {outcomes[0].reason}
        assert sum("another session of the fleet" in (e.detail or "") for e in outcomes) == 2


#: The least-privileged ACL docs/fleet.md recommends for the fleet's Redis user.
FLEET_ACL = ("~brokergate:*", "+@read", "+@write", "+@scripting", "+ping", "+time", "+info",
             "+hello", "+client|setname")


async def test_a_fleet_session_runs_as_the_documented_least_privileged_acl_user(
        redis_server: RedisServer, tmp_path: Path) -> None:
    assert redis_server.command("ACL", "SETUSER", "fleet", "on", ">fleet-pw", *FLEET_ACL) \
        .startswith(b"+OK")
    password = tmp_path / "redis-password"
    password.write_text("fleet-pw\n")
    env = {"BROKERGATE_FLEET_KEY": KEY, "BROKERGATE_REDIS_USERNAME": "fleet"}
    async with run_qst_simulator([QstAccount("alice", "pw")]) as sim, \
            open_redis_coordinator(redis_server.url, env=env, password_file=password) as one:
        one.timing = ClaimTiming(ttl=2.0, grace=0.0)
        async with open_gateway(coordinator=one) as gw, \
                gw.session(qst_config(sim.url, "alice", "pw")) as session:
            with trio.fail_after(5):
                await session.wait_authenticated()


async def test_a_login_flight_outlasting_its_ttl_is_still_one_login(
        redis_server: RedisServer) -> None:
    """The flight is renewed while its login runs: a login slower than the claim's TTL does
    not let a second process log the account in beside it."""
    account = FirstockAccount("AA1", "AA1-pw", fixed_totp="123456", login_delay=1.6)
    async with run_firstock_simulator([account]) as sim, \
            fleet(redis_server, ttl=1.0) as one, fleet(redis_server, ttl=1.0) as two, \
            open_gateway(coordinator=one) as gw1, open_gateway(coordinator=two) as gw2:
        config = firstock(sim, "AA1", "AA1-pw")
        async with gw1.session(config) as s1:
            await until(lambda: s1.state not in ("disconnected", "standby"))
            async with gw2.session(config) as s2:
                with trio.fail_after(10):
                    await s1.wait_authenticated()
                    await s2.wait_authenticated()
                assert sim.stats.logins_ok == 1


async def test_cqg_logon_spacing_holds_across_the_fleet(redis_server: RedisServer) -> None:
    """A logs on and leaves (logging off: nothing to restore); B, which waited, must log on
    again, and waits out the user's logon spacing from A's logon, not from its own first."""
    spacing = 2.0
    async with run_cqg_simulator([CqgAccount("carol", "carol-pw")]) as sim, \
            fleet(redis_server) as one, fleet(redis_server) as two, \
            open_gateway(coordinator=one) as gw1, open_gateway(coordinator=two) as gw2:
        config = cqg_config(sim.url, "carol", min_logon_interval=spacing)
        release = trio.Event()
        holders: list[Session] = []
        async with trio.open_nursery() as nursery:
            nursery.start_soon(hold, lambda: gw1.session(config), release, holders)
            await until(lambda: bool(holders) and holders[0].state == "authenticated")
            first_logon = trio.current_time()
            async with gw2.session(config) as second:
                await until(lambda: second.state == "standby")
                release.set()
                with trio.fail_after(spacing + 3):
                    await second.wait_authenticated()
                second_logon = trio.current_time()
    assert len(sim.stats.logon_requests) == 2
    assert second_logon - first_logon >= spacing - 0.05


async def test_every_key_of_a_fleet_carries_its_prefix(redis_server: RedisServer) -> None:
    """Two fleets can share one Redis: each keeps its claims, limits, tokens and boot marker
    under its own prefix."""
    account = FirstockAccount("AA1", "AA1-pw", fixed_totp="123456")
    async with run_firstock_simulator([account]) as sim, open_redis_coordinator(
            redis_server.url, env={"BROKERGATE_FLEET_KEY": KEY}, prefix="desk7") as desk:
        desk.timing = ClaimTiming(ttl=1.0, grace=0.0)
        async with open_gateway(coordinator=desk) as gw, \
                gw.session(firstock(sim, "AA1", "AA1-pw")) as session:
            with trio.fail_after(5):
                await session.wait_authenticated()
            keys = redis_server.command("KEYS", "*").decode()
    names = [line for line in keys.split("\r\n") if line and line[0] not in "*$"]
    assert names and all(name.startswith("desk7:") for name in names), names
    assert any(":limit:" in name for name in names)
