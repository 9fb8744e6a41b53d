"""The Firstock simulator, driven by bare clients (httpx for the API, trio-websocket and raw
wsproto for the sockets), not the engine.

Under the MockClock, httpx's timeouts run on trio's virtual clock too, so every client here gets
a timeout longer than any delay a test scripts: nothing depends on one firing.
"""

from __future__ import annotations

import hashlib
import json
import ssl
import time
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import httpx
import pyotp
import pytest
import trio
import trio.testing
import trio_websocket
import trustme
from firstock_raw import deaf_socket, raw_http, read_until_closed

from brokergate.simulators.firstock import (
    DEMO_FIXED_TOTP,
    DEMO_TOTP_SEED,
    FirstockAccount,
    FirstockSimulator,
    demo_accounts,
    run_firstock_simulator,
)
from brokergate.simulators.firstock.http11 import BODY_TIMEOUT, IDLE_TIMEOUT

ALICE = FirstockAccount("alice", "alice-pw", name="Alice Example", email="alice@example.invalid")
BOB = FirstockAccount("bob", "bob-pw")
#: A wall clock pinned inside one TOTP window, so seeded codes are deterministic.
PINNED = 1_700_000_010.0
MAX_SESSIONS_TEXT = "Maximum sessions limit (3) reached"
AUTH_OK = {"status": "success", "message": "Authentication successful"}
AUTH_FAILED = {"status": "failed", "message": "unauthenticated"}


def body(
    user: str = "alice",
    *,
    password: str | None = None,
    totp: str = "000000",
    vendor: str | None = None,
    api_key: str | None = None,
) -> dict[str, Any]:
    """A login body with the defaults the accounts here expect (password ``<user>-pw``)."""
    return {
        "userId": user,
        "password": f"{user}-pw" if password is None else password,
        "TOTP": totp,
        "vendorCode": f"{user}_API" if vendor is None else vendor,
        "apiKey": f"key-{user}" if api_key is None else api_key,
    }


def failed(name: str, field: str, message: str, *, code: str = "401",
           status: str = "Failed") -> dict[str, Any]:
    return {"status": status, "code": code, "name": name,
            "error": {"field": field, "message": message}}


@asynccontextmanager
async def api(sim: FirstockSimulator, **kwargs: Any) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=sim.base_url, timeout=120.0, **kwargs) as client:
        yield client


async def login(client: httpx.AsyncClient, user: str = "alice", **fields: Any) -> httpx.Response:
    return await client.post("/login", json=body(user, **fields))


async def token_for(sim: FirstockSimulator, user: str = "alice") -> str:
    async with api(sim) as client:
        response = await login(client, user)
    assert response.status_code == 200, response.text
    token: str = response.json()["data"]["susertoken"]
    return token


def connect_message(user: str, token: str, actid: str | None = None) -> str:
    return json.dumps({"t": "c", "uid": user, "actid": actid or user, "susertoken": token,
                       "source": "API"})


@asynccontextmanager
async def noren(sim: FirstockSimulator) -> AsyncIterator[trio_websocket.WebSocketConnection]:
    async with trio_websocket.open_websocket_url(sim.noren_url) as ws:
        yield ws


async def noren_connected(sim: FirstockSimulator, stack: AsyncExitStack, token: str,
                          user: str = "alice") -> trio_websocket.WebSocketConnection:
    ws = await stack.enter_async_context(noren(sim))
    await ws.send_message(connect_message(user, token))
    assert await recv(ws) == {"t": "ck", "s": "OK", "uid": user}
    return ws


async def feed_connected(sim: FirstockSimulator, stack: AsyncExitStack, token: str,
                         user: str = "alice") -> trio_websocket.WebSocketConnection:
    ws = await stack.enter_async_context(
        trio_websocket.open_websocket_url(sim.socket_url_for(user, token)))
    assert await recv(ws) == AUTH_OK
    return ws


async def recv(ws: trio_websocket.WebSocketConnection) -> Any:
    return json.loads(await ws.get_message())


async def close_code(ws: trio_websocket.WebSocketConnection) -> int:
    """Read until the server closes; the close code the client saw (1006: dropped)."""
    with pytest.raises(trio_websocket.ConnectionClosed) as closed:
        while True:
            await ws.get_message()
    assert closed.value.reason is not None
    return closed.value.reason.code


async def settle(sim: FirstockSimulator, user: str, count: int) -> None:
    """Until the user has ``count`` live sockets (the server notices a closed socket a moment
    after the client has closed it)."""
    with trio.fail_after(5):
        await sim.wait_live_sockets(user, count)


# -- successful logins ----------------------------------------------------------------------------


