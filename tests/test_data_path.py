"""The application's data after login: a slow subscriber loses nothing (the session stops reading
instead, and says so), loss happens only where a subscriber asked for it by name and is counted,
and transitions and notices are never dropped."""

from __future__ import annotations

from typing import Any

import pytest
import trio
import trio.testing
from helpers import cqg_config, session_kwargs, states

from brokergate import (
    BrokerMessage,
    ConnectionLost,
    EventStream,
    FirstockConfig,
    NotAuthenticated,
    Notice,
    Secret,
    Transitioned,
    open_session,
)
from brokergate.cqg import pb
from brokergate.simulators.cqg import CqgAccount, run_cqg_simulator
from brokergate.simulators.firstock import FirstockAccount, run_firstock_simulator

Events = list[dict[str, Any]]


def frames(count: int, pad: int = 0) -> list[bytes]:
    """``count`` application ServerMsgs, numbered in their session_token, ``pad`` bytes more."""
    return [pb.ServerMsg(user_session_state_results=[pb.UserSessionStateResult(
        session_token=f"{n}:{'x' * pad}", result_code=0)]).SerializeToString()
        for n in range(count)]


def number(event: BrokerMessage) -> int:
    msg = pb.ServerMsg.FromString(event.message.raw)
    return int(msg.user_session_state_results[0].session_token.split(":")[0])


async def receive(stream: EventStream, count: int, delay: float = 0.0,
                  seen: list[Any] | None = None) -> list[int]:
    """The numbers of the first ``count`` broker messages, taking ``delay`` per message (slept
    ten at a time: each sleep costs the autojumping clock a few real milliseconds)."""
    got: list[int] = []
    async for event in stream:
        if seen is not None:
            seen.append(event)
        if isinstance(event, BrokerMessage):
            got.append(number(event))
            if len(got) == count:
                break
            if delay and len(got) % 10 == 0:
                await trio.sleep(delay * 10)
    return got


async def test_a_slow_subscriber_receives_every_message_in_order_and_is_told(
    clock: trio.testing.MockClock,
) -> None:
    """5,000 messages to an application taking 10 ms each: all arrive, in order, none twice.
    The session stopped reading meanwhile (50 s, virtual), said so once it had lasted
    ``slow_consumer_after``, and said when it caught up. CQG's Pong deadline (2 s) was held
    while it was not reading, so the connection was never judged dead."""
    events: Events = []
    async with run_cqg_simulator([CqgAccount("alice", "alice-pw")]) as sim:
        config = cqg_config(sim.url, "alice", ping_interval=1.0, ping_timeout=2.0,
                            slow_consumer_after=3.0)
        async with open_session(config, **session_kwargs(events)) as session:
            stream = session.events(buffer=256)
            await session.wait_authenticated()
            assert sim.send("alice", frames(5000)) == 1
            seen: list[Any] = []
            with trio.fail_after(600):
                got = await receive(stream, 5000, delay=0.01, seen=seen)
            assert got == list(range(5000))
            seen.append(await stream.__anext__())  # told as soon as the last one was taken
            assert session.state == "authenticated"
        assert sim.stats.restore_results == [] and sim.stats.logons_ok == 1
        assert sim.stats.connections == 1
        assert sim.stats.violations == []
    kinds = [e.kind for e in seen if isinstance(e, Notice)]
    assert "slow_consumer" in kinds and "caught_up" in kinds
    assert kinds.index("slow_consumer") < kinds.index("caught_up") == len(kinds) - 1
    assert seen[-1].data["behind"] > 40  # 5,000 x 10 ms, minus what the buffer held
    slow = next(e for e in seen if isinstance(e, Notice) and e.kind == "slow_consumer")
    # Told while the reading was paused: more behind than the point where it resumes (half the
    # buffer; it pauses past the whole of it).
    assert slow.data["events"] > 256 // 2 and "kept the session from reading CQG" in slow.detail
    logged = [e for e in events if e["event"] == "notice"]
    assert {"slow_consumer", "caught_up"} <= {e["kind"] for e in logged}
    assert not any("no Pong" in str(e.get("detail")) for e in events)


async def test_a_paused_reading_resumes_at_half_the_buffer_not_at_every_message(
    clock: trio.testing.MockClock,
) -> None:
    """Once a lossless subscriber is full, taking one event does not restart the reading: it
    resumes when the subscriber is down to half its buffer, and then reads in one go. (Resuming
    at every message made a fast feed pause and resume the reading per message.)"""
    async with run_cqg_simulator([CqgAccount("alice", "alice-pw")]) as sim:
        async with open_session(cqg_config(sim.url, "alice"), **session_kwargs([])) as session:
            stream = session.events(buffer=16)
            await session.wait_authenticated()
            sim.send("alice", frames(200))
            await trio.testing.wait_all_tasks_blocked()
            backlog = stream.backlog[0]
            assert backlog > 16  # paused past the bound (transitions count too)
            got: list[int] = []

            async def take_one() -> None:
                event = await stream.__anext__()
                got.extend([number(event)] if isinstance(event, BrokerMessage) else [])
                await trio.testing.wait_all_tasks_blocked()

            while stream.backlog[0] > 9:
                await take_one()
                assert stream.backlog[0] == backlog - 1  # nothing more read meanwhile
                backlog -= 1
            await take_one()  # down to half the buffer: it reads on, in one go, to the bound
            assert stream.backlog[0] > 16
            got += await receive(stream, 200 - len(got))
            assert got == list(range(200))


