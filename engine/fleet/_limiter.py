"""The per-host REST rate limit, shared by every process of a fleet through Redis.

``FleetRateLimiter`` keeps the promises of the in-process ``RateLimiter`` (read its docstring
first) across processes on many hosts: the same spacing schedule ``interval = (1 + margin) /
per_second`` with half an interval of slack, no burst after a stall, and the window rule (no
``per_second + 1`` requests within ``1 + margin`` seconds). The state lives in Redis and one Lua
script reads and moves it atomically, so two processes can never take the same slot.

How a request gets its slot ("ask when ready"). When its headers are about to be written
(httpx's trace hook, as ``RateLimiter.paced``), the request asks the script. The script reads
Redis's clock (``TIME``), the one clock of the fleet: grant times from different hosts'
clocks are never compared. Either the slot is due, and the script records *now* as the
request's departure and answers "go", or it answers how long to wait; the request sleeps that
long and asks again. So the times the window rule is kept on are the times requests really
left (give or take the trip back from Redis), not the times they were promised a slot, and a
waiter that wakes late is counted late, as in ``RateLimiter``.

Fairness between processes. In a process, waiters for a host queue on a ``trio.Lock`` (fair,
first come first served) and only the first of them asks Redis. Between processes, if every
process's first waiter were told the same slot, the one nearest to Redis would win every race
and a distant process could starve while a near one has a backlog. So the script also keeps a
queue of processes (their tickets): a process that has to wait joins its end, only the process
at its head may take the next slot, and the others are told to come back about one interval
per process ahead of them. The slot then goes round the processes that are waiting, in order.
A process that stops asking (it died, or its waiter was cancelled and nobody took over) keeps
its place only ``GRACE`` seconds past the time it was told to come back: that is the most a
dead process costs the others.

The schedule, per grant (microseconds on Redis's clock): the slot due is the latest of the
schedule's ``next``, the grant ``count`` places back plus the window, and the end of the
silence after a restart; a process that had not been waiting cannot be due before now. A
grant at ``now`` sets ``next = max(slot, now - interval / 2) + interval``: lateness up to half
an interval is forgiven, more moves the schedule, exactly as ``RateLimiter.acquire``.

Keys (``{host}`` is the host in lower case, in braces): ``brokergate:limit:{host}`` (hash: the
schedule, the rate in force, the queue's deadlines), ``...:sent`` (list: the last ``count``
grant times) and ``...:queue`` (sorted set: the waiting processes in order). Each call sets them
to expire a little beyond the window, so a host nobody calls leaves nothing behind.

Processes that disagree on the rate for a host: the strictest wins. A request at a looser rate
is paced at the stricter one as long as some process asked for that one in the last
``RATE_HOLD`` seconds; the broker has one limit, and the fleet must not exceed the lowest any
process was configured with. (The margin should be the same everywhere; each grant keeps the
window of the process that asked for it.)

Redis restarted empty. The history is gone, but the broker still counts the requests of the last
second. ``brokergate:boot`` holds the Redis time at which the fleet first found Redis empty; the
script sets it when it is missing and grants nothing until one window after that. The cost: at
a cold start (the first request ever, or the first after a restart) the first slot comes one
window (1.03 s) late. If Redis's clock steps back by more than a window, the state would look
like it is in the future; the script treats that as a restart too. A clock stepped *forward* on
the Redis host shortens a window: run it with a slewing NTP, as any host that keeps time. Redis
must not evict these keys (``maxmemory-policy noeviction``, which is Redis's default).

Redis unreachable. No slot is ever granted without Redis: the waiter asks again with backoff
(``BACKOFF_FIRST`` doubling to ``BACKOFF_MAX``, jittered). It gives up with
``CoordinatorUnavailable`` once Redis has not answered (refused, or silent: an ask still on its
way counts) for as long as the request's own timeout (httpx's, read from the request;
``PATIENCE`` without one) during its wait, and ``HttpCaller`` answers the call with an
``HttpFailed`` that says the request was not sent. A grant Redis made for an ask given up on
mid-way is a slot left unused: the safe side.
"""

from __future__ import annotations

import math
import random
import secrets
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from typing import Any

import trio

from brokergate.engine._http import MARGIN, TraceHook, admitted_slot
from brokergate.engine.fleet._client import CoordinatorUnavailable, RedisLink

__all__ = [
    "BOOT_KEY",
    "FleetRateLimiter",
    "FleetRateLimiters",
    "LimiterState",
    "limiter_keys",
    "limiter_state",
    "limiter_states",
]

