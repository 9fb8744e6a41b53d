"""CQG end to end: the engine against the CQG simulator over real loopback WebSockets."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import pytest
import trio
import trio.testing
import trio_websocket
from cqg_frames import UNKNOWN_FIELD
from helpers import cqg_config, session_kwargs, states, transitions

from brokergate import (
    AuditLog,
    BrokerMessage,
    CqgServerMessage,
    Displaced,
    InvalidMessage,
    LoginFailed,
    NotAuthenticated,
    Notice,
    Secret,
    Session,
    SessionClosed,
    open_gateway,
    open_session,
)
from brokergate.cqg import pb
from brokergate.simulators.cqg import CqgAccount, CqgSimulator, run_cqg_simulator

Events = list[dict[str, Any]]
SEED = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"


def alice(**options: Any) -> CqgAccount:
    return CqgAccount("alice", "alice-pw", **options)


async def next_notice(session: Session, kind: str) -> Notice:
    """Wait for the session's next notice of this kind (subscribe before causing it)."""
    async with session.events() as events:
        async for event in events:
            if isinstance(event, Notice) and event.kind == kind:
                return event
    raise AssertionError(f"the session ended without a {kind} notice")


@asynccontextmanager
async def watching(session: Session, kind: str) -> AsyncIterator[list[Notice]]:
    """Collect the session's notices of ``kind`` while the block runs."""
    seen: list[Notice] = []

    async def collect(task_status: trio.TaskStatus[None]) -> None:
        async with session.events() as events:
            task_status.started()
            async for event in events:
                if isinstance(event, Notice) and event.kind == kind:
                    seen.append(event)

    async with trio.open_nursery() as nursery:
        await nursery.start(collect)
        yield seen
        nursery.cancel_scope.cancel()


async def until(session: Session, predicate: Callable[[], object], limit: float = 300) -> None:
    """Wait (in virtual time) until ``predicate`` holds, checking after each session event."""
    with trio.fail_after(limit):
        async with session.events() as events:
            if predicate():
                return
            async for _ in events:
                if predicate():
                    return
    raise AssertionError("the session ended first")


def audit_text(events: Events) -> str:
    return json.dumps(events, default=str)


# --- logon and logoff ---------------------------------------------------------------------------


async def test_logon_then_logoff_on_leaving_the_block(clock: trio.testing.MockClock) -> None:
    events: Events = []
    async with run_cqg_simulator([alice(inactivity_timeout=30)]) as sim:
        async with open_session(cqg_config(sim.url, "alice"), **session_kwargs(events)) as s:
            await s.wait_authenticated()
            outcome = s.outcome()
            assert (outcome["logons"], outcome["restores"]) == (1, 0)
            assert outcome["server_protocol_version"] == "2.230"
            assert outcome["inactivity_timeout"] == 30
        assert s.state == "disconnected" and s.outcome()["reason"] == "logged_out"
        assert sim.stats.logoffs == 1 and sim.stats.violations == []
    logon = sim.stats.logon_requests[0]
    assert list(logon.session_settings) == [1]
    assert (logon.protocol_version_major, logon.protocol_version_minor) == (2, 230)
    assert states(events) == ["connecting", "awaiting_login_response", "authenticated",
                              "logging_out", "disconnected"]


@pytest.mark.parametrize(
    ("account", "password", "reason", "code"),
    [
        (alice(), "wrong", "logon_failure", 101),
        (alice(logon_result=104), None, "password_expired", 104),
        (alice(logon_result=105), None, "concurrent_session", 105),
        (alice(logon_result=107), None, "routine_error", 107),
        (alice(logon_result=999), None, "unknown_result", 999),
    ],
)
async def test_refused_logons_fail_at_once_and_are_never_retried(
    clock: trio.testing.MockClock, account: CqgAccount, password: str | None, reason: str,
    code: int,
) -> None:
    events: Events = []
    async with run_cqg_simulator([account]) as sim:
        config = cqg_config(sim.url, "alice", password)
        async with open_session(config, **session_kwargs(events)) as session:
            with pytest.raises(LoginFailed) as caught:
                await session.wait_authenticated()
            await trio.sleep(120)  # nothing more happens, however long we wait
        assert caught.value.reason == reason
        assert sim.stats.logon_results == [code]
        assert len(sim.stats.logon_requests) == 1
    failed = [e for e in events if e["event"] == "transition" and e["dst"] == "failed"]
    assert failed[0]["error_code"] == code


