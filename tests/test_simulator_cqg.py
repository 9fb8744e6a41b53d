"""The CQG simulator, driven by a bare client (trio-websocket + protobuf, see cqg_raw.py)."""

from __future__ import annotations

import pyotp
import pytest
import trio
import trio.testing
import trio_websocket
from cqg_raw import APP_ID, JOIN, connect, logoff, logon, ping, restore

from brokergate.cqg import pb
from brokergate.simulators.cqg import (
    DEMO_OTP_SEED,
    CqgAccount,
    CqgSimulator,
    demo_accounts,
    run_cqg_simulator,
)
from brokergate.simulators.cqg.accounts import derived_user_id
from brokergate.simulators.cqg.frames import HEARTBEAT_TOKEN

ALICE = CqgAccount("alice", "alice-pw", inactivity_timeout=30)

#: A ClientMsg field our schema does not declare: tag 1 (information_requests), length 2,
#: holding "field 1 = 1". It must travel through the simulator untouched.
UNKNOWN_FIELD = bytes.fromhex("0a020801")


# -- successful logons ----------------------------------------------------------------------------


async def test_logon_result_carries_the_session(clock: trio.testing.MockClock) -> None:
    async with run_cqg_simulator([ALICE]) as sim, connect(sim) as client:
        result = await client.logon()
        assert result.result_code == 0
        assert result.base_time == "2026-11-21T00:00:00"
        assert len(result.session_token) >= 20
        assert (result.protocol_version_major, result.protocol_version_minor) == (2, 230)
        assert result.user_id == derived_user_id("alice") == ALICE.user_id
        assert result.HasField("server_time")
        assert result.server_time == 0
        assert result.inactivity_timeout == 30
        assert not result.HasField("text_message")
        assert sim.session_token("alice") == result.session_token
        assert sim.live_connections("alice") == 1
    assert sim.stats.logons_ok == 1
    assert sim.stats.logon_results == [0]
    (seen,) = sim.stats.logon_requests
    assert (seen.user_name, seen.client_app_id) == ("alice", APP_ID)
    assert list(seen.session_settings) == [1]
    assert sim.stats.violations == []


async def test_user_ids_are_stable_and_inactivity_timeout_is_optional(
    clock: trio.testing.MockClock,
) -> None:
    # Fixed value: Python's salted hash() would change from one process to the next.
    assert derived_user_id("alice") == 735577802
    bob = CqgAccount("bob", "bob-pw", user_id=42)
    async with run_cqg_simulator([bob]) as sim, connect(sim) as client:
        result = await client.logon(logon("bob"))
    assert result.user_id == 42
    assert not result.HasField("inactivity_timeout")


async def test_welcome_message_comes_in_the_logon_result_frame(
    clock: trio.testing.MockClock,
) -> None:
    account = CqgAccount("alice", "alice-pw", welcome_message="Hello from CQG")
    async with run_cqg_simulator([account]) as sim, connect(sim) as client:
        await client.send(logon())
        frame = await client.recv()
    assert frame.logon_result.result_code == 0
    (message,) = frame.user_messages
    assert (message.message_type, message.source, message.text) == (3, "WebAPI", "Hello from CQG")
    assert sim.stats.user_messages_sent == 1


# -- refused logons -------------------------------------------------------------------------------


@pytest.mark.parametrize("code", [104, 105, 107, 999])
async def test_scripted_logon_result(code: int, clock: trio.testing.MockClock) -> None:
    account = CqgAccount("bob", "bob-pw", logon_result=code, logon_result_times=2)
    async with run_cqg_simulator([account]) as sim, connect(sim) as client:
        codes = []
        for _ in range(3):  # a refused logon leaves the connection open for another try
            result = await client.logon(logon("bob"))
            codes.append(result.result_code)
            if result.result_code:
                assert result.text_message
                assert not result.HasField("session_token")
        assert codes == [code, code, 0]
    assert sim.stats.logon_results == [code, code, 0]


