"""The fleet's token store: day tokens shared through Redis, sealed (``_sealed``).

``RedisTokenStore`` is a ``TokenStore`` like ``FileTokenStore``, for processes on many hosts:
one Redis string per (broker, user) at ``{prefix}:token:{broker}:{user}``, holding the sealed
JSON ``{"token": ..., "created": ISO 8601}``, with the key name as the seal's associated data.

Key names show the user name, escaped: every character outside ``A-Z a-z 0-9 _ . - @`` becomes
``%XX`` (its UTF-8 bytes), so ``:`` cannot forge another key's structure, ``*?[]`` cannot turn a
SCAN pattern, ``{}`` cannot become a Redis Cluster hash tag, and two users never share a key;
names longer than 120 characters are cut and end in a hash of the whole. A user name is not a
secret (the audit trail and the fleet's leases name it), and a readable key lets an operator see
which accounts have a token and delete one (``DEL``) to force a fresh login. Hashing the name
would hide nothing from anyone who can guess account ids, and a keyed hash would tie every key
name to the fleet key, so a key rotation would lose every token.

Expiry: a day token is no use after its day, so each one is stored with a time to live that
ends ``keep_for`` (36 hours) after the token was created: a day and a half, so that a host whose
clock is hours off still finds today's token, while no token stays in Redis past the next day
whatever happens to the process that wrote it. The value and its expiry are set in one ``SET
... PX`` (atomic: a reader sees the old token or the new one, never a key without an expiry).

What counts as no token (the session logs in again and overwrites it, as with the file store):
a value that does not unseal (another fleet key, altered, moved from another key), or that is
not the JSON described above. ``on_unreadable``, when given, hears why (no secret in it).

Redis unreachable is not "no token": ``load``, ``save`` and ``delete`` raise
``CoordinatorUnavailable``. A failed save costs only the token's reuse (the session says so in a
``token_store_failed`` notice and goes on); a failed load reaches the gateway, which decides
whether to wait for Redis or log in without it: treating an outage as "no token" would have
every process of the fleet log its accounts in again at once, each login replacing the token
the others still hold.

``seal_mapping`` and ``unseal_mapping`` seal other fleet data that holds secrets (what the holder
of a lease leaves for the next one: a session token, a logon history) with the same key, each
bound to the Redis key name (plus a field, for a field of a hash) it is stored under.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from brokergate.engine._errors import ConfigurationError
from brokergate.engine._tokens import StoredToken
from brokergate.engine.fleet._client import RedisLink
from brokergate.engine.fleet._sealed import Sealer
from brokergate.machines import Secret

__all__ = ["KEEP_FOR", "RedisTokenStore", "seal_mapping", "token_key", "unseal_mapping"]

#: How long after its creation a day token may stay in Redis.
KEEP_FOR = timedelta(hours=36)

_PLAIN = re.compile(r"[A-Za-z0-9_.@-]")
_PREFIX = re.compile(r"[A-Za-z0-9_.:-]{1,64}")
_LONGEST = 120

#: A value of a sealed mapping: JSON scalars, and ``Secret`` for what is secret.
Value = str | int | float | bool | None | Secret | list[Any] | dict[str, Any]


def escape(part: str) -> str:
    """``part`` as a piece of a key name: safe characters kept, the rest ``%XX``, bounded."""
    shown = "".join(c if _PLAIN.fullmatch(c) else "".join(f"%{b:02X}" for b in c.encode())
                    for c in part)
    if len(shown) <= _LONGEST:
        return shown
    digest = hashlib.sha256(part.encode()).hexdigest()[:16]
    return f"{shown[:_LONGEST - 18]}~~{digest}"


def token_key(prefix: str, broker: str, user: str) -> str:
    """The Redis key name of ``user``'s token at ``broker``."""
    return f"{prefix}:token:{escape(broker)}:{escape(user)}"