#: Set (to the Redis time in microseconds) when the fleet first finds Redis empty; never expires.
#: What every key of the fleet starts with, unless the coordinator is given another prefix.
PREFIX = "brokergate"
BOOT_KEY = f"{PREFIX}:boot"
#: The first wait after Redis did not answer, doubled after each failure up to the most.
BACKOFF_FIRST = 0.05
BACKOFF_MAX = 1.0
#: Seconds a waiting process keeps its place in the queue past the time it should ask again.
GRACE = 0.25
#: Seconds a stricter rate asked for a host stays in force after the last request that asked it.
RATE_HOLD = 10.0
#: Seconds to wait through a Redis outage for a request that carries no timeout of its own.
PATIENCE = 30.0

# KEYS: the state hash, the grants list, the queue, the boot marker. ARGV: the process's ticket,
# per_second, then in microseconds the window, the grace and the rate hold. Times are Redis's, in
# microseconds (whole numbers: exact in Lua's doubles). Returns {1, grant time} or {0, wait}.
_TAKE = """
local function fmt(x) return string.format('%.0f', x) end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local ticket, rate = ARGV[1], tonumber(ARGV[2])
local window, grace = tonumber(ARGV[3]), tonumber(ARGV[4])
local boot = tonumber(redis.call('GET', KEYS[4]))
local last = tonumber(redis.call('LINDEX', KEYS[2], -1))
if boot == nil or boot > now + window or (last ~= nil and last > now + window) then
  redis.call('DEL', KEYS[1], KEYS[2], KEYS[3])
  boot = now
  redis.call('SET', KEYS[4], fmt(now))
end
local st = redis.call('HMGET', KEYS[1], 'next', 'rate', 'rate_until')
local kept, kept_until = tonumber(st[2]), tonumber(st[3])
if kept ~= nil and kept < rate and kept_until ~= nil and now < kept_until then
  rate = kept
else
  redis.call('HSET', KEYS[1], 'rate', ARGV[2], 'rate_until', fmt(now + tonumber(ARGV[5])))
end
local ahead, waited = 0, false
for _, other in ipairs(redis.call('ZRANGE', KEYS[3], 0, -1)) do
  if other == ticket then waited = true break end
  local due = tonumber(redis.call('HGET', KEYS[1], 'q:' .. other))
  if due ~= nil and due >= now then
    ahead = ahead + 1
  else
    redis.call('ZREM', KEYS[3], other)
    redis.call('HDEL', KEYS[1], 'q:' .. other)
  end
end
local count = math.max(1, math.floor(rate))
local interval = window / rate
local slot = math.max(tonumber(st[1]) or 0, boot + window)
if not waited then slot = math.max(slot, now) end
if redis.call('LLEN', KEYS[2]) >= count then
  slot = math.max(slot, tonumber(redis.call('LINDEX', KEYS[2], -count)) + window)
end
local granted, wait = ahead == 0 and slot <= now, 0
if granted then
  redis.call('RPUSH', KEYS[2], fmt(now))
  redis.call('LTRIM', KEYS[2], -count, -1)
  redis.call('HSET', KEYS[1], 'next', fmt(math.max(slot, now - interval / 2) + interval))
  redis.call('ZREM', KEYS[3], ticket)
  redis.call('HDEL', KEYS[1], 'q:' .. ticket)
else
  wait = math.ceil(math.max(slot, now) + ahead * interval - now)
  if not waited then redis.call('ZADD', KEYS[3], now, ticket) end
  redis.call('HSET', KEYS[1], 'q:' .. ticket, fmt(now + wait + grace))
end
local life = math.ceil((wait + window + interval + grace) / 1000) + 1000
for i = 1, 3 do redis.call('PEXPIRE', KEYS[i], life) end
if granted then return {1, now} end
return {0, wait}
"""

# What an operator sees of one host: KEYS as above, ARGV the window. Returns the rate in force
# ('' when none), the grants in the last window, microseconds until a slot is due, processes
# waiting.
_LOOK = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local window = tonumber(ARGV[1])
local st = redis.call('HMGET', KEYS[1], 'next', 'rate')
local boot = tonumber(redis.call('GET', KEYS[4])) or now
local slot = math.max(tonumber(st[1]) or 0, boot + window, now)
local sent = redis.call('LRANGE', KEYS[2], 0, -1)
local rate = tonumber(st[2])
local recent = 0
for _, s in ipairs(sent) do
  if tonumber(s) > now - window then recent = recent + 1 end
