"""The simulator's WebSocket side: one loopback listener serving both of Firstock's sockets.

* The legacy Noren socket (``/NorenWSTP/``): the client's first message, ``{"t":"c",...}``,
  carries the session token; Noren answers ``{"t":"ck","s":"OK"}`` or ``Not_Ok``. Heartbeats
  are ``{"t":"h"}`` messages from the client.
* The new socket (``/ws?userId=U&jKey=K&source=developer-api``): the token travels in the
  query string and the first message says whether it was good. The server sends WebSocket
  Pings and drops a client that leaves one unanswered for 10 s.

A user may have at most three authenticated sockets across both. Every frame is read as soon as
it arrives (so a message pipelined behind the Noren connect is caught), and everything the
server says goes through one queue and one writer task, so messages leave in the order decided.
"""

from __future__ import annotations

import enum
import itertools
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, Literal
from urllib.parse import parse_qs

import trio
import trio_websocket

from brokergate.simulators._websocket import (
    HANDSHAKE_TIMEOUT,
    Close,
    LoopbackServer,
    QueuedConnection,
    closing_race,
    finish,
)
from brokergate.simulators.firstock import messages
from brokergate.simulators.firstock.accounts import FirstockSimulatorStats
from brokergate.simulators.firstock.tokens import Verdict

log = logging.getLogger(__name__)

#: Seconds the new socket waits for the Pong to each of its Pings (Firstock's documented 10 s).
PONG_TIMEOUT: Final = 10.0
#: WebSocket close codes (RFC 6455).
NORMAL_CLOSURE: Final = 1000
POLICY_VIOLATION: Final = 1008

SocketKind = Literal["noren", "feed"]
#: The request paths of each socket, without trailing slashes (``/V2/ws`` is the SDKs' spelling,
#: ``/ws`` the docs').
_PATHS: Final[dict[str, SocketKind]] = {"/NorenWSTP": "noren", "/ws": "feed", "/V2/ws": "feed"}


@dataclass(frozen=True)
class SocketView:
    """What the sockets may use of the Firstock simulator, and nothing else of it: the stats
    counters, the token check, the registry of authenticated sockets, and the options a socket
    runs by. Read through, never copied: ``reset_stats`` and a benchmark's ``login_settle``
    take effect on open sockets."""

    #: The counters now (``reset_stats`` replaces them).
    stats: Callable[[], FirstockSimulatorStats]
    #: Is this token (``jKey``) a good session of this user?
    check_token: Callable[[str, str], Verdict]
    #: The registry: count an authenticated socket for a user (False: the user is at the
    #: limit); a socket stopped counting (idempotent).
    admit: Callable[[SocketConnection, str], bool]
    release: Callable[[SocketConnection], None]
    #: Seconds a Noren connect takes to check, at least.
    login_settle: Callable[[], float]
    socket_ping_interval: Callable[[], float]
    noren_heartbeat_timeout: Callable[[], float | None]


class Phase(enum.Enum):
    AWAITING = "awaiting connect"  # Noren only: nothing received yet
    CONNECTING = "connecting"  # Noren only: the connect arrived, its answer is not on its way
    OPEN = "open"  # authenticated and counted towards the user's sockets
    CLOSING = "closing"  # refused, violated or ending: client messages are ignored


class SocketConnection(QueuedConnection):
    """What both sockets share: the reader, the ordered writer, and the ways to end."""

    kind: SocketKind

    def __init__(self, server: SocketView, ws: trio_websocket.WebSocketConnection,
                 label: str) -> None:
        super().__init__(ws)
        self.label = label
        #: The user this socket is counted for, once authenticated (None before, and after a
        #: refusal).
        self.user_id: str | None = None
        #: Set by the server once the socket is closed or dropped.
        self.finished = trio.Event()
        self._server = server
        self._phase = Phase.AWAITING

    def deliver(self, message: str) -> None:
        """Queue a message for the client, behind what is already queued."""
        self._post(message)

    # -- for subclasses -------------------------------------------------------------------------

    def _on_message(self, data: str | bytes) -> None:
        raise NotImplementedError

    def _ending_now(self) -> None:
        self._phase = Phase.CLOSING
        self._server.release(self)

    def _close_after(self, message: str, code: int, reason: str) -> None:
        """Say ``message``, then close: the socket stops listening at once."""
        self._phase = Phase.CLOSING
        self._post(message)
        self._post(Close((code, reason)))

    async def _read_loop(self) -> None:
        while True:
            self._on_message(await self._ws.get_message())

    def _violation(self, what: str) -> None:
        who = f"user {self.user_id!r}" if self.user_id else f"{self.label} (not authenticated)"
        self._server.stats().violations.append(f"{who} on the {self.kind} socket: {what}")

    def _violated(self, what: str, reason: str) -> None:
        self._violation(what)
        self._end((POLICY_VIOLATION, reason))

    def _admitted(self, user_id: str, refusal: str) -> bool:
        """Count the socket for ``user_id``, or refuse it (the limit) with ``refusal``."""
        if self._server.admit(self, user_id):
            self._phase = Phase.OPEN
            return True
        self._server.stats().sockets_refused += 1
        self._close_after(refusal, NORMAL_CLOSURE, messages.MAX_SESSIONS_TEXT)
        return False