async def test_concurrent_session_refused_when_not_dropping(
    clock: trio.testing.MockClock,
) -> None:
    async with run_cqg_simulator([alice()]) as sim:
        async with open_session(cqg_config(sim.url, "alice"), **session_kwargs([])) as first:
            await first.wait_authenticated()
            second_config = cqg_config(sim.url, "alice", drop_concurrent_session=False,
                                       session_id="second")
            async with open_session(second_config, **session_kwargs([])) as second:
                with pytest.raises(LoginFailed) as caught:
                    await second.wait_authenticated()
            assert caught.value.reason == "concurrent_session"
            assert first.state == "authenticated"


async def test_a_second_logon_that_drops_the_first_forces_it_off(
    clock: trio.testing.MockClock,
) -> None:
    async with run_cqg_simulator([alice()]) as sim:
        async with open_session(cqg_config(sim.url, "alice"), **session_kwargs([])) as first:
            await first.wait_authenticated()
            second_config = cqg_config(sim.url, "alice", session_id="second",
                                       min_logon_interval=0.0)
            async with open_session(second_config, **session_kwargs([])) as second:
                await second.wait_authenticated()
                with pytest.raises(LoginFailed) as caught:
                    await first.wait_authenticated()
                assert caught.value.reason == "forced_logoff"
                assert second.state == "authenticated"


async def test_logons_of_one_user_are_spaced_in_one_gateway(
    clock: trio.testing.MockClock,
) -> None:
    async with run_cqg_simulator([alice()]) as sim, open_gateway(**session_kwargs([])) as gw:
        async with gw.session(cqg_config(sim.url, "alice", min_logon_interval=30.0)) as first:
            await first.wait_authenticated()
            started = trio.current_time()
        events: Events = []
        async with gw.session(cqg_config(sim.url, "alice", min_logon_interval=30.0),
                              audit=AuditLog.collect(events)) as second:
            await second.wait_authenticated()
            assert trio.current_time() - started >= 30.0
    assert states(events)[:2] == ["backoff", "connecting"]


async def test_the_daily_cap_stops_logons_before_they_reach_cqg(
    clock: trio.testing.MockClock,
) -> None:
    async with run_cqg_simulator([alice()]) as sim:
        config = cqg_config(sim.url, "alice", daily_logon_limit=1, min_logon_interval=0.0)
        async with open_gateway(**session_kwargs([])) as gw:
            async with gw.session(config) as first:
                await first.wait_authenticated()
            connections = sim.stats.connections
            async with gw.session(config) as second:
                with pytest.raises(LoginFailed) as caught:
                    await second.wait_authenticated()
        assert caught.value.reason == "logon_quota_exhausted"
        assert sim.stats.connections == connections


# --- one-time passwords and access tokens -------------------------------------------------------


async def test_otp_required_then_a_fresh_totp_code(clock: trio.testing.MockClock) -> None:
    events: Events = []
    async with run_cqg_simulator([alice(otp_seed=SEED)]) as sim:
        config = cqg_config(sim.url, "alice", otp_seed=Secret(SEED))
        async with open_session(config, **session_kwargs(events)) as session:
            await session.wait_authenticated()
        assert sim.stats.logon_results == [103, 0]
        first, second = sim.stats.logon_requests
        assert not first.HasField("one_time_password")
        code = second.one_time_password
    assert "refreshing_credentials" in states(events)
    text = audit_text(events)
    assert code not in text and SEED not in text and "alice-pw" not in text


