"""brokergate.engine._websocket against stock trio-websocket: the same server behaviour must give
the session the same messages, in the same order, and the same close as a ``get_message()`` loop
over ``wrap_client_stream`` gives. The module replaces one internal of trio-websocket (the
channel its reader delivers messages to); this is what holds that replacement to the library's
own behaviour, scenario by scenario, over real loopback sockets.

The server is scripted at the byte level (wsproto for the handshake, raw frames after it), so a
scenario can put the handshake's answer and many frames in one TCP segment, fragment messages,
break the protocol, or cut the TCP connection."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import pytest
import trio
import trio_websocket
import wsproto
from wsproto.events import AcceptConnection, CloseConnection, Pong, Request

from brokergate.engine._websocket import open_client
from reliability.hostile import BINARY, TEXT, raw_frame

MAX_SIZE = 1000
PING, CLOSE, CONTINUATION = 0x9, 0x8, 0x0


def _close_frame(code: int, reason: str = "") -> bytes:
    return raw_frame(CLOSE, code.to_bytes(2, "big") + reason.encode())


@dataclass
class Script:
    """What the server does after the client's opening request: ``first`` goes out in the same
    write as the handshake's answer; then each step in turn."""

    first: bytes = b""
    steps: Sequence[tuple[str, Any]] = ()
    #: What the server saw the client send (pongs, its close).
    seen: list[str] = field(default_factory=list)


async def _serve(stream: trio.SocketStream, script: Script) -> None:
    ws = wsproto.WSConnection(wsproto.ConnectionType.SERVER)

    async def events_until(wanted: Callable[[object], bool]) -> bool:
        while True:
            for event in ws.events():
                if isinstance(event, Pong):
                    script.seen.append("pong")
                elif isinstance(event, CloseConnection):
                    script.seen.append(f"close {event.code}")
                if wanted(event):
                    return True
            data = await stream.receive_some(65536)
            if not data:
                return False
            ws.receive_data(data)

    try:
        await events_until(lambda e: isinstance(e, Request))
        await stream.send_all(ws.send(AcceptConnection()) + script.first)
        for action, arg in script.steps:
            if action == "write":
                await stream.send_all(arg)
            elif action == "await pong":
                await events_until(lambda e: isinstance(e, Pong))
            elif action == "await close":
                if await events_until(lambda e: isinstance(e, CloseConnection)):
                    await stream.send_all(_close_frame(1000))
            elif action == "close":
                await stream.send_all(_close_frame(*arg))
                await events_until(lambda e: isinstance(e, CloseConnection))
            elif action == "drop":
                break
    except (trio.BrokenResourceError, trio.ClosedResourceError,
            wsproto.utilities.LocalProtocolError):
        pass  # the client went away first: nothing more to say to it
    finally:
        await trio.aclose_forcefully(stream)


Outcome = tuple[list[object], tuple[int, str | None] | None]


async def _with_server(script: Script, client: Callable[[int], Any]) -> Outcome:
    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(
            partial(trio.serve_tcp, lambda s: _serve(s, script), 0, host="127.0.0.1"))
        port = listeners[0].socket.getsockname()[1]
        with trio.fail_after(10):
            outcome: Outcome = await client(port)
        nursery.cancel_scope.cancel()
    return outcome


def _reason(closed: trio_websocket.CloseReason | None) -> tuple[int, str | None] | None:
    return None if closed is None else (closed.code, closed.reason)


async def _stock(port: int, close_after: int | None) -> Outcome:
    """trio-websocket as its documentation uses it: a ``get_message()`` loop."""
    got: list[object] = []
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    async with trio.open_nursery() as nursery:
        ws = await trio_websocket.wrap_client_stream(nursery, stream, "127.0.0.1", "/feed",
                                                     max_message_size=MAX_SIZE)
        got.append("open")
        try:
            while True:
                got.append(await ws.get_message())
                if close_after is not None and len(got) == close_after + 1:
                    nursery.start_soon(ws.aclose, 4000, "bye")
        except trio_websocket.ConnectionClosed as exc:
            closed = exc.reason
        nursery.cancel_scope.cancel()
    return got, _reason(closed)


async def _direct(port: int, close_after: int | None) -> Outcome:
    """The session's way: messages handed on from the reader's own task."""
    got: list[object] = []
    opened: list[trio_websocket.WebSocketConnection] = []
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    async with trio.open_nursery() as nursery:
        async def on_open(ws: trio_websocket.WebSocketConnection) -> None:
            got.append("open")
            opened.append(ws)

        async def on_message(message: bytes | str) -> None:
            got.append(message)
            if close_after is not None and len(got) == close_after + 1:
                nursery.start_soon(opened[0].aclose, 4000, "bye")

        delivery = await open_client(nursery, stream, f"ws://127.0.0.1:{port}/feed",
                                     max_message_size=MAX_SIZE, on_open=on_open,
                                     on_message=on_message)
        await delivery.ended.wait()
        nursery.cancel_scope.cancel()
    return got, _reason(delivery.ws.closed)


def _fragments() -> bytes:
    return (raw_frame(BINARY, b"frag", fin=False) + raw_frame(CONTINUATION, b"men", fin=False)
            + raw_frame(CONTINUATION, b"ted") + raw_frame(TEXT, "t\u00e9".encode()[:2], fin=False)
            + raw_frame(CONTINUATION, "t\u00e9".encode()[2:]))


