"""The QST simulator, driven by a tiny raw client (trio-websocket + protobuf), not the engine."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
import trio
import trio.testing
import trio_websocket
from google.protobuf.message import DecodeError
from ws_raw import RawSocket

from brokergate.qst import pb
from brokergate.simulators.qst import QstAccount, QstSimulator, demo_accounts, run_qst_simulator
from brokergate.simulators.qst.frames import instrument_id

CLIENT_ID = "test-client"
MANDATORY = "Populate all mandatory fields: username and password are mandatory."


@pytest.fixture
def clock() -> trio.testing.MockClock:
    """Virtual time that jumps ahead whenever every task is blocked (see the report on MockClock
    with real sockets: loopback data is readable before send() returns, so this is safe)."""
    return trio.testing.MockClock(autojump_threshold=0)


def login(
    user: str = "alice",
    password: str | None = "alice-pw",
    *,
    version: int | None = 1,
    client_id: str | None = CLIENT_ID,
    interval: int | None = None,
    last_trade: bool | None = None,
    prefs: bool = False,
    request_id: int = 1,
) -> pb.Request:
    req = pb.Request(request_id=request_id)
    req.login.user_name = user
    if password is not None:
        req.login.password.value = password
    if version is not None:
        req.login.password.version = version
    if client_id is not None:
        req.login.client_id = client_id
    if prefs or interval is not None or last_trade is not None:
        req.login.user_preferences.SetInParent()
    if interval is not None:
        req.login.user_preferences.coalescing_interval = interval  # type: ignore[assignment]
    if last_trade is not None:
        req.login.user_preferences.coalesce_last_trade = last_trade
    return req


def translate(request_id: int, *symbols: str) -> pb.Request:
    req = pb.Request(request_id=request_id)
    req.translate_instrument_symbol.symbol_source = 1
    req.translate_instrument_symbol.instrument_symbols.extend(symbols)
    return req


class Client(RawSocket):
    async def send(self, req: pb.Request) -> None:
        await self.ws.send_message(req.SerializeToString())

    async def recv(self) -> pb.Response:
        data = await self.ws.get_message()
        assert isinstance(data, bytes)
        return pb.Response.FromString(data)

    async def login(self, req: pb.Request | None = None) -> pb.Response:
        await self.send(req or login())
        return await self.recv()


@asynccontextmanager
async def connect(sim: QstSimulator) -> AsyncIterator[Client]:
    async with trio_websocket.open_websocket_url(sim.url) as ws:
        yield Client(ws)


ALICE = QstAccount("alice", "alice-pw", entitled_interval=pb._100_MS)


# -- successful logins and the coalescing grant ---------------------------------------------------


@pytest.mark.parametrize(
    ("entitled", "asked", "granted"),
    [
        # (interval, last_trade) requested, None = absent; granted (interval, last_trade)
        (pb._100_MS, (pb.UNCOALESCED, True), (pb._100_MS, True)),
        (pb._100_MS, (pb._250_MS, True), (pb._250_MS, True)),
        (pb.UNCOALESCED, (pb.UNCOALESCED, True), (pb.UNCOALESCED, False)),
        (pb.UNCOALESCED, (None, None), (pb._250_MS, False)),
        (pb._100_MS, (None, True), (pb._250_MS, True)),
        (pb._100_MS, (pb._100_MS, None), (pb._100_MS, False)),
    ],
)
async def test_login_grants_the_coarser_of_requested_and_entitled(
    entitled: int, asked: tuple[int | None, bool | None], granted: tuple[int, bool]
) -> None:
    account = QstAccount("alice", "alice-pw", entitled_interval=entitled)
    async with run_qst_simulator([account]) as sim, connect(sim) as client:
        resp = await client.login(login(interval=asked[0], last_trade=asked[1], prefs=True))
    assert resp.request_id == 1
    assert resp.WhichOneof("response") == "login"
    assert (resp.login.coalescing_interval, resp.login.coalesce_last_trade) == granted
    assert resp.login.HasField("coalescing_interval")
    assert resp.login.HasField("coalesce_last_trade")
    assert sim.stats.logins_ok == 1
    assert sim.stats.violations == []


async def test_absent_preferences_get_250_ms_and_no_last_trade_coalescing() -> None:
    async with run_qst_simulator([ALICE]) as sim, connect(sim) as client:
        resp = await client.login(login(request_id=77))
    assert resp.request_id == 77
    assert resp.login.coalescing_interval == pb._250_MS
    assert resp.login.coalesce_last_trade is False
    (seen,) = sim.stats.login_requests
    assert not seen.HasField("user_preferences")
    assert seen.client_id == CLIENT_ID


async def test_provisioning_messages_then_close_1000() -> None:
    account = QstAccount(
        "pending", "pw", provisioning=[("t1", "Terms", "Accept them", "https://x")]
    )
    async with run_qst_simulator([account]) as sim, connect(sim) as client:
        resp = await client.login(login("pending", "pw"))
        assert resp.WhichOneof("response") == "provisioning_messages"
        (msg,) = resp.provisioning_messages.messages
        assert (msg.id, msg.title, msg.text, msg.url) == ("t1", "Terms", "Accept them", "https://x")
        assert await client.close_code() == 1000
    assert (sim.stats.provisioning, sim.stats.logins_ok, sim.stats.logins_rejected) == (1, 0, 0)


# -- refused logins -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("code", "text"),
    [
        (1, "Login failed. The credentials were not valid (1)"),
        (2, "Login failed. TOTP Code Missing (2)"),
        (3, "Login failed. E-Mail validation pending (3)"),
        (4, "Login failed. 2FA key validation pending (4)"),
        (5, "Login failed. Reached limit of failed logins, please contact support (5)"),
        (6, "Login failed. Server error (6)"),
        (1000, "Login failed (1000)"),
    ],
)
async def test_error_code_accounts(code: int, text: str) -> None:
    account = QstAccount("bob", "bob-pw", error_code=code)
    async with run_qst_simulator([account]) as sim, connect(sim) as client:
        resp = await client.login(login("bob", "bob-pw", request_id=9))
        assert resp.request_id == 9
        assert (resp.error.code, resp.error.message) == (code, text)
        assert await client.close_code() == 1000
    assert sim.stats.logins_rejected == 1


async def test_error_text_account_sends_no_code() -> None:
    account = QstAccount("bob", "bob-pw", error_text="Something new went wrong")
    async with run_qst_simulator([account]) as sim, connect(sim) as client:
        resp = await client.login(login("bob", "bob-pw"))
    assert not resp.error.HasField("code")
    assert resp.error.message == "Something new went wrong"


@pytest.mark.parametrize(
    ("req", "text"),
    [
        (login(""), MANDATORY),
        (login(password=None), MANDATORY),
        (login(password=""), MANDATORY),
        (login(client_id=None), "Unauthorized client_id."),
        (login(client_id=""), "Unauthorized client_id."),
        (login(client_id="stranger"), "Unauthorized client_id."),
    ],
    ids=["no-user", "no-password", "empty-password", "no-client", "empty-client", "stranger"],
)
async def test_mandatory_fields_and_client_id(req: pb.Request, text: str) -> None:
    async with (
        run_qst_simulator([ALICE], client_ids=[CLIENT_ID]) as sim,
        connect(sim) as client,
    ):
        resp = await client.login(req)
        assert resp.request_id == 1
        assert resp.WhichOneof("response") == "error"
        assert not resp.error.HasField("code")
        assert resp.error.message == text
        assert await client.close_code() == 1000
    assert sim.stats.logins_rejected == 1
    assert sim.stats.violations == []


async def test_unknown_user_and_wrong_version_are_code_1() -> None:
    async with run_qst_simulator([ALICE]) as sim:
        for req in (login("mallory"), login(version=2), login(version=None), login(password="x")):
            async with connect(sim) as client:
                assert (await client.login(req)).error.code == 1
    assert sim.stats.wrong_passwords == {"alice": 3}


async def test_lockout_after_n_wrong_passwords() -> None:
    account = QstAccount("carol", "carol-pw", lockout_after=2)
    codes = []
    async with run_qst_simulator([account]) as sim:
        for password in ("bad", "bad", "carol-pw", "bad"):
            async with connect(sim) as client:
                codes.append((await client.login(login("carol", password))).error.code)
    assert codes == [1, 1, 5, 5]
    assert sim.stats.wrong_passwords == {"carol": 2}
    sim.reset_stats()  # forgetting the wrong passwords lifts the lockout
    assert sim.stats.wrong_passwords == {}


async def test_server_errors_then_success() -> None:
    account = QstAccount("flaky", "flaky-pw", server_errors=2, other_failures=1)
    answers = []
    async with run_qst_simulator([account]) as sim:
        for _ in range(5):
            async with connect(sim) as client:
                resp = await client.login(login("flaky", "flaky-pw"))
                answers.append(resp.error.code if resp.HasField("error") else "ok")
    assert answers == [6, 6, 1000, "ok", "ok"]
    assert (sim.stats.logins_rejected, sim.stats.logins_ok, sim.stats.connections) == (3, 2, 5)


# -- the login-first rule -------------------------------------------------------------------------


async def test_request_before_login_answer_is_a_violation(clock: trio.testing.MockClock) -> None:
    account = QstAccount("alice", "alice-pw", login_delay=5.0)
    async with run_qst_simulator([account]) as sim, connect(sim) as client:
        await client.send(login())
        await client.send(translate(2, "ESZ20"))
        assert await client.close_code() == 1008
    assert sim.stats.violations == [
        "user 'alice': a Request with translate_instrument_symbol (request_id 2)"
        " arrived before the login answer"
    ]
    assert sim.stats.logins_ok == 0


async def test_request_pipelined_right_behind_the_login_is_caught() -> None:
    # No login_delay: the simulator still takes a moment over every login, so a client that
    # does not wait for the answer is caught even on a fast loopback (and in real time).
    async with run_qst_simulator([ALICE]) as sim, connect(sim) as client:
        await client.send(login())
        await client.send(translate(2, "ESZ20"))
        assert await client.close_code() == 1008
    assert len(sim.stats.violations) == 1
    assert sim.stats.violations[0].startswith("user 'alice': a Request with translate")


async def test_second_login_before_the_answer_is_a_violation(
    clock: trio.testing.MockClock,
) -> None:
    account = QstAccount("alice", "alice-pw", login_delay=5.0)
    async with run_qst_simulator([account]) as sim, connect(sim) as client:
        await client.send(login())
        await client.send(login(request_id=2))
        assert await client.close_code() == 1008
    assert sim.stats.violations == [
        "user 'alice': a Request with login (request_id 2) arrived before the login answer"
    ]


async def test_first_frame_must_be_a_login() -> None:
    async with run_qst_simulator([ALICE]) as sim, connect(sim) as client:
        await client.ws.send_message("hello")
        assert await client.close_code() == 1008
    assert len(sim.stats.violations) == 1
    assert "no login yet" in sim.stats.violations[0]
    assert "text frame" in sim.stats.violations[0]


async def test_waiting_for_the_login_answer_is_no_violation(clock: trio.testing.MockClock) -> None:
    account = QstAccount("alice", "alice-pw", login_delay=5.0)
    async with run_qst_simulator([account]) as sim, connect(sim) as client:
        start = trio.current_time()
        assert (await client.login()).HasField("login")
        assert trio.current_time() - start == pytest.approx(5.0)
        await client.send(translate(2, "ESZ20"))
        assert (await client.recv()).request_id == 2
    assert sim.stats.violations == []


async def test_second_login_on_a_logged_in_connection() -> None:
    async with run_qst_simulator([ALICE]) as sim, connect(sim) as client:
        await client.login()
        resp = await client.login(login(request_id=5))
        assert (resp.request_id, resp.error.message) == (5, "already logged in")
    assert len(sim.stats.violations) == 1


# -- after login ----------------------------------------------------------------------------------


async def test_translate_answers_out_of_order(clock: trio.testing.MockClock) -> None:
    account = QstAccount("alice", "alice-pw", translate_delays={"ESZ20": 2.0, "NQH21": 1.0})
    async with run_qst_simulator([account]) as sim, connect(sim) as client:
        await client.login()
        await client.send(translate(10, "ESZ20", "BADX"))
        await client.send(translate(11, "NQH21"))
        await client.send(translate(12, "CLF22"))
        answers = [await client.recv() for _ in range(3)]
    assert [a.request_id for a in answers] == [12, 11, 10]
    records = answers[2].translate_instrument_symbol.records
    assert records[0].symbol == "ESZ20"
    assert records[0].instrument_id == instrument_id("ESZ20")
    assert not records[0].HasField("error")
    assert (records[1].symbol, records[1].error) == ("BADX", "unknown symbol")
    assert not records[1].HasField("instrument_id")
    assert sim.stats.requests == 3


def test_instrument_ids_are_stable_across_runs() -> None:
    # Fixed values: Python's salted hash() would change from one process to the next.
    assert instrument_id("ESZ20") == 7800487865813848
    assert instrument_id("ESZ20") != instrument_id("ESZ21")


async def test_unknown_and_malformed_requests_after_login() -> None:
    async with run_qst_simulator([ALICE]) as sim, connect(sim) as client:
        await client.login()
        await client.send(pb.Request(request_id=4))
        resp = await client.recv()
        assert (resp.request_id, resp.error.message) == (4, "unknown request")
        await client.ws.send_message(b"\xff\xff\xff")
        resp = await client.recv()
        assert not resp.HasField("request_id")
        assert resp.WhichOneof("response") == "error"
    assert sim.stats.violations == []


async def test_logout_then_close_1000() -> None:
    async with run_qst_simulator([ALICE]) as sim, connect(sim) as client:
        await client.login()
        req = pb.Request(request_id=3)
        req.logout.SetInParent()
        await client.send(req)
        resp = await client.recv()
        assert (resp.request_id, resp.WhichOneof("response")) == (3, "logout")
        assert await client.close_code() == 1000
    assert sim.stats.logouts == 1


@pytest.mark.parametrize("code", [4101, 4102])
async def test_close_after_login(code: int, clock: trio.testing.MockClock) -> None:
    account = QstAccount("kim", "kim-pw", close_after_login=code, close_after_login_delay=1.5)
    async with run_qst_simulator([account]) as sim:
        async with connect(sim) as client:
            assert (await client.login(login("kim", "kim-pw"))).HasField("login")
            start = trio.current_time()
            assert await client.close_code() == code
            assert trio.current_time() - start == pytest.approx(1.5)
        async with connect(sim) as client:  # close_after_login_times=1: now it stays up
            assert (await client.login(login("kim", "kim-pw"))).HasField("login")
            with trio.move_on_after(60):
                await client.raw()
                pytest.fail("the second login was closed too")


async def test_drop_mid_login_is_seen_as_1006() -> None:
    account = QstAccount("dan", "dan-pw", drop_mid_login=1)
    async with run_qst_simulator([account]) as sim:
        async with connect(sim) as client:
            await client.send(login("dan", "dan-pw"))
            assert await client.close_code() == 1006
        async with connect(sim) as client:
            assert (await client.login(login("dan", "dan-pw"))).HasField("login")
    assert sim.stats.violations == []


async def test_drop_ends_only_that_users_logged_in_connections() -> None:
    bob = QstAccount("bob", "bob-pw")
    async with run_qst_simulator([ALICE, bob]) as sim:
        async with connect(sim) as first, connect(sim) as second, connect(sim) as bobs:
            assert (await first.login()).HasField("login")
            assert (await second.login()).HasField("login")
            assert (await bobs.login(login("bob", "bob-pw"))).HasField("login")
            assert (sim.live_connections("alice"), sim.live_connections("bob")) == (2, 1)
            assert await sim.drop("alice") == 2
            assert sim.live_connections("alice") == 0
            assert [await first.close_code(), await second.close_code()] == [1006, 1006]
            await bobs.send(translate(2, "ESZ20"))  # bob's connection is untouched
            assert (await bobs.recv()).request_id == 2
            assert await sim.drop("alice") == 0
        async with connect(sim) as client:  # and alice can log in again
            assert (await client.login()).HasField("login")
            assert sim.live_connections("alice") == 1
    assert sim.stats.violations == []


async def test_a_connection_not_logged_in_is_not_dropped() -> None:
    slow = QstAccount("alice", "alice-pw", login_delay=0.5)
    async with run_qst_simulator([slow]) as sim, connect(sim) as client:
        await client.send(login())
        assert await sim.drop("alice") == 0
        assert (await client.recv()).HasField("login")
        assert sim.live_connections("alice") == 1


@pytest.mark.parametrize(("code", "reason", "said"), [
    (4101, None, "the same user connected from another device"),
    (4102, "too slow", "too slow"),
    (1000, None, "normal closure"),
])
async def test_close_sends_the_code_and_its_reason(code: int, reason: str | None,
                                                   said: str) -> None:
    async with run_qst_simulator([ALICE]) as sim, connect(sim) as client:
        assert (await client.login()).HasField("login")
        assert await sim.close("alice", code, reason) == 1
        with pytest.raises(trio_websocket.ConnectionClosed) as closed:
            await client.raw()
        assert closed.value.reason is not None
        assert (closed.value.reason.code, closed.value.reason.reason) == (code, said)
        assert sim.live_connections("alice") == 0
        assert await sim.close("alice") == 0
    assert sim.stats.violations == []


# -- misbehaving servers --------------------------------------------------------------------------


def check_bad_frame(kind: str, data: bytes | str) -> None:
    if kind == "text":
        assert isinstance(data, str)
        return
    assert isinstance(data, bytes)
    if kind == "unknown_request_id":
        resp = pb.Response.FromString(data)
        assert resp.request_id == 999999
        assert resp.WhichOneof("response") == "translate_instrument_symbol"
        return
    with pytest.raises(DecodeError):
        pb.Response.FromString(data)


KINDS = ["garbage", "truncated", "text", "unknown_request_id"]


@pytest.mark.parametrize("kind", KINDS)
async def test_misbehave_after_login(kind: str) -> None:
    account = QstAccount("eve", "eve-pw", misbehave=kind)
    async with run_qst_simulator([account]) as sim, connect(sim) as client:
        assert (await client.login(login("eve", "eve-pw"))).HasField("login")
        check_bad_frame(kind, await client.raw())
        await client.send(translate(2, "ESZ20"))  # and then it behaves
        assert (await client.recv()).request_id == 2


@pytest.mark.parametrize("kind", KINDS)
async def test_misbehave_before_login(kind: str) -> None:
    account = QstAccount("eve", "eve-pw", misbehave_before_login=kind)
    async with run_qst_simulator([account]) as sim, connect(sim) as client:
        await client.send(login("eve", "eve-pw"))
        check_bad_frame(kind, await client.raw())
    assert (sim.stats.logins_ok, sim.stats.logins_rejected) == (0, 0)
    assert sim.stats.violations == []


def test_unknown_misbehaviour_is_refused() -> None:
    with pytest.raises(ValueError, match="misbehaviour"):
        QstAccount("eve", "pw", misbehave="rude")


# -- robustness -----------------------------------------------------------------------------------


async def test_survives_clients_that_vanish(clock: trio.testing.MockClock) -> None:
    slow = QstAccount("alice", "alice-pw", login_delay=3.0, translate_delays={"ESZ20": 3.0})
    async with run_qst_simulator([slow]) as sim:
        # Not WebSocket at all, then a bare TCP connect that says nothing and leaves.
        stream = await trio.open_tcp_stream(sim.host, sim.port)
        await stream.send_all(b"NOT HTTP AT ALL\r\n\r\n")
        await trio.aclose_forcefully(stream)
        await trio.aclose_forcefully(await trio.open_tcp_stream(sim.host, sim.port))
        # Gone in the middle of a login, and with a translation pending.
        async with connect(sim) as client:
            await client.send(login())
        async with connect(sim) as client:
            await client.login()
            await client.send(translate(2, "ESZ20"))
        await trio.sleep(20)
        async with connect(sim) as client:
            assert (await client.login()).HasField("login")
    assert sim.stats.violations == []


async def test_serve_reports_its_url() -> None:
    sim = QstSimulator()
    with pytest.raises(RuntimeError):
        _ = sim.url
    async with trio.open_nursery() as nursery:
        started = await nursery.start(sim.serve)
        assert started is sim
        assert sim.url == f"ws://127.0.0.1:{sim.port}/"
        assert sim.port > 0
        nursery.cancel_scope.cancel()


async def test_demo_accounts_log_in_as_documented() -> None:
    accounts = {a.user_name: a for a in demo_accounts()}
    assert {"alice", "pending", "wrong", "locked", "flaky", "busy", "kicked", "slow"} <= set(
        accounts
    )
    async with run_qst_simulator(accounts.values()) as sim:
        async with connect(sim) as client:
            resp = await client.login(login(prefs=True, interval=pb.UNCOALESCED))
            assert resp.login.coalescing_interval == pb._100_MS
        async with connect(sim) as client:
            assert (await client.login(login("wrong", "wrong-pw"))).error.code == 1
        async with connect(sim) as client:
            assert (await client.login(login("locked", "locked-pw"))).error.code == 5
        async with connect(sim) as client:
            resp = await client.login(login("pending", "pending-pw"))
            assert resp.WhichOneof("response") == "provisioning_messages"


def test_a_ping_that_meets_the_servers_close_is_not_reported_as_a_failure() -> None:
    """trio-websocket's server answers a client's ping even after its own close went out, and
    wsproto refuses that pong: the simulators take this race (trio-websocket issue 184) for
    what it is, a connection ending anyway, and log a failure only for anything else."""
    import wsproto
    from wsproto.events import AcceptConnection, CloseConnection, Pong, Request

    from brokergate.simulators._websocket import closing_race

    client = wsproto.WSConnection(wsproto.ConnectionType.CLIENT)
    server = wsproto.WSConnection(wsproto.ConnectionType.SERVER)
    server.receive_data(client.send(Request(host="127.0.0.1", target="/")))
    next(server.events())
    server.send(AcceptConnection())
    server.send(CloseConnection(code=1000))
    with pytest.raises(wsproto.utilities.LocalProtocolError) as refused:
        server.send(Pong(payload=b"\x01\x02"))
    race = refused.value
    assert closing_race(race)
    assert closing_race(ExceptionGroup("connection", [ExceptionGroup("reader", [race])]))
    assert not closing_race(ExceptionGroup("connection", [race, ValueError("a real bug")]))
    assert not closing_race(wsproto.utilities.LocalProtocolError("Connection cannot be closed"))
    assert not closing_race(RuntimeError("Event Pong( cannot be sent in state ..."))
