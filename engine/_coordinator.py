"""Where the state that sessions share lives: the ``Coordinator`` a gateway asks.

``LocalCoordinator`` (the default) keeps it in this process: nothing to install, and exactly the
behaviour of one process. A fleet coordinator (``brokergate.fleet``: Redis) keeps it where
processes on many hosts share it, and adds what only a fleet needs, the account claims:

- a *lease*, for brokers where a second login displaces the first (``Broker.displaces``): one
  session in the fleet holds the account and logs in; the others are standbys that neither log
  in nor displace it, and one of them takes over when the holder goes away;
- a *login flight*, for brokers whose sessions share a day token: one session logs the account
  in while the others wait, then they reuse its token (or end as it ended, when a retry would
  repeat its failure).

``LocalCoordinator.claim`` returns None: sessions of one process claim nothing and behave as
they always have.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, Protocol

from brokergate.engine._http import Pacer, RateLimiter, RateLimiters
from brokergate.engine._tokens import MemoryTokenStore, TokenStore

__all__ = [
    "AccountClaim",
    "ClaimKind",
    "Coordinator",
    "Granted",
    "Held",
    "LocalCoordinator",
    "Pacer",
    "ProcessResources",
]

#: A lease (one holder at a time) or a login flight (one login, shared).
ClaimKind = Literal["lease", "flight"]


@dataclass(frozen=True, slots=True)
class Granted:
    """The claim is the session's. ``fence`` grows with every grant of the account (the
    fencing token, in the audit trail); ``handover`` is what the previous holder left for its
    successor (decrypted), ``outcome`` how the previous login flight ended."""

    fence: int
    handover: Mapping[str, Any] | None = None
    outcome: Mapping[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class Held:
    """Another session holds the claim: ``holder`` names it (host, process, session; no
    secret), ``fence`` is its grant's."""

    holder: str
    fence: int


class AccountClaim(Protocol):
    """One session's claim on its account in the fleet."""

    kind: ClaimKind

    @property
    def holder(self) -> str:
        """Who this claim names as its holder (host, process, session; no secret)."""

    async def take(self) -> Granted | Held:
        """Try once: the claim, or who holds it. Raises ``CoordinatorUnavailable``."""

    async def wait(self) -> Granted:
        """Until the claim is the session's (waiting out coordinator faults with backoff)."""

    async def keep(self) -> str:
        """Renew the claim while it is held; return why it was lost (never while held)."""

    def valid(self) -> bool:
        """May the holder still write: its lease cannot have passed to another yet."""

    async def publish(self, handover: Mapping[str, Any]) -> None:
        """Leave ``handover`` for the next holder (only while this grant is current)."""

    async def release(self, outcome: Mapping[str, Any] | None = None) -> None:
        """Give the claim up (only this grant), leaving ``outcome`` for those who waited."""


class Coordinator(Protocol):
    """Where the state that sessions share lives: in this process (``LocalCoordinator``) or in
    a store that processes on several hosts share."""

    @property
    def token_store(self) -> TokenStore:
        """Where day-long session tokens are kept between sessions and processes."""

    def resource(self, broker: str, name: str, key: Hashable,
                 create: Callable[[], object]) -> object:
        """The shared resource ``name`` of ``broker`` for ``key`` (made with ``create`` the
        first time it is asked for)."""

    def rate_limiter(self, host: str, per_second: float) -> Pacer:
        """The limiter of requests to ``host`` at ``per_second``."""

    def claim(self, broker: str, account: str, kind: ClaimKind,
              session_id: str) -> AccountClaim | None:
        """Session ``session_id``'s claim on ``account`` of ``broker``; None where sessions
        claim nothing (one process)."""


class ProcessResources:
    """The brokers' shared resources as this process keeps them: one per (broker, name, key),
    made on first use. Every coordinator keeps them so; a fleet's carries across processes
    only what a lease's handover holds."""

    __slots__ = ("_resources",)

    def __init__(self) -> None:
        self._resources: dict[tuple[str, str, Hashable], object] = {}

    @property
    def resources_made(self) -> int:
        """How many resources this process has made so far."""
        return len(self._resources)

    def resource(self, broker: str, name: str, key: Hashable,
                 create: Callable[[], object]) -> object:
        found = self._resources.get((broker, name, key))
        if found is None:
            found = self._resources[(broker, name, key)] = create()
        return found


class LocalCoordinator(ProcessResources):
    """Shared state kept in this process, for the gateway's life (the default)."""

    __slots__ = ("_limiters", "token_store")

    def __init__(self, token_store: TokenStore | None = None) -> None:
        super().__init__()
        self.token_store: TokenStore = token_store if token_store is not None \
            else MemoryTokenStore()
        self._limiters = RateLimiters()

    def __repr__(self) -> str:
        return (f"<LocalCoordinator {self.resources_made} resources, {len(self._limiters)} "
                f"rate limiters, {self.token_store!r}>")

    def rate_limiter(self, host: str, per_second: float) -> RateLimiter:
        return self._limiters(host, per_second)

    def claim(self, broker: str, account: str, kind: ClaimKind,
              session_id: str) -> AccountClaim | None:
        return None


