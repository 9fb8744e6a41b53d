"""``brokergate run`` as an operator runs it: a subprocess holding sessions against the
simulators on loopback, watched from outside through its HTTP endpoints (httpx; the metrics
parsed with prometheus_client's parser), its status page in headless Chromium, its signals and
its audit file.

Real time throughout (the service is another process); every wait is bounded.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import AsyncExitStack, asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio
from browser import Page, open_browser
from prometheus_client.parser import text_string_to_metric_families
from redis_server import RedisServer

from brokergate.engine.fleet import new_fleet_key
from brokergate.simulators.cqg import CqgAccount, CqgSimulator, run_cqg_simulator
from brokergate.simulators.firstock import (
    FirstockAccount,
    FirstockSimulator,
    run_firstock_simulator,
)
from brokergate.simulators.qst import QstAccount, QstSimulator, run_qst_simulator

ROOT = Path(__file__).resolve().parent.parent
QST_PASSWORD = "qst-secret-pw-5a7d"
CQG_PASSWORD = "cqg-secret-pw-91be"
FS_PASSWORD = "fs-secret-pw-2c44"
TOTP = "123456"
SECRETS = (QST_PASSWORD, CQG_PASSWORD, FS_PASSWORD, "written-in-the-file-77e1")


class RunningService:
    """``brokergate run FILE`` in a subprocess: its URL, its stderr, signals, its exit."""

    def __init__(self, process: trio.Process) -> None:
        self.process = process
        self.url = ""
        self.stdout = bytearray()
        self.stderr = bytearray()

    async def read(self, stream: Any, into: bytearray, first_line: trio.Event | None) -> None:
        async for chunk in stream:
            into += chunk
            if first_line is not None and b"\n" in into and not first_line.is_set():
                first_line.set()

    def send(self, signum: int) -> None:
        self.process.send_signal(signum)

    async def exited(self, within: float) -> int:
        with trio.fail_after(within):
            return await self.process.wait()

    def output(self) -> str:
        return self.stdout.decode() + self.stderr.decode()


@asynccontextmanager
async def brokergate_run(path: Path, env: dict[str, str]) -> AsyncIterator[RunningService]:
    process = await trio.lowlevel.open_process(
        [sys.executable, "-m", "brokergate", "run", str(path)], cwd=ROOT,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, env={**os.environ, **env})
    running = RunningService(process)
    try:
        async with trio.open_nursery() as nursery:
            ready = trio.Event()
            nursery.start_soon(running.read, process.stdout, running.stdout, ready)
            nursery.start_soon(running.read, process.stderr, running.stderr, None)
            with trio.fail_after(30):
                await ready.wait()
            running.url = running.stdout.decode().splitlines()[0].rstrip("/")
            yield running
    finally:
        if process.returncode is None:
            process.kill()
            with trio.move_on_after(5):
                await process.wait()


async def until(check: Callable[[], Any], within: float = 20.0, every: float = 0.1) -> Any:
    """Poll ``check`` (a coroutine function) until it returns something true."""
    with trio.fail_after(within):
        while True:
            found = await check()
            if found:
                return found
            await trio.sleep(every)


def metrics(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {(s.name, frozenset(s.labels.items())): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def qst_table(name: str, sim: QstSimulator, user: str) -> str:
    return f"""
[sessions.{name}]
broker = "qst"
url = "{sim.url}"
user_name = "{user}"
client_id = "desk-7"
password_env = "QST_PASSWORD"
backoff = {{ initial = 0.2, cap = 0.5 }}
"""


def sessions_file(qst: QstSimulator, cqg: CqgSimulator, fs: FirstockSimulator,
                  acct: FirstockAccount, *, firstock: bool = True, carol: bool = False) -> str:
    text = """
[service]
listen = "127.0.0.1:0"
audit = "audit.jsonl"
stop_timeout = 15

