"""Minimal hostile brokers on loopback: a WebSocket server and an HTTP server that answer a login
with whatever a script says, including bytes no real broker library would let out (text frames
that are not UTF-8, frames that break the WebSocket protocol, bodies of any size).

The WebSocket side speaks wsproto directly rather than through trio-websocket, so that a script
can write raw frames next to ordinary messages. Nothing here checks what the client sent beyond
reading it: a script decides what to answer and when.
"""

from __future__ import annotations

import struct
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Final

import trio
import wsproto
from wsproto.events import (
    AcceptConnection,
    BytesMessage,
    CloseConnection,
    Ping,
    Request,
    TextMessage,
)

from brokergate.simulators._websocket import LoopbackServer
from brokergate.simulators.firstock.http11 import HttpConnection, Reply
from brokergate.simulators.firstock.http11 import Request as HttpRequestIn

#: WebSocket opcodes a script may write as raw frames.
TEXT: Final = 0x1
BINARY: Final = 0x2
#: Seconds a peer waits for the client's handshake before giving up on it.
HANDSHAKE_SECONDS: Final = 10.0
RECEIVE_BYTES: Final = 64 * 1024


def raw_frame(opcode: int, payload: bytes, *, fin: bool = True, rsv: int = 0) -> bytes:
    """One server frame (servers never mask), exactly as given: no UTF-8 or size checks."""
    first = (0x80 if fin else 0) | (rsv & 0x7) << 4 | (opcode & 0xF)
    size = len(payload)
    if size < 126:
        head = bytes([first, size])
    elif size < 1 << 16:
        head = bytes([first, 126]) + struct.pack("!H", size)
    else:
        head = bytes([first, 127]) + struct.pack("!Q", size)
    return head + payload


class Peer:
    """The server's side of one WebSocket connection, for a script to drive."""

    def __init__(self, stream: trio.abc.Stream, number: int) -> None:
        self.stream = stream
        #: 1 for the first connection the server accepted, 2 for the next...
        self.number = number
        #: The resource the client asked for (path and query string).
        self.target = ""
        self._ws = wsproto.WSConnection(wsproto.ConnectionType.SERVER)
        self._parts: list[bytes | str] = []
        self._messages: list[bytes | str] = []
        self.closed = False

    async def accept(self) -> bool:
        """Complete the opening handshake; False if the client did not ask for one in time."""
        with trio.move_on_after(HANDSHAKE_SECONDS):
            while True:
                for event in self._ws.events():
                    if isinstance(event, Request):
                        self.target = event.target
                        await self._write(self._ws.send(AcceptConnection()))
                        return True
                if not await self._read():
                    return False
        return False

    async def receive(self) -> bytes | str | None:
        """The client's next complete message; None once it closed or went away."""
        while not self._messages:
            if self.closed:
                return None
            for event in self._ws.events():
                await self._on_event(event)
            if self._messages or self.closed:
                continue
            if not await self._read():
                self.closed = True
        return self._messages.pop(0)

    async def send(self, data: bytes | str) -> None:
        """An ordinary message: a binary frame for bytes, a text frame for str."""
        message: BytesMessage | TextMessage = (
            BytesMessage(data=data) if isinstance(data, bytes) else TextMessage(data=data))
        await self._write(self._ws.send(message))

    async def send_frame(self, opcode: int, payload: bytes, *, rsv: int = 0) -> None:
        """A raw frame, however wrong (a text frame that is not UTF-8, reserved bits set)."""
        await self._write(raw_frame(opcode, payload, rsv=rsv))

    async def send_bytes(self, data: bytes) -> None:
        """Bytes straight onto the TCP stream, outside any frame."""
        await self._write(data)

    async def close(self, code: int = 1000, reason: str = "") -> None:
        if not self.closed:
            self.closed = True
            await self._write(self._ws.send(CloseConnection(code=code, reason=reason)))

    async def drop(self) -> None:
        """End the TCP connection without a close frame."""
        self.closed = True
        await trio.aclose_forcefully(self.stream)

    async def hold(self) -> None:
        """Read (and ignore) whatever the client sends until it leaves."""
        while await self.receive() is not None:
            pass

    # -- plumbing -------------------------------------------------------------------------------

    async def _on_event(self, event: object) -> None:
        if isinstance(event, TextMessage | BytesMessage):
            data = event.data
            self._parts.append(bytes(data) if isinstance(data, bytearray) else data)
            if event.message_finished:
                parts, self._parts = self._parts, []
                joined: bytes | str = (b"".join(p for p in parts if isinstance(p, bytes))
                                       if isinstance(event, BytesMessage)
                                       else "".join(p for p in parts if isinstance(p, str)))
                self._messages.append(joined)
        elif isinstance(event, Ping):
            await self._write(self._ws.send(event.response()))
        elif isinstance(event, CloseConnection) and not self.closed:
            self.closed = True
            await self._write(self._ws.send(event.response()))

    async def _read(self) -> bool:
        try:
            data = await self.stream.receive_some(RECEIVE_BYTES)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            return False
        if not data:
            return False
        try:
            self._ws.receive_data(bytes(data))
        except wsproto.utilities.RemoteProtocolError:
            return False
        return True

    async def _write(self, data: bytes) -> None:
        if data:
            try:
                await self.stream.send_all(data)
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                self.closed = True


