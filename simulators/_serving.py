"""Serving one TCP connection of a WebSocket simulator (QST, CQG): the handshake, then the
connection the server makes of the WebSocket, ended as it says, a stalled one held open, and
a failure logged. Nothing of it may escape: a bad client must not stop the server."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Final, Protocol

import trio
import trio_websocket

from brokergate.simulators._websocket import HANDSHAKE_TIMEOUT, Ending, closing_race, finish

log = logging.getLogger(__name__)

#: Seconds a silenced connection is held open, mute, before the simulator lets it go.
STALL_SECONDS: Final = 600.0


async def handshake(
    nursery: trio.Nursery, stream: trio.abc.Stream
) -> trio_websocket.WebSocketConnection | None:
    """Accept the WebSocket handshake, or None if the client does not complete one in time.

    Built on ``wrap_server_stream`` rather than ``serve_websocket`` so that the simulator keeps
    hold of the TCP stream, which it needs to drop a connection without a close frame.
    """
    with trio.move_on_after(HANDSHAKE_TIMEOUT):
        request = await trio_websocket.wrap_server_stream(nursery, stream)
        try:
            return await request.accept()
        except trio_websocket.ConnectionClosed:
            return None  # gone before the handshake finished
    # Also a client that does not speak HTTP: trio-websocket answers it "400 Bad Request" and
    # closes the stream without a public signal, so this waits out the timeout.
    return None


class Served(Protocol):
    """A served connection, as ``serve_stream`` runs it."""

    #: Set once the connection is closed, dropped or silent.
    finished: trio.Event

    async def run(self) -> Ending: ...


async def serve_stream(
    stream: trio.abc.Stream,
    who: str,
    label: str,
    connect: Callable[[trio_websocket.WebSocketConnection], Served],
) -> None:
    """One TCP connection of the ``who`` simulator: the handshake, then the connection
    ``connect`` makes of the WebSocket, ended as it says. Nothing may escape: a bad client must
    not stop the server."""
    conn: Served | None = None
    ending: Ending = None
    try:
        # trio_websocket's reader task for this connection lives in this nursery.
        async with trio.open_nursery() as ws_tasks:
            ws = await handshake(ws_tasks, stream)
            if ws is not None:
                conn = connect(ws)
                ending = await conn.run()
                await finish(ws, stream, ending)
            ws_tasks.cancel_scope.cancel()
        if conn is not None and ending == "stall":
            # The reader task is gone, so nothing answers pings, but the TCP connection
            # stays open: to the client this is a peer that vanished without a FIN.
            conn.finished.set()
            await trio.sleep(STALL_SECONDS)
    except Exception as exc:
        if closing_race(exc):
            log.debug("%s simulator: %s: a ping met our close (harmless)", who, label)
        else:
            log.exception("%s simulator: %s failed", who, label)
    finally:
        if conn is not None:
            conn.finished.set()
        await trio.aclose_forcefully(stream)
