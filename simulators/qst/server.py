"""The QST simulator: a loopback WebSocket server that answers like QST, with scripted faults."""

from __future__ import annotations

import itertools
import logging
from collections.abc import AsyncIterator, Collection, Iterable
from contextlib import asynccontextmanager
from typing import Final

import trio
import trio_websocket

from brokergate.simulators._accounts import AccountBook
from brokergate.simulators._serving import serve_stream
from brokergate.simulators._websocket import (
    CONTROL_WAIT,
    LoopbackServer,
    SlowReaderRule,
    deliver_to_each,
    running,
)
from brokergate.simulators.qst.accounts import QstAccount, SimulatorStats
from brokergate.simulators.qst.session import Connection, Countdowns, ServerView

log = logging.getLogger(__name__)

#: Seconds a frame may wait at the head of a connection's queue, unwritten because the client
#: stopped reading, before the simulator closes with 4102 (QST does not publish its bound).
DEFAULT_SLOW_READER_TIMEOUT: Final = 30.0
#: Bytes that may wait in a connection's queue, unwritten, before it overflows: 4102.
DEFAULT_OUTBOUND_QUEUE_LIMIT: Final = 32 << 20


class QstSimulator(LoopbackServer, AccountBook[QstAccount, Countdowns]):
    """A fake QST server. ``client_ids=None`` accepts any non-empty client_id.

    A client that reads too slowly is closed with 4102, as QST does when its outbound queue for
    the connection overflows: when a frame has waited ``slow_reader_timeout`` seconds at the
    head of the connection's queue (the client stopped reading), or when more than
    ``outbound_queue_limit`` bytes wait in it. None turns a bound off.
    """

    name = "QST"

    def __init__(
        self,
        accounts: Iterable[QstAccount] = (),
        *,
        client_ids: Collection[str] | None = None,
        slow_reader_timeout: float | None = DEFAULT_SLOW_READER_TIMEOUT,
        outbound_queue_limit: int | None = DEFAULT_OUTBOUND_QUEUE_LIMIT,
    ) -> None:
        super().__init__()
        self._client_ids = None if client_ids is None else frozenset(client_ids)
        self.slow_reader_timeout = slow_reader_timeout
        self.outbound_queue_limit = outbound_queue_limit
        self._numbers = itertools.count(1)
        self.stats = SimulatorStats()
        #: Logged-in connections, in the order they logged in.
        self._live: dict[Connection, None] = {}
        self._live_changed = trio.Event()
        self._open_book(accounts)
        #: All a connection sees of this server.
        self._view = ServerView(
            account=self.account, countdowns=self.countdowns, stats=lambda: self.stats,
            attach=self._attach, detach=self._detach, knows_client=self.knows_client,
            login_settle=lambda: self.login_settle)

    def _account_key(self, account: QstAccount) -> str:
        return account.user_name

    def _arm(self, account: QstAccount) -> Countdowns:
        return Countdowns.arm(account)

    def knows_client(self, client_id: str) -> bool:
        return self._client_ids is None or client_id in self._client_ids

    def reset_stats(self) -> None:
        """Start counting afresh (which also forgets wrong passwords, and so lockouts)."""
        self.stats = SimulatorStats()

    # -- logged-in connections (the registry in a connection's view) -------------------------

    def _attach(self, conn: Connection) -> None:
        """A connection logged in."""
        self._live[conn] = None
        self._changed()

    def _detach(self, conn: Connection) -> None:
        """A connection is ending (any way at all). Idempotent."""
        if self._live.pop(conn, False) is None:
            self._changed()

    def _changed(self) -> None:
        self._live_changed.set()
        self._live_changed = trio.Event()

    # -- controls (for tests and demos) ---------------------------------------------------------

    def _connections(self, user_name: str) -> list[Connection]:
        return [conn for conn in self._live if conn.user_name == user_name]

    def live_connections(self, user_name: str) -> int:
        """How many logged-in connections the user has right now."""
        return len(self._connections(user_name))

    def send(self, user_name: str, frames: Iterable[bytes]) -> int:
        """Queue ``frames`` (serialized ``Response``s the server sends unprompted: market data,
        whatever the test needs the client to receive) on each of the user's logged-in
        connections, in order, behind what is already queued. Returns how many connections took
        them. The simulator's writer sends them as fast as the client reads."""
        return deliver_to_each(self._connections(user_name), frames)

    async def wait_live_connections(self, user_name: str, count: int) -> None:
        """Until the user has ``count`` logged-in connections (0: until the last one ended)."""
        while self.live_connections(user_name) != count:
            await self._live_changed.wait()

    async def _wait_finished(self, conns: Iterable[Connection]) -> None:
        # Bounded: a client that never answers a close frame must not hold up the caller.
        with trio.move_on_after(CONTROL_WAIT):
            for conn in conns:
                await conn.finished.wait()

    async def drop(self, user_name: str) -> int:
        """Drop the TCP connections the user is logged in on, with no close frame (the client
        sees 1006); returns how many, once they are gone."""
        conns = [conn for conn in self._connections(user_name) if conn.abort("drop")]
        await self._wait_finished(conns)
        return len(conns)

    async def close(self, user_name: str, code: int = 4101, reason: str | None = None) -> int:
        """Close the user's logged-in connections with ``code`` (4101: the same user connected
        from another device; 4102: the client reads too slowly; 1000...) and ``reason``
        (default: QST's own words for the code); returns how many, once they are closed."""
        conns = [conn for conn in self._connections(user_name) if conn.close(code, reason)]
        await self._wait_finished(conns)
        return len(conns)

    def _slow_reader_rule(self) -> SlowReaderRule | None:
        if self.slow_reader_timeout is None and self.outbound_queue_limit is None:
            return None
        return SlowReaderRule(max_queued_bytes=self.outbound_queue_limit,
                              max_stall=self.slow_reader_timeout)

    async def _handle_stream(self, stream: trio.abc.Stream) -> None:
        """One TCP connection. Nothing may escape: a bad client must not stop the server."""
        label = f"connection {next(self._numbers)}"

        def connect(ws: trio_websocket.WebSocketConnection) -> Connection:
            self.stats.connections += 1
            return Connection(self._view, ws, label, self._slow_reader_rule())

        await serve_stream(stream, self.name, label, connect)


@asynccontextmanager
async def run_qst_simulator(
    accounts: Iterable[QstAccount] = (),
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    client_ids: Collection[str] | None = None,
    slow_reader_timeout: float | None = DEFAULT_SLOW_READER_TIMEOUT,
    outbound_queue_limit: int | None = DEFAULT_OUTBOUND_QUEUE_LIMIT,
) -> AsyncIterator[QstSimulator]:
    """Serve a QST simulator for the duration of the block."""
    sim = QstSimulator(accounts, client_ids=client_ids, slow_reader_timeout=slow_reader_timeout,
                       outbound_queue_limit=outbound_queue_limit)
    async with running(sim, host, port) as serving:
        yield serving
