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
from collections.abc import AsyncIterator, Awaitable, Iterator, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import SplitResult, unquote, urlsplit

import anyio
import coredis
import coredis.exceptions as redis_errors
import trio

from brokergate.engine._errors import ConfigurationError
from brokergate.engine._errors import (
    # Re-exported: it lives with the engine's errors so that HttpCaller catches it without coredis.
    CoordinatorUnavailable as CoordinatorUnavailable,  # noqa: PLC0414
)
from brokergate.engine._transport import NotLoopback, loopback_addresses
from brokergate.machines import Secret
from brokergate.machines._config import is_loopback_host
from brokergate.machines._sansio import BrokergateError

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
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{'rediss' if self.tls else 'redis'}://{host}:{self.port}/{self.db}"


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
    if parts.password is not None:
        raise ConfigurationError(
            "coordinator URL holds a password: a URL shows in process lists and logs. Give it in "
            f"{PASSWORD_ENV}, or in a file named by {PASSWORD_FILE_ENV} or --redis-password-file")
    tls = parts.scheme == "rediss"
    host = parts.hostname or ""
    if not tls and not is_loopback_host(host):
        raise ConfigurationError(
            f"coordinator URL redis://{host}... refused: plaintext Redis only to a loopback host; "
            "use rediss:// (TLS) for a Redis on another host")
    port = _port(parts)
    db = _db(parts)
    user = username or (unquote(parts.username) if parts.username else None) \
        or environ.get(USERNAME_ENV) or None
    password = _password(password_file, environ)
    if ca_file is not None and not Path(ca_file).is_file():
        raise ConfigurationError(f"coordinator ca_file {ca_file} is not a readable file")
    target = RedisTarget(url="", host=host, port=port, db=db, tls=tls, username=user,
                         password=password, ca_file=ca_file)
    return replace(target, url=target.where)


def _split(url: str) -> SplitResult:
    # Nothing of the URL itself is repeated in these messages: it may hold a password.
    try:
        parts = urlsplit(url) if "://" in url else None
    except ValueError as exc:
        raise ConfigurationError(f"coordinator URL cannot be read: {exc}") from None
    if parts is None or parts.scheme not in ("redis", "rediss"):
        raise ConfigurationError(
            f"coordinator URL must start with rediss:// (or redis:// to a loopback host), not "
            f"{parts.scheme + '://' if parts else 'a URL with no scheme'}")
    if not parts.hostname:
        raise ConfigurationError("coordinator URL names no host")
    if parts.query or parts.fragment:
        raise ConfigurationError("coordinator URL takes no query or fragment: give TLS and "
                                 "credentials as options")
    return parts


def _port(parts: SplitResult) -> int:
    try:
        port = parts.port
    except ValueError as exc:
        raise ConfigurationError(f"coordinator URL has a bad port: {exc}") from None
    if port == 0:
        raise ConfigurationError("coordinator URL has a bad port: 0")
    return port or 6379


def _db(parts: SplitResult) -> int:
    path = parts.path.strip("/")
    if not path:
        return 0
    if not (path.isascii() and path.isdigit()):
        raise ConfigurationError(f"coordinator URL path must be a database number, not {path!r}")
    return int(path)


def _password(password_file: str | Path | None, environ: Mapping[str, str]) -> Secret | None:
    """From ``password_file``, else the environment's password, else the file it names."""
    if password_file:
        return _read_password(Path(password_file), "password_file (--redis-password-file)")
    value = environ.get(PASSWORD_ENV)
    if value:
        return Secret(value)
    named = environ.get(PASSWORD_FILE_ENV)
    return _read_password(Path(named), PASSWORD_FILE_ENV) if named else None


def _read_password(path: Path, given_by: str) -> Secret:
    """The file's first line. A path that does not exist is not repeated: it may be the
    password itself, put where the file's name belongs."""
    try:
        lines: list[str] | None = path.read_text(encoding="utf-8").splitlines()
        problem = ""
    except FileNotFoundError:
        lines, problem = None, (f"the Redis password file given by {given_by}: no such file "
                                "(its path is not repeated here in case it is a secret)")
    except UnicodeDecodeError:
        lines, problem = None, f"the Redis password file {path} is not UTF-8 text"
    except OSError as exc:
        lines, problem = None, (f"cannot read the Redis password file {path}: "
                                f"{exc.strerror or type(exc).__name__}")
    if lines is None:
        # Raised out of the handler: the OS's error, which repeats the path, is not chained.
        raise ConfigurationError(problem)
    if not lines or not lines[0]:
        raise ConfigurationError(f"the Redis password file {path} is empty")
    return Secret(lines[0])


