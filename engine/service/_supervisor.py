"""Holding the declared sessions: each on its schedule, each watched for the status and health.

One task per declared session (``Held``) opens it from the service's gateway while its schedule
is open, logs it out when the schedule closes (or when the session is removed or changed by a
reload), and keeps what the status shows: its recent transitions with their wall-clock times.

Health: a session counts as healthy while it is authenticated, outside its schedule (it is not
meant to be logged in), in ``standby`` (another process of the fleet holds the account: that is
what a standby is for), or renewing a day token it holds (a broker whose tokens die daily, a
planned renewal: the session left ``authenticated`` to renew and has not failed). Anything
else inside its schedule is unhealthy, with the reason.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import trio

from brokergate.engine._audit import AuditLog
from brokergate.engine._driver_state import summarise
from brokergate.engine._gateway import Gateway
from brokergate.engine._session import Session
from brokergate.engine.service._file import SessionEntry
from brokergate.machines import AUTHENTICATED, STANDBY, TERMINAL_STATES, Transitioned
from brokergate.machines._states import RENEW_TRIGGER
from brokergate.machines.brokers import broker_named

#: Transitions kept per session for the status.
RECENT = 20
#: Longest single sleep towards a wall-clock time: the wall clock is read again after it, so a
#: clock that was stepped (NTP, a suspended host) is caught up with within this.
WALL_NAP = 30.0

#: How long a session whose task met a bug of ours waits before it is tried again.
RETRY_AFTER_ERROR = 30.0

WallClock = Callable[[], datetime]


@dataclass(frozen=True, slots=True)
class Step:
    """One transition as the status shows it."""

    at: datetime
    trigger: str
    src: str
    dst: str
    reason: str | None

    def as_dict(self) -> dict[str, Any]:
        return {"at": iso(self.at), "trigger": self.trigger, "src": self.src, "dst": self.dst,
                "reason": self.reason}


def iso(when: datetime | None) -> str | None:
    """An instant as the status shows it: UTC, whole seconds, ``Z``."""
    if when is None:
        return None
    return when.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


class Held:
    """One declared session as the service holds it."""

    def __init__(self, entry: SessionEntry, wall: WallClock) -> None:
        self.entry = entry
        self._wall = wall
        self.session: Session | None = None
        #: ``starting``, ``off_schedule`` (waiting for its window), ``on`` (its session is open),
        #: ``closing`` (its window closed: being logged out), ``stopping`` (removed, or the
        #: service stops: being logged out) or ``stopped``.
        self.phase = "starting"
        self.steps: deque[Step] = deque(maxlen=RECENT)
        self.next_open: datetime | None = None
        self.closes: datetime | None = None
        self.since = wall()  # when the shown state began
        self.renewing = False
        self.scope = trio.CancelScope()
        self.leave = trio.Event()  # set to log the session out and end its task
        self.done = trio.Event()
        self.last_outcome: dict[str, Any] | None = None  # of the last session, once it ended
        #: What went wrong in the service's own code for this session (tried again later).
        self.error: str | None = None

    def __repr__(self) -> str:
        return f"<Held {self.entry.name} {self.phase} {self.state}>"

    @property
    def name(self) -> str:
        return self.entry.name

    @property
    def state(self) -> str:
        if self.session is not None:
            return self.session.state
        if self.phase == "off_schedule":
            return "off_schedule"
        if self.last_outcome is not None:
            return str(self.last_outcome["state"])
        return "disconnected"

    def in_window(self) -> bool:
        return self.phase in ("on", "starting")

    def health(self) -> tuple[bool, str]:
        """Whether the session is as it should be, and a few words on where it stands."""
        state = self.state
        if self.error is not None and self.session is None and not self.leave.is_set():
            return False, f"internal error (brokergate's fault; tried again in " \
                          f"{RETRY_AFTER_ERROR:g} s): {self.error}"
        if not self.in_window():
            if self.phase == "off_schedule":
                opens = f", opens {iso(self.next_open)}" if self.next_open else ""
                return True, f"off schedule{opens}"
            return True, self.phase
        if state == AUTHENTICATED:
            return True, AUTHENTICATED
        if state == STANDBY:
            return True, "standby (another process of the fleet holds the account)"
        if self.renewing and state not in TERMINAL_STATES:
            return True, f"renewing its day token ({state})"
        outcome = (self.session.outcome() if self.session is not None
                   else self.last_outcome) or {}
        said = [str(x) for x in (outcome.get("reason"), outcome.get("detail")) if x]
        return False, f"{state}: {'; '.join(said)}" if said else state

    def observe(self, record: Transitioned) -> None:
        now = self._wall()
        self.steps.append(Step(now, record.trigger, record.src, record.dst, record.reason))
        self.since = now
        if record.src == AUTHENTICATED and record.trigger == RENEW_TRIGGER:
            self.renewing = True
        elif record.dst == AUTHENTICATED or record.dst in TERMINAL_STATES:
            self.renewing = False

    def as_status(self) -> dict[str, Any]:
        healthy, said = self.health()
        outcome: dict[str, Any] = {}
        if self.session is not None:
            outcome = self.session.outcome()
        elif self.last_outcome is not None:
            outcome = self.last_outcome
        schedule = self.entry.schedule
        return {
            "name": self.name,
            "broker": self.entry.broker,
            "broker_title": broker_named(self.entry.broker).title,
            "account": self.entry.config.account,
            "state": self.state,
            "phase": self.phase,
            "healthy": healthy,
            "health": said,
            "since": iso(self.since),
            "reason": outcome.get("reason"),
            "fault": outcome.get("fault"),
            "detail": outcome.get("detail"),
            "attempts": outcome.get("attempts"),
            "schedule": None if schedule is None else {
                **schedule.as_dict(), "describe": schedule.describe(),
                "open": self.in_window(), "next_open": iso(self.next_open),
                "closes": iso(self.closes)},
            "transitions": [step.as_dict() for step in self.steps],
        }


async def _unless_leaving(held: Held, work: Callable[..., Awaitable[object]],
                          *args: Any) -> None:
    """Run ``work(*args)`` until it returns, or until the session is to leave."""
    async with trio.open_nursery() as nursery:

        async def run() -> None:
            await work(*args)
            nursery.cancel_scope.cancel()

        nursery.start_soon(run)
        await held.leave.wait()
        nursery.cancel_scope.cancel()


class Supervisor:
    """The sessions the service holds, on one gateway."""

    def __init__(self, gateway: Gateway, audit: AuditLog, *, wall_clock: WallClock,
                 nursery: trio.Nursery, nap: float = WALL_NAP) -> None:
        self._gateway = gateway
        self._nap = nap
        self._audit = audit
        self._wall = wall_clock
        self._nursery = nursery
        self.held: dict[str, Held] = {}

    def __iter__(self) -> Iterator[Held]:
        return iter(list(self.held.values()))

    # What the service asks.

    async def apply(self, sessions: dict[str, SessionEntry]) -> tuple[list[str], list[str]]:
        """Hold exactly ``sessions``: stop the ones no longer declared or declared differently,
        start the new and the changed; leave the rest alone. Returns (started, stopped)."""
        stopped = [name for name, held in self.held.items()
                   if name not in sessions or sessions[name].fingerprint
                   != held.entry.fingerprint]
        async with trio.open_nursery() as stopping:
            for name in stopped:
                stopping.start_soon(self._stop, self.held[name])
        for name in stopped:
            del self.held[name]
        started = [name for name in sessions if name not in self.held]
        for name in started:
            held = Held(sessions[name], self._wall)
            self.held[name] = held
            await self._nursery.start(self._hold, held)
        # Declared order, for the status.
        self.held = {name: self.held[name] for name in sessions}
        return started, stopped

    async def stop_all(self) -> None:
        async with trio.open_nursery() as stopping:
            for held in self:
                stopping.start_soon(self._stop, held)

    def health(self) -> tuple[bool, list[str]]:
        """Healthy when every session is; the words on each session, unhealthy ones first."""
        said = [(held.name, *held.health()) for held in self]
        bad = [f"{name}: {text}" for name, ok, text in said if not ok]
        good = [f"{name}: {text}" for name, ok, text in said if ok]
        return not bad, bad + good

    def status(self) -> list[dict[str, Any]]:
        return [held.as_status() for held in self]

    # Each session's task.

    async def _stop(self, held: Held) -> None:
        """Log the session out and end its task. Its block is left as a block is normally
        left, so the logout is answered on a connection that is still read; the task's own
        scope is cancelled only if the caller's bound runs out (``hard_stop``)."""
        held.phase = "stopping"
        held.leave.set()
        await held.done.wait()
        held.phase = "stopped"

    def hard_stop(self) -> None:
        """Cancel every session's task (a bound ran out): a logout in progress still ends
        within its own timeout."""
        for held in self:
            held.scope.cancel()

    async def _hold(self, held: Held, task_status: trio.TaskStatus[None]) -> None:
        try:
            with held.scope:
                task_status.started()
                while not held.leave.is_set():
                    try:
                        await self._one_window(held)
                    except Exception as exc:  # a bug of ours: this session's, not the service's
                        held.error = summarise(exc)
                        self._audit_event(held, "internal_error", detail=held.error)
                        await _unless_leaving(held, trio.sleep, RETRY_AFTER_ERROR)
        finally:
            held.done.set()

    async def _one_window(self, held: Held) -> None:
        """Wait for the session's window (now, without a schedule), hold the session while it is
        open, and log it out when it closes (or when the session is to leave)."""
        schedule = held.entry.schedule
        until: datetime | None = None
        if schedule is not None:
            now = self._wall()
            window = schedule.window_at(now)
            if window is None:
                held.phase, held.closes = "off_schedule", None
                try:
                    held.next_open = schedule.next_window(now).opens
                except ValueError:  # every day for the next 400 a holiday: nothing to hold
                    held.next_open = None
                    await _unless_leaving(held, trio.sleep_forever)
                    return
                held.since = now
                self._audit_event(held, "session_off_schedule", opens=iso(held.next_open))
                await _unless_leaving(held, self._sleep_until, held.next_open)
                return
            until = schedule.open_until(now)
        held.phase, held.next_open, held.closes = "on", None, until
        held.renewing = False
        async with self._gateway.session(held.entry.config) as session:
            held.session, held.error = session, None
            await _unless_leaving(held, self._hold_open, held, session, until)
            if held.phase == "on":
                held.phase = "closing"  # its window closed: logged out now
        held.session = None
        held.last_outcome = session.outcome()  # after the logout

    async def _hold_open(self, held: Held, session: Session, until: datetime | None) -> None:
        with trio.move_on_at(self._deadline(until)):
            await self._watch(held, session)
            # The session ended by itself (failed, displaced, logged off by the broker): it
            # stays as it is, for the status, until its window closes; the next window opens a
            # new session.
            await self._sleep_until(until)

    async def _watch(self, held: Held, session: Session) -> None:
        async with session.events(messages=False) as events:
            async for event in events:
                if isinstance(event, Transitioned):
                    held.observe(event)

    def _deadline(self, until: datetime | None) -> float:
        """The trio deadline of a wall-clock time (inf: never). Read once: a window's close is
        then kept on trio's clock, which a stepped wall clock does not move."""
        if until is None:
            return math.inf
        return trio.current_time() + max(0.0, (until - self._wall()).total_seconds())

    async def _sleep_until(self, when: datetime | None) -> None:
        if when is None:
            await trio.sleep_forever()
            return
        # The wall clock is read again after each nap (a clock that was stepped is caught).
        while (left := (when - self._wall()).total_seconds()) > 0:  # noqa: ASYNC110
            await trio.sleep(min(left, self._nap))

    def _audit_event(self, held: Held, event: str, **fields: Any) -> None:
        self._audit.session(broker=held.entry.broker, session_id=held.name,
                            account=held.entry.config.account, secrets=[]).info(event, **fields)