[defaults]
connect_timeout = 5.0
login_timeout = 5.0
""" + qst_table("quotes", qst, "alice") + f"""
[sessions.orders]
broker = "cqg"
url = "{cqg.url}"
user_name = "bob"
password_file = "cqg.pw"
client_app_id = "brokergate-tests"
"""
    if firstock:
        text += f"""
[sessions.nse]
broker = "firstock"
base_url = "{fs.base_url}"
user_id = "AA1"
vendor_code = "{acct.vendor_code}"
password_env = "FS_PASSWORD"
api_key_env = "FS_API_KEY"
totp_env = "FS_TOTP"
"""
    if carol:
        text += qst_table("quotes2", qst, "carol")
    return text


class Operator:
    """What an operator does with a running service: the HTTP endpoints and the simulators."""

    def __init__(self, service: RunningService, http: httpx.AsyncClient, sims: Sims) -> None:
        self.service, self.http, self.sims = service, http, sims

    async def healthy(self) -> bool:
        return (await self.http.get("/healthz")).status_code == 200

    async def unhealthy(self) -> str | None:
        answer = await self.http.get("/healthz")
        return answer.text if answer.status_code == 503 else None

    async def status(self) -> dict[str, Any]:
        answer = await self.http.get("/status")
        assert answer.status_code == 200
        found: dict[str, Any] = answer.json()
        return found

    async def sessions(self) -> dict[str, dict[str, Any]]:
        return {s["name"]: s for s in (await self.status())["sessions"]}

    async def metrics(self) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
        return metrics((await self.http.get("/metrics")).text)

    async def sees_everything_up(self) -> None:
        await until(self.healthy)
        scraped = await self.metrics()
        for broker in ("qst", "cqg", "firstock"):
            key = ("brokergate_sessions",
                   frozenset({("broker", broker), ("state", "authenticated")}))
            assert scraped[key] == 1, broker
            assert scraped[("brokergate_logons_total", frozenset({("broker", broker)}))] == 1
        assert scraped[("brokergate_service_sessions",
                        frozenset({("health", "healthy")}))] == 3

    async def sees_a_drop_and_the_login_again(self, page: Page) -> None:
        """QST now answers logins after 1.5 s, so the session is seen down, then up."""
        self.sims.alice.login_delay = 1.5
        assert await self.sims.qst.drop("alice") == 1
        said = await until(self.unhealthy, within=10, every=0.05)
        assert said.startswith("unhealthy\n") and "quotes: " in said
        await until(self.healthy)
        # The page has refreshed itself: the drop is in the card's recent path, drawn over the
        # diagram, and the session is authenticated again.
        await page.wait_for(_card_took("quotes", "authenticated", "backoff"), timeout=10)
        assert int(await page.evaluate("document.body.dataset.refreshed")) >= 1

    async def sees_a_cqg_drop_restored(self) -> None:
        """Restored, not logged on again."""
        before = (await self.sessions())["orders"]["transitions"]
        assert await self.sims.cqg.drop("bob") == 1

        async def restored() -> bool:
            return (await self.metrics()).get(("brokergate_restores_total", frozenset(
                {("broker", "cqg"), ("outcome", "restored")}))) == 1.0

        await until(restored)
        await until(self.healthy)
        after = (await self.sessions())["orders"]["transitions"]
        path_taken = [t["dst"] for t in after[len(before):]]
        assert path_taken[-2:] == ["restoring", "authenticated"]
        assert "awaiting_login_response" not in path_taken  # no second logon
        assert self.sims.cqg.stats.logons_ok == 1 and self.sims.cqg.stats.restores_ok == 1

    async def reloads(self, path: Path, page: Page) -> None:
        """SIGHUP: nse removed, quotes2 added, quotes and orders untouched."""
        quotes_before = (await self.sessions())["quotes"]["transitions"]
        logins_before = self.sims.qst.stats.logins_ok
        _write(path, self.sims.file(firstock=False, carol=True))
        self.service.send(signal.SIGHUP)

        async def reloaded() -> bool:
            now = await self.sessions()
            return (list(now) == ["quotes", "orders", "quotes2"]
                    and now["quotes2"]["state"] == "authenticated")

        await until(reloaded)
        await until(self.healthy)
        assert (await self.sessions())["quotes"]["transitions"] == quotes_before
        assert self.sims.qst.stats.logins_ok == logins_before + 1  # carol's alone
        assert self.sims.fs.stats.logouts == 1  # nse was logged out
        await page.wait_for(_card_shows("quotes2", "authenticated"))
        await page.wait_for("!document.querySelector('section[data-session=\"nse\"]')")

    async def reloads_a_file_with_a_mistake(self, path: Path) -> None:
        """Nothing changes, and the secret written in is not shown."""
        _write(path, self.sims.file(firstock=False, carol=True)
               + 'password = "written-in-the-file-77e1"\n')
        self.service.send(signal.SIGHUP)
        await until(_said(self.service, "not reloaded"), within=10)
        assert "quotes2.password" in self.service.stderr.decode()
        assert list(await self.sessions()) == ["quotes", "orders", "quotes2"]
        assert (await self.status())["service"]["reloads"] == {"applied": 1, "refused": 1}


def _write(path: Path, text: str) -> None:
    """Rewrite the sessions file (a small write: no need for a thread)."""
    path.write_text(text)


class Sims:
    """The three simulators and the sessions file that points at them."""

    def __init__(self, qst: QstSimulator, cqg: CqgSimulator, fs: FirstockSimulator,
                 alice: QstAccount, acct: FirstockAccount) -> None:
        self.qst, self.cqg, self.fs, self.alice, self.acct = qst, cqg, fs, alice, acct

    def file(self, *, firstock: bool = True, carol: bool = False) -> str:
        return sessions_file(self.qst, self.cqg, self.fs, self.acct, firstock=firstock,
                             carol=carol)


async def test_an_operator_runs_watches_reloads_and_stops_the_service(
    tmp_path: Path, chromium: str,
) -> None:
    alice = QstAccount("alice", QST_PASSWORD)
    acct = FirstockAccount("AA1", FS_PASSWORD, fixed_totp=TOTP)
    async with run_qst_simulator([alice, QstAccount("carol", QST_PASSWORD)]) as qst, \
            run_cqg_simulator([CqgAccount("bob", CQG_PASSWORD)]) as cqg, \
            run_firstock_simulator([acct]) as fs:
        sims = Sims(qst, cqg, fs, alice, acct)
        (tmp_path / "cqg.pw").write_text(CQG_PASSWORD + "\n")
        path = tmp_path / "sessions.toml"
        path.write_text(sims.file())
        env = {"QST_PASSWORD": QST_PASSWORD, "FS_PASSWORD": FS_PASSWORD,
               "FS_API_KEY": acct.api_key, "FS_TOTP": TOTP}
        async with brokergate_run(path, env) as service, \
                httpx.AsyncClient(base_url=service.url, timeout=5) as http:
            operator = Operator(service, http, sims)
            await operator.sees_everything_up()
            async with open_browser(chromium) as browser:
                page = await browser.open(service.url + "/")
                for name in ("quotes", "orders", "nse"):
                    await page.wait_for(_card_shows(name, "authenticated"))
                await operator.sees_a_drop_and_the_login_again(page)
                await operator.sees_a_cqg_drop_restored()
                await operator.reloads(path, page)
                assert page.errors == []
            await operator.reloads_a_file_with_a_mistake(path)
            # SIGTERM: every session logged out, exit 0.
            service.send(signal.SIGTERM)
            assert await service.exited(within=20) == 0
        assert qst.stats.logouts == 2 and cqg.stats.logoffs == 1
    trail = [json.loads(line) for line in (tmp_path / "audit.jsonl").read_text().splitlines()]
    assert trail[-1]["event"] == "service_stopped" and trail[-1]["exit_code"] == 0
    for name in ("quotes", "orders", "quotes2", "nse"):
        last = [e for e in trail if e.get("session_id") == name and e["event"] == "transition"][-1]
        assert (last["dst"], last["reason"]) == ("disconnected", "logged_out"), name
    shown = service.output() + (tmp_path / "audit.jsonl").read_text()
    for secret in SECRETS:
        assert secret not in shown


def _card_shows(name: str, state: str) -> str:
    """JS: the session's card shows ``state``, and its diagram fills that state's node."""
    card = f'document.querySelector(\'section[data-session="{name}"]\')'
    return (f"{card} && {card}.querySelector('.state').textContent === '{state}' && "
            f"{card}.querySelector('g.node.current title')?.textContent === '{state}'")


def _card_took(name: str, src: str, dst: str) -> str:
    """JS: the card's recent transitions include ``src`` → ``dst``, drawn as a taken edge on its
    diagram, and it shows ``authenticated`` again."""
    card = f'document.querySelector(\'section[data-session="{name}"]\')'
    return (f"{_card_shows(name, 'authenticated')} && "
            f"[...{card}.querySelectorAll('.steps li')]"
            f".some(li => li.textContent.includes('{src} → {dst}')) && "
            f"[...{card}.querySelectorAll('g.edge.taken title')]"
            f".some(t => t.textContent === '{src}->{dst}')")


def _said(service: RunningService, text: str) -> Callable[[], Any]:
    async def check() -> bool:
        return text in service.stderr.decode()

    return check


async def test_a_file_with_mistakes_starts_nothing_and_names_line_and_field(
    tmp_path: Path,
) -> None:
    path = tmp_path / "sessions.toml"
    path.write_text('[service]\nlisten = "127.0.0.1:0"\n\n[sessions.quotes]\nbroker = "qst"\n'
                    'url = "ws://127.0.0.1:9/"\nuser_name = "alice"\nclient_id = "x"\n'
                    'password = "written-in-the-file-77e1"\nfavourite = 3\n')
    done = await trio.run_process(
        [sys.executable, "-m", "brokergate", "run", str(path)], cwd=ROOT, check=False,
        capture_stdout=True, capture_stderr=True)
    err = done.stderr.decode()
    assert done.returncode == 2
    assert "nothing was started" in err
    assert f"{path}:9: sessions.quotes.password: a secret written into the file" in err
    assert f"{path}:10: sessions.quotes.favourite" in err
    assert "written-in-the-file-77e1" not in err + done.stdout.decode()
    assert done.stdout == b""  # no URL: nothing was served


async def test_sigint_on_an_idle_service_stops_it_cleanly(tmp_path: Path) -> None:
    path = tmp_path / "empty.toml"
    path.write_text('[service]\nlisten = "127.0.0.1:0"\n')
    async with brokergate_run(path, {}) as service, \
            httpx.AsyncClient(base_url=service.url, timeout=5) as http:
        answer = await http.get("/healthz")
        assert (answer.status_code, answer.text) == (200, "ok\n")
        assert (await http.post("/status")).status_code == 405
        assert (await http.get("/nowhere")).status_code == 404
        page = await http.get("/")
        assert "default-src 'none'" in page.headers["content-security-policy"]
        service.send(signal.SIGINT)
        assert await service.exited(within=10) == 0
    assert "stopped: every session logged out" in service.stderr.decode()


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    """httpx must not send the test's loopback requests through a proxy of the environment."""
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy"):
        monkeypatch.delenv(name, raising=False)



