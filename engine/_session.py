"""``Session``: what the application holds of one broker session."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from brokergate.engine._driver import SessionDriver
from brokergate.engine._events import DEFAULT_BUFFER, DEFAULT_MAX_BYTES, EventStream, Overflow


class Session:
    """An open broker session. Obtain one from ``Gateway.session`` or ``open_session``."""

    __slots__ = ("_driver",)

    def __init__(self, driver: SessionDriver) -> None:
        self._driver = driver

    def __repr__(self) -> str:
        d = self._driver
        return (f"<Session {d.model.broker} {d.session_id} account={d.model.account!r} "
                f"state={d.model.state}>")

    @property
    def broker(self) -> str:
        return self._driver.model.broker

    @property
    def session_id(self) -> str:
        return self._driver.session_id

    @property
    def account(self) -> str:
        return self._driver.model.account

    @property
    def state(self) -> str:
        return self._driver.model.state

    @property
    def epoch(self) -> int:
        """Which connection the session is on (1 for the first; grows with each reconnect)."""
        return self._driver.model.epoch

    def outcome(self) -> dict[str, Any]:
        """Where the session stands: state, reason, fault, detail, attempts, what was granted."""
        return self._driver.outcome()

    async def wait_authenticated(self) -> None:
        """Return once authenticated. Raise ``LoginFailed``, ``LockedOut``,
        ``ProvisioningRequired``, ``GaveUp`` (all ``SessionError``) if the session ends instead."""
        await self._driver.wait_authenticated()

    async def send(self, message: Any) -> None:
        """Send one application message to the broker as it is, for brokers whose application
        matches the answers itself (the ``raw_send`` capability; what a message is, each
        broker's page under docs/brokers/ says). Answers arrive as ``BrokerMessage`` events.

        Raises ``NotAuthenticated`` at once, having sent nothing, unless the session is
        authenticated (a session being restored on a new connection is not);
        ``InvalidMessage`` for a message that is not one, or that only the session may send
        (its login, restore or logout); ``ConnectionLost`` if the connection closes while
        sending.
        """
        await self._driver.send(message)

    async def request(self, message: Any) -> Any:
        """Send an application request and return the broker's answer to it.

        Raises ``NotAuthenticated`` at once, having sent nothing, unless the session is
        authenticated; ``RequestFailed`` if the broker answers with an error; ``ConnectionLost``
        if the connection drops first.
        """
        return await self._driver.request(message)

    async def call(self, endpoint: str, body: Mapping[str, Any] | None = None, *,
                   retry: bool = True) -> Any:
        """Call one of the broker's REST endpoints with the session's token and return the
        answer's ``data`` (brokers with the ``rest_calls`` capability; the fields each broker
        adds and the errors it names, its page under docs/brokers/ says).

        The session adds its user and token to ``body``; the call shares the host's rate limit
        with every other session's. If the broker refuses the token, the session logs in
        again, once, and with ``retry`` the call is made once more with the new token (a
        refused token means the broker acted on nothing). A second refusal fails the session
        (``session_invalid``).

        Raises ``NotAuthenticated`` at once, having sent nothing, unless the session is
        authenticated; ``InvalidMessage`` for a call the session will not make (login, logout,
        a body with its own token); ``RequestFailed`` with the broker's error name and HTTP
        status for an error answer (never retried: the broker may have acted on it);
        ``ConnectionLost`` if no answer came (timed out or refused); ``LoginFailed`` if the
        fresh login failed.
        """
        return await self._driver.call(endpoint, body, retry=retry)

    def events(self, *, buffer: int = DEFAULT_BUFFER, max_bytes: int = DEFAULT_MAX_BYTES,
               overflow: Overflow = "backpressure", messages: bool = True) -> EventStream:
        """Subscribe to this session's events: transitions, notices and broker messages, in the
        order they happened, until the session ends.

        The subscriber's buffer holds up to ``buffer`` events and ``max_bytes`` bytes of broker
        messages. With ``overflow="backpressure"`` (the default) nothing is ever dropped: while
        the buffer is full the session stops reading from the broker, and says so in a
        ``slow_consumer`` notice after ``slow_consumer_after`` seconds (``caught_up`` when it
        reads again). ``overflow="drop_oldest"`` is for a subscriber that only wants the latest
        data: it never holds back the reading, and its oldest broker messages make room for new
        ones, each run of drops told in a ``messages_dropped`` notice. Transitions and notices
        are never dropped. With ``messages=False`` the subscriber gets transitions and notices
        only: a watcher of the session's life (a status page, a supervisor), which never holds
        back the reading for data it does not want. Raises ``ValueError`` for a bound below 1 or
        an unknown policy.
        """
        return self._driver.subscribe(buffer, max_bytes, overflow, messages=messages)