async def test_otp_required_without_a_provider_fails(clock: trio.testing.MockClock) -> None:
    async with run_cqg_simulator([alice(otp_seed=SEED)]) as sim:
        async with open_session(cqg_config(sim.url, "alice"), **session_kwargs([])) as session:
            with pytest.raises(LoginFailed) as caught:
                await session.wait_authenticated()
    assert caught.value.reason == "one_time_password_required"
    assert "no one time password provider" in str(caught.value)


async def test_an_expired_access_token_is_refreshed_by_the_provider(
    clock: trio.testing.MockClock,
) -> None:
    events: Events = []
    calls: list[int] = []

    async def fresh_token() -> str:
        calls.append(1)
        await trio.sleep(0.5)  # e.g. an OAuth refresh round trip
        return "token-new"

    account = alice(access_tokens=frozenset({"token-new"}),
                    expired_tokens=frozenset({"token-old"}))
    async with run_cqg_simulator([account]) as sim:
        config = cqg_config(sim.url, None, access_token=Secret("token-old"),
                            access_token_provider=fresh_token, client_app_id=None)
        async with open_session(config, **session_kwargs(events)) as session:
            await session.wait_authenticated()
        assert sim.stats.logon_results == [108, 0]
        assert calls == [1]
    text = audit_text(events)
    assert "token-new" not in text and "token-old" not in text


async def test_an_expired_token_without_a_provider_fails(clock: trio.testing.MockClock) -> None:
    account = alice(expired_tokens=frozenset({"token-old"}))
    async with run_cqg_simulator([account]) as sim:
        config = cqg_config(sim.url, None, access_token=Secret("token-old"))
        async with open_session(config, **session_kwargs([])) as session:
            with pytest.raises(LoginFailed) as caught:
                await session.wait_authenticated()
    assert caught.value.reason == "access_token_expired"


async def test_a_provider_that_raises_fails_without_showing_its_message(
    clock: trio.testing.MockClock,
) -> None:
    def broken() -> str:
        raise RuntimeError("refresh failed for token-old-secret")

    account = alice(expired_tokens=frozenset({"token-old-secret"}))
    events: Events = []
    async with run_cqg_simulator([account]) as sim:
        config = cqg_config(sim.url, None, access_token=Secret("token-old-secret"),
                            access_token_provider=broken)
        async with open_session(config, **session_kwargs(events)) as session:
            with pytest.raises(LoginFailed) as caught:
                await session.wait_authenticated()
    assert caught.value.reason == "credential_unavailable"
    assert "it raised RuntimeError" in str(caught.value)
    assert "token-old-secret" not in str(caught.value) + audit_text(events)


# --- redirects ----------------------------------------------------------------------------------


async def test_a_redirect_is_followed_to_a_second_instance(
    clock: trio.testing.MockClock,
) -> None:
    events: Events = []
    async with run_cqg_simulator([alice()]) as second:
        target = second.url
        async with run_cqg_simulator([alice(redirect_to=target)]) as first:
            async with open_session(cqg_config(first.url, "alice"),
                                    **session_kwargs(events)) as session:
                await session.wait_authenticated()
                await second_sim_has_session(second)
            assert first.stats.logon_results == [106]
            assert second.stats.logon_results == [0]
    redirect = next(e for e in events if e["event"] == "transition" and e["error_code"] == 106)
    assert redirect["reason"] == "redirected" and target in redirect["detail"]


async def second_sim_has_session(sim: CqgSimulator) -> None:
    assert sim.live_connections("alice") == 1


async def test_a_redirect_to_a_host_outside_the_allow_list_is_refused(
    clock: trio.testing.MockClock,
) -> None:
    async with run_cqg_simulator([alice(redirect_to="wss://elsewhere.example.com/")]) as sim:
        async with open_session(cqg_config(sim.url, "alice"), **session_kwargs([])) as session:
            with pytest.raises(LoginFailed) as caught:
                await session.wait_authenticated()
    assert caught.value.reason == "redirect_refused"
    assert "elsewhere.example.com" in str(caught.value)


