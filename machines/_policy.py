"""The vocabulary of policy tables: what a broker's answer makes a session do.

Each broker module holds one table from its codes (error codes, close codes, texts) to one of these
actions. A reviewer reads the table, not code paths, to learn what happens on every code.
"""

from __future__ import annotations

from dataclasses import dataclass

from machines._sansio import Fault


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


Action = Fail | LockOut | Retry


@dataclass(frozen=True, slots=True)
class PolicyRow:
    """One line of a broker's policy table, as shown to reviewers (README, diagrams)."""

    signal: str
    action: Action
    note: str = ""


def policy_markdown(rows: list[PolicyRow]) -> str:
    """A policy table as Markdown: what the broker says, what the session does, whose move."""
    lines = [
        "| broker signal | action | reason | fault |",
        "|---|---|---|---|",
    ]
    for row in rows:
        a = row.action
        lines.append(f"| {row.signal} | {a.describe()} | `{a.reason}` | {a.fault.value} |")
    return "\n".join(lines) + "\n"