async def test_logon_result_without_times_is_forever(clock: trio.testing.MockClock) -> None:
    account = CqgAccount("bob", "bob-pw", logon_result=105)
    async with run_cqg_simulator([account]) as sim:
        for _ in range(3):
            async with connect(sim) as client:
                assert (await client.logon(logon("bob"))).result_code == 105
    assert sim.stats.logons_ok == 0


@pytest.mark.parametrize(
    ("msg", "text"),
    [
        (logon("mallory"), "unknown user name or wrong password"),
        (logon(password="wrong"), "unknown user name or wrong password"),
        (logon(password=None), "unknown user name or wrong password"),
        (logon(version=None), "client_version is required"),
        (logon(app=None), "client_app_id is required"),
        (logon(app="stranger"), "unknown client_app_id 'stranger'"),
        (logon(None), "user_name and password (or access_token) are required"),
        (logon(partner_token="p"), "partner_token logons are not supported by the simulator"),
    ],
    ids=["unknown-user", "wrong-password", "no-password", "no-version", "no-app", "stranger-app",
         "no-user", "partner-token"],
)
async def test_logon_validation_is_101(
    msg: pb.ClientMsg, text: str, clock: trio.testing.MockClock
) -> None:
    async with run_cqg_simulator([ALICE], client_app_ids=[APP_ID]) as sim, connect(sim) as client:
        result = await client.logon(msg)
        assert (result.result_code, result.text_message) == (101, text)
        assert result.base_time
        assert (result.protocol_version_major, result.protocol_version_minor) == (2, 230)
        # The connection is still usable: log on properly on it.
        assert (await client.logon()).result_code == 0
    assert sim.stats.logon_results == [101, 0]
    assert len(sim.stats.logon_requests) == 2
    assert sim.stats.violations == []


async def test_one_time_password_required_then_checked(clock: trio.testing.MockClock) -> None:
    account = CqgAccount("olga", "olga-pw", otp_seed=DEMO_OTP_SEED)
    async with run_cqg_simulator([account]) as sim, connect(sim) as client:
        result = await client.logon(logon("olga"))
        assert (result.result_code, result.text_message) == (103, "One-time password required")
        result = await client.logon(logon("olga", one_time_password="abcdef"))
        assert (result.result_code, result.text_message) == (101, "wrong one-time password")
        code = pyotp.TOTP(DEMO_OTP_SEED).now()
        assert (await client.logon(logon("olga", one_time_password=code))).result_code == 0
    assert sim.stats.logon_results == [103, 101, 0]
    assert sim.stats.logon_requests[2].one_time_password == code


async def test_access_tokens(clock: trio.testing.MockClock) -> None:
    bob = CqgAccount(
        "bob",
        "bob-pw",
        otp_seed=DEMO_OTP_SEED,  # token logons need no one-time password
        access_tokens=frozenset({"good"}),
        expired_tokens=frozenset({"old"}),
    )
    async with run_cqg_simulator([ALICE, bob]) as sim, connect(sim) as client:
        by_token = logon(None, app=None, access_token="old")
        assert (await client.logon(by_token)).result_code == 108
        by_token.logon.access_token = "nobody's"
        result = await client.logon(by_token)
        assert (result.result_code, result.text_message) == (101, "unknown access token")
        mixed = logon("bob", access_token="good")
        assert (await client.logon(mixed)).result_code == 101
        by_token.logon.access_token = "good"
        result = await client.logon(by_token)
        assert (result.result_code, result.user_id) == (0, bob.user_id)
        assert sim.session_token("bob") == result.session_token
    assert sim.stats.logon_results == [108, 101, 101, 0]


async def test_redirect_then_logon(clock: trio.testing.MockClock) -> None:
    account = CqgAccount("bob", "bob-pw", redirect_to="wss://elsewhere.invalid/", redirect_times=2)
    async with run_cqg_simulator([account]) as sim, connect(sim) as client:
        # A wrong password is refused before any redirect is spent.
        assert (await client.logon(logon("bob", "wrong"))).result_code == 101
        for _ in range(2):
            result = await client.logon(logon("bob"))
            assert (result.result_code, result.redirect_url) == (106, "wss://elsewhere.invalid/")
        assert (await client.logon(logon("bob"))).result_code == 0
    assert sim.stats.logon_results == [101, 106, 106, 0]


