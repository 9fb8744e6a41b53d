"""The fault-injecting TCP proxy: each accepted connection is linked to the target server and
carries the faults its ``FaultPlan`` gives it (see ``brokergate.simulators.faults``). It moves
bytes and knows nothing of WebSocket or HTTP, so a fault lands wherever the bytes happen to be."""

from __future__ import annotations

import contextlib
import random
import socket
import struct
from collections import Counter
from dataclasses import dataclass, field

import trio

from brokergate.simulators._fault_plans import ONE_SHOT, Direction, Fault, FaultPlan

_CHUNK = 65536


@dataclass
class ProxyStats:
    connections: int = 0
    #: Connections whose both sides are still open at the proxy.
    open_connections: int = 0
    #: Faults that took effect, by kind (a continuous fault counts once per connection).
    injected: Counter[str] = field(default_factory=Counter)
    #: What happened on each connection, in order: "connection 3: reset after 212 B down".
    log: list[str] = field(default_factory=list)


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
