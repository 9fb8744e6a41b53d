"""The service's supervisor in process, under trio's MockClock and a wall clock that moves with
it: sessions held on their schedules across a day boundary, health as the schedule and the
broker's daily token expiry make it, reloads that leave unchanged sessions alone."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime, time, timedelta
from typing import Any

import trio
import trio.testing
from helpers import qst_config

from brokergate import AuditLog, FirstockConfig, Schedule, Secret, Transitioned, open_gateway
from brokergate.engine.service import Held, SessionEntry, Supervisor
from brokergate.machines import SessionSettings
from brokergate.simulators.firstock import FirstockAccount, run_firstock_simulator
from brokergate.simulators.qst import QstAccount, run_qst_simulator

#: A Monday, 08:59 UTC.
START = datetime(2026, 12, 7, 8, 59, tzinfo=UTC)


def wall() -> datetime:
    """The wall clock of these tests: START, moved along with trio's (virtual) clock."""
    return START + timedelta(seconds=trio.current_time())


def entry(name: str, config: Any, schedule: Schedule | None, fingerprint: str = "1"
          ) -> SessionEntry:
    return SessionEntry(name=name, broker=config_broker(config), config=config,
                        schedule=schedule, line=1, fingerprint=fingerprint)


def config_broker(config: Any) -> str:
    return "firstock" if isinstance(config, FirstockConfig) else "qst"


@asynccontextmanager
async def supervising(events: list[dict[str, Any]]) -> AsyncIterator[Supervisor]:
    audit = AuditLog.collect(events)
    async with open_gateway(audit=audit, wall_clock=wall, rng=random.Random(7)) as gw, \
            trio.open_nursery() as nursery:
        # The wall clock here never steps: nap an hour at a time (each jump of the mock clock
        # costs a few real milliseconds).
        supervisor = Supervisor(gw, audit, wall_clock=wall, nursery=nursery, nap=3600.0)
        try:
            yield supervisor
        finally:
            await supervisor.stop_all()


async def sleep_until(when: datetime) -> None:
    await trio.sleep((when - wall()).total_seconds())


def at(hour: int, minute: int, day: int = 7) -> datetime:
    return datetime(2026, 12, day, hour, minute, tzinfo=UTC)


async def test_a_session_is_held_inside_its_window_and_logged_out_at_its_close(
    clock: trio.testing.MockClock,
) -> None:
    ten_minutes = Schedule(start=time(9, 0), end=time(9, 10), timezone="UTC")
    events: list[dict[str, Any]] = []
    async with run_qst_simulator([QstAccount("alice", "alice-pw")]) as sim, \
            supervising(events) as supervisor:
        await supervisor.apply({"quotes": entry("quotes", qst_config(sim.url, "alice"),
                                                ten_minutes)})
        held = supervisor.held["quotes"]
        # Before 09:00: not logged in, and healthy all the same.
        assert held.phase == "off_schedule" and sim.stats.logins_ok == 0
        assert supervisor.health() == (True, ["quotes: off schedule, opens "
                                              "2026-12-07T09:00:00Z"])
        await sleep_until(at(9, 0, 7) + timedelta(seconds=5))
        assert held.state == "authenticated" and supervisor.health()[0]
        status = held.as_status()
        assert status["schedule"]["open"] and status["schedule"]["closes"] == \
            "2026-12-07T09:10:00Z"
        # 09:10: logged out, and waiting for tomorrow's window.
        await sleep_until(at(9, 10, 7) + timedelta(seconds=5))
        assert sim.stats.logouts == 1 and sim.live_connections("alice") == 0
        assert held.phase == "off_schedule" and held.next_open == at(9, 0, 8)
        assert supervisor.health()[0]
        # The next day's window opens a new session.
        await sleep_until(at(9, 0, 8) + timedelta(seconds=5))
        assert held.state == "authenticated" and sim.stats.logins_ok == 2
    closes = [e for e in events if e["event"] == "transition" and e["dst"] == "disconnected"]
    assert [e["reason"] for e in closes] == ["logged_out", "logged_out"]


