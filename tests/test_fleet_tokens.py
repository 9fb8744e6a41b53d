"""The fleet's sealed data in a real Redis: day tokens and handovers open only with the fleet
key, only where they were written, and nothing secret is in Redis in any form."""

from __future__ import annotations

import base64
import inspect
import itertools
import os
import pickle
from collections.abc import AsyncIterator, Callable, Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import trio
from helpers import session_kwargs
from redis_server import RedisServer

from brokergate import FirstockConfig, Secret, StoredToken, open_session
from brokergate.engine._errors import ConfigurationError
from brokergate.engine.fleet._client import (
    CoordinatorUnavailable,
    RedisLink,
    open_link,
    redis_target,
)
from brokergate.engine.fleet._sealed import (
    KEY_ENV,
    KEY_FILE_ENV,
    PREVIOUS_ENV,
    Sealer,
    load_sealer,
    new_fleet_key,
)
from brokergate.engine.fleet._tokens import (
    RedisTokenStore,
    Value,
    escape,
    seal_mapping,
    token_key,
    unseal_mapping,
)
from brokergate.simulators.firstock import FirstockAccount, run_firstock_simulator

NOW = datetime.now(UTC).replace(microsecond=0)
KEY_A, KEY_B = os.urandom(32), os.urandom(32)


