"""The security checks, for every broker they apply to, in one place.

- plaintext (ws://, http://) only to loopback hosts: QST, CQG, Firstock REST and socket, in the
  configuration, through open_session and through the CLI, with nothing dialled; a loopback
  *name* whose resolver points elsewhere is refused before connecting;
- CQG redirects (LogonResult 106, LoggedOff 2) only to allow-listed hosts and never to plaintext
  off the machine, with nothing dialled;
- TLS certificates verified by default (self-signed loopback servers refused), accepted with an
  explicit CA file (library ``ca_file`` and CLI ``--ca-file``), refused for another host name
  even with the CA file;
- token files 0600 in a 0700 directory whatever the umask; a token file others could read is
  not trusted; the CLI's audit log and token directory likewise;
- secrets never accepted from argv (the refusal never repeats the value), never in the child's
  command line.

Every socket is a real loopback socket. In-process tests install ``Net``: trio's hostname
resolver and socket factory for the run, which record every name looked up and every address
dialled, resolve test names to loopback listeners (so a dial that should not happen would
succeed, and be counted), and refuse, without making it, any connection to a non-loopback
address.
"""

from __future__ import annotations

import argparse
import errno
import ipaddress
import json
import os
import socket
import ssl
import stat
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing
import trustme
from helpers import TEST_BACKOFF, cqg_config, qst_config, session_kwargs
from trio._socket import _SocketType

from brokergate import (
    Fault,
    FileTokenStore,
    FirstockConfig,
    GaveUp,
    LoginFailed,
    Secret,
    Session,
    StoredToken,
    Transitioned,
    open_session,
)
from brokergate.engine import cli as cli_module
from brokergate.engine._transport import tls_context
from brokergate.machines import TERMINAL_STATES
from brokergate.machines._config import is_loopback_host, url_problems
from brokergate.simulators._websocket import running
from brokergate.simulators.cqg import CqgAccount, run_cqg_simulator
from brokergate.simulators.firstock import FirstockAccount, FirstockSimulator
from brokergate.simulators.qst import QstAccount, QstSimulator

ROOT = Path(__file__).resolve().parent.parent
CLI = [sys.executable, "-m", "brokergate.engine.cli"]
BROKERGATE = ROOT / ".venv" / "bin" / "brokergate"
TOTP = "123456"
#: Where test names resolve "elsewhere": TEST-NET-1, never dialled (Net refuses to).
ELSEWHERE = "192.0.2.7"

Events = list[dict[str, Any]]


# ---------------------------------------------------------------------------------------------
# Net: what the process under test looks up and dials


class _Tripwire(_SocketType):  # trio's own socket class: private, fine in a test
    """A trio socket that records where it connects and never leaves the machine."""

    net: Net

    async def connect(self, address: Any) -> None:
        host = str(address[0])
        self.net.dialled.append(host)
        if not ipaddress.ip_address(host.split("%", 1)[0]).is_loopback:
            raise OSError(errno.ENETUNREACH, f"tripwire: the test refused to dial {host}")
        await super().connect(address)


