"""A fault-injecting TCP proxy for loopback tests: it sits between a session and a simulator.

Each TCP connection the proxy accepts is given a list of ``Fault``s by its ``FaultPlan``, either
scripted connection by connection or drawn from a seeded random generator, so that a failing run
can be replayed from its seed. The proxy knows nothing of WebSocket or HTTP: it moves bytes, and
that is the point. A fault lands wherever the bytes happen to be, inside the opening handshake,
halfway through a protobuf frame, between a login and its answer.

The kinds:

========  ======================================================================================
latency   every chunk waits ``delay`` seconds before it is forwarded
throttle  bytes are forwarded at ``rate`` bytes per second
split     every chunk is forwarded in pieces of 1 to ``piece`` bytes
drop      the connection is closed cleanly (FIN both ways) before the write that crosses the
          trigger: it ends between two writes
reset     the connection is reset (RST both ways) at the trigger byte
truncate  the write that crosses the trigger is cut short inside it (at least one byte is
          lost), then the connection closes
stall     forwarding stops without a close: the peer has vanished (a half-open connection);
          what the client sends is read and thrown away until the client gives up and closes
========  ======================================================================================

The one-shot kinds (drop, reset, truncate, stall) trigger when ``at_byte`` bytes have passed in
their direction or ``at_seconds`` after the connection opened, whichever comes first.
Simulator-side scripted faults (a drop in the middle of a login, a server that goes silent)
exist too; this proxy adds faults the server cannot script, at arbitrary byte positions.
"""

from __future__ import annotations

import contextlib
import random
import socket
import struct
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Final, Literal

import trio

#: Every kind of fault the proxy can inject.
FAULT_KINDS: Final = ("latency", "throttle", "split", "drop", "reset", "truncate", "stall")
#: Kinds that act once, at a trigger, and end (or freeze) the connection.
ONE_SHOT: Final = frozenset({"drop", "reset", "truncate", "stall"})
#: From the server to the client ("down"), from the client to the server ("up").
Direction = Literal["down", "up"]

_CHUNK = 65536


@dataclass(frozen=True, slots=True)
class Fault:
    """One fault on one connection. See the module docstring for the kinds."""

    kind: str
    #: The direction a continuous fault slows, or whose bytes a one-shot trigger counts.
    direction: Direction = "down"
    #: One-shot trigger: after this many bytes in ``direction``...
    at_byte: int | None = None
    #: ...or this many seconds after the connection opened (None: bytes only).
    at_seconds: float | None = None
    #: latency: seconds added before each chunk.
    delay: float = 0.0
    #: throttle: bytes per second.
    rate: int = 0
    #: split: the largest piece, in bytes.
    piece: int = 1

    def __post_init__(self) -> None:
        if self.kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {self.kind!r}; use one of: "
                             f"{', '.join(FAULT_KINDS)}")
        if self.direction not in ("down", "up"):
            raise ValueError(f"direction must be 'down' or 'up', not {self.direction!r}")
        if self.kind in ONE_SHOT and self.at_byte is None and self.at_seconds is None:
            raise ValueError(f"a {self.kind} fault needs at_byte or at_seconds")
        if self.kind == "throttle" and self.rate <= 0:
            raise ValueError("a throttle fault needs a positive rate (bytes per second)")
        if self.kind == "split" and self.piece < 1:
            raise ValueError("a split fault needs piece >= 1")
        if self.delay < 0 or (self.at_byte is not None and self.at_byte < 0):
            raise ValueError("delay and at_byte must not be negative")

    def describe(self) -> str:
        if self.kind == "latency":
            return f"latency {self.delay * 1000:.0f} ms {self.direction}"
        if self.kind == "throttle":
            return f"throttle {self.rate} B/s {self.direction}"
        if self.kind == "split":
            return f"split into pieces of at most {self.piece} B {self.direction}"
        where = []
        if self.at_byte is not None:
            where.append(f"after {self.at_byte} B {self.direction}")
        if self.at_seconds is not None:
            where.append(f"at {self.at_seconds:g} s")
        return f"{self.kind} {' or '.join(where)}"


