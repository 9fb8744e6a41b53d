"""Account claims in a real Redis: leases and login flights, fencing, expiry, Redis lost."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import pytest
import trio
from redis_server import RedisServer

from brokergate.engine._coordinator import Granted, Held
from brokergate.engine.fleet._claims import ClaimTiming, RedisClaim
from brokergate.engine.fleet._client import (
    CoordinatorUnavailable,
    RedisLink,
    open_link,
    redis_target,
)
from brokergate.engine.fleet._limiter import FleetRateLimiters
from brokergate.engine.fleet._sealed import Sealer

SEALER = Sealer(bytes(range(32)))


FAST = ClaimTiming(ttl=1.0, grace=0.0)


async def until(condition: Callable[[], bool], within: float = 3.0) -> None:
    """Wait, on the real clock Redis keeps, for ``condition`` to hold."""
    with trio.fail_after(within):
        while not condition():  # noqa: ASYNC110 - polls a claim's state, which no event marks
            await trio.sleep(0.01)


@asynccontextmanager
async def link_to(server: RedisServer) -> AsyncIterator[RedisLink]:
    async with open_link(redis_target(server.url), answer_within=1.0) as link:
        yield link


def claim(link: RedisLink, session: str, *, kind: str = "lease",
          timing: ClaimTiming = FAST) -> RedisClaim:
    return RedisClaim(link, SEALER, prefix="bg", kind=kind,  # type: ignore[arg-type]
                      broker="qst", account="alice@qst", session_id=session, timing=timing)


async def test_one_holder_at_a_time_and_fences_grow(redis_server: RedisServer) -> None:
    async with link_to(redis_server) as a_link, link_to(redis_server) as b_link:
        a, b = claim(a_link, "a"), claim(b_link, "b")
        first = await a.take()
        assert isinstance(first, Granted) and a.valid()
        held = await b.take()
        assert isinstance(held, Held) and held.holder == a.holder and held.fence == first.fence
        again = await a.take()  # the holder asking again keeps its grant
        assert isinstance(again, Granted) and again.fence == first.fence
        await a.publish({"session_token": "s3cr3t", "url": "wss://x"})
        await a.release({"state": "authenticated"})
        assert not a.valid()
        second = await b.take()
        assert isinstance(second, Granted) and second.fence > first.fence
        assert second.handover == {"session_token": "s3cr3t", "url": "wss://x"}
        assert second.outcome == {"state": "authenticated"}


async def test_a_dead_holder_loses_the_claim_after_its_ttl(redis_server: RedisServer) -> None:
    async with link_to(redis_server) as a_link, link_to(redis_server) as b_link:
        a, b = claim(a_link, "a"), claim(b_link, "b")
        assert isinstance(await a.take(), Granted)
        start = trio.current_time()
        got = await b.wait()  # a never renews: it is as good as dead
        waited = trio.current_time() - start
        assert 0.9 <= waited <= 1.0 + 0.3, waited
        assert got.fence > 0
        # a's grant is stale: it can no longer publish or release b's claim.
        assert not a.valid()
        await a.publish({"session_token": "stale"})
        await a.release({"state": "failed"})
        assert isinstance(await claim(a_link, "c").take(), Held)


class Cuttable:
    """A loopback TCP forwarder to Redis whose path can be cut: one process cut off from
    Redis while the others still reach it."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.cut = trio.Event()

    async def serve(self, task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED) -> None:
        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        task_status.started(listeners[0].socket.getsockname()[1])
        await trio.serve_listeners(self._link, listeners)

    async def _link(self, client: trio.SocketStream) -> None:
        if self.cut.is_set():
            await client.aclose()
            return
        server = await trio.open_tcp_stream("127.0.0.1", self.port)
        async with client, server, trio.open_nursery() as nursery:
            async def pump(source: trio.SocketStream, sink: trio.SocketStream) -> None:
                with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
                    async for chunk in source:
                        await sink.send_all(chunk)
                nursery.cancel_scope.cancel()

            nursery.start_soon(pump, client, server)
            nursery.start_soon(pump, server, client)
            await self.cut.wait()
            nursery.cancel_scope.cancel()


