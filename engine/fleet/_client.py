"""The fleet's link to Redis: where it may go, who it logs in as, and what its failures mean.

The client is coredis (6.x): maintained, typed, and since 6.0 built on anyio, so it runs under
trio natively (no asyncio loop in a thread, no bridging). Each ``RedisLink`` owns one coredis
client, entered for the coordinator's life; the coordinator talks to Redis only through it, and
every Redis failure reaches the rest of brokergate as one of two errors that say whose it is:

- ``CoordinatorUnavailable`` (the network, or Redis itself): it could not be reached, or it
  stopped answering;
- ``ConfigurationError``: the URL, the ACL user or password, or the TLS setup is wrong.

Plaintext ``redis://`` is for loopback only; anywhere else it is ``rediss://`` (TLS, the server
verified against the system's CAs or ``ca_file``). The ACL password never comes from the URL (a
URL is shown in process lists and logs): it comes from ``BROKERGATE_REDIS_PASSWORD``, or from a
file named by ``password_file`` or ``BROKERGATE_REDIS_PASSWORD_FILE``.
"""

from __future__ import annotations

import os
import ssl
from collections.abc import AsyncIterator, Awaitable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import SplitResult, unquote, urlsplit

import coredis
import coredis.exceptions as redis_errors
import trio

from brokergate.engine._errors import ConfigurationError
from brokergate.engine._errors import (
    # Re-exported: it lives with the engine's errors so that HttpCaller catches it without coredis.
    CoordinatorUnavailable as CoordinatorUnavailable,  # noqa: PLC0414
)
from brokergate.machines import Secret
from brokergate.machines._config import is_loopback_host

#: Environment variables the ACL credentials may come from.
USERNAME_ENV = "BROKERGATE_REDIS_USERNAME"
PASSWORD_ENV = "BROKERGATE_REDIS_PASSWORD"
PASSWORD_FILE_ENV = "BROKERGATE_REDIS_PASSWORD_FILE"

T = TypeVar("T")

#: What to install when coredis is missing.
EXTRA_HINT = "pip install 'brokergate[redis]'"


@dataclass(frozen=True, slots=True, kw_only=True)
class RedisTarget:
    """Where the fleet's Redis is and how to log in to it. ``url`` never holds the password."""

    url: str
    host: str
    port: int
    db: int
    tls: bool
    username: str | None = None
    password: Secret | None = None
    ca_file: str | None = None

    def __repr__(self) -> str:
        who = f" as {self.username}" if self.username else ""
        return f"<RedisTarget {self.url}{who}{' (password set)' if self.password else ''}>"

    @property
    def where(self) -> str:
        return f"{'rediss' if self.tls else 'redis'}://{self.host}:{self.port}/{self.db}"


def redis_target(
    url: str,
    *,
    username: str | None = None,
    password_file: str | Path | None = None,
    ca_file: str | None = None,
    env: Mapping[str, str] | None = None,
) -> RedisTarget:
    """Check ``url`` and gather the ACL credentials; ``ConfigurationError`` says what is wrong.

    ``redis://`` only to a loopback host, ``rediss://`` anywhere; no password in the URL. The
    user name may be in the URL (``rediss://user@host``), given, or in
    ``BROKERGATE_REDIS_USERNAME``; the password comes from ``password_file``, else
    ``BROKERGATE_REDIS_PASSWORD``, else the file ``BROKERGATE_REDIS_PASSWORD_FILE`` names.
    """
    environ = os.environ if env is None else env
    parts = _split(url)
    tls = parts.scheme == "rediss"
    host = parts.hostname or ""
    if not tls and not is_loopback_host(host):
        raise ConfigurationError(
            f"coordinator URL redis://{host}... refused: plaintext Redis only to a loopback host; "
            "use rediss:// (TLS) for a Redis on another host")
    if parts.password is not None:
        raise ConfigurationError(
            "coordinator URL holds a password: a URL shows in process lists and logs. Give it in "
            f"{PASSWORD_ENV}, or in a file named by {PASSWORD_FILE_ENV} or --redis-password-file")
    try:
        port = parts.port or 6379
    except ValueError as exc:
        raise ConfigurationError(f"coordinator URL has a bad port: {exc}") from None
    db = _db(parts)
    user = username or (unquote(parts.username) if parts.username else None) \
        or environ.get(USERNAME_ENV) or None
    password = _password(password_file, environ)
    if ca_file is not None and not Path(ca_file).is_file():
        raise ConfigurationError(f"coordinator ca_file {ca_file} is not a readable file")
    shown = f"{parts.scheme}://{host if ':' not in host else f'[{host}]'}:{port}/{db}"
    return RedisTarget(url=shown, host=host, port=port, db=db, tls=tls, username=user,
                       password=password, ca_file=ca_file)


def _split(url: str) -> SplitResult:
    parts = urlsplit(url)
    if parts.scheme not in ("redis", "rediss"):
        raise ConfigurationError(
            f"coordinator URL must start with rediss:// (or redis:// to a loopback host), not "
            f"{parts.scheme + '://' if parts.scheme else 'a URL without a scheme'}")
    if not parts.hostname:
        raise ConfigurationError("coordinator URL names no host")
    if parts.query or parts.fragment:
        raise ConfigurationError("coordinator URL takes no query or fragment: give TLS and "
                                 "credentials as options")
    return parts


