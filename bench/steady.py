"""Steady state: the application's data through an authenticated session, against the raw client.

A trading process logs in once and then lives on its data path. Each measurement holds two
sessions to one simulator in its own process, one brokergate session and one raw trio-websocket
client (the minimal client of ``bench._clients``, after its login), and times the same work
through each, in alternating rounds, as client CPU per message (``time.process_time``: this
process only; the simulator's CPU is its own):

- CQG inbound: the simulator streams market-data-sized ServerMsgs (one application field that
  brokergate's session-layer schema does not declare, as market data is not); the application
  parses each with ``ServerMsg.FromString`` under both clients, so what differs is the session.
- QST request round trips: ``session.request(TranslateInstrumentSymbolRequest)`` one after the
  other, against ``Request``/``Response`` by hand.
- CQG outbound: ``session.send(bytes)`` of an application ClientMsg, against
  ``ws.send_message``; the round ends when the simulator has counted them all.
- Firstock socket messages: the simulator streams socket JSON to the session's socket; the
  application receives each text message (neither client parses it).
"""

from __future__ import annotations

import gc
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from functools import partial
from typing import Any

import trio
import trio_websocket

from bench import session_layer
from bench._clients import CLIENT_ID, engine_config, minimal_login
from bench._report import Section, median, ratio, spread
from bench._server import CQG_FEED_TAG, simulator_process, user
from brokergate import AuditLog, BrokerMessage, Session, open_session
from brokergate.cqg import pb as cqg_pb
from brokergate.qst import pb as qst_pb

#: Targets: the session's CPU per message within these multiples of the raw client's.
INBOUND_TARGET = 1.15
ROUND_TRIP_TARGET = 1.15
OUTBOUND_TARGET = 1.10
#: An application ClientMsg: one field in the application's range (order_requests, tag 3).
APP_CLIENT_MSG = bytes([3 << 3 | 2, 12]) + b"order 000001"

#: Sends or receives ``count`` messages; returns the CPU seconds of its own that are not the
#: client's work (asking the simulator whether it has everything), to be left out.
Work = Callable[[int], Awaitable[float]]


@asynccontextmanager
async def _raw(broker: str, info: dict[str, Any], name: str, queue: int = 1
               ) -> AsyncIterator[Any]:
    """The minimal client, logged in, with its WebSocket kept for the measurement."""
    kept: list[trio_websocket.WebSocketConnection] = []
    release, ready = trio.Event(), trio.Event()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(partial(minimal_login, broker, info, name, ready.set, release,
                                   keep=kept.append, queue=queue))
        await ready.wait()
        try:
            yield kept[0]
        finally:
            release.set()


@asynccontextmanager
async def _engine(broker: str, info: dict[str, Any], name: str) -> AsyncIterator[Session]:
    async with open_session(engine_config(broker, info, name),
                            audit=AuditLog.disabled()) as session:
        await session.wait_authenticated()
        yield session


def _inbound_raw(ws: Any, sim: Any, parse: bool, name: str) -> Work:
    async def work(count: int) -> float:
        await sim.command(f"stream {name} {count}")
        for _ in range(count):
            frame = await ws.get_message()
            if parse:
                cqg_pb.ServerMsg.FromString(frame)
        return 0.0
    return work


def _inbound_engine(session: Session, sim: Any, parse: bool) -> Work:
    stream = session.events()

    async def work(count: int) -> float:
        await sim.command(f"stream {user(1)} {count}")
        got = 0
        async for event in stream:
            if type(event) is BrokerMessage:
                if parse:
                    cqg_pb.ServerMsg.FromString(event.message.raw)
                got += 1
                if got == count:
                    break
        return 0.0
    return work


def _round_trips_raw(ws: Any) -> Work:
    ids = iter(range(16, 1 << 30))

    async def work(count: int) -> float:
        for _ in range(count):
            req = qst_pb.Request(request_id=next(ids))
            req.translate_instrument_symbol.symbol_source = 1
            req.translate_instrument_symbol.instrument_symbols.append("ESZ6")
            await ws.send_message(req.SerializeToString())
            answer = qst_pb.Response.FromString(await ws.get_message())
            assert answer.request_id == req.request_id
        return 0.0
    return work


def _round_trips_engine(session: Session) -> Work:
    async def work(count: int) -> float:
        for _ in range(count):
            await session.request(qst_pb.TranslateInstrumentSymbolRequest(
                symbol_source=1, instrument_symbols=["ESZ6"]))
        return 0.0
    return work


def _outbound(send: Callable[[bytes], Awaitable[None]], sim: Any, sent: list[int]) -> Work:
    """``sent``: what both clients have sent so far (the simulator counts them together). The
    round ends when the simulator has read them all; the CPU spent asking it is left out (how
    often it is asked depends on how busy the simulator's process is, not on the client)."""
    async def work(count: int) -> float:
        for _ in range(count):
            await send(APP_CLIENT_MSG)
        sent[0] += count
        asking = time.process_time()
        # Polling another process: no event to wait on here.
        while (await sim.command("received"))["received"] < sent[0]:  # noqa: ASYNC110
            await trio.sleep(0.001)
        return time.process_time() - asking
    return work


