"""QST end to end: the engine against the QST simulator over real loopback WebSockets."""

from __future__ import annotations

import itertools
from typing import Any

import pytest
import trio
import trio.testing
from helpers import qst_config, session_kwargs, states, transitions

from brokergate import (
    Backoff,
    BrokerMessage,
    Coalescing,
    ConnectionLost,
    Displaced,
    GaveUp,
    LockedOut,
    LoginFailed,
    NotAuthenticated,
    Notice,
    ProvisioningRequired,
    RequestFailed,
    SessionClosed,
    Transitioned,
    open_session,
)
from brokergate.qst import pb
from brokergate.simulators.qst import QstAccount, QstSimulator, run_qst_simulator
from brokergate.simulators.qst import frames as qst_frames

Events = list[dict[str, Any]]


def translate(*symbols: str) -> pb.TranslateInstrumentSymbolRequest:
    return pb.TranslateInstrumentSymbolRequest(symbol_source=1, instrument_symbols=symbols)


async def test_login_negotiates_coalescing_and_logs_out_cleanly() -> None:
    events: Events = []
    account = QstAccount("alice", "alice-pw", entitled_interval=pb._250_MS)
    async with run_qst_simulator([account]) as sim:
        config = qst_config(sim.url, "alice", coalescing_interval=Coalescing.MS_100,
                            coalesce_last_trade=True)
        async with open_session(config, **session_kwargs(events)) as session:
            await session.wait_authenticated()
            assert session.state == "authenticated"
            granted = session.outcome()["granted"]
            # Asked for 100 ms, entitled to 250 ms: the server grants the coarser.
            assert granted == {"coalescing_interval": "_250_MS", "coalesce_last_trade": True}
        assert session.state == "disconnected"
        assert session.outcome()["reason"] == "logged_out"
        assert session.outcome()["detail"] is None  # the broker confirmed the logout
        assert sim.stats.logouts == 1 and sim.stats.violations == []
    assert states(events) == ["connecting", "awaiting_login_response", "authenticated",
                              "logging_out", "disconnected"]
    sent = sim.stats.login_requests[0]
    assert sent.user_preferences.coalescing_interval == pb._100_MS


async def test_request_before_login_response_is_refused_and_nothing_is_sent(
    clock: trio.testing.MockClock,
) -> None:
    account = QstAccount("alice", "alice-pw", login_delay=2.0)
    async with run_qst_simulator([account]) as sim:
        async with open_session(qst_config(sim.url, "alice"), **session_kwargs([])) as session:
            for _ in range(3):
                with pytest.raises(NotAuthenticated, match="nothing was sent"):
                    await session.request(translate("ESZ6"))
                await trio.sleep(0.5)
            assert session.state == "awaiting_login_response"
            await session.wait_authenticated()
            answer = await session.request(translate("ESZ6"))
            assert answer.records[0].symbol == "ESZ6"
        assert sim.stats.violations == []
        assert sim.stats.requests == 1


async def test_responses_are_matched_by_request_id_out_of_order(
    clock: trio.testing.MockClock,
) -> None:
    account = QstAccount("alice", "alice-pw", translate_delays={"SLOW": 2.0, "FAST": 0.1})
    results: dict[str, Any] = {}
    async with run_qst_simulator([account]) as sim:
        async with open_session(qst_config(sim.url, "alice"), **session_kwargs([])) as session:
            await session.wait_authenticated()

            async def ask(first: str) -> None:
                results[first] = await session.request(translate(first, f"{first}2"))
                results[f"{first}-at"] = trio.current_time()

            async with trio.open_nursery() as nursery:
                nursery.start_soon(ask, "SLOW")
                await trio.sleep(0.01)
                nursery.start_soon(ask, "FAST")
        assert [r.symbol for r in results["SLOW"].records] == ["SLOW", "SLOW2"]
        assert [r.symbol for r in results["FAST"].records] == ["FAST", "FAST2"]
        assert results["FAST-at"] < results["SLOW-at"]  # the later request was answered first


