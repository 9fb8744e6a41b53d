"""pytest fixtures that start brokergate's broker simulators on loopback, for users' own tests.

pytest loads this module by itself wherever brokergate is installed (the ``pytest11`` entry
point ``brokergate``; ``-p no:brokergate`` turns it off). It gives:

* ``qst_simulator``, ``cqg_simulator``, ``firstock_simulator``: a simulator serving on
  127.0.0.1, on a free port, for the length of one test. They are trio fixtures, so the test
  must be a trio test run by pytest-trio (``trio_mode = true`` in the pytest configuration, or
  ``@pytest.mark.trio`` on the test); ``pip install 'brokergate[testing]'`` brings pytest-trio.
* ``qst_accounts``, ``cqg_accounts``, ``firstock_accounts``: the accounts each simulator knows;
  each simulator's ``demo_accounts()`` unless a conftest.py or test module defines a fixture of
  the same name.
* ``qst_simulator_options``, ``cqg_simulator_options``, ``firstock_simulator_options``: keyword
  arguments for ``run_qst_simulator``, ``run_cqg_simulator`` and ``run_firstock_simulator``
  (``{}`` unless overridden the same way), e.g. ``{"token_lifetime": 60.0}`` for Firstock.

docs/testing.md has the whole story, with examples. This module itself imports only pytest:
trio and the simulators are imported when a fixture is used, so a pytest run that uses none of
them pays only for importing the brokergate package, the plugin's parent.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any, Final

import pytest

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from brokergate.simulators.cqg import CqgAccount, CqgSimulator
    from brokergate.simulators.firstock import FirstockAccount, FirstockSimulator
    from brokergate.simulators.qst import QstAccount, QstSimulator

#: The fixtures that are trio fixtures (they need pytest-trio and a trio test).
TRIO_FIXTURES: Final = frozenset({"qst_simulator", "cqg_simulator", "firstock_simulator"})


@pytest.hookimpl(tryfirst=True)
def pytest_fixture_setup(
    fixturedef: pytest.FixtureDef[Any], request: pytest.FixtureRequest
) -> None:
    """Say plainly what is missing when a simulator fixture cannot run, instead of pytest's
    general complaint about async fixtures."""
    name = fixturedef.argname
    if name not in TRIO_FIXTURES or getattr(fixturedef.func, "__module__", None) != __name__:
        return  # not ours (a user's fixture of the same name is the user's business)
    trio_plugin = sys.modules.get("pytest_trio.plugin")  # whatever name it was registered under
    if trio_plugin is None or not request.config.pluginmanager.is_registered(trio_plugin):
        pytest.fail(
            f"the {name} fixture (brokergate's pytest plugin) runs under trio and needs "
            "pytest-trio, which is not installed (or was disabled with -p no:trio): "
            "pip install 'brokergate[testing]'",
            pytrace=False,
        )
    if request.node.get_closest_marker("trio") is None:
        pytest.fail(
            f"the {name} fixture (brokergate's pytest plugin) is a trio fixture, so "
            f"{request.node.name!r} must be a trio test: an async test with trio_mode = true "
            "in the pytest configuration, or marked @pytest.mark.trio",
            pytrace=False,
        )


# -- accounts and options (override any of these in a conftest.py or a test module) -------------


@pytest.fixture
def qst_accounts() -> list[QstAccount]:
    """The accounts ``qst_simulator`` knows: ``brokergate.simulators.qst.demo_accounts()``
    (alice / alice-pw logs in; see its docstring for the rest). Override to script your own."""
    from brokergate.simulators.qst import demo_accounts  # noqa: PLC0415

    return demo_accounts()


@pytest.fixture
def cqg_accounts() -> list[CqgAccount]:
    """The accounts ``cqg_simulator`` knows: ``brokergate.simulators.cqg.demo_accounts()``
    (alice / alice-pw logs on; see its docstring for the rest). Override to script your own."""
    from brokergate.simulators.cqg import demo_accounts  # noqa: PLC0415

    return demo_accounts()


@pytest.fixture
def firstock_accounts() -> list[FirstockAccount]:
    """The accounts ``firstock_simulator`` knows: ``brokergate.simulators.firstock
    .demo_accounts()`` (alice / alice-pw, vendor code alice_API, API key key-alice, any TOTP;
    see its docstring for the rest). Override to script your own."""
    from brokergate.simulators.firstock import demo_accounts  # noqa: PLC0415

    return demo_accounts()


@pytest.fixture
def qst_simulator_options() -> dict[str, Any]:
    """Keyword arguments for ``run_qst_simulator`` (e.g. ``client_ids``); none by default."""
    return {}


@pytest.fixture
def cqg_simulator_options() -> dict[str, Any]:
    """Keyword arguments for ``run_cqg_simulator`` (e.g. ``session_lifetime``,
    ``client_app_ids``, ``echo_application``); none by default."""
    return {}


@pytest.fixture
def firstock_simulator_options() -> dict[str, Any]:
    """Keyword arguments for ``run_firstock_simulator`` (e.g. ``api_version``, ``rate_limit``,
    ``token_lifetime``, ``noren_heartbeat_timeout``); none by default."""
    return {}


# -- the simulators ------------------------------------------------------------------------------


@pytest.fixture
async def qst_simulator(
    qst_accounts: list[QstAccount], qst_simulator_options: dict[str, Any]
) -> AsyncIterator[QstSimulator]:
    """A QST simulator serving on 127.0.0.1 for this test (a trio fixture: needs pytest-trio).

    ``.url`` is what ``QstConfig(url=...)`` takes; ``.drop(user)`` and ``.close(user, code)``
    end the user's live connections; ``.stats`` counts what it saw, protocol violations
    included."""
    from brokergate.simulators.qst import run_qst_simulator  # noqa: PLC0415

    async with run_qst_simulator(qst_accounts, **qst_simulator_options) as sim:
        yield sim


@pytest.fixture
async def cqg_simulator(
    cqg_accounts: list[CqgAccount], cqg_simulator_options: dict[str, Any]
) -> AsyncIterator[CqgSimulator]:
    """A CQG simulator serving on 127.0.0.1 for this test (a trio fixture: needs pytest-trio).

    ``.url`` is what ``CqgConfig(url=...)`` takes; ``.drop(user)`` drops the user's
    connections (the session stays restorable), ``.log_off(user, reason)`` ends the session,
    ``.expire_sessions(user)`` makes the next restore fail; ``.stats`` counts what it saw."""
    from brokergate.simulators.cqg import run_cqg_simulator  # noqa: PLC0415

    async with run_cqg_simulator(cqg_accounts, **cqg_simulator_options) as sim:
        yield sim


@pytest.fixture
async def firstock_simulator(
    firstock_accounts: list[FirstockAccount], firstock_simulator_options: dict[str, Any]
) -> AsyncIterator[FirstockSimulator]:
    """A Firstock simulator (HTTP API and both WebSockets) serving on 127.0.0.1 for this test
    (a trio fixture: needs pytest-trio).

    ``.base_url``, ``.noren_url`` and ``.socket_url`` are what ``FirstockConfig`` takes;
    ``.drop(user)`` drops the user's sockets (the token stays good), ``.expire_tokens(user)``
    expires the user's token; ``.stats`` counts what it saw."""
    from brokergate.simulators.firstock import run_firstock_simulator  # noqa: PLC0415

    async with run_firstock_simulator(firstock_accounts, **firstock_simulator_options) as sim:
        yield sim
