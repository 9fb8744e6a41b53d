"""The fleet-wide REST rate limit against a real redis-server: several processes (separate links)
share one host's limit with RateLimiter's schedule, on Redis's clock. Real processes sharing it
are tested in tests/test_fleet_processes.py, against the simulator's own limit.

Real time throughout (Redis's clock is real). What the limiter promises is asserted exactly on
the grant times Redis recorded (the window rule, half an interval between any two, nothing
granted while Redis is down); what a loaded machine can bend (throughput, arrival times at a
server) is asserted with room to spare.
"""

from __future__ import annotations

import functools
import itertools
import math
import signal
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
import trio
from redis_server import RedisServer

from brokergate.engine._http import HttpCaller
from brokergate.engine.fleet._client import (
    CoordinatorUnavailable,
    RedisLink,
    open_link,
    redis_target,
)
from brokergate.engine.fleet._limiter import (
    BOOT_KEY,
    FleetRateLimiter,
    FleetRateLimiters,
    limiter_state,
    limiter_states,
)
from brokergate.machines import HttpAnswered, HttpFailed, HttpRequest

#: Rates against Redis's real clock: run alone (tasks.py test runs these after the parallel
#: part, on a machine no other test is loading).
pytestmark = pytest.mark.serial

ROOT = Path(__file__).resolve().parent.parent
WINDOW_US = 1_030_000  # 1 + MARGIN seconds, in microseconds
HOST = "api.example"


async def _redis_now(link: RedisLink) -> int:
    seconds, micros = await link.run("return redis.call('TIME')", [], [])
    return int(seconds) * 1_000_000 + int(micros)


def _time_of(server: RedisServer) -> int:
    """Redis's clock, read over a plain socket (blocking: no task of the test runs meanwhile)."""
    reply = server.command("TIME").split(b"\r\n")  # *2, $len, seconds, $len, microseconds
    return int(reply[2]) * 1_000_000 + int(reply[4])


@asynccontextmanager
async def _link(server: RedisServer, *, warm: bool = True) -> AsyncIterator[RedisLink]:
    """A link of its own (one per simulated process). ``warm``: the boot marker is set two
    windows back, so the test does not pay the cold start's window of silence."""
    async with open_link(redis_target(server.url)) as link:
        if warm:
            past = await _redis_now(link) - 2 * WINDOW_US
            await link.do(link.client.set(BOOT_KEY, str(past)))
        yield link


def _check_schedule(grants: list[int], per_second: float) -> tuple[float, float]:
    """The guarantees, exact on Redis's clock: any ``count + 1`` consecutive grants span at
    least the window, and no two are closer than half an interval. Returns the narrowest
    window (seconds) and the throughput as a fraction of ``per_second``."""
    grants = sorted(grants)
    count = max(1, math.floor(per_second))
    interval = WINDOW_US / per_second
    windows = [later - first for first, later in zip(grants, grants[count:], strict=False)]
    gaps = [later - first for first, later in itertools.pairwise(grants)]
    assert not windows or min(windows) >= WINDOW_US, min(windows)
    assert min(gaps) >= interval / 2 - 1, min(gaps)
    fraction = (len(grants) - 1) * 1_000_000 / (grants[-1] - grants[0]) / per_second
    return min(windows, default=math.inf) / 1_000_000, fraction


async def test_the_link_loads_its_script_again_after_redis_restarts_empty(
    redis_server: RedisServer,
) -> None:
    """coredis answers NOSCRIPT by loading the script and running it again: a link outlives a
    Redis restart that emptied the script cache."""
    async with open_link(redis_target(redis_server.url)) as link:
        assert await link.run("return 42", [], []) == 42
        redis_server.stop()
        with pytest.raises(CoordinatorUnavailable):
            await link.run("return 42", [], [])
        redis_server.start()
        assert await link.run("return 42", [], []) == 42
        stats = redis_server.command("INFO", "commandstats")
    assert b"cmdstat_script|load:calls=1," in stats  # loaded on the new server once


async def test_processes_share_one_host_limit(redis_server: RedisServer) -> None:
    """Three processes (links) with four waiters each, for about 2.5 s at 20/s: one schedule
    between them, nearly the whole rate, and each process gets its turn."""
    grants: dict[int, list[int]] = {}
    end = trio.current_time() + 2.5

    async def process(number: int) -> None:
        async with _link(redis_server) as link:
            limiter = FleetRateLimiter(link, HOST, 20.0)
            got = grants[number] = []

            async def waiter() -> None:
                while trio.current_time() < end:
                    got.append(await limiter.acquire())

            async with trio.open_nursery() as nursery:
                for _ in range(4):
                    nursery.start_soon(waiter)

    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            for number in range(3):
                nursery.start_soon(process, number)
    every = list(itertools.chain.from_iterable(grants.values()))
    narrowest, fraction = _check_schedule(every, 20.0)
    print(f"3 links: {len(every)} grants, narrowest window {narrowest:.6f} s, "
          f"{fraction:.3f} of the rate")
    assert fraction >= 0.90
    assert all(len(got) >= len(every) / 6 for got in grants.values()), \
        {number: len(got) for number, got in grants.items()}