async def test_logon_delay_and_drop_mid_logon(clock: trio.testing.MockClock) -> None:
    account = CqgAccount("dan", "dan-pw", logon_delay=4.0, drop_mid_logon=1)
    async with run_cqg_simulator([account]) as sim:
        async with connect(sim) as client:
            await client.send(logon("dan"))
            assert await client.close_code() == 1006
        async with connect(sim) as client:
            start = trio.current_time()
            assert (await client.logon(logon("dan"))).result_code == 0
            assert trio.current_time() - start == pytest.approx(4.0)
    assert sim.stats.logon_results == [0]
    assert sim.stats.violations == []


def test_accounts_are_checked() -> None:
    with pytest.raises(ValueError, match="logon_result=0"):
        CqgAccount("a", "p", logon_result=0)
    with pytest.raises(ValueError, match="base32"):
        CqgAccount("a", "p", otp_seed="not base32!")
    with pytest.raises(ValueError, match="both valid and expired"):
        CqgAccount("a", "p", access_tokens=frozenset({"t"}), expired_tokens=frozenset({"t"}))
    with pytest.raises(ValueError, match="rate_limit"):
        CqgAccount("a", "p", rate_limit=0)


# -- concurrent sessions --------------------------------------------------------------------------


async def test_concurrent_session_refused_or_dropped(clock: trio.testing.MockClock) -> None:
    async with run_cqg_simulator([ALICE]) as sim, connect(sim) as first:
        old_token = (await first.logon()).session_token
        async with connect(sim) as second:
            result = await second.logon(logon(drop_concurrent_session=False))
            assert (result.result_code, result.text_message) == (
                105,
                "Concurrent session: the user is already logged on and drop was not requested",
            )
        async with connect(sim) as third:
            result = await third.logon()  # drop_concurrent_session omitted: drop the old one
            assert result.result_code == 0
            assert result.session_token != old_token
            frame = await first.recv()
            assert frame.logged_off.logoff_reason == 3
            assert frame.logged_off.text_message
            assert await first.close_code() == 1000
            assert sim.session_token("alice") == result.session_token
            assert sim.live_connections("alice") == 1
        async with connect(sim) as fourth:
            assert (await fourth.restore(old_token)).result_code == 101
    assert sim.stats.logon_results == [0, 105, 0]
    assert sim.stats.logged_off_reasons == [3]


# -- the first-message rule -----------------------------------------------------------------------


async def test_first_message_must_be_logon_or_restore(clock: trio.testing.MockClock) -> None:
    async with run_cqg_simulator([ALICE]) as sim:
        async with connect(sim) as client:
            await client.send(ping())
            assert await client.close_code() == 1008
        async with connect(sim) as client:
            await client.send(b"\xff\xff\xff")
            assert await client.close_code() == 1008
        async with connect(sim) as client:
            await client.send("logon please")
            assert await client.close_code() == 1003
        async with connect(sim) as client:  # a Logon, but not alone
            await client.send(logon().SerializeToString() + UNKNOWN_FIELD)
            assert await client.close_code() == 1008
    assert sim.stats.violations == [
        "connection 1 (no logon yet): the first message was a ClientMsg with ping,"
        " not a Logon or RestoreOrJoinSession alone",
        "connection 2 (no logon yet): 3 bytes that do not parse as a ClientMsg",
        "connection 3 (no logon yet): a text frame (12 characters); CQG takes binary frames only",
        "connection 4 (no logon yet): the first message was a ClientMsg with logon and 4 bytes"
        " of application fields, not a Logon or RestoreOrJoinSession alone",
    ]
    assert sim.stats.logon_requests == []


async def test_message_before_the_logon_result_is_a_violation(
    clock: trio.testing.MockClock,
) -> None:
    account = CqgAccount("alice", "alice-pw", logon_delay=5.0)
    async with run_cqg_simulator([account]) as sim, connect(sim) as client:
        await client.send(logon())
        await client.send(ping())
        assert await client.close_code() == 1008
    assert sim.stats.violations == [
        "user 'alice': a ClientMsg with ping arrived before the LogonResult"
    ]
    assert sim.stats.logons_ok == 0