# --- scripts: what a hostile WebSocket server says --------------------------------------------

Script = Callable[[Peer], Awaitable[None]]


@dataclass(frozen=True)
class Raw:
    """A raw WebSocket frame, however wrong (``opcode``: TEXT, BINARY or any other)."""

    opcode: int
    payload: bytes
    rsv: int = 0


@dataclass(frozen=True)
class Garbage:
    """Bytes straight onto the TCP stream, outside any WebSocket frame."""

    data: bytes


@dataclass(frozen=True)
class Drop:
    """End the TCP connection without a close frame."""


@dataclass(frozen=True)
class Pause:
    """Wait this many (virtual) seconds before the next item."""

    seconds: float


Out = bytes | str | Raw | Garbage | Drop | Pause
#: What a connection's server says: (its answer to the client's first message, what it sends
#: after a pause), given the connection's number (1 for the first).
Plan = Callable[[int], tuple[Sequence[Out], Sequence[Out]]]


async def _put(peer: Peer, item: Out) -> None:
    if isinstance(item, Raw):
        await peer.send_frame(item.opcode, item.payload, rsv=item.rsv)
    elif isinstance(item, Garbage):
        await peer.send_bytes(item.data)
    elif isinstance(item, Drop):
        await peer.drop()
    elif isinstance(item, Pause):
        await trio.sleep(item.seconds)
    else:
        await peer.send(item)


def scripted(plan: Plan, sent: trio.Event, pause: float) -> Script:
    """A server script: answer the client's first message (the login, logon, restore or socket
    connect) as ``plan`` says, wait ``pause`` seconds, send the follow-up, set ``sent``, then
    read until the client leaves."""

    async def script(peer: Peer) -> None:
        answer, follow_up = plan(peer.number)
        if await peer.receive() is None:
            return
        for item in answer:
            await _put(peer, item)
        if follow_up:
            await trio.sleep(pause)
            for item in follow_up:
                await _put(peer, item)
        sent.set()
        if not peer.closed:
            await peer.hold()

    return script


# --- the servers ------------------------------------------------------------------------------


class HostileWebSocketServer(LoopbackServer):
    """Accepts WebSocket connections on loopback and hands each to ``script``."""

    name = "hostile WebSocket"

    def __init__(self, script: Script) -> None:
        super().__init__()
        self.script = script
        self.connections = 0

    async def _handle_stream(self, stream: trio.abc.Stream) -> None:
        self.connections += 1
        peer = Peer(stream, self.connections)
        try:
            if await peer.accept():
                await self.script(peer)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        finally:
            await trio.aclose_forcefully(stream)


Handler = Callable[[HttpRequestIn], Awaitable[Reply]]


class HostileHttpServer(LoopbackServer):
    """HTTP/1.1 on loopback (h11, as the Firstock simulator serves it) answering every request
    with what ``handler`` returns, body and all, whatever its size or content."""

    name = "hostile HTTP"

    def __init__(self, handler: Handler) -> None:
        super().__init__()
        self.handler = handler
        self.requests = 0

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}/api/V3"

    async def _handle_stream(self, stream: trio.abc.Stream) -> None:
        async def counted(request: HttpRequestIn) -> Reply:
            self.requests += 1
            return await self.handler(request)

        def refusal(status: int, message: str) -> Reply:
            return Reply(status, b'{"status":"Failed"}', close=True)

        await HttpConnection(stream, counted, refusal).run()