async def test_after_a_stall_the_backlog_leaves_at_the_normal_pace(
    redis_server: RedisServer,
) -> None:
    """Nobody asks for 2 s, then 30 requests at once from two processes: no burst to catch
    up. The first two leave a full interval apart and the 30 span the schedule."""
    async with _link(redis_server) as one, _link(redis_server) as two:
        limiters = [FleetRateLimiter(one, HOST, 20.0), FleetRateLimiter(two, HOST, 20.0)]
        before = [await limiters[0].acquire() for _ in range(3)]
        await trio.sleep(2.0)
        after: list[int] = []

        async def request(limiter: FleetRateLimiter) -> None:
            after.append(await limiter.acquire())

        with trio.fail_after(10):
            async with trio.open_nursery() as nursery:
                for number in range(30):
                    nursery.start_soon(request, limiters[number % 2])
    interval = WINDOW_US / 20
    after.sort()
    _check_schedule(before + after, 20.0)
    assert after[1] - after[0] >= interval - 1
    assert after[-1] - after[0] >= 29 * interval - interval / 2


async def test_nothing_is_granted_while_redis_is_down_and_a_restart_costs_a_window(
    redis_server: RedisServer,
) -> None:
    """Redis is killed while four waiters keep asking: no request gets a slot until it is
    back; then the waiters go on, and the first slot after the empty restart comes at least a
    window after Redis came back (the broker still counts the last second's requests)."""
    returned: list[tuple[float, int]] = []  # (local time the slot was had, Redis's grant time)
    stop, restarted, resumed = trio.Event(), trio.Event(), trio.Event()
    async with _link(redis_server) as link:
        limiter = FleetRateLimiter(link, HOST, 20.0)

        async def waiter() -> None:
            while not stop.is_set():
                granted = await limiter.acquire()
                returned.append((trio.current_time(), granted))
                if restarted.is_set():
                    resumed.set()

        async with trio.open_nursery() as nursery:
            for _ in range(4):
                nursery.start_soon(waiter)
            await trio.sleep(0.5)
            redis_server.stop()
            down = trio.current_time()
            await trio.sleep(0.6)
            failure = limiter._failure  # the limiter did ask, and heard nothing
            up = trio.current_time()
            restarted.set()
            redis_server.start()
            back_at = _time_of(redis_server)  # before any ask: the loop has not run since
            with trio.fail_after(5):
                await resumed.wait()
            await trio.sleep(0.5)
            stop.set()
        boot = int(await link.do(link.client.get(BOOT_KEY)) or 0)
    assert "unreachable" in failure
    before = [granted for local, granted in returned if local <= up]
    after = [granted for local, granted in returned if local > up]
    assert max(before) < back_at
    assert not [local for local, _ in returned if down + 0.2 < local <= up]
    print(f"restart: first slot {(min(after) - back_at) / 1e6:.3f} s after Redis came back")
    assert len(before) >= 5 and len(after) >= 5
    assert boot >= back_at and min(after) >= boot + WINDOW_US
    _check_schedule(before + after, 20.0)


async def test_a_request_gives_up_when_redis_stays_away_for_its_patience(
    redis_server: RedisServer,
) -> None:
    async with _link(redis_server) as link:
        limiter = FleetRateLimiter(link, HOST, 20.0)
        redis_server.stop()
        ended: list[float] = []

        async def request(patience: float) -> None:
            with pytest.raises(CoordinatorUnavailable, match=r"unreachable.*no slot"):
                await limiter.acquire(patience)
            ended.append(trio.current_time() - start)

        start = trio.current_time()
        with trio.fail_after(5):
            async with trio.open_nursery() as nursery:
                for patience in (0.3, 0.3, 0.6):  # the later ones wait behind the first
                    nursery.start_soon(request, patience)
    assert min(ended) >= 0.3 and max(ended) < 0.6 + 1.5, ended


async def test_a_request_gives_up_on_a_silent_redis_after_its_patience(
    redis_server: RedisServer,
) -> None:
    """A paused Redis (SIGSTOP) takes the ask and says nothing: the request gives up after its
    own patience, not the link's 2 s, and once Redis goes on the link's answers are in order."""
    assert redis_server.process is not None
    async with _link(redis_server) as link:
        limiter = FleetRateLimiter(link, HOST, 20.0)
        first = await limiter.acquire()
        redis_server.process.send_signal(signal.SIGSTOP)
        try:
            start = trio.current_time()
            with pytest.raises(CoordinatorUnavailable, match="did not answer in time"):
                await limiter.acquire(0.4)
            waited = trio.current_time() - start
        finally:
            redis_server.process.send_signal(signal.SIGCONT)
        later = [await limiter.acquire() for _ in range(3)]
        assert await link.run("return 'mine'", [], []) == b"mine"
    assert 0.4 <= waited < 1.0
    _check_schedule([first, *later], 20.0)


