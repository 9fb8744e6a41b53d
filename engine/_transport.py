"""Opening a WebSocket to a broker: TLS by default, loopback-only plaintext, clear failures.

The TCP connection and the TLS handshake are done here, before trio-websocket sees the stream:
trio-websocket 0.12 waits forever for its opening handshake when TLS fails underneath it (a
certificate it cannot verify), where we want an immediate, named error.
"""

from __future__ import annotations

import functools
import ipaddress
import ssl
from typing import Protocol
from urllib.parse import urlsplit

import trio
import trio_websocket


@functools.cache
def tls_context(ca_file: str | None) -> ssl.SSLContext:
    # One context per CA bundle, shared by every session: building one reads the CA store,
    # which is far too slow and large to repeat for thousands of sessions.
    return ssl.create_default_context(cafile=ca_file)


def _tls(url: str) -> bool:
    return urlsplit(url).scheme in ("wss", "https")


class NotLoopback(OSError):
    """A plaintext connection to a loopback *name* whose address is not loopback."""


@functools.lru_cache(maxsize=1024)
def _ip_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


async def loopback_addresses(host: str, port: int, scheme: str) -> list[str]:
    """Where a plaintext (``ws://``, ``http://``) connection to ``host`` may go.

    The configuration lets plaintext through only to a loopback host, which may be a name
    (``localhost``); a resolver that maps that name elsewhere must not carry plaintext (and the
    login in it) off the machine, so every address it resolves to must be loopback, and the
    connection goes to those addresses, not to the name resolved again. Raises ``NotLoopback``.
    """
    if _ip_literal(host):
        return [host]  # the configuration checked it
    infos = await trio.socket.getaddrinfo(host, port, type=trio.socket.SOCK_STREAM)
    addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
    for address in addresses:
        if not ipaddress.ip_address(address.split("%", 1)[0]).is_loopback:
            raise NotLoopback(f"plaintext {scheme}:// to {host} refused: it resolves to "
                              f"{address}, which is not a loopback address")
    return addresses


async def plaintext_problem(url: str) -> str | None:
    """Why a plaintext request to ``url`` must not be made (see ``loopback_addresses``), or
    None (TLS, an IP address, or a name resolving to loopback addresses only)."""
    if _tls(url):
        return None
    parts = urlsplit(url)
    try:
        await loopback_addresses(parts.hostname or "", parts.port or 80, parts.scheme)
    except NotLoopback as exc:
        return str(exc)
    except OSError:
        return None  # cannot resolve: the request itself will say so
    return None


class WebSocketTransport(Protocol):
    """What carries a session's WebSocket: a byte stream to the URL's server, over which the
    engine speaks the WebSocket protocol itself. Inject one into ``open_gateway`` to go through
    a proxy or a tunnel, or to reach a test server; the default is ``TcpTransport``.

    A transport of your own carries the TLS and loopback rules itself: the default's are that
    ``wss://`` is verified TLS and ``ws://`` only goes to loopback addresses.
    """

    async def open_stream(self, url: str, ca_file: str | None) -> trio.abc.Stream:
        """An open stream to ``url``'s server (TLS done, for ``wss://``); ``OSError`` if none."""


class TcpTransport:
    """TCP to the URL's host, with a verified TLS handshake for ``wss://`` (``ca_file`` adds a
    CA to trust); plaintext only to loopback addresses."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "TcpTransport()"

    async def open_stream(self, url: str, ca_file: str | None) -> trio.abc.Stream:
        return await open_stream(url, ca_file)


async def open_stream(url: str, ca_file: str | None) -> trio.abc.Stream:
    """TCP to the URL's host, plus a verified TLS handshake for ``wss://``; plaintext only to
    loopback addresses."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or (443 if _tls(url) else 80)
    if not _tls(url):
        failure: OSError | None = None
        for address in await loopback_addresses(host, port, parts.scheme):
            try:
                return await trio.open_tcp_stream(address, port)
            except OSError as exc:
                failure = exc
        assert failure is not None  # getaddrinfo returns an address or raises
        raise failure
    tcp = await trio.open_tcp_stream(host, port)
    stream = trio.SSLStream(tcp, tls_context(ca_file), server_hostname=host,
                            https_compatible=True)
    try:
        await stream.do_handshake()
    except BaseException:
        await trio.aclose_forcefully(tcp)
        raise
    return stream


def root_cause(exc: BaseException) -> BaseException:
    """The most specific error behind a connect failure: trio wraps per-address attempts in a
    group, trio-websocket re-raises inside ``except`` blocks, and httpcore wraps the original."""
    seen = set()
    while id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, BaseExceptionGroup) and exc.exceptions:
            exc = exc.exceptions[0]
        elif exc.__cause__ is not None:
            exc = exc.__cause__
        elif exc.__context__ is not None and not exc.__suppress_context__:
            exc = exc.__context__
        elif exc.args and isinstance(exc.args[0], BaseException):
            exc = exc.args[0]  # httpcore wraps the original as its argument, "from None"
        else:
            break
    return exc


def describe_refusal(cause: BaseException) -> str | None:
    """Why a connection failed where its root cause is TLS or a refused connection, in one
    line; None for any other cause (WebSocket and HTTP connections alike)."""
    if isinstance(cause, ssl.SSLCertVerificationError):
        return f"TLS certificate verification failed: {cause.verify_message}"
    if isinstance(cause, ssl.SSLError):
        return f"TLS handshake failed: {cause.reason or cause}"
    if isinstance(cause, ConnectionRefusedError):
        return "connection refused"
    return None


def describe_connect_error(exc: BaseException) -> str:
    """A one-line account of why a connection could not be opened."""
    if isinstance(exc, trio_websocket.ConnectionRejected):
        return f"the server rejected the WebSocket handshake with HTTP {exc.status_code}"
    if isinstance(exc, trio_websocket.ConnectionTimeout):
        return "the WebSocket handshake timed out"
    cause = root_cause(exc)
    refusal = describe_refusal(cause)
    if refusal is not None:
        return refusal
    if isinstance(cause, OSError):
        return f"could not connect: {cause.strerror or cause}"
    if isinstance(cause, trio.TooSlowError):
        return "timed out"
    return f"could not connect: {type(cause).__name__}: {cause}"
