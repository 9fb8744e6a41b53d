"""What the machine was doing while a benchmark ran, so that a slow figure can be told apart
from a slow machine.

On a virtual machine the hypervisor may run other guests on this one's processors. The time
it takes away is "steal" in ``/proc/stat``: while it lasts, every process of this machine
stands still, and its figures stretch with no fault of its own. A benchmark takes a
``snapshot`` before and ``Load.since`` after, and prints ``describe`` next to its figures:
how busy the machine's processors were, how much of their time was stolen, and what this
process met in the meantime (page faults that had to wait for the disk, being taken off the
processor by the scheduler).

Where ``/proc/stat`` cannot be read (not Linux), the machine's part is left out.
"""

from __future__ import annotations

import os
import resource
import time
from dataclasses import dataclass

#: The columns of the ``cpu`` line of /proc/stat, in order (Linux 2.6.33 and later).
_COLUMNS = ("user", "nice", "system", "idle", "iowait", "irq", "softirq", "steal")


def parse_cpu_line(line: str) -> dict[str, int] | None:
    """The machine-wide ``cpu`` line of /proc/stat as ticks per column; None for another
    line or one too short to hold the steal column."""
    parts = line.split()
    if not parts or parts[0] != "cpu" or len(parts) < 1 + len(_COLUMNS):
        return None
    try:
        return {name: int(value) for name, value in zip(_COLUMNS, parts[1:], strict=False)}
    except ValueError:
        return None


def _machine_ticks() -> dict[str, int] | None:
    try:
        with open("/proc/stat", encoding="ascii") as stat:
            return parse_cpu_line(stat.readline())
    except OSError:
        return None


@dataclass(frozen=True)
class Snapshot:
    """The machine's tick counters and this process's counters at one moment."""

    at: float
    ticks: dict[str, int] | None
    major_faults: int
    involuntary_switches: int


def snapshot() -> Snapshot:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return Snapshot(time.perf_counter(), _machine_ticks(), usage.ru_majflt, usage.ru_nivcsw)


@dataclass(frozen=True)
class Load:
    """Between two snapshots: shares of the machine's processor time, and this process's
    counts."""

    seconds: float
    #: Of all processor time meanwhile: spent running anything (this process, the simulator,
    #: anyone else), and taken by the hypervisor. None where /proc/stat is not available.
    busy: float | None
    stolen: float | None
    major_faults: int
    involuntary_switches: int

    @classmethod
    def since(cls, before: Snapshot, after: Snapshot | None = None) -> Load:
        after = after or snapshot()
        busy = stolen = None
        if before.ticks is not None and after.ticks is not None:
            delta = {k: after.ticks[k] - before.ticks[k] for k in _COLUMNS}
            total = sum(delta.values())
            if total > 0:
                stolen = delta["steal"] / total
                busy = (total - delta["idle"] - delta["iowait"] - delta["steal"]) / total
        return cls(after.at - before.at, busy, stolen,
                   after.major_faults - before.major_faults,
                   after.involuntary_switches - before.involuntary_switches)

    def describe(self, *, process: bool = True) -> str:
        """One sentence for a report's notes; ``process`` adds this process's counts (leave
        them out where the work was done by child processes)."""
        parts = []
        if self.busy is not None and self.stolen is not None:
            cores = os.cpu_count() or 1
            parts.append(f"the machine's {cores} logical cores were {self.busy:.0%} busy and "
                         f"{self.stolen:.1%} of their time was taken by the hypervisor (steal)")
        if process:
            parts.append(f"this process had {self.major_faults} page faults that read the disk "
                         f"and was taken off a core {self.involuntary_switches} times by the "
                         "scheduler")
        if not parts:
            return f"Over {self.seconds:.1f} s: no machine figures here (no /proc/stat)."
        return f"Over {self.seconds:.1f} s, " + "; ".join(parts) + "."