async def test_second_restore_before_the_result_is_a_violation(
    clock: trio.testing.MockClock,
) -> None:
    async with run_cqg_simulator([ALICE]) as sim, connect(sim) as client:
        await client.send(restore("whatever"))
        await client.send(restore("whatever"))
        assert await client.close_code() == 1008
    assert sim.stats.violations == [
        "connection 1 (no logon yet): a ClientMsg with restore_or_join_session arrived before"
        " the RestoreOrJoinSessionResult"
    ]


async def test_message_pipelined_right_behind_the_logon_is_caught() -> None:
    # Real time, no logon_delay: the settle delay alone catches a client that does not wait.
    async with run_cqg_simulator([ALICE]) as sim, connect(sim) as client:
        await client.send(logon())
        await client.send(ping())
        assert await client.close_code() == 1008
    assert len(sim.stats.violations) == 1


async def test_second_logon_on_an_established_connection(clock: trio.testing.MockClock) -> None:
    async with run_cqg_simulator([ALICE]) as sim, connect(sim) as client:
        token = (await client.logon()).session_token
        await client.send(logon())
        assert await client.close_code() == 1008
        # Only the connection is gone: the session waits for a restore.
        assert sim.session_token("alice") == token
    assert sim.stats.violations == [
        "user 'alice': a ClientMsg with logon on an established connection"
    ]


# -- restore --------------------------------------------------------------------------------------


async def test_restore_reassigns_a_live_session(clock: trio.testing.MockClock) -> None:
    async with run_cqg_simulator([ALICE]) as sim, connect(sim) as first:
        token = (await first.logon()).session_token
        await trio.sleep(30)
        async with connect(sim) as second:
            result = await second.restore(token)
            assert (result.result_code, result.base_time) == (0, "2026-11-21T00:00:00")
            assert result.server_time == pytest.approx(30_000, abs=50)
            assert result.inactivity_timeout == 30
            frame = await first.recv()
            assert frame.logged_off.logoff_reason == 4
            assert await first.close_code() == 1000
            assert sim.live_connections("alice") == 1
            await second.send(ping())  # the restored connection is established
            assert (await second.recv()).HasField("pong")
    assert sim.stats.restore_results == [0]
    assert sim.stats.restores_ok == 1
    (seen,) = sim.stats.restore_requests
    assert (seen.session_token, seen.client_app_id) == (token, APP_ID)
    assert sim.stats.logged_off_reasons == [4]


async def test_restore_within_the_lifetime_after_a_drop(clock: trio.testing.MockClock) -> None:
    async with run_cqg_simulator([ALICE], session_lifetime=60.0) as sim:
        async with connect(sim) as client:
            token = (await client.logon()).session_token
            assert await sim.drop("alice") == 1
            assert await client.close_code() == 1006
        assert sim.live_connections("alice") == 0
        await trio.sleep(59)
        async with connect(sim) as client:
            assert (await client.restore(token)).result_code == 0
            assert sim.live_connections("alice") == 1
            assert await sim.drop("alice") == 1
        await trio.sleep(61)
        assert sim.session_token("alice") is None
        async with connect(sim) as client:
            result = await client.restore(token)
            assert result.result_code == 101
            assert result.text_message == "unknown session: log on again"
            assert (await client.logon()).result_code == 0  # a full logon on the same connection
    assert sim.stats.restore_results == [0, 101]


async def test_restore_needs_allow_session_restore(clock: trio.testing.MockClock) -> None:
    async with run_cqg_simulator([ALICE]) as sim:
        async with connect(sim) as first:
            token = (await first.logon(logon(settings=()))).session_token
            async with connect(sim) as second:
                assert (await second.restore(token)).result_code == 102
            await first.send(ping())  # untouched by the refused restore
            assert (await first.recv()).HasField("pong")
        # Without the setting, losing the connection ended the session.
        async with connect(sim) as client:
            assert (await client.restore(token)).result_code == 101
        assert sim.session_token("alice") is None
    assert sim.stats.restore_results == [102, 101]


