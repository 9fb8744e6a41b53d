"""Shared fixtures. Helpers that tests import live in helpers.py."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import trio.testing

sys.path.insert(0, str(Path(__file__).parent))

from browser import require_chromium
from redis_server import RedisServer


@pytest.fixture
def clock() -> trio.testing.MockClock:
    """Virtual time for tests that wait (timeouts, backoff): it jumps ahead whenever every task
    is blocked, so a 30-second backoff costs nothing. The small real-time threshold lets loopback
    socket I/O land before the clock jumps."""
    return trio.testing.MockClock(autojump_threshold=0.005)


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A real redis-server of the test's own, on a free loopback port (skipped, with how to get
    it, where Debian's redis-server is not installed)."""
    server = RedisServer(tmp_path / "redis")
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def chromium() -> str:
    """Chromium's path, for ``browser.open_browser`` (skipped, with how to get it, where
    Debian's chromium is not installed)."""
    return require_chromium()