end
if rate ~= nil and #sent >= math.max(1, math.floor(rate)) then
  slot = math.max(slot, tonumber(sent[#sent - math.max(1, math.floor(rate)) + 1]) + window)
end
local waiting = 0
for _, other in ipairs(redis.call('ZRANGE', KEYS[3], 0, -1)) do
  local due = tonumber(redis.call('HGET', KEYS[1], 'q:' .. other))
  if due ~= nil and due >= now then waiting = waiting + 1 end
end
return {st[2] or '', recent, math.ceil(slot - now), waiting}
"""


def limiter_keys(host: str, prefix: str = PREFIX) -> tuple[str, str, str, str]:
    """The Redis keys of ``host``'s limit: state, grants, queue, and the fleet's boot marker
    (``prefix`` is the fleet's, ``brokergate`` by default)."""
    base = f"{prefix}:limit:{{{host.lower()}}}"
    return base, f"{base}:sent", f"{base}:queue", f"{prefix}:boot"


def _us(seconds: float) -> int:
    return round(seconds * 1_000_000)


@dataclass(eq=False, slots=True)
class _Wait:
    """One request waiting for its slot: how long it may wait through an outage, from when."""

    start: float
    patience: float
    scope: trio.CancelScope = field(default_factory=trio.CancelScope)


class FleetRateLimiter:
    """At most ``per_second`` requests per second to ``host`` from every process that uses the
    same Redis, with ``RateLimiter``'s schedule (see the module's docstring).

    ``acquire()`` waits for a slot and takes it; ``paced()`` is the ``Pacer`` side, for
    ``HttpCaller``. Without Redis no slot is granted: the wait goes on with backoff and ends in
    ``CoordinatorUnavailable`` once Redis has not answered for the request's patience.
    """

    __slots__ = ("_admission", "_args", "_down_since", "_failure", "_keys", "_link", "_lock",
                 "_patience", "_waits", "count", "host", "interval", "per_second", "window")

    def __init__(self, link: RedisLink, host: str, per_second: float, *,
                 margin: float = MARGIN, patience: float = PATIENCE,
                 prefix: str = PREFIX) -> None:
        if not per_second > 0:
            raise ValueError("per_second must be positive")
        if not 0 <= margin < 1:
            raise ValueError("margin must be at least 0 and under 1 second")
        self._link = link
        self.host = host.lower()
        self.per_second = per_second
        self.window = 1.0 + margin
        self.interval = self.window / per_second
        #: How many may leave within one window (a fraction below one still lets one through).
        self.count = max(1, math.floor(per_second))
        self._keys = limiter_keys(self.host, prefix)
        #: The ticket names this limiter (this process, this host and rate) in the queue.
        self._args = (secrets.token_hex(8), repr(float(per_second)), _us(self.window),
                      _us(GRACE), _us(RATE_HOLD))
        self._lock = trio.Lock()
        #: Requests between ``paced`` and their slot: about two seconds' worth, as RateLimiter.
        self._admission = trio.Semaphore(2 * self.count)
        self._patience = patience
        #: Since when (trio time) Redis has not answered: the first unanswered ask.
        self._down_since: float | None = None
        self._failure = ""
        self._waits: set[_Wait] = set()

    def __repr__(self) -> str:
        return f"<FleetRateLimiter {self.host} {self.per_second:g}/s via {self._link!r}>"

    async def acquire(self, patience: float | None = None) -> int:
        """Wait for a slot and take it. Returns the time it was granted: microseconds on
        Redis's clock. Raises ``CoordinatorUnavailable`` once Redis has not answered for
        ``patience`` seconds (default: the limiter's) of this wait."""
        wait = _Wait(trio.current_time(), self._patience if patience is None else patience)
        self._waits.add(wait)
        try:
            with wait.scope:
                self._bound(wait)
                async with self._lock:  # one asker per process: the others queue here, in order
                    return await self._take()
        finally:
            self._waits.discard(wait)
        failure = self._failure or f"Redis at {self._link.target.where} did not answer in time"
        raise CoordinatorUnavailable(f"{failure}; no slot for {self.host} is granted without it")

    async def _take(self) -> int:
        backoff = BACKOFF_FIRST
        while True:
            if self._down_since is None:  # unanswered from now until Redis answers
                self._outage(trio.current_time())
            try:
                granted, value = await self._link.run(_TAKE, self._keys, self._args)
            except CoordinatorUnavailable as exc:
                self._failure = str(exc)
                await trio.sleep(backoff * random.uniform(0.5, 1.0))
                backoff = min(2 * backoff, BACKOFF_MAX)
                continue
            self._outage(None)
            backoff = BACKOFF_FIRST
            if granted:
                return int(value)
            await trio.sleep(int(value) / 1_000_000)

    def _outage(self, since: float | None) -> None:
        """Redis has not answered since ``since`` (an ask is on its way, or failed), or it has
        answered (None): every waiter's limit."""
        self._down_since = since
        if since is None:
            self._failure = ""
        for wait in self._waits:
            self._bound(wait)

    def _bound(self, wait: _Wait) -> None:
        if self._down_since is None:
            wait.scope.deadline = math.inf
        else:
            wait.scope.deadline = max(self._down_since, wait.start) + wait.patience

    def paced(self) -> AbstractAsyncContextManager[TraceHook]:
        """Around one HTTP request: yield the ``trace`` extension to give httpx, which takes a
        slot just before the request's headers are written (``RateLimiter.paced``, admission
        included). Its patience through a Redis outage is the request's own timeout."""
        return admitted_slot(self._admission,
                             lambda info: self.acquire(_request_timeout(info)))


def _request_timeout(info: dict[str, Any]) -> float | None:
    """The longest of the timeouts httpx gave the request (None when it has none)."""
    extensions = getattr(info.get("request"), "extensions", None)
    timeouts = extensions.get("timeout") if isinstance(extensions, dict) else None
    found = [value for value in (timeouts or {}).values() if isinstance(value, int | float)]
    return float(max(found)) if found else None


class FleetRateLimiters:
    """One ``FleetRateLimiter`` per (host, rate) in this process, made on first use: the fleet
    coordinator's ``rate_limiter`` (a ``LimiterFor``)."""

    __slots__ = ("_limiters", "_link", "_margin", "_patience", "_prefix")

    def __init__(self, link: RedisLink, *, margin: float = MARGIN,
                 patience: float = PATIENCE, prefix: str = PREFIX) -> None:
        self._link = link
        self._prefix = prefix
        self._margin = margin
        self._patience = patience
        self._limiters: dict[tuple[str, float], FleetRateLimiter] = {}

    def __len__(self) -> int:
        return len(self._limiters)

    def __call__(self, host: str, per_second: float) -> FleetRateLimiter:
        key = (host.lower(), per_second)
        found = self._limiters.get(key)
        if found is None:
            found = self._limiters[key] = FleetRateLimiter(
                self._link, host, per_second, margin=self._margin, patience=self._patience,
                prefix=self._prefix)
        return found


@dataclass(frozen=True, slots=True)
class LimiterState:
    """A host's limit as the fleet shares it now (what ``fleet status`` prints; no secrets)."""

    host: str
    #: The rate in force (the strictest asked for lately); None when nothing is recorded.
    per_second: float | None
    #: Slots granted in the last window (``1 + MARGIN`` seconds).
    granted: int
    #: Seconds until a request asking now could have a slot (0: at once), before any queue.
    next_slot: float
    #: Processes waiting for a slot.
    waiting: int

    def __str__(self) -> str:
        rate = f"{self.per_second:g}/s" if self.per_second is not None else "idle"
        return (f"{self.host}: {rate}, {self.granted} granted in the last window, next slot in "
                f"{self.next_slot:.3f} s, processes waiting: {self.waiting}")


async def limiter_state(link: RedisLink, host: str, *, margin: float = MARGIN,
                        prefix: str = PREFIX) -> LimiterState:
    """Read ``host``'s limit from Redis (raises ``CoordinatorUnavailable`` without it)."""
    rate, granted, until, waiting = await link.run(_LOOK, limiter_keys(host, prefix),
                                                   [_us(1.0 + margin)])
    text = rate.decode() if isinstance(rate, bytes) else str(rate)
    return LimiterState(host=host.lower(), per_second=float(text) if text else None,
                        granted=int(granted), next_slot=max(0, int(until)) / 1_000_000,
                        waiting=int(waiting))


async def limiter_states(link: RedisLink, *, margin: float = MARGIN,
                         prefix: str = PREFIX) -> list[LimiterState]:
    """Every host whose limit Redis holds now, by host name."""
    hosts: set[str] = set()
    cursor: int | None = None
    while cursor != 0:
        cursor, keys = await link.do(link.client.scan(cursor or 0, match=f"{prefix}:limit:{{*}}",
                                                      count=200))
        for key in keys:
            text = key.decode() if isinstance(key, bytes) else str(key)
            hosts.add(text[text.index("{") + 1:text.rindex("}")])
    return [await limiter_state(link, host, margin=margin, prefix=prefix)
            for host in sorted(hosts)]
