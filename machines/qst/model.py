"""One QST session's model: the frames it builds and how it reads QST's answers.

The transitions live in ``machines/qst/table.py``; this is what they act on.
"""

from __future__ import annotations

import random
from typing import Any, ClassVar

from brokergate.machines._model import LoginModel
from brokergate.machines._policy import Action
from brokergate.machines._sansio import (
    Command,
    Deliver,
    Fault,
    FrameReceived,
    Notice,
    RequestError,
    SendFrame,
)
from brokergate.machines._states import AUTHENTICATED, AWAITING_LOGIN_RESPONSE, LOGGING_OUT
from brokergate.machines.qst import codec, policy
from brokergate.machines.qst.codec import MalformedFrame, ProvisioningMessage
from brokergate.machines.qst.config import QstConfig
from brokergate.machines.qst.table import BROKER, MACHINE


class QstSession(LoginModel):
    """One QST session's machine model. Pure: feed it events, carry out the commands it returns."""

    __slots__ = ("config", "granted", "provisioning")

    broker: ClassVar[str] = BROKER
    broker_name: ClassVar[str] = "QST"
    MACHINE = MACHINE
    first_request_id: ClassVar[int] = codec.FIRST_APPLICATION_REQUEST_ID

    def __init__(self, config: QstConfig, *, rng: random.Random | None = None) -> None:
        super().__init__(config, rng=rng)
        self.config = config
        self.granted: dict[str, object] = {}
        self.provisioning: tuple[ProvisioningMessage, ...] = ()
        self.keep_secret(config.password)

    @property
    def account(self) -> str:
        return self.config.account

    def outcome(self) -> dict[str, Any]:
        out = super().outcome()
        out["granted"] = dict(self.granted)
        if self.provisioning:
            out["provisioning_messages"] = [
                {"id": m.id, "title": m.title, "url": m.url} for m in self.provisioning
            ]
        return out

    # -- broker specifics used by the shared machine

    def config_problems(self) -> list[str]:
        return self.config.problems()

    def connect_url(self) -> str:
        return self.config.url

    def login_frame(self) -> Command:
        c = self.config
        return SendFrame(
            codec.encode_login(
                user_name=c.user_name,
                password=c.password.reveal(),
                password_version=c.password_version,
                client_id=c.client_id,
                coalescing_interval=c.coalescing_interval,
                coalesce_last_trade=c.coalesce_last_trade,
                white_label_code=c.white_label_code,
                local_ip=c.local_ip,
            ),
            "LoginRequest",
        )

    def logout_frame(self) -> Command:
        return SendFrame(codec.encode_logout(), "LogoutRequest")

    def close_action(self, code: int) -> Action:
        return policy.classify_close(code, during_login=self.state == AWAITING_LOGIN_RESPONSE)

    def connect_failed_action(self) -> Action:
        return policy.CONNECT_FAILED

    def timeout_action(self, timer: str) -> Action:
        return policy.TIMEOUT

    def encode_request(self, message: Any, request_id: int) -> bytes:
        return codec.encode_request(message, request_id)

    # -- frames

    def on_frame(self, event: FrameReceived) -> None:
        try:
            resp = codec.decode_response(event.data)
        except MalformedFrame as exc:
            self._malformed(str(exc))
            return
        kind = resp.WhichOneof("response")
        rid = resp.request_id if resp.HasField("request_id") else None
        if self.state == AWAITING_LOGIN_RESPONSE:
            self._login_answer(resp, kind, rid)
        elif self.state == AUTHENTICATED:
            self._application_frame(resp, kind, rid)
        elif self.state == LOGGING_OUT:
            if kind == "logout":
                self.fire("logout_response")
            elif rid is not None:
                self._application_frame(resp, kind, rid)

    def _login_answer(self, resp: Any, kind: str | None, rid: int | None) -> None:
        if rid is not None and rid != codec.LOGIN_REQUEST_ID:
            self._malformed(f"a {kind} for request {rid} before the login response")
        elif kind == "login":
            self.fire("login_response", granted=codec.granted(resp))
        elif kind == "provisioning_messages":
            self.fire("provisioning_messages", messages=codec.provisioning_messages(resp))
        elif kind == "error":
            err = resp.error
            code = err.code if err.HasField("code") else None
            text = err.message if err.HasField("message") else None
            action, decided = policy.classify_error(code, text)
            detail = f"QST ErrorMessage: {text!r}" if text else "QST ErrorMessage without text"
            self.fire("error_message", action=action, error_code=decided, detail=detail)
        else:
            self._malformed(f"a {kind} response before the login response")

    def _application_frame(self, resp: Any, kind: str | None, rid: int | None) -> None:
        if kind in ("login", "provisioning_messages", "logout"):
            self.emit(Notice("unexpected_frame",
                             f"QST sent an unsolicited {kind} while authenticated; ignored",
                             Fault.BROKER))
        elif kind == "error":
            err = resp.error
            error = RequestError(err.code if err.HasField("code") else None, err.message)
            if rid is None:
                self.emit(Notice("broker_error", f"QST ErrorMessage: {err.message!r}",
                                 Fault.BROKER, error))
            else:
                self.emit(Deliver(rid, None, error))
        else:
            assert kind is not None
            self.emit(Deliver(rid, getattr(resp, kind)))

    def _malformed(self, what: str) -> None:
        during_login = self.state == AWAITING_LOGIN_RESPONSE
        action = policy.MALFORMED_DURING_LOGIN if during_login else policy.MALFORMED_AFTER_LOGIN
        self.fire("malformed_frame", action=action, detail=f"QST sent an invalid frame: {what}")
