"""What a fleet's Redis holds now, read for an operator (``brokergate fleet status``).

Only what is not secret is read: a claim's holder, fencing token and age, the last fence an
account was granted, the size and time to live of a sealed handover (never its bytes), a login
flight's outcome (plain JSON: state, reason, fault, detail), the REST hosts' limits, which day
tokens are stored and for how long (their names; never their values), and the boot marker's age.
Nothing here opens a sealed value, so reading the status needs no fleet key.

Keys are found with SCAN over ``{prefix}:*`` (never KEYS, which would stall a busy Redis); each
is read with the command its kind calls for. A key that is not the type its name says (someone
else's key under the prefix) is counted, not read.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import coredis.exceptions as redis_errors

from brokergate.engine._audit import _longest_first, scrub
from brokergate.engine._errors import ConfigurationError
from brokergate.engine.fleet._client import RedisLink
from brokergate.engine.fleet._limiter import LimiterState, limiter_states

__all__ = ["AccountStatus", "ClaimStatus", "FleetStatus", "TokenStatus", "read_fleet_status"]

#: A prefix the fleet accepts (``RedisTokenStore``'s rule): nothing a SCAN pattern would expand.
_PREFIX = re.compile(r"[A-Za-z0-9_.:-]{1,64}")
#: ``{broker}:{account}:{what}`` under the prefix: an account's claim, fence counter, handover
#: or flight outcome (``_claims``).
_ACCOUNT_KEY = re.compile(
    r"(?P<broker>[^:]+):(?P<account>.+):(?P<what>claim:lease|claim:flight|fence:lease"
    r"|fence:flight|handover|outcome)")
_TOKEN_KEY = re.compile(r"token:(?P<broker>[^:]+):(?P<user>.+)")
_ESCAPED = re.compile(r"%([0-9A-F]{2})")
#: What of a flight's outcome is shown, each bounded to this many characters.
_OUTCOME_FIELDS = ("state", "reason", "fault", "detail")
_LONGEST = 300
#: Redis's clock, the one the fleet's times are on.
_TIME = "return redis.call('TIME')"


@dataclass(frozen=True, slots=True)
class ClaimStatus:
    """One claim (lease or login flight) as Redis holds it now."""

    kind: str
    holder: str
    fence: int | None
    #: When it was granted (Redis's clock), and for how long it has been held.
    since: datetime | None
    held_for: float | None
    #: Seconds until it expires unless renewed (None: no expiry, which brokergate never sets).
    ttl: float | None


@dataclass(slots=True)
class AccountStatus:
    """What the fleet keeps for one account of one broker."""

    broker: str
    account: str
    claims: list[ClaimStatus] = field(default_factory=list)
    #: The last fencing token granted, per claim kind.
    last_fence: dict[str, int] = field(default_factory=dict)
    #: The sealed handover's size in bytes and time to live; None when there is none.
    handover_bytes: int | None = None
    handover_ttl: float | None = None
    #: The last login flight's outcome (state, reason, fault, detail) and its time to live.
    outcome: dict[str, str | None] | None = None
    outcome_ttl: float | None = None


@dataclass(frozen=True, slots=True)
class TokenStatus:
    """A stored day token: whose, and how long Redis keeps it (the value is never read)."""

    broker: str
    user: str
    ttl: float | None


@dataclass(slots=True)
class FleetStatus:
    """The fleet's state at ``now`` (Redis's clock)."""

    where: str
    prefix: str
    now: datetime
    #: Seconds since the boot marker was set (Redis found empty); None when there is none.
    boot_age: float | None = None
    accounts: list[AccountStatus] = field(default_factory=list)
    limits: list[LimiterState] = field(default_factory=list)
    tokens: list[TokenStatus] = field(default_factory=list)
    #: Keys under the prefix that are none of the above, or not of the type their name says.
    other_keys: int = 0


def _text(value: Any) -> str:
    return value.decode("utf-8", "backslashreplace") if isinstance(value, bytes) else str(value)


def _ttl(pttl: int) -> float | None:
    """PTTL's answer in seconds; None for no expiry (-1) or no key (-2)."""
    return pttl / 1000 if pttl >= 0 else None


def _unescape(part: str) -> str:
    """A token key's user name as it was before ``_tokens.escape`` (a cut name stays cut)."""
    try:
        return _ESCAPED.sub(lambda m: chr(int(m.group(1), 16)), part).encode(
            "latin-1").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return part


def shown(value: object, secrets: Iterable[str] = ()) -> str:
    """``value`` as text fit for a terminal or a log: registered secrets (and ``secrets``)
    scrubbed, control characters escaped, bounded."""
    text = str(scrub(_text(value), _longest_first(secrets)))
    text = "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii")
                   for c in text)
    return text if len(text) <= _LONGEST else text[:_LONGEST - 1] + "…"


