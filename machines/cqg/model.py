"""One CQG session's model: its bookkeeping, the frames it builds and how it reads CQG's.

The transitions live in ``machines/cqg/table.py``; this is what they act on.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, ClassVar

from brokergate.machines._config import CredentialProvider
from brokergate.machines._model import LoginModel
from brokergate.machines._policy import Action
from brokergate.machines._sansio import (
    CancelTimer,
    Command,
    ConnectFailed,
    CredentialReady,
    Deliver,
    Fault,
    FrameReceived,
    Notice,
    SendFrame,
    StartTimer,
    StoredToken,
)
from brokergate.machines._secret import Secret
from brokergate.machines._states import (
    AUTHENTICATED,
    AWAITING_LOGIN_RESPONSE,
    LOGGING_OUT,
    LOGIN_TIMER,
    RESTORING,
)
from brokergate.machines.cqg import codec, policy
from brokergate.machines.cqg import cqg_session_pb2 as pb
from brokergate.machines.cqg.callbacks import (
    INACTIVITY_TIMER,
    PING_TIMER,
    PING_TOKEN,
    PONG_TIMER,
)
from brokergate.machines.cqg.codec import CqgServerMessage, MalformedFrame
from brokergate.machines.cqg.config import CqgConfig
from brokergate.machines.cqg.handover import adopt, handover_of
from brokergate.machines.cqg.table import BROKER, MACHINE
from brokergate.machines.cqg.throttle import LogonHistory

_USER_MESSAGE_TYPES = {1: "CRITICAL_ERROR", 2: "WARNING", 3: "INFO", 4: "LOG"}


class CqgSession(LoginModel):
    """One CQG session's machine model. Pure: feed it events, carry out the commands it returns.

    ``history`` is the user's logon history, shared with the user's other sessions (the engine
    keeps one per user); ``clock`` is monotonic seconds (the engine passes trio's clock);
    ``wall`` is now as an aware datetime (only a fleet's handover reads it).
    """

    __slots__ = (
        "access_token",
        "anchor_clock",
        "anchor_server_ms",
        "base_time",
        "config",
        "history",
        "inactivity_timeout",
        "last_activity",
        "logon_url",
        "logons",
        "lost_at",
        "one_time_password",
        "pending_credential",
        "ping_interval",
        "ping_seq",
        "ping_timeout",
        "pong_due",
        "redirects",
        "refreshed",
        "restores",
        "rtt",
        "server_version",
        "session_token",
        "session_url",
        "user_id",
        "wall",
    )

    broker: ClassVar[str] = BROKER
    broker_name: ClassVar[str] = "CQG"
    MACHINE = MACHINE
    websocket_pings: ClassVar[bool] = False
    #: No Pong by its deadline means a dead connection (policy: disconnect).
    liveness_timers: ClassVar[frozenset[str]] = frozenset({PONG_TIMER})

    def __init__(
        self,
        config: CqgConfig,
        *,
        rng: random.Random | None = None,
        clock: Callable[[], float] = time.monotonic,
        history: LogonHistory | None = None,
        wall: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        super().__init__(config, rng=rng, clock=clock)
        self.config = config
        self.wall = wall
        self.history = history if history is not None else LogonHistory()
        self.ping_interval = config.ping_interval
        self.ping_timeout = config.ping_timeout
        self.logon_url = config.url
        self.session_url = config.url
        self.session_token: Secret | None = None
        self.access_token = config.access_token
        self.one_time_password: Secret | None = None
        self.pending_credential: str | None = None
        # Which credentials were fetched afresh since the last logon (a frozenset: most
        # sessions never refresh one, and an empty set costs every session 216 bytes).
        self.refreshed: frozenset[str] = frozenset()
        self.base_time: str | None = None
        self.anchor_server_ms = 0
        self.anchor_clock = 0.0
        self.user_id: int | None = None
        self.server_version: str | None = None
        self.inactivity_timeout: int | None = None
        self.last_activity = 0.0
        self.lost_at: float | None = None
        self.redirects = 0
        self.logons = 0
        self.restores = 0
        self.ping_seq = 0
        self.pong_due = False
        self.rtt: float | None = None
        for name in ("password", "access_token", "partner_token", "otp_seed"):
            self.keep_secret(getattr(config, name))

    @property
    def account(self) -> str:
        return self.config.account

    def outcome(self) -> dict[str, Any]:
        out = super().outcome()
        out.update(
            logons=self.logons,
            restores=self.restores,
            user_id=self.user_id,
            base_time=self.base_time,
            server_protocol_version=self.server_version,
            inactivity_timeout=self.inactivity_timeout,
        )
        return out

    # -- a fleet: what the next holder of the user's lease takes over (machines/cqg/handover.py)

    def handover(self) -> dict[str, Any] | None:
        return handover_of(self)

    def adopt_lease(self, stored: StoredToken | None,
                    handover: Mapping[str, Any] | None) -> None:
        if handover is not None:
            adopt(self, handover)

    # -- the clock CQG's times are measured on

    def anchor(self, base_time: str, server_time: int) -> None:
        """CQG's sint64 times are ms since the session's base_time; remember where 'now' is."""
        self.base_time = base_time
        self.anchor_server_ms = server_time
        self.anchor_clock = self.clock()

    def server_now_ms(self) -> int:
        return self.anchor_server_ms + round((self.clock() - self.anchor_clock) * 1000)

    # -- broker specifics used by the shared machine

    def config_problems(self) -> list[str]:
        return self.config.problems()

    def connect_url(self) -> str:
        return self.logon_url

    def credential_source(self, kind: str) -> CredentialProvider | None:
        if kind == "one_time_password":
            return self.config.otp_provider or self.config.totp_provider()
        if kind == "access_token":
            return self.config.access_token_provider
        return None

    def login_frame(self) -> Command:
        c = self.config
        self.history.attempted(self.clock())
        otp = self.one_time_password
        settings = [codec.ALLOW_SESSION_RESTORE] if c.restore else []
        data = codec.encode_logon(
            client_version=c.client_version,
            user_name=c.user_name if not c.uses_access_token else None,
            password=c.password.reveal() if c.password is not None else None,
            one_time_password=otp.reveal() if otp is not None else None,
            access_token=self.access_token.reveal() if self.access_token is not None else None,
            partner_token=c.partner_token.reveal() if c.partner_token is not None else None,
            client_app_id=c.client_app_id,
            private_label=c.private_label,
            drop_concurrent_session=c.drop_concurrent_session,
            max_collapsing_level=c.max_collapsing_level,
            market_data_bandwidth=c.market_data_bandwidth,
            session_settings=settings,
            dialect_id=c.dialect_id,
            fingerprint=c.fingerprint,
            operating_system=c.operating_system,
            browser=c.browser,
            device_model=c.device_model,
        )
        return SendFrame(data, "Logon" + (" (with one-time password)" if otp else ""))

    def restore_frame(self) -> Command:
        c = self.config
        assert self.session_token is not None
        data = codec.encode_restore(
            session_token=self.session_token.reveal(),
            client_app_id=c.client_app_id,
            private_label=c.private_label,
            max_collapsing_level=c.max_collapsing_level,
            market_data_bandwidth=c.market_data_bandwidth,
        )
        return SendFrame(data, "RestoreOrJoinSession")

    def logout_frame(self) -> Command:
        text = "inactivity timeout" if self.logout_reason else "closed by the application"
        return SendFrame(codec.encode_logoff(f"brokergate: {text}"), "Logoff")

    def close_action(self, code: int) -> Action:
        if code in policy.INVALID_FRAME_CLOSES:
            return self._malformed_action()
        if code == policy.FRAME_TOO_LARGE_CLOSE:
            if self.state == AUTHENTICATED:
                return policy.FRAME_TOO_LARGE
            return policy.FRAME_TOO_LARGE_EARLY
        if self.state == AUTHENTICATED:
            return policy.CONNECTION_LOST
        return policy.CONNECTION_LOST_EARLY

    def connect_failed_action(self) -> Action:
        return policy.CONNECT_FAILED

    def timeout_action(self, timer: str) -> Action:
        return policy.TIMEOUT

    def encode_send(self, message: Any) -> bytes:
        return codec.application_message(message)

    def application_sent(self) -> None:
        self.last_activity = self.clock()

    # -- events beyond the shared ones

    def dispatch(self, event: Any) -> None:
        if isinstance(event, CredentialReady):
            self.fire("credential_ready", value=event.value, problem=event.problem)
        elif isinstance(event, ConnectFailed) and self.logon_url != self.config.url:
            # A server CQG redirected us to: say so, it is not the one configured.
            super().dispatch(ConnectFailed(event.epoch, f"{event.detail} (at {self.logon_url}, "
                                                        "where CQG redirected the session)"))
        else:
            super().dispatch(event)

    def on_timer(self, name: str) -> None:
        if name == PING_TIMER:
            self._ping()
        elif name == PONG_TIMER:
            self.pong_due = False
            self.fire("timeout", action=policy.CONNECTION_LOST,
                      detail=f"no Pong within {self.ping_timeout:g} s")
        elif name == INACTIVITY_TIMER:
            self._check_inactivity()
        elif name == LOGIN_TIMER and self.state == RESTORING:
            self.fire("timeout", action=policy.TIMEOUT,
                      detail=f"no restore result within {self.login_timeout:g} s")
        else:
            super().on_timer(name)

    def _ping(self) -> None:
        if self.state != AUTHENTICATED or self.ping_interval is None:
            return
        self.ping_seq += 1
        token = f"{PING_TOKEN}{self.ping_seq}"
        self.emit(SendFrame(codec.encode_ping(token, self.server_now_ms()), "Ping"))
        if not self.pong_due:
            self.pong_due = True
            self.emit(StartTimer(PONG_TIMER, self.ping_timeout))
        self.emit(StartTimer(PING_TIMER, self.ping_interval))

    def _check_inactivity(self) -> None:
        if self.state != AUTHENTICATED or not self.inactivity_timeout:
            return
        limit = self.inactivity_timeout * 60.0
        idle = self.clock() - self.last_activity
        if idle >= limit:
            self.fire("inactive")
        else:
            self.emit(StartTimer(INACTIVITY_TIMER, limit - idle))

    # -- frames

    def on_frame(self, event: FrameReceived) -> None:
        raw = event.data
        if (self.state == AUTHENTICATED and type(raw) is bytes
                and codec.application_only(raw)):
            # The data path: nothing here for the session layer, so nothing is decoded.
            self.emit(Deliver(None, CqgServerMessage(raw)))
            return
        try:
            msg = codec.decode_server(raw)
        except MalformedFrame as exc:
            self._malformed(str(exc))
            return
        assert isinstance(raw, bytes)  # decode_server refuses text frames
        if msg.HasField("logon_result"):
            self._logon_result(msg.logon_result)
        if msg.HasField("restore_or_join_session_result"):
            self._restore_result(msg.restore_or_join_session_result)
        if self.state in (AUTHENTICATED, LOGGING_OUT) and codec.has_application_part(msg, raw):
            self.emit(Deliver(None, CqgServerMessage(raw, msg)))
        for message in msg.user_messages:
            self._user_message(message)
        for join in msg.concurrent_connection_join_results:
            same = "the same" if join.is_same_app_type else "another"
            self.emit(Notice("concurrent_connection_join",
                             f"a connection of {same} application type joined this session",
                             data={"is_same_app_type": join.is_same_app_type}))
        if msg.HasField("ping"):
            self._answer_ping(msg.ping)
        if msg.HasField("pong"):
            self._pong(msg.pong)
        if msg.HasField("logged_off"):
            self._logged_off(msg.logged_off)

    def _unexpected(self, what: str) -> None:
        self.emit(Notice("unexpected_frame", f"CQG sent {what} while {self.state}; ignored",
                         Fault.BROKER))

    def _logon_result(self, result: pb.LogonResult) -> None:
        if self.state != AWAITING_LOGIN_RESPONSE:
            self._unexpected("a LogonResult")
            return
        code = result.result_code
        detail = _result_detail("LogonResult", code, result)
        redirect_url = result.redirect_url if result.HasField("redirect_url") else None
        self.fire("logon_result", action=policy.logon_action(code), error_code=code,
                  detail=detail, result=result, redirect_url=redirect_url)

    def _restore_result(self, result: pb.RestoreOrJoinSessionResult) -> None:
        if self.state != RESTORING:
            self._unexpected("a RestoreOrJoinSessionResult")
            return
        code = result.result_code
        detail = _result_detail("RestoreOrJoinSessionResult", code, result)
        self.fire("restore_result", action=policy.restore_action(code), error_code=code,
                  detail=detail, result=result)

    def _logged_off(self, logged_off: pb.LoggedOff) -> None:
        reason = logged_off.logoff_reason
        detail = f"CQG LoggedOff reason {reason}"
        if logged_off.HasField("text_message") and logged_off.text_message:
            detail += f": {logged_off.text_message!r}"
        redirect_url = logged_off.redirect_url if logged_off.HasField("redirect_url") else None
        self.fire("logged_off", action=policy.logoff_action(reason), error_code=reason,
                  detail=detail, redirect_url=redirect_url)

    def _user_message(self, message: pb.UserMessage) -> None:
        kind = _USER_MESSAGE_TYPES.get(message.message_type, str(message.message_type))
        subject = f" {message.subject!r}" if message.HasField("subject") else ""
        self.emit(Notice(
            "user_message",
            f"CQG {kind} message from {message.source!r}{subject}: {message.text!r}",
            Fault.BROKER if message.message_type == 1 else None,
            data={"message_type": message.message_type, "source": message.source,
                  "subject": message.subject or None, "text": message.text},
        ))

    def _answer_ping(self, ping: pb.Ping) -> None:
        if self.state not in (AUTHENTICATED, LOGGING_OUT):
            # Nothing but the logon or restore may go out before its result.
            self._unexpected("a Ping")
            return
        token = ping.token if ping.HasField("token") else None
        self.emit(SendFrame(codec.encode_pong(token, ping.ping_utc_time, self.server_now_ms()),
                            "Pong"))

    def _pong(self, pong: pb.Pong) -> None:
        if not pong.token.startswith(PING_TOKEN):
            return  # an answer to someone else's ping: nothing to us
        if self.pong_due:
            self.pong_due = False
            self.emit(CancelTimer(PONG_TIMER))
        self.rtt = max(0.0, (self.server_now_ms() - pong.ping_utc_time) / 1000.0)

    def _malformed_action(self) -> Action:
        if self.state == AWAITING_LOGIN_RESPONSE:
            return policy.MALFORMED_DURING_LOGON
        if self.state == RESTORING:
            return policy.MALFORMED_DURING_RESTORE
        return policy.MALFORMED_AFTER_LOGON

    def _malformed(self, what: str) -> None:
        self.fire("malformed_frame", action=self._malformed_action(),
                  detail=f"CQG sent an invalid frame: {what}")


def _result_detail(name: str, code: int,
                   result: pb.LogonResult | pb.RestoreOrJoinSessionResult) -> str:
    """A result's code and CQG's own text, for the audit trail."""
    detail = f"CQG {name} {code}"
    if result.HasField("text_message") and result.text_message:
        detail += f": {result.text_message!r}"
    return detail