async def test_unknown_symbol_comes_back_as_a_record_error() -> None:
    async with run_qst_simulator([QstAccount("alice", "alice-pw")]) as sim:
        async with open_session(qst_config(sim.url, "alice"), **session_kwargs([])) as session:
            await session.wait_authenticated()
            answer = await session.request(translate("BADSYM"))
            assert answer.records[0].error == "unknown symbol"


async def test_request_with_a_non_qst_message_is_a_type_error() -> None:
    async with run_qst_simulator([QstAccount("alice", "alice-pw")]) as sim:
        async with open_session(qst_config(sim.url, "alice"), **session_kwargs([])) as session:
            await session.wait_authenticated()
            with pytest.raises(TypeError, match="not a QST request"):
                await session.request(pb.LoginResponse())
            with pytest.raises(ValueError, match="sent by the session itself"):
                await session.request(pb.LogoutRequest())


async def test_provisioning_exposes_the_pending_agreements() -> None:
    account = QstAccount("pending", "pending-pw",
                         provisioning=[("t1", "CME agreement", "Please accept", "https://x/t1")])
    async with run_qst_simulator([account]) as sim:
        async with open_session(qst_config(sim.url, "pending"), **session_kwargs([])) as session:
            with pytest.raises(ProvisioningRequired) as info:
                await session.wait_authenticated()
        assert info.value.messages[0]["title"] == "CME agreement"
        assert "QST support" in str(info.value)
        assert sim.stats.provisioning == 1 and session.state == "provisioning"


@pytest.mark.parametrize(
    ("code", "reason", "error"),
    [
        (2, "second_factor_missing", LoginFailed),
        (3, "email_validation_pending", LoginFailed),
        (4, "second_factor_key_validation_pending", LoginFailed),
        (5, "account_locked", LockedOut),
        (42, "unknown_error", LoginFailed),
    ],
)
async def test_error_codes_end_the_session_without_retrying(
    code: int, reason: str, error: type[Exception]
) -> None:
    events: Events = []
    async with run_qst_simulator([QstAccount("bob", "bob-pw", error_code=code)]) as sim:
        async with open_session(qst_config(sim.url, "bob"), **session_kwargs(events)) as s:
            with pytest.raises(error) as info:
                await s.wait_authenticated()
        assert info.value.reason == reason  # type: ignore[attr-defined]
        assert sim.stats.logins_rejected == 1 and sim.stats.connections == 1
    assert events[-1]["error_code"] == code


async def test_wrong_password_is_never_retried_so_it_never_locks_the_account(
    clock: trio.testing.MockClock,
) -> None:
    account = QstAccount("carol", "right-pw", lockout_after=3)
    async with run_qst_simulator([account]) as sim:
        config = qst_config(sim.url, "carol", password="wrong-pw")
        async with open_session(config, **session_kwargs([])) as session:
            with pytest.raises(LoginFailed) as info:
                await session.wait_authenticated()
            await trio.sleep(120)  # long enough for any retry loop to show itself
        assert info.value.reason == "invalid_credentials"
        assert "fix the configuration" in str(info.value)
        assert sim.stats.wrong_passwords == {"carol": 1} and sim.stats.connections == 1


async def test_account_locked_by_earlier_failures_is_locked_out() -> None:
    account = QstAccount("dave", "right-pw", lockout_after=1)
    async with run_qst_simulator([account]) as sim:
        bad = qst_config(sim.url, "dave", password="wrong-pw")
        async with open_session(bad, **session_kwargs([])) as session:
            with pytest.raises(LoginFailed):
                await session.wait_authenticated()
        good = qst_config(sim.url, "dave", password="right-pw")
        async with open_session(good, **session_kwargs([])) as session:
            with pytest.raises(LockedOut, match="account_locked"):
                await session.wait_authenticated()
            assert session.state == "locked_out"


@pytest.mark.parametrize(("text", "reason"), [
    ("", "missing_mandatory_fields"),
])
async def test_mandatory_field_errors_are_classified_by_text(text: str, reason: str) -> None:
    # The engine refuses an empty client_id itself; the server's text rule is exercised with a
    # client_id the simulator does not know.
    sim = QstSimulator([QstAccount("erin", "erin-pw")], client_ids={"the-only-one"})
    async with trio.open_nursery() as nursery:
        await nursery.start(sim.serve)
        async with open_session(qst_config(sim.url, "erin"), **session_kwargs([])) as session:
            with pytest.raises(LoginFailed, match="unauthorized_client_id"):
                await session.wait_authenticated()
        nursery.cancel_scope.cancel()


