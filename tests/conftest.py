"""Shared fixtures. Helpers that tests import live in helpers.py."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import trio.testing

sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture
def clock() -> trio.testing.MockClock:
    """Virtual time for tests that wait (timeouts, backoff): it jumps ahead whenever every task
    is blocked, so a 30-second backoff costs nothing. The small real-time threshold lets loopback
    socket I/O land before the clock jumps."""
    return trio.testing.MockClock(autojump_threshold=0.005)