async def test_logged_off_with_a_redirect_logs_on_at_the_new_server(
    clock: trio.testing.MockClock,
) -> None:
    async with run_cqg_simulator([alice()]) as second, run_cqg_simulator([alice()]) as first:
        async with open_session(cqg_config(first.url, "alice"), **session_kwargs([])) as session:
            await session.wait_authenticated()
            await trio.sleep(10)  # past the logon spacing (5 s)
            await first.log_off("alice", 2, "maintenance", redirect_url=second.url)
            await until(session, lambda: second.stats.logons_ok == 1
                        and session.state == "authenticated")
            assert session.outcome()["logons"] == 2


# --- restore ------------------------------------------------------------------------------------


async def test_every_drop_ends_in_a_restore_and_there_is_one_logon_overall(
    clock: trio.testing.MockClock,
) -> None:
    events: Events = []
    async with run_cqg_simulator([alice()]) as sim:
        async with open_session(cqg_config(sim.url, "alice"), **session_kwargs(events)) as s:
            await s.wait_authenticated()
            for n in range(1, 6):
                await trio.sleep(15)  # the session settles: the next restore is immediate
                async with watching(s, "restored") as restored:
                    assert await sim.drop("alice") == 1
                    await until(s, lambda: bool(restored))
                assert s.state == "authenticated"
                assert restored[0].data == {"restores": n}
            assert s.outcome()["restores"] == 5 and s.outcome()["logons"] == 1
        assert sim.stats.logons_ok == 1 and sim.stats.restores_ok == 5
        assert sim.stats.violations == []
    restores = [(t, a, b) for t, a, b in transitions(events) if "restoring" in (a, b)]
    assert restores.count(("closed", "authenticated", "restoring")) == 5
    assert restores.count(("restore_result", "restoring", "authenticated")) == 5


async def test_drops_in_quick_succession_restore_through_backoff(
    clock: trio.testing.MockClock,
) -> None:
    async with run_cqg_simulator([alice()]) as sim:
        async with open_session(cqg_config(sim.url, "alice"), **session_kwargs([])) as s:
            await s.wait_authenticated()
            for _ in range(3):
                await trio.sleep(1)
                await sim.drop("alice")
                await until(s, lambda: s.state == "authenticated" and sim.live_connections("alice"))
            assert s.outcome()["logons"] == 1
        assert sim.stats.logons_ok == 1 and sim.stats.restores_ok == 3


async def test_a_session_the_server_forgot_is_logged_on_afresh(
    clock: trio.testing.MockClock,
) -> None:
    async with run_cqg_simulator([alice()]) as sim:
        async with open_session(cqg_config(sim.url, "alice"), **session_kwargs([])) as s:
            await s.wait_authenticated()
            await trio.sleep(15)
            async with watching(s, "new_session") as renewed:
                sim.expire_sessions("alice")
                await sim.drop("alice")
                await until(s, lambda: bool(renewed))
            assert s.state == "authenticated"
            assert s.outcome()["logons"] == 2 and s.outcome()["restores"] == 0
        assert sim.stats.restore_results == [101]
        assert sim.stats.logons_ok == 2


async def test_outside_the_server_lifetime_the_restore_is_refused_then_logon(
    clock: trio.testing.MockClock,
) -> None:
    async with run_cqg_simulator([alice()], session_lifetime=2.0) as sim:
        config = cqg_config(sim.url, "alice", connect_timeout=5.0)
        async with open_session(config, **session_kwargs([])) as s:
            await s.wait_authenticated()
            await trio.sleep(15)
            await sim.silence("alice")  # half-open: only the missing Pong tells
            await until(s, lambda: s.outcome()["logons"] == 2 and s.state == "authenticated")
        assert sim.stats.logons_ok == 2


