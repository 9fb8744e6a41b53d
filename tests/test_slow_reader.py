"""Slow readers: what the simulators do about a client that reads too slowly (QST closes 4102,
CQG's lag rule), and how a session with a lossless subscriber that stops reading ends up, as
each broker's policy table says."""

from __future__ import annotations

from typing import Any

import pytest
import trio
import trio.testing
import trio_websocket
from helpers import cqg_config, qst_config, session_kwargs

from brokergate import BrokerMessage, Notice, Transitioned, open_session
from brokergate.cqg import pb as pb_cqg
from brokergate.machines._policy import Restore, Retry
from brokergate.machines._sansio import Fault
from brokergate.machines.cqg import policy as cqg_policy
from brokergate.machines.qst import policy as qst_policy
from brokergate.qst import pb
from brokergate.simulators.cqg import CqgAccount, run_cqg_simulator
from brokergate.simulators.qst import QstAccount, run_qst_simulator

Events = list[dict[str, Any]]


def qst_login(user: str = "alice") -> bytes:
    req = pb.Request(request_id=1)
    req.login.user_name = user
    req.login.password.value = f"{user}-pw"
    req.login.password.version = 1
    req.login.client_id = "test-client"
    return req.SerializeToString()


def qst_frame(number: int, pad: int = 0) -> bytes:
    """A numbered frame for a raw client: its request_id numbers it, and an ErrorMessage text
    pads it to the size a test needs."""
    resp = pb.Response(request_id=number)
    resp.error.message = "x" * pad
    return resp.SerializeToString()


async def test_qst_send_queues_frames_in_order_on_logged_in_connections_only() -> None:
    async with run_qst_simulator([QstAccount("alice", "alice-pw")]) as sim:
        async with trio_websocket.open_websocket_url(sim.url) as ws:
            assert sim.send("alice", [qst_frame(0)]) == 0  # not logged in yet
            await ws.send_message(qst_login())
            assert pb.Response.FromString(await ws.get_message()).HasField("login")
            assert sim.send("alice", (qst_frame(n) for n in range(1, 101))) == 1
            assert sim.send("bob", [qst_frame(0)]) == 0
            got = [pb.Response.FromString(await ws.get_message()).request_id for _ in range(100)]
            assert got == list(range(1, 101))
    assert sim.stats.violations == []


# -- QST: 4102 ------------------------------------------------------------------------------------


def qst_data(number: int, pad: int = 2000) -> bytes:
    """An unsolicited Response (no request_id) the session hands to its subscribers: a
    translation record standing for market data, numbered by its instrument_id."""
    resp = pb.Response()
    resp.translate_instrument_symbol.records.add(symbol="x" * pad, instrument_id=number)
    return resp.SerializeToString()


def qst_number(data: bytes | str | BrokerMessage) -> int:
    """The number of a ``qst_data`` frame, or of the message the session made of one."""
    if isinstance(data, BrokerMessage):
        return int(data.message.records[0].instrument_id)
    assert isinstance(data, bytes)
    return int(pb.Response.FromString(data).translate_instrument_symbol.records[0].instrument_id)


