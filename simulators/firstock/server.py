"""The Firstock simulator: a loopback HTTP/1.1 API (login, userDetails, limit, logout:
``rest.py``) and a loopback WebSocket listener (the Noren socket and the new one:
``sockets.py``), sharing the accounts, tokens, counters and faults this module keeps."""

from __future__ import annotations

import itertools
import logging
import ssl
import time
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from functools import partial
from typing import Self
from urllib.parse import urlencode

import trio

from brokergate.simulators._accounts import AccountBook
from brokergate.simulators._websocket import CONTROL_WAIT, LoopbackServer, running
from brokergate.simulators.firstock.accounts import (
    STATUS_CASES,
    Countdowns,
    FirstockAccount,
    FirstockSimulatorStats,
    StatusCase,
)
from brokergate.simulators.firstock.http11 import HttpConnection
from brokergate.simulators.firstock.messages import MAX_SESSIONS
from brokergate.simulators.firstock.rest import ApiVersion, RestApi, RestView
from brokergate.simulators.firstock.sockets import (
    FirstockSocketServer,
    SocketConnection,
    SocketView,
)
from brokergate.simulators.firstock.tokens import Tokens

log = logging.getLogger(__name__)


class FirstockSimulator(LoopbackServer, AccountBook[FirstockAccount, Countdowns]):
    """A fake Firstock Connect API (``api_version`` "v3": plain passwords; "v4": the body carries
    sha256 hex of the password) plus both of its WebSockets.

    HTTP is served on ``port``, WebSockets on ``ws_port`` (0: any free port). ``rate_limit`` is
    requests per second across all HTTP requests (a sliding 1 s window); ``token_lifetime`` is
    trio seconds from login to SESSION_EXPIRED. A new login replaces the user's earlier token
    (the old one gets INVALID_JKEY): Firstock documents no rule, and one session per user is
    the stricter reading, which a client must survive anyway.
    """

    name = "Firstock"

    def __init__(
        self,
        accounts: Iterable[FirstockAccount] = (),
        *,
        api_version: ApiVersion = "v3",
        prefix: str = "/api/V3",
        rate_limit: float | None = None,
        token_lifetime: float | None = None,
        socket_ping_interval: float = 5.0,
        noren_heartbeat_timeout: float | None = None,
        status_case: StatusCase | None = None,
        ws_port: int = 0,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__()
        if api_version not in ("v3", "v4"):
            raise ValueError(f"api_version must be 'v3' or 'v4', not {api_version!r}")
        if prefix and (not prefix.startswith("/") or prefix.endswith("/")):
            raise ValueError(f"prefix must start with '/' and not end with one: {prefix!r}")
        if rate_limit is not None and rate_limit <= 0:
            raise ValueError("rate_limit must be positive requests per second (or None)")
        for name, value in (("token_lifetime", token_lifetime),
                            ("noren_heartbeat_timeout", noren_heartbeat_timeout),
                            ("socket_ping_interval", socket_ping_interval)):
            if value is not None and value <= 0:
                raise ValueError(f"{name} must be positive seconds")
        if status_case is not None and status_case not in STATUS_CASES:
            raise ValueError(f"status_case must be one of {sorted(STATUS_CASES)}")
        self.api_version: ApiVersion = api_version
        self.prefix = prefix
        self.rate_limit = rate_limit
        self.token_lifetime = token_lifetime
        self.socket_ping_interval = socket_ping_interval
        self.noren_heartbeat_timeout = noren_heartbeat_timeout
        #: How replies spell ``status`` when the account does not say (3.x: "Success",
        #: 4.x: "success", unless given).
        self.status_case: StatusCase = status_case or (
            "capitalised" if api_version == "v3" else "lowercase")
        #: Seconds since the epoch, for TOTP codes (the real server's clock is the wall clock;
        #: tests may pin it).
        self.wall_clock = wall_clock
        self.ws_port = ws_port
        self.stats = FirstockSimulatorStats()
        self._tokens = Tokens()
        self.sockets = FirstockSocketServer(SocketView(
            stats=lambda: self.stats, check_token=self._tokens.check, admit=self._admit,
            release=self._release, login_settle=lambda: self.login_settle,
            socket_ping_interval=lambda: self.socket_ping_interval,
            noren_heartbeat_timeout=lambda: self.noren_heartbeat_timeout))
        self._rest = RestApi(RestView(
            stats=lambda: self.stats, account=self.account, countdowns=self.countdowns,
            tokens=self._tokens, api_version=lambda: self.api_version,
            prefix=lambda: self.prefix, rate_limit=lambda: self.rate_limit,
            token_lifetime=lambda: self.token_lifetime, status_case=lambda: self.status_case,
            # Through the attribute, not bound once: a test may pin the clock later.
            wall_clock=lambda: self.wall_clock()), prefix)  # noqa: PLW0108
        self._live: list[SocketConnection] = []
        #: Set (and replaced) whenever a socket starts or stops counting.
        self._live_changed = trio.Event()
        self._numbers = itertools.count(1)
        self._open_book(accounts)

    # -- addresses ------------------------------------------------------------------------------

    @property
    def url(self) -> str:
        """``http://host:port/`` (``https://`` when serving TLS), once serving."""
        return "http" + super().url.removeprefix("ws")

    @property
    def base_url(self) -> str:
        """The API root the endpoints hang off, e.g. ``http://127.0.0.1:PORT/api/V3``."""
        return self.url.rstrip("/") + self.prefix

    @property
    def noren_url(self) -> str:
        """The legacy Noren socket, e.g. ``ws://127.0.0.1:PORT/NorenWSTP/``."""
        return self.sockets.url + "NorenWSTP/"

    @property
    def socket_url(self) -> str:
        """The new socket without its query, e.g. ``ws://127.0.0.1:PORT/ws``."""
        return self.sockets.url + "ws"

    def socket_url_for(self, user_id: str, jkey: str, source: str = "developer-api") -> str:
        """The new socket's URL as the SDKs build it: ``?userId=U&jKey=K&source=...``."""
        return f"{self.socket_url}?{urlencode({'userId': user_id, 'jKey': jkey, 'source': source})}"

    # -- accounts and controls ------------------------------------------------------------------

    def _account_key(self, account: FirstockAccount) -> str:
        return account.user_id

    def _arm(self, account: FirstockAccount) -> Countdowns:
        """Its countdowns and its wrong-password tally, afresh."""
        return Countdowns.arm(account)

    def reset_stats(self) -> None:
        """Start counting afresh. Tokens, sockets, countdowns and blocks are left as they are."""
        self.stats = FirstockSimulatorStats()

    def token_of(self, user_id: str) -> str | None:
        """The user's token that would pass a check right now, if any."""
        good = self._tokens.good(user_id)
        return good[-1] if good else None

    def expire_tokens(self, user_id: str) -> int:
        """Expire the user's good tokens (SESSION_EXPIRED from now on); how many.

        Sockets already open on them stay open, as a session check happens only at connect.
        """
        return self._tokens.expire(user_id)

    def live_sockets(self, user_id: str) -> int:
        """How many authenticated sockets (either kind) the user has open right now."""
        return sum(1 for conn in self._live if conn.user_id == user_id)

    async def wait_live_sockets(self, user_id: str, count: int) -> None:
        """Until the user has exactly ``count`` sockets open: the server notices a socket the
        client closed a moment after the client did, and a test may need to wait for that."""
        while self.live_sockets(user_id) != count:
            await self._live_changed.wait()

    async def drop_sockets(self, user_id: str) -> int:
        """Drop the TCP connections of the user's sockets, with no close frame (the client sees
        1006); returns how many, once they are gone."""
        mine = [conn for conn in self._live if conn.user_id == user_id]
        conns = [conn for conn in mine if conn.abort("drop")]  # aborting leaves self._live
        with trio.move_on_after(CONTROL_WAIT):
            for conn in conns:
                await conn.finished.wait()
        return len(conns)

    def send(self, user_id: str, messages: Iterable[str]) -> int:
        """Queue ``messages`` (market data, order updates: text frames, as Firstock's sockets
        send them) on every authenticated socket of the user, in order. Returns how many sockets
        took them; the simulator's writer sends them as fast as the client reads."""
        messages = list(messages)
        mine = [conn for conn in self._live if conn.user_id == user_id]
        for conn in mine:
            for message in messages:
                conn.deliver(message)
        return len(mine)

    async def drop(self, user_id: str) -> int:
        """``drop_sockets``, under the name the QST and CQG simulators use for the same thing.

        Only the sockets: the user's token stays good, so a client can open a new socket on it
        without logging in again."""
        return await self.drop_sockets(user_id)

    # -- the registry of authenticated sockets (in the sockets' view) --------------------------

    def _admit(self, conn: SocketConnection, user_id: str) -> bool:
        """Count an authenticated socket for ``user_id``; False if the user is at the limit."""
        if self.live_sockets(user_id) >= MAX_SESSIONS:
            return False
        conn.user_id = user_id
        self._live.append(conn)
        self._live_changed.set()
        self._live_changed = trio.Event()
        return True

    def _release(self, conn: SocketConnection) -> None:
        """A socket stopped counting (it is ending, any way at all). Idempotent."""
        if conn in self._live:
            self._live.remove(conn)
            self._live_changed.set()
            self._live_changed = trio.Event()

    # -- serving --------------------------------------------------------------------------------

    async def serve(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        ssl_context: ssl.SSLContext | None = None,
        task_status: trio.TaskStatus[Self] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Serve HTTP on ``port`` and the WebSockets on ``ws_port`` until cancelled."""
        async with trio.open_nursery() as nursery:
            await nursery.start(partial(self.sockets.serve, host, self.ws_port,
                                        ssl_context=ssl_context))
            await nursery.start(partial(super().serve, host, port, ssl_context=ssl_context))
            task_status.started(self)

    async def _handle_stream(self, stream: trio.abc.Stream) -> None:
        """One HTTP connection. Nothing may escape: a bad client must not stop the server."""
        label = f"HTTP connection {next(self._numbers)}"
        self.stats.http_connections += 1
        try:
            await HttpConnection(stream, self._rest.answer, self._rest.http_refusal,
                                 self._rest.malformed).run()
        except Exception:
            log.exception("Firstock simulator: %s failed", label)
        finally:
            await trio.aclose_forcefully(stream)


@asynccontextmanager
async def run_firstock_simulator(
    accounts: Iterable[FirstockAccount] = (),
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    ws_port: int = 0,
    api_version: ApiVersion = "v3",
    prefix: str = "/api/V3",
    rate_limit: float | None = None,
    token_lifetime: float | None = None,
    socket_ping_interval: float = 5.0,
    noren_heartbeat_timeout: float | None = None,
    status_case: StatusCase | None = None,
    wall_clock: Callable[[], float] = time.time,
    ssl_context: ssl.SSLContext | None = None,
) -> AsyncIterator[FirstockSimulator]:
    """Serve a Firstock simulator (HTTP API and WebSockets) for the duration of the block."""
    sim = FirstockSimulator(
        accounts,
        api_version=api_version,
        prefix=prefix,
        rate_limit=rate_limit,
        token_lifetime=token_lifetime,
        socket_ping_interval=socket_ping_interval,
        noren_heartbeat_timeout=noren_heartbeat_timeout,
        status_case=status_case,
        ws_port=ws_port,
        wall_clock=wall_clock,
    )
    async with running(sim, host, port, ssl_context) as serving:
        yield serving