async def test_invalid_config_never_connects() -> None:
    async with run_qst_simulator([QstAccount("alice", "alice-pw")]) as sim:
        config = qst_config(sim.url, "alice", password="")
        async with open_session(config, **session_kwargs([])) as session:
            with pytest.raises(LoginFailed, match=r"invalid_config.*password is missing"):
                await session.wait_authenticated()
        assert sim.stats.connections == 0


async def test_server_error_is_retried_with_backoff_then_succeeds(
    clock: trio.testing.MockClock,
) -> None:
    events: Events = []
    async with run_qst_simulator([QstAccount("flaky", "flaky-pw", server_errors=2)]) as sim:
        async with open_session(qst_config(sim.url, "flaky"), **session_kwargs(events)) as s:
            stream = s.events()
            await s.wait_authenticated()
            assert s.outcome()["attempts"] == 3
        assert sim.stats.logins_rejected == 2 and sim.stats.logins_ok == 1
    # A subscriber that joins right after open_session sees every transition, from the first.
    seen = [event.dst async for event in stream if isinstance(event, Transitioned)]
    assert seen == ["connecting", "awaiting_login_response", "backoff", "connecting",
                    "awaiting_login_response", "backoff", "connecting",
                    "awaiting_login_response", "authenticated", "logging_out", "disconnected"]
    backoffs = [e for e in events if e["event"] == "transition" and e["dst"] == "backoff"]
    assert [e["error_code"] for e in backoffs] == [6, 6]
    assert [e["reason"] for e in backoffs] == ["server_error", "server_error"]
    # Delays are drawn under a growing ceiling: [0, 0.5] then [0, 1.0].
    assert 0 <= backoffs[0]["delay"] <= 0.5 and 0 <= backoffs[1]["delay"] <= 1.0


async def test_backoff_waits_the_chosen_delays_in_virtual_time(
    clock: trio.testing.MockClock,
) -> None:
    events: Events = []
    async with run_qst_simulator([QstAccount("flaky", "flaky-pw", server_errors=3)]) as sim:
        config = qst_config(sim.url, "flaky", backoff=Backoff(initial=4, factor=2, cap=60,
                                                              max_attempts=10))
        async with open_session(config, **session_kwargs(events)) as s:
            seen: list[tuple[str, float]] = []

            async def watch() -> None:
                async for ev in s.events():
                    if getattr(ev, "dst", None) in ("backoff", "connecting"):
                        seen.append((ev.dst, trio.current_time()))  # type: ignore[union-attr]

            async with trio.open_nursery() as nursery:
                nursery.start_soon(watch)
                await s.wait_authenticated()
                nursery.cancel_scope.cancel()
    delays = [e["delay"] for e in events if e.get("dst") == "backoff"]
    assert len(delays) == 3 and sum(delays) > 1  # jitter drawn from [0,4], [0,8], [0,16]
    waits = [later[1] - now[1] for now, later in itertools.pairwise(seen)
             if now[0] == "backoff" and later[0] == "connecting"]
    assert waits == pytest.approx(delays, abs=0.05)


async def test_slow_login_response_times_out_and_gives_up(clock: trio.testing.MockClock) -> None:
    events: Events = []
    async with run_qst_simulator([QstAccount("busy", "busy-pw", login_delay=60)]) as sim:
        config = qst_config(sim.url, "busy", login_timeout=5,
                            backoff=Backoff(initial=1, max_attempts=3))
        start = trio.current_time()
        async with open_session(config, **session_kwargs(events)) as session:
            with pytest.raises(GaveUp, match=r"after 3 attempts.*login timeout after 5 s"):
                await session.wait_authenticated()
            elapsed = trio.current_time() - start
        assert sim.stats.connections == 3
    assert 15 <= elapsed <= 15 + 1 + 2  # three 5 s timeouts plus two jittered waits
    assert [e["reason"] for e in events if e.get("dst") == "backoff"] == ["timeout", "timeout"]