class RedisTokenStore:
    """Day tokens in Redis through ``link``, sealed by ``sealer`` (see the module docstring).

    ``clock`` gives the wall-clock time (aware) that expiries are counted from.
    """

    __slots__ = ("_clock", "keep_for", "link", "on_unreadable", "prefix", "sealer")

    def __init__(self, link: RedisLink, sealer: Sealer, prefix: str = "brokergate", *,
                 keep_for: timedelta = KEEP_FOR,
                 on_unreadable: Callable[[str], None] | None = None,
                 clock: Callable[[], datetime] | None = None) -> None:
        if not _PREFIX.fullmatch(prefix):
            raise ConfigurationError(f"the fleet's key prefix {prefix!r} must be 1 to 64 of "
                                     "A-Z a-z 0-9 _ . : -")
        if keep_for <= timedelta(0):
            raise ConfigurationError("keep_for must be a positive time")
        self.link = link
        self.sealer = sealer
        self.prefix = prefix
        self.keep_for = keep_for
        self.on_unreadable = on_unreadable
        self._clock = clock or (lambda: datetime.now(UTC))

    def __repr__(self) -> str:
        return f"<RedisTokenStore {self.link.target.where} {self.prefix}:token:* {self.sealer!r}>"

    def key(self, broker: str, user: str) -> str:
        return token_key(self.prefix, broker, user)

    async def load(self, broker: str, user: str) -> StoredToken | None:
        name = self.key(broker, user)
        sealed = await self.link.do(self.link.client.get(name))
        if sealed is None:
            return None
        opened = self.sealer.unseal(sealed, name)
        if opened.data is None:
            self._unreadable(name, opened.reason or "it does not unseal")
            return None
        stored = _stored_token(opened.data)
        if stored is None:
            self._unreadable(name, "it opens, but is not a stored token")
        return stored

    async def save(self, broker: str, user: str, stored: StoredToken) -> None:
        if stored.created.tzinfo is None:
            raise ValueError("a stored token's created time must be timezone-aware")
        name = self.key(broker, user)
        left = stored.created + self.keep_for - self._clock()
        # Never longer than keep_for from now, whatever the creation time says.
        millis = min(int(left.total_seconds() * 1000), int(self.keep_for.total_seconds() * 1000))
        if millis <= 0:  # already past its time in Redis: keep nothing
            await self.link.do(self.link.client.delete([name]))
            return
        doc = {"token": stored.token.reveal(), "created": stored.created.isoformat()}
        sealed = self.sealer.seal(json.dumps(doc).encode(), name)
        await self.link.do(self.link.client.set(name, sealed, px=millis))

    async def delete(self, broker: str, user: str) -> None:
        await self.link.do(self.link.client.delete([self.key(broker, user)]))

    def _unreadable(self, name: str, reason: str) -> None:
        if self.on_unreadable is not None:
            self.on_unreadable(f"the token at {name} counts as none: {reason}")


def seal_mapping(sealer: Sealer, name: str, values: Mapping[str, Value]) -> bytes:
    """``values`` sealed for the Redis key ``name`` (plus ``#field`` for a field of a hash).

    A value is JSON (scalars, lists, string-keyed objects) or, at the top level, a ``Secret``:
    secrets travel revealed inside the seal only and come back as ``Secret``. A value of another
    type raises ``TypeError`` naming its field (never the value).
    """
    plain: dict[str, Any] = {}
    secret: list[str] = []
    for field, value in values.items():
        if isinstance(value, Secret):
            plain[field] = value.reveal()
            secret.append(field)
        elif _is_json(value):
            plain[field] = value
        else:
            raise TypeError(f"a sealed mapping holds JSON values and Secrets; field {field!r} "
                            f"is a {type(value).__name__}")
    doc = {"values": plain, "secret": secret}
    return sealer.seal(json.dumps(doc, allow_nan=False).encode(), name)


def _is_json(value: object) -> bool:
    if value is None or isinstance(value, str | int | float | bool):
        return True
    if isinstance(value, list | tuple):
        return all(_is_json(item) for item in value)
    if isinstance(value, dict):
        return all(isinstance(key, str) and _is_json(item) for key, item in value.items())
    return False


def unseal_mapping(sealer: Sealer, name: str,
                   sealed: bytes) -> tuple[dict[str, Value] | None, str | None]:
    """The mapping sealed for ``name``, with its secrets as ``Secret``, and None; or None and
    why it does not open (no secret in the reason)."""
    opened = sealer.unseal(sealed, name)
    if opened.data is None:
        return None, opened.reason
    values = _mapping(opened.data)
    if values is None:
        return None, "it opens, but is not a sealed mapping"
    return values, None


def _stored_token(data: bytes) -> StoredToken | None:
    """The stored token in ``data``, if it is one."""
    try:
        doc = json.loads(data)
        token, created = doc["token"], datetime.fromisoformat(doc["created"])
    except (ValueError, KeyError, TypeError, RecursionError):
        return None
    if not isinstance(token, str) or not token or created.tzinfo is None:
        return None
    return StoredToken(Secret(token), created)


def _mapping(data: bytes) -> dict[str, Value] | None:
    """The sealed mapping in ``data``, its secrets as ``Secret``, if it is one."""
    try:
        doc = json.loads(data)
        plain, secret = doc["values"], doc["secret"]
    except (ValueError, KeyError, TypeError, RecursionError):
        return None
    if not isinstance(plain, dict) or not isinstance(secret, list):
        return None
    values: dict[str, Value] = {}
    for field, value in plain.items():
        if field in secret:
            if not isinstance(value, str):
                return None
            values[field] = Secret(value)
        else:
            values[field] = value  # JSON, as json.loads made it
    return values
