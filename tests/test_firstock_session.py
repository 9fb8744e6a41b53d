"""Firstock end to end: the engine against the Firstock simulator over real loopback HTTP and
WebSockets."""

from __future__ import annotations

import contextlib
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio
import trio.testing
import trio_websocket
from helpers import qst_config, session_kwargs, states

from brokergate import (
    ConfigurationError,
    Fault,
    FileTokenStore,
    FirstockConfig,
    Gateway,
    GaveUp,
    InvalidMessage,
    LockedOut,
    LoginFailed,
    NotAuthenticated,
    RequestFailed,
    Secret,
    StoredToken,
    Transitioned,
    open_gateway,
    open_session,
)
from brokergate.machines.firstock import expiry
from brokergate.simulators.firstock import (
    FirstockAccount,
    FirstockSimulator,
    run_firstock_simulator,
)

Events = list[dict[str, Any]]
TOTP = "123456"


def account(user: str = "AA1", **options: Any) -> FirstockAccount:
    return FirstockAccount(user, f"{user}-pw", fixed_totp=TOTP, **options)


def config(sim: FirstockSimulator, user: str = "AA1", socket: str = "noren",
           **overrides: Any) -> FirstockConfig:
    acct = sim.account(user)
    assert acct is not None
    values: dict[str, Any] = {
        "base_url": sim.base_url, "user_id": user, "password": Secret(f"{user}-pw"),
        "api_key": Secret(acct.api_key), "vendor_code": acct.vendor_code, "totp": Secret(TOTP),
        "socket": socket,
        "socket_url": {"noren": sim.noren_url, "v2": sim.socket_url, "none": None}[socket],
    }
    values.update(overrides)
    return FirstockConfig(**values)


async def test_login_attach_and_logout(clock: trio.testing.MockClock) -> None:
    events: Events = []
    async with run_firstock_simulator([account()]) as sim:
        async with open_session(config(sim), **session_kwargs(events)) as s:
            await s.wait_authenticated()
            assert sim.live_sockets("AA1") == 1
            await trio.sleep(12)  # heartbeats keep the Noren socket alive
            assert sim.stats.heartbeats >= 2
            outcome = s.outcome()
            assert (outcome["rest_logins"], outcome["socket_attaches"]) == (1, 1)
        assert sim.stats.logins_ok == 1 and sim.stats.logouts == 1
        assert sim.stats.violations == []
    assert states(events) == ["requesting_token", "connecting", "awaiting_login_response",
                              "authenticated", "authenticated",  # + settled (stable)
                              "logging_out", "disconnected"]
    text = json.dumps(events, default=str)
    assert "AA1-pw" not in text and TOTP not in text and "key-AA1" not in text


async def test_the_newer_socket(clock: trio.testing.MockClock) -> None:
    async with run_firstock_simulator([account()]) as sim:
        async with open_session(config(sim, socket="v2"), **session_kwargs([])) as s:
            await s.wait_authenticated()
            token = sim.token_of("AA1")
            assert token is not None and token not in repr(s) + str(s.outcome())
            await trio.sleep(12)  # the server pings; trio-websocket answers
            assert s.state == "authenticated"


async def test_a_wrong_password_is_never_retried(clock: trio.testing.MockClock) -> None:
    async with run_firstock_simulator([account()]) as sim:
        cfg = config(sim, password=Secret("nope"))
        async with open_session(cfg, **session_kwargs([])) as s:
            try:
                await s.wait_authenticated()
            except LoginFailed as exc:
                assert exc.reason == "invalid_credentials" and "INVALID_PASSWORD" in str(exc)
            await trio.sleep(60)
        assert len(sim.stats.login_bodies) == 1


async def test_blocked_after_wrong_passwords_is_locked_out(clock: trio.testing.MockClock) -> None:
    async with run_firstock_simulator([account(block_after=1)]) as sim:
        for _ in range(2):
            async with open_session(config(sim, password=Secret("nope")),
                                    **session_kwargs([])) as s:
                with contextlib.suppress(LoginFailed, LockedOut):
                    await s.wait_authenticated()
        assert s.state == "locked_out" and s.outcome()["reason"] == "user_blocked"


async def test_retry_after_is_honoured(clock: trio.testing.MockClock) -> None:
    async with run_firstock_simulator([account(rate_limited_times=1, retry_after=3.0)]) as sim:
        async with open_session(config(sim, socket="none"), **session_kwargs([])) as s:
            await s.wait_authenticated()
        first, second = sim.stats.request_times[:2]
        assert second - first >= 3.0


