"""A real ``redis-server`` (Debian's package) for the fleet tests, on a loopback port, with its
own directory, started and stopped by the tests. The server itself is ``bench/_redis.py``'s (the
fleet benchmark runs on the same); what is the tests' own is the rule for a missing one.

Without ``redis-server`` on the PATH the fleet tests are skipped with a message that says how to
get it; with ``BROKERGATE_REQUIRE_REDIS=1`` (set by ``.ci/run``) they fail instead, so that CI
cannot pass by skipping them.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from bench import _redis
from bench._redis import TlsFiles, find_redis, free_port

__all__ = ["HOW_TO_GET", "RedisServer", "TlsFiles", "free_port", "redis_binary"]

HOW_TO_GET = ("the fleet tests need Debian's redis-server on the PATH: "
              "`apt-get install redis-server` (.ci/run installs it)")


def redis_binary() -> str:
    """``redis-server``'s path; skips the test without one (fails it under
    ``BROKERGATE_REQUIRE_REDIS=1``)."""
    found = find_redis()
    if found is None:
        if os.environ.get("BROKERGATE_REQUIRE_REDIS") == "1":
            pytest.fail(HOW_TO_GET + "; BROKERGATE_REQUIRE_REDIS=1 forbids skipping them")
        pytest.skip(HOW_TO_GET)
    return found


class RedisServer(_redis.RedisServer):
    """``bench._redis.RedisServer``, skipping (or failing) the test where there is none."""

    def __init__(self, directory: Path, *, extra: tuple[str, ...] = (),
                 tls: TlsFiles | None = None) -> None:
        super().__init__(directory, extra=extra, tls=tls, binary=redis_binary())
