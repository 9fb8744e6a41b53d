"""The session tokens (``susertoken``, sent back as ``jKey``) the Firstock simulator issued, and
what a check of one says."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Literal

import trio

#: What a token check says: good, never good (or no longer: logged out, replaced), or expired.
Verdict = Literal["ok", "invalid", "expired"]


@dataclass(eq=False)
class _Token:
    """One susertoken the simulator issued."""

    value: str
    user_id: str
    #: trio time of expiry (None: never, unless expired by hand).
    expires: float | None
    #: Logged out, or replaced by a later login: INVALID_JKEY from now on.
    revoked: bool = False
    #: Expired by ``expire_tokens``: SESSION_EXPIRED from now on.
    expired: bool = False

    def verdict(self, now: float) -> Verdict:
        if self.revoked:
            return "invalid"
        if self.expired or (self.expires is not None and now >= self.expires):
            return "expired"
        return "ok"


class Tokens:
    """Every token issued, by value. One good token per user: a new one revokes the rest."""

    def __init__(self) -> None:
        self._tokens: dict[str, _Token] = {}

    def issue(self, user_id: str, lifetime: float | None) -> str:
        """A fresh token for the user, good for ``lifetime`` trio seconds (None: until revoked
        or expired by hand); the user's earlier ones stop working."""
        for token in self._tokens.values():
            if token.user_id == user_id:
                token.revoked = True
        value = secrets.token_hex(32)
        expires = None if lifetime is None else trio.current_time() + lifetime
        self._tokens[value] = _Token(value, user_id, expires)
        return value

    def check(self, user_id: str, jkey: str) -> Verdict:
        """Is ``jkey`` a good session of ``user_id``? (Another user's token is no better than
        none.)"""
        token = self._tokens.get(jkey)
        if token is None or token.user_id != user_id:
            return "invalid"
        return token.verdict(trio.current_time())

    def revoke(self, jkey: str) -> None:
        """Logged out: INVALID_JKEY from now on."""
        self._tokens[jkey].revoked = True

    def good(self, user_id: str) -> list[str]:
        """The user's tokens that would pass a check right now, oldest first."""
        now = trio.current_time()
        return [t.value for t in self._tokens.values()
                if t.user_id == user_id and t.verdict(now) == "ok"]

    def expire(self, user_id: str) -> int:
        """Expire the user's good tokens (SESSION_EXPIRED from now on); how many."""
        good = self.good(user_id)
        for value in good:
            self._tokens[value].expired = True
        return len(good)
