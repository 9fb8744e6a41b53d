"""Slow readers: what the simulators do about a client that reads too slowly (QST closes 4102,
CQG's lag rule), and how a session with a lossless subscriber that stops reading ends up, as
each broker's policy table says."""

from __future__ import annotations

import trio_websocket

from brokergate.qst import pb
from brokergate.simulators.qst import QstAccount, run_qst_simulator


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
