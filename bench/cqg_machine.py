"""Cost of the pure CQG machine per session: no sockets, no driver, no audit.

    .venv/bin/python bench/cqg_machine.py [N]

Builds N CqgSession models on the one shared CQG machine and drives each through a logon
(Start -> Connected -> LogonResult) and then a restore (a settled session's drop -> Connected ->
RestoreOrJoinSessionResult); prints microseconds per logon and per restore and the bytes each
model keeps alive.
"""

from __future__ import annotations

import sys
import time
import tracemalloc

from machines import Closed, Connected, FrameReceived, Secret, Start, TimerFired
from machines.cqg import CqgConfig, CqgSession, LogonHistory
from machines.cqg import cqg_session_pb2 as pb


def frames() -> tuple[bytes, bytes]:
    logon = pb.ServerMsg(logon_result=pb.LogonResult(
        result_code=0, base_time="2026-11-21T00:00:00", session_token="t" * 32,
        protocol_version_major=2, protocol_version_minor=230, server_time=0))
    restore = pb.ServerMsg(restore_or_join_session_result=pb.RestoreOrJoinSessionResult(
        result_code=0, base_time="2026-11-21T00:00:00", server_time=0))
    return logon.SerializeToString(), restore.SerializeToString()


def log_on(config: CqgConfig, logon: bytes, n: int) -> list[CqgSession]:
    sessions = []
    for _ in range(n):
        # One history per session: the benchmark is not about the per-user throttle.
        s = CqgSession(config, clock=time.perf_counter, history=LogonHistory())
        s.handle(Start())
        s.handle(Connected(1))
        s.handle(FrameReceived(1, logon))
        assert s.state == "authenticated"
        sessions.append(s)
    return sessions


def restore(sessions: list[CqgSession], frame: bytes) -> None:
    for s in sessions:
        s.handle(TimerFired("stable"))
        s.handle(Closed(1, 1006))
        s.handle(Connected(2))
        s.handle(FrameReceived(2, frame))
        assert s.state == "authenticated" and s.restores == 1


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000
    config = CqgConfig(url="ws://127.0.0.1:1/", user_name="u", password=Secret("p"),
                       client_app_id="c")
    logon, restored = frames()
    restore(log_on(config, logon, 100), restored)  # warm up
    start = time.perf_counter()
    sessions = log_on(config, logon, n)
    logon_s = time.perf_counter() - start
    start = time.perf_counter()
    restore(sessions, restored)
    restore_s = time.perf_counter() - start
    del sessions
    tracemalloc.start()
    kept = log_on(config, logon, n)
    retained, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert len(kept) == n  # the models must still be alive when memory is read
    print("| sessions | us per logon (3 transitions) | us per restore (4 transitions) "
          "| bytes retained per model |")
    print("|---|---|---|---|")
    print(f"| {n} | {logon_s / n * 1e6:.0f} | {restore_s / n * 1e6:.0f} | {retained / n:.0f} |")


if __name__ == "__main__":
    main()
