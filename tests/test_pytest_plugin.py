"""brokergate's pytest plugin, used the way a user uses it: a project of their own outside this
checkout (an application module, a conftest.py and a test module) run by pytest in a
subprocess, with the plugin found through its ``pytest11`` entry point (the editable install
provides it), not through any path."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

#: The user's application: it keeps its subscriptions alive across reconnects and restores.
USER_APP = r'''
"""A user's application: it holds a broker session and keeps its subscriptions alive."""

from __future__ import annotations

import trio

from brokergate import BrokerMessage, CqgServerMessage, Notice, Session, Transitioned
from brokergate.qst import pb

#: Stands for a real CQG market data subscription (ClientMsg bytes built with CQG's schema).
CQG_SUBSCRIBE = bytes.fromhex("220408011001")


class Subscriber:
    """Subscribes once authenticated, and again whenever the broker connection came back;
    counts the subscriptions the broker answered."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.subscriptions = 0
        self._changed = trio.Event()

    async def wait_subscriptions(self, count: int) -> None:
        while self.subscriptions < count:
            await self._changed.wait()

    def _subscribed(self) -> None:
        self.subscriptions += 1
        self._changed.set()
        self._changed = trio.Event()


class QstWatcher(Subscriber):
    """QST forgets everything with the connection: after a reconnect (a new epoch reaching
    authenticated) the application asks for its instruments again."""

    def __init__(self, session: Session, symbols: list[str]) -> None:
        super().__init__(session)
        self.symbols = symbols
        self.instruments: dict[str, int] = {}

    async def _subscribe(self) -> None:
        answer = await self.session.request(pb.TranslateInstrumentSymbolRequest(
            symbol_source=1, instrument_symbols=self.symbols))
        self.instruments = {r.symbol: r.instrument_id for r in answer.records}
        self._subscribed()

    async def run(self) -> None:
        async with self.session.events() as events:
            await self.session.wait_authenticated()
            epoch = self.session.epoch
            await self._subscribe()
            async for event in events:
                if (isinstance(event, Transitioned) and event.dst == "authenticated"
                        and event.epoch > epoch):
                    epoch = event.epoch
                    await self._subscribe()


class CqgWatcher(Subscriber):
    """CQG drops subscriptions with the connection even when the session is restored. A
    subscription counts once CQG answered it (the simulator echoes it back): a message handed
    to send() just before the connection went may never have reached the broker."""

    def __init__(self, session: Session) -> None:
        super().__init__(session)
        #: "restored" (the session survived) or "new_session" (it did not), as they came.
        self.comebacks: list[str] = []

    async def run(self) -> None:
        async with self.session.events() as events:
            await self.session.wait_authenticated()
            await self.session.send(CQG_SUBSCRIBE)
            async for event in events:
                if isinstance(event, Notice) and event.kind in ("restored", "new_session"):
                    self.comebacks.append(event.kind)
                    await self.session.send(CQG_SUBSCRIBE)
                elif (isinstance(event, BrokerMessage)
                        and isinstance(event.message, CqgServerMessage)
                        and event.message.raw == CQG_SUBSCRIBE):
                    self._subscribed()
'''

#: The user's conftest.py: a virtual clock, and their own scripted QST account.
USER_CONFTEST = r'''
from __future__ import annotations

import pytest
import trio.testing

from brokergate.simulators.qst import QstAccount


@pytest.fixture
def clock() -> trio.testing.MockClock:
    # Virtual time: backoff and timers cost nothing. The small threshold lets loopback I/O land
    # before the clock jumps.
    return trio.testing.MockClock(autojump_threshold=0.005)


@pytest.fixture
def qst_accounts() -> list[QstAccount]:
    # Our own scripted account: QST answers its first login with a server error (code 6).
    return [QstAccount("trader", "trader-pw", server_errors=1)]
'''

#: The user's tests of their application against the three simulators.
USER_TESTS = r'''
from __future__ import annotations

import pytest
import trio
import trio.testing

from brokergate import (
    AuditLog,
    CqgConfig,
    Displaced,
    FirstockConfig,
    QstConfig,
    Secret,
    open_session,
)
from brokergate.simulators.cqg import CqgSimulator
from brokergate.simulators.firstock import DEMO_FIXED_TOTP, FirstockSimulator
from brokergate.simulators.qst import QstSimulator
from trading_app import CQG_SUBSCRIBE, CqgWatcher, QstWatcher

QUIET = AuditLog.disabled()


@pytest.fixture
def qst_simulator_options() -> dict[str, object]:
    # Only our own client id may log in to QST.
    return {"client_ids": {"my-app"}}


def test_the_plugin_came_from_its_entry_point(pytestconfig: pytest.Config) -> None:
    plugin = pytestconfig.pluginmanager.get_plugin("brokergate")
    assert plugin is not None and plugin.__name__ == "brokergate.simulators.pytest_plugin"


def qst_config(sim: QstSimulator) -> QstConfig:
    return QstConfig(url=sim.url, user_name="trader", password=Secret("trader-pw"),
                     client_id="my-app")


async def test_qst_reconnects_and_resubscribes(
    qst_simulator: QstSimulator, clock: trio.testing.MockClock
) -> None:
    async with open_session(qst_config(qst_simulator), audit=QUIET) as session:
        app = QstWatcher(session, ["ESZ6", "NQZ6"])
        async with trio.open_nursery() as nursery:
            nursery.start_soon(app.run)
            await app.wait_subscriptions(1)
            first = dict(app.instruments)
            assert await qst_simulator.drop("trader") == 1
            await app.wait_subscriptions(2)
            assert app.instruments == first
            nursery.cancel_scope.cancel()
    stats = qst_simulator.stats
    assert (stats.logins_rejected, stats.logins_ok, stats.requests) == (1, 2, 2)
    assert stats.violations == []


async def test_qst_displaced_is_not_fought(
    qst_simulator: QstSimulator, clock: trio.testing.MockClock
) -> None:
    async with open_session(qst_config(qst_simulator), audit=QUIET) as session:
        await session.wait_authenticated()
        assert await qst_simulator.close("trader", 4101) == 1
        with pytest.raises(Displaced):
            await session.wait_authenticated()
    assert qst_simulator.stats.logins_ok == 1


async def test_cqg_restores_and_resubscribes(
    cqg_simulator: CqgSimulator, clock: trio.testing.MockClock
) -> None:
    config = CqgConfig(url=cqg_simulator.url, user_name="alice", password=Secret("alice-pw"),
                       client_app_id="my-app")
    async with open_session(config, audit=QUIET) as session:
        app = CqgWatcher(session)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(app.run)
            await app.wait_subscriptions(1)
            assert await cqg_simulator.drop("alice") == 1
            await app.wait_subscriptions(2)
            nursery.cancel_scope.cancel()
        assert app.comebacks == ["restored"]
        assert session.outcome()["restores"] == 1
    stats = cqg_simulator.stats
    assert (stats.logons_ok, stats.restores_ok) == (1, 1)
    assert stats.app_messages == [CQG_SUBSCRIBE, CQG_SUBSCRIBE]
    assert stats.violations == []


async def test_firstock_socket_comes_back_on_the_same_token(
    firstock_simulator: FirstockSimulator, clock: trio.testing.MockClock
) -> None:
    sim = firstock_simulator
    config = FirstockConfig(base_url=sim.base_url, user_id="fixed", password=Secret("fixed-pw"),
                            api_key=Secret("key-fixed"), vendor_code="fixed_API",
                            totp=Secret(DEMO_FIXED_TOTP), socket="noren",
                            socket_url=sim.noren_url)
    async with open_session(config, audit=QUIET) as session:
        await session.wait_authenticated()
        assert sim.live_sockets("fixed") == 1
        assert await sim.drop("fixed") == 1
        await sim.wait_live_sockets("fixed", 1)
        await session.wait_authenticated()
        assert session.outcome()["socket_attaches"] == 2
    assert sim.stats.logins_ok == 1 and sim.stats.violations == []
'''

TRIO_MODE = "[pytest]\ntrio_mode = true\n"


def run_pytest(project: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """pytest in ``project`` as a user runs it: from there, with nothing of ours on the path."""
    assert ROOT not in project.parents
    env = {name: value for name, value in os.environ.items()
           if name not in ("PYTHONPATH", "PYTEST_ADDOPTS", "PYTEST_PLUGINS",
                           "PYTEST_DISABLE_PLUGIN_AUTOLOAD")}
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args],
        cwd=project, env=env, capture_output=True, text=True, timeout=120, check=False)


def write(project: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (project / name).write_text(textwrap.dedent(text), encoding="utf-8")
    return project


@pytest.fixture
def user_project(tmp_path: Path) -> Path:
    return write(tmp_path, {"pytest.ini": TRIO_MODE, "trading_app.py": USER_APP,
                            "conftest.py": USER_CONFTEST, "test_trading_app.py": USER_TESTS})


def test_a_users_tests_drive_all_three_simulators_through_drops(user_project: Path) -> None:
    proc = run_pytest(user_project)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.splitlines()[-1].startswith("5 passed in "), proc.stdout


def test_the_plugin_can_be_turned_off(user_project: Path) -> None:
    proc = run_pytest(user_project, "-p", "no:brokergate")
    assert proc.returncode != 0
    assert "fixture 'qst_simulator' not found" in proc.stdout, proc.stdout


SYNC_AND_ASYNC = """
    async def test_needs_a_simulator(cqg_simulator):
        pass


    def test_plain():
        assert True
