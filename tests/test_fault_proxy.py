"""The fault-injecting proxy itself: each kind of fault does what it says, on real sockets."""

from __future__ import annotations

import random

import pytest
import trio
import trio.testing

from brokergate.simulators.faults import Fault, FaultPlan, FaultProxy, random_fault, random_plan

GREETING = bytes(range(200))


async def _greeter(stream: trio.SocketStream) -> None:
    """Sends GREETING, then echoes whatever arrives until the client closes."""
    try:
        await stream.send_all(GREETING)
        while data := await stream.receive_some(4096):
            await stream.send_all(data)
    except trio.BrokenResourceError:
        pass


async def _start(nursery: trio.Nursery, plan: FaultPlan) -> FaultProxy:
    listeners = await nursery.start(trio.serve_tcp, _greeter, 0)
    proxy = FaultProxy(listeners[0].socket.getsockname()[1], plan, seed=7)
    await nursery.start(proxy.serve)
    return proxy


async def _read_all(stream: trio.SocketStream, limit: float = 60.0) -> tuple[bytes, list[int]]:
    """Everything until EOF (or ``limit`` seconds of virtual time), and each read's size."""
    got, sizes = b"", []
    with trio.move_on_after(limit):
        while data := await stream.receive_some(4096):
            got += data
            sizes.append(len(data))
    return got, sizes


async def _one(plan: FaultPlan, *, then_send: bytes = b"") -> tuple[bytes, list[int], FaultProxy]:
    async with trio.open_nursery() as nursery:
        proxy = await _start(nursery, plan)
        client = await trio.open_tcp_stream("127.0.0.1", proxy.port)
        if then_send:
            await client.send_all(then_send)
        got, sizes = await _read_all(client, limit=30.0)
        await client.aclose()
        nursery.cancel_scope.cancel()
    return got, sizes, proxy


async def test_a_clean_connection_passes_everything_both_ways(
    clock: trio.testing.MockClock,
) -> None:
    got, _, proxy = await _one(FaultPlan.clean(), then_send=b"echo me")
    # No EOF on a clean connection: the read ends at the time limit with everything in hand.
    assert got == GREETING + b"echo me"
    assert proxy.stats.connections == 1
    assert not proxy.stats.injected


async def test_latency_delays_each_chunk(clock: trio.testing.MockClock) -> None:
    async with trio.open_nursery() as nursery:
        proxy = await _start(nursery, FaultPlan.scripted([Fault("latency", delay=2.5)]))
        client = await trio.open_tcp_stream("127.0.0.1", proxy.port)
        started = trio.current_time()
        first = await client.receive_some(4096)
        assert trio.current_time() - started >= 2.5
        assert GREETING.startswith(first)
        await client.aclose()
        nursery.cancel_scope.cancel()
    assert proxy.stats.injected == {"latency": 1}


async def test_throttle_limits_the_rate(clock: trio.testing.MockClock) -> None:
    async with trio.open_nursery() as nursery:
        proxy = await _start(nursery, FaultPlan.scripted([Fault("throttle", rate=50)]))
        client = await trio.open_tcp_stream("127.0.0.1", proxy.port)
        started = trio.current_time()
        got = b""
        while len(got) < len(GREETING):
            got += await client.receive_some(4096)
        # 200 bytes at 50 B/s: the last of them cannot arrive before 3 s have passed.
        assert trio.current_time() - started >= 3.0
        assert got == GREETING
        await client.aclose()
        nursery.cancel_scope.cancel()


async def test_split_forwards_in_small_pieces_without_losing_a_byte(
    clock: trio.testing.MockClock,
) -> None:
    got, sizes, proxy = await _one(FaultPlan.scripted([Fault("split", piece=3)]))
    assert got == GREETING
    assert len(sizes) > 1
    assert proxy.stats.injected == {"split": 1}


async def test_drop_closes_cleanly_between_writes(clock: trio.testing.MockClock) -> None:
    # The greeting (200 bytes) passes; the echo would cross byte 250, so the close comes first.
    got, _, proxy = await _one(FaultPlan.scripted([Fault("drop", at_byte=250)]),
                               then_send=b"x" * 100)
    assert got == GREETING
    assert proxy.stats.injected == {"drop": 1}
    assert proxy.stats.log == ["connection 1: drop after 200 B down"]


async def test_reset_breaks_the_connection(clock: trio.testing.MockClock) -> None:
    async with trio.open_nursery() as nursery:
        proxy = await _start(nursery, FaultPlan.scripted([Fault("reset", at_byte=0)]))
        client = await trio.open_tcp_stream("127.0.0.1", proxy.port)
        with pytest.raises(trio.BrokenResourceError):
            while await client.receive_some(4096):
                pass
        await client.aclose()
        nursery.cancel_scope.cancel()
    assert proxy.stats.injected == {"reset": 1}