@pytest.mark.parametrize(("case", "word"), [("capitalised", "Success"), ("lowercase", "success")])
async def test_login_success_body(case: str, word: str, clock: trio.testing.MockClock) -> None:
    account = FirstockAccount("alice", "alice-pw", name="Alice Example",
                              email="alice@example.invalid", status_case=case)  # type: ignore[arg-type]
    async with run_firstock_simulator([account]) as sim, api(sim) as client:
        assert sim.base_url == f"http://127.0.0.1:{sim.port}/api/V3"
        response = await login(client)
        assert response.status_code == 200
        assert response.headers["content-type"] == "application/json"
        payload = response.json()
        token = payload["data"]["susertoken"]
        assert payload == {"status": word, "data": {"actid": "alice", "userName": "Alice Example",
                                                    "susertoken": token,
                                                    "email": "alice@example.invalid"}}
        assert len(token) == 64 and int(token, 16) >= 0
        assert sim.token_of("alice") == token
        again = (await login(client)).json()["data"]["susertoken"]
        assert again != token  # fresh every time...
        assert sim.token_of("alice") == again  # ...and the newest is the one that works
    assert sim.stats.logins_ok == 2
    assert sim.stats.login_failures == []
    assert sim.stats.login_bodies == [body(), body()]
    assert sim.stats.requests == 2
    assert len(sim.stats.request_times) == 2
    assert sim.stats.http_connections == 1  # keep-alive: both requests on one connection


async def test_account_defaults(clock: trio.testing.MockClock) -> None:
    async with run_firstock_simulator([BOB]) as sim, api(sim) as client:
        data = (await login(client, "bob")).json()["data"]
    assert (BOB.vendor_code, BOB.api_key) == ("bob_API", "key-bob")
    assert (data["actid"], data["userName"], data["email"]) == ("bob", "bob", "bob@example.invalid")


async def test_v4_wants_the_sha256_of_the_password(clock: trio.testing.MockClock) -> None:
    hashed = hashlib.sha256(b"alice-pw").hexdigest()
    async with run_firstock_simulator([ALICE], api_version="v4", prefix="/api/V4") as sim:
        assert sim.base_url.endswith("/api/V4")
        async with api(sim) as client:
            plain = await login(client)
            assert plain.status_code == 401
            assert plain.json() == failed("INVALID_PASSWORD", "password",
                                          "password parameter is invalid", status="failed")
            upper = await login(client, password=hashed.upper())
            assert upper.json()["name"] == "INVALID_PASSWORD"
            ok = await login(client, password=hashed)
            assert (ok.status_code, ok.json()["status"]) == (200, "success")  # V4 is lowercase
    async with run_firstock_simulator([ALICE]) as sim, api(sim) as client:
        assert (await login(client, password=hashed)).json()["name"] == "INVALID_PASSWORD"
        assert (await login(client)).json()["status"] == "Success"


# -- refused logins -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "name", "field"),
    [
        ({"user": "mallory"}, "INVALID_USERID", "userId"),
        ({"password": "wrong"}, "INVALID_PASSWORD", "password"),
        ({"vendor": "other_API"}, "INVALID_VENDORCODE", "vendorCode"),
        ({"api_key": "key-other"}, "INVALID_APIKEY", "apiKey"),
        ({"totp": "654321"}, "INVALID_TOTP", "TOTP"),
    ],
    ids=["user", "password", "vendor", "api-key", "totp"],
)
async def test_each_invalid_field(fields: dict[str, str], name: str, field: str,
                                  clock: trio.testing.MockClock) -> None:
    account = FirstockAccount("alice", "alice-pw", fixed_totp="123456")
    sent = {"totp": "123456", **fields}
    async with run_firstock_simulator([account]) as sim, api(sim) as client:
        response = await login(client, **sent)
    assert response.status_code == 401
    assert response.json() == failed(name, field, f"{field} parameter is invalid")
    assert sim.stats.login_failures == [name]
    assert sim.token_of("alice") is None


async def test_validation_order(clock: trio.testing.MockClock) -> None:
    account = FirstockAccount("alice", "alice-pw", fixed_totp="123456")
    wrong = {"password": "x", "vendor": "x", "api_key": "x", "totp": "x"}
    async with run_firstock_simulator([account]) as sim, api(sim) as client:
        names = []
        for right in ([], ["password"], ["password", "vendor"],
                      ["password", "vendor", "api_key"]):
            fields = {k: v for k, v in wrong.items() if k not in right}
            names.append((await login(client, **fields)).json()["name"])
        names.append((await login(client, "mallory", **wrong)).json()["name"])
        everything_missing = await client.post("/login", json={})
        names.append(everything_missing.json()["error"]["field"])
    assert names == ["INVALID_PASSWORD", "INVALID_VENDORCODE", "INVALID_APIKEY", "INVALID_TOTP",
                     "INVALID_USERID", "userId"]


