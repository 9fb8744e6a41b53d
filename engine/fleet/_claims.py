"""Account claims kept in Redis: leases (one holder at a time) and login flights (one login,
shared), each with a fencing token.

Every claim is one Redis hash, ``{prefix}:claim:{kind}:{broker}:{account}``, holding who has it
(``holder``: host, process and session), its fencing token (``fence``) and since when, with a
time to live: the holder renews it every third of the TTL, and a holder that dies (kill -9)
loses it when the TTL runs out, on Redis's clock. All changes are Lua scripts, so taking,
renewing, publishing and releasing are each one atomic step, and each is refused to anyone but
the grant it names (holder and fence): a holder that lost its claim can no longer touch it.

Fencing tokens grow with every grant of an account: ``max(last + 1, Redis time in µs)``, so they
keep growing even after Redis restarted empty (as long as its clock does).

The holder's own side of fencing is ``valid()``: the claim counts as held only until
``renewed_at + ttl * (1 - DRIFT) - SAFETY`` on this process's clock, where ``renewed_at`` is when
the last successful renewal was *sent* (Redis set the expiry later than that). Past that moment
the session stops writing (the engine checks before every write) even if no renewal has failed
yet, a process paused for longer than the TTL included: so a holder that lost its lease stops
before Redis could have granted it to another.

Redis restarted empty loses every claim while their holders are still up. A boot marker
(``{prefix}:boot``) tells: when a script finds it missing, it sets it, and for ``grace`` seconds
after it no claim that does not exist is granted. Holders re-establish theirs at their next
renewal (within a third of the TTL), with the fence they had, so no standby logs in beside them.
The same wait applies once to a brand-new Redis.
"""

from __future__ import annotations

import json
import os
import random
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import trio

from brokergate.engine._coordinator import ClaimKind, Granted, Held
from brokergate.engine.fleet._client import CoordinatorUnavailable, RedisLink
from brokergate.engine.fleet._sealed import Sealer
from brokergate.engine.fleet._tokens import seal_mapping, unseal_mapping

#: The share of the TTL a holder's clock may run slow against Redis's, and a fixed margin on
#: top (seconds): a holder stops writing that much before Redis could let its claim go.
DRIFT = 0.02
SAFETY = 0.25

_TIME = """
local t = redis.call('TIME')
local now_ms = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local now_us = tonumber(t[1]) * 1000000 + tonumber(t[2])
"""

#: The fleet's boot marker holds Redis's time in microseconds when it was set (the rate
#: limiter reads and sets the same key: ``brokergate.engine.fleet._limiter.BOOT_KEY``).
_BOOT = """
local boot = redis.call('GET', KEYS[5])
if not boot then
  redis.call('SET', KEYS[5], string.format('%.0f', now_us))
  boot = now_us
end
boot = tonumber(boot)
"""

#: KEYS: claim, fence counter, handover, outcome, boot marker.
#: ARGV: holder, ttl ms, grace ms.
#: Returns {1, fence, handover or false, outcome or false} or {0, holder, fence, wait ms}.
TAKE = _TIME + _BOOT + """
local holder = redis.call('HGET', KEYS[1], 'holder')
if holder and holder ~= ARGV[1] then
  local left = redis.call('PTTL', KEYS[1])
  return {0, holder, redis.call('HGET', KEYS[1], 'fence'), left}
end
local fence
if holder then
  fence = redis.call('HGET', KEYS[1], 'fence')
else
  local grace_until = boot + tonumber(ARGV[3]) * 1000
  if now_us < grace_until then
    return {0, '', '0', math.ceil((grace_until - now_us) / 1000)}
  end
  local last = tonumber(redis.call('GET', KEYS[2]) or '0')
  fence = string.format('%.0f', math.max(last + 1, now_us))
  redis.call('SET', KEYS[2], fence)
  redis.call('HSET', KEYS[1], 'holder', ARGV[1], 'fence', fence,
             'since', string.format('%.0f', now_ms))
end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return {1, fence, redis.call('GET', KEYS[3]) or false, redis.call('GET', KEYS[4]) or false}
"""

