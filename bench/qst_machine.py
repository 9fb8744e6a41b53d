"""Cost of the pure QST machine per session: no sockets, no driver, no audit.

    .venv/bin/python bench/qst_machine.py [N]

Builds N QstSession models on the one shared QST machine and drives each through
Start -> Connected -> LoginResponse; prints microseconds per session and the bytes each model
keeps alive. A first figure for the performance budget; the full benchmarks (engine overhead,
scale with sockets, restore latency) come with the benchmarks issue.
"""

from __future__ import annotations

import sys
import time
import tracemalloc

from machines import Connected, FrameReceived, Secret, Start
from machines.qst import QstConfig, QstSession
from machines.qst import qst_pb2 as pb


def login_ok() -> bytes:
    resp = pb.Response(request_id=1)
    resp.login.coalescing_interval = pb._250_MS
    return resp.SerializeToString()


def drive(config: QstConfig, frame: bytes, n: int) -> list[QstSession]:
    sessions = [QstSession(config) for _ in range(n)]
    for s in sessions:
        s.handle(Start())
        s.handle(Connected(1))
        s.handle(FrameReceived(1, frame))
        assert s.state == "authenticated"
    return sessions


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 10_000
    config = QstConfig(url="ws://127.0.0.1:1/", user_name="u", password=Secret("p"),
                       client_id="c")
    frame = login_ok()
    drive(config, frame, 100)  # warm up
    start = time.perf_counter()
    kept = drive(config, frame, n)
    elapsed = time.perf_counter() - start
    del kept
    tracemalloc.start()
    kept = drive(config, frame, n)
    retained, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert len(kept) == n  # the models must still be alive when memory is read
    print("| sessions | us per login (3 transitions) | bytes retained per model |")
    print("|---|---|---|")
    print(f"| {n} | {elapsed / n * 1e6:.0f} | {retained / n:.0f} |")


if __name__ == "__main__":
    main()