@pytest.mark.parametrize("field", ["userId", "password", "TOTP", "vendorCode", "apiKey"])
async def test_missing_field_is_bad_request(field: str, clock: trio.testing.MockClock) -> None:
    async with run_firstock_simulator([ALICE]) as sim, api(sim) as client:
        sent = body()
        del sent[field]
        absent = await client.post("/login", json=sent)
        sent[field] = ""
        empty = await client.post("/login", json=sent)
        sent[field] = 12345
        number = await client.post("/login", json=sent)
    message = f"{field} parameter is required"
    for response in (absent, empty):
        assert response.status_code == 400
        assert response.json() == failed("BAD_REQUEST", field, message, code="400")
    assert number.json()["error"] == {"field": field,
                                      "message": f"{field} parameter must be a string"}
    assert sim.stats.login_failures == ["BAD_REQUEST"] * 3


async def test_body_that_is_not_a_json_object(clock: trio.testing.MockClock) -> None:
    async with run_firstock_simulator([ALICE]) as sim, api(sim) as client:
        garbage = await client.post("/login", content=b"userId=alice",
                                    headers={"content-type": "application/json"})
        array = await client.post("/login", json=[body()])
    for response in (garbage, array):
        assert response.status_code == 400
        assert response.json()["name"] == "BAD_REQUEST"
    assert sim.stats.login_failures == ["BAD_REQUEST", "BAD_REQUEST"]
    assert sim.stats.login_bodies == []


async def test_totp_seed_on_a_pinned_clock(clock: trio.testing.MockClock) -> None:
    account = FirstockAccount("olga", "olga-pw", totp_seed=DEMO_TOTP_SEED)
    totp = pyotp.TOTP(DEMO_TOTP_SEED)
    async with run_firstock_simulator([account], wall_clock=lambda: PINNED) as sim:
        async with api(sim) as client:
            previous = await login(client, "olga", totp=totp.at(PINNED - 30))
            following = await login(client, "olga", totp=totp.at(PINNED + 30))
            garbage = await login(client, "olga", totp="abcdef")
            current = await login(client, "olga", totp=totp.at(PINNED))
    assert [r.status_code for r in (previous, following, garbage, current)] == [401, 401, 401, 200]
    assert sim.stats.login_failures == ["INVALID_TOTP"] * 3


async def test_totp_seed_on_the_wall_clock(clock: trio.testing.MockClock) -> None:
    account = FirstockAccount("olga", "olga-pw", totp_seed=DEMO_TOTP_SEED)
    totp = pyotp.TOTP(DEMO_TOTP_SEED)
    async with run_firstock_simulator([account]) as sim, api(sim) as client:
        for _ in range(2):
            window = int(time.time()) // 30
            response = await login(client, "olga", totp=totp.now())
            if response.status_code == 200:
                break
            # Only a window that turned between making the code and checking it may fail it.
            assert int(time.time()) // 30 != window
        assert response.status_code == 200


async def test_fixed_totp_and_seed_together(clock: trio.testing.MockClock) -> None:
    account = FirstockAccount("olga", "olga-pw", totp_seed=DEMO_TOTP_SEED, fixed_totp="999999")
    async with run_firstock_simulator([account], wall_clock=lambda: PINNED) as sim:
        async with api(sim) as client:
            assert (await login(client, "olga", totp="999999")).status_code == 200
            code = pyotp.TOTP(DEMO_TOTP_SEED).at(PINNED)
            assert (await login(client, "olga", totp=code)).status_code == 200


async def test_invalid_totp_times(clock: trio.testing.MockClock) -> None:
    account = FirstockAccount("alice", "alice-pw", fixed_totp="123456", invalid_totp_times=2)
    async with run_firstock_simulator([account]) as sim, api(sim) as client:
        # A wrong password is refused before the TOTP, so it spends nothing.
        assert (await login(client, password="x", totp="123456")).json()["name"] == (
            "INVALID_PASSWORD")
        statuses = [(await login(client, totp="123456")).status_code for _ in range(3)]
    assert statuses == [401, 401, 200]
    assert sim.stats.login_failures == ["INVALID_PASSWORD", "INVALID_TOTP", "INVALID_TOTP"]


async def test_an_account_blocked_from_the_start(clock: trio.testing.MockClock) -> None:
    async with run_firstock_simulator([FirstockAccount("bo", "bo-pw", blocked=True)]) as sim, \
            api(sim) as client:
        response = await login(client, user="bo", password="bo-pw")
        assert response.status_code == 401 and "User Blocked" in response.text
    assert sim.stats.logins_ok == 0 and sim.stats.login_failures == ["INVALID_INPUT"]


async def test_blocked_after_wrong_passwords(clock: trio.testing.MockClock) -> None:
    account = FirstockAccount("alice", "alice-pw", block_after=2)
    blocked = failed("INVALID_INPUT", "userId",
                     "Invalid Input : User Blocked due to multiple wrong attempts")
    async with run_firstock_simulator([account]) as sim, api(sim) as client:
        for _ in range(2):
            assert (await login(client, password="wrong")).json()["name"] == "INVALID_PASSWORD"
        for password in (None, "wrong"):  # blocked whatever the password
            response = await login(client, password=password)
            assert response.status_code == 401
            assert response.json() == blocked
        assert sim.countdowns("alice").wrong_passwords == 2
        sim.add_account(account)  # support unblocks: the tally starts afresh
        assert (await login(client)).status_code == 200
    assert sim.stats.login_failures == ["INVALID_PASSWORD"] * 2 + ["INVALID_INPUT"] * 2
    assert account.block_after == 2  # the account object itself was never touched


