"""A session driver's subscribers, and what it does when one falls behind.

The event streams themselves and their overflow policies are ``brokergate.engine._events``'s;
this is the session's side: who is subscribed, pausing the reading while a lossless subscriber
is over its bounds (with the liveness timers held meanwhile: a paused reader proves nothing
about the connection), and the ``slow_consumer`` / ``caught_up`` / ``messages_dropped`` notices.
"""

from __future__ import annotations

import trio

from brokergate.engine._driver_state import PING_TIMER, DriverState
from brokergate.engine._events import DEFAULT_BUFFER, DEFAULT_MAX_BYTES, EventStream, Overflow
from brokergate.machines import Notice


class SubscribersPart(DriverState):
    """Subscribing, and the backpressure of lossless subscribers on the reading."""

    __slots__ = ()

    def subscribe(self, buffer: int = DEFAULT_BUFFER, max_bytes: int = DEFAULT_MAX_BYTES,
                  overflow: Overflow = "backpressure", *, messages: bool = True) -> EventStream:
        stream = EventStream(self, buffer, max_bytes, overflow, messages=messages)
        self._subscribers.append(stream)
        for event in self._published_at_start or ():
            stream.offer(event)
        if self._closed:  # the session is over: the stream ends after what it was given
            stream.end()
        return stream

    def _end_streams(self) -> None:
        for stream in list(self._subscribers):
            stream.end()
        self._subscribers.clear()

    # What the event streams call (brokergate.engine._events.Publisher).

    def unsubscribe(self, stream: EventStream) -> None:
        if stream in self._subscribers:
            self._subscribers.remove(stream)

    def stream_full(self, full: bool) -> None:
        """A lossless subscriber went over its bounds (True) or came back within them."""
        self._full_streams += 1 if full else -1
        if not self._full_streams and self._room is not None:
            self._room.set()

    def stream_dropped(self, stream: EventStream, count: int) -> Notice:
        """The notice a ``drop_oldest`` subscriber gets for ``count`` messages it lost (also in
        the audit trail)."""
        notice = Notice(
            "messages_dropped",
            f"{count} {self.model.broker_name} messages dropped for a subscriber that asked for "
            f"overflow='drop_oldest' (its buffer holds {stream.buffer} events, "
            f"{stream.max_bytes} bytes); {stream.dropped} in all",
            data={"dropped": count, "total": stream.dropped},
        )
        self._log("notice", kind=notice.kind, detail=notice.detail, fault=None)
        return notice

    def stream_drained(self) -> None:
        """A subscriber that was behind has received everything: when none is behind any more,
        the subscribers have caught up."""
        if self._slow_since is None or any(s.report_drained for s in self._subscribers):
            return
        since, self._slow_since = self._slow_since, None
        if self._slow_told:
            self._slow_told = False
            behind = trio.current_time() - since
            self._notice(Notice("caught_up",
                                f"the application has caught up with {self.model.broker_name} "
                                f"after {behind:.3g} s behind", data={"behind": behind}))

    # The reading paused.

    async def _wait_for_room(self) -> None:
        """A lossless subscriber is over its bounds: read nothing more until none is. The
        liveness timers wait meanwhile. Once subscribers have been behind for
        ``slow_consumer_after`` seconds, a ``slow_consumer`` notice says so."""
        started = trio.current_time()
        self._paused = True
        self._pauses += 1
        self._suspend_liveness(started)
        if self._slow_since is None:
            self._slow_since = started
            for stream in self._subscribers:
                stream.report_drained = stream.overflow == "backpressure"
        try:
            if not self._slow_told:
                with trio.move_on_at(self._slow_since + self.settings.slow_consumer_after):
                    await self._room_made()
                if self._full_streams:
                    self._slow_told = True
                    events, size = self._backlog()
                    self._notice(Notice(
                        "slow_consumer",
                        f"the application has kept the session from reading "
                        f"{self.model.broker_name} (for {trio.current_time() - started:.3g} s "
                        f"now, behind for {trio.current_time() - self._slow_since:.3g} s): a "
                        f"subscriber is {events} events ({size} bytes) behind; the broker may "
                        "act on a slow reader",
                        data={"events": events, "bytes": size},
                    ))
            await self._room_made()
        finally:
            self._paused = False
            now = trio.current_time()
            if self._meter is not None:
                self._meter.slow_seconds += now - started
            self._resume_liveness(now)

    async def _room_made(self) -> None:
        while self._full_streams:
            self._room = trio.Event()
            await self._room.wait()
        self._room = None

    def _backlog(self) -> tuple[int, int]:
        """The largest backlog among the subscribers (events, bytes)."""
        return max((stream.backlog for stream in self._subscribers), default=(0, 0))

    def _liveness_timers(self) -> tuple[str, ...]:
        """The timers that judge the connection dead when they fire: the WebSocket ping's and
        the machine's own (``LoginProtocol.liveness_timers``: a broker's heartbeat deadline)."""
        return (PING_TIMER, *self.model.liveness_timers)

    def _suspend_liveness(self, now: float) -> None:
        """Hold the timers that judge the connection's liveness: the reading is paused."""
        for name in self._liveness_timers():
            deadline = self._timers.pop(name, None)
            if deadline is not None:
                self._suspended[name] = max(0.0, deadline - now)

    def _resume_liveness(self, now: float) -> None:
        if not self._suspended:
            return
        for name, left in self._suspended.items():
            self._timers[name] = now + left
        self._suspended.clear()
        self._ask_alarm(min(self._timers.values()))