async def test_the_strictest_rate_for_a_host_wins(redis_server: RedisServer) -> None:
    """Processes that disagree on a host's rate (10/s and 20/s) are both held to 10/s."""
    grants: list[int] = []
    end = trio.current_time() + 1.5
    async with _link(redis_server) as slow, _link(redis_server) as fast:

        async def waiter(limiter: FleetRateLimiter) -> None:
            while trio.current_time() < end:
                grants.append(await limiter.acquire())

        with trio.fail_after(10):
            async with trio.open_nursery() as nursery:
                for limiter in (FleetRateLimiter(slow, HOST, 10.0),
                                FleetRateLimiter(fast, HOST, 20.0)):
                    for _ in range(3):
                        nursery.start_soon(waiter, limiter)
    _check_schedule(grants, 10.0)


async def test_status_says_the_rate_the_grants_and_the_next_slot(
    redis_server: RedisServer,
) -> None:
    async with _link(redis_server, warm=False) as link:
        idle = await limiter_state(link, "API.example")  # a cold Redis: a window of silence
        assert idle.per_second is None and idle.granted == 0 and idle.waiting == 0
        assert 1.0 <= idle.next_slot <= 1.03
        limiters = FleetRateLimiters(link)
        assert limiters("API.example", 20.0) is limiters(HOST, 20.0) and len(limiters) == 1
        for _ in range(3):
            await limiters(HOST, 20.0).acquire()
        states = await limiter_states(link)
    assert [state.host for state in states] == [HOST]
    state = states[0]
    assert state.per_second == 20.0 and state.granted == 3 and state.waiting == 0
    assert 0 < state.next_slot <= 0.0515
    assert str(state).startswith("api.example: 20/s, 3 granted in the last window")


# --- through HttpCaller -----------------------------------------------------------------------


async def test_http_calls_are_paced_by_the_fleet_and_not_sent_without_redis(
    redis_server: RedisServer,
) -> None:
    """Two processes' callers, 4 calls each at 5/s, reach a loopback server paced. With Redis
    down a call ends in an HttpFailed that names the coordinator, and the server never sees
    it."""
    arrived: list[float] = []

    async def serve(stream: trio.SocketStream) -> None:
        request = b""
        while b"\r\n\r\n" not in request:
            data = await stream.receive_some(65536)
            if not data:
                return  # a connection that carried no request
            request += data
        arrived.append(trio.current_time())
        await stream.send_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}")

    async def call(limiters: FleetRateLimiters, url: str, seconds: float = 5.0) -> object:
        caller = HttpCaller(None, limiter_for=limiters)
        try:
            return await caller.call(HttpRequest("login", 1, url, {"password": "Zq-secret"},
                                                 timeout=seconds, per_second=5.0))
        finally:
            await caller.aclose()

    answers: list[object] = []

    async def keep(limiters: FleetRateLimiters, url: str) -> None:
        answers.append(await call(limiters, url))

    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(functools.partial(trio.serve_tcp, serve, 0,
                                                          host="127.0.0.1"))
        url = f"http://127.0.0.1:{listeners[0].socket.getsockname()[1]}/login"
        async with _link(redis_server) as one, _link(redis_server) as two:
            processes = [FleetRateLimiters(one), FleetRateLimiters(two)]  # each a gateway's
            with trio.fail_after(10):
                async with trio.open_nursery() as calls:
                    for number in range(8):
                        calls.start_soon(keep, processes[number % 2], url)
            redis_server.stop()
            start = trio.current_time()
            failed = await call(processes[0], url, seconds=0.5)
            waited = trio.current_time() - start
            await trio.sleep(0.1)
        nursery.cancel_scope.cancel()
    assert all(isinstance(a, HttpAnswered) and a.status == 200 for a in answers)
    arrived.sort()
    assert len(arrived) == 8  # the call without Redis never reached the server
    # Five a window: any six arrivals span about a window (loopback trips differ a little).
    assert min(b - a for a, b in zip(arrived, arrived[5:], strict=False)) >= 0.9
    assert isinstance(failed, HttpFailed) and not failed.timed_out
    assert failed.detail.startswith("not sent: the fleet coordinator (Redis) is unreachable")
    assert "Zq-secret" not in failed.detail
    assert 0.5 <= waited < 3.0  # it waited out the call's own timeout for Redis to come back
