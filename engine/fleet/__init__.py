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
from brokergate.engine.fleet._coordinator import RedisCoordinator, open_redis_coordinator
from brokergate.engine.fleet._limiter import FleetRateLimiter, FleetRateLimiters
from brokergate.engine.fleet._sealed import Sealer, load_sealer, new_fleet_key
from brokergate.engine.fleet._tokens import RedisTokenStore

__all__ = [
    "ClaimTiming",
    "CoordinatorUnavailable",
    "FleetRateLimiter",
    "FleetRateLimiters",
    "RedisClaim",
    "RedisCoordinator",
    "RedisTarget",
    "RedisTokenStore",
    "Sealer",
    "load_sealer",
    "new_fleet_key",
    "open_redis_coordinator",
    "redis_target",
]