#: KEYS: claim, fence counter, (unused), (unused), boot marker. ARGV: holder, fence, ttl ms.
#: Returns 1 (renewed), 2 (re-established: Redis had lost it) or 0 (lost).
RENEW = _TIME + _BOOT + """
local holder = redis.call('HGET', KEYS[1], 'holder')
if holder == ARGV[1] and redis.call('HGET', KEYS[1], 'fence') == ARGV[2] then
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
  return 1
end
if holder then
  return 0
end
local last = redis.call('GET', KEYS[2])
if last and tonumber(last) > tonumber(ARGV[2]) then
  return 0
end
redis.call('SET', KEYS[2], ARGV[2])
redis.call('HSET', KEYS[1], 'holder', ARGV[1], 'fence', ARGV[2],
           'since', string.format('%.0f', now_ms))
redis.call('PEXPIRE', KEYS[1], ARGV[3])
return 2
"""

#: KEYS: claim, target. ARGV: holder, fence, value, ttl ms. Sets target if the grant is current.
PUBLISH = """
if redis.call('HGET', KEYS[1], 'holder') ~= ARGV[1]
    or redis.call('HGET', KEYS[1], 'fence') ~= ARGV[2] then
  return 0
end
redis.call('SET', KEYS[2], ARGV[3], 'PX', ARGV[4])
return 1
"""

#: KEYS: claim, outcome. ARGV: holder, fence, outcome ('' for none), ttl ms.
RELEASE = """
if redis.call('HGET', KEYS[1], 'holder') ~= ARGV[1]
    or redis.call('HGET', KEYS[1], 'fence') ~= ARGV[2] then
  return 0
end
redis.call('DEL', KEYS[1])
if ARGV[3] ~= '' then
  redis.call('SET', KEYS[2], ARGV[3], 'PX', ARGV[4])
end
return 1
"""


@dataclass(frozen=True, slots=True)
class ClaimTiming:
    """How long a claim lives without renewal (``ttl``), how long after Redis lost its data no
    new claim is granted (``grace``: the TTL by default), how long a flight's outcome is kept
    for those who waited (``outcome_ttl``), and how long a handover lives (``handover_ttl``:
    two days, since it carries a day's logon count)."""

    ttl: float = 10.0
    grace: float | None = None
    outcome_ttl: float = 60.0
    handover_ttl: float = 2 * 86_400.0

    @property
    def grace_seconds(self) -> float:
        return self.ttl if self.grace is None else self.grace


def process_name() -> str:
    """This process as a claim's holder names it: host and pid."""
    return f"{socket.gethostname()}:{os.getpid()}"