async def test_a_holder_cut_off_stops_writing_before_another_can_hold(
        redis_server: RedisServer) -> None:
    path = Cuttable(redis_server.port)
    async with trio.open_nursery() as outer:
        port = await outer.start(path.serve)
        target = redis_target(f"redis://127.0.0.1:{port}/0")
        async with open_link(target, answer_within=0.5) as a_link, \
                link_to(redis_server) as b_link:
            a, b = claim(a_link, "a"), claim(b_link, "b")
            assert isinstance(await a.take(), Granted)
            lost: list[str] = []

            async def holder() -> None:
                lost.append(await a.keep())

            async with trio.open_nursery() as nursery:
                nursery.start_soon(holder)
                path.cut.set()  # a cannot reach Redis from here on; b still can
                got = await b.wait()
                granted_at = trio.current_time()
                assert isinstance(got, Granted)
                # a stopped writing before b could be granted the account.
                assert not a.valid()
                assert a._valid_until < granted_at
                path.cut = trio.Event()  # the path is back: a learns it lost the lease
                await until(lambda: bool(lost))
            assert lost == ["another session holds the account's lease now"]
            assert not a.valid()
        outer.cancel_scope.cancel()


async def test_a_holder_resumes_writing_when_redis_comes_back_with_its_lease(
        redis_server: RedisServer) -> None:
    async with link_to(redis_server) as a_link:
        a = claim(a_link, "a", timing=ClaimTiming(ttl=1.0, grace=2.0))
        first = await a.wait()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(a.keep)
            redis_server.stop()
            await until(lambda: not a.valid())
            redis_server.start()  # empty: nobody else may take it during the grace period
            await until(a.valid)
            assert a.fence == first.fence
            nursery.cancel_scope.cancel()


async def test_redis_restarted_empty_keeps_the_holder_and_its_handover(
        redis_server: RedisServer) -> None:
    timing = ClaimTiming(ttl=1.0)
    async with link_to(redis_server) as a_link, link_to(redis_server) as b_link:
        a = claim(a_link, "a", timing=timing)
        b = claim(b_link, "b", timing=timing)
        # A brand-new Redis grants nothing for the grace period.
        first = await a.wait()
        await a.publish({"url": "wss://x"})
        redis_server.stop()
        redis_server.start()
        with trio.move_on_after(2.0):
            async with trio.open_nursery() as nursery:
                async def keep() -> None:
                    await a.keep()
                    pytest.fail("the holder lost its claim")
                nursery.start_soon(keep)
                await trio.sleep(0.2)
                got = await b.take()  # within the grace period: not granted
                assert isinstance(got, Held)
                await trio.sleep(1.1)  # past the grace: a has re-established its claim
                got = await b.take()
                assert isinstance(got, Held) and got.holder == a.holder
                assert got.fence == first.fence
                nursery.cancel_scope.cancel()
        # What the holder had left its successor (a CQG session, the logon counts) is back too.
        await a.release()
        handed = await b.take()
        assert isinstance(handed, Granted) and handed.handover == {"url": "wss://x"}
        assert handed.fence > first.fence


async def test_redis_unreachable_is_named(redis_server: RedisServer) -> None:
    async with link_to(redis_server) as link:
        a = claim(link, "a")
        redis_server.stop()
        with pytest.raises(CoordinatorUnavailable, match=r"unreachable|did not answer"):
            await a.take()


async def test_publishes_in_flight_leave_the_latest_handover(redis_server: RedisServer) -> None:
    async with link_to(redis_server) as a_link, link_to(redis_server) as b_link:
        a = claim(a_link, "a")
        assert isinstance(await a.take(), Granted)
        async with trio.open_nursery() as nursery:
            # The first is on its way to Redis when the second is given: the second must be
            # what stays, whichever write would reach Redis first.
            started = trio.Event()

            async def first() -> None:
                started.set()
                await a.publish({"step": "connecting"})

            nursery.start_soon(first)
            await started.wait()
            await a.publish({"step": "authenticated", "session_token": "t"})
        await a.release()
        got = await claim(b_link, "b").take()
        assert isinstance(got, Granted)
        assert got.handover == {"step": "authenticated", "session_token": "t"}


async def test_the_limiter_and_the_claims_read_one_boot_marker(redis_server: RedisServer) -> None:
    """The rate limiter may be first to find Redis new and set the fleet's boot marker: the
    claims then wait out the same grace period, not one read in another unit."""
    async with link_to(redis_server) as link:
        await FleetRateLimiters(link)("api.example", 50.0).acquire()
        a = claim(link, "a", timing=ClaimTiming(ttl=1.0, grace=0.5))
        with trio.fail_after(3):
            got = await a.wait()
        assert isinstance(got, Granted)