async def test_a_dropped_socket_reattaches_without_logging_in_again(
    clock: trio.testing.MockClock,
) -> None:
    async with run_firstock_simulator([account()]) as sim:
        async with open_session(config(sim), **session_kwargs([])) as s:
            await s.wait_authenticated()
            await trio.sleep(15)
            assert await sim.drop_sockets("AA1") == 1
            await sim.wait_live_sockets("AA1", 1)
            await s.wait_authenticated()
            assert s.outcome()["socket_attaches"] == 2 and s.outcome()["rest_logins"] == 1
        assert sim.stats.logins_ok == 1


#: Noon in India: a token made ten minutes before is today's whatever time the test runs at (with
#: the real clock, from 05:00 to 05:10 IST a token "made ten minutes ago" is yesterday's).
MIDDAY = datetime(2026, 11, 21, 6, 30, tzinfo=UTC)


def midday() -> datetime:
    return MIDDAY


async def test_a_restarted_process_reuses_todays_token(
    clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    async with run_firstock_simulator([account()]) as sim:
        cfg = config(sim, socket="none")
        # An earlier process logged in and died without logging out: its token is on disk.
        async with httpx.AsyncClient() as client:
            answer = await client.post(f"{sim.base_url}/login", json={
                "userId": "AA1", "password": "AA1-pw", "TOTP": TOTP,
                "vendorCode": cfg.vendor_code, "apiKey": cfg.api_key.reveal()})
        token = answer.json()["data"]["susertoken"]
        await FileTokenStore(tmp_path).save("firstock", "AA1", StoredToken(
            Secret(token), MIDDAY - timedelta(minutes=10)))
        events: Events = []
        async with open_session(cfg, token_store=FileTokenStore(tmp_path), wall_clock=midday,
                                **session_kwargs(events)) as s:
            await s.wait_authenticated()
            assert s.outcome()["rest_logins"] == 0
        assert sim.stats.logins_ok == 1 and sim.stats.user_details == 1
        assert await FileTokenStore(tmp_path).load("firstock", "AA1") is None  # logged out
    assert states(events)[:2] == ["validating_token", "authenticated"]


async def test_a_stale_stored_token_is_replaced(
    clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    async with run_firstock_simulator([account()]) as sim:
        cfg = config(sim, socket="none")
        await FileTokenStore(tmp_path).save("firstock", "AA1", StoredToken(
            Secret("made-up-token"), MIDDAY - timedelta(minutes=10)))
        async with open_session(cfg, token_store=FileTokenStore(tmp_path), wall_clock=midday,
                                **session_kwargs([])) as s:
            await s.wait_authenticated()
            assert s.outcome()["rest_logins"] == 1
            kept = await FileTokenStore(tmp_path).load("firstock", "AA1")
            assert kept is not None and kept.token.reveal() == sim.token_of("AA1")


async def test_two_hundred_accounts_log_in_under_the_brokers_rate_limit(
    clock: trio.testing.MockClock,
) -> None:
    users = [f"U{n:03d}" for n in range(200)]
    async with run_firstock_simulator([account(u) for u in users], rate_limit=50.0) as sim:
        sessions = []

        async def one(gw: Gateway, user: str) -> None:
            cfg = config(sim, user, socket="none", requests_per_second=50.0)
            async with gw.session(cfg) as s:
                await s.wait_authenticated()
                sessions.append(s.state)
                await trio.sleep(30)  # stay logged in while the others log in

        async with open_gateway(**session_kwargs([])) as gw, trio.open_nursery() as nursery:
            for user in users:
                nursery.start_soon(one, gw, user)
        assert sessions == ["authenticated"] * 200
        assert sim.stats.status_429 == 0
        logins = sorted(sim.stats.request_times)[:200]
        rate = (len(logins) - 1) / (logins[-1] - logins[0])
        assert 45.0 <= rate <= 50.5


async def test_three_sockets_per_user_and_no_fourth(clock: trio.testing.MockClock) -> None:
    async with run_firstock_simulator([account()]) as sim:
        async with contextlib.AsyncExitStack() as stack:
            gw = await stack.enter_async_context(open_gateway(**session_kwargs([])))
            held = []
            for n in range(3):
                s = await stack.enter_async_context(gw.session(config(sim, session_id=f"s{n}")))
                await s.wait_authenticated()
                held.append(s)
            fourth = await stack.enter_async_context(gw.session(config(sim, session_id="s4")))
            with pytest.raises(LoginFailed) as caught:
                await fourth.wait_authenticated()
            assert caught.value.reason == "socket_limit"
            assert sim.live_sockets("AA1") == 3 and sim.stats.sockets_refused == 0


async def test_the_token_is_renewed_before_the_daily_expiry(
    clock: trio.testing.MockClock,
) -> None:
    events: Events = []
    async with run_firstock_simulator([account()]) as sim:
        cfg = config(sim, socket="none")
        async with open_session(cfg, **session_kwargs(events)) as s:
            await s.wait_authenticated()
            due = expiry.seconds_until_renewal(datetime.now(UTC), cfg.token_expiry,
                                               cfg.token_timezone)
            await trio.sleep(due + 60)  # virtual time: a day costs nothing
            assert s.state == "authenticated" and s.outcome()["rest_logins"] == 2
        assert sim.stats.logins_ok == 2
    renewal = next(e for e in events if e["event"] == "transition" and e["trigger"] == "renew")
    assert renewal["reason"] == "token_renewal"


async def test_a_kept_session_is_reused_by_the_next_process(
    clock: trio.testing.MockClock, tmp_path: Path
) -> None:
    async with run_firstock_simulator([account()]) as sim:
        cfg = config(sim)
        async with open_session(cfg, token_store=FileTokenStore(tmp_path), keep_session=True,
                                **session_kwargs([])) as s:
            await s.wait_authenticated()
        assert s.state == "disconnected" and s.outcome()["reason"] == "session_kept"
        assert sim.stats.logouts == 0 and sim.token_of("AA1") is not None
        await sim.wait_live_sockets("AA1", 0)  # the socket went; the token did not
        async with open_session(cfg, token_store=FileTokenStore(tmp_path),
                                **session_kwargs([])) as s:
            await s.wait_authenticated()
            assert s.outcome()["rest_logins"] == 0 and s.outcome()["socket_attaches"] == 1
        assert sim.stats.logins_ok == 1 and sim.stats.logouts == 1
        assert await FileTokenStore(tmp_path).load("firstock", "AA1") is None


async def test_only_day_long_sessions_can_be_kept() -> None:
    qst = qst_config("ws://127.0.0.1:9/", "alice")
    with pytest.raises(ConfigurationError, match="keep_session"):
        async with open_session(qst, keep_session=True, **session_kwargs([])):
            pass


# --- the application's REST calls ---------------------------------------------------------------


async def test_application_calls_carry_the_token(clock: trio.testing.MockClock) -> None:
    events: Events = []
    async with run_firstock_simulator([account()]) as sim:
        async with open_session(config(sim, socket="none"), **session_kwargs(events)) as s:
            await s.wait_authenticated()
            funds = await s.call("limit")
            assert funds["cash"] == "250000.00" and funds["actid"] == "AA1"
            details = await s.call("userDetails", {"userId": "AA1"})
            assert details["actid"] == "AA1"
            token = sim.token_of("AA1")
        assert (sim.stats.limits, sim.stats.user_details, sim.stats.logins_ok) == (1, 1, 1)
    assert token is not None and token not in json.dumps(events, default=str)


async def test_an_expired_token_logs_in_again_once_and_the_call_goes_through(
    clock: trio.testing.MockClock,
) -> None:
    events: Events = []
    async with run_firstock_simulator([account()]) as sim:
        async with open_session(config(sim), **session_kwargs(events)) as s:
            await s.wait_authenticated()
            assert sim.expire_tokens("AA1") == 1
            # Five calls refused at once cost one fresh login, and each goes through after it.
            answers: list[Any] = []

            async def funds() -> None:
                answers.append(await s.call("limit"))

            async with trio.open_nursery() as nursery:
                for _ in range(5):
                    nursery.start_soon(funds)
            assert [a["cash"] for a in answers] == ["250000.00"] * 5
            assert s.state == "authenticated"
            outcome = s.outcome()
            assert (outcome["rest_logins"], outcome["socket_attaches"]) == (2, 2)
            await sim.wait_live_sockets("AA1", 1)  # the old socket went with the old token
        assert sim.stats.logins_ok == 2 and sim.stats.limits == 5
    refused = [e for e in events if e["event"] == "transition" and e["trigger"] == "token_refused"]
    assert len(refused) == 1 and refused[0]["reason"] == "session_invalid"
    assert "SESSION_EXPIRED" in refused[0]["detail"]


async def test_a_second_refusal_after_the_fresh_login_fails_the_session(
    clock: trio.testing.MockClock,
) -> None:
    async with run_firstock_simulator([account()]) as sim:
        async with open_session(config(sim, socket="none"), **session_kwargs([])) as s:
            await s.wait_authenticated()
            sim.expire_tokens("AA1")
            async with s.events() as stream:
                with pytest.raises(RequestFailed) as first:
                    await s.call("limit", retry=False)
                assert first.value.token_refused and first.value.name == "SESSION_EXPIRED"
                assert first.value.code == 401
                async for event in stream:  # the session logs in again by itself
                    if isinstance(event, Transitioned) and event.trigger == "login_answer":
                        assert event.dst == "authenticated"
                        break
            assert s.outcome()["rest_logins"] == 2
            sim.expire_tokens("AA1")  # the fresh token dies too, before any call succeeded
            with pytest.raises(LoginFailed) as caught:
                await s.call("limit")
            assert caught.value.reason == "session_invalid"
            assert s.state == "failed" and sim.stats.logins_ok == 2
            with pytest.raises(NotAuthenticated):
                await s.call("limit")


async def test_an_error_answer_is_raised_and_never_retried(
    clock: trio.testing.MockClock,
) -> None:
    async with run_firstock_simulator([account()]) as sim:
        async with open_session(config(sim, socket="none"), **session_kwargs([])) as s:
            await s.wait_authenticated()
            before = sim.stats.requests
            with pytest.raises(RequestFailed) as caught:
                await s.call("placeOrder", {"tradingSymbol": "IDEA-EQ"})
            assert caught.value.code == 404 and not caught.value.token_refused
            assert sim.stats.requests == before + 1 and s.state == "authenticated"
            token = sim.token_of("AA1")
            assert token is not None and token not in str(caught.value)


async def test_calls_refused_before_anything_is_sent(clock: trio.testing.MockClock) -> None:
    async with run_firstock_simulator([account(login_delay=2.0)]) as sim:
        async with open_session(config(sim, socket="none"), **session_kwargs([])) as s:
            with pytest.raises(NotAuthenticated):
                await s.call("limit")  # still logging in
            await s.wait_authenticated()
            before = sim.stats.requests
            for endpoint, body in (("logout", None), ("limit", {"jKey": "x"}),
                                   ("limit?x=1", None)):
                with pytest.raises(InvalidMessage):
                    await s.call(endpoint, body)
            assert sim.stats.requests == before


# --- every scripted scenario of the simulator, through the engine -------------------------------


@pytest.mark.parametrize(("field", "override"), [
    ("userId", {"user_id": "NOBODY"}),
    ("password", {"password": Secret("wrong")}),
    ("vendorCode", {"vendor_code": "WRONG_API"}),
    ("apiKey", {"api_key": Secret("wrong-key")}),
])
async def test_each_invalid_field_fails_at_once_naming_it(
    clock: trio.testing.MockClock, field: str, override: dict[str, Any],
) -> None:
    async with run_firstock_simulator([account()]) as sim:
        cfg = config(sim, socket="none", **override)
        async with open_session(cfg, **session_kwargs([])) as s:
            with pytest.raises(LoginFailed) as caught:
                await s.wait_authenticated()
        assert caught.value.reason == "invalid_credentials"
        assert f"INVALID_{field.upper()}" in str(caught.value.detail)
        assert len(sim.stats.login_failures) == 1  # never retried


@pytest.mark.parametrize(("options", "failures"), [
    ({"server_errors": 2}, ["SERVER_ERROR", "SERVER_ERROR"]),  # a 500 whose body says "401"
    ({"bad_gateway": 1}, ["BAD_GATEWAY"]),  # a proxy's HTML page
    ({"rate_limited_times": 1, "rate_limit_name": "RATE_LIMIT_EXCEEDED"},
     ["RATE_LIMIT_EXCEEDED"]),
    ({"status_case": "lowercase"}, []),
    ({"status_case": "capitalised"}, []),
])
async def test_transient_answers_and_status_spellings(
    clock: trio.testing.MockClock, options: dict[str, Any], failures: list[str],
) -> None:
    async with run_firstock_simulator([account(**options)]) as sim:
        async with open_session(config(sim, socket="none"), **session_kwargs([])) as s:
            await s.wait_authenticated()
            assert s.outcome()["attempts"] == len(failures) + 1
        assert sim.stats.login_failures == failures and sim.stats.logins_ok == 1


async def test_an_invalid_totp_with_a_seed_is_tried_once_more_in_the_next_window(
    clock: trio.testing.MockClock,
) -> None:
    seed = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"
    acct = FirstockAccount("AA1", "AA1-pw", totp_seed=seed, invalid_totp_times=1)
    async with run_firstock_simulator([acct]) as sim:
        cfg = config(sim, socket="none", totp=None, totp_seed=Secret(seed))
        async with open_session(cfg, **session_kwargs([])) as s:
            await s.wait_authenticated()
        assert sim.stats.login_failures == ["INVALID_TOTP"] and sim.stats.logins_ok == 1
        first, second = sim.stats.request_times[:2]
        assert 0 < second - first <= 30.5  # the wait is for the next 30 s window, no longer


async def test_slow_answers_time_out_and_are_retried_within_bounds(
    clock: trio.testing.MockClock,
) -> None:
    async with run_firstock_simulator([account(login_delay=30.0)]) as sim:
        cfg = config(sim, socket="none", request_timeout=5.0)
        async with open_session(cfg, **session_kwargs([])) as s:
            with pytest.raises(GaveUp) as caught:
                await s.wait_authenticated()
        assert caught.value.reason == "gave_up"
        assert "timed out waiting for the answer" in str(caught.value.detail)
        patient = config(sim, socket="none", request_timeout=45.0)
        async with open_session(patient, **session_kwargs([])) as s:
            await s.wait_authenticated()


async def test_an_unauthenticated_socket_gets_one_fresh_login(
    clock: trio.testing.MockClock,
) -> None:
    events: Events = []
    async with run_firstock_simulator([account()]) as sim:
        async with open_session(config(sim, socket="v2"), **session_kwargs(events)) as s:
            await s.wait_authenticated()
            sim.expire_tokens("AA1")  # the reattach will carry a dead token
            await sim.drop_sockets("AA1")
            await sim.wait_live_sockets("AA1", 1)
            await s.wait_authenticated()
            assert s.outcome()["rest_logins"] == 2 and s.outcome()["socket_attaches"] == 2
        assert sim.stats.socket_auth_failures == 1
    assert ("socket_verdict", "requesting_token") in [
        (e["trigger"], e["dst"]) for e in events if e["event"] == "transition"]


async def test_the_brokers_socket_limit_fails_the_session_without_a_fresh_login(
    clock: trio.testing.MockClock,
) -> None:
    async with run_firstock_simulator([account()]) as sim:
        cfg = config(sim, socket="v2")
        # Another process of this user holds three sockets already.
        async with httpx.AsyncClient() as client:
            answer = await client.post(f"{sim.base_url}/login", json={
                "userId": "AA1", "password": "AA1-pw", "TOTP": TOTP,
                "vendorCode": cfg.vendor_code, "apiKey": cfg.api_key.reveal()})
        elsewhere = answer.json()["data"]["susertoken"]
        async with contextlib.AsyncExitStack() as stack:
            for _ in range(3):
                ws = await stack.enter_async_context(trio_websocket.open_websocket_url(
                    sim.socket_url_for("AA1", elsewhere)))
                assert "Authentication successful" in str(await ws.get_message())
            async with open_session(cfg, **session_kwargs([])) as s:
                with pytest.raises(LoginFailed) as caught:
                    await s.wait_authenticated()
            assert caught.value.reason == "socket_limit" and caught.value.fault == Fault.ACCOUNT
            assert sim.stats.sockets_refused == 1 and sim.stats.logins_ok == 2


async def test_a_session_its_host_cancels_ends_at_once_and_says_so(
    clock: trio.testing.MockClock,
) -> None:
    """The host cancelling the session's nursery cancels its REST logout call too: the session
    does not wait for an answer that cannot come; it ends at once, saying why."""
    events: Events = []
    async with run_firstock_simulator([account()]) as sim:
        async with trio.open_nursery() as host:
            async def run() -> None:
                async with open_session(config(sim), **session_kwargs(events)) as s:
                    await s.wait_authenticated()
                    await trio.sleep_forever()

            host.start_soon(run)
            await trio.sleep(1)
            started = trio.current_time()
            host.cancel_scope.cancel()
        assert trio.current_time() - started < 1.0
    ends = [e for e in events if e["event"] == "transition"][-2:]
    assert [(e["trigger"], e["dst"]) for e in ends] == [("stop", "logging_out"),
                                                        ("logout_failed", "disconnected")]
    assert ends[-1]["reason"] == "logged_out"
    assert "not confirmed" in ends[-1]["detail"] and "cancelled" in ends[-1]["detail"]