@dataclass
class FaultPlan:
    """Which faults each new connection gets: ``per_connection[i]`` for the (i+1)th connection,
    then ``after`` for every later one (none by default)."""

    per_connection: list[tuple[Fault, ...]] = field(default_factory=list)
    after: tuple[Fault, ...] = ()

    @classmethod
    def scripted(cls, *connections: Sequence[Fault], after: Sequence[Fault] = ()) -> FaultPlan:
        return cls([tuple(c) for c in connections], tuple(after))

    @classmethod
    def clean(cls) -> FaultPlan:
        return cls()

    def faults_for(self, number: int) -> tuple[Fault, ...]:
        """The faults of connection ``number`` (counted from 1)."""
        if number <= len(self.per_connection):
            return self.per_connection[number - 1]
        return self.after

    def describe(self) -> str:
        lines = [f"connection {i}: " + (", ".join(f.describe() for f in faults) or "clean")
                 for i, faults in enumerate(self.per_connection, 1)]
        lines.append("later connections: "
                     + (", ".join(f.describe() for f in self.after) or "clean"))
        return "; ".join(lines)


def random_fault(rng: random.Random, *, kinds: Sequence[str] = FAULT_KINDS,
                 max_byte: int = 800, max_seconds: float | None = None) -> Fault:
    """One fault drawn from ``rng``. One-shot faults trigger within the first ``max_byte`` bytes
    (which covers the opening handshake and the login exchange of every broker here), or, with
    ``max_seconds``, at a random time up to it instead."""
    kind = rng.choice(list(kinds))
    direction: Direction = rng.choice(("down", "up"))
    if kind == "latency":
        return Fault(kind, direction, delay=rng.choice((0.001, 0.01, 0.05, 0.2, 1.0)))
    if kind == "throttle":
        return Fault(kind, direction, rate=rng.choice((50, 500, 5000, 50000)))
    if kind == "split":
        return Fault(kind, direction, piece=rng.choice((1, 2, 3, 7, 16)))
    if max_seconds is not None:
        return Fault(kind, direction, at_seconds=round(rng.uniform(0.0, max_seconds), 3))
    return Fault(kind, direction, at_byte=rng.randrange(max_byte))


@dataclass
class ProxyStats:
    connections: int = 0
    #: Connections whose both sides are still open at the proxy.
    open_connections: int = 0
    #: Faults that took effect, by kind (a continuous fault counts once per connection).
    injected: Counter[str] = field(default_factory=Counter)
    #: What happened on each connection, in order: "connection 3: reset after 212 B down".
    log: list[str] = field(default_factory=list)


class _Ended(Exception):
    """Raised inside a pump to end the connection after a one-shot fault."""