class NorenConnection(SocketConnection):
    """The legacy socket: connect message first and alone, then heartbeats and subscriptions."""

    kind = "noren"

    def __init__(self, server: SocketView, ws: trio_websocket.WebSocketConnection,
                 label: str) -> None:
        super().__init__(server, ws, label)
        self._last_heartbeat = 0.0

    def _on_message(self, data: str | bytes) -> None:
        """Decide what a message means. Synchronous, so phase changes cannot interleave."""
        if self._phase is Phase.CLOSING:
            return
        if self._phase is Phase.CONNECTING:
            self._violated(f"{messages.describe(data)} arrived before the connect answer",
                           "a message arrived before the connect answer")
            return
        msg = messages.parse(data)
        if msg is None:
            self._violated(f"{messages.describe(data)} is not a JSON object", "not JSON")
            return
        kind = msg.get("t")
        if self._phase is Phase.AWAITING:
            if kind == "c":
                self._phase = Phase.CONNECTING
                self._spawn(self._connect, msg)
            else:
                self._violated(f"the first message was {messages.describe(data)}, "
                               'not a connect {"t":"c"}', "the first message must be t=c")
            return
        self._on_request(kind, msg, data)

    async def _connect(self, msg: dict[str, object]) -> None:
        server = self._server
        await trio.sleep(server.login_settle())
        uid, actid, token = msg.get("uid"), msg.get("actid"), msg.get("susertoken")
        verdict = "invalid"
        if isinstance(uid, str) and isinstance(token, str) and actid == uid:
            verdict = server.check_token(uid, token)
        if verdict != "ok":
            server.stats().socket_auth_failures += 1
            text = (messages.EXPIRED_SESSION_TEXT if verdict == "expired"
                    else messages.INVALID_SESSION_TEXT)
            self._close_after(messages.connect_refused(text), NORMAL_CLOSURE, text)
            return
        assert isinstance(uid, str)
        if not self._admitted(uid, messages.connect_refused(messages.MAX_SESSIONS_TEXT)):
            return
        # Open before the answer is queued: the client may send its next message at once.
        self._post(messages.connect_ok(uid))
        self._last_heartbeat = trio.current_time()
        allowed = server.noren_heartbeat_timeout()
        if allowed is not None:
            self._spawn(self._watch_heartbeats, allowed)

    def _on_request(self, kind: object, msg: dict[str, object], data: str | bytes) -> None:
        """Answer one message on an open socket."""
        stats = self._server.stats()
        if kind == "h":
            stats.heartbeats += 1
            self._last_heartbeat = trio.current_time()
        elif kind in ("t", "d"):
            keys, bad = messages.noren_keys(msg.get("k"))
            if bad:
                self._violation(f"instrument keys not like NSE|26000: {bad}")
            ack, feed = ((messages.touchline_ack, messages.touchline_feed) if kind == "t"
                         else (messages.depth_ack, messages.depth_feed))
            for exchange, token in keys:
                self._post(ack(exchange, token))
                self._post(feed(exchange, token))
        elif kind in ("u", "ud", "o", "uo"):
            self._post(messages.noren_ack(f"{kind}k", msg.get("k")))
        elif kind == "c":
            self._violation("a second connect on an open socket")
        else:
            self._violation(f"{messages.describe(data)} has an unknown t")

    async def _watch_heartbeats(self, allowed: float) -> None:
        while True:
            await trio.sleep_until(self._last_heartbeat + allowed)
            if trio.current_time() >= self._last_heartbeat + allowed:
                self._server.stats().heartbeat_timeouts += 1
                self._violated(f'no {{"t":"h"}} heartbeat for {allowed:g} s', "no heartbeat")
                return


