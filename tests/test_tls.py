"""TLS is the default transport: verified against a loopback wss:// simulator."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest
import trio
import trio.testing
import trustme
from helpers import qst_config, session_kwargs

from brokergate import GaveUp, open_session
from brokergate.simulators.qst import QstAccount, QstSimulator


@pytest.fixture
def ca() -> trustme.CA:
    return trustme.CA()


async def _serve_tls(nursery: trio.Nursery, ca: trustme.CA) -> QstSimulator:
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server_ctx)
    sim = QstSimulator([QstAccount("alice", "alice-pw")])
    await nursery.start(lambda task_status: sim.serve(ssl_context=server_ctx,
                                                      task_status=task_status))
    return sim


async def test_wss_with_the_servers_ca_logs_in(
    ca: trustme.CA, tmp_path: Path, clock: trio.testing.MockClock
) -> None:
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    async with trio.open_nursery() as nursery:
        sim = await _serve_tls(nursery, ca)
        assert sim.url.startswith("wss://")
        config = qst_config(sim.url, "alice", ca_file=str(ca_file))
        async with open_session(config, **session_kwargs([])) as session:
            await session.wait_authenticated()
        assert sim.stats.logouts == 1
        nursery.cancel_scope.cancel()


async def test_certificate_not_trusted_by_default_is_refused(
    ca: trustme.CA, clock: trio.testing.MockClock
) -> None:
    async with trio.open_nursery() as nursery:
        sim = await _serve_tls(nursery, ca)
        config = qst_config(sim.url, "alice", connect_timeout=2)
        async with open_session(config, **session_kwargs([])) as session:
            with pytest.raises(GaveUp, match="certificate verification failed"):
                await session.wait_authenticated()
        assert sim.stats.logins_ok == 0
        nursery.cancel_scope.cancel()
