"""The session driver: runs one broker machine under trio and does all its I/O.

``SessionDriver`` is one object, with its ``__slots__`` declared once, made of parts that each
do one job, one module each, stacked in this order (each part may use those below it):

- ``_driver_state``: what the driver holds, and the audit and publishing helpers;
- ``_driver_subscribers``: the subscribers, and pausing the reading for a lossless one that is
  behind;
- ``_driver_loop``: feeding events to the machine one at a time, the queue, the worker task and
  the timers;
- ``_driver_connection``: the connection task, its frames and pings, and the single writer with
  its request gate;
- ``_driver_ending``: transitions, ``wait_authenticated``, the stop, the end, and the error
  that says why a session is not authenticated;
- ``_driver_requests``: the application's ``send`` and ``request``, and matching answers;
- ``_driver_calls``: REST calls, credentials, the token store, and the application's ``call``;
- ``_driver_claims``: the session's claim on its account in a fleet (standby, lease, flight).

A frame's path is trio-websocket's reader → ``_frame`` → ``feed_here`` → ``model.handle`` →
``_carry_out``, all method calls on this one object.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from brokergate.engine._driver_claims import ClaimsPart
from brokergate.engine._driver_state import SessionHost
from brokergate.machines import (
    CancelTimer,
    CloseConnection,
    Command,
    Deliver,
    FetchCredential,
    HttpRequest,
    Notice,
    OpenConnection,
    StartTimer,
    Transitioned,
)

__all__ = ["SessionDriver", "SessionHost"]


class SessionDriver(ClaimsPart):
    """Runs one session's machine. Created and started by its gateway (``Gateway.session``)."""

    __slots__ = ()

    def _carry_out(self, command: Command) -> None:
        """A command that needs no waiting: the method for its type (``_CARRY_OUT``), found in
        one dict lookup rather than tried against each command class in turn."""
        _CARRY_OUT[type(command)](self, command)


#: What ``_carry_out`` does with each command that needs no waiting.
_CARRY_OUT: dict[type[Any], Callable[[SessionDriver, Any], None]] = {
    OpenConnection: SessionDriver._open_connection,
    CloseConnection: SessionDriver._close_connection,
    StartTimer: SessionDriver._start_timer,
    CancelTimer: SessionDriver._cancel_timer,
    HttpRequest: SessionDriver._start_http_call,
    FetchCredential: SessionDriver._start_fetch,
    Deliver: SessionDriver._deliver,
    Notice: SessionDriver._notice,
    Transitioned: SessionDriver._on_transition,
}