# -- scripted faults ------------------------------------------------------------------------------


async def test_rate_limited_logins(clock: trio.testing.MockClock) -> None:
    accounts = [
        FirstockAccount("alice", "alice-pw", rate_limited_times=2),
        FirstockAccount("bob", "bob-pw", rate_limited_times=1, retry_after=0.4,
                        rate_limit_name="RATE_LIMIT_EXCEEDED"),
    ]
    async with run_firstock_simulator(accounts) as sim, api(sim) as client:
        first = await login(client)
        assert first.status_code == 429
        assert first.headers["retry-after"] == "2"
        assert first.json()["name"] == "API_RATE_LIMIT"
        assert first.json()["code"] == "429"
        assert (await login(client)).status_code == 429
        assert (await login(client)).status_code == 200
        bob = await login(client, "bob")
        assert (bob.status_code, bob.headers["retry-after"]) == (429, "1")  # whole seconds
        assert bob.json()["name"] == "RATE_LIMIT_EXCEEDED"
        assert (await login(client, "bob")).status_code == 200
    assert sim.stats.status_429 == 3
    assert sim.stats.login_failures == ["API_RATE_LIMIT"] * 2 + ["RATE_LIMIT_EXCEEDED"]


async def test_server_error_is_a_500_whose_body_says_401(clock: trio.testing.MockClock) -> None:
    account = FirstockAccount("alice", "alice-pw", server_errors=1)
    async with run_firstock_simulator([account]) as sim, api(sim) as client:
        response = await login(client)
        assert response.status_code == 500
        assert response.reason_phrase == "Server error"
        assert response.json() == failed("SERVER_ERROR", "", "Server error", code="401")
        assert (await login(client)).status_code == 200
    assert sim.stats.login_failures == ["SERVER_ERROR"]


async def test_bad_gateway_is_not_json(clock: trio.testing.MockClock) -> None:
    account = FirstockAccount("alice", "alice-pw", bad_gateway=1, server_errors=1)
    async with run_firstock_simulator([account]) as sim, api(sim) as client:
        response = await login(client)
        assert response.status_code == 502
        assert response.headers["content-type"] == "text/html"
        assert "502 Bad Gateway" in response.text
        with pytest.raises(json.JSONDecodeError):
            response.json()
        # One scripted fault per login: the 500 comes next, then a login.
        assert [(await login(client)).status_code for _ in range(2)] == [500, 200]
    assert sim.stats.login_failures == ["BAD_GATEWAY", "SERVER_ERROR"]


async def test_login_delay(clock: trio.testing.MockClock) -> None:
    account = FirstockAccount("alice", "alice-pw", login_delay=30.0)
    async with run_firstock_simulator([account, BOB]) as sim, api(sim) as client:
        start = trio.current_time()
        assert (await login(client)).status_code == 200
        assert trio.current_time() - start == pytest.approx(30.0)
        start = trio.current_time()
        assert (await login(client, "bob")).status_code == 200  # other accounts are not slow
        assert trio.current_time() - start < 1.0


async def test_request_rate_limit(clock: trio.testing.MockClock) -> None:
    async with run_firstock_simulator([ALICE], rate_limit=2) as sim, api(sim) as client:
        statuses = [(await login(client)).status_code for _ in range(3)]
        assert statuses == [200, 200, 429]
        refused = await client.post("/userDetails", json={"userId": "alice", "jKey": "x"})
        assert refused.status_code == 429
        assert refused.headers["retry-after"] == "1"
        assert refused.json()["name"] == "RATE_LIMIT_EXCEEDED"
        await trio.sleep(1.0)  # the window slides past the first two
        assert (await login(client)).status_code == 200
    assert sim.stats.status_429 == 2
    assert sim.stats.login_failures == ["RATE_LIMIT_EXCEEDED"]
    assert sim.stats.requests == 5


# -- sessions: userDetails and logout -------------------------------------------------------------


