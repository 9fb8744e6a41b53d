"""What a session tells its subscribers, and how each subscriber's buffer behaves when the
application falls behind.

A session publishes three kinds of event: ``Transitioned`` records, ``Notice``s and
``BrokerMessage``s (the application's data). Every subscriber (``Session.events()``) has its own
buffer, bounded by a count and by the bytes of the broker messages in it. What happens when it
is full is the subscriber's ``overflow`` policy:

``"backpressure"`` (the default): nothing is dropped. The session stops reading its connection
    until the subscriber has worked its buffer down to half of both bounds, so TCP pushes back
    on the broker. (Resuming at half, not as soon as one event is taken, makes the reading resume in
    one go: a fast feed would otherwise pause and resume the reading at every message, each pause
    costing more than the message.) What the broker then does about a slow reader is its own rule,
    and the broker's policy table says how the session takes it. The session's own liveness checks
    (its WebSocket ping, a broker's own heartbeat deadline) are suspended meanwhile: a paused reader
    proves nothing about the connection. A subscriber is behind from the first pause until it has
    received everything it was given: a ``slow_consumer`` notice says when that has lasted
    ``slow_consumer_after`` seconds (at the next pause after it), and ``caught_up`` when it is over.
``"drop_oldest"``: the subscriber never holds back the reading. When it is full, its oldest
    broker messages make room for the new ones; each run of drops is counted in a
    ``messages_dropped`` notice that the subscriber receives before the next event, and in the
    audit trail.

A subscriber may ask for no broker messages at all (``messages=False``): a watcher of the
session's life, such as a status page, which then never holds back the reading.

Transitions and notices are never dropped, under either policy: they are few, and they may go
over the bounds. A broker message is counted at the size of the frame that carried it.
Subscribers do not affect each other's contents; a lossless subscriber that falls behind pauses
the reading for every subscriber of the session, which then sees new data later, never less.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import trio

from brokergate.machines import Notice, Transitioned

#: A subscriber's choice of what happens when its buffer is full.
Overflow = Literal["backpressure", "drop_oldest"]
OVERFLOW_POLICIES: tuple[Overflow, ...] = ("backpressure", "drop_oldest")
#: Default bounds of one subscriber's buffer.
DEFAULT_BUFFER = 1024
DEFAULT_MAX_BYTES = 16 << 20


@dataclass(frozen=True, slots=True)
class BrokerMessage:
    """An asynchronous message from the broker (no request waits for it)."""

    message: Any


SessionEvent = Transitioned | Notice | BrokerMessage


class Publisher(Protocol):
    """What a stream needs from the session that feeds it."""

    def unsubscribe(self, stream: EventStream) -> None: ...

    def stream_full(self, full: bool) -> None: ...

    def stream_dropped(self, stream: EventStream, count: int) -> Notice: ...

    def stream_drained(self) -> None: ...


class EventStream:
    """An async iterator of one subscriber's session events; ends when the session ends and
    everything published before has been received. See the module's docstring for ``buffer``,
    ``max_bytes`` and ``overflow``."""

    __slots__ = ("_bytes", "_closed", "_ended", "_full", "_items", "_publisher", "_ready",
                 "_unreported", "buffer", "dropped", "max_bytes", "messages", "overflow",
                 "report_drained")

    def __init__(self, publisher: Publisher, buffer: int = DEFAULT_BUFFER,
                 max_bytes: int = DEFAULT_MAX_BYTES, overflow: Overflow = "backpressure",
                 *, messages: bool = True) -> None:
        if buffer < 1 or max_bytes < 1:
            raise ValueError("an event stream's buffer and max_bytes must be at least 1")
        if overflow not in OVERFLOW_POLICIES:
            raise ValueError(f"overflow must be one of {', '.join(OVERFLOW_POLICIES)}, "
                             f"not {overflow!r}")
        self._publisher = publisher
        self.buffer, self.max_bytes, self.overflow = buffer, max_bytes, overflow
        #: Whether broker messages are wanted. False: a watcher of transitions and notices,
        #: which are never dropped, and which alone never hold back the reading (they are few).
        self.messages = messages
        #: (event, bytes it counts for) in the order published.
        self._items: deque[tuple[SessionEvent, int]] = deque()
        self._bytes = 0
        self._full = False  # counted by the publisher: it holds back the reading
        self._ready: trio.Event | None = None  # made when the subscriber waits
        self._closed = False  # by the subscriber
        self._ended = False  # by the session: nothing more will come
        self._unreported = 0  # drops not yet told in a notice
        #: Broker messages dropped so far (``drop_oldest`` only; always 0 otherwise).
        self.dropped = 0
        #: Set by the session while this subscriber is behind: tell it when nothing is left.
        self.report_drained = False

    def __repr__(self) -> str:
        return (f"<EventStream {self.overflow} {len(self._items)}/{self.buffer} events, "
                f"{self._bytes}/{self.max_bytes} bytes, {self.dropped} dropped>")

    @property
    def backlog(self) -> tuple[int, int]:
        """(events, bytes) published and not received yet."""
        return len(self._items), self._bytes

    def __aiter__(self) -> EventStream:
        return self

    async def __anext__(self) -> SessionEvent:
        await trio.lowlevel.checkpoint_if_cancelled()
        while not self._items and not self._unreported:
            if self._closed:
                raise trio.ClosedResourceError("this event stream was closed")
            if self._ended:
                raise StopAsyncIteration
            self._ready = ready = trio.Event()
            await ready.wait()
        if self._unreported:
            count, self._unreported = self._unreported, 0
            return self._publisher.stream_dropped(self, count)
        event, size = self._items.popleft()
        self._bytes -= size
        if self._full and self._drained_to_half():
            self._full = False
            self._publisher.stream_full(False)
        if self.report_drained and not self._items:
            self.report_drained = False
            self._publisher.stream_drained()
        await trio.lowlevel.cancel_shielded_checkpoint()
        return event

    async def __aenter__(self) -> EventStream:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Stop receiving: the session forgets this subscriber (and no longer waits for it)."""
        if self._closed:
            return
        self._closed = True
        self._publisher.unsubscribe(self)
        if self.report_drained:
            self.report_drained = False
            self._publisher.stream_drained()
        self._items.clear()
        self._bytes = 0
        if self._full:
            self._full = False
            self._publisher.stream_full(False)
        self._wake()

    def end(self) -> None:
        """The session is over: what is buffered can still be received, then the stream ends."""
        self._ended = True
        if self._full:
            self._full = False
            self._publisher.stream_full(False)
        self._wake()

    def offer(self, event: SessionEvent, size: int = 0) -> None:
        """Buffer ``event`` (``size``: the bytes a broker message counts for)."""
        if self._closed or self._ended or (not self.messages and type(event) is BrokerMessage):
            return
        self._items.append((event, size))
        self._bytes += size
        if self.messages and self._over():
            if self.overflow == "drop_oldest":
                self._drop_oldest()
            elif not self._full:
                self._full = True
                self._publisher.stream_full(True)
        if self._ready is not None:
            self._wake()

    def _over(self) -> bool:
        return len(self._items) > self.buffer or self._bytes > self.max_bytes

    def _drained_to_half(self) -> bool:
        """Whether a full subscriber has room enough to let the reading go on (the low-water
        mark: half of both bounds)."""
        return len(self._items) <= self.buffer // 2 and self._bytes <= self.max_bytes // 2

    def _drop_oldest(self) -> None:
        """Drop the oldest broker messages until the buffer is within its bounds again (or
        holds only transitions and notices, which are never dropped)."""
        kept: deque[tuple[SessionEvent, int]] = deque()
        items = self._items
        while items and self._over():
            item = items.popleft()
            if type(item[0]) is BrokerMessage:
                self._bytes -= item[1]
                self.dropped += 1
                self._unreported += 1
            else:
                kept.append(item)
        kept.extend(items)
        self._items = kept

    def _wake(self) -> None:
        ready, self._ready = self._ready, None
        if ready is not None:
            ready.set()
