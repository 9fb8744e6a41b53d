"""A session driver's application side over the connection: messages sent as they are, and
requests whose answers are matched by request id."""

from __future__ import annotations

from typing import Any

import trio

from brokergate.engine._driver_ending import EndingPart
from brokergate.engine._errors import InvalidMessage, NotAuthenticated, RequestFailed
from brokergate.engine._events import BrokerMessage
from brokergate.machines import AUTHENTICATED, Deliver, Fault, Notice

_MAX_REQUEST_ID = 2**32 - 1


class Waiter:
    """Where the answer to one application request arrives."""

    __slots__ = ("done", "error", "result")

    def __init__(self) -> None:
        self.done = trio.Event()
        self.result: Any = None
        self.error: BaseException | None = None

    def settle(self, result: Any = None, error: BaseException | None = None) -> None:
        if not self.done.is_set():
            self.result, self.error = result, error
            self.done.set()


class RequestsPart(EndingPart):
    """``send`` and ``request``, and the answers the machine delivers."""

    __slots__ = ()

    async def send(self, message: Any) -> None:
        """Send one application message as it is (brokers with the ``raw_send`` capability,
        whose answers the application matches itself). Gated like every application frame."""
        if self.model.state != AUTHENTICATED:
            raise NotAuthenticated(self.model.broker, self.model.state)
        if self._raw is None:
            raise TypeError(f"{self.model.broker_name} takes no messages as they are: "
                            f"{self._what_instead()}")
        try:
            data = self._raw.encode_send(message)
        except ValueError as exc:
            raise InvalidMessage(f"{self.model.broker}: not sent: {exc}") from None
        await self.write(data, control=False)
        self.model.application_sent()

    def _what_instead(self) -> str:
        """What the application uses instead, for a TypeError that says how to talk to it."""
        ways = []
        if self._requests is not None:
            ways.append("session.request()")
        if self._raw is not None:
            ways.append("session.send() and read answers from session.events()")
        if self._rest is not None:
            ways.append("session.call()")
        return "use " + " or ".join(ways) if ways else "it takes no application messages"

    async def request(self, message: Any) -> Any:
        """Send an application request (brokers with the ``requests`` capability) and return
        the answer the broker gives under its request id."""
        if self.model.state != AUTHENTICATED:
            raise NotAuthenticated(self.model.broker, self.model.state)
        if self._requests is None:
            raise TypeError(f"{self.model.broker_name} takes no requests with ids: "
                            f"{self._what_instead()}")
        request_id = self._take_request_id()
        data = self._requests.encode_request(message, request_id)
        waiter = Waiter()
        self._pending[request_id] = waiter
        try:
            await self.write(data, control=False)
            self.model.application_sent()
            await waiter.done.wait()
        finally:
            self._pending.pop(request_id, None)
        if waiter.error is not None:
            raise waiter.error
        return waiter.result

    def _take_request_id(self) -> int:
        rid = self._next_request_id
        wrapped = rid >= _MAX_REQUEST_ID
        self._next_request_id = self._first_request_id() if wrapped else rid + 1
        while rid in self._pending:  # only after wrapping around
            rid = self._take_request_id()
        return rid

    def _deliver(self, command: Deliver) -> None:
        rid = command.request_id
        if rid is None:
            self._publish(BrokerMessage(command.message), self._frame_size)
            return
        waiter = self._pending.get(rid)
        if waiter is None:
            self._notice(Notice(
                "unknown_request_id",
                f"{self.model.broker_name} answered request {rid}, which no request is waiting "
                "for; ignored",
                Fault.BROKER,
            ))
        elif command.error is not None:
            waiter.settle(error=RequestFailed(self.model.broker, command.error.code,
                                              self._scrub(command.error.message)))
        else:
            waiter.settle(result=command.message)