class _Link:
    """One proxied connection: the client's stream, the server's, and the faults on them."""

    def __init__(self, proxy: FaultProxy, number: int, client: trio.SocketStream,
                 server: trio.SocketStream, faults: tuple[Fault, ...]) -> None:
        self.proxy = proxy
        self.number = number
        self.client = client
        self.server = server
        self.faults = list(faults)
        self.nursery: trio.Nursery | None = None
        self.passed: dict[Direction, int] = {"down": 0, "up": 0}
        self.opened = trio.current_time()
        self.counted: set[Fault] = set()
        self.fired: set[Fault] = set()

    def _count(self, fault: Fault, what: str) -> None:
        if fault not in self.counted:
            self.counted.add(fault)
            self.proxy.stats.injected[fault.kind] += 1
            self.proxy.stats.log.append(f"connection {self.number}: {what}")

    async def run(self) -> None:
        try:
            async with trio.open_nursery() as nursery:
                self.nursery = nursery
                nursery.start_soon(self._pump, self.server, self.client, "down", nursery)
                nursery.start_soon(self._pump, self.client, self.server, "up", nursery)
                for fault in self.faults:
                    if fault.kind in ONE_SHOT and fault.at_seconds is not None:
                        nursery.start_soon(self._timed, fault, nursery)
        finally:
            await trio.aclose_forcefully(self.client)
            await trio.aclose_forcefully(self.server)

    def strike(self, kind: str, direction: Direction) -> None:
        """A one-shot fault now: drop, reset and stall at once; truncate on the next write."""
        if self.nursery is None or self.nursery.cancel_scope.cancel_called:
            return
        fault = Fault(kind, direction, at_byte=self.passed[direction])
        self.faults.append(fault)
        if kind != "truncate":
            self.fired.add(fault)
            self.nursery.start_soon(self._act, fault, self.nursery, "struck by hand")

    async def _timed(self, fault: Fault, nursery: trio.Nursery) -> None:
        await trio.sleep_until(self.opened + (fault.at_seconds or 0.0))
        if fault in self.fired:
            return
        self.fired.add(fault)
        await self._act(fault, nursery, f"at {fault.at_seconds:g} s")

    async def _act(self, fault: Fault, nursery: trio.Nursery, when: str) -> None:
        """Carry out a one-shot fault."""
        self._count(fault, f"{fault.kind} {when}")
        if fault.kind == "stall":
            # Keep reading the client (and throwing its bytes away) so that its close is seen;
            # the server hears nothing more, and the client hears nothing at all.
            nursery.cancel_scope.cancel()
            await self._swallow()
            return
        if fault.kind == "reset":
            for stream in (self.client, self.server):
                _linger_zero(stream)
        nursery.cancel_scope.cancel()

    async def _swallow(self) -> None:
        with trio.CancelScope(shield=True), trio.move_on_after(_STALL_LIMIT):
            try:
                while await self.client.receive_some(_CHUNK):
                    pass
            except (trio.BrokenResourceError, trio.ClosedResourceError):
                pass

    async def _pump(self, source: trio.SocketStream, sink: trio.SocketStream,
                    direction: Direction, nursery: trio.Nursery) -> None:
        try:
            while True:
                data = await source.receive_some(_CHUNK)
                if not data:
                    break
                await self._forward(data, sink, direction, nursery)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        # One side has closed: close the other and end the connection, as a proxy would.
        nursery.cancel_scope.cancel()

    async def _forward(self, data: bytes, sink: trio.SocketStream, direction: Direction,
                       nursery: trio.Nursery) -> None:
        mine = [f for f in self.faults if f.direction == direction]
        start = self.passed[direction]
        # A one-shot fault whose byte trigger falls in this chunk: forward up to it, then act.
        for fault in mine:
            if (fault.kind in ONE_SHOT and fault.at_byte is not None
                    and fault not in self.fired and start + len(data) > fault.at_byte):
                self.fired.add(fault)
                keep = fault.at_byte - start
                if fault.kind == "drop":
                    # A drop ends the connection between two writes, never inside one.
                    keep = 0
                elif fault.kind == "truncate":
                    # A truncation always lands inside a write: at least one byte is lost.
                    keep = max(1, min(keep, len(data) - 1)) if len(data) > 1 else 0
                await self._send(data[:keep], sink, direction, mine)
                where = f"after {start + keep} B {direction}"
                await self._act(fault, nursery, where)
                return
        await self._send(data, sink, direction, mine)

    async def _send(self, data: bytes, sink: trio.SocketStream, direction: Direction,
                    mine: list[Fault]) -> None:
        if not data:
            return
        for fault in mine:
            if fault.kind == "latency":
                self._count(fault, fault.describe())
                await trio.sleep(fault.delay)
        pieces = [data]
        for fault in mine:
            if fault.kind == "split" and len(data) > 1:
                self._count(fault, fault.describe())
                pieces = _split(data, fault.piece, self.proxy.rng)
        rate = min((f.rate for f in mine if f.kind == "throttle"), default=0)
        if rate:
            # A tenth of a second's worth at a time, so the bytes trickle rather than burst.
            step = max(1, rate // 10)
            pieces = [p[i:i + step] for p in pieces for i in range(0, len(p), step)]
        for piece in pieces:
            await sink.send_all(piece)
            self.passed[direction] += len(piece)
            if rate:
                for fault in mine:
                    if fault.kind == "throttle":
                        self._count(fault, fault.describe())
                await trio.sleep(len(piece) / rate)
            elif len(pieces) > 1:
                await trio.lowlevel.checkpoint()


#: How long a stalled connection is held at most before the proxy lets go of it.
_STALL_LIMIT = 3600.0


def _split(data: bytes, piece: int, rng: random.Random) -> list[bytes]:
    out = []
    at = 0
    while at < len(data):
        size = rng.randint(1, piece)
        out.append(data[at:at + size])
        at += size
    return out


def _linger_zero(stream: trio.SocketStream) -> None:
    """Make the next close send RST instead of FIN."""
    with contextlib.suppress(OSError):
        stream.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


class FaultProxy:
    """A loopback TCP proxy to ``target_port`` that injects the faults of ``plan``.

    ``await nursery.start(proxy.serve)`` listens on 127.0.0.1 and sets ``port``; ``url(url)``
    rewrites a simulator URL to go through the proxy.
    """

    def __init__(self, target_port: int, plan: FaultPlan | None = None, *,
                 seed: int = 0) -> None:
        self.target_port = target_port
        self.plan = plan or FaultPlan.clean()
        self.stats = ProxyStats()
        self.rng = random.Random(seed)
        self.port = 0
        self._links: set[_Link] = set()

    def strike(self, kind: str, direction: Direction = "down") -> int:
        """Inject a one-shot fault (drop, reset, stall, truncate) into every open connection now;
        returns how many it hit. Faults on a schedule of the test's own making, such as "drop the
        connection once the session is authenticated", are struck this way."""
        if kind not in ONE_SHOT:
            raise ValueError(f"only one-shot faults can be struck: {', '.join(sorted(ONE_SHOT))}")
        links = list(self._links)
        for link in links:
            link.strike(kind, direction)
        return len(links)

    def url(self, url: str) -> str:
        """``url`` with its port replaced by the proxy's (the path and query are kept)."""
        marker = f":{self.target_port}"
        if marker not in url:
            raise ValueError(f"{url} is not on port {self.target_port}")
        return url.replace(marker, f":{self.port}", 1)

    async def serve(self, *, task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED
                    ) -> None:
        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        self.port = listeners[0].socket.getsockname()[1]
        async with trio.open_nursery() as nursery:
            await nursery.start(trio.serve_listeners, self._handle, listeners)
            task_status.started(self.port)

    async def _handle(self, client: trio.SocketStream) -> None:
        self.stats.connections += 1
        number = self.stats.connections
        faults = self.plan.faults_for(number)
        try:
            server = await trio.open_tcp_stream("127.0.0.1", self.target_port)
        except OSError:
            await trio.aclose_forcefully(client)
            return
        link = _Link(self, number, client, server, faults)
        self._links.add(link)
        self.stats.open_connections += 1
        try:
            await link.run()
        finally:
            self._links.discard(link)
            self.stats.open_connections -= 1


#: A function drawing a plan from a generator (for property runs).
PlanMaker = Callable[[random.Random], FaultPlan]


def random_plan(rng: random.Random, *, faulty: int, kinds: Sequence[str] = FAULT_KINDS,
                max_byte: int = 800, per_connection: int = 2) -> FaultPlan:
    """``faulty`` connections with 1 to ``per_connection`` random faults each, then clean ones."""
    conns = []
    for _ in range(faulty):
        count = rng.randint(1, per_connection)
        conns.append(tuple(random_fault(rng, kinds=kinds, max_byte=max_byte)
                           for _ in range(count)))
    return FaultPlan.scripted(*conns)


__all__ = [
    "FAULT_KINDS",
    "ONE_SHOT",
    "Fault",
    "FaultPlan",
    "FaultProxy",
    "PlanMaker",
    "ProxyStats",
    "random_fault",
    "random_plan",
]