async def test_an_overnight_window_holds_the_session_across_midnight(
    clock: trio.testing.MockClock,
) -> None:
    overnight = Schedule(start=time(22, 0), end=time(2, 0), timezone="UTC")
    async with run_qst_simulator([QstAccount("alice", "alice-pw")]) as sim, \
            supervising([]) as supervisor:
        # (Pings every 10 minutes, not 20 s: four virtual hours of them cost real seconds.)
        config = qst_config(sim.url, "alice", ping_interval=600.0)
        await supervisor.apply({"night": entry("night", config, overnight)})
        held = supervisor.held["night"]
        await sleep_until(at(23, 59, 7))
        assert held.state == "authenticated"
        await sleep_until(at(0, 30, 8))  # past midnight: still the same session
        assert held.state == "authenticated" and sim.stats.logins_ok == 1
        await sleep_until(at(2, 0, 8) + timedelta(seconds=5))
        assert sim.stats.logouts == 1 and held.phase == "off_schedule"


async def test_a_failure_inside_the_window_is_unhealthy_until_the_window_closes(
    clock: trio.testing.MockClock,
) -> None:
    window = Schedule(start=time(9, 0), end=time(10, 0), timezone="UTC")
    async with run_qst_simulator([QstAccount("alice", "alice-pw")]) as sim, \
            supervising([]) as supervisor:
        await supervisor.apply({"quotes": entry(
            "quotes", qst_config(sim.url, "alice", password="a-guess"), window)})
        await sleep_until(at(9, 1))
        healthy, said = supervisor.health()
        assert not healthy
        assert said[0].startswith("quotes: failed: invalid_credentials; ")
        assert sim.stats.logins_rejected == 1  # one attempt: a wrong password is never retried
        await sleep_until(at(10, 1))
        assert supervisor.health()[0]  # outside its window, it is not meant to be up
        await sleep_until(at(9, 1, 8))
        assert sim.stats.logins_rejected == 2  # the next window tries once more


async def test_a_firstock_window_across_the_daily_expiry_renews_inside_it(
    clock: trio.testing.MockClock,
) -> None:
    """The day token expires at 05:00 IST (23:30 UTC); a window from 23:00 to 00:30 UTC spans
    it. The session renews its token inside the window, a minute after the expiry, once, and
    stays healthy while it does."""
    acct = FirstockAccount("AA1", "AA1-pw", fixed_totp="123456")
    across = Schedule(start=time(23, 0), end=time(0, 30), timezone="UTC")
    async with run_firstock_simulator([acct]) as sim, supervising([]) as supervisor:
        config = FirstockConfig(
            base_url=sim.base_url, user_id="AA1", password=Secret("AA1-pw"),
            api_key=Secret(acct.api_key), vendor_code=acct.vendor_code,
            totp=Secret("123456"), socket="none", session_id="nse")
        await supervisor.apply({"nse": entry("nse", config, across)})
        held = supervisor.held["nse"]
        await sleep_until(at(23, 1))
        assert held.state == "authenticated" and sim.stats.logins_ok == 1
        seen: list[tuple[str, bool]] = []
        watching = _watch_health(held, seen)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(watching)
            await sleep_until(at(23, 33))
            nursery.cancel_scope.cancel()
        assert sim.stats.logins_ok == 2  # renewed at 23:31, inside the window, once
        assert held.state == "authenticated"
        assert seen and all(ok for _, ok in seen), seen  # healthy throughout the renewal
        assert any("renewing its day token" in text for text, _ in seen)
        await sleep_until(at(0, 31, 8))
        assert sim.stats.logouts == 1 and held.phase == "off_schedule"