def key_text(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode()


@pytest.fixture
async def link(redis_server: RedisServer) -> AsyncIterator[RedisLink]:
    async with open_link(redis_target(redis_server.url), answer_within=2.0) as opened:
        yield opened


def store(link: RedisLink, key: bytes = KEY_A, *, previous: Iterable[bytes] = (),
          **options: Any) -> RedisTokenStore:
    return RedisTokenStore(link, Sealer(key, previous=previous), **options)


# --- round trip, expiry, key names ---------------------------------------------------------------


async def test_a_token_round_trips_and_leaves_redis_after_its_day(link: RedisLink) -> None:
    now = datetime.now(UTC).replace(microsecond=0)  # expiry counts from the real now
    tokens = store(link)
    assert await tokens.load("firstock", "AA1") is None
    await tokens.save("firstock", "AA1", StoredToken(Secret("tok-AA1"), now))
    found = await store(link).load("firstock", "AA1")  # another process, same key
    assert found is not None and found.token.reveal() == "tok-AA1" and found.created == now
    name = "brokergate:token:firstock:AA1"
    ttl = await link.do(link.client.pttl(name))
    assert timedelta(hours=35, minutes=59) < timedelta(milliseconds=ttl) <= timedelta(hours=36)
    await tokens.delete("firstock", "AA1")
    assert await tokens.load("firstock", "AA1") is None
    assert await link.do(link.client.exists([name])) == 0


async def test_expiry_counts_from_the_tokens_creation_and_is_bounded(link: RedisLink) -> None:
    now = datetime.now(UTC).replace(microsecond=0)  # expiry counts from the real now
    tokens = store(link)
    await tokens.save("firstock", "OLD", StoredToken(Secret("t1"), now - timedelta(hours=30)))
    ttl = timedelta(milliseconds=await link.do(link.client.pttl(tokens.key("firstock", "OLD"))))
    assert timedelta(hours=5, minutes=59) < ttl <= timedelta(hours=6)
    # A creation time in the future (a skewed clock) never stretches the stay past 36 h.
    await tokens.save("firstock", "NEW", StoredToken(Secret("t2"), now + timedelta(days=3)))
    ttl = timedelta(milliseconds=await link.do(link.client.pttl(tokens.key("firstock", "NEW"))))
    assert ttl <= timedelta(hours=36)
    # A token already past its time replaces nothing with itself: the key goes.
    await tokens.save("firstock", "OLD", StoredToken(Secret("t3"), now - timedelta(hours=40)))
    assert await tokens.load("firstock", "OLD") is None


async def test_odd_user_names_cannot_break_the_key_structure(link: RedisLink) -> None:
    tokens = store(link)
    users = ["a:b", "a%3Ab", "x*", "{tag}", "a b", "ünï", "../x", "a" * 500, "a" * 501]
    for n, user in enumerate(users):
        await tokens.save("firstock", user, StoredToken(Secret(f"tok-{n}"), NOW))
    names = sorted([k.decode() async for k in link.client.scan_iter(match="brokergate:token:*")])
    assert len(names) == len(users)  # no two users share a key
    assert all(name.count(":") == 3 and not set(name) & set("{}*?[] ") for name in names)
    assert all(len(name) <= len("brokergate:token:firstock:") + 120 for name in names)
    assert token_key("brokergate", "firstock", "a:b") == "brokergate:token:firstock:a%3Ab"
    assert escape("a%3Ab") == "a%253Ab"
    for n, user in enumerate(users):
        found = await tokens.load("firstock", user)
        assert found is not None and found.token.reveal() == f"tok-{n}"


# --- what does not open -------------------------------------------------------------------------


async def test_a_value_sealed_with_another_key_is_no_token_until_that_key_is_previous(
    link: RedisLink,
) -> None:
    await store(link, KEY_A).save("firstock", "AA1", StoredToken(Secret("tok-A"), NOW))
    heard: list[str] = []
    assert await store(link, KEY_B, on_unreadable=heard.append).load("firstock", "AA1") is None
    assert "another fleet key" in heard[0] and "tok-A" not in heard[0]
    assert Sealer(KEY_A).key_id in heard[0]  # which key it was sealed with, by id only
    rotated = store(link, KEY_B, previous=[KEY_A])
    found = await rotated.load("firstock", "AA1")
    assert found is not None and found.token.reveal() == "tok-A"
    # It seals with the current key only: a process still on the old key alone cannot read it.
    await rotated.save("firstock", "AA1", StoredToken(Secret("tok-B"), NOW))
    raw = await link.do(link.client.get(rotated.key("firstock", "AA1")))
    assert raw is not None and raw[1:5].hex() == Sealer(KEY_B).key_id
    assert await store(link, KEY_A).load("firstock", "AA1") is None


def test_every_altered_or_truncated_byte_is_refused() -> None:
    sealer = Sealer(KEY_A)
    sealed = sealer.seal(b'{"token": "tok"}', "k")
    assert sealer.unseal(sealed, "k").data == b'{"token": "tok"}'
    for at in range(len(sealed)):
        altered = bytearray(sealed)
        altered[at] ^= 0x01
        opened = sealer.unseal(bytes(altered), "k")
        assert opened.data is None and opened.reason, at
    for length in range(len(sealed)):
        opened = sealer.unseal(sealed[:length], "k")
        assert opened.data is None and opened.reason, length
    assert "version 2" in (sealer.unseal(b"\x02" + sealed[1:], "k").reason or "")
    assert "altered" in (sealer.unseal(sealed[:-1] + bytes([sealed[-1] ^ 1]), "k").reason or "")


async def test_a_tampered_value_in_redis_is_no_token(link: RedisLink) -> None:
    heard: list[str] = []
    tokens = store(link, on_unreadable=heard.append)
    await tokens.save("firstock", "AA1", StoredToken(Secret("tok-AA1"), NOW))
    name = tokens.key("firstock", "AA1")
    raw = await link.do(link.client.get(name))
    assert raw is not None
    await link.do(link.client.setrange(name, 30, bytes([raw[30] ^ 0x80])))
    assert await tokens.load("firstock", "AA1") is None
    assert "does not authenticate" in heard[0]


async def test_a_value_moved_to_another_key_does_not_open_there(link: RedisLink) -> None:
    tokens = store(link)
    await tokens.save("firstock", "AA1", StoredToken(Secret("tok-AA1"), NOW))
    await link.do(link.client.copy(tokens.key("firstock", "AA1"), tokens.key("firstock", "BB2")))
    assert await tokens.load("firstock", "BB2") is None  # AA1's token does not log BB2 in
    assert await tokens.load("firstock", "AA1") is not None
    sealer = Sealer(KEY_A)
    handover = seal_mapping(sealer, "brokergate:lease:cqg:u1", {"session_token": Secret("s")})
    assert unseal_mapping(sealer, "brokergate:lease:cqg:u2", handover)[0] is None


async def test_a_value_that_opens_but_is_no_token_is_no_token(link: RedisLink) -> None:
    sealer, heard = Sealer(KEY_A), list[str]()
    tokens = RedisTokenStore(link, sealer, on_unreadable=heard.append)
    name = tokens.key("firstock", "AA1")
    for doc in (b"[]", b'{"token": "t"}', b'{"token": "", "created": "2026-01-01T00:00:00+00:00"}',
                b'{"token": "t", "created": "2026-01-01T00:00:00"}', b"\xff"):
        await link.do(link.client.set(name, sealer.seal(doc, name)))
        assert await tokens.load("firstock", "AA1") is None
    assert len(heard) == 5 and all("not a stored token" in text for text in heard)


class OpaqueValue:
    """Not JSON: a sealed mapping refuses it (naming its field, never showing it)."""

    def __init__(self, text: str) -> None:
        self.text = text


def test_a_handover_mapping_round_trips_with_its_secrets_as_secrets() -> None:
    sealer = Sealer(KEY_A)
    values: dict[str, Value] = {"session_token": Secret("sess-1"), "holder": "host-1/42",
                                "fence": 7, "ok": True, "gone": None, "rate": 1.5,
                                "logon_history": {"last_attempt": 1.5, "successes": [1.0]}}
    sealed = seal_mapping(sealer, "lease-key#handover", values)
    opened, reason = unseal_mapping(sealer, "lease-key#handover", sealed)
    assert reason is None and opened == values
    assert opened is not None and isinstance(opened["session_token"], Secret)
    assert "sess-1" not in repr(opened)
    with pytest.raises(TypeError, match="'opaque'") as caught:
        seal_mapping(sealer, "k", {"opaque": OpaqueValue("sess-1")})  # type: ignore[dict-item]
    assert "sess-1" not in str(caught.value)
    wrong, why = unseal_mapping(sealer, "k", sealer.seal(b'{"values": [], "secret": []}', "k"))
    assert wrong is None and why == "it opens, but is not a sealed mapping"


# --- where the key comes from -------------------------------------------------------------------


def private_file(path: Path, text: str, mode: int = 0o600) -> Path:
    path.write_text(text)
    path.chmod(mode)
    return path


def test_the_key_comes_from_the_environment_or_a_private_file(tmp_path: Path) -> None:
    assert load_sealer(env={KEY_ENV: key_text(KEY_A)}).key_id == Sealer(KEY_A).key_id
    unpadded = key_text(KEY_A).rstrip("=")
    assert load_sealer(env={KEY_ENV: unpadded}).key_id == Sealer(KEY_A).key_id
    keys = private_file(tmp_path / "fleet.key",
                        f"# rotated 2026-05\n{key_text(KEY_B)}\n\n{key_text(KEY_A)}\n")
    from_file = load_sealer(env={KEY_FILE_ENV: str(keys)})
    assert from_file.key_ids == (Sealer(KEY_B).key_id, Sealer(KEY_A).key_id)
    assert load_sealer(key_file=keys, env={KEY_ENV: "ignored"}).key_id == Sealer(KEY_B).key_id
    previous = load_sealer(env={KEY_ENV: key_text(KEY_B), PREVIOUS_ENV: f" {key_text(KEY_A)} ,"})
    assert previous.key_ids == from_file.key_ids
    made = new_fleet_key()
    assert len(base64.urlsafe_b64decode(made)) == 32 and made != new_fleet_key()
    assert load_sealer(env={KEY_ENV: made}).key_id != Sealer(KEY_A).key_id


def test_a_missing_malformed_or_short_key_is_refused_with_how_to_make_one(tmp_path: Path) -> None:
    short = base64.urlsafe_b64encode(KEY_A[:16]).decode()
    long = base64.urlsafe_b64encode(KEY_A + b"!").decode()
    bad_char = key_text(KEY_A)[:20] + "!" + key_text(KEY_A)[21:]
    cases: list[dict[str, str]] = [
        {},
        {KEY_ENV: "   "},
        {KEY_ENV: bad_char},
        {KEY_ENV: short},
        {KEY_ENV: long},
        {KEY_ENV: "ключ-" + key_text(KEY_A)},
        {KEY_ENV: key_text(KEY_A), PREVIOUS_ENV: short},
        {KEY_FILE_ENV: str(private_file(tmp_path / "empty.key", "# nothing\n"))},
        {KEY_FILE_ENV: str(private_file(tmp_path / "short.key", short))},
    ]
    for env in cases:
        with pytest.raises(ConfigurationError) as caught:
            load_sealer(env=env)
        text = str(caught.value)
        assert "brokergate fleet keygen" in text and KEY_FILE_ENV in text, env
        for material in (key_text(KEY_A), short, long, bad_char, KEY_A.hex()):
            assert material not in text and material[:12] not in text, env
    with pytest.raises(ConfigurationError, match="not 32 bytes") as caught:
        Sealer(KEY_A[:31])
    assert "brokergate fleet keygen" in str(caught.value)
    assert all(form.decode("latin-1") not in str(caught.value) for form in forms(KEY_A[:31]))
    with pytest.raises(ConfigurationError, match="set one of them"):
        load_sealer(env={KEY_ENV: key_text(KEY_A), KEY_FILE_ENV: "/nonexistent"})
    with pytest.raises(ConfigurationError, match="cannot read the fleet key file"):
        load_sealer(env={KEY_FILE_ENV: str(tmp_path / "missing.key")})


@pytest.mark.skipif(os.name != "posix", reason="file modes are POSIX")
def test_a_key_file_others_can_read_is_refused(tmp_path: Path) -> None:
    for mode in (0o644, 0o640, 0o604, 0o620):
        path = private_file(tmp_path / f"k{mode:o}", key_text(KEY_A), mode)
        with pytest.raises(ConfigurationError, match="not private") as caught:
            load_sealer(key_file=path)
        assert f"chmod 600 {path}" in str(caught.value)
        assert key_text(KEY_A) not in str(caught.value)
    (tmp_path / "dir.key").mkdir(mode=0o700)
    with pytest.raises(ConfigurationError, match="not a regular file"):
        load_sealer(key_file=tmp_path / "dir.key")
    os.mkfifo(fifo := tmp_path / "fifo.key", 0o600)  # refused, not waited on
    with pytest.raises(ConfigurationError, match="not a regular file"):
        load_sealer(key_file=fifo)
    target = private_file(tmp_path / "real.key", key_text(KEY_A), 0o400)
    (tmp_path / "link.key").symlink_to(target)  # secret mounts are symlinks to private files
    assert load_sealer(key_file=tmp_path / "link.key").key_id == Sealer(KEY_A).key_id


def test_the_sealer_shows_its_key_id_only() -> None:
    sealer = Sealer(KEY_A, previous=[KEY_B])
    shown = [repr(sealer), str(sealer), f"{sealer}", repr(sealer.unseal(b"x" * 40, "k")),
             repr(sealer.unseal(sealer.seal(b"tok", "k"), "k"))]
    assert shown[0] == f"<Sealer key {sealer.key_id} (+1 previous)>"
    for text in shown:
        for raw in (KEY_A, KEY_B):
            assert all(form.decode("latin-1") not in text for form in forms(raw))
            assert raw.hex()[:8] not in text and key_text(raw)[:8] not in text
    assert "tok" not in shown[-1]
    with pytest.raises(TypeError, match="not picklable"):
        pickle.dumps(sealer)


# --- nothing secret is in Redis ------------------------------------------------------------------


async def until(check: Callable[[], Any], seconds: float = 10.0) -> None:
    """Wait (real time) until ``check()`` (awaited if it is a coroutine) is truthy."""
    with trio.fail_after(seconds):
        for _ in itertools.count():
            found = check()
            if inspect.isawaitable(found):
                found = await found
            if found:
                return
            await trio.sleep(0.01)


def forms(needle: bytes) -> list[bytes]:
    """``needle`` and how it looks hex- or base64-encoded inside a longer value: for base64,
    the characters that depend on the needle alone at each of the three alignments."""
    found = [needle, needle.hex().encode(), needle.hex().upper().encode()]
    for encode in (base64.b64encode, base64.urlsafe_b64encode):
        for offset in range(3):
            encoded = encode(b"\0" * offset + needle).rstrip(b"=")
            whole = (offset + len(needle)) * 8 // 6
            found.append(encoded[(0, 2, 3)[offset]:whole])
    return [form for form in found if len(form) >= 6]


def hits(blob: bytes, needles: dict[str, bytes]) -> list[str]:
    """Which needles are in ``blob`` in some form (named, so a failure shows no secret)."""
    return [f"{what} (form {n})" for what, needle in needles.items()
            for n, form in enumerate(forms(needle)) if form in blob]


async def everything_in(link: RedisLink) -> bytes:
    """Every key of the server, with its DUMP and, by its type, its value."""
    parts: list[bytes] = []
    async for key in link.client.scan_iter():
        parts.append(key)
        dumped = await link.do(link.client.dump(key))
        parts.append(dumped or b"")
        kind = await link.do(link.client.type(key))
        if kind == b"string":
            value = await link.do(link.client.get(key))
            parts.append(value or b"")
        elif kind == b"hash":
            for field, item in (await link.do(link.client.hgetall(key))).items():
                parts += [field, item]
        else:
            raise AssertionError(f"a {kind!r} in Redis: scan its values too")
    return b"\n".join(parts)


async def test_no_token_password_or_key_is_in_redis_in_any_form(
    redis_server: RedisServer, link: RedisLink,
) -> None:
    # The scan finds a secret where there is one: in a value, its DUMP and the snapshot.
    canary = {"canary": b"canary-secret-7f3e9"}
    await link.do(link.client.set("plain", base64.b64encode(b"::" + canary["canary"])))
    assert hits(await everything_in(link), canary) and hits(redis_server.dump(), canary)
    await link.do(link.client.delete(["plain"]))

    sealer = load_sealer(env={KEY_ENV: key_text(KEY_A)})
    tokens = RedisTokenStore(link, sealer)
    needles = {"fleet key": KEY_A, "fleet key text": key_text(KEY_A).encode()}
    users = [f"U{n:02d}" for n in range(5)]
    accounts = [FirstockAccount(u, f"{u}-pw-Qx81", fixed_totp="481516", api_key=f"api-{u}-9zK")
                for u in users]
    async with run_firstock_simulator(accounts) as sim:
        for acct in accounts:  # what the sessions were given
            needles[f"{acct.user_id} password"] = acct.password.encode()
            needles[f"{acct.user_id} api key"] = f"api-{acct.user_id}-9zK".encode()
        needles["totp"] = b"481516"
        async with trio.open_nursery() as nursery:
            done = trio.Event()
            ready: list[str] = []

            async def one(acct: FirstockAccount) -> None:
                config = FirstockConfig(
                    base_url=sim.base_url, user_id=acct.user_id, password=Secret(acct.password),
                    api_key=Secret(f"api-{acct.user_id}-9zK"), vendor_code=f"{acct.user_id}_API",
                    totp=Secret("481516"), socket="none")
                async with open_session(config, token_store=tokens,
                                        **session_kwargs([])) as session:
                    await session.wait_authenticated()
                    await until(lambda: tokens.load("firstock", acct.user_id))
                    ready.append(acct.user_id)
                    await done.wait()  # scanned while logged in

            for acct in accounts:
                nursery.start_soon(one, acct)
            await until(lambda: len(ready) == len(accounts), seconds=20)
            for user in users:
                token = sim.token_of(user)
                assert token is not None
                needles[f"{user} token"] = token.encode()
            # Tokens saved directly too, and a handover with a session token for a successor.
            for n in range(3):
                token = f"direct-token-{n}-5fa0c2e8"
                needles[f"direct token {n}"] = token.encode()
                await tokens.save("firstock", f"D{n}", StoredToken(Secret(token), NOW))
            handover_key = "brokergate:lease:cqg:trader-1"
            handover = seal_mapping(sealer, f"{handover_key}#handover", {
                "session_token": Secret("cqg-session-token-d41d8cd9"), "fence": 3,
                "holder": "host-a/4242"})
            needles["session token"] = b"cqg-session-token-d41d8cd9"
            await link.do(link.client.hset(handover_key, {"handover": handover, "fence": "3"}))

            keys = [key async for key in link.client.scan_iter()]
            assert len(keys) == len(users) + 3 + 1
            # Computed apart from the asserts, so that a failure names needles, not secrets.
            in_keys = hits(await everything_in(link), needles)
            in_snapshot = hits(redis_server.dump(), needles)
            assert in_keys == [] and in_snapshot == []
            done.set()

    stored = await link.do(link.client.hget(handover_key, "handover"))
    opened, _ = unseal_mapping(sealer, f"{handover_key}#handover", stored or b"")
    assert opened is not None and opened["fence"] == 3


# --- Redis unreachable --------------------------------------------------------------------------


async def test_an_unreachable_redis_is_an_error_not_a_missing_token(
    redis_server: RedisServer,
) -> None:
    async with open_link(redis_target(redis_server.url), answer_within=1.0) as link:
        tokens = store(link)
        await tokens.save("firstock", "AA1", StoredToken(Secret("tok-AA1"), NOW))
        redis_server.stop()
        with pytest.raises(CoordinatorUnavailable) as loading:
            await tokens.load("firstock", "AA1")
        with pytest.raises(CoordinatorUnavailable) as saving:
            await tokens.save("firstock", "AA1", StoredToken(Secret("tok-AA1"), NOW))
        with pytest.raises(CoordinatorUnavailable):
            await tokens.delete("firstock", "AA1")
        for caught in (loading, saving):
            assert "unreachable" in str(caught.value) and "tok-AA1" not in str(caught.value)


def firstock(sim: Any, user: str = "AA1") -> FirstockConfig:
    return FirstockConfig(base_url=sim.base_url, user_id=user, password=Secret(f"{user}-pw"),
                          api_key=Secret(f"key-{user}"), vendor_code=f"{user}_API",
                          totp=Secret("123456"), socket="none")


class LosesRedisAfterLoad:
    """A Redis token store whose server goes away once the session has looked for a token."""

    def __init__(self, inner: RedisTokenStore, server: RedisServer) -> None:
        self.inner, self.server = inner, server

    async def load(self, broker: str, user: str) -> StoredToken | None:
        found = await self.inner.load(broker, user)
        self.server.stop()
        return found

    async def save(self, broker: str, user: str, stored: StoredToken) -> None:
        await self.inner.save(broker, user, stored)

    async def delete(self, broker: str, user: str) -> None:
        await self.inner.delete(broker, user)


async def test_a_save_that_cannot_reach_redis_is_a_notice_and_the_session_goes_on(
    redis_server: RedisServer,
) -> None:
    events: list[dict[str, Any]] = []
    account = FirstockAccount("AA1", "AA1-pw", fixed_totp="123456")
    async with run_firstock_simulator([account]) as sim, \
            open_link(redis_target(redis_server.url), answer_within=1.0) as link:
        lossy = LosesRedisAfterLoad(store(link), redis_server)
        async with open_session(firstock(sim), token_store=lossy,
                                **session_kwargs(events)) as session:
            await session.wait_authenticated()
            await until(lambda: any(e.get("kind") == "token_store_failed" for e in events))
            assert session.state == "authenticated"
        token = sim.token_of("AA1") or "(logged out)"
    [notice, *_] = [e for e in events if e.get("kind") == "token_store_failed"]
    assert notice["fault"] == "network"
    assert "CoordinatorUnavailable" in notice["detail"] and "unreachable" in notice["detail"]
    assert token not in str(events) and "AA1-pw" not in str(events)


async def test_a_load_that_cannot_reach_redis_stops_the_session_before_any_login(
    redis_server: RedisServer,
) -> None:
    account = FirstockAccount("AA1", "AA1-pw", fixed_totp="123456")
    async with run_firstock_simulator([account]) as sim, \
            open_link(redis_target(redis_server.url), answer_within=1.0) as link:
        redis_server.stop()
        with pytest.raises(CoordinatorUnavailable):
            async with open_session(firstock(sim), token_store=store(link),
                                    **session_kwargs([])):
                pytest.fail("the session must not start without its token store")
        assert sim.stats.logins_ok == 0 and not sim.stats.request_times


class FailingStore:
    """A user's store that fails with a message quoting the token."""

    async def load(self, broker: str, user: str) -> StoredToken | None:
        return None

    async def save(self, broker: str, user: str, stored: StoredToken) -> None:
        raise RuntimeError(f"could not write {stored.token.reveal()}")

    async def delete(self, broker: str, user: str) -> None:
        raise RuntimeError("could not delete")


async def test_another_stores_failure_is_named_by_its_type_only() -> None:
    events: list[dict[str, Any]] = []
    account = FirstockAccount("AA1", "AA1-pw", fixed_totp="123456")
    async with run_firstock_simulator([account]) as sim:
        async with open_session(firstock(sim), token_store=FailingStore(),
                                **session_kwargs(events)) as session:
            await session.wait_authenticated()
            token = sim.token_of("AA1")
            await until(lambda: any(e.get("kind") == "token_store_failed" for e in events))
    notice = next(e for e in events if e.get("kind") == "token_store_failed")
    assert notice["fault"] == "configuration" and "(RuntimeError)" in notice["detail"]
    assert token is not None and token not in str(events)
