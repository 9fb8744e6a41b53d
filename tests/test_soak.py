"""The short soak: many sessions through hours of virtual time with a drop every few minutes, each
restored (CQG) or reconnected (QST). Nothing may grow with time: memory, tasks, sockets, the
alarm clock's heap; and the teardown at the end, the host cancelling every session at once, must
finish (it once spun: a worker cancelled with the stop still queued asked the alarm clock for a
due timer, whose new worker was cancelled at once, over and over).

The machinery is reliability/soak.py's; ``python3 tasks.py reliability`` runs the long version
with it, 10,000 sessions over a virtual day (docs/reliability.md#the-soak). Here: 20 sessions,
every one of them dropped every 4 minutes for 2 hours, pinged every 20 seconds."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from reliability import soak
from reliability.__main__ import main as reliability_main

SESSIONS = 10  # per broker
SCHEDULE = soak.Schedule(cqg=SESSIONS, qst=SESSIONS, hours=2, drop_every=240.0, slices=1,
                         ping_interval=20.0)


@pytest.fixture
def soak_clock() -> trio.testing.MockClock:
    """Virtual time that jumps as soon as every task waits: the I/O is loopback inside this
    process, so whatever was written is readable at once, and hours of pings cost seconds."""
    return trio.testing.MockClock(autojump_threshold=0.001)


async def test_hours_of_drops_and_restores_leave_nothing_behind(
    soak_clock: trio.testing.MockClock,
) -> None:
    result = await soak.soak(SCHEDULE)
    first, last = result.samples[0], result.samples[-1]
    assert len(result.samples) == SCHEDULE.hours
    assert last.objects <= first.objects * 1.05, result  # objects the collector tracks: flat
    assert first.tasks == last.tasks == {"_connection_task": 2 * SESSIONS}
    assert first.files == last.files, result
    assert last.heap <= max(first.heap, 4 * 2 * SESSIONS), result
    assert [first.authenticated, last.authenticated] == [2 * SESSIONS, 2 * SESSIONS], result
    assert last.cqg_logons == SESSIONS  # every drop restored, never a new logon
    # Every session was dropped every 4 minutes, and each drop was restored or logged in again.
    assert last.dropped == {"cqg": 30 * SESSIONS, "qst": 30 * SESSIONS}
    assert last.cqg_restores == 30 * SESSIONS
    assert last.qst_logins == 31 * SESSIONS
    # The long soak's own verdict on the same run: memory per session, the lot.
    assert result.problems() == [], result
    assert result.teardown is not None


def test_the_long_soak_runs_from_python_m_reliability(capsys: pytest.CaptureFixture[str]
                                                      ) -> None:
    """The soak part of ``python -m reliability``, small: one process per broker, the hourly
    table and the verdict in the report, and the exit status."""
    status = reliability_main(["--seeds", "0", "--fuzz", "0", "--hostile", "0",
                               "--soak-sessions", "4", "--soak-hours", "1"])
    out = capsys.readouterr().out
    assert status == 0, out
    assert "--soak-sessions 4 --soak-hours 1" in out
    assert "Soak: 2 CQG + 2 QST sessions, 1 virtual hour," in out
    assert "CQG, 2 sessions in one process" in out and "QST, 2 sessions in one process" in out
    assert "Soak verdict: passed." in out and "Problems: 0." in out


def test_a_soak_too_big_for_the_open_file_limit_is_refused_not_shrunk() -> None:
    too_many = 2 * (soak.largest_fitting() + 1)
    with pytest.raises(SystemExit, match="the hard limit allows"):
        reliability_main(["--soak-sessions", str(too_many)])


def test_the_verdict_names_what_grew() -> None:
    sample = soak.Sample(hour=1, blocks=1000, rss=10_000, objects=5, heap=2, tasks={
        "_connection_task": 2}, files=10, authenticated=2, cqg_logons=1, cqg_restores=0,
        qst_logins=1, dropped={})
    grown = soak.Sample(hour=2, blocks=1100, rss=10_000, objects=5, heap=50, tasks={
        "_connection_task": 2, "_reader": 1}, files=12, authenticated=1, cqg_logons=2,
        cqg_restores=0, qst_logins=1, dropped={})
    result = soak.SoakResult(soak.Schedule(cqg=1, qst=1), [sample, grown], teardown=0.1)
    found = "\n".join(result.problems())
    for words in ("allocated blocks per session grew", "alarm heap holds 50",
                  "session-layer tasks", "12 open files", "1 of 2 authenticated",
                  "CQG saw 2 logons"):
        assert words in found, found
    assert soak.SoakResult(soak.Schedule(cqg=1, qst=1), [sample], teardown=0.1).problems() == []
