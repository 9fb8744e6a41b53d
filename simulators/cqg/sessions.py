"""The server side of a CQG session: what outlives a connection, and the logon countdowns.

A CQG session is not a connection. It begins with a successful Logon, may lose its connection
and be restored on another one (when the Logon allowed it), and ends with a Logoff, a forced
LoggedOff, or when no connection restored it within the simulator's session lifetime.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import trio

from brokergate.simulators.cqg.accounts import CqgAccount

if TYPE_CHECKING:
    from brokergate.simulators.cqg.connection import Connection


@dataclass
class Countdowns:
    """The scripted "first K logons" behaviours still to come for one account."""

    drops: int
    redirects: int
    #: Logons still to get the account's logon_result; None: all of them.
    results: int | None
    #: Established connections still to be dropped ``drop_after`` seconds in.
    late_drops: int = 0

    @classmethod
    def arm(cls, account: CqgAccount) -> Countdowns:
        redirects = account.redirect_times if account.redirect_to is not None else 0
        results = account.logon_result_times if account.logon_result is not None else 0
        late = account.drop_after_times if account.drop_after is not None else 0
        return cls(account.drop_mid_logon, redirects, results, late)

    def take_late_drop(self) -> bool:
        if self.late_drops > 0:
            self.late_drops -= 1
            return True
        return False

    def take_drop(self) -> bool:
        if self.drops > 0:
            self.drops -= 1
            return True
        return False

    def take_redirect(self) -> bool:
        if self.redirects > 0:
            self.redirects -= 1
            return True
        return False

    def take_result(self) -> bool:
        if self.results is None:
            return True
        if self.results > 0:
            self.results -= 1
            return True
        return False


@dataclass(eq=False)
class ServerSession:
    """One logged-on session, as the server keeps it between connections."""

    token: str
    account: CqgAccount
    #: The session's base_time; every *_time sent in it is ms since then.
    base_time: str
    #: trio time of the successful Logon: server_time 0.
    started: float
    #: Logon.session_settings had ALLOW_SESSION_RESTORE: the session survives losing its
    #: last connection, for the simulator's session lifetime.
    restorable: bool
    #: Logon.session_settings had ALLOW_SESSION_JOIN: a restore joins the live connections
    #: instead of pushing them out.
    joinable: bool
    client_app_id: str
    private_label: str
    connections: list[Connection] = field(default_factory=list)
    #: trio time the last connection went away (None while one is attached).
    lost_at: float | None = None
    ended: bool = False

    @property
    def user_name(self) -> str:
        return self.account.user_name

    def server_ms(self) -> int:
        """Now, as CQG's *_time fields count: milliseconds since base_time."""
        return round((trio.current_time() - self.started) * 1000)

    def expired(self, now: float, lifetime: float) -> bool:
        """Detached for longer than the lifetime: nothing can restore it any more."""
        return not self.connections and self.lost_at is not None and now - self.lost_at > lifetime
