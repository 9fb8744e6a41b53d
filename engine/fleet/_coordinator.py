"""The Redis coordinator: what a fleet of processes shares, kept in one Redis.

    async with brokergate.fleet.open_redis_coordinator("rediss://redis.internal:6380/0",
                                                       ca_file="ca.pem") as fleet:
        async with brokergate.open_gateway(coordinator=fleet) as gw:
            ...

It keeps in Redis: the account claims (leases and login flights, ``_claims``), the REST hosts'
rate limits (``_limiter``), and the day tokens and handovers, sealed with the operator's key
(``_sealed``, ``_tokens``). The brokers' shared resources (a user's socket slots, a user's
logon history) stay in the process as with ``LocalCoordinator``: what of them the fleet needs
travels from holder to holder with the lease's handover.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path

from brokergate.engine._coordinator import AccountClaim, ClaimKind, ProcessResources
from brokergate.engine._http import Pacer
from brokergate.engine.fleet._claims import ClaimTiming, RedisClaim
from brokergate.engine.fleet._client import RedisLink, open_link, redis_target
from brokergate.engine.fleet._limiter import FleetRateLimiters
from brokergate.engine.fleet._sealed import Sealer, load_sealer
from brokergate.engine.fleet._tokens import RedisTokenStore

__all__ = ["RedisCoordinator", "open_redis_coordinator"]

#: Every key brokergate keeps in Redis starts with this (and a colon).
DEFAULT_PREFIX = "brokergate"
#: How long an account's lease outlives a holder that died, unless told otherwise.
DEFAULT_LEASE_TTL = 10.0


class RedisCoordinator(ProcessResources):
    """Shared state in Redis, for processes on many hosts (see the module's docstring).

    Obtain one from ``open_redis_coordinator``; it lives as long as that block.
    """

    __slots__ = ("_limiters", "link", "prefix", "sealer", "timing", "token_store")

    def __init__(self, link: RedisLink, sealer: Sealer, *, prefix: str = DEFAULT_PREFIX,
                 timing: ClaimTiming | None = None) -> None:
        super().__init__()
        self.link = link
        self.sealer = sealer
        self.prefix = prefix
        self.timing = timing or ClaimTiming()
        self.token_store = RedisTokenStore(link, sealer, prefix=prefix)
        self._limiters = FleetRateLimiters(link, prefix=prefix)

    def __repr__(self) -> str:
        return f"<RedisCoordinator {self.link.target.where} prefix={self.prefix!r}>"

    def rate_limiter(self, host: str, per_second: float) -> Pacer:
        return self._limiters(host, per_second)

    def claim(self, broker: str, account: str, kind: ClaimKind,
              session_id: str) -> AccountClaim:
        return RedisClaim(self.link, self.sealer, prefix=self.prefix, kind=kind, broker=broker,
                          account=account, session_id=session_id, timing=self.timing)


@asynccontextmanager
async def open_redis_coordinator(
    url: str,
    *,
    username: str | None = None,
    password_file: str | Path | None = None,
    ca_file: str | None = None,
    key_file: str | Path | None = None,
    env: Mapping[str, str] | None = None,
    prefix: str = DEFAULT_PREFIX,
    lease_ttl: float = DEFAULT_LEASE_TTL,
    answer_within: float = 2.0,
) -> AsyncIterator[RedisCoordinator]:
    """Connect to the fleet's Redis at ``url`` and yield its coordinator.

    ``redis://`` to loopback only, ``rediss://`` elsewhere (``ca_file`` to trust a private CA).
    The ACL user comes from the URL, ``username`` or ``BROKERGATE_REDIS_USERNAME``; the password
    from ``password_file``, ``BROKERGATE_REDIS_PASSWORD`` or ``BROKERGATE_REDIS_PASSWORD_FILE``
    (never the URL). The sealing key from ``key_file``, ``BROKERGATE_FLEET_KEY`` or
    ``BROKERGATE_FLEET_KEY_FILE``. ``lease_ttl`` is how long an account's lease outlives its
    holder. Raises ``ConfigurationError`` for a bad URL, key or credentials and
    ``CoordinatorUnavailable`` when Redis cannot be reached; nothing is sent to any broker.
    """
    target = redis_target(url, username=username, password_file=password_file,
                          ca_file=ca_file, env=env)
    sealer = load_sealer(key_file=key_file, env=env)
    async with open_link(target, answer_within=answer_within) as link:
        yield RedisCoordinator(link, sealer, prefix=prefix, timing=ClaimTiming(ttl=lease_ttl))