async def test_a_scheduled_session_logs_in_when_its_window_opens_and_out_when_it_closes(
    tmp_path: Path,
) -> None:
    """A window of a few real seconds, from outside: off schedule and healthy before it,
    authenticated inside it, logged out after it."""
    now = datetime.now(UTC)
    now = now.replace(microsecond=0)  # the schedule has whole seconds
    opens, closes = now + timedelta(seconds=3), now + timedelta(seconds=6)
    async with run_qst_simulator([QstAccount("alice", QST_PASSWORD)]) as qst:
        path = tmp_path / "sessions.toml"
        path.write_text('[service]\nlisten = "127.0.0.1:0"\n' + qst_table("quotes", qst, "alice")
                        + f'schedule = {{ start = "{opens:%H:%M:%S}", end = "{closes:%H:%M:%S}", '
                          'timezone = "UTC", weekdays = "mon-sun" }\n')
        async with brokergate_run(path, {"QST_PASSWORD": QST_PASSWORD}) as service, \
                httpx.AsyncClient(base_url=service.url, timeout=5) as http:

            async def quotes() -> dict[str, Any]:
                found: dict[str, Any] = (await http.get("/status")).json()["sessions"][0]
                return found

            before = await quotes()
            assert (before["state"], before["phase"]) == ("off_schedule", "off_schedule")
            assert before["schedule"]["next_open"] == f"{opens:%Y-%m-%dT%H:%M:%S}Z"
            assert (await http.get("/healthz")).status_code == 200  # not meant to be up yet
            assert qst.stats.connections == 0

            async def up() -> bool:
                return (await quotes())["state"] == "authenticated"

            await until(up, within=15)
            assert datetime.now(UTC) >= opens

            async def closed() -> bool:
                return (await quotes())["phase"] == "off_schedule" and qst.stats.logouts == 1

            await until(closed, within=15)
            assert (await http.get("/healthz")).status_code == 200
            service.send(signal.SIGTERM)
            assert await service.exited(within=10) == 0


