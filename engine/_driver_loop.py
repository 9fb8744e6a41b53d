"""A session driver's event loop: feeding events to the machine, the queue, the worker task
and the timers.

A session keeps no task of its own while it waits. An event is fed to the machine by the task
that brings it (``feed``): a frame by the connection's reader, a close by the connection task,
an HTTP answer by its call task, a stop by the application. That task also carries out the
commands that need no waiting. What must be awaited (a frame to write, a token to save), and
every command after it, goes to a worker task that lives only until nothing is left to do,
unless the feeding task takes it on itself (``feed_here``). Timers ring on the gateway's one
alarm clock (``brokergate.engine._alarms``), which starts a worker for them. Whoever is handling
an event holds the session (``_busy``); events that come meanwhile wait in a queue that it
drains before it releases the session. So one event is handled at a time, and its commands run
in order. Events from a connection other than the live one are dropped, so a late frame from a
dead socket can never move a new session.
"""

from __future__ import annotations

import math

import trio

from brokergate.engine._driver_state import PING_TIMER
from brokergate.engine._driver_subscribers import SubscribersPart
from brokergate.machines import (
    CancelTimer,
    Command,
    Connected,
    Event,
    SaveToken,
    SendFrame,
    Start,
    StartTimer,
    TimerFired,
)

#: The commands ``_execute`` awaits (a frame to write, a token to save); feeding leaves them,
#: and every command after them, to whoever holds the session. Command classes are final, so
#: this set of exact types is tested with ``type(command) in``: a set lookup, where
#: ``isinstance`` with a union walks its members (this runs for every command of every event).
AWAITED: frozenset[type[Command]] = frozenset({SendFrame, SaveToken})