async def test_unreachable_broker_gives_up_after_max_attempts(
    clock: trio.testing.MockClock,
) -> None:
    with trio.socket.socket() as sock:  # a port nobody listens on
        await sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    config = qst_config(f"ws://127.0.0.1:{port}/", "alice",
                        backoff=Backoff(initial=1, max_attempts=4))
    async with open_session(config, **session_kwargs([])) as session:
        with pytest.raises(GaveUp) as info:
            await session.wait_authenticated()
    assert "connection refused" in str(info.value) and info.value.fault is not None


async def test_close_4101_displaced_is_not_fought(clock: trio.testing.MockClock) -> None:
    account = QstAccount("kicked", "kicked-pw", close_after_login=4101,
                         close_after_login_delay=1.0)
    async with run_qst_simulator([account]) as sim:
        async with open_session(qst_config(sim.url, "kicked"), **session_kwargs([])) as s:
            await s.wait_authenticated()
            await trio.sleep(60)
            assert s.state == "displaced"
            with pytest.raises(Displaced, match="displaced"):
                await s.wait_authenticated()
        assert sim.stats.connections == 1 and sim.stats.logins_ok == 1


async def test_close_4102_reconnects_and_logs_in_again(clock: trio.testing.MockClock) -> None:
    events: Events = []
    account = QstAccount("slow", "slow-pw", close_after_login=4102, close_after_login_delay=1.0)
    async with run_qst_simulator([account]) as sim:
        async with open_session(qst_config(sim.url, "slow"), **session_kwargs(events)) as s:
            await s.wait_authenticated()
            await trio.sleep(30)
            assert s.state == "authenticated" and s.epoch == 2
        assert sim.stats.logins_ok == 2 and sim.stats.violations == []
    closed = [e for e in events if e.get("trigger") == "closed" and e["dst"] == "backoff"]
    assert closed[0]["close_code"] == 4102 and closed[0]["reason"] == "slow_reader"


async def test_drop_mid_login_is_retried(clock: trio.testing.MockClock) -> None:
    events: Events = []
    async with run_qst_simulator([QstAccount("drop", "drop-pw", drop_mid_login=1)]) as sim:
        async with open_session(qst_config(sim.url, "drop"), **session_kwargs(events)) as s:
            await s.wait_authenticated()
        assert sim.stats.logins_ok == 1
    assert ("closed", "awaiting_login_response", "backoff") in transitions(events)
    assert any(e.get("close_code") == 1006 for e in events)


async def test_in_flight_request_fails_with_connection_lost(
    clock: trio.testing.MockClock,
) -> None:
    account = QstAccount("slow", "slow-pw", close_after_login=4102, close_after_login_delay=1.0,
                         translate_delays={"ESZ6": 5.0})
    async with run_qst_simulator([account]) as sim:
        async with open_session(qst_config(sim.url, "slow"), **session_kwargs([])) as s:
            await s.wait_authenticated()
            with pytest.raises(ConnectionLost, match="may or may not"):
                await s.request(translate("ESZ6"))
        assert sim.stats.violations == []


@pytest.mark.parametrize("kind", ["garbage", "truncated", "text"])
async def test_invalid_frame_after_login_reconnects_until_attempts_run_out(
    kind: str, clock: trio.testing.MockClock
) -> None:
    # The simulator sends one bad frame after every login: each one costs a reconnect, and a
    # broker that never stops gets the session to give up rather than loop.
    events: Events = []
    async with run_qst_simulator([QstAccount("odd", "odd-pw", misbehave=kind)]) as sim:
        async with open_session(qst_config(sim.url, "odd"), **session_kwargs(events)) as s:
            await s.wait_authenticated()
            await trio.sleep(120)
            with pytest.raises(GaveUp, match=r"protocol_error|QST sent an invalid frame"):
                await s.wait_authenticated()
        assert sim.stats.logins_ok == 5 and sim.stats.violations == []
    bad = [e for e in events if e.get("trigger") == "malformed_frame"]
    assert len(bad) == 5 and bad[0]["reason"] == "protocol_error"
    assert bad[0]["detail"].startswith("QST sent an invalid frame")


