"""Bare clients for the Firstock simulator tests: raw HTTP bytes, and a WebSocket client that
never answers Pings (trio-websocket always does, so this one speaks wsproto by hand)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from urllib.parse import urlsplit

import trio
import wsproto
from wsproto.events import AcceptConnection, Request, TextMessage

from brokergate.simulators.firstock import FirstockSimulator


def _address(url: str) -> tuple[str, int]:
    parts = urlsplit(url)
    assert parts.hostname is not None and parts.port is not None
    return parts.hostname, parts.port


async def raw_http(sim: FirstockSimulator, data: bytes) -> bytes:
    """Send ``data`` on a fresh connection to the HTTP API; everything the server says until it
    closes (the caller bounds the wait)."""
    host, port = _address(sim.url)
    stream = await trio.open_tcp_stream(host, port)
    async with stream:
        await stream.send_all(data)
        received = bytearray()
        while chunk := await stream.receive_some(65536):
            received += chunk
    return bytes(received)


@asynccontextmanager
async def deaf_socket(url: str) -> AsyncIterator[tuple[trio.SocketStream, str]]:
    """Open a WebSocket, read its first text message, and from then on read nothing at all, so
    no Ping is ever answered. Yields the TCP stream and that first message."""
    parts = urlsplit(url)
    host, port = _address(url)
    target = parts.path + (f"?{parts.query}" if parts.query else "")
    stream = await trio.open_tcp_stream(host, port)
    async with stream:
        ws = wsproto.WSConnection(wsproto.ConnectionType.CLIENT)
        await stream.send_all(ws.send(Request(host=f"{host}:{port}", target=target)))
        first: str | None = None
        accepted = False
        with trio.fail_after(30):
            while first is None:
                ws.receive_data(await stream.receive_some(65536))
                for event in ws.events():
                    if isinstance(event, AcceptConnection):
                        accepted = True
                    elif isinstance(event, TextMessage) and accepted:
                        first = event.data
        yield stream, first


async def read_until_closed(stream: trio.SocketStream) -> None:
    """Read (and discard) until the server closes the TCP connection."""
    with trio.fail_after(60):
        try:
            while await stream.receive_some(65536):
                pass
        except trio.BrokenResourceError:
            pass  # a reset is as closed as a FIN