SCENARIOS: dict[str, tuple[Callable[[], Script], int | None]] = {
    # Messages in the handshake's own segment, whole and fragmented, then a broker's close.
    "same segment, fragments, broker close": (lambda: Script(
        first=raw_frame(BINARY, b"one") + raw_frame(TEXT, b"two") + _fragments(),
        steps=[("write", raw_frame(BINARY, b"three")), ("close", (4101, "displaced"))]), None),
    # Many frames at once: more than one read of the reader's buffer.
    "a burst of 500 frames": (lambda: Script(
        first=b"".join(raw_frame(BINARY, b"%05d" % n * 10) for n in range(500)),
        steps=[("close", (1000, ""))]), None),
    # The TCP connection ends with no close frame.
    "tcp cut": (lambda: Script(first=raw_frame(BINARY, b"a"),
                               steps=[("write", raw_frame(BINARY, b"b")), ("drop", None)]), None),
    # A message over max_message_size: our side closes with 1009.
    "too large": (lambda: Script(
        first=raw_frame(BINARY, b"ok") + raw_frame(BINARY, b"x" * (MAX_SIZE + 1)),
        steps=[("await close", None)]), None),
    # Frames that break the protocol.
    "text not utf-8": (lambda: Script(first=raw_frame(BINARY, b"ok") + raw_frame(TEXT, b"\xff"),
                                      steps=[("await close", None)]), None),
    "reserved bits": (lambda: Script(
        first=raw_frame(BINARY, b"ok") + raw_frame(BINARY, b"r", rsv=4),
        steps=[("await close", None)]), None),
    # A ping from the server is answered (by the reader, in both) between messages.
    "server ping": (lambda: Script(
        first=raw_frame(BINARY, b"before") + raw_frame(PING, b"p1"),
        steps=[("await pong", None), ("write", raw_frame(BINARY, b"after")),
               ("close", (1000, "bye"))]), None),
    # Our side closes after the second message, the server still sending.
    "client closes": (lambda: Script(
        first=raw_frame(BINARY, b"1") + raw_frame(BINARY, b"2"),
        steps=[("await close", None)]), 2),
}


@pytest.mark.parametrize("name", list(SCENARIOS))
async def test_the_session_sees_what_a_get_message_loop_sees(name: str) -> None:
    make, close_after = SCENARIOS[name]
    stock_script, direct_script = make(), make()
    stock = await _with_server(stock_script, lambda port: _stock(port, close_after))
    direct = await _with_server(direct_script, lambda port: _direct(port, close_after))
    assert direct == stock
    assert direct_script.seen == stock_script.seen  # the same pongs and close answers sent
    assert direct[0][0] == "open"  # told of the open before any message


async def test_the_scenarios_are_not_vacuous() -> None:
    """Each scenario exercises what it names (so the equivalence above compares something)."""
    outcomes = {}
    for name, (make, close_after) in SCENARIOS.items():
        script = make()
        outcomes[name] = (await _with_server(script, lambda p, c=close_after: _direct(p, c)),
                          script.seen)
    (got, closed), _ = outcomes["same segment, fragments, broker close"]
    assert got == ["open", b"one", "two", b"fragmented", "t\u00e9", b"three"]
    assert closed == (4101, "displaced")
    assert len(outcomes["a burst of 500 frames"][0][0]) == 501
    assert outcomes["tcp cut"][0] == (["open", b"a", b"b"], (1006, None))
    (got, closed), _ = outcomes["too large"]
    assert got == ["open", b"ok"] and closed is not None and closed[0] == 1009
    assert outcomes["server ping"][1][0] == "pong"
    assert outcomes["server ping"][0][0] == ["open", b"before", b"after"]
    (got, closed), seen = outcomes["client closes"]
    assert got[:3] == ["open", b"1", b"2"] and "close 4000" in seen


async def test_a_waiting_message_handler_holds_back_the_reading() -> None:
    """While ``on_message`` waits, nothing more is read: the backpressure a full subscriber
    relies on. The server's burst stays in the socket until the handler is released."""
    release = trio.Event()
    got: list[bytes | str] = []
    script = Script(first=b"".join(raw_frame(BINARY, b"%d" % n) for n in range(50)),
                    steps=[("close", (1000, ""))])

    async def client(port: int) -> Outcome:
        stream = await trio.open_tcp_stream("127.0.0.1", port)
        async with trio.open_nursery() as nursery:
            async def on_open(ws: trio_websocket.WebSocketConnection) -> None:
                pass

            async def on_message(message: bytes | str) -> None:
                got.append(message)
                if len(got) == 3:
                    await release.wait()

            delivery = await open_client(nursery, stream, f"ws://127.0.0.1:{port}/",
                                         max_message_size=MAX_SIZE, on_open=on_open,
                                         on_message=on_message)
            await trio.testing.wait_all_tasks_blocked()
            assert len(got) == 3 and not delivery.ended.is_set()
            release.set()
            await delivery.ended.wait()
            nursery.cancel_scope.cancel()
        return list(got), _reason(delivery.ws.closed)

    got_all, closed = await _with_server(script, client)
    assert got_all == [b"%d" % n for n in range(50)] and closed == (1000, None)
