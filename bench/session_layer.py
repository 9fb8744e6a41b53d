"""The session layer's own CPU per message, in-process and without sockets.

The steady-state table compares whole clients over loopback, where a message's cost is mostly
the socket calls and trio's scheduling, and where one run differs from the next by more than
the session layer adds. This measures what the session layer itself does per message, in a tight
loop, with the model driven to authenticated as the runtime drives it:

- an inbound data frame: ``model.handle(FrameReceived)`` for CQG market data (one field the
  session schema does not declare) and a Firstock socket quote, and for a QST answer to a
  request (decoded, as it must be to find its request id);
- an outbound ``send()``: the driver's whole path (the request gate, the CQG ``ClientMsg``
  check, the inactivity clock) over a WebSocket whose ``send_message`` does nothing, less that
  ``send_message`` called directly.

In a loop the code is in the CPU's caches; between socket calls it is not, so a session pays
more than this. ``python -m bench.session_layer`` prints the figures; the steady-state section
gives them in a note.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from functools import partial
from typing import Any

import trio

from bench.transitions import Cycle, cycles
from brokergate.engine._audit import AuditLog
from brokergate.engine._driver import SessionDriver
from brokergate.engine._driver_connection import Connection
from brokergate.engine._gateway import open_gateway
from brokergate.machines import AUTHENTICATED, FrameReceived, LoginModel
from brokergate.machines.brokers import broker_named
from brokergate.machines.qst import qst_pb2 as qst_pb

LOOPS = 100_000
#: A CQG frame of market data: one ~80-byte field (tag 10) that the session schema does not
#: declare, as the steady-state benchmark's feed sends.
CQG_DATA = bytes([10 << 3 | 2, 80]) + b"m" * 80
FIRSTOCK_QUOTE = ('{"t":"tk","e":"NSE","tk":"26000","lp":"22011.35","pc":"0.45","v":"1234567",'
                  '"o":"21990.10","h":"22050.00","l":"21950.55","ap":"22001.20"}')
#: An application ClientMsg: one field in the application's range (order_requests, tag 3).
CQG_ORDER = bytes([3 << 3 | 2, 12]) + b"order 000001"


def _authenticated(cycle: Cycle) -> LoginModel:
    model = cycle.build()
    for event in cycle.events:
        model.handle(event)
        if model.state == AUTHENTICATED:
            return model
    raise RuntimeError(f"{cycle.broker}'s cycle never reached authenticated")


def _per_call(run: Callable[[], object], loops: int) -> float:
    """µs per call, best of three timings (the least disturbed)."""
    best = float("inf")
    for _ in range(3):
        start = time.process_time()
        for _ in range(loops):
            run()
        best = min(best, time.process_time() - start)
    return best / loops * 1e6


def _qst_answer() -> bytes:
    answer = qst_pb.Response(request_id=7)
    record = answer.translate_instrument_symbol.records.add()
    record.symbol = "ESZ6"
    return answer.SerializeToString()


class _NullWebSocket:
    async def send_message(self, message: bytes | str) -> None:
        pass


async def _async_per_call(run: Callable[[], Awaitable[None]], loops: int) -> float:
    best = float("inf")
    for _ in range(3):
        start = time.process_time()
        for _ in range(loops):
            await run()
        best = min(best, time.process_time() - start)
    return best / loops * 1e6


async def _send_added(model: Any, loops: int) -> float:
    """What ``send()`` adds to the WebSocket's own ``send_message``, µs per message."""
    log = AuditLog.disabled().session(broker="cqg", session_id="bench", account="bench",
                                      secrets=[])
    async with open_gateway() as gateway:
        driver = SessionDriver(model, model.config, "bench", log, host=gateway,
                               capabilities=broker_named("cqg").capabilities)
        return await _send_through(driver, model, loops)


async def _send_through(driver: SessionDriver, model: Any, loops: int) -> float:
    conn = Connection(model.epoch)
    ws: Any = _NullWebSocket()
    conn.ws = ws
    driver._conn, driver._live_epoch = conn, model.epoch
    alone = await _async_per_call(lambda: ws.send_message(CQG_ORDER), loops)
    through = await _async_per_call(lambda: driver.send(CQG_ORDER), loops)
    return through - alone


def measure(loops: int = LOOPS) -> dict[str, float]:
    """µs per message: ``"cqg frame"``, ``"firstock frame"``, ``"qst answer"``, ``"cqg send"``."""
    by_broker = {cycle.broker: cycle for cycle in cycles()}
    figures: dict[str, float] = {}
    for broker, key, frame in (("CQG", "cqg frame", CQG_DATA),
                               ("Firstock", "firstock frame", FIRSTOCK_QUOTE),
                               ("QST", "qst answer", _qst_answer())):
        model = _authenticated(by_broker[broker])
        event = FrameReceived(model.epoch, frame)
        figures[key] = _per_call(partial(model.handle, event), loops)
    figures["cqg send"] = trio.run(_send_added, _authenticated(by_broker["CQG"]), loops)
    return figures


def main() -> None:
    for name, value in measure().items():
        print(f"{name}: {value:.2f} µs")


if __name__ == "__main__":
    main()
