"""The QST simulator: a loopback WebSocket server that answers like QST, with scripted faults."""

from __future__ import annotations

import itertools
import logging
from collections.abc import AsyncIterator, Collection, Iterable
from contextlib import asynccontextmanager

import trio

from brokergate.simulators._accounts import AccountBook
from brokergate.simulators._websocket import (
    STALL_SECONDS,
    Ending,
    LoopbackServer,
    finish,
    handshake,
    running,
)
from brokergate.simulators.qst.accounts import QstAccount, SimulatorStats
from brokergate.simulators.qst.session import Connection, Countdowns

log = logging.getLogger(__name__)


class QstSimulator(LoopbackServer, AccountBook[QstAccount, Countdowns]):
    """A fake QST server. ``client_ids=None`` accepts any non-empty client_id."""

    name = "QST"

    def __init__(
        self, accounts: Iterable[QstAccount] = (), *, client_ids: Collection[str] | None = None
    ) -> None:
        super().__init__()
        self._client_ids = None if client_ids is None else frozenset(client_ids)
        self._numbers = itertools.count(1)
        self.stats = SimulatorStats()
        self._open_book(accounts)

    def _account_key(self, account: QstAccount) -> str:
        return account.user_name

    def _arm(self, account: QstAccount) -> Countdowns:
        return Countdowns.arm(account)

    def knows_client(self, client_id: str) -> bool:
        return self._client_ids is None or client_id in self._client_ids

    def reset_stats(self) -> None:
        """Start counting afresh (which also forgets wrong passwords, and so lockouts)."""
        self.stats = SimulatorStats()

    async def _handle_stream(self, stream: trio.abc.Stream) -> None:
        """One TCP connection. Nothing may escape: a bad client must not stop the server."""
        label = f"connection {next(self._numbers)}"
        ending: Ending = None
        try:
            # trio_websocket's reader task for this connection lives in this nursery.
            async with trio.open_nursery() as ws_tasks:
                ws = await handshake(ws_tasks, stream)
                if ws is not None:
                    self.stats.connections += 1
                    ending = await Connection(self, ws, label).run()
                    await finish(ws, stream, ending)
                ws_tasks.cancel_scope.cancel()
            if ending == "stall":
                # The reader task is gone, so nothing answers pings, but the TCP connection
                # stays open: to the client this is a peer that vanished without a FIN.
                await trio.sleep(STALL_SECONDS)
        except Exception:
            log.exception("QST simulator: %s failed", label)
        finally:
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
    async with running(QstSimulator(accounts, client_ids=client_ids), host, port) as sim:
        yield sim