def _watch_health(held: Held, seen: list[tuple[str, bool]]) -> Callable[[], Any]:
    async def watch() -> None:
        assert held.session is not None
        async with held.session.events(messages=False) as events:
            async for event in events:
                if isinstance(event, Transitioned):
                    for _ in range(1000):  # until the supervisor has seen it too
                        last = held.steps[-1] if held.steps else None
                        if last is not None and (last.trigger, last.dst) == (event.trigger,
                                                                             event.dst):
                            break
                        await trio.lowlevel.checkpoint()
                    ok, text = held.health()
                    seen.append((text, ok))

    return watch


async def test_a_reload_restarts_only_what_changed(clock: trio.testing.MockClock) -> None:
    async with run_qst_simulator([QstAccount("alice", "alice-pw"),
                                  QstAccount("carol", "carol-pw")]) as sim, \
            supervising([]) as supervisor:
        alice = entry("quotes", qst_config(sim.url, "alice"), None)
        carol = entry("backup", qst_config(sim.url, "carol"), None)
        assert await supervisor.apply({"quotes": alice, "backup": carol}) == (
            ["quotes", "backup"], [])
        await trio.sleep(5)
        first = supervisor.held["quotes"]
        # Unchanged: untouched. Changed (a new fingerprint): logged out and in again.
        changed = entry("backup", qst_config(sim.url, "carol"), None, fingerprint="2")
        assert await supervisor.apply({"quotes": alice, "backup": changed}) == (
            ["backup"], ["backup"])
        await trio.sleep(5)
        assert supervisor.held["quotes"] is first and first.state == "authenticated"
        assert sim.stats.logins_ok == 3 and sim.stats.logouts == 1
        # Removed: logged out.
        assert await supervisor.apply({"backup": changed}) == ([], ["quotes"])
        assert sim.stats.logouts == 2 and list(supervisor.held) == ["backup"]


def test_health_counts_standby_and_a_renewal_as_healthy() -> None:
    """What each state means for /healthz, inside the session's window."""
    config = qst_config("ws://127.0.0.1:9/", "alice")
    held = Held(entry("quotes", config, None), lambda: START)
    held.phase = "on"
    held.last_outcome = {"state": "standby", "reason": "standby", "detail": "held by h1"}
    assert held.health() == (True, "standby (another process of the fleet holds the account)")
    held.observe(Transitioned("renew", "authenticated", "requesting_token", 1, 0,
                              "token_renewal"))
    held.last_outcome = {"state": "requesting_token", "reason": "token_renewal"}
    assert held.health() == (True, "renewing its day token (requesting_token)")
    held.observe(Transitioned("login_answer", "requesting_token", "failed", 1, 1,
                              "invalid_credentials"))
    held.last_outcome = {"state": "failed", "reason": "invalid_credentials", "detail": "no"}
    assert held.health() == (False, "failed: invalid_credentials; no")


async def test_a_session_whose_task_fails_is_unhealthy_and_the_others_go_on(
    clock: trio.testing.MockClock,
) -> None:
    """A failure in the service's own code for one session (here the gateway refuses what it
    was given) stays in that session: it is unhealthy, says whose fault it is, and is tried
    again later; the other sessions and the service go on."""
    events: list[dict[str, Any]] = []
    async with run_qst_simulator([QstAccount("alice", "alice-pw")]) as sim, \
            supervising(events) as supervisor:
        broken = SessionEntry(name="broken", broker="qst", config=SessionSettings(),
                              schedule=None, line=1, fingerprint="1")
        await supervisor.apply({"quotes": entry("quotes", qst_config(sim.url, "alice"), None),
                                "broken": broken})
        await trio.sleep(5)
        healthy, said = supervisor.health()
        assert not healthy
        assert said[0].startswith("broken: internal error (brokergate's fault; tried again in "
                                  "30 s): ConfigurationError: SessionSettings is not a broker "
                                  "configuration")
        assert said[1] == "quotes: authenticated"
        await trio.sleep(60)
        tries = [e for e in events if e["event"] == "internal_error"]
        assert len(tries) == 3  # at 0, 30 and 60 s
    assert supervisor.held["quotes"].phase == "stopped"