def _tls_context(target: RedisTarget) -> ssl.SSLContext:
    try:
        return ssl.create_default_context(cafile=target.ca_file)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigurationError(f"coordinator ca_file {target.ca_file}: {exc}") from None


async def _address(target: RedisTarget, within: float) -> str:
    """Where the link connects to.

    Over TLS, the name itself: the certificate is checked against it. In plaintext, a loopback
    name (``localhost``) is resolved once, here, and every address it resolves to must be a
    loopback one (a resolver that maps it elsewhere must not carry the password off the
    machine); the link then goes to one of those addresses, never to the name resolved again.
    Of several, the first that takes a TCP connection: Redis may listen on 127.0.0.1 only.
    """
    if target.tls:
        return target.host
    try:
        with trio.fail_after(within):
            addresses = await loopback_addresses(target.host, target.port, "redis")
            last = addresses[-1]  # getaddrinfo answers with an address or raises
    except NotLoopback as exc:
        raise ConfigurationError(str(exc)) from None
    except (OSError, LookupError, trio.TooSlowError) as exc:
        raise CoordinatorUnavailable(f"Redis at {target.where}: cannot resolve {target.host}: "
                                     f"{_plain(exc)}") from None
    for address in addresses[:-1]:
        with trio.move_on_after(within):
            try:
                probe = await trio.open_tcp_stream(address, target.port)
            except OSError:
                continue
            await probe.aclose()
            return address
    return last


