"""The figures a reliability run adds up: what was injected, what was run, what went wrong.

Every property run and every fuzzing loop records into one ``Tally``; the report prints it, and
the tests assert that the "went wrong" columns (violations, leaks, secret hits, unexpected ends,
escaped exceptions) stay at zero.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field


@dataclass
class Tally:
    #: Faults the proxy injected, by kind (latency, throttle, drop, reset, truncate, stall, split).
    faults: Counter[str] = field(default_factory=Counter)
    #: Sessions run, by broker: fault runs and hostile-server sessions alike.
    sessions: Counter[str] = field(default_factory=Counter)
    #: Of those, the sessions run against a hostile server, by broker.
    hostile: Counter[str] = field(default_factory=Counter)
    #: Of those, the sessions that ended in the state their scenario expects, by broker.
    expected: Counter[str] = field(default_factory=Counter)
    #: Inputs fed to each decoder ("qst frames", "cqg frames", "firstock REST bodies", ...).
    fuzzed: Counter[str] = field(default_factory=Counter)
    #: Requests a simulator saw before their session's login result, by broker.
    violations: Counter[str] = field(default_factory=Counter)
    #: Tasks or connections still open after a session closed, by broker.
    leaks: Counter[str] = field(default_factory=Counter)
    #: A credential found in any output (audit, notices, errors, reprs), by broker.
    secret_hits: Counter[str] = field(default_factory=Counter)
    #: Logins with credentials the broker had already called invalid, by broker.
    credential_retries: Counter[str] = field(default_factory=Counter)
    #: CQG: full logons beyond the fewest the faults made necessary.
    extra_logons: Counter[str] = field(default_factory=Counter)
    #: The data path, by broker: numbered streams the simulator queued after a login, their
    #: frames, and the frames a lossless subscriber received.
    streams: Counter[str] = field(default_factory=Counter)
    frames_sent: Counter[str] = field(default_factory=Counter)
    frames_received: Counter[str] = field(default_factory=Counter)
    #: Streams whose connection ended before all their frames were read (a proxy fault, or the
    #: session giving up on a silent connection): only their missing tail is excused.
    streams_cut: Counter[str] = field(default_factory=Counter)
    #: Runs whose subscriber was slow, and those of them whose buffer filled (the reading paused).
    slow_consumers: Counter[str] = field(default_factory=Counter)
    reading_paused: Counter[str] = field(default_factory=Counter)
    #: Frames a lossless subscriber missed, received twice, or received out of order.
    frames_lost: Counter[str] = field(default_factory=Counter)
    frames_duplicated: Counter[str] = field(default_factory=Counter)
    frames_out_of_order: Counter[str] = field(default_factory=Counter)
    #: One line per failure of any kind, for the report and for a failing test's message.
    problems: list[str] = field(default_factory=list)

    def problem(self, broker: str, what: str) -> None:
        self.problems.append(f"{broker}: {what}")

    @property
    def clean(self) -> bool:
        """Nothing went wrong: every session as expected and every bad-news count zero."""
        return not self.problems and self.sessions == self.expected and not any(
            (+self.violations, +self.leaks, +self.secret_hits, +self.credential_retries,
             +self.extra_logons, +self.frames_lost, +self.frames_duplicated,
             +self.frames_out_of_order))