def _ms(seconds: float) -> int:
    return max(1, round(seconds * 1000))


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class RedisClaim:
    """One session's claim on one account (see the module's docstring)."""

    __slots__ = ("_holder", "_keys", "_last_handover", "_link", "_publishing", "_renewed_at",
                 "_rng",
                 "_sealer", "_valid_until", "account", "broker", "fence", "kind", "timing")

    def __init__(self, link: RedisLink, sealer: Sealer, *, prefix: str, kind: ClaimKind,
                 broker: str, account: str, session_id: str, timing: ClaimTiming,
                 rng: random.Random | None = None) -> None:
        self._link = link
        self._sealer = sealer
        self.kind: ClaimKind = kind
        self.broker = broker
        self.account = account
        self.timing = timing
        # Unique even when two processes give their sessions the same id.
        self._holder = f"{process_name()}/{session_id}/{os.urandom(4).hex()}"
        base = f"{prefix}:{broker}:{account}"
        self._keys = [f"{base}:claim:{kind}", f"{base}:fence:{kind}", f"{base}:handover",
                      f"{base}:outcome", f"{prefix}:boot"]
        self.fence: int | None = None
        self._valid_until = -1.0
        self._renewed_at = -1.0
        self._last_handover: Mapping[str, Any] | None = None
        self._publishing = trio.Lock()
        self._rng = rng or random.Random()

    def __repr__(self) -> str:
        held = f"fence {self.fence}" if self.fence is not None else "not held"
        return f"<RedisClaim {self.kind} {self.broker}:{self.account} {held}>"

    @property
    def holder(self) -> str:
        return self._holder

    def valid(self) -> bool:
        return trio.current_time() < self._valid_until

    def _held_from(self, sent_at: float) -> None:
        ttl = self.timing.ttl
        self._renewed_at = sent_at
        self._valid_until = sent_at + ttl * (1 - DRIFT) - SAFETY

    async def take(self) -> Granted | Held:
        sent_at = trio.current_time()
        reply = await self._link.run(
            TAKE, self._keys,
            [self._holder, _ms(self.timing.ttl), round(self.timing.grace_seconds * 1000)])
        if int(reply[0]) != 1:
            holder = _text(reply[1]) or (
                "nobody yet: the fleet's Redis is new or was emptied, and holders have "
                f"{self.timing.grace_seconds:g} s to re-establish their claims")
            return Held(holder=holder, fence=int(_text(reply[2]) or 0))
        self.fence = int(_text(reply[1]))
        self._held_from(sent_at)
        handover = None
        if reply[2]:
            handover, _ = unseal_mapping(self._sealer, self._keys[2], bytes(reply[2]))
        outcome = json.loads(_text(reply[3])) if reply[3] else None
        return Granted(fence=self.fence, handover=handover, outcome=outcome)

    def _poll_interval(self) -> float:
        """How often a standby asks again: a fifth of the TTL, jittered so that standbys do not
        ask in step."""
        return self.timing.ttl / 5 * (0.8 + 0.4 * self._rng.random())

    async def wait(self) -> Granted:
        failures = 0
        while True:
            try:
                got = await self.take()
            except CoordinatorUnavailable:
                failures += 1
                await trio.sleep(min(self.timing.ttl, 0.1 * 2 ** min(failures, 6)))
                continue
            failures = 0
            if isinstance(got, Granted):
                return got
            await trio.sleep(self._poll_interval())

    async def keep(self) -> str:
        """Renew every third of the TTL; return why the claim was lost, which is only ever
        because Redis says another session holds it now.

        A renewal that fails (Redis out of reach) is retried with backoff, without end: while
        the claim is not valid here the engine writes nothing (``valid``), but the session keeps
        its connection and what it reads, and writes again once a renewal gets through (Redis
        back, the claim still ours, or re-established after Redis lost it).
        """
        failures = 0
        while True:
            if failures:
                await trio.sleep(min(self.timing.ttl / 10 * 2 ** min(failures - 1, 4),
                                     self.timing.ttl))
            else:
                await trio.sleep_until(self._renewed_at + self.timing.ttl / 3)
            sent_at = trio.current_time()
            try:
                reply = await self._renew()
            except CoordinatorUnavailable:
                failures += 1
                continue
            failures = 0
            if reply == 0:
                return "another session holds the account's lease now"
            self._held_from(sent_at)
            if reply == 2 and self._last_handover is not None:
                # Redis had lost it (restarted empty): what the successor needs, again.
                await self.publish(self._last_handover)

    async def _renew(self) -> int:
        assert self.fence is not None
        reply = await self._link.run(RENEW, self._keys,
                                     [self._holder, str(self.fence), _ms(self.timing.ttl)])
        return int(reply)

    async def publish(self, handover: Mapping[str, Any]) -> None:
        """Leave ``handover`` for the next holder. Publishes run one at a time, and each writes
        the latest handover given: two in flight can never leave an older one last."""
        if self.fence is None:
            return
        self._last_handover = handover
        async with self._publishing:
            latest = self._last_handover
            if self.fence is None or latest is None:
                return
            blob = seal_mapping(self._sealer, self._keys[2], latest)
            await self._link.run(PUBLISH, [self._keys[0], self._keys[2]],
                                 [self._holder, str(self.fence), blob,
                                  _ms(self.timing.handover_ttl)])

    async def release(self, outcome: Mapping[str, Any] | None = None) -> None:
        if self.fence is None:
            return
        fence, self.fence = self.fence, None
        self._valid_until = -1.0
        shown = json.dumps(dict(outcome), sort_keys=True) if outcome else ""
        await self._link.run(RELEASE, [self._keys[0], self._keys[3]],
                             [self._holder, str(fence), shown, _ms(self.timing.outcome_ttl)])
