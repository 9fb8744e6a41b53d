"""The fleet's link to Redis: the URL and credential rules, and what each failure becomes
against a real redis-server (ACL users, requirepass, TLS, killed, paused, silent)."""

from __future__ import annotations

import functools
import os
import signal
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import trio
import trustme
from redis_server import RedisServer, TlsFiles, free_port

from brokergate.engine._errors import ConfigurationError
from brokergate.engine.fleet._client import (
    PASSWORD_ENV,
    PASSWORD_FILE_ENV,
    USERNAME_ENV,
    CoordinatorUnavailable,
    RedisTarget,
    open_link,
    redis_target,
)

SECRET = "s3cr3t-Pw-7781"
#: How long a link waits for Redis in these tests; every failure must come well within it.
ANSWER = 1.0
#: A bound on whole operations that must not hang: a hang fails the test instead.
NO_HANG = ANSWER + 3.0


def no_secret(exc: BaseException, *secrets: str) -> None:
    """Neither the message nor anything chained to it repeats a secret."""
    seen: BaseException | None = exc
    while seen is not None:
        text = f"{seen}{seen!r}"
        for secret in secrets:
            assert secret not in text, f"secret in {type(seen).__name__}: {text}"
        seen = seen.__cause__ or seen.__context__


# ---------------------------------------------------------------- URL rules (no server)


@pytest.mark.parametrize("url", ["redis://10.1.2.3/0", "redis://redis.example.com:6379",
                                 "redis://0.0.0.0:6379/0", "redis://[2001:db8::1]:6379/0"])
def test_plaintext_to_another_host_is_refused(url: str) -> None:
    with pytest.raises(ConfigurationError, match=r"loopback.*use rediss://"):
        redis_target(url, env={})


@pytest.mark.parametrize(("url", "host"), [("redis://127.0.0.1:6390/3", "127.0.0.1"),
                                           ("redis://127.0.0.2:6390/3", "127.0.0.2"),
                                           ("redis://[::1]:6390/3", "::1"),
                                           ("redis://localhost:6390/3", "localhost")])
def test_plaintext_to_loopback_is_accepted(url: str, host: str) -> None:
    target = redis_target(url, env={})
    assert (target.host, target.port, target.db, target.tls) == (host, 6390, 3, False)
    assert target.where == target.url == url


def test_tls_is_accepted_anywhere_with_defaults() -> None:
    target = redis_target("rediss://redis.example.com", env={})
    assert (target.host, target.port, target.db, target.tls) == ("redis.example.com", 6379, 0,
                                                                 True)
    assert target.url == "rediss://redis.example.com:6379/0"
    assert redis_target("rediss://10.0.0.5:6380/2", env={}).where == "rediss://10.0.0.5:6380/2"
    assert redis_target("rediss://[2001:db8::1]:6380/2", env={}).url == \
        "rediss://[2001:db8::1]:6380/2"


@pytest.mark.parametrize("url", [f"rediss://fleet:{SECRET}@redis.example.com/0",
                                 f"redis://:{SECRET}@127.0.0.1:6379/0",
                                 f"redis://fleet:{SECRET}@10.0.0.5/0",
                                 "rediss://fleet:s3cr3t%2DPw%2D7781@redis.example.com/0"])
def test_a_password_in_the_url_is_refused_without_repeating_it(url: str) -> None:
    with pytest.raises(ConfigurationError, match="holds a password") as caught:
        redis_target(url, env={})
    no_secret(caught.value, SECRET, "s3cr3t")
    assert PASSWORD_ENV in str(caught.value)


@pytest.mark.parametrize(("url", "says"), [
    ("http://127.0.0.1:6379/0", "must start with rediss://.*not http://"),
    ("unix:///run/redis.sock", "must start with rediss://.*not unix://"),
    ("127.0.0.1:6379", "must start with rediss://.*no scheme"),
    ("localhost:6379", "must start with rediss://.*no scheme"),
    ("", "must start with rediss://.*no scheme"),
    ("redis://[::1/0", "cannot be read"),
    ("redis:///0", "names no host"),
    ("rediss://:6380/0", "names no host"),
    ("redis://127.0.0.1:port/0", "bad port"),
    ("redis://127.0.0.1:70000/0", "bad port"),
    ("redis://127.0.0.1:0/0", "bad port"),
    ("redis://127.0.0.1:6379/zero", "database number, not 'zero'"),
    ("redis://127.0.0.1:6379/1/2", "database number"),
    ("redis://127.0.0.1:6379/-1", "database number"),
    ("redis://127.0.0.1:6379/\u0663", "database number"),
    ("redis://127.0.0.1:6379/0?ssl_cert_reqs=none", "takes no query"),
    ("rediss://redis.example.com/0#main", "takes no query or fragment"),
])
def test_malformed_urls_say_what_is_wrong(url: str, says: str) -> None:
    with pytest.raises(ConfigurationError, match=says):
        redis_target(url, env={})


