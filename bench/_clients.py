"""The two clients every benchmark compares: brokergate, and the minimal hand-written client.

The minimal client is what an engineer would write without brokergate, with the same libraries:
open the WebSocket with trio-websocket, send the login as protobuf bytes, read one answer and
check it (QST, CQG); or POST the login with httpx, read the token, and open the socket with it
(Firstock). No state machine, no retry, no audit trail, no request gate, no heartbeat: the least
that logs in. Both clients log in to the same simulator accounts (``bench._server``).

Each function logs one account in, calls ``authenticated()`` once it is, then holds the session
open until ``release`` is set, and closes it. ``keep``, if given, is handed the logged-in
WebSocket first (the steady-state benchmark goes on using it).
"""

from __future__ import annotations

import json
import ssl
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

import httpx
import trio
import trio_websocket

from bench._server import PASSWORD, TOTP, api_key, vendor_code
from brokergate import CqgConfig, FirstockConfig, Gateway, QstConfig, Secret
from brokergate.machines.cqg import cqg_session_pb2 as cqg_pb
from brokergate.machines.qst import qst_pb2 as qst_pb

CLIENT_ID = "bench"
#: Built once, as any careful client does: httpx builds a new context (reading the CA store,
#: about 20 ms) for every client made without one. brokergate shares one the same way.
_TLS = ssl.create_default_context()
BROKERS = ("qst", "cqg", "firstock")


#: Handed the minimal client's WebSocket once it is logged in.
Keep = Callable[[trio_websocket.WebSocketConnection], None] | None


class LoginRefused(Exception):
    """The simulator did not log the minimal client in (the benchmark is broken, not slow)."""


# ---------------------------------------------------------------------------------------------
# the minimal client


def _binary(message: bytes | str, broker: str) -> bytes:
    if isinstance(message, str):
        raise LoginRefused(f"{broker} answered the login with a text frame")
    return message


async def minimal_qst(url: str, user: str, authenticated: Callable[[], None],
                      release: trio.Event, *, keep: Keep = None, queue: int = 1) -> None:
    async with trio_websocket.open_websocket_url(url, message_queue_size=queue) as ws:
        req = qst_pb.Request(request_id=1)
        req.login.user_name = user
        req.login.password.value = PASSWORD
        req.login.password.version = 1
        req.login.client_id = CLIENT_ID
        await ws.send_message(req.SerializeToString())
        answer = qst_pb.Response()
        answer.ParseFromString(_binary(await ws.get_message(), "QST"))
        if not answer.HasField("login"):
            raise LoginRefused(f"QST refused {user}: {answer}")
        if keep is not None:
            keep(ws)
        authenticated()
        await release.wait()


async def minimal_cqg(url: str, user: str, authenticated: Callable[[], None],
                      release: trio.Event, *, keep: Keep = None, queue: int = 1) -> None:
    async with trio_websocket.open_websocket_url(url, message_queue_size=queue) as ws:
        msg = cqg_pb.ClientMsg()
        logon = msg.logon
        logon.user_name = user
        logon.password = PASSWORD
        logon.client_app_id = CLIENT_ID
        logon.client_version = "bench 1"
        logon.protocol_version_major = 2
        logon.protocol_version_minor = 230
        await ws.send_message(msg.SerializeToString())
        answer = cqg_pb.ServerMsg()
        answer.ParseFromString(_binary(await ws.get_message(), "CQG"))
        if not answer.HasField("logon_result") or answer.logon_result.result_code != 0:
            raise LoginRefused(f"CQG refused {user}: {answer}")
        if keep is not None:
            keep(ws)
        authenticated()
        await release.wait()


async def minimal_firstock(base_url: str, socket_url: str, user: str,
                           authenticated: Callable[[], None], release: trio.Event, *,
                           keep: Keep = None, queue: int = 1) -> None:
    body = {"userId": user, "password": PASSWORD, "TOTP": TOTP, "vendorCode": vendor_code(user),
            "apiKey": api_key(user)}
    async with httpx.AsyncClient(verify=_TLS) as http:
        reply = await http.post(f"{base_url}/login", json=body)
        data = reply.json().get("data") or {}
        token = data.get("susertoken")
        if reply.status_code != 200 or not token:
            raise LoginRefused(f"Firstock refused {user}: HTTP {reply.status_code}")
        query = urlencode({"userId": user, "jKey": token, "source": "developer-api"})
        url = f"{socket_url}{'&' if '?' in socket_url else '?'}{query}"
        async with trio_websocket.open_websocket_url(url, message_queue_size=queue) as ws:
            verdict = json.loads(await ws.get_message())
            if str(verdict.get("status", "")).lower() != "success":
                raise LoginRefused(f"the Firstock socket refused {user}: {verdict}")
            if keep is not None:
                keep(ws)
            authenticated()
            await release.wait()


# ---------------------------------------------------------------------------------------------
# brokergate


def engine_config(broker: str, info: dict[str, Any], user: str, **settings: Any) -> Any:
    """The brokergate configuration that logs ``user`` in to the simulator described by
    ``info`` (``bench._server``'s first line)."""
    if broker == "qst":
        return QstConfig(url=info["url"], user_name=user, password=Secret(PASSWORD),
                         client_id=CLIENT_ID, **settings)
    if broker == "cqg":
        # The simulator is loopback and the benchmark's own: no per-user logon throttle.
        settings.setdefault("min_logon_interval", 0.0)
        return CqgConfig(url=info["url"], user_name=user, password=Secret(PASSWORD),
                         client_app_id=CLIENT_ID, client_version="bench 1", **settings)
    settings.setdefault("requests_per_second", None)
    settings.setdefault("socket", "v2")
    if settings["socket"] != "none":
        settings.setdefault("socket_url", info["socket_url"])
    return FirstockConfig(base_url=info["base_url"], user_id=user, password=Secret(PASSWORD),
                          api_key=Secret(api_key(user)), vendor_code=vendor_code(user),
                          totp=Secret(TOTP), **settings)


async def engine_login(gateway: Gateway, config: Any, authenticated: Callable[[], None],
                       release: trio.Event) -> None:
    """One brokergate session from ``gateway`` (a process's sessions share one gateway)."""
    async with gateway.session(config) as session:
        await session.wait_authenticated()
        authenticated()
        await release.wait()


async def minimal_login(broker: str, info: dict[str, Any], user: str,
                        authenticated: Callable[[], None], release: trio.Event, *,
                        keep: Keep = None, queue: int = 1) -> None:
    """The minimal client of ``broker``, logged in as ``user``; ``queue`` is trio-websocket's
    message_queue_size (its default, 1, unless a benchmark asks otherwise)."""
    if broker == "qst":
        await minimal_qst(info["url"], user, authenticated, release, keep=keep, queue=queue)
    elif broker == "cqg":
        await minimal_cqg(info["url"], user, authenticated, release, keep=keep, queue=queue)
    else:
        await minimal_firstock(info["base_url"], info["socket_url"], user, authenticated,
                               release, keep=keep, queue=queue)