async def read_fleet_status(link: RedisLink, prefix: str = "brokergate",
                            secrets: Iterable[str] = ()) -> FleetStatus:
    """Read the fleet's state under ``prefix`` (see the module's docstring). ``secrets`` are
    scrubbed from every text shown, on top of the process's registered ones (the Redis password
    is one). Raises ``CoordinatorUnavailable`` when Redis cannot be reached."""
    if not _PREFIX.fullmatch(prefix):
        raise ConfigurationError(f"the fleet's key prefix {prefix!r} must be 1 to 64 of "
                                 "A-Z a-z 0-9 _ . : -")
    hidden = tuple(secrets)
    seconds, micros = await link.run(_TIME, [], [])
    now = datetime.fromtimestamp(int(seconds) + int(micros) / 1_000_000, UTC)
    status = FleetStatus(where=link.target.where, prefix=prefix, now=now)
    accounts: dict[tuple[str, str], AccountStatus] = {}
    for name in sorted(await _scan(link, f"{prefix}:*")):
        rest = name[len(prefix) + 1:]
        try:
            known = await _read_key(link, status, accounts, name=name, rest=rest,
                                    hidden=hidden)
        except redis_errors.ResponseError:  # WRONGTYPE: not brokergate's key
            known = False
        if not known:
            status.other_keys += 1
    status.accounts = [accounts[key] for key in sorted(accounts)]
    status.limits = await limiter_states(link, prefix=prefix)
    return status


async def _scan(link: RedisLink, pattern: str) -> set[str]:
    found: set[str] = set()
    cursor: int | None = None
    while cursor != 0:
        cursor, keys = await link.do(link.client.scan(cursor or 0, match=pattern, count=500))
        found.update(_text(key) for key in keys)
    return found


async def _read_key(link: RedisLink, status: FleetStatus,
                    accounts: dict[tuple[str, str], AccountStatus], *, name: str, rest: str,
                    hidden: tuple[str, ...]) -> bool:
    """Read one key into ``status``; False when it is none of the fleet's."""
    if rest == "boot":
        status.boot_age = _boot_age(await link.do(link.client.get(name)), status.now)
        return status.boot_age is not None
    if rest.startswith("limit:{"):
        return True  # read as the hosts' limits (``limiter_states``)
    token = _TOKEN_KEY.fullmatch(rest)
    if token is not None:
        ttl = _ttl(await link.do(link.client.pttl(name)))
        status.tokens.append(TokenStatus(broker=shown(token["broker"]),
                                         user=shown(_unescape(token["user"])), ttl=ttl))
        return True
    match = _ACCOUNT_KEY.fullmatch(rest)
    if match is None:
        return False
    key = (match["broker"], match["account"])
    account = accounts.get(key)
    if account is None:
        account = accounts[key] = AccountStatus(broker=shown(key[0]), account=shown(key[1]))
    what = match["what"]
    if what.startswith("claim:"):
        claim = await _claim(link, name, what.removeprefix("claim:"), status.now, hidden)
        if claim is None:
            return False
        account.claims.append(claim)
    elif what.startswith("fence:"):
        value = await link.do(link.client.get(name))
        if value is None or not _text(value).isdigit():
            return False
        account.last_fence[what.removeprefix("fence:")] = int(_text(value))
    elif what == "handover":
        account.handover_bytes = await link.do(link.client.strlen(name))
        account.handover_ttl = _ttl(await link.do(link.client.pttl(name)))
    else:
        account.outcome = _outcome(await link.do(link.client.get(name)), hidden)
        account.outcome_ttl = _ttl(await link.do(link.client.pttl(name)))
    return True


async def _claim(link: RedisLink, name: str, kind: str, now: datetime,
                 hidden: tuple[str, ...]) -> ClaimStatus | None:
    fields = {_text(k): _text(v) for k, v in (await link.do(link.client.hgetall(name))).items()}
    if not fields:
        return None  # expired between SCAN and now
    ttl = _ttl(await link.do(link.client.pttl(name)))
    fence = fields.get("fence", "")
    since_ms = fields.get("since", "")
    since = (datetime.fromtimestamp(int(since_ms) / 1000, UTC) if since_ms.isdigit() else None)
    return ClaimStatus(
        kind=kind, holder=shown(fields.get("holder", "?"), hidden),
        fence=int(fence) if fence.isdigit() else None, since=since,
        held_for=max(0.0, (now - since).total_seconds()) if since is not None else None,
        ttl=ttl)


def _outcome(value: bytes | None, hidden: tuple[str, ...]) -> dict[str, str | None] | None:
    """A flight's outcome: its four plain fields, each shown through ``shown``."""
    if value is None:
        return None
    try:
        doc = json.loads(value)
    except (ValueError, RecursionError):
        return {"state": "(not JSON)", "reason": None, "fault": None, "detail": None}
    if not isinstance(doc, dict):
        return {"state": "(not an outcome)", "reason": None, "fault": None, "detail": None}
    return {name: None if doc.get(name) is None else shown(doc[name], hidden)
            for name in _OUTCOME_FIELDS}


def _boot_age(value: bytes | None, now: datetime) -> float | None:
    """Seconds since the boot marker's time (microseconds of Redis time, as the claims and the
    rate limiter write it)."""
    text = _text(value) if value is not None else ""
    if not text.isdigit():
        return None
    return max(0.0, now.timestamp() - int(text) / 1_000_000)
