"""The gateway: what sessions share lives in one object for one block (engine/_gateway.py)."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
import trio
import trio.testing
from helpers import cqg_config, qst_config, session_kwargs, states

from brokergate import (
    AuditLog,
    ConfigurationError,
    FirstockConfig,
    GatewayClosed,
    LocalCoordinator,
    MemoryTokenStore,
    Secret,
    TcpTransport,
    open_gateway,
    open_session,
)
from brokergate.machines import SessionSettings
from brokergate.machines.brokers import BROKERS
from brokergate.simulators.cqg import CqgAccount, run_cqg_simulator
from brokergate.simulators.firstock import FirstockAccount, run_firstock_simulator
from brokergate.simulators.qst import QstAccount, run_qst_simulator

TOTP = "123456"


async def test_sessions_of_one_gateway_share_a_users_logon_history(
    clock: trio.testing.MockClock,
) -> None:
    async with run_cqg_simulator([CqgAccount("alice", "alice-pw")]) as sim:
        config = cqg_config(sim.url, "alice", min_logon_interval=30.0)
        events: list[dict[str, Any]] = []
        async with open_gateway(**session_kwargs([])) as gw:
            async with gw.session(config) as first:
                await first.wait_authenticated()
            async with gw.session(config, audit=AuditLog.collect(events)) as second:
                await second.wait_authenticated()
        assert states(events)[:2] == ["backoff", "connecting"]  # waited for the interval


async def test_separate_open_sessions_share_nothing_but_a_token_store_given_to_both(
    clock: trio.testing.MockClock,
) -> None:
    """open_session is a gateway of one: two of them keep separate logon histories."""
    async with run_cqg_simulator([CqgAccount("alice", "alice-pw")]) as sim:
        config = cqg_config(sim.url, "alice", min_logon_interval=30.0)
        async with open_session(config, **session_kwargs([])) as first:
            await first.wait_authenticated()
        events: list[dict[str, Any]] = []
        async with open_session(config, **session_kwargs(events)) as second:
            await second.wait_authenticated()
        assert "backoff" not in states(events)


class _CountingTransport:
    """A WebSocket transport of the application's: TCP as usual, counting what it opens."""

    def __init__(self) -> None:
        self.urls: list[str] = []

    async def open_stream(self, url: str, ca_file: str | None) -> trio.abc.Stream:
        self.urls.append(url)
        return await TcpTransport().open_stream(url, ca_file)


async def test_the_websocket_transport_is_injectable() -> None:
    transport = _CountingTransport()
    async with run_qst_simulator([QstAccount("u1", "u1-pw")]) as sim:
        async with open_gateway(websocket=transport, **session_kwargs([])) as gw:
            async with gw.session(qst_config(sim.url, "u1")) as session:
                await session.wait_authenticated()
        assert transport.urls == [sim.url]


class _RecordingHttp(httpx.AsyncBaseTransport):
    def __init__(self) -> None:
        self.inner = httpx.AsyncHTTPTransport()
        self.paths: list[str] = []
        self.closed = False

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.paths.append(request.url.path.rsplit("/", 1)[-1])
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        self.closed = True
        await self.inner.aclose()


async def test_the_http_transport_is_injectable_and_stays_the_applications() -> None:

    http = _RecordingHttp()
    async with run_firstock_simulator([FirstockAccount("AA1", "AA1-pw",
                                                       fixed_totp=TOTP)]) as sim:
        account = sim.account("AA1")
        assert account is not None
        config = FirstockConfig(base_url=sim.base_url, user_id="AA1",
                                password=Secret("AA1-pw"), api_key=Secret(account.api_key),
                                vendor_code=account.vendor_code, totp=Secret(TOTP),
                                socket="none")
        async with open_gateway(http_transport=http, **session_kwargs([])) as gw:
            async with gw.session(config) as session:
                await session.wait_authenticated()
            assert not http.closed  # the session's end leaves the gateway's transport open
    assert http.paths[0] == "login" and "logout" in http.paths
    await http.aclose()


async def test_a_gateway_opens_no_session_once_its_block_has_ended() -> None:
    async with open_gateway() as gw:
        pass
    with pytest.raises(GatewayClosed, match="block has ended"):
        async with gw.session(qst_config("ws://127.0.0.1:1", "u1")):
            pass


async def test_a_token_store_and_a_coordinator_are_one_or_the_other() -> None:
    with pytest.raises(ConfigurationError, match="not both"):
        async with open_gateway(token_store=MemoryTokenStore(),
                                coordinator=LocalCoordinator()):
            pass


async def test_a_configuration_of_no_broker_is_refused_naming_the_known_ones() -> None:
    async with open_gateway() as gw:
        with pytest.raises(ConfigurationError) as caught:
            async with gw.session(SessionSettings()):
                pass
    for broker in BROKERS:
        assert broker.config_type.__name__ in str(caught.value)


async def test_the_block_end_waits_for_sessions_opened_in_other_tasks(
    clock: trio.testing.MockClock,
) -> None:
    """A session in a task outside the gateway's block still logs out on its own timers: the
    gateway's alarm clock runs until it has ended."""
    events: list[dict[str, Any]] = []
    async with run_qst_simulator([QstAccount("u1", "u1-pw")]) as sim:
        async with trio.open_nursery() as outside:
            started = trio.Event()

            async def hold(gw: Any) -> None:
                async with gw.session(qst_config(sim.url, "u1")) as session:
                    await session.wait_authenticated()
                    started.set()
                    await trio.sleep(60)

            async with open_gateway(**session_kwargs(events)) as gw:
                outside.start_soon(hold, gw)
                await started.wait()
            assert gw.open_sessions == 0  # the block's end waited for it
    assert states(events)[-1] == "disconnected"