class Net(trio.abc.HostnameResolver, trio.abc.SocketFactory):
    """Hostname resolver and socket factory for one trio run (see the module docstring)."""

    def __init__(self, **names: list[str]) -> None:
        #: name -> addresses; ``localhost`` is 127.0.0.1 unless told otherwise.
        self.names = {"localhost": ["127.0.0.1"]}
        self.names.update({k.replace("_", "."): v for k, v in names.items()})
        self.looked_up: list[str] = []
        self.dialled: list[str] = []

    def map(self, name: str, *addresses: str) -> None:
        self.names[name] = list(addresses)

    def install(self) -> Net:
        trio.socket.set_custom_hostname_resolver(self)
        trio.socket.set_custom_socket_factory(self)
        return self

    async def getaddrinfo(  # noqa: PLR0917 - trio's signature
        self, host: Any, port: Any, family: int = 0, type: int = 0, proto: int = 0,
        flags: int = 0,
    ) -> Any:
        name = host.decode() if isinstance(host, bytes) else str(host)
        self.looked_up.append(name)
        addresses = self.names.get(name.lower().rstrip("."))
        if addresses is None:
            raise socket.gaierror(socket.EAI_NONAME, f"{name} is not known to this test")
        number = int(port or 0)
        answers = []
        for address in addresses:
            fam = socket.AF_INET6 if ":" in address else socket.AF_INET
            if family in (0, fam):
                sockaddr = (address, number) if fam == socket.AF_INET else (address, number, 0, 0)
                answers.append((fam, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", sockaddr))
        return answers

    async def getnameinfo(self, sockaddr: Any, flags: int) -> Any:
        raise NotImplementedError

    def socket(self, family: Any = None, type: Any = None, proto: Any = None) -> Any:
        sock = _Tripwire(socket.socket(family or socket.AF_INET, type or socket.SOCK_STREAM,
                                       proto or 0))
        sock.net = self
        return sock


class Tarpit:
    """A loopback listener standing in for a host that must never be contacted."""

    def __init__(self) -> None:
        self.accepted = 0
        self.port = 0

    async def _handle(self, stream: trio.SocketStream) -> None:
        self.accepted += 1
        await stream.aclose()

    async def start(self, nursery: trio.Nursery) -> Tarpit:
        listeners = await nursery.start(partial(trio.serve_tcp, self._handle, 0,
                                                host="127.0.0.1"))
        self.port = listeners[0].socket.getsockname()[1]
        return self


# ---------------------------------------------------------------------------------------------
# builders


def fs_account(user: str = "AA1") -> FirstockAccount:
    return FirstockAccount(user, f"{user}-pw", fixed_totp=TOTP)


def fs_config(base_url: str, socket_url: str | None = None, user: str = "AA1",
              **overrides: Any) -> FirstockConfig:
    values: dict[str, Any] = {
        "base_url": base_url, "user_id": user, "password": Secret(f"{user}-pw"),
        "api_key": Secret(f"key-{user}"), "vendor_code": f"{user}_API", "totp": Secret(TOTP),
        "socket": "noren" if socket_url else "none", "socket_url": socket_url,
        "backoff": TEST_BACKOFF,
    }
    values.update(overrides)
    return FirstockConfig(**values)


@asynccontextmanager
async def serve_firstock(rest_tls: ssl.SSLContext | None = None,
                         socket_tls: ssl.SSLContext | None = None,
                         ) -> AsyncIterator[FirstockSimulator]:
    """A Firstock simulator whose REST API and sockets may serve TLS with different certs."""
    sim = FirstockSimulator([fs_account()])
    async with trio.open_nursery() as nursery:
        await nursery.start(partial(sim.sockets.serve, "127.0.0.1", 0, ssl_context=socket_tls))
        rest = super(FirstockSimulator, sim).serve  # the HTTP API alone
        await nursery.start(partial(rest, "127.0.0.1", 0, ssl_context=rest_tls))
        yield sim
        nursery.cancel_scope.cancel()


def server_tls(ca: trustme.CA, host: str = "127.0.0.1") -> ssl.SSLContext:
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert(host).configure_cert(ctx)
    return ctx


def ca_path(ca: trustme.CA, tmp_path: Path) -> str:
    path = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(path))
    return str(path)


async def ended(session: Session) -> str:
    """Wait (in virtual time) for the session to reach a terminal state; return it."""
    with trio.fail_after(600):
        async with session.events() as events:
            if session.state in TERMINAL_STATES:
                return session.state
            async for event in events:
                if isinstance(event, Transitioned) and event.dst in TERMINAL_STATES:
                    return event.dst
    return session.state


def run_cli(args: list[str], env: dict[str, str] | None = None, *,
            command: list[str] = CLI, **popen: Any) -> subprocess.Popen[str]:
    environment = {k: v for k, v in os.environ.items() if not k.startswith("BROKERGATE_")}
    environment.update(env or {})
    return subprocess.Popen([*command, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            stdin=subprocess.DEVNULL, text=True, env=environment, cwd=ROOT,
                            **popen)


def result_line(stdout: str) -> dict[str, Any] | None:
    lines = stdout.strip().splitlines()
    return json.loads(lines[-1]) if lines else None


# ---------------------------------------------------------------------------------------------
# plaintext only to loopback hosts

#: (broker, the URL field, a config with that field set to ``url``)
PLAINTEXT_FIELDS = {
    "qst-url": lambda url: qst_config(url, "alice"),
    "cqg-url": lambda url: cqg_config(url, "alice"),
    "firstock-base_url": fs_config,
    "firstock-socket_url": lambda url: fs_config("http://127.0.0.1:1/api/V3",
                                                 url.replace("http://", "ws://", 1)),
}


def plain(field: str, host: str, port: int = 1) -> str:
    scheme = "http" if field == "firstock-base_url" else "ws"
    path = "/api/V3" if field == "firstock-base_url" else "/NorenWSTP/"
    return f"{scheme}://{host}:{port}{path}"


@pytest.mark.parametrize("field", PLAINTEXT_FIELDS)
@pytest.mark.parametrize("host", [
    "example.com", "10.1.2.3", "[2001:db8::1]", "0.0.0.0", "127.0.0.1.nip.io",
    "localhost.example.com", "2130706433", "127.1",
])
def test_plaintext_to_a_remote_host_is_a_configuration_problem(field: str, host: str) -> None:
    problems = PLAINTEXT_FIELDS[field](plain(field, host)).problems()
    name = field.split("-", 1)[1]
    scheme = "http" if name == "base_url" else "ws"
    expected = (f"{name} uses plaintext {scheme}:// to {host.strip('[]')}, which is not a "
                f"loopback host; use {scheme}s://")
    assert expected in problems


@pytest.mark.parametrize("field", PLAINTEXT_FIELDS)
@pytest.mark.parametrize("trick", [
    "ws://127.0.0.1@example.com/", "ws://example.com\\@127.0.0.1/",
    "ws://localhost:1@example.com/", "ws://example.com#@127.0.0.1/",
])
def test_a_url_that_only_mentions_loopback_is_refused(field: str, trick: str) -> None:
    url = trick.replace("ws://", "http://", 1) if field == "firstock-base_url" else trick
    problems = PLAINTEXT_FIELDS[field](url).problems()
    assert any("not a loopback host" in p or "must not carry credentials" in p
               for p in problems), problems


@pytest.mark.parametrize("field", PLAINTEXT_FIELDS)
@pytest.mark.parametrize("host", ["127.0.0.1", "127.8.9.10", "[::1]", "localhost",
                                  "LOCALHOST", "localhost."])
def test_plaintext_to_loopback_is_accepted(field: str, host: str) -> None:
    assert not any("loopback" in p for p in PLAINTEXT_FIELDS[field](plain(field, host))
                   .problems())


def test_what_counts_as_a_loopback_host() -> None:
    assert is_loopback_host("localhost") and is_loopback_host("LocalHost.")
    assert is_loopback_host("::1") and is_loopback_host("[::1]")
    assert is_loopback_host("127.255.0.1")
    for host in ("localhost.localdomain", "127.0.0.1.nip.io", "0.0.0.0", "2130706433", "::"):
        assert not is_loopback_host(host), host
    # TLS anywhere, plaintext nowhere else, and no other schemes at all
    assert url_problems("wss://example.com/", secure="wss", plain="ws") == []
    assert url_problems("http://example.com/", secure="wss", plain="ws") != []


@pytest.mark.parametrize("field", PLAINTEXT_FIELDS)
async def test_plaintext_to_a_remote_host_fails_the_session_before_any_dial(
    field: str, clock: trio.testing.MockClock
) -> None:
    net = Net(example_com=["127.0.0.1"]).install()  # a dial would land in the tarpit
    async with trio.open_nursery() as nursery:
        tarpit = await Tarpit().start(nursery)
        config = PLAINTEXT_FIELDS[field](plain(field, "example.com", tarpit.port))
        async with open_session(config, **session_kwargs([])) as session:
            with pytest.raises(LoginFailed) as caught:
                await session.wait_authenticated()
            assert session.outcome()["attempts"] == 0
        nursery.cancel_scope.cancel()
    assert caught.value.reason == "invalid_config" and caught.value.fault == Fault.CONFIGURATION
    assert "plaintext" in str(caught.value) and "example.com, which is not a loopback host" in \
        str(caught.value)
    assert net.looked_up == [] and net.dialled == [] and tarpit.accepted == 0


# plaintext to a loopback *name* goes to loopback addresses only


@asynccontextmanager
async def plaintext_target(kind: str, host: str) -> AsyncIterator[tuple[Any, Any]]:
    """A loopback simulator for ``kind`` and a config reaching it by ``host`` in plaintext;
    yields (config, stats)."""
    if kind == "qst":
        async with running(QstSimulator([QstAccount("alice", "alice-pw")]), "127.0.0.1",
                           0) as qst:
            yield qst_config(f"ws://{host}:{qst.port}/", "alice"), qst.stats
    elif kind == "cqg":
        async with run_cqg_simulator([CqgAccount("alice", "alice-pw")]) as cqg:
            yield cqg_config(f"ws://{host}:{cqg.port}/", "alice"), cqg.stats
    else:
        async with serve_firstock() as fs:
            base = f"http://{host if kind == 'firstock-rest' else '127.0.0.1'}:{fs.port}/api/V3"
            noren = f"ws://{host if kind == 'firstock-socket' else '127.0.0.1'}:" \
                    f"{fs.sockets.port}/NorenWSTP/"
            yield fs_config(base, noren), fs.stats


KINDS = ["qst", "cqg", "firstock-rest", "firstock-socket"]


@pytest.mark.parametrize("kind", KINDS)
async def test_plaintext_to_localhost_dials_its_loopback_address(
    kind: str, clock: trio.testing.MockClock
) -> None:
    net = Net().install()
    async with plaintext_target(kind, "localhost") as (config, _):
        async with open_session(config, **session_kwargs([])) as session:
            await session.wait_authenticated()
    assert "localhost" in net.looked_up
    assert net.dialled and set(net.dialled) == {"127.0.0.1"}


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("addresses", [[ELSEWHERE], ["127.0.0.1", ELSEWHERE]],
                         ids=["elsewhere", "partly-elsewhere"])
async def test_plaintext_to_a_loopback_name_resolving_elsewhere_is_never_dialled(
    kind: str, addresses: list[str], clock: trio.testing.MockClock
) -> None:
    net = Net(localhost=addresses).install()
    async with plaintext_target(kind, "localhost") as (config, stats):
        async with open_session(config, **session_kwargs([])) as session:
            with pytest.raises(GaveUp) as caught:
                await session.wait_authenticated()
    assert (f"plaintext {'http' if kind == 'firstock-rest' else 'ws'}:// to localhost refused: "
            f"it resolves to {ELSEWHERE}, which is not a loopback address") in str(caught.value)
    assert ELSEWHERE not in net.dialled
    if kind == "firstock-rest":
        assert stats.requests == 0
    elif kind == "firstock-socket":
        assert stats.logins_ok >= 1 and stats.sockets_opened == 0
    else:
        assert stats.connections == 0


# ---------------------------------------------------------------------------------------------
# CQG redirects: allow-listed hosts only, never plaintext off the machine

#: (redirect target with {port}, redirect_hosts, what the refusal says)
FOREIGN_REDIRECTS = {
    "loopback-name-not-listed": ("ws://localhost:{port}/", None,
                                 "redirect to localhost refused: not in the allowed hosts"),
    "other-domain": ("wss://broker.example.net:{port}/", None,
                     "redirect to broker.example.net refused: not in the allowed hosts"),
    "suffix-lookalike": ("wss://evilcqg.example:{port}/", ("127.0.0.1", "cqg.example"),
                         "redirect to evilcqg.example refused"),
    "listed-name-as-prefix": ("wss://cqg.example.evil.net:{port}/", ("127.0.0.1", "cqg.example"),
                              "redirect to cqg.example.evil.net refused"),
    "plaintext-to-listed-remote": ("ws://md.cqg.example:{port}/", ("127.0.0.1", "cqg.example"),
                                   "redirect_url uses plaintext ws:// to md.cqg.example, which "
                                   "is not a loopback host"),
}


def foreign_net(tarpit_names: tuple[str, ...] = (
        "broker.example.net", "evilcqg.example", "cqg.example.evil.net", "md.cqg.example")
) -> Net:
    net = Net().install()
    for name in tarpit_names:
        net.map(name, "127.0.0.1")  # a dial would succeed and land in the tarpit
    return net


@pytest.mark.parametrize("via", ["logon_result_106", "logged_off_2"])
@pytest.mark.parametrize("target", FOREIGN_REDIRECTS)
async def test_cqg_redirect_outside_the_allow_list_is_refused_without_a_dial(
    target: str, via: str, clock: trio.testing.MockClock
) -> None:
    template, allowed, message = FOREIGN_REDIRECTS[target]
    net = foreign_net()
    async with trio.open_nursery() as nursery:
        tarpit = await Tarpit().start(nursery)
        url = template.format(port=tarpit.port)
        account = CqgAccount("alice", "alice-pw",
                             redirect_to=url if via == "logon_result_106" else None)
        async with run_cqg_simulator([account]) as sim:
            config = cqg_config(sim.url, "alice", redirect_hosts=allowed)
            async with open_session(config, **session_kwargs([])) as session:
                if via == "logon_result_106":
                    with pytest.raises(LoginFailed) as caught:
                        await session.wait_authenticated()
                    failure = caught.value
                else:
                    await session.wait_authenticated()
                    await trio.sleep(10)  # past the logon spacing: a redirect could be taken
                    assert await sim.log_off("alice", 2, "maintenance", redirect_url=url) == 1
                    assert await ended(session) == "failed"
                    with pytest.raises(LoginFailed) as caught:
                        await session.wait_authenticated()
                    failure = caught.value
            assert sim.stats.connections == 1  # only the first server was ever contacted
        nursery.cancel_scope.cancel()
    assert failure.reason == "redirect_refused" and failure.fault == Fault.BROKER
    assert message in str(failure)
    assert net.looked_up == [] and set(net.dialled) == {"127.0.0.1"}
    assert tarpit.accepted == 0


async def test_cqg_redirect_from_tls_to_plaintext_on_a_listed_host_is_refused(
    tmp_path: Path, clock: trio.testing.MockClock
) -> None:
    ca = trustme.CA()
    net = foreign_net()
    async with trio.open_nursery() as nursery:
        tarpit = await Tarpit().start(nursery)
        downgrade = f"ws://md.cqg.example:{tarpit.port}/"
        account = CqgAccount("alice", "alice-pw", redirect_to=downgrade)
        async with run_cqg_simulator([account], ssl_context=server_tls(ca)) as sim:
            assert sim.url.startswith("wss://")
            config = cqg_config(sim.url, "alice", ca_file=ca_path(ca, tmp_path),
                                redirect_hosts=("127.0.0.1", "cqg.example"))
            async with open_session(config, **session_kwargs([])) as session:
                with pytest.raises(LoginFailed) as caught:
                    await session.wait_authenticated()
            assert sim.stats.logon_results == [106]  # the TLS logon itself went through
        nursery.cancel_scope.cancel()
    assert caught.value.reason == "redirect_refused"
    assert "plaintext ws:// to md.cqg.example" in str(caught.value)
    assert net.looked_up == [] and tarpit.accepted == 0


async def test_cqg_redirect_to_a_listed_host_is_followed_and_verified(
    tmp_path: Path, clock: trio.testing.MockClock
) -> None:
    """The control for the refusals above: an allow-listed name is dialled, over verified TLS
    (its certificate is checked against the name redirected to)."""
    ca = trustme.CA()
    net = foreign_net()
    async with run_cqg_simulator([CqgAccount("alice", "alice-pw")],
                                 ssl_context=server_tls(ca, "md.cqg.example")) as second:
        target = f"wss://md.cqg.example:{second.port}/"
        async with run_cqg_simulator([CqgAccount("alice", "alice-pw", redirect_to=target)],
                                     ssl_context=server_tls(ca)) as first:
            config = cqg_config(first.url, "alice", ca_file=ca_path(ca, tmp_path),
                                redirect_hosts=("127.0.0.1", "cqg.example"))
            async with open_session(config, **session_kwargs([])) as session:
                await session.wait_authenticated()
            assert (first.stats.logon_results, second.stats.logon_results) == ([106], [0])
    assert net.looked_up == ["md.cqg.example"]


# ---------------------------------------------------------------------------------------------
# TLS: verified by default, an explicit CA file to trust more, never another host's certificate


@asynccontextmanager
async def tls_target(kind: str, cert_ctx: ssl.SSLContext,
                     ca_file: str | None) -> AsyncIterator[tuple[Any, Any]]:
    """A loopback simulator for ``kind`` serving TLS with ``cert_ctx`` where ``kind`` says, and
    a config trusting ``ca_file``; yields (config, stats)."""
    if kind == "qst":
        async with running(QstSimulator([QstAccount("alice", "alice-pw")]), "127.0.0.1", 0,
                           cert_ctx) as qst:
            yield qst_config(qst.url, "alice", ca_file=ca_file), qst.stats
    elif kind == "cqg":
        async with run_cqg_simulator([CqgAccount("alice", "alice-pw")],
                                     ssl_context=cert_ctx) as cqg:
            yield cqg_config(cqg.url, "alice", ca_file=ca_file), cqg.stats
    elif kind == "firstock-rest":
        async with serve_firstock(rest_tls=cert_ctx) as fs:
            yield fs_config(fs.base_url, None, ca_file=ca_file), fs.stats
    else:  # the socket alone over TLS: the REST login is plain loopback HTTP
        async with serve_firstock(socket_tls=cert_ctx) as fs:
            yield fs_config(fs.base_url, fs.noren_url, ca_file=ca_file), fs.stats


def nothing_served(kind: str, stats: Any) -> bool:
    if kind == "qst":
        return bool(stats.login_requests == [])
    if kind == "cqg":
        return bool(stats.logon_requests == [])
    if kind == "firstock-rest":
        return bool(stats.requests == 0)
    return bool(stats.logins_ok >= 1 and stats.sockets_opened == 0)


@pytest.mark.parametrize("kind", KINDS)
async def test_a_self_signed_server_is_refused_by_default(
    kind: str, clock: trio.testing.MockClock
) -> None:
    async with tls_target(kind, server_tls(trustme.CA()), None) as (config, stats):
        url = config.socket_url if kind == "firstock-socket" else getattr(
            config, "base_url", getattr(config, "url", ""))
        assert url.startswith(("wss://", "https://"))
        async with open_session(config, **session_kwargs([])) as session:
            with pytest.raises(GaveUp, match="TLS certificate verification failed"):
                await session.wait_authenticated()
        assert nothing_served(kind, stats)


@pytest.mark.parametrize("kind", KINDS)
async def test_a_self_signed_server_is_accepted_with_its_ca_file(
    kind: str, tmp_path: Path, clock: trio.testing.MockClock
) -> None:
    ca = trustme.CA()
    async with tls_target(kind, server_tls(ca), ca_path(ca, tmp_path)) as (config, stats):
        async with open_session(config, **session_kwargs([])) as session:
            await session.wait_authenticated()
            if kind == "firstock-socket":
                assert session.outcome()["socket_attaches"] == 1
        assert not nothing_served(kind, stats)


@pytest.mark.parametrize("kind", KINDS)
async def test_a_certificate_for_another_host_is_refused_even_with_the_ca_file(
    kind: str, tmp_path: Path, clock: trio.testing.MockClock
) -> None:
    ca = trustme.CA()
    async with tls_target(kind, server_tls(ca, "broker.example"),
                          ca_path(ca, tmp_path)) as (config, stats):
        async with open_session(config, **session_kwargs([])) as session:
            with pytest.raises(GaveUp) as caught:
                await session.wait_authenticated()
        assert nothing_served(kind, stats)
    assert ("TLS certificate verification failed: IP address mismatch, certificate is not valid "
            "for '127.0.0.1'") in str(caught.value)


def test_every_tls_context_verifies_and_the_cli_cannot_turn_it_off(tmp_path: Path) -> None:
    ca_file = ca_path(trustme.CA(), tmp_path)
    for ctx in (tls_context(None), tls_context(ca_file)):
        assert ctx.verify_mode == ssl.CERT_REQUIRED and ctx.check_hostname
        assert ctx.minimum_version >= ssl.TLSVersion.TLSv1_2
    options = cli_module._option_names(cli_module.build_parser())
    assert "--ca-file" in options
    assert not [o for o in options if "insecure" in o or "verify" in o or "no-tls" in o]


async def test_cli_ca_file_for_qst_and_firstock(tmp_path: Path) -> None:
    """Real time: the CLI in child processes against TLS simulators in this one."""
    ca = trustme.CA()
    ca_file = ca_path(ca, tmp_path)
    env = {"BROKERGATE_PASSWORD": "alice-pw", "FS_PW": "AA1-pw", "BROKERGATE_API_KEY": "key-AA1",
           "CODE": TOTP}
    quick = ["--connect-timeout", "3", "--login-timeout", "3", "--max-attempts", "1"]
    async with running(QstSimulator([QstAccount("alice", "alice-pw")]), "127.0.0.1", 0,
                       server_tls(ca)) as qst, \
            serve_firstock(rest_tls=server_tls(ca), socket_tls=server_tls(ca)) as fs:
        qst_args = ["login", "qst", "--url", qst.url, "--user", "alice", "--client-id", "c",
                    *quick]
        fs_args = ["login", "firstock", "--base-url", fs.base_url, "--user", "AA1",
                   "--vendor-code", "AA1_API", "--totp-env", "CODE", "--password-env", "FS_PW",
                   "--socket", "noren",
                   "--socket-url", fs.noren_url, *quick]
        runs = {
            "qst-default": qst_args, "qst-ca": [*qst_args, "--ca-file", ca_file],
            "fs-default": fs_args, "fs-ca": [*fs_args, "--ca-file", ca_file],
        }
        done: dict[str, subprocess.CompletedProcess[bytes]] = {}

        async def one(name: str) -> None:
            done[name] = await trio.run_process(
                [*CLI, *runs[name]], capture_stdout=True, capture_stderr=True, check=False,
                env={**os.environ, **env}, cwd=ROOT, stdin=subprocess.DEVNULL)

        with trio.fail_after(30):
            async with trio.open_nursery() as nursery:
                for name in runs:
                    nursery.start_soon(one, name)
    results = {n: result_line(p.stdout.decode()) for n, p in done.items()}
    for name in ("qst-default", "fs-default"):
        assert done[name].returncode == 6, done[name].stderr
        assert "TLS certificate verification failed" in results[name]["detail"]  # type: ignore[index]
    for name in ("qst-ca", "fs-ca"):
        assert done[name].returncode == 0, done[name].stderr
        assert results[name]["outcome"] == "authenticated"  # type: ignore[index]
    assert results["fs-ca"]["socket_attaches"] == 1  # type: ignore[index]
    assert qst.stats.logins_ok == 1 and fs.stats.logins_ok == 1


# ---------------------------------------------------------------------------------------------
# token files and the audit log: private whatever the umask

CREATED = datetime(2026, 11, 21, 3, 0, tzinfo=UTC)


@contextmanager
def umask(mask: int) -> Iterator[None]:
    old = os.umask(mask)
    try:
        yield
    finally:
        os.umask(old)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.lstat().st_mode)


async def test_token_file_is_0600_in_a_0700_directory_under_a_permissive_umask(
    tmp_path: Path,
) -> None:
    directory = tmp_path / "state" / "tokens"
    store = FileTokenStore(directory)
    with umask(0):
        await store.save("firstock", "AA1", StoredToken(Secret("tok-Zq9"), CREATED))
        await store.save("firstock", "AA1", StoredToken(Secret("tok-Zq9-2"), CREATED))
    [path] = list(directory.iterdir())  # replaced in place, no temporary left behind
    assert mode(path) == 0o600 and mode(directory) == 0o700
    found = await FileTokenStore(directory).load("firstock", "AA1")
    assert found is not None and found.token.reveal() == "tok-Zq9-2"


@pytest.mark.parametrize("loose", [0o644, 0o640, 0o620, 0o604], ids=oct)
async def test_a_token_file_others_could_read_or_write_is_not_trusted(
    tmp_path: Path, loose: int
) -> None:
    store = FileTokenStore(tmp_path)
    await store.save("firstock", "AA1", StoredToken(Secret("tok-Zq9"), CREATED))
    assert await store.load("firstock", "AA1") is not None
    store.path("firstock", "AA1").chmod(loose)
    assert await store.load("firstock", "AA1") is None


async def test_a_symlinked_token_file_is_not_followed(tmp_path: Path) -> None:
    store = FileTokenStore(tmp_path / "tokens")
    elsewhere = FileTokenStore(tmp_path / "elsewhere")
    await elsewhere.save("firstock", "AA1", StoredToken(Secret("planted"), CREATED))
    (tmp_path / "tokens").mkdir(mode=0o700)
    store.path("firstock", "AA1").symlink_to(elsewhere.path("firstock", "AA1"))
    assert await store.load("firstock", "AA1") is None


async def test_a_fifo_planted_as_the_token_file_is_no_token_and_does_not_block(
    tmp_path: Path, clock: trio.testing.MockClock
) -> None:
    store = FileTokenStore(tmp_path / "tokens")
    (tmp_path / "tokens").mkdir(mode=0o700)
    os.mkfifo(store.path("firstock", "AA1"), 0o600)
    with trio.fail_after(5):
        assert await store.load("firstock", "AA1") is None


async def test_a_planted_temporary_file_cannot_capture_the_token(tmp_path: Path) -> None:
    """Saving writes a new file of its own: a symlink or a world-readable file left where a
    temporary file might go neither receives the token nor lends it its mode."""
    store = FileTokenStore(tmp_path)
    path = store.path("firstock", "AA1")
    trap = tmp_path / "trap"
    trap.write_text("")
    path.with_suffix(f".{os.getpid()}.tmp").symlink_to(trap)  # the old fixed temporary name
    await store.save("firstock", "AA1", StoredToken(Secret("tok-Zq9"), CREATED))
    assert trap.read_text() == ""
    assert not path.is_symlink() and mode(path) == 0o600


async def test_firstock_replaces_a_loose_token_file_instead_of_using_it(
    tmp_path: Path, clock: trio.testing.MockClock
) -> None:
    async with serve_firstock() as sim:
        store = FileTokenStore(tmp_path / "tokens")
        config = fs_config(sim.base_url)
        async with open_session(config, token_store=store, keep_session=True,
                                **session_kwargs([])) as session:
            await session.wait_authenticated()
        path = store.path("firstock", "AA1")
        first = await store.load("firstock", "AA1")
        assert first is not None and mode(path) == 0o600
        path.chmod(0o644)  # someone could have read it
        with umask(0):
            async with open_session(config, token_store=store, keep_session=True,
                                    **session_kwargs([])) as session:
                await session.wait_authenticated()
                assert session.outcome()["rest_logins"] == 1  # logged in, token not reused
        assert sim.stats.user_details == 0 and sim.stats.logins_ok == 2
        second = await store.load("firstock", "AA1")
        assert second is not None and second.token.reveal() != first.token.reveal()
        assert mode(path) == 0o600


async def test_cli_audit_log_and_token_directory_are_private_under_umask_0(
    tmp_path: Path,
) -> None:
    """Real time: ``brokergate login firstock --audit-log --token-dir --keep-session``."""
    audit, tokens = tmp_path / "audit.jsonl", tmp_path / "tokens"
    env = {**os.environ, "BROKERGATE_PASSWORD": "AA1-pw", "BROKERGATE_API_KEY": "key-AA1",
           "CODE": TOTP}
    async with serve_firstock() as fs:
        with trio.fail_after(20):
            done = await trio.run_process(
                [*CLI, "login", "firstock", "--base-url", fs.base_url, "--user", "AA1",
                 "--vendor-code", "AA1_API", "--totp-env", "CODE", "--audit-log", str(audit),
                 "--token-dir", str(tokens), "--keep-session", "--connect-timeout", "3",
                 "--login-timeout", "3"],
                capture_stdout=True, capture_stderr=True, check=False, env=env, cwd=ROOT,
                stdin=subprocess.DEVNULL, umask=0)
    assert done.returncode == 0, done.stderr
    [token_file] = list(tokens.iterdir())
    assert (mode(audit), mode(tokens), mode(token_file)) == (0o600, 0o700, 0o600)
    text = audit.read_text()
    assert '"dst": "authenticated"' in text and "AA1-pw" not in text and "key-AA1" not in text


# ---------------------------------------------------------------------------------------------
# secrets never accepted from argv

SECRET = "Zq9-argv-S3CRET"

#: The smallest command line of each login, short of its secrets.
LOGIN_ARGS = {
    "qst": ["login", "qst", "--url", "ws://127.0.0.1:1/", "--user", "alice", "--client-id", "c"],
    "cqg": ["login", "cqg", "--url", "ws://127.0.0.1:1/", "--user", "alice",
            "--client-app-id", "c"],
    "firstock": ["login", "firstock", "--base-url", "http://127.0.0.1:1/api/V3", "--user",
                 "AA1", "--vendor-code", "AA1_API", "--totp-env", "CODE"],
}

SECRET_ARGS = [
    ["--password", SECRET], [f"--password={SECRET}"], ["-p", SECRET], [f"-p{SECRET}"],
    ["--pass", SECRET], ["--pw", SECRET], ["--passwd", SECRET], ["--PASSWORD", SECRET],
    ["--api-key", SECRET], [f"--apikey={SECRET}"], ["--secret", SECRET],
    ["--totp-seed", SECRET], ["--totp", SECRET], ["--otp-seed", SECRET], ["--otp", SECRET],
    ["--token", SECRET], ["--access-token", SECRET], [f"--jkey={SECRET}"],
]

WAYS_IN = ["BROKERGATE_PASSWORD", "--password-env VAR", "--password-file FILE", "prompt",
           "--api-key-env", "--totp-seed-env", "--access-token-env"]


def test_these_are_all_the_logins_of_the_cli() -> None:
    """The refusals below cover every ``brokergate login`` broker."""
    parser = cli_module.build_parser()
    top = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    login = top.choices["login"]
    brokers = next(a for a in login._actions if isinstance(a, argparse._SubParsersAction))
    assert sorted(brokers.choices) == sorted(LOGIN_ARGS)


@pytest.mark.parametrize("broker", LOGIN_ARGS)
@pytest.mark.parametrize("secret_args", SECRET_ARGS,
                         ids=lambda a: " ".join(a).replace(SECRET, "X"))
def test_a_secret_on_the_command_line_is_refused_without_repeating_it(
    broker: str, secret_args: list[str], capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("BROKERGATE_PASSWORD", "alice-pw")  # so nothing else stops the login
    monkeypatch.setenv("BROKERGATE_API_KEY", "key-AA1")
    monkeypatch.setenv("CODE", TOTP)
    monkeypatch.setattr(cli_module, "_login", lambda _args: pytest.fail("it went on to log in"))
    for position in (len(LOGIN_ARGS[broker]), 2):  # at the end, and right after the broker
        argv = list(LOGIN_ARGS[broker])
        argv[position:position] = secret_args
        with pytest.raises(SystemExit) as exited:
            cli_module.main(argv)
        assert exited.value.code == 2
        out, err = capsys.readouterr()
        assert SECRET not in out + err and out == ""
        assert "secrets are never taken from the command line" in err
        assert all(way in err for way in WAYS_IN), err


def test_unrecognized_arguments_are_named_but_their_values_not_repeated(
    capsys: pytest.CaptureFixture[str],
) -> None:
    for extra in (["--foo", SECRET], [f"--foo={SECRET}"], [SECRET]):
        with pytest.raises(SystemExit) as exited:
            cli_module.main([*LOGIN_ARGS["qst"], *extra])
        assert exited.value.code == 2
        out, err = capsys.readouterr()
        assert SECRET not in out + err and "unrecognized arguments" in err
        assert ("--foo" in err) == extra[0].startswith("--foo")


def test_the_options_that_say_where_a_secret_is_are_not_refused(
    capsys: pytest.CaptureFixture[str],
) -> None:
    argv = [*LOGIN_ARGS["firstock"], "--password-env", "PW", "--password-file", "/nonexistent",
            "--api-key-env", "KEY", "--token-dir", "/tmp/x", "--totp-seed-env", "S"]
    with pytest.raises(SystemExit):
        cli_module.main(argv)
    assert "never taken from the command line" not in capsys.readouterr().err


@pytest.mark.parametrize("option", ["--password-env", "--api-key-env", "--totp-seed-env",
                                    "--totp-env", "--password-file"])
def test_a_secret_typed_where_its_source_belongs_is_not_repeated(
    option: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``--password-env hunter2``: the value is the password, typed in the wrong place."""
    monkeypatch.setenv("BROKERGATE_PASSWORD", "alice-pw")
    monkeypatch.setenv("BROKERGATE_API_KEY", "key-AA1")
    monkeypatch.setenv("CODE", TOTP)
    monkeypatch.setattr(cli_module, "_login", lambda _args: pytest.fail("it went on to log in"))
    if option == "--password-file":
        # No such file: reading the password is where this is found out.
        args = cli_module.build_parser().parse_args([*LOGIN_ARGS["qst"], option, SECRET])
        with pytest.raises(cli_module.UsageError) as refused:
            cli_module.read_password(args)
        assert SECRET not in str(refused.value)
        assert "not repeated" in str(refused.value)
        return
    with pytest.raises(SystemExit) as exited:
        cli_module.main([*LOGIN_ARGS["firstock"], option, f"{SECRET} with spaces"])
    assert exited.value.code == 2
    out, err = capsys.readouterr()
    assert SECRET not in out + err
    assert "not repeated" in err


def test_passwords_come_from_the_environment_a_file_or_a_prompt(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    args = cli_module.build_parser().parse_args(
        [*LOGIN_ARGS["qst"], "--password-env", "MY_PW"])
    monkeypatch.setenv("MY_PW", "from-env")
    assert cli_module.read_password(args).reveal() == "from-env"
    secret_file = tmp_path / "pw"
    secret_file.write_text("from-file\n")
    args.password_file = secret_file
    assert cli_module.read_password(args).reveal() == "from-file"
    args.password_file = None
    monkeypatch.delenv("MY_PW")
    monkeypatch.setattr(sys.stdin, "isatty", lambda: True)
    monkeypatch.setattr(cli_module.getpass, "getpass", lambda prompt: "from-prompt")
    assert cli_module.read_password(args).reveal() == "from-prompt"


# ---------------------------------------------------------------------------------------------
# the real CLI, in child processes, all started at once (they take a fraction of a second each)

#: The CLI as ``python -m brokergate.engine.cli``, behind a guard that refuses (and reports on
#: stderr) any name lookup that is not loopback: a child that tried to reach example.com would say
#: so, and never get there, even if the check under test were broken.
GUARDED_CLI = [sys.executable, "-c", """
import runpy, socket, sys
real = socket.getaddrinfo
def guarded(host, *args, **kwargs):
    name = host.decode() if isinstance(host, bytes) else host
    if name not in (None, "localhost", "127.0.0.1", "::1"):
        print(f"GUARD: lookup of {name} refused", file=sys.stderr, flush=True)
        raise socket.gaierror(socket.EAI_NONAME, "refused by the test guard")
    return real(host, *args, **kwargs)
socket.getaddrinfo = guarded
sys.argv[0] = "brokergate"
runpy.run_module("brokergate.engine.cli", run_name="__main__", alter_sys=True)
"""]

CHILD_RUNS: dict[str, list[str]] = {
    **{f"plaintext-{field}": [*LOGIN_ARGS[field.split("-")[0]][:2], *args,
                              "--max-attempts", "1", "--connect-timeout", "2"]
       for field, args in {
           "qst-url": ["--url", "ws://example.com/md", "--user", "alice", "--client-id", "c"],
           "cqg-url": ["--url", "ws://example.com/", "--user", "alice", "--client-app-id", "c"],
           "firstock-base_url": ["--base-url", "http://example.com/api/V3", "--user", "AA1",
                                 "--vendor-code", "AA1_API", "--totp-env", "CODE"],
           "firstock-socket_url": ["--base-url", "http://127.0.0.1:1/api/V3", "--user", "AA1",
                                   "--vendor-code", "AA1_API", "--totp-env", "CODE",
                                   "--socket", "noren", "--socket-url",
                                   "ws://example.com/NorenWSTP/"],
       }.items()},
    "argv-qst": [*LOGIN_ARGS["qst"], "--password", SECRET],
    "argv-cqg": [*LOGIN_ARGS["cqg"], f"--access-token={SECRET}"],
    "argv-firstock": [*LOGIN_ARGS["firstock"], "--api-key", SECRET],
}


@pytest.fixture(scope="module")
def children() -> dict[str, tuple[int, str, str]]:
    env = {"BROKERGATE_PASSWORD": "Zq9-env-password", "BROKERGATE_API_KEY": "Zq9-env-api-key",
           "CODE": TOTP}
    procs = {name: run_cli(args, env, command=GUARDED_CLI) for name, args in CHILD_RUNS.items()}
    done = {}
    for name, proc in procs.items():
        out, err = proc.communicate(timeout=30)
        done[name] = (proc.returncode, out, err)
    return done


@pytest.mark.parametrize("field", PLAINTEXT_FIELDS)
def test_cli_refuses_plaintext_to_a_remote_host_before_connecting(
    field: str, children: dict[str, tuple[int, str, str]]
) -> None:
    code, out, err = children[f"plaintext-{field}"]
    result = result_line(out)
    assert code == 2 and result is not None, err
    assert result["outcome"] == "invalid_config" and result["attempts"] == 0
    name = field.split("-", 1)[1]
    assert f"{name} uses plaintext" in result["detail"]
    assert "to example.com, which is not a loopback host" in result["detail"]
    # The only transition: straight from the start to failed, no connecting or REST request.
    moves = [json.loads(line) for line in err.splitlines()]
    assert [(m["src"], m["dst"]) for m in moves if m["event"] == "transition"] == [
        ("disconnected", "failed")]
    assert "GUARD" not in err  # not even a name lookup


@pytest.mark.parametrize("broker", LOGIN_ARGS)
def test_cli_refuses_a_secret_in_argv(broker: str,
                                      children: dict[str, tuple[int, str, str]]) -> None:
    code, out, err = children[f"argv-{broker}"]
    assert code == 2 and out == ""
    assert "secrets are never taken from the command line" in err
    assert SECRET not in out + err


@pytest.mark.skipif(not Path("/proc/self/cmdline").exists(), reason="needs Linux /proc")
@pytest.mark.parametrize("via", ["file", "env"])
def test_the_password_is_not_in_the_childs_command_line(via: str, tmp_path: Path) -> None:
    password = f"Zq9-cmdline-{via}-S3CRET"
    silent = socket.socket()  # accepts (in its backlog) and never answers: the child waits
    silent.bind(("127.0.0.1", 0))
    silent.listen(4)
    try:
        url = f"ws://127.0.0.1:{silent.getsockname()[1]}/"
        args = ["login", "qst", "--url", url, "--user", "alice", "--client-id", "c",
                "--connect-timeout", "5", "--max-attempts", "1"]
        env = {}
        if via == "file":
            (tmp_path / "pw").write_text(password + "\n")
            args += ["--password-file", str(tmp_path / "pw")]
        else:
            env["BROKERGATE_PASSWORD"] = password
        command = [str(BROKERGATE)] if BROKERGATE.exists() else CLI
        proc = run_cli(args, env, command=command)
        try:
            time.sleep(0.3)  # well into its start, and reading the password
            cmdline = Path(f"/proc/{proc.pid}/cmdline").read_bytes()
            assert proc.poll() is None, "the child ended before its command line was read"
        finally:
            proc.kill()
            proc.communicate(timeout=10)
    finally:
        silent.close()
    assert b"login\x00qst" in cmdline  # it is the child's real command line
    assert password.encode() not in cmdline

