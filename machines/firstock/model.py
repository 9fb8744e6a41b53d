"""One Firstock session's model: its token, the REST calls and socket frames it builds, and how
it reads Firstock's answers. The transitions live in ``machines/firstock/table.py``."""

from __future__ import annotations

import json
import random
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, ClassVar

from brokergate.machines._model import LoginModel
from brokergate.machines._policy import Action, Relogon
from brokergate.machines._sansio import (
    Command,
    CredentialReady,
    Deliver,
    Fault,
    FetchCredential,
    FrameReceived,
    HttpAnswered,
    HttpFailed,
    HttpRequest,
    Notice,
    SaveToken,
    SendFrame,
    StartTimer,
    StoredToken,
    TokenRefused,
)
from brokergate.machines._secret import Secret
from brokergate.machines._states import AUTHENTICATED, AWAITING_LOGIN_RESPONSE, RENEW_TRIGGER
from brokergate.machines.firstock import codec, expiry, policy
from brokergate.machines.firstock.callbacks import HEARTBEAT_TIMER, RENEW_TIMER
from brokergate.machines.firstock.config import FirstockConfig
from brokergate.machines.firstock.slots import SocketSlots
from brokergate.machines.firstock.table import BROKER, MACHINE

#: REST calls, by the name of their endpoint, and the trigger their answer fires.
_ANSWER_TRIGGERS = {"login": "login_answer", "userDetails": "validation_answer",
                    "logout": "logout_answer"}
_FAILURE_TRIGGERS = {"login": "login_failed", "userDetails": "login_failed",
                     "logout": "logout_failed"}

#: Endpoints only the session itself calls.
SESSION_ENDPOINTS = frozenset({"login", "logout"})
_ENDPOINT_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*(/[A-Za-z][A-Za-z0-9_]*)*")


@dataclass(frozen=True, slots=True)
class CallAnswer:
    """How Firstock answered an application's REST call.

    ``data`` is the answer's ``data`` when ``ok``. Otherwise ``detail`` is a one-line account
    (HTTP status, Firstock's error name, code, field, message) and ``token_refused`` says whether
    the session's token was the problem (the session then logs in again, once).
    """

    ok: bool
    data: Any
    status: int
    name: str | None
    detail: str
    token_refused: bool


def _susertoken(data: object) -> str | None:
    token = data.get("susertoken") if isinstance(data, dict) else None
    return token if isinstance(token, str) and token else None


def _token_problem(data: object) -> str:
    """What is wrong with the susertoken of a login "success" (never the value itself)."""
    if not isinstance(data, dict):
        return f"data is {codec.json_kind(data)}, not an object"
    if "susertoken" not in data:
        return "absent"
    token = data["susertoken"]
    if isinstance(token, str):
        return "empty"
    return f"{codec.json_kind(token)} where a string belongs"


def _utc_now() -> datetime:
    return datetime.now(UTC)


