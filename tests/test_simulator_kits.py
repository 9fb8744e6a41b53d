"""Each broker's simulator kit (``Broker.simulator()``): it starts its simulator with the demo
accounts, yields the lines ``brokergate simulate`` shows a person, and a demo account logs in
through ``open_session`` at the URLs those lines give. Its demo scenarios are its broker's."""

from __future__ import annotations

import re
from typing import Any

import pytest
import trio
from helpers import cqg_config, qst_config

from brokergate import AuditLog, FirstockConfig, Secret, open_session
from brokergate.machines._broker import SimulatorKit
from brokergate.machines.brokers import BROKERS, broker_named
from brokergate.simulators.cqg import DEMO_OTP_SEED
from brokergate.simulators.firstock import DEMO_FIXED_TOTP, DEMO_TOTP_SEED

PORT = r"127\.0\.0\.1:(\d+)"


async def _log_in(config: Any) -> str:
    events: list[dict[str, Any]] = []
    with trio.fail_after(10):
        async with open_session(config, audit=AuditLog.collect(events)) as session:
            await session.wait_authenticated()
            return session.state


@pytest.mark.parametrize("broker", BROKERS, ids=lambda b: b.name)
def test_every_broker_names_a_kit_whose_scenarios_are_its_own(broker: Any) -> None:
    kit = broker.simulator()
    assert broker.simulator_module == f"brokergate.simulators.{broker.name}"
    assert isinstance(kit.help, str) and kit.help
    assert callable(kit.running)
    assert kit.scenarios and {sc.broker for sc in kit.scenarios} == {broker.name}
    typed: SimulatorKit = kit  # the descriptor's contract, checked by mypy
    assert typed is kit


def test_the_qst_kit() -> None:
    async def main() -> tuple[list[str], str]:
        async with broker_named("qst").simulator().running("127.0.0.1", 0) as lines:
            url = re.fullmatch(r"QST simulator listening on (ws://127\.0\.0\.1:\d+/)",
                               lines[0])
            assert url, lines
            return lines, await _log_in(qst_config(url[1], "alice"))

    lines, state = trio.run(main)
    assert state == "authenticated"
    assert lines[1:] == [
        "accounts: alice, pending, wrong, locked, totp, flaky, busy, kicked, slow, dropper "
        "(password <user>-pw; see `pydoc brokergate.simulators.qst.demo_accounts`)"]


def test_the_cqg_kit_redirects_to_itself() -> None:
    async def main() -> tuple[list[str], str, str]:
        async with broker_named("cqg").simulator().running("127.0.0.1", 0) as lines:
            url = re.fullmatch(r"CQG WebAPI simulator listening on (ws://127\.0\.0\.1:\d+/)",
                               lines[0])
            assert url, lines
            alice = await _log_in(cqg_config(url[1], "alice", min_logon_interval=0.1))
            # The account added once the simulator listened: 106 REDIRECTED to its own URL.
            redirected = await _log_in(cqg_config(url[1], "redirected",
                                                  min_logon_interval=0.1))
            return lines, alice, redirected

    lines, alice, redirected = trio.run(main)
    assert (alice, redirected) == ("authenticated", "authenticated")
    assert lines[1:] == [
        "accounts: alice, otp, tokens, expired, concurrent, routine, mystery, pinger, deaf, "
        "chatty, welcome, busy, dropper, flappy, redirected (password <user>-pw; TOTP seed of "
        f"otp: {DEMO_OTP_SEED}; see `pydoc brokergate.simulators.cqg.demo_accounts`)"]


def test_the_firstock_kit() -> None:
    async def main() -> tuple[list[str], str]:
        async with broker_named("firstock").simulator().running("127.0.0.1", 0) as lines:
            http = re.fullmatch(r"Firstock simulator listening on http://" + PORT + "/",
                                lines[0])
            rest = re.fullmatch(r"REST base URL (http://127\.0\.0\.1:\d+/api/V3); sockets: "
                                r"noren (ws://" + PORT + r"/NorenWSTP/), v2 ws://"
                                + PORT + "/ws", lines[1])
            assert http and rest, lines
            assert rest[1] == f"http://127.0.0.1:{http[1]}/api/V3" and rest[3] == rest[4]
            config = FirstockConfig(
                base_url=rest[1], user_id="alice", password=Secret("alice-pw"),
                api_key=Secret("key-alice"), vendor_code="alice_API", totp=Secret("000000"),
                socket="noren", socket_url=rest[2])
            return lines, await _log_in(config)

    lines, state = trio.run(main)
    assert state == "authenticated"
    assert lines[2:] == [
        "accounts: alice, totp, fixed, blocky, flaky, proxy, limited, slow, lower, otpfail "
        "(password <user>-pw; API keys key-<user>, vendor codes <user>_API; TOTP seed of totp: "
        f"{DEMO_TOTP_SEED}; code of fixed: {DEMO_FIXED_TOTP}; see "
        "`pydoc brokergate.simulators.firstock.demo_accounts`)"]


def test_a_kit_listens_where_it_is_told_and_stops_with_its_block() -> None:
    async def main() -> None:
        listener = trio.socket.socket()
        await listener.bind(("127.0.0.1", 0))
        port = listener.getsockname()[1]
        listener.close()
        async with broker_named("qst").simulator().running("127.0.0.1", port) as lines:
            assert lines[0].endswith(f"ws://127.0.0.1:{port}/")
        with pytest.raises(OSError):
            await trio.open_tcp_stream("127.0.0.1", port)

    trio.run(main)
