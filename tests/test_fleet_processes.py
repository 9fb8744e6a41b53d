"""The fleet across real processes: member processes (``bench._fleet_member``) on one
redis-server, against one simulator process (``bench._server``), as processes on several hosts
would run. Times are wall-clock, read from what each process printed."""

from __future__ import annotations

import time

import pytest
import trio
from redis_server import RedisServer

from bench._fleet_member import first_in, members
from bench._server import simulator_process, user
from brokergate.engine.fleet import new_fleet_key

#: Rates and takeover times against the real clock: run alone (tasks.py test runs these after
#: the parallel part, on a machine no other test is loading).
pytestmark = pytest.mark.serial

ENV = {"BROKERGATE_FLEET_KEY": new_fleet_key()}
#: The Firstock simulator's REST limit for the storm (requests per second).
RATE = 40.0


def settled(line: dict[str, object]) -> bool:
    return line.get("event") == "settled"


async def test_four_processes_log_200_firstock_accounts_in_under_one_limit(
        redis_server: RedisServer) -> None:
    groups = [[user(50 * p + n) for n in range(50)] for p in range(4)]
    async with simulator_process("firstock", "--accounts", "200", "--rate", str(RATE)) as sim, \
            members("firstock", sim.info, redis_server.url, groups, "--rps", str(RATE),
                    "--lease-ttl", "2", env=ENV) as fleet:
        results = [await member.wait_for(settled, within=60) for member in fleet]
        stats = await sim.command("stats")
    assert [r["authenticated"] for r in results] == [50, 50, 50, 50]
    assert stats["status_429"] == 0
    times = sorted(stats["request_times"])
    assert stats["logins_ok"] == 200
    rate = (len(times) - 1) / (times[-1] - times[0])
    assert rate >= 0.90 * RATE, f"{rate:.1f} requests/s of a {RATE:g}/s limit"


# CQG only: its takeover is the harder one (a restore with the holder's session token, and a
# logon spacing to respect); QST's leases are the same code, tested across gateways in
# test_fleet_sessions.py and across processes by the fleet benchmark.
@pytest.mark.parametrize("broker", ["cqg"])
async def test_one_login_for_three_processes_and_a_takeover_after_kill_9(
        broker: str, redis_server: RedisServer) -> None:
    """Three processes with the same user: one logs in, two wait as standbys without
    displacing it; the holder is killed (SIGKILL) and a standby is authenticated within the
    lease's TTL plus one backoff step (CQG: by restoring the holder's session, no new logon)."""
    ttl = 1.0
    async with simulator_process(broker, "--accounts", "1") as sim, \
            members(broker, sim.info, redis_server.url, [[user(0)]] * 3, "--lease-ttl",
                    str(ttl), env=ENV) as fleet:
        holder = await first_in(fleet, user(0), "authenticated")
        standbys = [m for m in fleet if m is not holder]
        for standby in standbys:
            await standby.wait_for(lambda line: line.get("state") == "standby")
        # Past the lease's TTL, and more: the holder renews it, the standbys keep waiting. (It
        # also gives the holder time to leave its handover, which it does just after logging
        # on: killed before that lands, a CQG successor logs on instead of restoring.)
        await trio.sleep(1.5)
        before = await sim.command("stats")
        assert [m.states(user(0))[-1] for m in standbys] == ["standby", "standby"]
        killed_at = time.time()
        holder.kill()
        successor = await first_in(standbys, user(0), "authenticated", within=10)
        took_over = next(line for line in successor.lines
                         if line.get("state") == "authenticated")["time"]
        await trio.sleep(0.5)
        after = await sim.command("stats")
        last = [m.states(user(0))[-1] for m in standbys]
    assert before.get("logons_ok", before.get("logins_ok")) == 1
    assert sorted(last) == ["authenticated", "standby"]
    elapsed = took_over - killed_at
    # The lease's TTL plus one backoff step (the first retry's delay, 1 s).
    assert elapsed <= ttl + 1.0, f"took over {elapsed:.2f} s after the kill"
    if broker == "cqg":
        assert (after["logons_ok"], after["restores_ok"]) == (1, 1)  # restored, not logged on
    else:
        assert after["logins_ok"] == 2