async def test_restore_needs_client_app_id(clock: trio.testing.MockClock) -> None:
    async with run_cqg_simulator([ALICE]) as sim, connect(sim) as client:
        token = (await client.logon()).session_token
        async with connect(sim) as other:
            assert (await other.restore(token, app=None)).result_code == 103
            assert (await other.restore("")).result_code == 103
    assert sim.stats.restore_results == [103, 103]


async def test_join_keeps_both_connections(clock: trio.testing.MockClock) -> None:
    async with run_cqg_simulator([ALICE]) as sim, connect(sim) as first:
        token = (await first.logon(logon(settings=(JOIN,)))).session_token
        async with connect(sim) as second:
            assert (await second.restore(token, app="other-app")).result_code == 0
            (join,) = (await first.recv()).concurrent_connection_join_results
            assert join.is_same_app_type is False
            assert sim.live_connections("alice") == 2
            await first.send(ping())
            assert (await first.recv()).HasField("pong")
    assert sim.stats.logged_off_reasons == []


async def test_expired_sessions_cannot_be_restored(clock: trio.testing.MockClock) -> None:
    async with run_cqg_simulator([ALICE]) as sim:
        async with connect(sim) as client:
            token = (await client.logon()).session_token
            assert sim.expire_sessions("alice") == 1
            assert sim.session_token("alice") is None
            # The connection still carries the forgotten session, and the controls reach it.
            assert sim.live_connections("alice") == 1
            assert await sim.drop("alice") == 1
            assert await client.close_code() == 1006
        async with connect(sim) as client:
            assert (await client.restore(token)).result_code == 101
        assert sim.expire_sessions("alice") == 0


# -- logoff, pings, rate limit --------------------------------------------------------------------


async def test_logoff_ends_the_session(clock: trio.testing.MockClock) -> None:
    async with run_cqg_simulator([ALICE]) as sim:
        async with connect(sim) as client:
            token = (await client.logon()).session_token
            await client.send(logoff("bye"))
            frame = await client.recv()
            assert frame.logged_off.logoff_reason == 1
            assert await client.close_code() == 1000
        async with connect(sim) as client:
            assert (await client.restore(token)).result_code == 101
    assert sim.stats.logoffs == 1
    assert sim.stats.logged_off_reasons == [1]


async def test_client_ping_gets_an_echoing_pong(clock: trio.testing.MockClock) -> None:
    async with run_cqg_simulator([ALICE]) as sim, connect(sim) as client:
        await client.logon()
        await trio.sleep(2.5)
        await client.send(ping("my-token", 123456))
        pong = (await client.recv()).pong
    assert (pong.token, pong.ping_utc_time) == ("my-token", 123456)
    assert pong.pong_utc_time == pytest.approx(2500, abs=50)


async def test_ignore_pings(clock: trio.testing.MockClock) -> None:
    account = CqgAccount("deaf", "deaf-pw", ignore_pings=True)
    async with run_cqg_simulator([account]) as sim, connect(sim) as client:
        await client.logon(logon("deaf"))
        await client.send(ping())
        with trio.move_on_after(30) as waited:
            await client.raw()
        assert waited.cancelled_caught


async def test_server_pings_and_pongs_are_recorded(clock: trio.testing.MockClock) -> None:
    account = CqgAccount("pat", "pat-pw", server_ping_interval=5.0)
    async with run_cqg_simulator([account]) as sim, connect(sim) as client:
        await client.logon(logon("pat"))
        start = trio.current_time()
        times = []
        for _ in range(2):
            server_ping = (await client.recv()).ping
            times.append(trio.current_time() - start)
            assert server_ping.token == HEARTBEAT_TOKEN
            pong = pb.Pong(
                token=server_ping.token, ping_utc_time=server_ping.ping_utc_time, pong_utc_time=7
            )
            await client.send(pb.ClientMsg(pong=pong))
        await trio.sleep(1)
    assert times == [pytest.approx(5.0, abs=0.05), pytest.approx(10.0, abs=0.05)]
    assert sim.stats.pings_sent == 2
    assert [p.ping_utc_time for p in sim.stats.pongs] == [
        pytest.approx(5000, abs=50),
        pytest.approx(10000, abs=50),
    ]
    assert sim.stats.pongs[0].token == HEARTBEAT_TOKEN


