"""Opening a WebSocket to a broker: TLS by default, loopback-only plaintext, clear failures."""

from __future__ import annotations

import functools
import ssl
from urllib.parse import urlsplit

import trio
import trio_websocket


def ssl_context_for(url: str, ca_file: str | None) -> ssl.SSLContext | None:
    """A verifying TLS context for ``wss://`` (trusting ``ca_file`` when given), else None."""
    if urlsplit(url).scheme not in ("wss", "https"):
        return None
    return _tls_context(ca_file)


@functools.cache
def _tls_context(ca_file: str | None) -> ssl.SSLContext:
    # One context per CA bundle, shared by every session: building one reads the CA store,
    # which is far too slow and large to repeat for thousands of sessions.
    return ssl.create_default_context(cafile=ca_file)


def _root_cause(exc: BaseException) -> BaseException:
    """The most specific error behind a handshake failure (trio wraps per-address attempts)."""
    seen = set()
    while id(exc) not in seen:
        seen.add(id(exc))
        if isinstance(exc, BaseExceptionGroup) and exc.exceptions:
            exc = exc.exceptions[0]
        elif exc.__cause__ is not None:
            exc = exc.__cause__
        elif isinstance(exc, trio_websocket.HandshakeError) and exc.__context__ is not None:
            exc = exc.__context__
        else:
            break
    return exc


def describe_connect_error(exc: BaseException) -> str:
    """A one-line account of why a connection could not be opened."""
    if isinstance(exc, trio_websocket.ConnectionRejected):
        return f"the server rejected the WebSocket handshake with HTTP {exc.status_code}"
    if isinstance(exc, trio_websocket.ConnectionTimeout):
        return "the WebSocket handshake timed out"
    cause = _root_cause(exc)
    if isinstance(cause, ssl.SSLCertVerificationError):
        return f"TLS certificate verification failed: {cause.verify_message}"
    if isinstance(cause, ssl.SSLError):
        return f"TLS handshake failed: {cause.reason or cause}"
    if isinstance(cause, ConnectionRefusedError):
        return "connection refused"
    if isinstance(cause, OSError):
        return f"could not connect: {cause.strerror or cause}"
    if isinstance(cause, trio.TooSlowError):
        return "timed out"
    return f"could not connect: {type(cause).__name__}: {cause}"