def test_the_user_name_comes_from_the_argument_then_the_url_then_the_environment() -> None:
    env = {USERNAME_ENV: "from-env"}
    url = "rediss://from%2Durl@redis.example.com/0"
    assert redis_target(url, username="from-arg", env=env).username == "from-arg"
    assert redis_target(url, env=env).username == "from-url"
    assert redis_target("rediss://redis.example.com/0", env=env).username == "from-env"
    assert redis_target("rediss://redis.example.com/0", env={}).username is None
    assert redis_target("rediss://redis.example.com/0", env={USERNAME_ENV: ""}).username is None
    # The user name is not part of the URL shown: ``where`` and ``url`` are the server's.
    assert redis_target(url, env={}).url == "rediss://redis.example.com:6379/0"


def _file(path: Path, text: str | bytes) -> Path:
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    path.chmod(0o600)
    return path


def test_the_password_comes_from_the_file_then_the_environment_then_its_file(
        tmp_path: Path) -> None:
    given = _file(tmp_path / "given", "from-given-file\n")
    named = _file(tmp_path / "named", "from-named-file\r\n")
    url = "rediss://redis.example.com/0"

    def password(**kwargs: Any) -> str | None:
        found = redis_target(url, **kwargs).password
        return None if found is None else found.reveal()

    every = {PASSWORD_ENV: "from-env", PASSWORD_FILE_ENV: str(named)}
    assert password(password_file=given, env=every) == "from-given-file"
    assert password(password_file=str(given), env={}) == "from-given-file"
    assert password(env=every) == "from-env"
    assert password(env={PASSWORD_FILE_ENV: str(named)}) == "from-named-file"
    assert password(env={PASSWORD_ENV: ""}) is None
    assert password(env={}) is None


@pytest.mark.parametrize("via", ["argument", "environment"])
def test_a_password_file_that_cannot_be_used_is_named_but_never_read_out(
        tmp_path: Path, via: str) -> None:
    def target(path: Path) -> RedisTarget:
        if via == "argument":
            return redis_target("rediss://redis.example.com/0", password_file=path, env={})
        return redis_target("rediss://redis.example.com/0", env={PASSWORD_FILE_ENV: str(path)})

    where = "--redis-password-file" if via == "argument" else PASSWORD_FILE_ENV
    # A missing file: the path may be the password put in the wrong place, so it is not
    # repeated; where it was given is.
    with pytest.raises(ConfigurationError, match=f"{where}.*no such file") as caught:
        target(tmp_path / SECRET)
    no_secret(caught.value, SECRET)
    empty = _file(tmp_path / "empty", "\n")
    with pytest.raises(ConfigurationError, match=f"password file {empty} is empty"):
        target(empty)
    with pytest.raises(ConfigurationError, match=f"cannot read the Redis password file "
                                                 f"{tmp_path}"):
        target(tmp_path)
    binary = _file(tmp_path / "binary", b"\xffpw\xfe" + SECRET.encode())
    with pytest.raises(ConfigurationError, match=f"password file {binary} is not UTF-8") \
            as caught:
        target(binary)
    no_secret(caught.value, SECRET, "xff", "xfe")


def test_the_target_never_shows_its_password(tmp_path: Path) -> None:
    target = redis_target("rediss://fleet@redis.example.com/0", env={PASSWORD_ENV: SECRET})
    assert target.password is not None and target.password.reveal() == SECRET
    for shown in (repr(target), str(target), f"{target}", target.url, target.where,
                  repr(target.password), str(target.password)):
        assert SECRET not in shown
    assert repr(target) == "<RedisTarget rediss://redis.example.com:6379/0 as fleet " \
                           "(password set)>"


def test_a_ca_file_that_is_missing_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match=r"ca_file .*missing\.pem is not a readable file"):
        redis_target("rediss://redis.example.com/0", ca_file=str(tmp_path / "missing.pem"),
                     env={})