@pytest.mark.parametrize("kind", ["garbage", "truncated", "text", "unknown_request_id"])
async def test_invalid_frame_instead_of_login_answer_fails(kind: str) -> None:
    account = QstAccount("odd", "odd-pw", misbehave_before_login=kind)
    async with run_qst_simulator([account]) as sim:
        async with open_session(qst_config(sim.url, "odd"), **session_kwargs([])) as s:
            expected = r"protocol_error.*QST sent an invalid frame"
            with pytest.raises(LoginFailed, match=expected) as i:
                await s.wait_authenticated()
        assert "the broker failed or misbehaved" in str(i.value)
        assert sim.stats.connections == 1


async def test_answer_for_unknown_request_id_is_a_notice() -> None:
    account = QstAccount("odd", "odd-pw", misbehave="unknown_request_id")
    async with run_qst_simulator([account]) as sim:
        async with open_session(qst_config(sim.url, "odd"), **session_kwargs([])) as s:
            async with s.events() as stream:
                await s.wait_authenticated()
                async for event in stream:
                    if isinstance(event, Notice):
                        break
            assert event.kind == "unknown_request_id" and "999999" in event.detail
            assert s.state == "authenticated"
            assert (await s.request(translate("ESZ6"))).records[0].symbol == "ESZ6"


async def test_stale_events_from_an_old_connection_are_dropped(
    clock: trio.testing.MockClock,
) -> None:
    from brokergate.machines import Closed, FrameReceived

    account = QstAccount("slow", "slow-pw", close_after_login=4102, close_after_login_delay=1.0)
    async with run_qst_simulator([account]) as sim:
        async with open_session(qst_config(sim.url, "slow"), **session_kwargs([])) as s:
            await trio.sleep(30)
            assert s.state == "authenticated" and s.epoch == 2
            # White-box: no server can make a dead connection's reader speak again, so the late
            # events are fed as that reader would feed them.
            driver = s._driver
            driver.feed(Closed(1, 1006))  # a late close from the first connection
            driver.feed(FrameReceived(1, b"\xff"))
            await trio.sleep(1)
            assert s.state == "authenticated" and s.epoch == 2
        assert sim.stats.logins_ok == 2


async def test_wait_after_logout_raises_session_closed() -> None:
    async with run_qst_simulator([QstAccount("alice", "alice-pw")]) as sim:
        async with open_session(qst_config(sim.url, "alice"), **session_kwargs([])) as s:
            await s.wait_authenticated()
        with pytest.raises(SessionClosed, match="logged_out"):
            await s.wait_authenticated()
        with pytest.raises(NotAuthenticated):
            await s.request(translate("ESZ6"))


async def test_event_stream_sees_transitions_and_ends_with_the_session() -> None:
    async with run_qst_simulator([QstAccount("alice", "alice-pw")]) as sim:
        seen: list[Any] = []
        async with trio.open_nursery() as nursery:
            async with open_session(qst_config(sim.url, "alice"), **session_kwargs([])) as s:
                stream = s.events()

                async def consume() -> None:
                    async for event in stream:
                        seen.append(event)

                nursery.start_soon(consume)
                await s.wait_authenticated()
    dsts = [e.dst for e in seen if not isinstance(e, BrokerMessage | Notice)]
    assert dsts[-3:] == ["authenticated", "logging_out", "disconnected"]


async def test_broker_error_answer_raises_request_failed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The simulator answers the request with an ErrorMessage under its id, as QST answers a
    # request it does not know.
    def refuse(request_id: int | None, symbols: list[str]) -> bytes:
        return qst_frames.error(request_id, text="unknown request")

    monkeypatch.setattr(qst_frames, "translation", refuse)
    async with run_qst_simulator([QstAccount("alice", "alice-pw")]) as sim:
        async with open_session(qst_config(sim.url, "alice"), **session_kwargs([])) as s:
            await s.wait_authenticated()
            with pytest.raises(RequestFailed) as failed:
                await s.request(translate("ESZ6"))
            assert "unknown request" in str(failed.value)


