"""Slow readers: what the simulators do about a client that reads too slowly (QST closes 4102,
CQG's lag rule), and how a session with a lossless subscriber that stops reading ends up, as
each broker's policy table says."""

from __future__ import annotations

from typing import Any

import pytest
import trio
import trio.testing
import trio_websocket
from helpers import qst_config, session_kwargs

from brokergate import BrokerMessage, Notice, Transitioned, open_session
from brokergate.machines._policy import Retry
from brokergate.machines._sansio import Fault
from brokergate.machines.qst import policy as qst_policy
from brokergate.qst import pb
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
    """An unsolicited Response standing for market data: its request_id numbers it, and an
    ErrorMessage text pads it to the size a test needs."""
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


def qst_number(event: BrokerMessage) -> int:
    return int(event.message.records[0].instrument_id)


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
    assert 0 < sim.stats.frames_discarded < sent - 1024
    assert got == list(range(sent - sim.stats.frames_discarded))
    notices = [e.kind for e in seen if isinstance(e, Notice)]
    assert notices == ["slow_consumer", "caught_up"]
    # The audit trail: told first, then the close, taken as the table says for 4102.
    action = qst_policy.classify_close(4102)
    assert action == Retry("slow_reader", Fault.BROKER) and not action.immediate
    trail = [(e.get("kind") or e["trigger"], e.get("dst")) for e in events]
    told = trail.index(("slow_consumer", None))
    closed = trail.index(("closed", "backoff"))
    assert told < closed
    assert trail[closed + 1:closed + 5] == [
        ("caught_up", None), ("backoff_elapsed", "connecting"),
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
    assert len(sim.stats.slow_readers) == 1 and sim.stats.frames_discarded == 9