async def test_user_details(clock: trio.testing.MockClock) -> None:
    async with run_firstock_simulator([ALICE, BOB]) as sim, api(sim) as client:
        token = (await login(client)).json()["data"]["susertoken"]
        bob_token = (await login(client, "bob")).json()["data"]["susertoken"]
        ok = await client.post("/userDetails", json={"userId": "alice", "jKey": token})
        assert ok.status_code == 200
        assert ok.json() == {"status": "Success", "data": {
            "actid": "alice", "userName": "Alice Example", "email": "alice@example.invalid"}}
        invalid = failed("INVALID_JKEY", "jKey", "jKey parameter is invalid")
        for sent in ({"userId": "alice", "jKey": "nonsense"},
                     {"userId": "alice", "jKey": bob_token},  # another user's token
                     {"userId": "mallory", "jKey": token}):
            response = await client.post("/userDetails", json=sent)
            assert (response.status_code, response.json()) == (401, invalid)
        missing = await client.post("/userDetails", json={"userId": "alice"})
        assert missing.status_code == 400
        assert missing.json()["error"]["field"] == "jKey"
        assert sim.expire_tokens("alice") == 1
        assert sim.expire_tokens("alice") == 0
        assert sim.token_of("alice") is None
        expired = await client.post("/userDetails", json={"userId": "alice", "jKey": token})
        assert expired.status_code == 401
        assert expired.json()["name"] == "SESSION_EXPIRED"
        assert expired.json()["error"]["field"] == "jKey"
    assert sim.stats.user_details == 1


async def test_token_lifetime(clock: trio.testing.MockClock) -> None:
    async with run_firstock_simulator([ALICE], token_lifetime=60.0) as sim, api(sim) as client:
        token = (await login(client)).json()["data"]["susertoken"]
        await trio.sleep(59.0)
        session = {"userId": "alice", "jKey": token}
        assert (await client.post("/userDetails", json=session)).status_code == 200
        await trio.sleep(1.0)
        assert (await client.post("/userDetails", json=session)).json()["name"] == (
            "SESSION_EXPIRED")
        assert (await client.post("/logout", json=session)).json()["name"] == "SESSION_EXPIRED"
        assert sim.token_of("alice") is None


async def test_logout(clock: trio.testing.MockClock) -> None:
    account = FirstockAccount("alice", "alice-pw", status_case="lowercase")
    async with run_firstock_simulator([account]) as sim, api(sim) as client:
        token = (await login(client)).json()["data"]["susertoken"]
        session = {"userId": "alice", "jKey": token}
        response = await client.post("/logout", json=session)
        assert response.status_code == 200
        assert response.json() == {"status": "success", "data": "Successfully logged out"}
        assert sim.token_of("alice") is None
        for path in ("/logout", "/userDetails"):
            again = await client.post(path, json=session)
            assert again.status_code == 401
            assert again.json() == failed("INVALID_JKEY", "jKey", "jKey parameter is invalid",
                                          status="failed")
    assert sim.stats.logouts == 1


async def test_a_new_login_replaces_the_old_token(clock: trio.testing.MockClock) -> None:
    async with run_firstock_simulator([ALICE]) as sim, api(sim) as client:
        old = (await login(client)).json()["data"]["susertoken"]
        new = (await login(client)).json()["data"]["susertoken"]
        stale = await client.post("/userDetails", json={"userId": "alice", "jKey": old})
        fresh = await client.post("/userDetails", json={"userId": "alice", "jKey": new})
    assert stale.json()["name"] == "INVALID_JKEY"
    assert fresh.status_code == 200


# -- HTTP itself ----------------------------------------------------------------------------------


async def test_unknown_path_and_wrong_method(clock: trio.testing.MockClock) -> None:
    async with run_firstock_simulator([ALICE]) as sim, api(sim) as client:
        nowhere = await client.post("/placeOrder", json={})
        outside = await client.post(sim.url + "login", json=body())
        wrong_method = await client.get("/login")
        head = await client.head("/login")
    for response in (nowhere, outside):
        assert response.status_code == 404
        assert response.json()["name"] == "RESOURCE_NOT_FOUND"
    assert wrong_method.status_code == 405
    assert wrong_method.headers["allow"] == "POST"
    assert wrong_method.json()["name"] == "METHOD_NOT_ALLOWED"
    assert (head.status_code, head.content) == (405, b"")
    assert sim.stats.requests == 4
    assert sim.stats.http_connections == 1


async def test_malformed_http_is_400_and_closed(clock: trio.testing.MockClock) -> None:
    async with run_firstock_simulator([ALICE]) as sim:
        with trio.fail_after(1):  # answered at once, not at a timeout
            answer = await raw_http(sim, b"this is not HTTP\r\n\r\n")
            too_big = await raw_http(sim, b"POST /api/V3/login HTTP/1.1\r\nHost: x\r\n"
                                          b"Content-Length: 5000000\r\n\r\n")
        # The client still works afterwards.
        assert await token_for(sim)
    head, _, payload = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 400 ")
    assert b"connection: close" in head.lower()
    assert json.loads(payload)["name"] == "BAD_REQUEST"
    assert too_big.startswith(b"HTTP/1.1 413 ")
    assert sim.stats.malformed_requests == 2
    assert sim.stats.requests == 1


async def test_keep_alive_and_connection_close(clock: trio.testing.MockClock) -> None:
    login_json = json.dumps(body()).encode()
    request = (b"POST /api/V3/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
               b"Content-Length: %d\r\n" % len(login_json))
    async with run_firstock_simulator([ALICE]) as sim:
        # Two pipelined requests on one connection; the second asks to close afterwards.
        with trio.fail_after(1):  # closed after the second answer, not at a timeout
            answer = await raw_http(sim, request + b"\r\n" + login_json
                                    + request + b"Connection: close\r\n\r\n" + login_json)
    assert answer.count(b"HTTP/1.1 200 OK\r\n") == 2
    assert sim.stats.logins_ok == 2
    assert sim.stats.http_connections == 1


