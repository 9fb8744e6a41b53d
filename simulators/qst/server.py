"""The QST simulator: a loopback WebSocket server that answers like QST, with scripted faults."""

from __future__ import annotations

import itertools
import logging
import ssl
from collections.abc import AsyncIterator, Collection, Iterable
from contextlib import asynccontextmanager
from functools import partial
from typing import Final

import trio
import trio_websocket

from simulators.qst.accounts import QstAccount, SimulatorStats
from simulators.qst.session import CLOSE_TIMEOUT, Connection, Countdowns, Ending

log = logging.getLogger(__name__)

#: Seconds a new TCP connection gets to complete its WebSocket handshake.
HANDSHAKE_TIMEOUT: Final = 10.0
#: Seconds a stalled connection is held open, silent, before the simulator lets it go.
STALL_SECONDS: Final = 600.0


class QstSimulator:
    """A fake QST server. ``client_ids=None`` accepts any non-empty client_id."""

    def __init__(
        self, accounts: Iterable[QstAccount] = (), *, client_ids: Collection[str] | None = None
    ) -> None:
        self._accounts: dict[str, QstAccount] = {}
        self._countdowns: dict[str, Countdowns] = {}
        self._client_ids = None if client_ids is None else frozenset(client_ids)
        self._numbers = itertools.count(1)
        self.host = "127.0.0.1"
        self.port = 0
        self.tls = False
        self.stats = SimulatorStats()
        for account in accounts:
            self.add_account(account)

    @property
    def url(self) -> str:
        """``ws://host:port/`` (``wss://`` when serving TLS), once serving."""
        if not self.port:
            raise RuntimeError("the QST simulator is not serving yet")
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{'wss' if self.tls else 'ws'}://{host}:{self.port}/"

    def add_account(self, account: QstAccount) -> None:
        """Add or replace an account; its countdowns start afresh."""
        self._accounts[account.user_name] = account
        self._countdowns[account.user_name] = Countdowns.arm(account)

    def account(self, user_name: str) -> QstAccount | None:
        return self._accounts.get(user_name)

    def account_names(self) -> list[str]:
        """The user names this simulator knows, in the order they were added."""
        return list(self._accounts)

    def countdowns(self, user_name: str) -> Countdowns:
        return self._countdowns[user_name]

    def knows_client(self, client_id: str) -> bool:
        return self._client_ids is None or client_id in self._client_ids

    def reset_stats(self) -> None:
        """Start counting afresh (which also forgets wrong passwords, and so lockouts)."""
        self.stats = SimulatorStats()

    async def serve(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        ssl_context: ssl.SSLContext | None = None,
        task_status: trio.TaskStatus[QstSimulator] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Accept connections until cancelled; ``task_status.started(self)`` once listening.

        With ``ssl_context`` (a server context holding a certificate) it speaks ``wss://``.
        """
        tcp = await trio.open_tcp_listeners(port, host=host)
        if port == 0:
            # A name like "localhost" may bind IPv4 and IPv6 on two different free ports: keep one.
            for extra in tcp[1:]:
                await extra.aclose()
            tcp = tcp[:1]
        self.host = host
        self.port = tcp[0].socket.getsockname()[1]
        self.tls = ssl_context is not None
        listeners: list[trio.abc.Listener[trio.abc.Stream]] = list(tcp)
        if ssl_context is not None:
            listeners = [trio.SSLListener(t, ssl_context, https_compatible=True) for t in tcp]
        try:
            async with trio.open_nursery() as nursery:
                await nursery.start(trio.serve_listeners, self._handle_stream, listeners)
                task_status.started(self)
        finally:
            self.port = 0

    async def _handle_stream(self, stream: trio.abc.Stream) -> None:
        """One TCP connection. Nothing may escape: a bad client must not stop the server."""
        label = f"connection {next(self._numbers)}"
        ending: Ending = None
        try:
            # trio_websocket's reader task for this connection lives in this nursery.
            async with trio.open_nursery() as ws_tasks:
                ws = await _handshake(ws_tasks, stream)
                if ws is not None:
                    self.stats.connections += 1
                    ending = await Connection(self, ws, label).run()
                    await _finish(ws, stream, ending)
                ws_tasks.cancel_scope.cancel()
            if ending == "stall":
                # The reader task is gone, so nothing answers pings, but the TCP connection
                # stays open: to the client this is a peer that vanished without a FIN.
                await trio.sleep(STALL_SECONDS)
        except Exception:
            log.exception("QST simulator: %s failed", label)
        finally:
            await trio.aclose_forcefully(stream)


async def _handshake(
    nursery: trio.Nursery, stream: trio.abc.Stream
) -> trio_websocket.WebSocketConnection | None:
    """Accept the WebSocket handshake, or None if the client does not complete one in time.

    Built from ``wrap_server_stream`` rather than ``serve_websocket`` so that the simulator
    keeps hold of the TCP stream, which it needs to drop a connection without a close frame.
    """
    with trio.move_on_after(HANDSHAKE_TIMEOUT):
        request = await trio_websocket.wrap_server_stream(nursery, stream)
        try:
            return await request.accept()
        except trio_websocket.ConnectionClosed:
            return None  # gone before the handshake finished
    # Also a client that does not speak HTTP: trio-websocket answers it "400 Bad Request" and
    # closes the stream, but gives no public signal for it, so it waits out the timeout here.
    return None


async def _finish(
    ws: trio_websocket.WebSocketConnection, stream: trio.abc.Stream, ending: Ending
) -> None:
    if ending == "drop":
        await _drop(stream)
        return
    if ending == "stall":  # handled by the caller, which keeps the stream open
        return
    code, reason = ending or (1000, None)
    with trio.move_on_after(CLOSE_TIMEOUT):
        await ws.aclose(code, reason)


async def _drop(stream: trio.abc.Stream) -> None:
    """End the TCP connection with no WebSocket close frame: the client sees 1006.

    trio-websocket has no public "abort" on a connection, but the simulator owns the TCP stream
    (see ``_handshake``), and closing it from under the WebSocket is exactly a dropped
    connection. trio-websocket's reader task notices and exits.
    """
    await trio.aclose_forcefully(stream)


@asynccontextmanager
async def run_qst_simulator(
    accounts: Iterable[QstAccount] = (),
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    client_ids: Collection[str] | None = None,
) -> AsyncIterator[QstSimulator]:
    """Serve a QST simulator for the duration of the block."""
    sim = QstSimulator(accounts, client_ids=client_ids)
    try:
        async with trio.open_nursery() as nursery:
            await nursery.start(partial(sim.serve, host, port))
            try:
                yield sim
            finally:
                nursery.cancel_scope.cancel()
    except BaseExceptionGroup as group:
        # The server keeps its failures to itself, so this came from the caller's block:
        # hand it back as it was raised.
        if len(group.exceptions) == 1:
            raise group.exceptions[0] from None
        raise