class FeedConnection(SocketConnection):
    """The new socket: authenticated by its URL, kept alive by the server's Pings."""

    kind = "feed"

    def __init__(self, server: SocketView, ws: trio_websocket.WebSocketConnection,
                 label: str, query: str) -> None:
        super().__init__(server, ws, label)
        self._query = query

    def _started(self) -> None:
        """The verdict on the URL's token is the first message, before anything is read."""
        server = self._server
        params = parse_qs(self._query)
        user = params.get("userId", [""])[0]
        token = params.get("jKey", [""])[0]
        verdict = server.check_token(user, token) if user and token else "invalid"
        if verdict != "ok":
            server.stats().socket_auth_failures += 1
            self._close_after(messages.dump(messages.AUTH_FAILED), NORMAL_CLOSURE,
                              "unauthenticated")
            return
        if not self._admitted(user, messages.MAX_SESSIONS_TEXT):
            return
        self._post(messages.dump(messages.AUTH_OK))
        self._spawn(self._ping_loop, server.socket_ping_interval())

    def _on_message(self, data: str | bytes) -> None:
        if self._phase is not Phase.OPEN:
            return
        msg = messages.parse(data)
        if msg is None:
            self._violation(f"{messages.describe(data)} is not a JSON object")
            self._post(messages.action_failed("invalid request"))
            return
        action, tokens = msg.get("action"), msg.get("tokens")
        if action not in ("subscribe", "unsubscribe", "subscribe-option-greeks",
                          "unsubscribe-option-greeks"):
            self._violation(f"unknown action {action!r}")
            self._post(messages.action_failed(f"unknown action {action!r}"))
            return
        keys, bad = messages.feed_keys(tokens)
        if bad:
            self._violation(f"tokens not like NSE:26000: {bad}")
            self._post(messages.action_failed(f"invalid tokens: {'|'.join(bad)}"))
            return
        self._post(messages.action_ack(str(action), tokens))
        tick = {"subscribe": messages.feed_tick,
                "subscribe-option-greeks": messages.greeks_tick}.get(str(action))
        if tick is not None:
            for exchange, token in keys:
                self._post(tick(exchange, token))

    async def _ping_loop(self, interval: float) -> None:
        stats = self._server.stats()
        while True:
            await trio.sleep(interval)
            stats.pings_sent += 1
            with trio.move_on_after(PONG_TIMEOUT) as waiting:
                await self._ws.ping()
            if waiting.cancelled_caught:
                stats.ping_timeouts += 1
                self._violation(f"no Pong within {PONG_TIMEOUT:g} s of a Ping")
                self._end("drop")
                return
            stats.pongs += 1


class FirstockSocketServer(LoopbackServer):
    """The WebSocket listener; the simulator owns it and the state its ``SocketView`` shows."""

    name = "Firstock WebSocket"

    def __init__(self, server: SocketView) -> None:
        super().__init__()
        self._server = server
        self._numbers = itertools.count(1)

    async def _handle_stream(self, stream: trio.abc.Stream) -> None:
        """One TCP connection. Nothing may escape: a bad client must not stop the server."""
        label = f"socket {next(self._numbers)}"
        conn: SocketConnection | None = None
        try:
            # trio_websocket's reader task for this connection lives in this nursery.
            async with trio.open_nursery() as ws_tasks:
                opened = await _handshake(ws_tasks, stream)
                if opened is not None:
                    ws, kind, query = opened
                    self._server.stats().sockets_opened += 1
                    conn = (NorenConnection(self._server, ws, label) if kind == "noren"
                            else FeedConnection(self._server, ws, label, query))
                    ending = await conn.run()
                    await finish(ws, stream, ending)
                ws_tasks.cancel_scope.cancel()
        except Exception as exc:
            if closing_race(exc):
                log.debug("Firstock simulator: %s: a ping met our close (harmless)", label)
            else:
                log.exception("Firstock simulator: %s failed", label)
        finally:
            if conn is not None:
                conn.finished.set()
            await trio.aclose_forcefully(stream)


async def _handshake(
    nursery: trio.Nursery, stream: trio.abc.Stream
) -> tuple[trio_websocket.WebSocketConnection, SocketKind, str] | None:
    """Accept a handshake for one of the two socket paths (404 for any other), or None.

    Like ``brokergate.simulators._serving.handshake``, but it looks at the path first: one
    listener serves both sockets, and the path says which protocol follows.
    """
    with trio.move_on_after(HANDSHAKE_TIMEOUT):
        request = await trio_websocket.wrap_server_stream(nursery, stream)
        path, _, query = request.path.partition("?")
        kind = _PATHS.get(path.rstrip("/"))
        try:
            if kind is None:
                await request.reject(404, body=b"no WebSocket here: use /NorenWSTP/ or /ws\n")
                return None
            return await request.accept(), kind, query
        except trio_websocket.ConnectionClosed:
            return None  # gone before the handshake finished
    return None