async def test_qst_closes_a_reader_that_stopped_with_4102_and_the_session_reconnects(
    clock: trio.testing.MockClock,
) -> None:
    """The default (lossless) subscriber stops reading while QST streams 4 MB: the session
    stops reading and says so (slow_consumer); QST closes 4102 once a frame has waited
    ``slow_reader_timeout`` (30 s) unwritten; the session takes it as the policy table says
    (back off, reconnect, log in again). Everything QST wrote before the close reaches the
    subscriber once it reads again, in order and once; what QST threw away with the connection
    is exactly the rest."""
    events: Events = []
    sent = 2000
    async with run_qst_simulator([QstAccount("alice", "alice-pw")]) as sim:
        async with open_session(qst_config(sim.url, "alice"), **session_kwargs(events)) as session:
            stream = session.events()
            await session.wait_authenticated()
            assert sim.send("alice", (qst_data(n) for n in range(sent))) == 1
            with trio.fail_after(300):
                await sim.wait_live_connections("alice", 0)  # QST gave up on the reader
            assert session.state == "authenticated"  # not reading: the close waits unread
            got: list[int] = []
            seen: list[Any] = []
            with trio.fail_after(120):
                async for event in stream:
                    seen.append(event)
                    if isinstance(event, BrokerMessage):
                        got.append(qst_number(event))
                    elif (isinstance(event, Transitioned) and event.dst == "authenticated"
                          and event.epoch == 2):
                        break
            assert sim.live_connections("alice") == 1
        assert sim.stats.violations == [] and sim.stats.logins_ok == 2
    assert sim.stats.slow_readers == ["user 'alice': a write made no progress for 30 s"]
    # Nothing lost but what QST threw away, nothing twice, nothing out of order.
    thrown = [qst_number(frame) for frame in sim.stats.discarded]
    assert len(got) > 1024 and thrown
    assert got + thrown == list(range(sent))
    notices = [e.kind for e in seen if isinstance(e, Notice)]
    assert notices == ["slow_consumer", "caught_up"]
    # The audit trail: told first, then the close, taken as the table says for 4102.
    action = qst_policy.classify_close(4102)
    assert action == Retry("slow_reader", Fault.BROKER) and not action.immediate
    trail = [(e.get("kind") or e["trigger"], e.get("dst")) for e in events]
    closed = trail.index(("closed", "backoff"))
    assert trail.index(("slow_consumer", None)) < closed
    moves = [step for step in trail[closed:] if step[0] != "caught_up"]
    assert moves[:4] == [
        ("closed", "backoff"), ("backoff_elapsed", "connecting"),
        ("connected", "awaiting_login_response"), ("login_response", "authenticated")]
    close = events[closed]
    assert (close["src"], close["reason"], close["close_code"]) == (
        "authenticated", action.reason, 4102)
    assert close["delay"] > 0 and "reads too slowly" in close["detail"]
    assert [e["dst"] for e in events if e.get("trigger") == "closed"] == ["backoff"]


async def test_qst_outbound_queue_overflow_closes_4102() -> None:
    """More bytes waiting in a connection's queue than ``outbound_queue_limit``: 4102 at once,
    and what was queued is thrown away."""
    async with run_qst_simulator([QstAccount("alice", "alice-pw")],
                                 outbound_queue_limit=10_000) as sim:
        async with trio_websocket.open_websocket_url(sim.url) as ws:
            await ws.send_message(qst_login())
            assert pb.Response.FromString(await ws.get_message()).HasField("login")
            assert sim.send("alice", (qst_frame(n, pad=1000) for n in range(5))) == 1
            got = [pb.Response.FromString(await ws.get_message()).request_id for _ in range(5)]
            assert got == list(range(5))  # within the bound: written as usual
            # The tenth frame takes the queue over the bound; the first is already in its write
            # (the writer was waiting for it) and goes out whole, the rest are thrown away.
            sim.send("alice", (qst_frame(n, pad=1000) for n in range(20)))
            got = []
            with trio.fail_after(10), pytest.raises(trio_websocket.ConnectionClosed) as closed:
                while True:
                    got.append(pb.Response.FromString(await ws.get_message()).request_id)
            assert got == [0]
            assert closed.value.reason is not None
            assert closed.value.reason.code == 4102
            assert closed.value.reason.reason is not None
            assert "queued, more than 10000" in closed.value.reason.reason
            assert sim.live_connections("alice") == 0
    assert len(sim.stats.slow_readers) == 1
    thrown = [pb.Response.FromString(bytes(frame)).request_id for frame in sim.stats.discarded]
    assert thrown == list(range(1, 10))


# -- CQG: the lag rule ----------------------------------------------------------------------------

#: An application field of ServerMsg (CQG keeps 1-30 for the application's traffic) that the
#: session schema does not declare, as market data is not.
CQG_DATA_TAG = 10


