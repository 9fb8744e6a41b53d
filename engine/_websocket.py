"""The session's WebSocket: trio-websocket's client, with its messages handed straight to us.

trio-websocket reads the socket in a reader task of its own and passes each complete message
through a memory channel to whoever awaits ``get_message()``. For a session that is one more
task wake-up per frame than it needs: the reader wakes for the socket, then the session's
connection task wakes for the channel, then the application wakes for its event. Here the reader
hands each message to the session itself (``on_message``), in the reader's own task; the
session's connection task only waits for the end. Everything else stays trio-websocket's: the
opening handshake, answering pings, matching pongs, the close handshake, sending, and the
``max_message_size`` check.

This reaches into trio-websocket's internals, all in this module, and bounds the dependency to
the versions it was read against (``trio-websocket>=0.12.2,<0.13`` in pyproject.toml). It
relies on these, as in 0.12.2:

- ``WebSocketConnection(stream, wsproto.WSConnection(CLIENT), host=, path=,
  max_message_size=)`` builds a client without starting it (what ``wrap_client_stream`` does
  before it starts the reader);
- ``connection._reader_task()`` is the reader: it sends the opening request, sets
  ``connection._open_handshake`` when the server accepts, and raises ``ConnectionRejected`` (a
  ``HandshakeError``) when it refuses;
- the reader delivers every complete message with ``await connection._send_channel.send(m)``,
  uses ``_send_channel`` as an async context manager around its loop, and closes it
  (``aclose()``) when the WebSocket closes, whichever side closed it and however (a close frame,
  the TCP connection ending, a frame over ``max_message_size``), after setting
  ``connection.closed``.

So replacing ``_send_channel`` before the reader starts replaces the channel, and nothing else.
``tests/test_websocket_direct.py`` holds this to stock trio-websocket: for the same server
behaviour (messages text and binary, whole and fragmented, in the same TCP segment as the
handshake's answer, pings, every kind of close), the session sees the same messages in the same
order and the same close as a ``get_message()`` loop does.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit

import trio
import trio_websocket
import wsproto

#: Called once the server has accepted, before the first message.
OnOpen = Callable[[trio_websocket.WebSocketConnection], Awaitable[None]]
#: Called with each complete message, in the reader's task, in order. While it waits, nothing
#: more is read from the socket (which is how a session pushes back on its broker). It must not
#: raise ``trio.ClosedResourceError`` or ``trio.BrokenResourceError``: the reader takes those
#: for its channel having been closed, drops the message and reads on.
OnMessage = Callable[[bytes | str], Awaitable[None]]


class Delivery:
    """Stands in for the send side of trio-websocket's message channel (see the module's
    docstring): ``send`` is the session's own ``on_message``, and the close sets ``ended``."""

    __slots__ = ("_on_message", "_on_open", "_opened", "ended", "send", "ws")

    def __init__(self, ws: trio_websocket.WebSocketConnection, on_open: OnOpen,
                 on_message: OnMessage) -> None:
        self.ws = ws
        self.ended = trio.Event()
        self._on_open = on_open
        self._on_message = on_message
        self._opened = False
        # Until the session has been told the connection is open, a message first tells it
        # (the handshake's answer and the first frames may come in one read, and the reader
        # hands those on before the task that awaited the handshake has run again).
        self.send: OnMessage = self._first

    async def _first(self, message: bytes | str) -> None:
        await self.opened()
        await self._on_message(message)

    async def opened(self) -> None:
        """Tell the session the connection is open, once, whichever task gets here first."""
        if not self._opened:
            self._opened = True
            self.send = self._on_message
            await self._on_open(self.ws)

    async def aclose(self) -> None:
        self.ended.set()

    async def __aenter__(self) -> Delivery:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, *rest: object) -> None:
        # The reader's loop ended. With an exception (ours, from ``on_message``, or the
        # handshake's refusal) the nursery reports it; the WebSocket has not "ended" by closing.
        if exc_type is None:
            self.ended.set()


def _request_target(url: str) -> tuple[str, str]:
    """The Host header and the resource of a ws:// or wss:// URL."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    default_port = 443 if parts.scheme == "wss" else 80
    host_header = host if parts.port in (None, default_port) else f"{host}:{parts.port}"
    resource = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    return host_header, resource


async def open_client(nursery: trio.Nursery, stream: trio.abc.Stream, url: str, *,
                      max_message_size: int, on_open: OnOpen,
                      on_message: OnMessage) -> Delivery:
    """The WebSocket opening handshake over an open stream, its reader in ``nursery``.

    Returns once the server has accepted and ``on_open`` has run; from then on every message
    goes to ``on_message`` and the returned ``Delivery.ended`` is set when the WebSocket has
    closed (``Delivery.ws.closed`` says how; None when the TCP connection broke off before a
    close was seen). A refused handshake raises ``trio_websocket.HandshakeError`` out of
    ``nursery``'s reader task.
    """
    host, resource = _request_target(url)
    ws = trio_websocket.WebSocketConnection(
        stream, wsproto.WSConnection(wsproto.ConnectionType.CLIENT),
        host=host, path=resource, max_message_size=max_message_size,
    )
    delivery = Delivery(ws, on_open, on_message)
    internals: Any = ws
    internals._send_channel = delivery
    nursery.start_soon(internals._reader_task)
    await internals._open_handshake.wait()
    await delivery.opened()
    return delivery