async def test_a_ca_file_that_holds_no_certificate_is_refused(tmp_path: Path) -> None:
    junk = _file(tmp_path / "junk.pem", "not a certificate\n")
    target = redis_target(f"rediss://127.0.0.1:{free_port()}/0", ca_file=str(junk), env={})
    with trio.fail_after(NO_HANG), pytest.raises(ConfigurationError, match="ca_file"):
        async with open_link(target, answer_within=ANSWER):
            pass  # pragma: no cover


# ---------------------------------------------------------------- plaintext to a loopback name


class Resolver(trio.abc.HostnameResolver):
    """Answers for ``localhost`` with the addresses given, and counts the lookups."""

    def __init__(self, *addresses: str) -> None:
        self.addresses = addresses
        self.asked: list[bytes | str] = []

    async def getaddrinfo(self, host: bytes | None, port: bytes | str | int | None,  # noqa: PLR0917
                          family: int = 0, type: int = 0, proto: int = 0,
                          flags: int = 0) -> list[Any]:
        self.asked.append(host or b"")
        assert host in (b"localhost", "localhost"), host
        if not self.addresses:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        answers: list[Any] = []
        for address in self.addresses:
            if ":" in address:
                answers.append((socket.AF_INET6, socket.SOCK_STREAM, 6, "",
                                (address, int(port or 0), 0, 0)))
            else:
                answers.append((socket.AF_INET, socket.SOCK_STREAM, 6, "",
                                (address, int(port or 0))))
        return answers

    async def getnameinfo(self, sockaddr: tuple[Any, ...], flags: int) -> tuple[str, str]:
        raise NotImplementedError  # pragma: no cover


@pytest.mark.parametrize("addresses", [("10.0.0.7",), ("127.0.0.1", "192.168.1.9")])
async def test_plaintext_to_a_loopback_name_that_resolves_elsewhere_is_refused(
        addresses: tuple[str, ...]) -> None:
    trio.socket.set_custom_hostname_resolver(Resolver(*addresses))
    target = redis_target(f"redis://localhost:{free_port()}/0", env={PASSWORD_ENV: SECRET})
    with trio.fail_after(NO_HANG), \
            pytest.raises(ConfigurationError, match=f"resolves to {addresses[-1]}, which is "
                                                    "not a loopback address") as caught:
        async with open_link(target, answer_within=ANSWER):
            pass  # pragma: no cover
    no_secret(caught.value, SECRET)


async def test_plaintext_to_a_loopback_name_goes_to_the_address_it_was_checked_at(
        redis_server: RedisServer) -> None:
    resolver = Resolver("127.0.0.1")
    trio.socket.set_custom_hostname_resolver(resolver)
    target = redis_target(f"redis://localhost:{redis_server.port}/0", env={})
    with trio.fail_after(NO_HANG):
        async with open_link(target, answer_within=ANSWER) as link:
            assert await link.do(link.client.set("brokergate:k", "v"))
            redis_server.stop()
            with pytest.raises(CoordinatorUnavailable):
                await link.do(link.client.get("brokergate:k"))
            redis_server.start()
            assert await link.do(link.client.get("brokergate:k")) is None
    # One lookup, checked; the connections (and the reconnection) went to its address.
    assert resolver.asked == [b"localhost"]


async def test_plaintext_to_a_loopback_name_takes_the_address_redis_listens_on(
        redis_server: RedisServer) -> None:
    # ``localhost`` often resolves to ::1 first; a Redis bound to 127.0.0.1 is still found.
    trio.socket.set_custom_hostname_resolver(Resolver("::1", "127.0.0.1"))
    target = redis_target(f"redis://localhost:{redis_server.port}/0", env={})
    with trio.fail_after(NO_HANG):
        async with open_link(target, answer_within=ANSWER) as link:
            assert await link.do(link.client.ping())


async def test_a_loopback_name_that_does_not_resolve_is_unavailable() -> None:
    trio.socket.set_custom_hostname_resolver(Resolver())
    target = redis_target(f"redis://localhost:{free_port()}/0", env={})
    with trio.fail_after(NO_HANG), \
            pytest.raises(CoordinatorUnavailable, match="localhost"):
        async with open_link(target, answer_within=ANSWER):
            pass  # pragma: no cover


