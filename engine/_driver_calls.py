"""A session driver's HTTP side: the machine's REST calls, the credentials it asks the
application for, the token store, and the application's own REST calls (brokers with the
``rest_calls`` capability) with their one fresh login when the broker refuses the token."""

from __future__ import annotations

import inspect
from typing import Any

import trio

from brokergate.engine._driver_requests import RequestsPart
from brokergate.engine._driver_state import summarise
from brokergate.engine._errors import (
    ConnectionLost,
    InvalidMessage,
    NotAuthenticated,
    RequestFailed,
)
from brokergate.engine._http import HttpCaller
from brokergate.engine._tokens import StoredToken
from brokergate.machines import (
    AUTHENTICATED,
    CredentialReady,
    Event,
    Fault,
    FetchCredential,
    HttpFailed,
    HttpRequest,
    Notice,
    SaveToken,
    Secret,
    TokenRefused,
)
from brokergate.machines._sansio import BrokergateError


class CallsPart(RequestsPart):
    """HTTP calls, credentials and tokens."""

    __slots__ = ()

    def _start_http_call(self, command: HttpRequest) -> None:
        assert self._nursery is not None
        self._nursery.start_soon(self._http_call, command)

    def _start_fetch(self, command: FetchCredential) -> None:
        assert self._nursery is not None
        self._nursery.start_soon(self._fetch_credential, command.kind, command.seconds)

    def _http_caller(self) -> HttpCaller:
        if self._http is None:
            self._http = self._host.http_caller(self.settings, self._meter)
        return self._http

    async def _http_call(self, request: HttpRequest) -> None:
        """One REST call; its answer (or why there is none) goes back to the machine."""
        self._forget_start()
        answer: Event
        try:
            answer = await self._http_caller().call(request)
        except trio.Cancelled:
            self._calls_cancelled.append(request)
            self._wake_changed()  # a stop waiting for this call's answer looks again
            raise
        except Exception as exc:  # keep a surprise inside this session
            self._log("internal_error", detail=summarise(exc))
            answer = HttpFailed(request.call, request.serial,
                                f"internal error: {type(exc).__name__}")
        if self.feed_here(answer):
            await self._work()  # what the answer calls for (a token to save), in this task

    async def _keep_token(self, command: SaveToken) -> None:
        """Save (or delete) the session token in the store; a store that fails costs only the
        reuse of the token by a later process, so the session goes on and says so."""
        store = self._host.token_store
        broker, user = self.model.broker, self.model.account
        try:
            if command.token is None:
                await store.delete(broker, user)
            else:
                await store.save(broker, user, StoredToken(command.token, command.created))
        except Exception as exc:  # the store is the user's (a file, their own class, Redis)
            what = self._scrub(_store_failure(exc))
            self._notice(Notice("token_store_failed",
                                f"the token store failed ({what}); the session goes on, but a "
                                "later session will log in again", _store_fault(exc)))

    async def _fetch_credential(self, kind: str, seconds: float) -> None:
        """Run the provider of a credential the machine asked for; always answer it.

        A provider's exception is named by its type only: its message might hold the very
        credential it was handling.
        """
        self._forget_start()
        source = self._credentials
        provider = source.credential_source(kind) if source is not None else None
        value: Secret | None = None
        problem: str | None = None
        if provider is None:
            problem = "no provider is configured"
        else:
            try:
                with trio.fail_after(seconds):
                    result = provider()
                    if inspect.isawaitable(result):
                        result = await result
                raw = result.reveal() if isinstance(result, Secret) else result
                if isinstance(raw, str) and raw:
                    value = Secret(raw)
                else:
                    problem = f"it returned {type(raw).__name__}, not a non-empty string"
            except trio.TooSlowError:
                problem = f"no answer within {seconds:g} s"
            except Exception as exc:  # the provider is the user's code: contain it
                problem = f"it raised {type(exc).__name__}"
        if self.feed_here(CredentialReady(kind, value, problem)):
            await self._work()  # what the credential calls for (a logon to send), in this task

    async def call(self, endpoint: str, body: Any = None, *, retry: bool = True) -> Any:
        """One REST call of the application's with the session's token (brokers with the
        ``rest_calls`` capability)."""
        model, rest = self.model, self._rest
        broker = model.broker
        if rest is None:
            raise TypeError(f"{model.broker_name} has no REST API behind its session: "
                            f"{self._what_instead()}")
        build = rest.application_request
        for attempt in (1, 2):
            if model.state != AUTHENTICATED:
                raise NotAuthenticated(broker, model.state)
            try:
                request, generation = build(endpoint, body)
            except ValueError as exc:
                raise InvalidMessage(f"{broker}: not sent: {exc}") from None
            answered = await self._http_caller().call(request)
            if isinstance(answered, HttpFailed):
                raise ConnectionLost(f"{broker} {request.call}: {answered.detail}; the broker may "
                                     "or may not have acted on the call")
            answer = rest.read_application_answer(answered, generation)
            if answer.ok:
                return answer.data
            detail = self._scrub(answer.detail)
            if answer.token_refused:
                self.feed(TokenRefused(generation, detail))
                if retry and attempt == 1 and await self._new_token(generation):
                    continue  # the broker acted on nothing: the same call with the new token
            raise RequestFailed(broker, answer.status, detail, name=answer.name,
                                token_refused=answer.token_refused)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _new_token(self, generation: int) -> bool:
        """Wait until the session is authenticated with a token newer than ``generation``.

        Raise the session's error if it ends instead (a fresh login refused: ``LoginFailed``
        with reason ``session_invalid``); False if it does not get there within its own login
        bounds (the caller's error then says what the broker said).
        """
        model, rest = self.model, self._rest
        assert rest is not None
        limit = self.settings.login_timeout + self.settings.connect_timeout
        with trio.move_on_after(2 * limit):
            while True:
                if rest.token_generation != generation and model.state == AUTHENTICATED:
                    return True
                if self._ended():
                    raise self.error()
                await self._next_change()
        return False


def _store_failure(exc: Exception) -> str:
    """What a token store's failure was: brokergate's own errors in their words (they hold no
    secret), anything else by its type only (its message might quote the token)."""
    if isinstance(exc, BrokergateError):
        return f"{type(exc).__name__}: {exc}"[:300]
    return type(exc).__name__


def _store_fault(exc: Exception) -> Fault:
    """Whose fault a token store's failure is: as brokergate's error says (an unreachable
    coordinator is the network's), else the configuration's (the store is the user's)."""
    fault = getattr(exc, "fault", None) if isinstance(exc, BrokergateError) else None
    return fault if isinstance(fault, Fault) else Fault.CONFIGURATION