async def test_no_pong_means_a_dead_connection_and_a_restore(
    clock: trio.testing.MockClock,
) -> None:
    async with run_cqg_simulator([alice(ignore_pings=True)]) as sim:
        async with open_session(cqg_config(sim.url, "alice"), **session_kwargs([])) as s:
            await s.wait_authenticated()
            await until(s, lambda: s.outcome()["restores"] >= 1 and s.state == "authenticated")
            assert s.outcome()["logons"] == 1
        assert sim.stats.restores_ok >= 1


async def test_a_second_connection_restoring_the_token_displaces_the_session(
    clock: trio.testing.MockClock,
) -> None:
    events: Events = []
    async with run_cqg_simulator([alice()]) as sim:
        async with open_session(cqg_config(sim.url, "alice"), **session_kwargs(events)) as s:
            await s.wait_authenticated()
            token = sim.session_token("alice")
            assert token is not None
            async with trio_websocket.open_websocket_url(sim.url) as other:
                msg = pb.ClientMsg()
                msg.restore_or_join_session.session_token = token
                msg.restore_or_join_session.client_app_id = "someone-else"
                await other.send_message(msg.SerializeToString())
                answer = pb.ServerMsg.FromString(await other.get_message())
                assert answer.restore_or_join_session_result.result_code == 0
                await until(s, lambda: s.state == "displaced")
                with pytest.raises(Displaced):
                    await s.wait_authenticated()
                await trio.sleep(120)
                assert s.state == "displaced"  # no restore fights back
    assert token not in audit_text(events)


async def test_forced_logoff_fails_the_session(clock: trio.testing.MockClock) -> None:
    async with run_cqg_simulator([alice()]) as sim:
        async with open_session(cqg_config(sim.url, "alice"), **session_kwargs([])) as s:
            await s.wait_authenticated()
            await sim.log_off("alice", 3, "demo login expired")
            with pytest.raises(LoginFailed) as caught:
                await s.wait_authenticated()
    assert caught.value.reason == "forced_logoff" and "demo login expired" in str(caught.value)


# --- liveness, inactivity, messages -------------------------------------------------------------


async def test_server_pings_are_answered_with_echoed_pongs(
    clock: trio.testing.MockClock,
) -> None:
    async with run_cqg_simulator([alice(server_ping_interval=5.0)]) as sim:
        async with open_session(cqg_config(sim.url, "alice"), **session_kwargs([])) as s:
            await s.wait_authenticated()
            await trio.sleep(16)
        assert len(sim.stats.pongs) >= 3
        assert all(p.token == "WebAPI Server Heartbeat" for p in sim.stats.pongs)
        assert all(p.pong_utc_time >= p.ping_utc_time for p in sim.stats.pongs)


async def test_inactivity_logs_off_and_says_why(clock: trio.testing.MockClock) -> None:
    async with run_cqg_simulator([alice(inactivity_timeout=1)]) as sim:
        async with open_session(cqg_config(sim.url, "alice"), **session_kwargs([])) as s:
            await s.wait_authenticated()
            await trio.sleep(30)
            await s.send(UNKNOWN_FIELD)  # activity: the minute starts again
            notice = await next_notice(s, "inactivity_logoff")
            assert trio.current_time() >= 90
            assert "1 minutes" in notice.detail
            with pytest.raises(SessionClosed):
                await s.wait_authenticated()
            assert s.outcome()["reason"] == "inactivity_timeout"
        assert sim.stats.logoffs == 1


async def test_application_messages_pass_through_both_ways(
    clock: trio.testing.MockClock,
) -> None:
    async with run_cqg_simulator([alice()]) as sim:
        async with open_session(cqg_config(sim.url, "alice"), **session_kwargs([])) as s:
            await s.wait_authenticated()
            async with s.events() as events:
                await s.send(UNKNOWN_FIELD)
                async for event in events:
                    if isinstance(event, BrokerMessage):
                        break
            message = event.message
            assert isinstance(message, CqgServerMessage)
            assert message.raw == UNKNOWN_FIELD
        assert sim.stats.app_messages == [UNKNOWN_FIELD]


