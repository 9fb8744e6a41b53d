"""The fleet: processes on many hosts sharing accounts through Redis (docs/fleet.md).

Needs the ``redis`` extra (``pip install 'brokergate[redis]'``): importing this package without
it says so.
"""

try:
    import coredis  # noqa: F401
    import cryptography  # noqa: F401
except ImportError as missing:  # pragma: no cover - the test environment has the extra
    raise ImportError(f"brokergate's fleet coordinator needs the redis extra ({missing.name} is "
                      "missing): pip install 'brokergate[redis]'") from None

from brokergate.engine.fleet._claims import ClaimTiming, RedisClaim
from brokergate.engine.fleet._client import CoordinatorUnavailable, RedisTarget, redis_target

__all__ = [
    "ClaimTiming",
    "CoordinatorUnavailable",
    "RedisClaim",
    "RedisTarget",
    "redis_target",
]