async def test_rate_limit_closes_the_connection_not_the_session(
    clock: trio.testing.MockClock,
) -> None:
    account = CqgAccount("chatty", "chatty-pw", rate_limit=3)
    async with run_cqg_simulator([account]) as sim:
        async with connect(sim) as client:
            token = (await client.logon(logon("chatty"))).session_token
            for n in range(4):
                await client.send(ping(when=n))
            for n in range(3):
                assert (await client.recv()).pong.ping_utc_time == n
            (notice,) = (await client.recv()).user_messages
            assert (notice.message_type, notice.source) == (1, "WebAPI")
            assert notice.subject == "Rate limit"
            assert "3 client messages" in notice.text
            assert await client.close_code() == 1008
        async with connect(sim) as client:
            assert (await client.restore(token)).result_code == 0
            await trio.sleep(10)  # a new connection, a new window
            for n in range(3):
                await client.send(ping(when=n))
                assert (await client.recv()).HasField("pong")
    assert sim.stats.rate_limited == 1
    assert sim.stats.user_messages_sent == 1
    assert sim.stats.violations == []


# -- application traffic --------------------------------------------------------------------------


async def test_application_messages_are_echoed_byte_for_byte(
    clock: trio.testing.MockClock,
) -> None:
    async with run_cqg_simulator([ALICE]) as sim, connect(sim) as client:
        await client.logon()
        await client.send(UNKNOWN_FIELD)
        echoed = await client.raw()
        assert echoed == UNKNOWN_FIELD
        assert isinstance(echoed, bytes)
        assert pb.ServerMsg.FromString(echoed).ListFields() == []
        # Mixed with a session field: recorded, but only the session part is answered.
        mixed = ping().SerializeToString() + UNKNOWN_FIELD
        await client.send(mixed)
        assert (await client.recv()).HasField("pong")
        await client.send(UNKNOWN_FIELD + UNKNOWN_FIELD)
        assert await client.raw() == UNKNOWN_FIELD + UNKNOWN_FIELD
    assert sim.stats.app_messages == [UNKNOWN_FIELD, mixed, UNKNOWN_FIELD + UNKNOWN_FIELD]


async def test_echo_can_be_switched_off(clock: trio.testing.MockClock) -> None:
    async with run_cqg_simulator([ALICE], echo_application=False) as sim, connect(sim) as client:
        await client.logon()
        await client.send(UNKNOWN_FIELD)
        await client.send(ping())
        assert (await client.recv()).HasField("pong")
    assert sim.stats.app_messages == [UNKNOWN_FIELD]


async def test_other_session_requests_get_answers(clock: trio.testing.MockClock) -> None:
    async with run_cqg_simulator([ALICE]) as sim, connect(sim) as client:
        await client.logon()
        msg = pb.ClientMsg()
        msg.set_collapsing_level_request.max_collapsing_level = 1
        await client.send(msg)
        (result,) = (await client.recv()).set_collapsing_level_results
        assert (result.result_code, result.max_collapsing_level) == (0, 1)
        msg = pb.ClientMsg(password_change=pb.PasswordChange(old_password="a", new_password="b"))
        await client.send(msg)
        assert (await client.recv()).password_change_result.result_code == 101
    assert sim.stats.app_messages == []


# -- server-side events ---------------------------------------------------------------------------


async def test_log_off_with_redirect(clock: trio.testing.MockClock) -> None:
    async with run_cqg_simulator([ALICE]) as sim:
        async with connect(sim) as client:
            token = (await client.logon()).session_token
            count = await sim.log_off("alice", 2, "moving", redirect_url="wss://next.invalid/")
            assert count == 1
            logged_off = (await client.recv()).logged_off
            assert (logged_off.logoff_reason, logged_off.text_message, logged_off.redirect_url) == (
                2,
                "moving",
                "wss://next.invalid/",
            )
            assert await client.close_code() == 1000
        async with connect(sim) as client:
            assert (await client.restore(token)).result_code == 101
        assert await sim.log_off("alice", 3) == 0
    assert sim.stats.logged_off_reasons == [2]