async def test_idle_and_slow_clients_are_let_go(clock: trio.testing.MockClock) -> None:
    async with run_firstock_simulator([ALICE]) as sim:
        start = trio.current_time()
        with trio.fail_after(IDLE_TIMEOUT + 1):
            idle = await raw_http(sim, b"")
        assert trio.current_time() - start == pytest.approx(IDLE_TIMEOUT)
        start = trio.current_time()
        with trio.fail_after(BODY_TIMEOUT + 1):
            slow = await raw_http(sim, b"POST /api/V3/login HTTP/1.1\r\nHost: x\r\n"
                                       b"Content-Length: 10\r\n\r\n{")
        assert trio.current_time() - start == pytest.approx(BODY_TIMEOUT)
    assert idle == b""  # closed without a word
    assert slow.startswith(b"HTTP/1.1 408 ")
    assert b"REQUEST_TIMEOUT" in slow


async def test_tls(clock: trio.testing.MockClock) -> None:
    ca = trustme.CA()
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server_ctx)
    client_ctx = ssl.create_default_context()
    ca.configure_trust(client_ctx)
    async with run_firstock_simulator([ALICE], ssl_context=server_ctx) as sim:
        assert sim.base_url.startswith("https://")
        assert sim.noren_url.startswith("wss://")
        async with api(sim, verify=client_ctx) as client:
            token = (await login(client)).json()["data"]["susertoken"]
        async with trio_websocket.open_websocket_url(sim.noren_url,
                                                     ssl_context=client_ctx) as ws:
            await ws.send_message(connect_message("alice", token))
            assert (await recv(ws))["s"] == "OK"


# -- the Noren socket -----------------------------------------------------------------------------


async def test_noren_connect_heartbeats_and_touchline(clock: trio.testing.MockClock) -> None:
    async with run_firstock_simulator([ALICE]) as sim:
        token = await token_for(sim)
        assert sim.noren_url == f"ws://127.0.0.1:{sim.sockets.port}/NorenWSTP/"
        async with noren(sim) as ws:
            await ws.send_message(connect_message("alice", token))
            assert await recv(ws) == {"t": "ck", "s": "OK", "uid": "alice"}
            assert sim.live_sockets("alice") == 1
            for _ in range(3):
                await ws.send_message('{"t":"h"}')
            await ws.send_message('{"t":"t","k":"NSE|26000#NSE|26009"}')
            answers = [await recv(ws) for _ in range(4)]
            await ws.send_message('{"t":"u","k":"NSE|26000"}')
            assert await recv(ws) == {"t": "uk", "k": "NSE|26000"}
        await settle(sim, "alice", 0)
    assert [(a["t"], a["e"], a["tk"]) for a in answers] == [
        ("tk", "NSE", "26000"), ("tf", "NSE", "26000"), ("tk", "NSE", "26009"),
        ("tf", "NSE", "26009")]
    assert all("lp" in a for a in answers)
    assert sim.stats.heartbeats == 3
    assert sim.stats.sockets_opened == 1
    assert sim.stats.violations == []


@pytest.mark.parametrize("problem", ["nonsense", "other-user", "actid", "expired"])
async def test_noren_connect_refused(problem: str, clock: trio.testing.MockClock) -> None:
    async with run_firstock_simulator([ALICE, BOB]) as sim:
        token = await token_for(sim)
        message = connect_message("alice", token)
        if problem == "nonsense":
            message = connect_message("alice", "nonsense")
        elif problem == "other-user":
            message = connect_message("bob", token)
        elif problem == "actid":
            message = connect_message("alice", token, actid="bob")
        else:
            sim.expire_tokens("alice")
        async with noren(sim) as ws:
            await ws.send_message(message)
            answer = await recv(ws)
            assert await close_code(ws) == 1000
    text = ("Session Expired :  Invalid Session Key" if problem == "expired"
            else "Invalid Session Key")
    assert answer == {"t": "ck", "s": "Not_Ok", "emsg": text}
    assert sim.stats.socket_auth_failures == 1
    assert sim.live_sockets("alice") == sim.live_sockets("bob") == 0


async def test_noren_message_before_the_connect_answer(clock: trio.testing.MockClock) -> None:
    async with run_firstock_simulator([ALICE]) as sim:
        token = await token_for(sim)
        async with noren(sim) as ws:
            await ws.send_message(connect_message("alice", token))
            await ws.send_message('{"t":"h"}')  # not waiting for {"t":"ck"}
            assert await close_code(ws) == 1008
        async with noren(sim) as ws:
            await ws.send_message('{"t":"h"}')  # no connect at all
            assert await close_code(ws) == 1008
    first, second = sim.stats.violations
    assert "before the connect answer" in first
    assert "not a connect" in second
    assert sim.stats.heartbeats == 0