def cqg_data(number: int, pad: int = 2000) -> bytes:
    """An application-only ServerMsg standing for market data: eight digits numbering it, then
    ``pad`` bytes."""
    payload = b"%08d" % number + b"x" * pad
    size = len(payload)
    length = bytes([size & 0x7F | 0x80, size >> 7]) if size >= 0x80 else bytes([size])
    return bytes([CQG_DATA_TAG << 3 | 2]) + length + payload


def cqg_number(data: bytes | str | BrokerMessage) -> int:
    """The number of a ``cqg_data`` frame, or of the message the session made of one."""
    raw = data.message.raw if isinstance(data, BrokerMessage) else data
    assert isinstance(raw, bytes)
    return int(raw[-2008:-2000])


@pytest.mark.parametrize("server_pings", [None, 5.0])
async def test_cqg_lag_rule_sends_a_user_message_closes_and_the_session_restores(
    server_pings: float | None, clock: trio.testing.MockClock,
) -> None:
    """The default (lossless) subscriber stops reading while CQG streams 4 MB: the session
    stops reading and says so; once the oldest frame CQG holds has waited ``max_data_lag``
    (60 s), CQG sends a CRITICAL_ERROR UserMessage and closes; the session takes the close as
    the policy table says for a lost connection while authenticated: it restores the session
    (no new logon) and says so. Everything written before the close, the UserMessage last,
    reaches the subscriber once and in order. With CQG's own Pings every 5 s, they wait behind
    the data unanswered, and nothing else changes."""
    events: Events = []
    sent = 2000
    account = CqgAccount("alice", "alice-pw", server_ping_interval=server_pings)
    async with run_cqg_simulator([account]) as sim:
        async with open_session(cqg_config(sim.url, "alice"), **session_kwargs(events)) as session:
            stream = session.events()
            await session.wait_authenticated()
            assert sim.send("alice", (cqg_data(n) for n in range(sent))) == 1
            with trio.fail_after(300):
                await sim.wait_live_connections("alice", 0)  # CQG gave up on the reader
            assert session.state == "authenticated"  # not reading: the close waits unread
            if server_pings:
                # Every Ping went out behind the data: none answered; the first ones are
                # among what CQG threw away.
                pings = [f for f in sim.stats.discarded if pb_cqg.ServerMsg.FromString(
                    bytes(f)).HasField("ping")]
                assert sim.stats.pings_sent >= 10 and pings and sim.stats.pongs == []
            got: list[int] = []
            seen: list[Any] = []
            with trio.fail_after(120):
                async for event in stream:
                    seen.append(event)
                    if isinstance(event, BrokerMessage):
                        got.append(cqg_number(event))
                    elif isinstance(event, Notice) and event.kind == "restored":
                        break
            assert session.state == "authenticated" and sim.live_connections("alice") == 1
        stats = sim.stats
        assert (stats.logons_ok, stats.restores_ok, stats.violations) == (1, 1, [])
    assert stats.slow_readers == ["user 'alice': a frame waited 60 s"]
    assert stats.user_messages_sent == 1
    # Nothing lost but what CQG threw away (data, and the Pongs to the session's Pings queued
    # behind it), nothing twice, nothing out of order.
    thrown = [cqg_number(f) for f in stats.discarded if f[0] == CQG_DATA_TAG << 3 | 2]
    assert len(got) > 1024 and thrown
    assert got + thrown == list(range(sent))
    notices = [e for e in seen if isinstance(e, Notice)]
    # caught_up comes once the subscriber has taken everything it was given: after the
    # UserMessage as a rule, but that is the session's timing, not what is tested here.
    kinds = [n.kind for n in notices if n.kind != "caught_up"]
    assert kinds == ["slow_consumer", "user_message", "restored"]
    assert "caught_up" in [n.kind for n in notices[1:]]
    told = notices[[n.kind for n in notices].index("user_message")]
    assert told.fault == Fault.BROKER and told.data["message_type"] == 1  # CRITICAL_ERROR
    assert told.data["subject"] == "Data lag" and "60 seconds" in told.data["text"]
    last_data = max(i for i, e in enumerate(seen) if isinstance(e, BrokerMessage))
    assert seen.index(told) > last_data
    # The audit trail: a restore, as the table says for a close while authenticated.
    assert Restore("connection_lost", Fault.NETWORK) == cqg_policy.CONNECTION_LOST
    trail = [(e.get("kind") or e["trigger"], e.get("src"), e.get("dst")) for e in events]
    closed = trail.index(("closed", "authenticated", "restoring"))
    assert trail.index(("slow_consumer", None, None)) < closed
    assert trail.index(("user_message", None, None)) < closed
    assert ("restore_result", "restoring", "authenticated") in trail[closed:]
    close = events[closed]
    assert (close["reason"], close["close_code"]) == (cqg_policy.CONNECTION_LOST.reason, 1008)
    assert not any(e.get("trigger") == "logon_result" for e in events[closed:])


