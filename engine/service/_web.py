"""What ``brokergate run`` serves over HTTP: an ASGI application, run by hypercorn's trio worker
on the service's own trio loop.

- ``GET /metrics``: Prometheus exposition (prometheus_client's ASGI app, so content negotiation
  for OpenMetrics and gzip are its).
- ``GET /healthz``: 200 while every session inside its schedule is as it should be (see
  ``_supervisor``), else 503; plain text, one line per session, unhealthy ones first.
- ``GET /status``: JSON, each session's state, schedule, recent transitions, reason and fault.
- ``GET /``: the status page (``_page``), read-only, refreshing itself from ``/status``.

Read-only: any other method is refused (405), any other path is 404. Every answer says not to
cache it; the page forbids everything it does not need (``Content-Security-Policy``).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]

#: The page loads nothing from anywhere: its script and style are inline, and it only fetches
#: ``/status`` from where it came from.
PAGE_POLICY = ("default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
               "connect-src 'self'; img-src data:; base-uri 'none'; form-action 'none'; "
               "frame-ancestors 'none'")


def _headers(content_type: str, extra: tuple[tuple[str, str], ...] = ()) -> list[
        tuple[bytes, bytes]]:
    pairs = (("content-type", content_type), ("cache-control", "no-store"),
             ("x-content-type-options", "nosniff"), *extra)
    return [(k.encode(), v.encode()) for k, v in pairs]


async def _answer(send: Send, status: int, body: bytes, content_type: str,
                  extra: tuple[tuple[str, str], ...] = (), *, head: bool = False) -> None:
    await send({"type": "http.response.start", "status": status,
                "headers": _headers(content_type, extra)})
    await send({"type": "http.response.body", "body": b"" if head else body})


class ServiceApp:
    """The ASGI application. ``service`` is what it reads: ``health()``, ``status()``,
    ``page()`` and the metrics registry."""

    def __init__(self, service: Any, registry: Any) -> None:
        from prometheus_client import make_asgi_app  # noqa: PLC0415 - the ops extra

        self._service = service
        self._metrics: App = make_asgi_app(registry)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] != "http":
            return  # no WebSockets here
        method, path = scope["method"], scope["path"]
        head = method == "HEAD"
        if method not in ("GET", "HEAD"):
            await _answer(send, 405, b"read-only: GET only\n", "text/plain; charset=utf-8",
                          (("allow", "GET, HEAD"),))
            return
        if path == "/metrics":
            await self._metrics(scope, receive, send)
        elif path == "/healthz":
            healthy, lines = self._service.health()
            body = ("ok\n" if healthy else "unhealthy\n") + "".join(f"{x}\n" for x in lines)
            await _answer(send, 200 if healthy else 503, body.encode(),
                          "text/plain; charset=utf-8", head=head)
        elif path == "/status":
            status = json.dumps(self._service.status(), indent=1).encode()
            await _answer(send, 200, status, "application/json", head=head)
        elif path in ("/", "/index.html"):
            await _answer(send, 200, self._service.page().encode(), "text/html; charset=utf-8",
                          (("content-security-policy", PAGE_POLICY),
                           ("referrer-policy", "no-referrer")), head=head)
        else:
            await _answer(send, 404, b"not found: /, /status, /healthz, /metrics\n",
                          "text/plain; charset=utf-8", head=head)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