async def test_nothing_but_the_logon_goes_out_before_its_result(
    clock: trio.testing.MockClock,
) -> None:
    async with run_cqg_simulator([alice(logon_delay=5.0)]) as sim:
        async with open_session(cqg_config(sim.url, "alice"), **session_kwargs([])) as s:
            await until(s, lambda: s.state == "awaiting_login_response")
            with pytest.raises(NotAuthenticated):
                await s.send(UNKNOWN_FIELD)
            await s.wait_authenticated()
            with pytest.raises(InvalidMessage, match="logon is brokergate's"):
                await s.send(pb.ClientMsg(logon=pb.Logon(client_version="x")))
        assert sim.stats.violations == [] and sim.stats.app_messages == []


async def test_request_is_not_how_cqg_is_spoken(clock: trio.testing.MockClock) -> None:
    async with run_cqg_simulator([alice()]) as sim:
        async with open_session(cqg_config(sim.url, "alice"), **session_kwargs([])) as s:
            await s.wait_authenticated()
            with pytest.raises(TypeError, match=r"use session\.send"):
                await s.request(UNKNOWN_FIELD)
        assert sim.stats.app_messages == []


async def test_a_rate_limited_connection_is_restored(clock: trio.testing.MockClock) -> None:
    async with run_cqg_simulator([alice(rate_limit=3)]) as sim:
        async with open_session(cqg_config(sim.url, "alice"), **session_kwargs([])) as s:
            await s.wait_authenticated()
            await trio.sleep(15)
            async with watching(s, "user_message") as messages, watching(s, "restored") as done:
                for _ in range(5):
                    try:
                        await s.send(UNKNOWN_FIELD)
                    except NotAuthenticated:
                        break
                await until(s, lambda: bool(done))
            assert "Rate limit" in messages[0].detail
            assert s.outcome()["logons"] == 1


async def test_the_welcome_message_in_the_logon_frame_is_surfaced(
    clock: trio.testing.MockClock,
) -> None:
    events: Events = []
    async with run_cqg_simulator([alice(welcome_message="hello from CQG")]) as sim:
        async with open_session(cqg_config(sim.url, "alice"), **session_kwargs(events)) as s:
            async with s.events() as stream:
                async for event in stream:
                    if isinstance(event, Notice) and event.kind == "user_message":
                        break
            assert "hello from CQG" in event.detail
            await s.wait_authenticated()
    assert any(e["event"] == "notice" and e["kind"] == "user_message" for e in events)


async def test_a_connection_dropped_mid_logon_is_retried(clock: trio.testing.MockClock) -> None:
    async with run_cqg_simulator([alice(drop_mid_logon=1)]) as sim:
        async with open_session(cqg_config(sim.url, "alice"), **session_kwargs([])) as s:
            await s.wait_authenticated()
        assert len(sim.stats.logon_requests) == 2 and sim.stats.logons_ok == 1


async def test_no_secret_reaches_the_audit_trail(clock: trio.testing.MockClock) -> None:
    events: Events = []
    async with run_cqg_simulator([alice()]) as sim:
        async with open_session(cqg_config(sim.url, "alice"), **session_kwargs(events)) as s:
            await s.wait_authenticated()
            token = sim.session_token("alice")
            await trio.sleep(15)
            await sim.drop("alice")
            await until(s, lambda: s.outcome()["restores"] == 1)
            assert token is not None and token not in repr(s) + str(s.outcome())
    text = audit_text(events)
    assert token not in text and "alice-pw" not in text
    assert any(isinstance(e, dict) and e.get("dst") == "restoring" for e in events)