async def test_the_buffer_is_bounded_by_bytes_as_well(clock: trio.testing.MockClock) -> None:
    """Large frames stop the reading once the backlog passes ``max_bytes``, however few they
    are: the backlog never holds more than the bound and the frame that crossed it."""
    size = 16_000
    async with run_cqg_simulator([CqgAccount("alice", "alice-pw")]) as sim:
        async with open_session(cqg_config(sim.url, "alice"), **session_kwargs([])) as session:
            stream = session.events(buffer=10_000, max_bytes=64_000)
            await session.wait_authenticated()
            sim.send("alice", frames(100, pad=size))
            await trio.sleep(1)  # the session reads until the subscriber is over its bound
            events, held = stream.backlog
            assert 64_000 < held <= 64_000 + size + 100
            assert events < 10
            got = await receive(stream, 100, delay=0.01)
    assert got == list(range(100))


async def test_drop_oldest_keeps_the_newest_counts_the_rest_and_holds_back_no_one(
    clock: trio.testing.MockClock,
) -> None:
    """A ``drop_oldest`` subscriber that reads nothing does not stop a lossless one from
    getting everything; when it reads, a notice counts what it lost, then come the newest."""
    async with run_cqg_simulator([CqgAccount("alice", "alice-pw")]) as sim:
        async with open_session(cqg_config(sim.url, "alice"), **session_kwargs([])) as session:
            latest = session.events(buffer=8, overflow="drop_oldest")
            everything = session.events(buffer=16)
            await session.wait_authenticated()
            sim.send("alice", frames(3000))
            with trio.fail_after(60):
                assert await receive(everything, 3000) == list(range(3000))
            assert latest.dropped > 0
            first = await latest.__anext__()
            assert isinstance(first, Notice) and first.kind == "messages_dropped"
            assert first.data == {"dropped": latest.dropped, "total": latest.dropped}
            kept: list[int] = []
            while latest.backlog[0]:
                event = await latest.__anext__()
                if isinstance(event, BrokerMessage):
                    kept.append(number(event))
    assert kept == list(range(3000 - len(kept), 3000))
    assert latest.dropped + len(kept) == 3000


async def test_transitions_and_notices_are_never_dropped(clock: trio.testing.MockClock) -> None:
    """A ``drop_oldest`` subscriber of two events that read nothing all session still gets
    every transition the audit trail has, in order."""
    events: Events = []
    async with run_cqg_simulator([CqgAccount("alice", "alice-pw")]) as sim:
        async with open_session(cqg_config(sim.url, "alice"), **session_kwargs(events)) as session:
            idle = session.events(buffer=2, overflow="drop_oldest")
            await session.wait_authenticated()
            sim.send("alice", frames(500))
            await trio.sleep(1)
            await sim.drop("alice")  # a restore: more transitions and a notice
            await trio.sleep(5)
            assert session.state == "authenticated"
    seen = [event async for event in idle]
    got = [e.dst for e in seen if isinstance(e, Transitioned)]
    assert got == states(events)
    assert "restoring" in got
    assert any(isinstance(e, Notice) and e.kind == "restored" for e in seen)
    assert idle.dropped > 0


@pytest.mark.parametrize(("options", "message"), [
    ({"buffer": 0}, "at least 1"),
    ({"max_bytes": 0}, "at least 1"),
    ({"overflow": "drop_newest"}, "overflow must be one of backpressure, drop_oldest"),
])
async def test_a_stream_with_impossible_bounds_is_refused(
    options: dict[str, Any], message: str
) -> None:
    async with run_cqg_simulator([CqgAccount("alice", "alice-pw")]) as sim:
        async with open_session(cqg_config(sim.url, "alice"), **session_kwargs([])) as session:
            with pytest.raises(ValueError, match=message):
                session.events(**options)


async def test_a_closed_subscriber_stops_holding_back_the_reading(
    clock: trio.testing.MockClock,
) -> None:
    async with run_cqg_simulator([CqgAccount("alice", "alice-pw")]) as sim:
        async with open_session(cqg_config(sim.url, "alice"), **session_kwargs([])) as session:
            stuck = session.events(buffer=4)
            other = session.events(buffer=4096)
            await session.wait_authenticated()
            sim.send("alice", frames(1000))
            await trio.sleep(1)
            assert other.backlog[0] < 100  # held back by the stuck subscriber
            stuck.close()
            with trio.fail_after(60):
                assert await receive(other, 1000) == list(range(1000))
            with pytest.raises(trio.ClosedResourceError):
                await stuck.__anext__()