class LoopPart(SubscribersPart):
    """Feeding events, one at a time, and carrying out their commands in order."""

    __slots__ = ()

    def start(self, nursery: trio.Nursery, first: Event | None = None) -> None:
        """Start the session in ``nursery``, the session's own (cancelled when it ends), where
        its connection, call and worker tasks run.

        ``Start`` is fed here, in the caller's task. What it publishes is also kept until the
        first of the tasks it started runs (``_forget_start``), which is after the caller's first
        checkpoint: a caller who subscribes to events right away still sees the very first
        transition, and a later subscriber sees nothing from before it came. (A session of a
        fleet whose account another holds starts with ``first``: ``Standby``.)
        """
        self._nursery = nursery
        self._clock = self._host.alarms
        self._published_at_start = []
        self.feed(Start() if first is None else first)

    def feed(self, event: Event) -> None:
        """Give the machine an event: a close from the connection task, a stop or a refused
        token from the application, a pong that never came.

        With no event being handled, it is fed at once, in the calling task, and so is every
        command that needs no waiting; the first that does (a frame to write, a token to save)
        and every command after it go to a worker task, in order. Otherwise the event waits its
        turn in the queue, which whoever is handling events drains before it releases the
        session. Either way one event is handled at a time and its commands run in order.
        Nothing here awaits.
        """
        if self.feed_here(event):
            self._start_worker()

    def feed_here(self, event: Event) -> bool:
        """Feed ``event`` as ``feed`` does, but leave what must be awaited to the calling task.

        True means commands are left (in ``_deferred``) and the caller holds the session until
        it has carried them out: until then no other event moves the machine. A task that ends
        once it has fed its event (an HTTP call, a credential) then ``await self._work()``; a
        connection's reader ``await self._write_own_frames()``.
        """
        if self._closed:
            return False  # the session is over: nothing may move its machine now
        self._queue.append(event)
        if self._busy:
            return False
        self._busy = True
        queue = self._queue
        try:
            while queue:
                commands = self._handle(queue.pop(0))
                for index, command in enumerate(commands):
                    if type(command) in AWAITED:
                        # Whoever carries them out holds the session (``_busy`` stays set).
                        self._deferred = commands[index:]
                        return True
                    self._carry_out(command)
        except BaseException:
            self._busy = False  # the caller's task has the error; the next event is fed
            raise
        self._release()
        return False

    def _release(self) -> None:
        """No event is being handled now. A timer started meanwhile may be due before the one
        the alarm clock will wake us for."""
        self._busy = False
        if not self._closed:
            self._ask_alarm(min(self._timers.values(), default=math.inf))

    def _start_worker(self) -> None:
        """Leave the queue, the deferred commands and the due timers to a new worker task
        (``_busy`` is set and stays set until it finishes)."""
        assert self._nursery is not None
        self._nursery.start_soon(self._work)

    async def _work(self) -> None:
        """Carry out the deferred commands, then feed the queued events and due timers, until
        none is left; then release the session (the next event is fed by whoever brings it).

        A session has at most one worker, and none while it waits: a session with nothing to do
        keeps no task of its own beyond its connection's.
        """
        self._forget_start()
        queue, timers = self._queue, self._timers
        cancelled = False
        try:
            while True:
                if self._deferred is not None:
                    commands, self._deferred = self._deferred, None
                    await self._execute_all(commands)
                    del commands
                    continue
                if queue:
                    await trio.lowlevel.checkpoint_if_cancelled()
                    event = queue.pop(0)
                elif timers and min(timers.values()) <= trio.current_time():
                    name = min(timers, key=timers.__getitem__)
                    del timers[name]
                    if name == PING_TIMER:
                        self._ping()
                        continue
                    event = TimerFired(name)
                else:
                    return
                await self._execute_all(self._handle(event))
                del event
        except trio.Cancelled:
            cancelled = True
            raise
        finally:
            if cancelled:
                # The host is cancelling the session's tasks. Asking the alarm clock for a
                # due timer now would start a worker that is cancelled at once, again and
                # again (a busy loop until the stop's bound). What is queued is left to the
                # stop, which carries it out in its own shielded task.
                self._busy = False
                self._wake_changed()
            else:
                self._release()

    def _work_left(self) -> bool:
        """Work a cancelled worker left: events queued, commands deferred, a timer due."""
        timers = self._timers
        return bool(self._queue or self._deferred is not None
                    or (timers and min(timers.values()) <= trio.current_time()))

    def _handle(self, event: Event) -> list[Command]:
        """The machine's commands for ``event`` (none for an event from a dead connection)."""
        epoch = getattr(event, "epoch", None)
        if epoch is not None and epoch != self._live_epoch:
            return []  # from a connection the machine has already left behind
        if isinstance(event, Connected):
            self._arm_ping()
        try:
            return self.model.handle(event)
        except Exception as exc:  # a bug in a machine must not take the host process down
            self._internal_error(f"machine raised on {type(event).__name__}", exc)
            return []

    async def _execute_all(self, commands: list[Command]) -> None:
        for index, command in enumerate(commands):
            try:
                await self._execute(command)
            except trio.Cancelled:
                # The host is cancelling the session's tasks: what is left (a transition's
                # record, a timer) is for the stop to carry out. Not the command under way: a
                # frame cancelled in its write may be half written.
                rest = commands[index + 1:]
                if rest:
                    self._deferred = rest + (self._deferred or [])
                raise

    async def _execute(self, command: Command) -> None:
        if isinstance(command, SendFrame):
            await self.write(command.data, control=True)
        elif isinstance(command, SaveToken):
            # In order, not in a task: a delete must never overtake the save after it.
            await self._keep_token(command)
        else:
            self._carry_out(command)

    # Timers.

    def _start_timer(self, command: StartTimer) -> None:
        if self._paused and command.name in self._liveness_timers():
            self._suspended[command.name] = command.seconds
        else:
            self._timers[command.name] = trio.current_time() + command.seconds

    def _cancel_timer(self, command: CancelTimer) -> None:
        self._timers.pop(command.name, None)
        self._suspended.pop(command.name, None)

    def _ask_alarm(self, deadline: float) -> None:
        """Ask the run's alarm clock to wake us at ``deadline``, unless it already will at that
        time or sooner."""
        if deadline < self._alarm_at and self._clock is not None:
            self._alarm_at = deadline
            self._clock.wake_at(deadline, self)

    @property
    def alarm_wanted(self) -> bool:
        return not self._closed

    def alarm(self, deadline: float) -> None:
        """The alarm clock rang for ``deadline``: unless we have asked for another, leave the due
        timers to a worker task (not fed here, in the clock's own task: whatever a timer's event
        raises belongs to the session's nursery)."""
        if deadline == self._alarm_at:
            self._alarm_at = math.inf
            if not (self._busy or self._closed):
                self._busy = True
                self._start_worker()