async def test_a_drop_oldest_subscriber_never_holds_back_the_reading(
    clock: trio.testing.MockClock,
) -> None:
    """The same 4 MB to a session whose only subscriber is ``drop_oldest`` and reads nothing
    for twice CQG's lag limit (and three times QST's stall bound): the session keeps reading,
    so neither broker's rule fires; the subscriber is told what it lost and gets the newest."""
    sent = 2000
    async with run_cqg_simulator([CqgAccount("alice", "alice-pw")]) as cqg, \
            run_qst_simulator([QstAccount("alice", "alice-pw")]) as qst:
        configs = [cqg_config(cqg.url, "alice"), qst_config(qst.url, "alice")]
        for config, data, number in [(configs[0], cqg_data, cqg_number),
                                     (configs[1], qst_data, qst_number)]:
            events: Events = []
            async with open_session(config, **session_kwargs(events)) as session:
                latest = session.events(buffer=16, overflow="drop_oldest")
                await session.wait_authenticated()
                sim = cqg if config is configs[0] else qst
                assert sim.send("alice", (data(n) for n in range(sent))) == 1
                await trio.sleep(120)  # the rules' time passes; nothing is awaited here
                assert session.state == "authenticated" and sim.live_connections("alice") == 1
                assert sim.stats.slow_readers == [] and sim.stats.discarded == []
                first = await latest.__anext__()
                assert isinstance(first, Notice) and first.kind == "messages_dropped"
                kept = []
                while latest.backlog[0]:
                    event = await latest.__anext__()
                    if isinstance(event, BrokerMessage):
                        kept.append(number(event))
            assert kept == list(range(sent - len(kept), sent))
            assert latest.dropped + len(kept) == sent
            kinds = {e.get("kind") or e["trigger"] for e in events}
            assert not kinds & {"slow_consumer", "closed"}


async def test_a_watcher_without_messages_never_holds_back_the_reading(
    clock: trio.testing.MockClock,
) -> None:
    """``events(messages=False)``: transitions and notices only. A watcher that reads nothing
    while the broker streams neither pauses the reading nor loses the data of the subscriber
    that reads it."""
    async with run_qst_simulator([QstAccount("alice", "alice-pw")]) as sim:
        async with open_session(qst_config(sim.url, "alice"), **session_kwargs([])) as session:
            watcher = session.events(buffer=1, messages=False)
            reader = session.events()
            await session.wait_authenticated()
            assert sim.send("alice", (qst_data(n) for n in range(200))) == 1
            got: list[int] = []
            with trio.fail_after(30):
                async for event in reader:
                    if isinstance(event, BrokerMessage):
                        got.append(qst_number(event))
                        if len(got) == 200:
                            break
            assert got == list(range(200))
            kinds = {type(e) for e in [e async for e in _drain(watcher)]}
            assert kinds == {Transitioned}
            driver: Any = session._driver
            assert driver._pauses == 0


async def _drain(stream: Any) -> Any:
    """What a stream holds now, without waiting for more."""
    while stream.backlog[0]:
        yield await stream.__anext__()