async def test_a_bug_in_the_machine_fails_the_session_instead_of_crashing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from brokergate.machines.qst import QstSession

    def broken(self: QstSession, event: object) -> None:
        raise RuntimeError("simulated bug")

    events: Events = []
    async with run_qst_simulator([QstAccount("alice", "alice-pw")]) as sim:
        monkeypatch.setattr(QstSession, "on_frame", broken)
        async with open_session(qst_config(sim.url, "alice"), **session_kwargs(events)) as s:
            with pytest.raises(LoginFailed, match="internal_error") as info:
                await s.wait_authenticated()
        assert info.value.fault is not None and info.value.fault.value == "internal"
        assert "a bug in brokergate" in str(info.value)
    assert any(e["event"] == "internal_error" and "simulated bug" in e["detail"] for e in events)


async def test_application_ids_start_above_the_sessions_own(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    answered: list[int | None] = []  # the request ids the broker answered, in order
    translation = qst_frames.translation

    def recording(request_id: int | None, symbols: list[str]) -> bytes:
        answered.append(request_id)
        return translation(request_id, symbols)

    monkeypatch.setattr(qst_frames, "translation", recording)
    async with run_qst_simulator([QstAccount("alice", "alice-pw")]) as sim:
        async with open_session(qst_config(sim.url, "alice"), **session_kwargs([])) as s:
            await s.wait_authenticated()
            await s.request(translate("ESZ6"))
            await s.request(translate("ESH7"))
    # The login is request 1 and the logout 2; the application's first request is 16.
    assert answered == [16, 17]
    assert sim.stats.requests == 2


async def test_half_open_connection_is_detected_by_ping_and_reconnected(
    clock: trio.testing.MockClock,
) -> None:
    events: Events = []
    account = QstAccount("ghost", "ghost-pw", stall_after_login=1.0)
    async with run_qst_simulator([account]) as sim:
        config = qst_config(sim.url, "ghost", ping_interval=5.0, ping_timeout=3.0)
        async with open_session(config, **session_kwargs(events)) as s:
            await s.wait_authenticated()
            start = trio.current_time()
            async for event in s.events():
                if isinstance(event, Transitioned) and event.dst == "authenticated":
                    break
            noticed = trio.current_time() - start
            assert s.epoch == 2
        assert sim.stats.logins_ok == 2
    lost = next(e for e in events if e.get("trigger") == "closed")
    assert lost["close_code"] == 1006 and "no pong within 3 s" in lost["detail"]
    assert noticed <= 5.0 + 3.0 + 1.0  # one interval, one timeout, one backoff draw at most


async def test_a_logout_that_cannot_be_written_is_bounded_and_ends_the_connection(
    clock: trio.testing.MockClock,
) -> None:
    """The peer stops reading, and the application's own sends fill the socket's buffers: the
    logout frame then cannot leave. The machine's own frames are bounded by ``ping_timeout``,
    so the session closes the connection and ends, instead of waiting on the write forever."""
    events: Events = []
    account = QstAccount("ghost", "ghost-pw", stall_after_login=1.0)
    lost: list[ConnectionLost] = []
    async with run_qst_simulator([account]) as sim:
        # No pings, so nothing but the stalled write can notice the dead peer; a logout timer
        # far beyond the bound, so it is the bound that ends the wait.
        config = qst_config(sim.url, "ghost", ping_interval=None, ping_timeout=3.0,
                            logout_timeout=60.0)
        async with trio.open_nursery() as nursery:
            async with open_session(config, **session_kwargs(events)) as s:
                await s.wait_authenticated()
                await trio.sleep(2.0)  # the server has stopped reading
                big = translate(*[f"SYMBOL{i:010d}" for i in range(4000)])  # about 80 KB

                async def ask() -> None:
                    try:
                        await s.request(big)
                    except ConnectionLost as exc:
                        lost.append(exc)

                for _ in range(200):  # more than loopback's socket buffers hold
                    nursery.start_soon(ask)
                # The clock moves only once every task waits: the requests are stuck behind a
                # full socket by then.
                await trio.sleep(1.0)
                assert not lost and s.state == "authenticated"
                stopping = trio.current_time()
            took = trio.current_time() - stopping
    assert took == pytest.approx(3.0, abs=0.5)
    closed = next(e for e in events if e.get("trigger") == "closed")
    assert closed["src"] == "logging_out" and closed["close_code"] == 1006
    # The session ended as asked, and its trail says the broker never confirmed the logout.
    assert closed["reason"] == "logged_out"
    assert closed["detail"] == ("logout not confirmed by the broker: close 1006 sending stalled "
                                "for 3 s")
    assert states(events)[-1] == "disconnected"
    # Every request ends with an error that says why; the ones still waiting to be written
    # were never sent.
    assert len(lost) == 200
    assert any("closed while sending; not sent" in str(exc) for exc in lost)


async def test_a_logout_the_broker_never_answers_ends_on_the_timer_and_says_so(
    clock: trio.testing.MockClock,
) -> None:
    events: Events = []
    account = QstAccount("ghost", "ghost-pw", stall_after_login=1.0)
    async with run_qst_simulator([account]) as sim:
        config = qst_config(sim.url, "ghost", ping_interval=None, logout_timeout=2.0)
        async with open_session(config, **session_kwargs(events)) as s:
            await s.wait_authenticated()
            await trio.sleep(2.0)  # the server has gone silent
            stopping = trio.current_time()
        assert trio.current_time() - stopping == pytest.approx(2.0, abs=0.1)
        assert s.outcome()["detail"] == "logout not confirmed by the broker: no logout response"
    last = events[-1]
    assert (last["trigger"], last["src"], last["dst"]) == ("timeout", "logging_out",
                                                          "disconnected")
    assert last["reason"] == "logged_out" and last["detail"] == s.outcome()["detail"]


async def test_pings_can_be_turned_off(clock: trio.testing.MockClock) -> None:
    account = QstAccount("ghost", "ghost-pw", stall_after_login=1.0)
    async with run_qst_simulator([account]) as sim:
        config = qst_config(sim.url, "ghost", ping_interval=None)
        async with open_session(config, **session_kwargs([])) as s:
            await s.wait_authenticated()
            await trio.sleep(120)
            # Nothing probes the connection, so the stall goes unnoticed.
            assert s.state == "authenticated" and s.epoch == 1


async def test_frame_above_the_size_limit_closes_and_reconnects(
    clock: trio.testing.MockClock,
) -> None:
    events: Events = []
    async with run_qst_simulator([QstAccount("alice", "alice-pw")]) as sim:
        config = qst_config(sim.url, "alice", max_frame_size=1024)
        async with open_session(config, **session_kwargs(events)) as s:
            await s.wait_authenticated()
            with pytest.raises(ConnectionLost):
                await s.request(translate(*[f"SYMBOL{i:05d}" for i in range(200)]))
            await s.wait_authenticated()  # back after a reconnect
            assert s.epoch == 2
    too_big = next(e for e in events if e.get("close_code") == 1009)
    assert too_big["reason"] == "frame_too_large" and "1024" in too_big["detail"]


async def test_simulator_helper_hands_back_the_blocks_own_exception() -> None:
    with pytest.raises(KeyError):
        async with run_qst_simulator([]):
            raise KeyError("from the block")


async def test_a_session_its_host_cancels_ends_at_once_and_says_so(
    clock: trio.testing.MockClock,
) -> None:
    """The host cancelling the nursery a session lives in (a common way to shut down): the
    session's connection is cancelled with it, so no logout answer can be read. It does not wait
    out its logout timeout for one: it ends disconnected at once, and the audit trail has the
    stop and the end, saying the logout was not confirmed and why."""
    events: list[dict[str, Any]] = []
    async with run_qst_simulator([QstAccount("alice", "alice-pw")]) as sim:
        async with trio.open_nursery() as host:
            async def run() -> None:
                async with open_session(qst_config(sim.url, "alice"),
                                        **session_kwargs(events)) as session:
                    await session.wait_authenticated()
                    await trio.sleep_forever()

            host.start_soon(run)
            await trio.sleep(1)
            started = trio.current_time()
            host.cancel_scope.cancel()
        assert trio.current_time() - started < 1.0  # not the 5 s logout timeout
    moves = transitions(events)
    assert moves[-2:] == [("stop", "authenticated", "logging_out"),
                          ("closed", "logging_out", "disconnected")]
    last = [e for e in events if e["event"] == "transition"][-1]
    assert last["reason"] == "logged_out"
    assert "not confirmed" in last["detail"] and "cancelled" in last["detail"]