# ---------------------------------------------------------------- unreachable, silent, paused


async def test_a_port_nobody_listens_on_is_unavailable_at_once() -> None:
    port = free_port()
    target = redis_target(f"redis://127.0.0.1:{port}/0", env={})
    start = trio.current_time()
    with trio.fail_after(NO_HANG), \
            pytest.raises(CoordinatorUnavailable, match=f"127.0.0.1:{port}.*unreachable"):
        async with open_link(target, answer_within=ANSWER):
            pass  # pragma: no cover
    assert trio.current_time() - start < ANSWER


@pytest.fixture
def full_backlog() -> Iterator[int]:
    """A port whose listener never accepts and whose queue is full: a connect to it hangs (the
    kernel drops the SYN), as one to a host behind a dropping firewall does."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    port = listener.getsockname()[1]
    held = []
    try:
        for _ in range(16):
            conn = socket.socket()
            held.append(conn)
            conn.settimeout(0.2)
            try:
                conn.connect(("127.0.0.1", port))
            except TimeoutError:
                break
        else:  # pragma: no cover - a kernel that queues everything
            pytest.skip("could not fill a listen queue here")
        yield port
    finally:
        for conn in held:
            conn.close()
        listener.close()


async def test_a_connect_that_hangs_is_bounded_by_answer_within(full_backlog: int) -> None:
    target = redis_target(f"redis://127.0.0.1:{full_backlog}/0", env={})
    start = trio.current_time()
    with trio.fail_after(NO_HANG), \
            pytest.raises(CoordinatorUnavailable, match=f"127.0.0.1:{full_backlog}"):
        async with open_link(target, answer_within=ANSWER):
            pass  # pragma: no cover
    assert trio.current_time() - start < ANSWER + 0.5


async def _silent(stream: trio.SocketStream) -> None:
    """Reads whatever comes and never says a word."""
    async with stream:
        while await stream.receive_some():
            pass


async def test_a_redis_that_accepts_but_never_answers_is_unavailable() -> None:
    async with trio.open_nursery() as nursery:
        serve = functools.partial(trio.serve_tcp, _silent, 0, host="127.0.0.1")
        listeners = await nursery.start(serve)
        port = listeners[0].socket.getsockname()[1]
        target = redis_target(f"redis://127.0.0.1:{port}/0", env={})
        start = trio.current_time()
        with trio.fail_after(NO_HANG), \
                pytest.raises(CoordinatorUnavailable,
                              match=f"127.0.0.1:{port}/0 did not answer within 1 s"):
            async with open_link(target, answer_within=ANSWER):
                pass  # pragma: no cover
        assert trio.current_time() - start < ANSWER + 0.5
        nursery.cancel_scope.cancel()


async def test_a_paused_redis_is_unavailable_and_back_when_it_resumes(
        redis_server: RedisServer) -> None:
    target = redis_target(redis_server.url, env={})
    assert redis_server.process is not None
    pid = redis_server.process.pid
    with trio.fail_after(4 * NO_HANG):
        async with open_link(target, answer_within=ANSWER) as link:
            await link.do(link.client.set("brokergate:n", "1"))
            os.kill(pid, signal.SIGSTOP)
            try:
                with pytest.raises(CoordinatorUnavailable, match="did not answer within 1 s"):
                    await link.do(link.client.incr("brokergate:n"))
                with pytest.raises(CoordinatorUnavailable, match="did not answer within 1 s"):
                    await link.run("return redis.call('GET', KEYS[1])", ["brokergate:n"], [])
            finally:
                os.kill(pid, signal.SIGCONT)
            # The replies to what timed out may still come: the link must not hand them to
            # the next commands (the INCR above ran once the server resumed).
            assert await link.do(link.client.get("brokergate:n")) == b"2"
            assert await link.do(link.client.incr("brokergate:n")) == 3
            assert await link.run("return redis.call('GET', KEYS[1])",
                                  ["brokergate:n"], []) == b"3"


async def test_a_full_redis_is_unavailable(tmp_path: Path) -> None:
    server = RedisServer(tmp_path / "redis-full", extra=("--maxclients", "1"))
    server.start()
    try:
        with socket.create_connection(("127.0.0.1", server.port)):
            await trio.sleep(0.1)  # the server has taken it: the one client it allows
            target = redis_target(server.url, env={})
            with trio.fail_after(NO_HANG), \
                    pytest.raises(CoordinatorUnavailable,
                                  match=r"max number of clients|hung up.*maxclients"):
                async with open_link(target, answer_within=ANSWER):
                    pass  # pragma: no cover
    finally:
        server.stop()


# ---------------------------------------------------------------- killed and restarted

COUNT = "return redis.call('INCRBY', KEYS[1], ARGV[1])"


async def test_a_killed_redis_is_unavailable_and_the_link_works_again_after_a_restart(
        redis_server: RedisServer) -> None:
    target = redis_target(redis_server.url, env={})
    with trio.fail_after(4 * NO_HANG):
        async with open_link(target, answer_within=ANSWER) as link:
            assert await link.run(COUNT, ["brokergate:c"], [2]) == 2
            redis_server.stop()
            for attempt in (link.do(link.client.get("brokergate:c")),
                            link.run(COUNT, ["brokergate:c"], [1])):
                start = trio.current_time()
                with pytest.raises(CoordinatorUnavailable,
                                   match=f"{redis_server.port}/0 is unreachable"):
                    await attempt
                assert trio.current_time() - start < ANSWER
            redis_server.start()  # empty: no keys, no scripts cached
            assert await link.do(link.client.get("brokergate:c")) is None
            assert await link.run(COUNT, ["brokergate:c"], [5]) == 5
            assert await link.run(COUNT, ["brokergate:c"], [1]) == 6


async def test_a_script_is_loaded_again_after_the_script_cache_was_emptied(
        redis_server: RedisServer) -> None:
    target = redis_target(redis_server.url, env={})
    with trio.fail_after(NO_HANG):
        async with open_link(target, answer_within=ANSWER) as link:
            assert await link.run(COUNT, ["brokergate:s"], [1]) == 1
            assert redis_server.command("SCRIPT", "FLUSH").startswith(b"+OK")
            assert await link.run(COUNT, ["brokergate:s"], [1]) == 2


async def test_redis_killed_while_a_script_runs_is_unavailable_at_once(
        redis_server: RedisServer) -> None:
    busy = """local start = redis.call('TIME')
              while true do
                local now = redis.call('TIME')
                if (now[1] - start[1]) * 1000000 + now[2] - start[2] > 3000000 then break end
              end
              return 1"""
    target = redis_target(redis_server.url, env={})
    with trio.fail_after(4 * NO_HANG):
        async with open_link(target, answer_within=5.0) as link:
            async with trio.open_nursery() as nursery:
                async def kill_soon() -> None:
                    await trio.sleep(0.3)
                    redis_server.stop()
                nursery.start_soon(kill_soon)
                start = trio.current_time()
                with pytest.raises(CoordinatorUnavailable, match="unreachable"):
                    await link.run(busy, [], [])
                assert trio.current_time() - start < 2.0


async def test_redis_lost_while_the_link_is_idle_does_not_disturb_the_block(
        redis_server: RedisServer) -> None:
    target = redis_target(redis_server.url, env={})
    with trio.fail_after(NO_HANG):
        async with open_link(target, answer_within=ANSWER) as link:
            await link.do(link.client.ping())
            redis_server.stop()
            await trio.sleep(0.2)  # the connection's reader sees the end of the stream
        # ... and the link closes without raising anything


# ---------------------------------------------------------------- what escapes open_link


async def test_the_callers_own_exception_comes_out_as_itself(
        redis_server: RedisServer) -> None:
    target = redis_target(redis_server.url, env={})
    for raised in (ValueError("the caller's"), KeyError("k"),
                   CoordinatorUnavailable("the caller's"),
                   ConfigurationError("the caller's")):
        with pytest.raises(type(raised)) as caught:
            async with open_link(target, answer_within=ANSWER) as link:
                await link.do(link.client.ping())
                raise raised
        assert caught.value is raised
    # Its cause and context are its own, not coredis's task group's.
    cause = KeyError("why")
    with pytest.raises(ValueError, match="chained") as caught:
        async with open_link(target, answer_within=ANSWER):
            try:
                raise cause
            except KeyError:
                raise ValueError("chained") from cause
    assert caught.value.__cause__ is cause and caught.value.__context__ is cause
    # The caller's own error with Redis gone underneath it: still the caller's.
    with pytest.raises(RuntimeError, match="mine") as caught:
        async with open_link(target, answer_within=ANSWER) as link:
            redis_server.stop()
            await trio.sleep(0.1)
            raise RuntimeError("mine")


async def test_a_cancelled_block_closes_the_link_quietly(redis_server: RedisServer) -> None:
    target = redis_target(redis_server.url, env={})
    with trio.fail_after(NO_HANG):
        with trio.move_on_after(0.3) as scope:
            async with open_link(target, answer_within=ANSWER) as link:
                await link.do(link.client.ping())
                await trio.sleep_forever()
        assert scope.cancelled_caught


async def test_a_wait_that_is_no_wait_is_refused() -> None:
    target = redis_target("redis://127.0.0.1:6379/0", env={})
    for wait in (0, -1.0, float("nan")):
        with pytest.raises(ConfigurationError, match="answer_within must be a positive"):
            async with open_link(target, answer_within=wait):
                pass  # pragma: no cover


async def test_a_database_redis_does_not_have_is_the_configurations_fault(
        redis_server: RedisServer) -> None:
    target = redis_target(redis_server.url.replace("/0", "/99"), env={})
    with trio.fail_after(NO_HANG), \
            pytest.raises(ConfigurationError, match="refused the link: DB index is out of range"):
        async with open_link(target, answer_within=ANSWER):
            pass  # pragma: no cover


# ---------------------------------------------------------------- ACL users and requirepass


@pytest.fixture
def fleet_user(redis_server: RedisServer) -> RedisServer:
    reply = redis_server.command("ACL", "SETUSER", "fleet", "reset", "on", f">{SECRET}",
                                 "~brokergate:*", "+@all")
    assert reply.startswith(b"+OK"), reply
    return redis_server


async def test_an_acl_user_logs_in_with_a_password_from_a_private_file(
        fleet_user: RedisServer, tmp_path: Path) -> None:
    secret = _file(tmp_path / "redis-password", SECRET + "\n")
    target = redis_target(fleet_user.url, username="fleet", password_file=secret, env={})
    with trio.fail_after(NO_HANG):
        async with open_link(target, answer_within=ANSWER) as link:
            assert await link.do(link.client.acl_whoami()) == b"fleet"
            assert await link.run(COUNT, ["brokergate:a"], [1]) == 1
            # Outside the keys the ACL gives it: the configuration's fault, named.
            with pytest.raises(ConfigurationError, match="ACL user 'fleet'") as caught:
                await link.do(link.client.get("elsewhere:a"))
            no_secret(caught.value, SECRET)


async def test_an_acl_user_logs_in_with_a_password_from_the_environment(
        fleet_user: RedisServer) -> None:
    url = fleet_user.url.replace("redis://", "redis://fleet@")
    target = redis_target(url, env={PASSWORD_ENV: SECRET})
    with trio.fail_after(NO_HANG):
        async with open_link(target, answer_within=ANSWER) as link:
            assert await link.do(link.client.acl_whoami()) == b"fleet"


@pytest.mark.parametrize(("username", "password"), [("fleet", "wrong-Pw-1234"),
                                                    ("nobody", SECRET)])
async def test_a_refused_acl_login_names_the_user_not_the_password(
        fleet_user: RedisServer, username: str, password: str) -> None:
    target = redis_target(fleet_user.url, env={USERNAME_ENV: username, PASSWORD_ENV: password})
    with trio.fail_after(NO_HANG), \
            pytest.raises(ConfigurationError, match=f"refused ACL user '{username}'") as caught:
        async with open_link(target, answer_within=ANSWER):
            pass  # pragma: no cover
    no_secret(caught.value, password, SECRET)


@pytest.fixture
def requirepass(tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path / "redis-pass", extra=("--requirepass", SECRET))
    server.start()
    try:
        yield server
    finally:
        server.stop()


async def test_requirepass_the_default_user_logs_in(requirepass: RedisServer) -> None:
    target = redis_target(requirepass.url, env={PASSWORD_ENV: SECRET})
    with trio.fail_after(NO_HANG):
        async with open_link(target, answer_within=ANSWER) as link:
            assert await link.do(link.client.acl_whoami()) == b"default"


@pytest.mark.parametrize(("password", "says"), [("wrong-Pw-1234", "invalid username-password"),
                                               (None, r"\(given no password\)")])
async def test_requirepass_refuses_the_default_user_clearly(
        requirepass: RedisServer, password: str | None, says: str) -> None:
    env = {PASSWORD_ENV: password} if password else {}
    target = redis_target(requirepass.url, env=env)
    with trio.fail_after(NO_HANG), \
            pytest.raises(ConfigurationError, match=f"refused the default user.*{says}") \
            as caught:
        async with open_link(target, answer_within=ANSWER):
            pass  # pragma: no cover
    no_secret(caught.value, SECRET, *([password] if password else []))


# ---------------------------------------------------------------- TLS


@pytest.fixture(scope="module")
def ca() -> trustme.CA:
    return trustme.CA()


def _tls_files(ca: trustme.CA, directory: Path, *names: str) -> TlsFiles:
    directory.mkdir(parents=True, exist_ok=True)
    cert = ca.issue_cert(*names)
    files = TlsFiles(cert=directory / "cert.pem", key=directory / "key.pem",
                     ca=directory / "ca.pem", name=names[0])
    cert.cert_chain_pems[0].write_to_path(str(files.cert))
    cert.private_key_pem.write_to_path(str(files.key))
    ca.cert_pem.write_to_path(str(files.ca))
    return files


@pytest.fixture
def tls_server(ca: trustme.CA, tmp_path: Path) -> Iterator[RedisServer]:
    server = RedisServer(tmp_path / "redis-tls", tls=_tls_files(ca, tmp_path / "pki",
                                                                "127.0.0.1"))
    server.start()
    try:
        yield server
    finally:
        server.stop()


async def test_tls_with_the_servers_ca_works(tls_server: RedisServer) -> None:
    assert tls_server.url.startswith("rediss://127.0.0.1:")
    assert tls_server.tls is not None
    target = redis_target(tls_server.url, ca_file=str(tls_server.tls.ca), env={})
    with trio.fail_after(NO_HANG):
        async with open_link(target, answer_within=ANSWER) as link:
            assert await link.run(COUNT, ["brokergate:t"], [4]) == 4
            tls_server.stop()
            with pytest.raises(CoordinatorUnavailable, match=r"rediss://127\.0\.0\.1"):
                await link.do(link.client.get("brokergate:t"))
            tls_server.start()
            assert await link.run(COUNT, ["brokergate:t"], [1]) == 1


async def test_tls_without_the_ca_is_the_configurations_fault(tls_server: RedisServer) -> None:
    target = redis_target(tls_server.url, env={})
    start = trio.current_time()
    with trio.fail_after(NO_HANG), \
            pytest.raises(ConfigurationError, match=r"certificate verify failed.*ca_file"):
        async with open_link(target, answer_within=ANSWER):
            pass  # pragma: no cover
    assert trio.current_time() - start < ANSWER


async def test_tls_to_a_certificate_for_another_name_is_refused(
        ca: trustme.CA, tmp_path: Path) -> None:
    server = RedisServer(tmp_path / "redis-other",
                         tls=_tls_files(ca, tmp_path / "pki", "redis.example.com"))
    server.start()
    try:
        assert server.tls is not None
        target = redis_target(server.url, ca_file=str(server.tls.ca), env={})
        with trio.fail_after(NO_HANG), \
                pytest.raises(ConfigurationError, match="certificate verify failed"):
            async with open_link(target, answer_within=ANSWER):
                pass  # pragma: no cover
    finally:
        server.stop()


async def test_tls_to_a_plaintext_redis_is_unavailable_with_a_hint(
        redis_server: RedisServer, ca: trustme.CA, tmp_path: Path) -> None:
    # A plaintext Redis takes the TLS ClientHello for the start of a command and waits for the
    # rest: nothing comes back, as from a hung server; the message says what else it may be.
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    target = redis_target(redis_server.url.replace("redis://", "rediss://"),
                          ca_file=str(ca_file), env={})
    with trio.fail_after(NO_HANG), \
            pytest.raises(CoordinatorUnavailable, match=r"did not answer.*tls-port"):
        async with open_link(target, answer_within=ANSWER):
            pass  # pragma: no cover


async def test_plaintext_to_a_tls_redis_is_unavailable_with_a_hint(
        tls_server: RedisServer) -> None:
    target = redis_target(tls_server.url.replace("rediss://", "redis://"), env={})
    with trio.fail_after(NO_HANG), \
            pytest.raises(CoordinatorUnavailable, match=r"hung up.*must be rediss://"):
        async with open_link(target, answer_within=ANSWER):
            pass  # pragma: no cover