async def test_truncate_cuts_the_chunk_short_then_closes(clock: trio.testing.MockClock) -> None:
    got, _, proxy = await _one(FaultPlan.scripted([Fault("truncate", at_byte=150)]))
    assert got == GREETING[:150]
    assert proxy.stats.injected == {"truncate": 1}


async def test_stall_keeps_the_connection_open_and_silent(clock: trio.testing.MockClock) -> None:
    async with trio.open_nursery() as nursery:
        proxy = await _start(nursery, FaultPlan.scripted([Fault("stall", "up", at_byte=3)]))
        client = await trio.open_tcp_stream("127.0.0.1", proxy.port)
        first = b""
        while len(first) < len(GREETING):
            first += await client.receive_some(4096)
        await client.send_all(b"hello, anyone?")
        # Three bytes reach the server, but not even their echo comes back, nor an EOF.
        got, _ = await _read_all(client, limit=600.0)
        assert got == b""
        assert proxy.stats.open_connections == 1
        await client.aclose()
        await trio.testing.wait_all_tasks_blocked()
        # The client's close is noticed: the proxy lets go of both sides.
        assert proxy.stats.open_connections == 0
        nursery.cancel_scope.cancel()
    assert proxy.stats.injected == {"stall": 1}


async def test_a_timed_fault_fires_on_the_clock(clock: trio.testing.MockClock) -> None:
    async with trio.open_nursery() as nursery:
        proxy = await _start(nursery, FaultPlan.scripted([Fault("drop", at_seconds=42.0)]))
        client = await trio.open_tcp_stream("127.0.0.1", proxy.port)
        started = trio.current_time()
        got, _ = await _read_all(client, limit=600.0)
        assert got == GREETING
        assert trio.current_time() - started == pytest.approx(42.0, abs=0.1)
        await client.aclose()
        nursery.cancel_scope.cancel()
    assert proxy.stats.log == ["connection 1: drop at 42 s"]


async def test_the_plan_goes_connection_by_connection(clock: trio.testing.MockClock) -> None:
    plan = FaultPlan.scripted([Fault("truncate", at_byte=10)], [],
                              after=[Fault("truncate", at_byte=20)])
    async with trio.open_nursery() as nursery:
        proxy = await _start(nursery, plan)
        results = []
        for _ in range(4):
            client = await trio.open_tcp_stream("127.0.0.1", proxy.port)
            got, _ = await _read_all(client, limit=5.0)
            results.append(len(got))
            await client.aclose()
        nursery.cancel_scope.cancel()
    assert results == [10, 200, 20, 20]
    assert proxy.stats.connections == 4


def test_random_plans_replay_from_their_seed() -> None:
    def draw(seed: int) -> str:
        return random_plan(random.Random(seed), faulty=3).describe()

    assert draw(11) == draw(11)
    assert len({draw(seed) for seed in range(20)}) > 15
    kinds = {random_fault(random.Random(seed)).kind for seed in range(200)}
    assert kinds == {"latency", "throttle", "split", "drop", "reset", "truncate", "stall"}


def test_bad_faults_are_refused_with_a_reason() -> None:
    with pytest.raises(ValueError, match="unknown fault kind 'explode'"):
        Fault("explode")
    with pytest.raises(ValueError, match="needs at_byte or at_seconds"):
        Fault("drop")
    with pytest.raises(ValueError, match="positive rate"):
        Fault("throttle")


def test_urls_are_rewritten_to_the_proxy() -> None:
    proxy = FaultProxy(4100)
    proxy.port = 5200
    assert proxy.url("ws://127.0.0.1:4100/api?x=1") == "ws://127.0.0.1:5200/api?x=1"
    with pytest.raises(ValueError, match="not on port 4100"):
        proxy.url("ws://127.0.0.1:9999/")


async def test_a_fault_struck_by_hand_hits_every_open_connection(
    clock: trio.testing.MockClock,
) -> None:
    async with trio.open_nursery() as nursery:
        proxy = await _start(nursery, FaultPlan.clean())
        clients = [await trio.open_tcp_stream("127.0.0.1", proxy.port) for _ in range(2)]
        for client in clients:
            first = b""
            while len(first) < len(GREETING):
                first += await client.receive_some(4096)
        assert proxy.strike("reset") == 2
        for client in clients:
            with pytest.raises(trio.BrokenResourceError):
                while await client.receive_some(4096):
                    pass
            await client.aclose()
        with pytest.raises(ValueError, match="one-shot"):
            proxy.strike("latency")
        nursery.cancel_scope.cancel()
    assert proxy.stats.injected == {"reset": 2}
