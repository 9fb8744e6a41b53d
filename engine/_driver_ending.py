"""How a session driver's session settles and ends: waiting for authenticated, the stop, what
the session's end releases, and the error that says why a session is not authenticated."""

from __future__ import annotations

from typing import Any

import trio

from brokergate.engine._driver_connection import Connection, ConnectionPart
from brokergate.engine._driver_state import summarise
from brokergate.engine._errors import (
    ConnectionLost,
    Displaced,
    GaveUp,
    LockedOut,
    LoginFailed,
    ProvisioningRequired,
    SessionClosed,
    SessionError,
)
from brokergate.machines import (
    AUTHENTICATED,
    DISCONNECTED,
    DISPLACED,
    FAILED,
    LOCKED_OUT,
    LOGGING_OUT,
    PROVISIONING,
    TERMINAL_STATES,
    Closed,
    Fault,
    HttpFailed,
    Stop,
    Transitioned,
)

#: Why a logout was never answered when the host cancelled the session's tasks.
_CANCELLED_BY_HOST = "the session's tasks were cancelled by its host before the broker answered"

_ERRORS_BY_STATE: dict[str, type[SessionError]] = {
    FAILED: LoginFailed,
    LOCKED_OUT: LockedOut,
    PROVISIONING: ProvisioningRequired,
    DISPLACED: Displaced,
}


class EndingPart(ConnectionPart):
    """Transitions, the waits on them, the stop and the end."""

    __slots__ = ()

    def _on_transition(self, record: Transitioned) -> None:
        self.audit.transition(record)
        if self._meter is not None:
            self._meter.transition(record)
        if record.src == AUTHENTICATED and record.dst != AUTHENTICATED:
            lost = ConnectionLost(
                f"{self.model.broker}: the session left authenticated ({record.dst}) before the "
                "answer; the broker may or may not have acted on the request"
            )
            for waiter in self._pending.values():
                waiter.settle(error=lost)
        self._publish(record)
        self._wake_changed()
        if record.dst == AUTHENTICATED or self._ended():
            self._wake_auth_waiters()

    async def wait_authenticated(self) -> None:
        while True:
            if self.model.state == AUTHENTICATED:
                return
            if self._ended():
                raise self.error()
            if self._auth_waiters is None:
                self._auth_waiters = trio.Event()
            await self._auth_waiters.wait()

    def _wake_auth_waiters(self) -> None:
        """Wake ``wait_authenticated``'s callers, if any, to look again."""
        waiters, self._auth_waiters = self._auth_waiters, None
        if waiters is not None:
            waiters.set()

    def _ended(self) -> bool:
        """The session will not become authenticated by itself: terminal, or disconnected for a
        reason (stopped, logged off, displaced)."""
        state = self.model.state
        if state in TERMINAL_STATES:
            return True
        return state == DISCONNECTED and (self._stopping or self.model.reason is not None)

    def outcome(self) -> dict[str, Any]:
        """The model's outcome, with any secret a broker echoed scrubbed from its detail."""
        outcome = self.model.outcome()
        if outcome.get("detail") is not None:
            outcome["detail"] = self._scrub(outcome["detail"])
        return outcome

    def error(self) -> SessionError:
        """The error that describes why the session is not authenticated."""
        outcome = self.outcome()
        kind = _ERRORS_BY_STATE.get(outcome["state"], SessionClosed)
        if outcome.get("reason") == "gave_up":
            kind = GaveUp
        return kind(outcome, broker=self.model.broker, session_id=self.session_id,
                    account=self.model.account)

    async def stop(self, *, logout: bool = True) -> None:
        """Log out if authenticated (unless ``logout`` is False and the broker's session outlives
        the connection), otherwise disconnect; return once the session is at rest."""
        self._stopping = True
        self._wake_auth_waiters()  # a session at rest is over for its waiters, transition or not
        self.feed(Stop(logout))
        told: Connection | None = None  # a connection whose loss the machine has been told
        while self.model.state not in TERMINAL_STATES and self.model.state != DISCONNECTED:
            if self._work_left() and not self._busy and not self._closed:
                # The host is cancelling the session's tasks: a worker was cancelled with work
                # left (events queued, commands deferred: the logout itself, or a timer due).
                # This task carries it out itself.
                self._busy = True
                await self._work()
                continue
            conn = self._conn
            if (self.model.state == LOGGING_OUT and conn is not None and conn.gone
                    and conn is not told and not conn.cancelled and not self._busy):
                # The connection's task was cancelled with the session's (the driver did not
                # leave it behind, and it reported no close): no logout answer can be read.
                told = conn
                self.feed(Closed(conn.epoch, 1006, _CANCELLED_BY_HOST))
                continue
            if self._calls_cancelled and not self._busy:
                # The same for a REST call (a logout made over REST): it will never be answered.
                call = self._calls_cancelled.pop(0)
                self.feed(HttpFailed(call.call, call.serial, _CANCELLED_BY_HOST))
                continue
            await self._next_change()

    def end(self) -> None:
        """The session is over: no event moves the machine from now on."""
        self._closed = True
        self._queue.clear()
        self._deferred = None

    async def aclose(self) -> None:
        """Release what the session held, once its tasks have ended."""
        self.end()
        self._published_at_start = None
        if self._clock is not None:
            self._clock.forget()
            self._clock = None
        self._end_streams()
        if self._http is not None:
            await self._http.aclose()

    def _internal_error(self, what: str, exc: Exception) -> None:
        """Put the session in ``failed`` (internal) after a bug, and say so."""
        self._log("internal_error", detail=f"{what}: {summarise(exc)}")
        model: Any = self.model
        src = model.state
        model.state = FAILED
        model.reason, model.fault = "internal_error", Fault.INTERNAL
        model.detail = f"{what}: {type(exc).__name__}"
        self._drop_connection(1011, "internal error")
        self._timers.clear()
        self._on_transition(Transitioned("internal_error", src, FAILED, model.epoch,
                                         model.attempt, "internal_error", detail=model.detail))