async def _compare(works: dict[str, Work], count: int, rounds: int) -> dict[str, list[float]]:
    """Alternating rounds of ``count`` messages through each client; CPU µs and wall µs per
    message, as ``"<name> cpu"`` and ``"<name> wall"``."""
    out: dict[str, list[float]] = {f"{name} {what}": [] for name in works
                                   for what in ("cpu", "wall")}
    for work in works.values():  # warm every path up
        await work(min(count, 50))
    for _ in range(rounds):
        for name, work in works.items():
            gc.collect()
            cpu, wall = time.process_time(), time.perf_counter()
            left_out = await work(count)
            out[f"{name} cpu"].append((time.process_time() - cpu - left_out) / count * 1e6)
            out[f"{name} wall"].append((time.perf_counter() - wall) / count * 1e6)
    return out


#: trio-websocket's message_queue_size for the batched raw client of the inbound paths.
BATCHED_QUEUE = 1024


async def _measure(kind: str, count: int, rounds: int) -> dict[str, list[float]]:
    broker = {"cqg inbound": "cqg", "qst round trips": "qst", "cqg outbound": "cqg",
              "firstock socket": "firstock"}[kind]
    async with simulator_process(broker, "--accounts", "3") as sim, AsyncExitStack() as stack:
        ws = await stack.enter_async_context(_raw(broker, sim.info, user(0)))
        session = await stack.enter_async_context(_engine(broker, sim.info, user(1)))
        works: dict[str, Work]
        if kind in ("cqg inbound", "firstock socket"):
            parse = kind == "cqg inbound"
            batched = await stack.enter_async_context(
                _raw(broker, sim.info, user(2), queue=BATCHED_QUEUE))
            works = {"raw": _inbound_raw(ws, sim, parse, user(0)),
                     "engine": _inbound_engine(session, sim, parse),
                     "batched": _inbound_raw(batched, sim, parse, user(2))}
        elif kind == "qst round trips":
            works = {"raw": _round_trips_raw(ws), "engine": _round_trips_engine(session)}
        else:
            sent = [0]
            works = {"raw": _outbound(ws.send_message, sim, sent),
                     "engine": _outbound(session.send, sim, sent)}
        return await _compare(works, count, rounds)


def run(*, quick: bool) -> Section:
    count, rounds = (200, 2) if quick else (5000, 7)
    section = Section(
        "4. Steady state: the data path after login",
        ["path", "raw client µs/msg", "brokergate µs/msg", "brokergate adds µs", "ratio",
         "spread (brokergate)", "raw msgs/s", "brokergate msgs/s"],
    )
    targets = {"cqg inbound": INBOUND_TARGET, "firstock socket": INBOUND_TARGET,
               "qst round trips": ROUND_TRIP_TARGET, "cqg outbound": OUTBOUND_TARGET}
    batched: dict[str, float] = {}
    alone = session_layer.measure(2_000 if quick else session_layer.LOOPS)
    for kind, target in targets.items():
        figures = trio.run(_measure, kind, count, rounds)
        raw, ours = median(figures["raw cpu"]), median(figures["engine cpu"])
        section.rows.append([
            kind, f"{raw:.1f}", f"{ours:.1f}", f"{ours - raw:+.1f}", ratio(ours, raw),
            spread(figures["engine cpu"]), f"{1e6 / median(figures['raw wall']):,.0f}",
            f"{1e6 / median(figures['engine wall']):,.0f}",
        ])
        section.targets.append((f"{kind}: client CPU per message ≤ {target:.2f}x the raw "
                                f"client (measured {ours / raw:.2f}x)", ours <= raw * target))
        if "batched cpu" in figures:
            batched[kind] = median(figures["batched cpu"])
    section.notes += [
        f"{rounds} alternating rounds of {count} messages per path, medians; client CPU of "
        "this process per message (the simulator runs in its own process).",
        f"CQG frames carry one application field (tag {CQG_FEED_TAG}, about 80 bytes), parsed "
        "by the application under both clients; the raw client is trio-websocket with "
        f"protobuf and nothing else, logged in as {CLIENT_ID!r} like the benchmark's sessions.",
        "QST round trips are one request at a time (answer before the next request).",
        "The raw client is trio-websocket as documented: its reader passes each message over "
        "a channel of one (message_queue_size=1), yielding to the application at every "
        "message. brokergate's reader hands all the messages of one read to the subscriber's "
        "buffer without yielding between them. The same raw client with a channel of "
        f"{BATCHED_QUEUE} (its reader still yields at every message it puts in): "
        + "; ".join(f"{kind} {figure:.1f} µs/msg" for kind, figure in batched.items()) + ".",
        "CQG outbound rounds end when the simulator has read every message; the CPU this "
        "process spends asking it is left out of both clients' figures.",
        "The session layer alone, in-process with no sockets and its code in the CPU's caches "
        "(bench/session_layer.py, python -m bench.session_layer): "
        f"a CQG market-data frame costs model.handle {alone['cqg frame']:.2f} µs, a Firstock "
        f"quote {alone['firstock frame']:.2f} µs, a QST answer {alone['qst answer']:.2f} µs "
        f"(decoded, to find its request); send() adds {alone['cqg send']:.2f} µs to a "
        "WebSocket that writes nothing. Between socket calls the caches are colder, so a "
        "session pays more than this.",
    ]
    return section