def _db(parts: SplitResult) -> int:
    path = parts.path.strip("/")
    if not path:
        return 0
    if not path.isdigit():
        raise ConfigurationError(f"coordinator URL path must be a database number, not {path!r}")
    return int(path)


def _password(password_file: str | Path | None, environ: Mapping[str, str]) -> Secret | None:
    source = password_file or environ.get(PASSWORD_FILE_ENV)
    if source:
        try:
            text = Path(source).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ConfigurationError(f"cannot read the Redis password file {source}: "
                                     f"{exc.strerror or exc}") from None
        if not text:
            raise ConfigurationError(f"the Redis password file {source} is empty")
        return Secret(text)
    value = environ.get(PASSWORD_ENV)
    return Secret(value) if value else None


def _tls_context(target: RedisTarget) -> ssl.SSLContext:
    try:
        return ssl.create_default_context(cafile=target.ca_file)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigurationError(f"coordinator ca_file {target.ca_file}: {exc}") from None


class RedisLink:
    """One coredis client for the coordinator's life, with its failures translated.

    ``run(script, keys, args)`` runs a Lua script (loaded once, reloaded after a Redis restart
    emptied its script cache); ``do(link.client.get(key))`` runs one command. Both raise
    ``CoordinatorUnavailable`` when Redis cannot be reached or does not answer within
    ``timeout`` seconds.
    """

    __slots__ = ("_client", "_scripts", "target", "timeout")

    def __init__(self, client: coredis.Redis[bytes], target: RedisTarget, timeout: float):
        self._client = client
        self.target = target
        self.timeout = timeout
        self._scripts: dict[str, Any] = {}

    def __repr__(self) -> str:
        return f"<RedisLink {self.target.where}>"

    @property
    def client(self) -> coredis.Redis[bytes]:
        """The coredis client itself, for what the link does not wrap (tests, status)."""
        return self._client

    async def run(self, source: str, keys: Sequence[str | bytes],
                  args: Sequence[str | bytes | int | float]) -> Any:
        script = self._scripts.get(source)
        if script is None:
            script = self._scripts[source] = self._client.register_script(source)
        return await self._guard(script(keys=list(keys), args=list(args)))

    async def do(self, request: Awaitable[T]) -> T:
        """Run one coredis command (``link.client.<command>(...)``, awaited here)."""
        result: T = await self._guard(request)
        return result

    async def _guard(self, awaitable: Awaitable[Any]) -> Any:
        try:
            with trio.fail_after(self.timeout):
                return await awaitable
        except trio.TooSlowError:
            raise CoordinatorUnavailable(
                f"Redis at {self.target.where} did not answer within {self.timeout:g} s") from None
        except (redis_errors.AuthenticationError, redis_errors.AuthorizationError) as exc:
            raise ConfigurationError(_auth_text(self.target, exc)) from None
        except (redis_errors.ConnectionError, TimeoutError, OSError) as exc:
            raise CoordinatorUnavailable(
                f"Redis at {self.target.where} is unreachable: {_plain(exc)}") from None


def _plain(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text[:200]


def _auth_text(target: RedisTarget, exc: BaseException) -> str:
    who = f"ACL user {target.username!r}" if target.username else "the default user"
    return (f"Redis at {target.where} refused {who}: {_plain(exc)} (check "
            f"{USERNAME_ENV} and the password in {PASSWORD_ENV} or its file)")


@asynccontextmanager
async def open_link(target: RedisTarget, *, answer_within: float = 2.0) -> AsyncIterator[RedisLink]:
    """Connect to ``target`` and check it answers (PING); yield the link; close it on exit.

    Raises ``CoordinatorUnavailable`` when Redis cannot be reached and ``ConfigurationError``
    when it refuses the credentials. Every command must be answered within ``answer_within``
    seconds.
    """
    timeout = answer_within
    client: coredis.Redis[bytes] = coredis.Redis(
        host=target.host, port=target.port, db=target.db,
        username=target.username,
        password=target.password.reveal() if target.password else None,
        ssl_context=_tls_context(target) if target.tls else None,
        connect_timeout=timeout, stream_timeout=timeout, decode_responses=False,
        client_name="brokergate",
    )
    link = RedisLink(client, target, timeout)
    ready = False
    try:
        async with client:
            await link.do(client.ping())
            ready = True
            yield link
    except BaseExceptionGroup as group:
        # coredis runs its connections in a task group: a failure comes wrapped. Hand back the
        # one exception inside, translated if it is the connection's own failure.
        leaf = _sole(group)
        if leaf is None:
            raise
        if isinstance(leaf, redis_errors.AuthenticationError | redis_errors.AuthorizationError):
            raise ConfigurationError(_auth_text(target, leaf)) from None
        if not ready and isinstance(leaf, redis_errors.ConnectionError | TimeoutError | OSError):
            raise CoordinatorUnavailable(
                f"Redis at {target.where} is unreachable: {_plain(leaf)} (is it running, and is "
                "the URL right?)") from None
        raise leaf from None


def _sole(group: BaseExceptionGroup[BaseException]) -> BaseException | None:
    """The one exception at the bottom of nested single-member groups, or None."""
    found: BaseException = group
    while isinstance(found, BaseExceptionGroup):
        if len(found.exceptions) != 1:
            return None
        found = found.exceptions[0]
    return found
