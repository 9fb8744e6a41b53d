"""Account claims in a real Redis: leases and login flights, fencing, expiry, Redis lost."""

from __future__ import annotations

from collections.abc import AsyncIterator
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
from brokergate.engine.fleet._sealed import Sealer

SEALER = Sealer(bytes(range(32)))


FAST = ClaimTiming(ttl=1.0, grace=0.0)


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


async def test_a_holder_stops_writing_before_its_lease_can_pass(redis_server: RedisServer) -> None:
    async with link_to(redis_server) as a_link, link_to(redis_server) as b_link:
        a, b = claim(a_link, "a"), claim(b_link, "b")
        assert isinstance(await a.take(), Granted)
        valid_until: list[float] = []
        granted_at: list[float] = []

        async def holder() -> None:
            redis_server.stop()  # a cannot renew from here on
            why = await a.keep()
            valid_until.append(trio.current_time())
            assert "could not renew" in why

        async with trio.open_nursery() as nursery:
            nursery.start_soon(holder)
        redis_server.start()  # empty: b must wait out the grace period too
        b.timing = ClaimTiming(ttl=1.0)
        got = await b.wait()
        granted_at.append(trio.current_time())
        assert isinstance(got, Granted)
        assert valid_until[0] < granted_at[0]


async def test_redis_restarted_empty_keeps_the_holder(redis_server: RedisServer) -> None:
    timing = ClaimTiming(ttl=1.5)
    async with link_to(redis_server) as a_link, link_to(redis_server) as b_link:
        a = claim(a_link, "a", timing=timing)
        b = claim(b_link, "b", timing=timing)
        # A brand-new Redis grants nothing for the grace period.
        first = await a.wait()
        await a.publish({"url": "wss://x"})
        redis_server.stop()
        redis_server.start()
        with trio.move_on_after(2.5):
            async with trio.open_nursery() as nursery:
                async def keep() -> None:
                    await a.keep()
                    pytest.fail("the holder lost its claim")
                nursery.start_soon(keep)
                await trio.sleep(0.2)
                got = await b.take()  # within the grace period: not granted
                assert isinstance(got, Held)
                await trio.sleep(1.6)  # past the grace: a has re-established its claim
                got = await b.take()
                assert isinstance(got, Held) and got.holder == a.holder
                assert got.fence == first.fence
                nursery.cancel_scope.cancel()


async def test_redis_unreachable_is_named(redis_server: RedisServer) -> None:
    async with link_to(redis_server) as link:
        a = claim(link, "a")
        redis_server.stop()
        with pytest.raises(CoordinatorUnavailable, match=r"unreachable|did not answer"):
            await a.take()
