"""Prometheus metrics: sessions against the simulators over loopback, scraped through
prometheus_client's own exposition and parsed back with its parser."""

from __future__ import annotations

from typing import Any

import pytest
import trio
import trio.testing
from helpers import cqg_config, qst_config, session_kwargs
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families
from test_cqg_session import until
from test_slow_reader import qst_data

from brokergate import (
    BrokerMessage,
    FirstockConfig,
    LoginFailed,
    Metrics,
    Secret,
    Transitioned,
    open_gateway,
)
from brokergate.engine._metrics import MAX_ERROR_CODES, SessionMeter
from brokergate.simulators.cqg import CqgAccount, run_cqg_simulator
from brokergate.simulators.firstock import FirstockAccount, run_firstock_simulator
from brokergate.simulators.qst import QstAccount, run_qst_simulator

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(metrics: Metrics) -> Samples:
    """Every sample of the exposition, by (name, labels)."""
    text = generate_latest(metrics.registry).decode()
    out: Samples = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return out


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def total(samples: Samples, name: str, **labels: str) -> float:
    """The sum over every series of ``name`` whose labels include ``labels``."""
    want = set(labels.items())
    return sum(v for (n, ls), v in samples.items() if n == name and want <= ls)


async def test_a_cqg_session_counts_its_logon_restore_and_messages(
    clock: trio.testing.MockClock,
) -> None:
    metrics = Metrics()
    async with run_cqg_simulator([CqgAccount("alice", "alice-pw")]) as sim:
        async with open_gateway(metrics=metrics, **session_kwargs([])) as gw:
            async with gw.session(cqg_config(sim.url, "alice")) as s:
                await s.wait_authenticated()
                seen = scrape(metrics)
                assert value(seen, "brokergate_sessions", broker="cqg",
                             state="authenticated") == 1
                await trio.sleep(15)
                await sim.drop("alice")
                await until(s, lambda: s.outcome()["restores"] == 1 and s.state == "authenticated")
                seen = scrape(metrics)
        ended = scrape(metrics)
    assert value(seen, "brokergate_logons_total", broker="cqg") == 1
    assert value(seen, "brokergate_restores_total", broker="cqg", outcome="restored") == 1
    assert value(seen, "brokergate_login_duration_seconds_count", broker="cqg") == 1
    assert value(seen, "brokergate_restore_duration_seconds_count", broker="cqg") == 1
    assert value(seen, "brokergate_login_attempts_total", broker="cqg") >= 1
    assert value(seen, "brokergate_transitions_total", broker="cqg", state="restoring",
                 reason="connection_lost") >= 1 or total(
        seen, "brokergate_transitions_total", broker="cqg", state="restoring") >= 1
    # The logon, the restore request and pings went out; their answers came in.
    assert value(seen, "brokergate_messages_sent_total", broker="cqg") >= 2
    assert value(seen, "brokergate_messages_received_total", broker="cqg") >= 2
    # Once the session has ended, it is no longer open, and what it counted stays counted.
    assert total(ended, "brokergate_sessions") == 0
    assert value(ended, "brokergate_logons_total", broker="cqg") == 1
    assert (value(ended, "brokergate_messages_received_total", broker="cqg")
            >= value(seen, "brokergate_messages_received_total", broker="cqg"))


async def test_a_wrong_password_counts_the_brokers_error_code_and_the_failed_state(
    clock: trio.testing.MockClock,
) -> None:
    metrics = Metrics(account_label=True)
    async with run_qst_simulator([QstAccount("walt", "walt-pw")]) as sim:
        async with open_gateway(metrics=metrics, **session_kwargs([])) as gw:
            async with gw.session(qst_config(sim.url, "walt", password="guess")) as s:
                with pytest.raises(LoginFailed):
                    await s.wait_authenticated()
                seen = scrape(metrics)
    assert value(seen, "brokergate_sessions", broker="qst", account="walt", state="failed") == 1
    errors = {dict(ls)["code"]: v for (n, ls), v in seen.items()
              if n == "brokergate_broker_errors_total"}
    assert errors == {"1": 1.0}  # QST's code for a wrong password, once: never retried
    assert total(seen, "brokergate_logons_total") == 0
    assert value(seen, "brokergate_login_attempts_total", broker="qst", account="walt") == 1


