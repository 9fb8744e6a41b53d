"""The vocabulary of policy tables: what a broker's answer makes a session do.

Each broker module holds one table from its codes (error codes, close codes, texts) to one of these
actions. A reviewer reads the table, not code paths, to learn what happens on every code.
"""

from __future__ import annotations

from dataclasses import dataclass

from brokergate.machines._sansio import Fault


@dataclass(frozen=True, slots=True)
class Fail:
    """Stop for good: retrying cannot help, or would hurt (a wrong password counts to a lock)."""

    reason: str
    fault: Fault = Fault.BROKER

    @property
    def kind(self) -> str:
        return "fail"

    def describe(self) -> str:
        return "failed, never retried"


@dataclass(frozen=True, slots=True)
class LockOut:
    """The broker locked the account: stop, and never try again on our own."""

    reason: str = "locked_out"
    fault: Fault = Fault.ACCOUNT

    @property
    def kind(self) -> str:
        return "lock_out"

    def describe(self) -> str:
        return "locked_out, never retried"


@dataclass(frozen=True, slots=True)
class Displace:
    """Another login took this session's place: stop, and do not take it back (two processes
    that each reconnect would displace each other for ever)."""

    reason: str = "displaced"
    fault: Fault = Fault.ACCOUNT

    @property
    def kind(self) -> str:
        return "displace"

    def describe(self) -> str:
        return "displaced, never fought back"


@dataclass(frozen=True, slots=True)
class Retry:
    """Connect and log in again after a backoff delay.

    ``max_attempts`` bounds how many times in a row this same reason may be retried (on top of the
    session's overall attempt bound); when it runs out the session fails with ``exhausted``.
    ``immediate`` makes the first retry of an established session immediate.
    """

    reason: str
    fault: Fault = Fault.NETWORK
    max_attempts: int | None = None
    exhausted: str = "gave_up"
    immediate: bool = False
    min_delay: float = 0.0

    @property
    def kind(self) -> str:
        return "retry"

    def describe(self) -> str:
        text = "retry with backoff"
        if self.immediate:
            text = "reconnect (first retry immediate), then backoff"
        if self.max_attempts is not None:
            text += f", at most {self.max_attempts} attempts, then failed `{self.exhausted}`"
        return text


@dataclass(frozen=True, slots=True)
class Succeed:
    """The broker accepted: the session is authenticated."""

    reason: str = "authenticated"
    fault: Fault | None = None
    note: str = "authenticated"

    @property
    def kind(self) -> str:
        return "succeed"

    def describe(self) -> str:
        return self.note


@dataclass(frozen=True, slots=True)
class Restore:
    """The connection was lost but the broker keeps the session: restore it on a new connection
    (first attempt at once, then backoff) instead of logging on again."""

    reason: str
    fault: Fault = Fault.NETWORK

    @property
    def kind(self) -> str:
        return "restore"

    def describe(self) -> str:
        return ("restore the session on a new connection (first attempt immediate once the "
                "session had settled, then backoff); full logon when restore is off or its "
                "window has passed")


@dataclass(frozen=True, slots=True)
class FullLogon:
    """The broker will not restore the session: log on afresh (subject to the logon throttle)."""

    reason: str
    fault: Fault = Fault.BROKER

    @property
    def kind(self) -> str:
        return "full_logon"

    def describe(self) -> str:
        return "full logon on a new connection (throttled)"


@dataclass(frozen=True, slots=True)
class Redirect:
    """The broker names another server: reconnect there at once and log on, if its host is
    allowed and fewer than ``max_in_a_row`` redirects happened in a row; otherwise fail with
    ``reason``."""

    reason: str = "redirect_refused"
    fault: Fault = Fault.BROKER
    max_in_a_row: int = 3

    @property
    def kind(self) -> str:
        return "redirect"

    def describe(self) -> str:
        return (f"reconnect to the redirect URL at once and log on there (allowed hosts only, "
                f"at most {self.max_in_a_row} in a row), else failed")


@dataclass(frozen=True, slots=True)
class Relogon:
    """Log on again once with a fresh ``credential`` from a configured provider; without a
    provider (or if the fresh one is refused too) fail with ``reason``."""

    credential: str
    reason: str
    fault: Fault = Fault.CONFIGURATION
    #: How a broker whose "fresh one" comes another way says it (None: the provider wording).
    note: str | None = None

    @property
    def kind(self) -> str:
        return "relogon"

    def describe(self) -> str:
        if self.note is not None:
            return self.note
        what = self.credential.replace("one_time", "one-time").replace("_", " ")
        article = "an" if what[0] in "aeiou" else "a"
        return f"with {article} {what} provider: log on again once with a fresh one; else failed"


@dataclass(frozen=True, slots=True)
class Disconnect:
    """The session ended in an orderly way; stay disconnected."""

    reason: str
    fault: Fault | None = None

    @property
    def kind(self) -> str:
        return "disconnect"

    def describe(self) -> str:
        return "disconnected, not retried"


Action = (Fail | LockOut | Displace | Retry | Succeed | Restore | FullLogon | Redirect | Relogon
          | Disconnect)


@dataclass(frozen=True, slots=True)
class PolicyRow:
    """One line of a broker's policy table, as shown to reviewers (docs/brokers/, diagrams/)."""

    signal: str
    action: Action
    note: str = ""
    #: The machine triggers that carry this signal (the diagrams label those edges with it)...
    triggers: tuple[str, ...] = ()
    #: ...from these states only (empty: from any state).
    states: tuple[str, ...] = ()


def policy_markdown(rows: list[PolicyRow]) -> str:
    """A policy table as Markdown: what the broker says, what the session does, whose move."""
    lines = [
        "| broker signal | action | reason | fault |",
        "|---|---|---|---|",
    ]
    for row in rows:
        a = row.action
        fault = a.fault.value if a.fault else "—"
        lines.append(f"| {row.signal} | {a.describe()} | `{a.reason}` | {fault} |")
    return "\n".join(lines) + "\n"
