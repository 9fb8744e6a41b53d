"""A bare CQG WebAPI client for tests: trio-websocket and the session protobufs, no engine.

It does exactly what it is told, so tests can also make it break the protocol.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import trio_websocket
from ws_raw import RawSocket

from brokergate.cqg import pb
from brokergate.simulators.cqg import CqgSimulator

APP_ID = "test-app"
RESTORE = pb.Logon.SESSION_SETTING_ALLOW_SESSION_RESTORE
JOIN = pb.Logon.SESSION_SETTING_ALLOW_SESSION_JOIN


def logon(
    user: str | None = "alice",
    password: str | None = "",
    *,
    app: str | None = APP_ID,
    version: str | None = "1.0",
    settings: Sequence[int] = (RESTORE,),
    **fields: Any,
) -> pb.ClientMsg:
    """A Logon; ``password=""`` means the usual ``<user>-pw``, None leaves it out."""
    msg = pb.ClientMsg()
    msg.logon.SetInParent()
    if user is not None:
        msg.logon.user_name = user
        if password == "":
            password = f"{user}-pw"
    if password:
        msg.logon.password = password
    if app is not None:
        msg.logon.client_app_id = app
    if version is not None:
        msg.logon.client_version = version
    msg.logon.protocol_version_major = 2
    msg.logon.protocol_version_minor = 230
    msg.logon.session_settings.extend(settings)
    for name, value in fields.items():
        setattr(msg.logon, name, value)
    return msg


def restore(token: str, *, app: str | None = APP_ID, **fields: Any) -> pb.ClientMsg:
    msg = pb.ClientMsg()
    msg.restore_or_join_session.session_token = token
    if app is not None:
        msg.restore_or_join_session.client_app_id = app
    for name, value in fields.items():
        setattr(msg.restore_or_join_session, name, value)
    return msg


def ping(token: str = "t", when: int = 1000) -> pb.ClientMsg:
    return pb.ClientMsg(ping=pb.Ping(token=token, ping_utc_time=when))


def logoff(text: str | None = None) -> pb.ClientMsg:
    msg = pb.ClientMsg()
    msg.logoff.SetInParent()
    if text is not None:
        msg.logoff.text_message = text
    return msg


class RawClient(RawSocket):
    async def send(self, msg: pb.ClientMsg | bytes | str) -> None:
        """A message (partially serialized: tests send incomplete ones on purpose) or a frame."""
        data = msg.SerializePartialToString() if isinstance(msg, pb.ClientMsg) else msg
        await self.ws.send_message(data)

    async def recv(self) -> pb.ServerMsg:
        data = await self.ws.get_message()
        assert isinstance(data, bytes)
        return pb.ServerMsg.FromString(data)

    async def logon(self, msg: pb.ClientMsg | None = None) -> pb.LogonResult:
        await self.send(msg or logon())
        answer = await self.recv()
        assert answer.HasField("logon_result"), answer
        return answer.logon_result

    async def restore(self, token: str, **fields: Any) -> pb.RestoreOrJoinSessionResult:
        await self.send(restore(token, **fields))
        answer = await self.recv()
        assert answer.HasField("restore_or_join_session_result"), answer
        return answer.restore_or_join_session_result


@asynccontextmanager
async def connect(sim: CqgSimulator) -> AsyncIterator[RawClient]:
    async with trio_websocket.open_websocket_url(sim.url) as ws:
        yield RawClient(ws)