async def test_silence_leaves_a_half_open_connection(clock: trio.testing.MockClock) -> None:
    async with run_cqg_simulator([ALICE]) as sim:
        # Closing a connection to a silent server times out: nobody answers the close frame.
        with pytest.raises(trio_websocket.DisconnectionTimeout):
            async with connect(sim) as client:
                token = (await client.logon()).session_token
                assert await sim.silence("alice") == 1
                assert sim.live_connections("alice") == 0
                await client.send(ping())
                with trio.move_on_after(30) as waited:
                    await client.raw()
                assert waited.cancelled_caught  # no answer, and no close either
                async with connect(sim) as other:  # the session waits for a restore
                    assert (await other.restore(token)).result_code == 0
                # The silenced connection was not told anything.
                with trio.move_on_after(5) as waited:
                    await client.raw()
                assert waited.cancelled_caught
    assert sim.stats.logged_off_reasons == []


async def test_user_messages_and_raw_frames(clock: trio.testing.MockClock) -> None:
    async with run_cqg_simulator([ALICE]) as sim:
        assert await sim.send_user_message("alice", "nobody listening") == 0
        async with connect(sim) as client:
            await client.logon()
            assert await sim.send_user_message("alice", "maintenance at 22:00", 2, "Notice") == 1
            (message,) = (await client.recv()).user_messages
            assert (message.message_type, message.subject, message.text) == (
                2,
                "Notice",
                "maintenance at 22:00",
            )
            assert await sim.send_raw("alice", b"\x00garbage") == 1
            assert await client.raw() == b"\x00garbage"
    assert sim.stats.user_messages_sent == 1


# -- robustness and the rest ----------------------------------------------------------------------


async def test_survives_clients_that_vanish(clock: trio.testing.MockClock) -> None:
    slow = CqgAccount("alice", "alice-pw", logon_delay=3.0, server_ping_interval=1.0)
    async with run_cqg_simulator([slow]) as sim:
        stream = await trio.open_tcp_stream(sim.host, sim.port)
        await stream.send_all(b"NOT HTTP AT ALL\r\n\r\n")
        await trio.aclose_forcefully(stream)
        await trio.aclose_forcefully(await trio.open_tcp_stream(sim.host, sim.port))
        async with connect(sim) as client:  # gone in the middle of a logon
            await client.send(logon())
        async with connect(sim) as client:  # gone with server pings running
            token = (await client.logon()).session_token
        await trio.sleep(20)
        async with connect(sim) as client:
            assert (await client.restore(token)).result_code == 0
            assert (await client.recv()).HasField("ping")
    assert sim.stats.violations == []


async def test_serve_reports_its_url(clock: trio.testing.MockClock) -> None:
    sim = CqgSimulator()
    with pytest.raises(RuntimeError):
        _ = sim.url
    async with trio.open_nursery() as nursery:
        started = await nursery.start(sim.serve)
        assert started is sim
        assert sim.url == f"ws://127.0.0.1:{sim.port}/"
        nursery.cancel_scope.cancel()
    assert sim.port == 0


async def test_demo_accounts_behave_as_documented(clock: trio.testing.MockClock) -> None:
    assert "redirected" not in {a.user_name for a in demo_accounts()}
    async with run_cqg_simulator() as sim:
        for account in demo_accounts(redirect_url=sim.url):
            sim.add_account(account)
        expected = {"alice": 0, "otp": 103, "expired": 104, "concurrent": 105,
                    "redirected": 106, "routine": 107, "mystery": 999, "pinger": 0}
        for user, code in expected.items():
            async with connect(sim) as client:
                result = await client.logon(logon(user))
                assert result.result_code == code, user
                if user == "redirected":
                    assert result.redirect_url == sim.url
        async with connect(sim) as client:
            by_token = logon(None, access_token="demo-access-token")
            assert (await client.logon(by_token)).result_code == 0
        async with connect(sim) as client:
            code = pyotp.TOTP(DEMO_OTP_SEED).now()
            assert (await client.logon(logon("otp", one_time_password=code))).result_code == 0
    assert sim.stats.violations == []