async def test_the_demo_serves_its_sessions_with_a_status_page(tmp_path: Path) -> None:
    """`brokergate demo --serve`: the URL printed, the scenarios' sessions held, /healthz
    saying which were refused and why, and a clean stop."""
    process = await trio.lowlevel.open_process(
        [sys.executable, "-m", "brokergate", "demo", "--serve", "--out", str(tmp_path),
         "--scenario", "qst-clean-login", "--scenario", "qst-wrong-password"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    running = RunningService(process)
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(running.read, process.stdout, running.stdout, None)
            nursery.start_soon(running.read, process.stderr, running.stderr, None)
            url = await until(_url_printed(running), within=30)
            async with httpx.AsyncClient(base_url=url, timeout=5) as http:

                async def settled() -> str | None:
                    answer = await http.get("/healthz")
                    return answer.text if "qst-clean-login: authenticated" in answer.text \
                        else None

                said = await until(settled)
                assert said.splitlines()[:2] == [
                    "unhealthy", "qst-wrong-password: failed: invalid_credentials; QST "
                    "ErrorMessage: 'Login failed. The credentials were not valid (1)'"]
                page = await http.get("/")
                assert 'data-session="qst-clean-login"' in page.text
            running.send(signal.SIGTERM)
            assert await running.exited(within=15) == 0
            nursery.cancel_scope.cancel()
    finally:
        if process.returncode is None:
            process.kill()
    assert (tmp_path / "audit-serve.jsonl").exists()


def _url_printed(running: RunningService) -> Callable[[], Any]:
    async def check() -> str | None:
        lines = running.stdout.decode().splitlines()
        found = [line.rstrip("/") for line in lines if line.startswith("http://")]
        return found[0] if found and running.stdout.endswith(b"\n") else None

    return check


async def test_two_services_share_an_account_through_redis_and_the_standby_takes_over(
    tmp_path: Path, redis_server: RedisServer,
) -> None:
    """A fleet of two `brokergate run` processes with the same QST user: one holds it, the
    other waits in standby, and both are healthy; when the holder stops, the standby logs in."""
    async with run_qst_simulator([QstAccount("alice", QST_PASSWORD)]) as qst:
        services: list[RunningService] = []
        env = {"QST_PASSWORD": QST_PASSWORD, "BROKERGATE_FLEET_KEY": new_fleet_key()}
        async with AsyncExitStack() as stack:
            for n in (1, 2):
                path = tmp_path / f"host{n}.toml"
                path.write_text(f'[service]\nlisten = "127.0.0.1:0"\ncoordinator = '
                                f'"{redis_server.url}"\nlease_ttl = 2\n'
                                + qst_table("quotes", qst, "alice"))
                services.append(await stack.enter_async_context(brokergate_run(path, env)))
                if n == 1:
                    await until(_state_is(services[0], "authenticated"))
            first, second = services
            await until(_state_is(second, "standby"))
            async with httpx.AsyncClient(timeout=5) as http:
                health = [await http.get(f"{s.url}/healthz") for s in services]
            assert [h.status_code for h in health] == [200, 200]
            assert "quotes: standby (another process of the fleet holds the account)" in \
                health[1].text
            assert qst.stats.logins_ok == 1
            first.send(signal.SIGTERM)  # the holder leaves: it logs out and lets go
            assert await first.exited(within=15) == 0
            await until(_state_is(second, "authenticated"), within=15)
            assert qst.stats.logins_ok == 2 and qst.live_connections("alice") == 1
            second.send(signal.SIGTERM)
            assert await second.exited(within=15) == 0


def _state_is(service: RunningService, state: str) -> Callable[[], Any]:
    async def check() -> bool:
        async with httpx.AsyncClient(timeout=5) as http:
            sessions = (await http.get(f"{service.url}/status")).json()["sessions"]
        return bool(sessions[0]["state"] == state)

    return check


def test_check_reads_the_file_and_says_what_it_declares(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`brokergate run --check`: what the file declares, or its mistakes; nothing started."""
    from brokergate.engine.cli import main

    monkeypatch.setenv("QST_PASSWORD", QST_PASSWORD)
    path = tmp_path / "sessions.toml"
    path.write_text('[sessions.quotes]\nbroker = "qst"\nurl = "wss://md.example.com/api"\n'
                    'user_name = "alice"\nclient_id = "desk-7"\npassword_env = "QST_PASSWORD"\n'
                    'schedule = { start = "08:00", end = "17:00", timezone = "Europe/London" }\n')
    assert main(["run", "--check", str(path)]) == 0
    out = capsys.readouterr().out
    assert out.splitlines() == ["quotes: qst, 08:00-17:00 Europe/London, mon-fri",
                                f"{path}: 1 sessions, no problems"]
    monkeypatch.delenv("QST_PASSWORD")
    assert main(["run", "--check", str(path)]) == 2
    err = capsys.readouterr().err
    assert f"{path}:6: sessions.quotes.password_env: " in err and "QST_PASSWORD" in err


def test_a_listen_address_in_use_is_one_clear_line_and_nothing_starts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    import socket

    from brokergate.engine.cli import main

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        path = tmp_path / "sessions.toml"
        path.write_text(f'[service]\nlisten = "127.0.0.1:{port}"\n')
        with pytest.raises(SystemExit) as exited:
            main(["run", str(path)])
    assert exited.value.code == 2
    assert capsys.readouterr().err == (f"brokergate: error: [service] listen: cannot listen on "
                                       f"127.0.0.1:{port}: Address already in use\n")


def test_an_audit_file_that_cannot_be_opened_is_one_clear_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str],
) -> None:
    from brokergate.engine.cli import main

    path = tmp_path / "sessions.toml"
    path.write_text('[service]\nlisten = "127.0.0.1:0"\naudit = "no-such-folder/audit.jsonl"\n')
    with pytest.raises(SystemExit) as exited:
        main(["run", str(path)])
    assert exited.value.code == 2
    assert capsys.readouterr().err == (
        f"brokergate: error: [service] audit: cannot open {tmp_path}/no-such-folder/audit.jsonl: "
        "No such file or directory\n")