"""


def test_without_pytest_trio_the_run_goes_on_and_the_fixture_says_why(tmp_path: Path) -> None:
    write(tmp_path, {"test_mixed.py": SYNC_AND_ASYNC})
    proc = run_pytest(tmp_path, "-p", "no:trio")
    assert "1 passed, 1 error" in proc.stdout, proc.stdout
    assert "the cqg_simulator fixture (brokergate's pytest plugin)" in proc.stdout
    assert "needs pytest-trio" in proc.stdout and "brokergate[testing]" in proc.stdout


def test_a_test_that_is_not_a_trio_test_is_told_so(tmp_path: Path) -> None:
    write(tmp_path, {"test_mixed.py": SYNC_AND_ASYNC})  # no trio_mode, no marker
    proc = run_pytest(tmp_path)
    assert "1 passed, 1 error" in proc.stdout, proc.stdout
    assert "'test_needs_a_simulator' must be a trio test" in proc.stdout, proc.stdout


def modules_loaded_by_the_plugin(before: str) -> list[str]:
    """The modules that importing the plugin adds to those ``before`` (an import list)
    brought, in a fresh interpreter."""
    code = (f"import sys; import {before}; seen = set(sys.modules); "
            "import brokergate.simulators.pytest_plugin; "
            "print(*sorted(set(sys.modules) - seen))")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60, check=True)
    return proc.stdout.split()


def test_the_plugin_module_imports_neither_trio_nor_a_simulator() -> None:
    added = modules_loaded_by_the_plugin("pytest, brokergate")
    assert added == ["brokergate.simulators", "brokergate.simulators.pytest_plugin"]


def user_files_in_the_docs() -> dict[str, str]:
    """docs/testing.md's example files: each code block right after ``<!-- user file: NAME -->``."""
    text = (ROOT / "docs" / "testing.md").read_text(encoding="utf-8")
    found = re.findall(r"<!-- user file: (\S+) -->\n```\w*\n(.*?)```", text, re.S)
    return dict(found)


def test_the_examples_in_docs_testing_md_pass(tmp_path: Path) -> None:
    files = user_files_in_the_docs()
    assert sorted(files) == ["conftest.py", "pytest.ini", "test_cqg_reconnect.py",
                             "test_qst_reconnect.py"]
    proc = run_pytest(write(tmp_path, files))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.splitlines()[-1].startswith("3 passed in "), proc.stdout