async def test_noren_heartbeat_timeout(clock: trio.testing.MockClock) -> None:
    async with run_firstock_simulator([ALICE], noren_heartbeat_timeout=10.0) as sim:
        token = await token_for(sim)
        async with noren(sim) as ws:
            await ws.send_message(connect_message("alice", token))
            await recv(ws)
            start = trio.current_time()
            await trio.sleep(6.0)
            await ws.send_message('{"t":"h"}')
            assert await close_code(ws) == 1008
            assert trio.current_time() - start == pytest.approx(16.0, abs=0.1)
    assert sim.stats.heartbeats == 1
    assert sim.stats.heartbeat_timeouts == 1
    assert "heartbeat" in sim.stats.violations[0]


# -- the new socket -------------------------------------------------------------------------------


async def test_new_socket_subscribe_and_pings(clock: trio.testing.MockClock) -> None:
    async with run_firstock_simulator([ALICE]) as sim:
        token = await token_for(sim)
        url = sim.socket_url_for("alice", token)
        assert url.startswith(sim.socket_url + "?userId=alice&jKey=")
        assert url.endswith("&source=developer-api")
        async with trio_websocket.open_websocket_url(url) as ws:
            assert await recv(ws) == AUTH_OK
            await ws.send_message('{"action":"subscribe","tokens":"NSE:26000|BSE:1"}')
            ack = await recv(ws)
            ticks = [await recv(ws) for _ in range(2)]
            await trio.sleep(12.0)  # pings at 5 s and 10 s, answered by trio-websocket
            assert sim.live_sockets("alice") == 1
    assert (ack["status"], ack["action"], ack["tokens"]) == ("success", "subscribe",
                                                             "NSE:26000|BSE:1")
    assert [(t["c_exch_seg"], t["c_symbol"]) for t in ticks] == [("NSE", "26000"), ("BSE", "1")]
    assert (sim.stats.pings_sent, sim.stats.pongs, sim.stats.ping_timeouts) == (2, 2, 0)


@pytest.mark.parametrize("problem", ["nonsense", "no-jkey", "nothing", "other-user", "expired"])
async def test_new_socket_unauthenticated(problem: str, clock: trio.testing.MockClock) -> None:
    async with run_firstock_simulator([ALICE, BOB]) as sim:
        token = await token_for(sim)
        url = {
            "nonsense": sim.socket_url_for("alice", "nonsense"),
            "no-jkey": f"{sim.socket_url}?userId=alice",
            "nothing": sim.socket_url,
            "other-user": sim.socket_url_for("bob", token),
            "expired": sim.socket_url_for("alice", token),
        }[problem]
        if problem == "expired":
            sim.expire_tokens("alice")
        async with trio_websocket.open_websocket_url(url) as ws:
            assert await recv(ws) == AUTH_FAILED
            assert await close_code(ws) == 1000
    assert sim.stats.socket_auth_failures == 1
    assert sim.stats.sockets_opened == 1


async def test_new_socket_drops_a_client_that_never_pongs(clock: trio.testing.MockClock) -> None:
    async with run_firstock_simulator([ALICE], socket_ping_interval=5.0) as sim:
        token = await token_for(sim)
        async with deaf_socket(sim.socket_url_for("alice", token)) as (stream, first):
            assert json.loads(first) == AUTH_OK
            start = trio.current_time()
            await read_until_closed(stream)
            assert trio.current_time() - start == pytest.approx(15.0, abs=0.1)
        assert sim.live_sockets("alice") == 0
    assert (sim.stats.pings_sent, sim.stats.pongs, sim.stats.ping_timeouts) == (1, 0, 1)
    assert "no Pong" in sim.stats.violations[0]


async def test_unknown_socket_path_is_refused(clock: trio.testing.MockClock) -> None:
    async with run_firstock_simulator([ALICE]) as sim:
        with pytest.raises(trio_websocket.HandshakeError):
            async with trio_websocket.open_websocket_url(sim.sockets.url + "elsewhere"):
                pass
    assert sim.stats.sockets_opened == 0


# -- socket limits and controls -------------------------------------------------------------------


async def test_a_fourth_socket_is_refused(clock: trio.testing.MockClock) -> None:
    async with run_firstock_simulator([ALICE, BOB]) as sim:
        token, bob_token = await token_for(sim), await token_for(sim, "bob")
        async with AsyncExitStack() as stack:
            await noren_connected(sim, stack, token)
            await feed_connected(sim, stack, token)
            third = await feed_connected(sim, stack, token)
            assert sim.live_sockets("alice") == 3
            async with trio_websocket.open_websocket_url(sim.socket_url_for("alice", token)) as ws:
                assert await ws.get_message() == MAX_SESSIONS_TEXT
                assert await close_code(ws) == 1000
            async with noren(sim) as ws:
                await ws.send_message(connect_message("alice", token))
                assert await recv(ws) == {"t": "ck", "s": "Not_Ok", "emsg": MAX_SESSIONS_TEXT}
                assert await close_code(ws) == 1000
            await feed_connected(sim, stack, bob_token, "bob")  # the limit is per user
            await third.aclose()
            await settle(sim, "alice", 2)
            await noren_connected(sim, stack, token)  # a slot is free again
            assert sim.live_sockets("alice") == 3
    assert sim.stats.sockets_refused == 2
    assert sim.stats.sockets_opened == 7