class FirstockSession(LoginModel):
    """One Firstock session's machine model. Pure: events in, commands out.

    ``wall`` is the wall clock (aware datetimes): TOTP codes and the daily expiry are about
    calendar time. ``stored`` is a token a store kept from an earlier process, if any.
    """

    __slots__ = (
        "app_serial",
        "call_serial",
        "candidate",
        "candidate_created",
        "config",
        "relogged",
        "rest_logins",
        "slots",
        "socket_attaches",
        "token",
        "token_created",
        "token_generation",
        "totp_code",
        "totp_retried",
        "wall",
    )

    broker: ClassVar[str] = BROKER
    broker_name: ClassVar[str] = "Firstock"
    MACHINE = MACHINE

    def __init__(
        self,
        config: FirstockConfig,
        *,
        rng: random.Random | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], datetime] = _utc_now,
        stored: tuple[Secret, datetime] | None = None,
        slots: SocketSlots | None = None,
    ) -> None:
        super().__init__(config, rng=rng, clock=clock)
        self.config = config
        self.wall = wall
        self.slots = slots if slots is not None else SocketSlots()
        self.token: Secret | None = None
        self.token_created: datetime | None = None
        self.candidate: Secret | None = stored[0] if stored else None
        self.candidate_created: datetime | None = stored[1] if stored else None
        self.totp_code: Secret | None = None
        self.totp_retried = False
        #: What refused the token and caused the one fresh login it earns (the trigger's name),
        #: until that same thing accepts the new token.
        self.relogged: str | None = None
        #: Grows with each token the session takes; a refusal names the token it was about.
        self.token_generation = 0
        self.call_serial = 0
        self.app_serial = 0
        self.rest_logins = 0
        self.socket_attaches = 0
        for value in (config.password, config.api_key, config.totp_seed, config.totp,
                      self.candidate):
            self.keep_secret(value)

    @property
    def account(self) -> str:
        return self.config.account

    def outcome(self) -> dict[str, Any]:
        out = super().outcome()
        out.update(rest_logins=self.rest_logins, socket_attaches=self.socket_attaches,
                   token_created=self.token_created.isoformat() if self.token_created else None)
        return out

    # -- the token

    def stored_token_is_current(self) -> bool:
        if self.candidate is None or self.candidate_created is None:
            return False
        c = self.config
        return expiry.token_is_current(self.candidate_created, self.wall(), c.token_expiry,
                                       c.token_timezone)

    def adopt_lease(self, stored: StoredToken | None, handover: Mapping[str, Any] | None) -> None:
        """A login flight's result: the token another session obtained is checked and used as a
        stored one would be (no handover keys: Firstock shares the token alone)."""
        if stored is not None:
            self.candidate, self.candidate_created = stored.token, stored.created
            self.keep_secret(stored.token)

    def adopt_stored(self) -> None:
        """userDetails says the stored token still works: it is the session's token now."""
        self.token, self.token_created = self.candidate, self.candidate_created
        self.candidate = self.candidate_created = None
        self.token_generation += 1
        self.schedule_renewal()

    def take_token(self, data: object) -> None:
        token = _susertoken(data)
        assert token is not None  # _answered turns a success without one into a failure
        self.keep_secret(token)
        self.token = Secret(token)
        self.token_created = self.wall()
        self.token_generation += 1
        self.candidate = self.candidate_created = None  # a stored token not worth checking
        self.rest_logins += 1
        self.totp_retried = False
        self.emit(SaveToken(self.token, self.token_created))
        self.schedule_renewal()

    def schedule_renewal(self) -> None:
        c = self.config
        seconds = expiry.seconds_until_renewal(self.wall(), c.token_expiry, c.token_timezone)
        self.emit(StartTimer(RENEW_TIMER, seconds))

    def drop_token(self) -> None:
        """The token is no good (refused, or about to expire): forget it here and in the store."""
        if self.token is not None or self.candidate is not None:
            self.emit(SaveToken(None))
        self.token = self.token_created = None
        self.candidate = self.candidate_created = None

    # -- TOTP

    def request_totp(self) -> None:
        self.emit(FetchCredential("totp", self.config.request_timeout))

    def credential_source(self, kind: str) -> Any:
        return self.config.totp_provider if kind == "totp" else None

    def take_totp(self, value: object) -> None:
        raw = value.reveal() if isinstance(value, Secret) else str(value)
        self.keep_secret(raw)
        self.totp_code = Secret(raw)

    def seconds_to_next_totp_window(self) -> float:
        return expiry.seconds_to_next_totp_window(self.wall())

    def _current_totp(self) -> str:
        c = self.config
        if self.totp_code is not None:  # from the provider, for this login only
            code, self.totp_code = self.totp_code.reveal(), None
            return code
        if c.totp_seed is not None:
            import pyotp  # noqa: PLC0415 - only seeded sessions need it

            code = pyotp.TOTP(c.totp_seed.reveal()).at(self.wall())
            self.keep_secret(code)
            return str(code)
        return c.totp.reveal() if c.totp is not None else ""

    # -- REST calls

    def _post(self, call: str, body: dict[str, str]) -> None:
        self.call_serial += 1
        c = self.config
        self.emit(HttpRequest(call, self.call_serial, c.endpoint(call), body,
                              c.request_timeout, c.requests_per_second))

    def request_login(self) -> None:
        c = self.config
        self._post("login", codec.login_body(
            user_id=c.user_id, password=c.password.reveal(), totp=self._current_totp(),
            vendor_code=c.vendor_code, api_key=c.api_key.reveal(), version=c.version))

    def request_user_details(self) -> None:
        assert self.candidate is not None
        self._post("userDetails", codec.session_body(self.config.user_id,
                                                     self.candidate.reveal()))

    def request_logout(self) -> None:
        if self.token is None:
            self.fire("logout_failed", detail="no token to log out")
            return
        self._post("logout", codec.session_body(self.config.user_id, self.token.reveal()))
        self.emit(SaveToken(None))

    # -- the application's REST calls

    def application_request(self, endpoint: str,
                            body: Mapping[str, Any] | None) -> tuple[HttpRequest, int]:
        """The POST for an application call to ``endpoint`` with the session's ``userId`` and
        ``jKey`` added to ``body``, and the generation of the token it carries.

        Raises ``ValueError`` for a call the session will not make: an endpoint that is not a
        name, the session's own login and logout, a body that brings its own jKey or another
        user's id, or one that is not JSON.
        """
        if self.token is None:
            raise ValueError("the session holds no token")
        if not isinstance(endpoint, str) or not _ENDPOINT_NAME.fullmatch(endpoint):
            raise ValueError(f"{endpoint!r} is not an endpoint name (like 'userDetails' or "
                             "'placeOrder')")
        if endpoint in SESSION_ENDPOINTS:
            raise ValueError(f"{endpoint!r} is the session's own call (log in and out by "
                             "opening and closing the session)")
        if body is not None and not isinstance(body, Mapping):
            raise ValueError(f"the body must be a mapping of fields, not {type(body).__name__}")
        fields = dict(body or {})
        if "jKey" in fields:
            raise ValueError("the body brings its own jKey; the session adds its token itself")
        user = self.config.user_id
        if fields.setdefault("userId", user) != user:
            raise ValueError("the body's userId is not the session's user")
        try:
            json.dumps(fields)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"the body is not JSON: {exc}") from None
        fields["jKey"] = self.token.reveal()
        self.app_serial += 1
        c = self.config
        request = HttpRequest(endpoint, self.app_serial, c.endpoint(endpoint), fields,
                              c.request_timeout, c.requests_per_second)
        return request, self.token_generation

    def read_application_answer(self, event: HttpAnswered, generation: int) -> CallAnswer:
        """Read Firstock's answer to an application call made with token ``generation``.

        A success with the token the session holds settles a fresh login earned by a refused
        call: a later refusal may have its own. A refusal of the token is not acted on here;
        the engine posts ``TokenRefused`` so that the machine acts on it in order.
        """
        answer = codec.parse_answer(event.status, event.body, event.retry_after,
                                    body_limit=event.body_limit)
        action = policy.classify(answer, with_token=True)
        if answer.ok:
            if generation == self.token_generation and self.relogged == "token_refused":
                self.relogged = None
            return CallAnswer(True, answer.data, event.status, None, "", False)
        refused = isinstance(action, Relogon) and action.credential == "token"
        return CallAnswer(False, None, event.status, answer.name,
                          f"{event.call}: {answer.describe()}", refused)

    # -- the socket

    def config_problems(self) -> list[str]:
        return self.config.problems()

    def connect_url(self) -> str:
        c = self.config
        assert c.socket_url is not None and self.token is not None
        if c.socket == "v2":
            return codec.socket_url(c.socket_url, c.user_id, self.token.reveal())
        return c.socket_url

    def login_frame(self) -> Command | None:
        if self.config.socket == "noren" and self.token is not None:
            return SendFrame(codec.noren_connect(self.config.user_id, self.token.reveal()),
                             "noren connect")
        return None

    def logout_frame(self) -> Command:
        raise AssertionError("Firstock logs out over REST")

    def close_action(self, code: int) -> Action:
        return policy.classify_close(code, before_verdict=self.state == AWAITING_LOGIN_RESPONSE)

    def connect_failed_action(self) -> Action:
        return policy.CONNECT_FAILED

    def timeout_action(self, timer: str) -> Action:
        return policy.TIMEOUT

    def release_socket_slot(self) -> None:
        self.slots.release(self)

    # -- events

    def dispatch(self, event: Any) -> None:
        match event:
            case HttpAnswered(call=call, serial=serial):
                if serial == self.call_serial:
                    self._answered(event)
            case HttpFailed(call=call, serial=serial, detail=detail, timed_out=timed_out):
                if serial == self.call_serial:
                    action = policy.TIMEOUT if timed_out else policy.CONNECT_FAILED
                    self.fire(_FAILURE_TRIGGERS[call], action=action,
                              detail=f"{call}: {detail}")
            case CredentialReady(value=value, problem=problem):
                self.fire("credential_ready", value=value, problem=problem)
            case TokenRefused(generation=generation, detail=detail):
                self.fire("token_refused", action=policy.TOKEN_REFUSED, generation=generation,
                          detail=detail)
            case _:
                super().dispatch(event)

    def _answered(self, event: HttpAnswered) -> None:
        answer = codec.parse_answer(event.status, event.body, event.retry_after,
                                    body_limit=event.body_limit)
        action = policy.classify(answer, with_token=event.call != "login")
        detail = f"{event.call}: Firstock answered {answer.describe()}" if not answer.ok else None
        if event.call == "login" and answer.ok and _susertoken(answer.data) is None:
            action = policy.MISSING_TOKEN
            detail = ("login: Firstock answered success without a susertoken "
                      f"({_token_problem(answer.data)})")
        self.fire(_ANSWER_TRIGGERS[event.call], action=action, data=answer.data, detail=detail,
                  error_code=event.status if not answer.ok else None,
                  min_delay=answer.retry_after or 0.0)

    def on_timer(self, name: str) -> None:
        if name == HEARTBEAT_TIMER:
            if self.state == AUTHENTICATED:
                self.emit(SendFrame(codec.NOREN_HEARTBEAT, "heartbeat"))
                self.emit(StartTimer(HEARTBEAT_TIMER, self.config.heartbeat_interval))
        elif name == RENEW_TIMER:
            self.fire(RENEW_TRIGGER, explain=True)
        else:
            super().on_timer(name)

    def on_frame(self, event: FrameReceived) -> None:
        data = event.data
        if self.state == AUTHENTICATED and type(data) is str and codec.plainly_data(data):
            self.emit(Deliver(None, data))  # the data path: nothing for the session in it
            return
        verdict = codec.read_socket_message(data)
        if self.state == AWAITING_LOGIN_RESPONSE:
            if verdict.unreadable is not None:
                detail = f"Firstock sent an unreadable socket message: {verdict.unreadable}"
                self.fire("malformed_frame", action=policy.MALFORMED_BEFORE_VERDICT,
                          detail=detail)
            elif verdict.ok is not None:
                self.fire("socket_verdict", ok=verdict.ok, detail=verdict.text or None,
                          limit="Maximum sessions limit" in verdict.text)
        elif self.state == AUTHENTICATED:
            if verdict.ok is None:
                # Market data and anything else, readable or not: the application's to parse.
                self.emit(Deliver(None, event.data))
            else:
                said = "accepted" if verdict.ok else "refused"
                self.emit(Notice("unexpected_frame",
                                 f"Firstock's socket {said} the token again while "
                                 "authenticated; ignored", Fault.BROKER))