async def test_a_paused_reader_is_not_taken_for_a_dead_connection(
    clock: trio.testing.MockClock,
) -> None:
    """A Firstock socket feed to an application slower than the feed: the session's WebSocket
    ping (every 1 s, a 1 s deadline) is held while it does not read, since the pong waits
    behind the unread data; every message arrives, on the one socket."""
    account = FirstockAccount("AA1", "AA1-pw", fixed_totp="123456")
    # The simulator's own pings (Firstock drops a socket that leaves them unanswered, as a
    # paused reader does) are set far apart: this test is about the session's own.
    async with run_firstock_simulator([account], socket_ping_interval=1000.0) as sim:
        config = FirstockConfig(
            base_url=sim.base_url, user_id="AA1", password=Secret("AA1-pw"),
            api_key=Secret(account.api_key), vendor_code=account.vendor_code,
            totp=Secret("123456"), socket="v2", socket_url=sim.socket_url,
            ping_interval=1.0, ping_timeout=1.0)
        async with open_session(config, **session_kwargs([])) as session:
            stream = session.events(buffer=64)
            await session.wait_authenticated()
            assert sim.send("AA1", [f'{{"n": {n}, "ltp": "100.5"}}' for n in range(2000)]) == 1
            got: list[str] = []
            with trio.fail_after(120):
                async for event in stream:
                    if isinstance(event, BrokerMessage):
                        got.append(event.message)
                        if len(got) % 10 == 0:
                            await trio.sleep(0.1)  # 10 ms a message: 20 s of virtual time
                        if len(got) == 2000:
                            break
            assert [int(m.split(",")[0].split(":")[1]) for m in got] == list(range(2000))
            assert session.state == "authenticated"
        assert sim.stats.sockets_opened == 1 and sim.stats.ping_timeouts == 0


async def test_a_send_across_a_drop_is_written_or_refused_never_lost_silently(
    clock: trio.testing.MockClock,
) -> None:
    """The application sends throughout a dropped connection and its restore: each send either
    returns (written to the connection) or raises, saying nothing was written; CQG received
    nothing that was refused, and the ``restored`` notice hands re-subscribing back to the
    application (CQG does not carry subscriptions across connections)."""
    outcomes: dict[int, str] = {}
    async with run_cqg_simulator([CqgAccount("alice", "alice-pw")],
                                 echo_application=False) as sim:
        async with open_session(cqg_config(sim.url, "alice"), **session_kwargs([])) as session:
            stream = session.events()
            await session.wait_authenticated()

            async def sender() -> None:
                for n in range(300):
                    order = bytes([3 << 3 | 2, 8]) + b"%08d" % n  # an order_requests field
                    try:
                        await session.send(order)
                        outcomes[n] = "written"
                    except NotAuthenticated:  # the gate: nothing is written until restored
                        outcomes[n] = "refused"
                    except ConnectionLost as exc:
                        assert "not sent" in str(exc)
                        outcomes[n] = "refused"
                    await trio.sleep(0.002)

            async with trio.open_nursery() as nursery:
                nursery.start_soon(sender)
                await trio.sleep(0.2)
                await sim.drop("alice")
                restored = None
                async for event in stream:
                    if isinstance(event, Notice) and event.kind == "restored":
                        restored = event
                        break
            assert restored is not None and "subscri" in restored.detail
            await trio.sleep(0.1)
    received = {int(raw[2:]) for raw in sim.stats.app_messages}
    refused = {n for n, what in outcomes.items() if what == "refused"}
    assert len(outcomes) == 300 and refused, "the drop fell between sends"
    assert received.isdisjoint(refused)
    assert received <= {n for n, what in outcomes.items() if what == "written"}


async def test_a_frame_that_fails_in_the_session_is_reported_not_dropped(
    clock: trio.testing.MockClock, monkeypatch: pytest.MonkeyPatch,
) -> None:
    """trio-websocket's reader, which hands frames to the session, swallows
    ``BrokenResourceError`` and ``ClosedResourceError`` as if its own channel had closed, and
    would drop the frame without a word. The session turns them into an internal error that
    ends the connection and says so in the audit trail."""
    events: Events = []
    real_offer = EventStream.offer

    def offer(self: EventStream, event: Any, size: int = 0) -> None:
        if isinstance(event, BrokerMessage):
            raise trio.BrokenResourceError("a bug somewhere in delivery")
        real_offer(self, event, size)

    async with run_cqg_simulator([CqgAccount("alice", "alice-pw")]) as sim:
        async with open_session(cqg_config(sim.url, "alice"), **session_kwargs(events)) as session:
            session.events()
            await session.wait_authenticated()
            monkeypatch.setattr(EventStream, "offer", offer)
            sim.send("alice", frames(1))
            await trio.sleep(1)
            monkeypatch.undo()
    errors = [e for e in events if e["event"] == "internal_error"]
    assert errors and "BrokenResourceError" in errors[0]["detail"], events
    assert any(e.get("close_code") == 1011 for e in events if e["event"] == "transition")