async def test_drop_sockets(clock: trio.testing.MockClock) -> None:
    async with run_firstock_simulator([ALICE, BOB]) as sim:
        token, bob_token = await token_for(sim), await token_for(sim, "bob")
        async with AsyncExitStack() as stack:
            sockets = [await noren_connected(sim, stack, token),
                       await feed_connected(sim, stack, token)]
            bobs = await feed_connected(sim, stack, bob_token, "bob")
            assert await sim.drop_sockets("alice") == 2
            assert sim.live_sockets("alice") == 0
            assert [await close_code(ws) for ws in sockets] == [1006, 1006]
            assert sim.live_sockets("bob") == 1
            await bobs.send_message('{"action":"unsubscribe","tokens":"NSE:26000"}')
            assert (await recv(bobs))["action"] == "unsubscribe"
            assert await sim.drop_sockets("alice") == 0
            assert await sim.drop("bob") == 1  # the name the other simulators use
            assert await close_code(bobs) == 1006
            assert sim.token_of("bob") == bob_token  # only the socket went
    assert sim.stats.violations == []


async def test_sockets_outlive_an_expired_token(clock: trio.testing.MockClock) -> None:
    async with run_firstock_simulator([ALICE]) as sim:
        token = await token_for(sim)
        async with AsyncExitStack() as stack:
            ws = await noren_connected(sim, stack, token)
            sim.expire_tokens("alice")
            await ws.send_message('{"t":"h"}')
            await ws.send_message('{"t":"d","k":"NSE|26000"}')
            assert [(await recv(ws))["t"] for _ in range(2)] == ["dk", "df"]
            assert sim.live_sockets("alice") == 1


# -- accounts and options -------------------------------------------------------------------------


def test_accounts_are_checked() -> None:
    with pytest.raises(ValueError, match="base32"):
        FirstockAccount("a", "p", totp_seed="not base32!")
    with pytest.raises(ValueError, match="status_case"):
        FirstockAccount("a", "p", status_case="shouting")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="use 0 or more"):
        FirstockAccount("a", "p", server_errors=-1)
    with pytest.raises(ValueError, match="block_after"):
        FirstockAccount("a", "p", block_after=0)
    with pytest.raises(ValueError, match="retry_after"):
        FirstockAccount("a", "p", retry_after=0)
    with pytest.raises(ValueError, match="user_id"):
        FirstockAccount("", "p")
    with pytest.raises(ValueError, match="api_version"):
        FirstockSimulator(api_version="v5")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="prefix"):
        FirstockSimulator(prefix="api/V3/")
    with pytest.raises(ValueError, match="rate_limit"):
        FirstockSimulator(rate_limit=0)


async def test_stats_reset_and_account_lookup(clock: trio.testing.MockClock) -> None:
    async with run_firstock_simulator([ALICE]) as sim:
        sim.add_account(BOB)
        assert sim.account_names() == ["alice", "bob"]
        assert sim.account("bob") is BOB
        assert sim.account("mallory") is None
        token = await token_for(sim)
        sim.reset_stats()
        assert sim.stats.logins_ok == 0
        assert sim.token_of("alice") == token  # tokens survive a reset


async def test_demo_accounts_behave_as_documented(clock: trio.testing.MockClock) -> None:
    accounts = demo_accounts()
    assert len({a.user_id for a in accounts}) == len(accounts)
    documented = demo_accounts.__doc__ or ""
    assert all(f"\n    {a.user_id} " in documented for a in accounts)
    code = pyotp.TOTP(DEMO_TOTP_SEED).at(PINNED)
    async with run_firstock_simulator(accounts, wall_clock=lambda: PINNED) as sim:
        async with api(sim) as client:
            first = {}
            for account in accounts:
                totp = {"totp": code, "fixed": DEMO_FIXED_TOTP}.get(account.user_id, "000000")
                first[account.user_id] = (await login(client, account.user_id,
                                                      totp=totp)).status_code
            for _ in range(3):
                await login(client, "blocky", password="wrong")
            blocked = (await login(client, "blocky")).json()["error"]["message"]
            lower = (await login(client, "lower")).json()["status"]
    assert first == {"alice": 200, "totp": 200, "fixed": 200, "blocky": 200, "flaky": 500,
                     "proxy": 502, "limited": 429, "slow": 200, "lower": 200, "otpfail": 401}
    assert "User Blocked" in blocked
    assert lower == "success"