async def test_rest_calls_count_the_rate_limit_wait_and_a_429(
    clock: trio.testing.MockClock,
) -> None:
    metrics = Metrics()
    acct = FirstockAccount("AA1", "AA1-pw", fixed_totp="123456", rate_limited_times=1,
                           retry_after=3.0)
    async with run_firstock_simulator([acct]) as sim:
        config = FirstockConfig(
            base_url=sim.base_url, user_id="AA1", password=Secret("AA1-pw"),
            api_key=Secret(acct.api_key), vendor_code=acct.vendor_code,
            totp=Secret("123456"), socket="none")
        async with open_gateway(metrics=metrics, **session_kwargs([])) as gw:
            async with gw.session(config) as s:
                await s.wait_authenticated()
                seen = scrape(metrics)
    assert value(seen, "brokergate_rate_limited_total", broker="firstock") == 1
    assert value(seen, "brokergate_rate_limit_wait_seconds_count", broker="firstock") >= 2
    assert value(seen, "brokergate_messages_sent_total", broker="firstock") >= 2
    assert value(seen, "brokergate_messages_received_total", broker="firstock") >= 2
    assert value(seen, "brokergate_logons_total", broker="firstock") == 1


def record(src: str, dst: str, attempt: int = 1, code: int | None = None) -> Transitioned:
    return Transitioned("t", src, dst, 1, attempt, None, error_code=code)


def test_a_broker_cannot_grow_the_error_series_without_bound() -> None:
    meter = SessionMeter("qst", ("qst",))
    for code in range(MAX_ERROR_CODES + 10):
        meter.transition(record("awaiting_login_response", "backoff", code=code))
    assert len(meter.errors) == MAX_ERROR_CODES + 1
    assert meter.errors["other"] == 10


async def test_durations_are_timed_from_the_attempt_not_from_the_backoff(
    clock: trio.testing.MockClock,
) -> None:
    meter = SessionMeter("cqg", ("cqg",))
    meter.transition(record("disconnected", "connecting"))
    await trio.sleep(1.0)
    meter.transition(record("connecting", "backoff", attempt=1))
    await trio.sleep(30.0)  # waiting out a backoff is not logging in
    meter.transition(record("backoff", "connecting", attempt=2))
    await trio.sleep(0.2)
    meter.transition(record("connecting", "awaiting_login_response", attempt=2))
    await trio.sleep(0.2)
    meter.transition(record("awaiting_login_response", "authenticated", attempt=2))
    assert meter.logins.count == 1 and meter.logins.sum == pytest.approx(0.4)
    assert meter.attempts == 2
    meter.transition(record("authenticated", "restoring", attempt=0))
    await trio.sleep(0.3)
    meter.transition(record("restoring", "authenticated", attempt=0))
    assert meter.restores.count == 1 and meter.restores.sum == pytest.approx(0.3)
    assert (meter.logons, meter.restored) == (1, 1)


def test_metrics_join_a_given_registry_once() -> None:
    registry = CollectorRegistry()
    Metrics(registry=registry)
    with pytest.raises(ValueError, match="Duplicated"):
        Metrics(registry=registry)


def test_the_exposition_follows_prometheus_naming() -> None:
    metrics = Metrics()
    names: list[tuple[str, str]] = [(f.name, f.type) for f in metrics.collect()]
    for name, kind in names:
        assert name.startswith("brokergate_")
        if kind == "histogram":
            assert name.endswith("_seconds")
    counters = {n for n, k in names if k == "counter"}
    assert "brokergate_transitions" in counters  # exposed as ..._total
    assert "brokergate_slow_consumer_seconds" in counters


async def test_a_session_without_metrics_has_no_meter(clock: trio.testing.MockClock) -> None:
    async with run_qst_simulator([QstAccount("alice", "alice-pw")]) as sim:
        async with open_gateway(**session_kwargs([])) as gw:
            async with gw.session(qst_config(sim.url, "alice")) as s:
                await s.wait_authenticated()
                driver: Any = s._driver
                assert driver._meter is None


async def test_time_a_subscriber_held_back_the_reading_is_counted(
    clock: trio.testing.MockClock,
) -> None:
    metrics = Metrics()
    async with run_qst_simulator([QstAccount("alice", "alice-pw")]) as sim:
        async with open_gateway(metrics=metrics, **session_kwargs([])) as gw:
            async with gw.session(qst_config(sim.url, "alice")) as s:
                stream = s.events(buffer=4)
                await s.wait_authenticated()
                assert sim.send("alice", (qst_data(n) for n in range(40))) == 1
                await trio.sleep(8)  # the application reads nothing for 8 s
                got = 0
                with trio.fail_after(30):
                    async for event in stream:
                        got += isinstance(event, BrokerMessage)
                        if got == 40:
                            break
                seen = scrape(metrics)
    held = value(seen, "brokergate_slow_consumer_seconds_total", broker="qst")
    assert 8 <= held < 9
    assert value(seen, "brokergate_messages_received_total", broker="qst") >= 41