class RedisLink:
    """One coredis client for the coordinator's life, with its failures translated.

    ``run(script, keys, args)`` runs a Lua script (loaded once, and loaded again when Redis
    answers NOSCRIPT after a restart emptied its script cache); ``do(link.client.get(key))``
    runs one command. Both raise ``CoordinatorUnavailable`` when Redis cannot be reached or does
    not answer within ``timeout`` seconds, and ``ConfigurationError`` when it refuses the ACL
    user or the TLS setup.
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
            # coredis's Script runs EVALSHA and, on NOSCRIPT, SCRIPT LOAD and EVALSHA again.
            script = self._scripts[source] = self._client.register_script(source)
        return await self._guard(script(keys=list(keys), args=list(args)))

    async def do(self, request: Awaitable[T]) -> T:
        """Run one coredis command (``link.client.<command>(...)``, awaited here)."""
        result: T = await self._guard(request)
        return result

    async def _guard(self, awaitable: Awaitable[Any], *, opening: bool = False) -> Any:
        try:
            with trio.fail_after(self.timeout):
                return await awaitable
        except trio.TooSlowError:
            raise CoordinatorUnavailable(
                _silent_text(self.target, self.timeout, opening=opening)) from None
        except Exception as exc:
            failure = _failure(self.target, exc, self.timeout, opening=opening)
            if failure is None:
                raise
            raise failure from None


def _failure(target: RedisTarget, exc: BaseException, timeout: float, *,
             opening: bool) -> BrokergateError | None:
    """What a failure met talking to Redis means to brokergate; None when it is not about the
    link (a script's own error, a wrong type: the caller's to handle)."""
    leaf = _sole(exc)
    if leaf is None:
        return None
    if isinstance(leaf, redis_errors.AuthenticationError | redis_errors.AuthorizationError):
        return ConfigurationError(_auth_text(target, leaf))
    if opening and isinstance(leaf, redis_errors.ResponseError):  # a db it lacks, ...
        return ConfigurationError(f"Redis at {target.where} refused the link: {_plain(leaf)}")
    tls = _cause(leaf, ssl.SSLError)
    if isinstance(tls, ssl.SSLError):
        return ConfigurationError(_tls_text(target, tls))
    if isinstance(leaf, TimeoutError):
        return CoordinatorUnavailable(_silent_text(target, timeout, opening=opening))
    # coredis lets anyio's end of stream through unwrapped when a TLS peer vanishes mid-write.
    if isinstance(leaf, redis_errors.ConnectionError | OSError | anyio.EndOfStream
                  | anyio.BrokenResourceError | anyio.ClosedResourceError):
        hint = ""
        if opening and not target.tls and _cause(leaf, anyio.EndOfStream,
                                                 anyio.BrokenResourceError):
            hint = (" (it hung up without answering: it may be full (maxclients), or, if that "
                    "port speaks TLS, the URL must be rediss://)")
        return CoordinatorUnavailable(
            f"Redis at {target.where} is unreachable: {_plain(leaf)}{hint}")
    return None


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """``exc``, then what caused it, and so on (into a group's first member); at most 8."""
    found: BaseException | None = exc
    for _ in range(8):
        if found is None:
            return
        yield found
        if isinstance(found, BaseExceptionGroup):
            found = found.exceptions[0]
        else:
            found = found.__cause__ or (None if found.__suppress_context__ else found.__context__)


def _cause(exc: BaseException, *kinds: type[BaseException]) -> BaseException | None:
    return next((found for found in _chain(exc) if isinstance(found, kinds)), None)


def _plain(exc: BaseException) -> str:
    """The failure in a line: its own words, and those of what lies at the bottom of it."""
    text = str(exc) or type(exc).__name__
    root = list(_chain(exc))[-1]
    if root is not exc and str(root) and str(root) not in text:
        text = f"{text} ({root})"
    return text[:300]


def _silent_text(target: RedisTarget, timeout: float, *, opening: bool) -> str:
    hint = (" (if that port is not Redis's tls-port, no TLS handshake ever comes back from it)"
            if opening and target.tls else "")
    return f"Redis at {target.where} did not answer within {timeout:g} s{hint}"


def _auth_text(target: RedisTarget, exc: BaseException) -> str:
    who = f"ACL user {target.username!r}" if target.username else "the default user"
    given = "" if target.password else " (given no password)"
    return (f"Redis at {target.where} refused {who}{given}: {_plain(exc)} (check "
            f"{USERNAME_ENV} and the password in {PASSWORD_ENV} or its file)")


def _tls_text(target: RedisTarget, exc: ssl.SSLError) -> str:
    if isinstance(exc, ssl.SSLCertVerificationError):
        return (f"Redis at {target.where}: TLS certificate verify failed "
                f"({exc.verify_message}). That is the configuration's to fix, not the network's: "
                "give the CA that issued Redis's certificate as ca_file, and a host the "
                "certificate names in the URL")
    return (f"Redis at {target.where}: the TLS handshake failed ({exc.reason or exc}); is that "
            "port Redis's tls-port? rediss:// needs one")


@asynccontextmanager
async def open_link(target: RedisTarget, *, answer_within: float = 2.0) -> AsyncIterator[RedisLink]:
    """Connect to ``target`` and check it answers (PING); yield the link; close it on exit.

    Raises ``CoordinatorUnavailable`` when Redis cannot be reached or does not answer, and
    ``ConfigurationError`` when it refuses the credentials or the TLS setup. Every command, and
    the connection itself, must be answered within ``answer_within`` seconds. An exception
    raised by the block comes out as itself.
    """
    if not answer_within > 0:
        raise ConfigurationError(f"answer_within must be a positive number of seconds, not "
                                 f"{answer_within!r}")
    timeout = answer_within
    ssl_context = _tls_context(target) if target.tls else None
    client: coredis.Redis[bytes] = coredis.Redis(
        host=await _address(target, timeout), port=target.port, db=target.db,
        username=target.username,
        password=target.password.reveal() if target.password else None,
        ssl_context=ssl_context,
        connect_timeout=timeout, stream_timeout=timeout, decode_responses=False,
        client_name="brokergate",
    )
    link = RedisLink(client, target, timeout)
    theirs = False
    failure: BaseException | None = None
    try:
        async with client:
            await link._guard(client.ping(), opening=True)
            try:
                yield link
            except BaseException:
                theirs = True
                raise
    except BaseExceptionGroup as group:
        # coredis keeps its connections in a task group, which wraps whatever crosses it, the
        # block's own exception included. Hand back the one exception inside: the block's as
        # it was, coredis's translated.
        leaf = _sole(group)
        if leaf is None:
            raise
        failure = leaf if theirs else (_failure(target, leaf, timeout, opening=True) or leaf)
    if failure is not None:
        # Raised here, outside the handler, so that it is not chained to the group: the block's
        # own exception keeps its cause and context.
        raise failure


def _sole(exc: BaseException) -> BaseException | None:
    """The one exception at the bottom of nested single-member groups (``exc`` itself when it
    is no group), or None when a group holds several."""
    found = exc
    while isinstance(found, BaseExceptionGroup):
        if len(found.exceptions) != 1:
            return None
        found = found.exceptions[0]
    return found
