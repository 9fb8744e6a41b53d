"""``brokergate login BROKER ... --coordinator URL``: the session runs on the fleet's Redis
coordinator, and the command says where it stands in the fleet.

The coordinator is opened with ``open_redis_coordinator`` from the ``--coordinator`` URL and the
``--redis-*``, ``--fleet-key-file``, ``--lease-ttl`` and ``--prefix`` options (the Redis password
and the fleet key themselves only from the environment or files). While the session runs, lines
on stderr say when it holds the account, when it waits as a standby (and behind whom: a holder
is named by host, process and session, never by a secret) and when it takes over; the result
line carries the same in ``fleet``.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from brokergate.engine._audit import AuditLog
from brokergate.engine._errors import ConfigurationError, CoordinatorUnavailable
from brokergate.engine._gateway import Gateway, open_gateway
from brokergate.engine.cli._secrets import UsageError
from brokergate.machines import STANDBY, Transitioned
from brokergate.machines._broker import Broker
from brokergate.machines._config import SessionSettings

#: Options that mean something only with ``--coordinator`` (destination, option).
FLEET_ONLY = (("redis_user", "--redis-user"), ("redis_password_file", "--redis-password-file"),
              ("redis_ca_file", "--redis-ca-file"), ("fleet_key_file", "--fleet-key-file"),
              ("lease_ttl", "--lease-ttl"), ("prefix", "--prefix"))
DEFAULT_LEASE_TTL = 10.0
DEFAULT_PREFIX = "brokergate"


class CoordinatorDown(Exception):
    """The fleet's Redis could not be reached (exit ``EXIT_COORDINATOR``); the message names
    it and where it is (no credentials)."""


def coordinator_failure(exc: BaseException) -> Exception | None:
    """What the command line says of a failure that came out of a run on the coordinator:
    ``CoordinatorDown`` for Redis out of reach, ``UsageError`` for a configuration that cannot
    work (a bad URL, key, password file or credentials), None for anything else. ``exc`` may be
    wrapped in the exception groups of the nurseries it passed through."""
    found = exc
    while isinstance(found, BaseExceptionGroup) and len(found.exceptions) == 1:
        found = found.exceptions[0]
    if isinstance(found, CoordinatorUnavailable):
        return CoordinatorDown(" ".join(f"fleet coordinator: {found}".split()))
    if isinstance(found, ConfigurationError):
        return UsageError(" ".join(str(found).split()))
    return None


def check_fleet_options(args: argparse.Namespace) -> None:
    """Refuse fleet options without ``--coordinator``, and a token folder with it."""
    if args.coordinator is None:
        given = [option for dest, option in FLEET_ONLY if getattr(args, dest, None) is not None]
        if given:
            raise UsageError(f"{', '.join(given)}: only with --coordinator URL")
    elif getattr(args, "token_dir", None) is not None:
        raise UsageError("--token-dir keeps tokens for one process; with --coordinator the "
                         "fleet keeps them in Redis, sealed with the fleet key")


def claim_kind(broker: Broker[Any]) -> str | None:
    """What a session of ``broker`` claims in a fleet (as the gateway decides it)."""
    if broker.displaces:
        return "lease"
    return "flight" if broker.has("token_store") else None


@dataclass(slots=True)
class FleetReport:
    """Where the session stands in the fleet: what the result line's ``fleet`` says."""

    coordinator: str
    claim: str | None
    account: str | None
    #: Whether it waited before its claim was granted; whether that was as a standby behind
    #: another session (named by host, process and session: no secret), and its fence.
    waited: bool = False
    standby: bool = False
    held_by: str | None = None
    held_by_fence: int | None = None
    #: Granted after waiting as a standby.
    took_over: bool = False
    #: The fencing token of its grant, as Redis showed it at the grant (None: not seen).
    fence: int | None = None

    def as_dict(self) -> dict[str, Any]:
        return {"coordinator": self.coordinator, "claim": self.claim, "account": self.account,
                "waited": self.waited, "standby": self.standby, "held_by": self.held_by,
                "held_by_fence": self.held_by_fence, "took_over": self.took_over,
                "fence": self.fence}


def say(line: str) -> None:
    print(f"brokergate: fleet: {line}", file=sys.stderr, flush=True)


class FleetWatch:
    """Follows one session's place in the fleet; ``run`` tells it as it changes."""

    __slots__ = ("_broker", "_coordinator", "_say", "_standby_at_start", "report")

    def __init__(self, coordinator: Any, broker: Broker[Any], config: SessionSettings,
                 say_line: Callable[[str], None] = say) -> None:
        self._coordinator = coordinator
        self._broker = broker
        self._say = say_line
        self._standby_at_start = False
        account = broker.fleet_account(config) if broker.fleet_account is not None else None
        self.report = FleetReport(coordinator=coordinator.link.target.where,
                                  claim=claim_kind(broker), account=account or None)

    def _whose(self) -> str:
        return f"{self._broker.name} account {self.report.account}"

    async def _fence(self) -> int | None:
        """The fence of the account's claim as Redis has it now (the grant just made)."""
        report = self.report
        name = f"{self._coordinator.prefix}:{self._broker.name}:{report.account}:claim:" \
               f"{report.claim}"
        link = self._coordinator.link
        try:
            value = await link.do(link.client.hget(name, "fence"))
        except Exception:  # the fence is shown when it can be; the session goes on regardless
            return None
        text = value.decode() if isinstance(value, bytes) else str(value or "")
        return int(text) if text.isdigit() else None

    def subscribe(self, session: Any) -> Any:
        """Subscribe to the session's events; call it before the session's tasks run (before
        any checkpoint after opening it), so that its first transition is in the stream."""
        self._standby_at_start = session.state == STANDBY
        return session.events(overflow="drop_oldest")

    async def run(self, events: Any) -> None:
        """Tell the session's place as ``events`` (from ``subscribe``) show it changing."""
        report = self.report
        if report.claim is None or report.account is None:
            return
        if not self._standby_at_start:
            report.fence = await self._fence()
            if report.claim == "lease":
                self._say(f"this session holds the lease on {self._whose()} "
                          f"(fence {report.fence})")
            else:
                self._say(f"this session has the login flight of {self._whose()} (fence "
                          f"{report.fence}): the fleet's other sessions of it wait for it")
        async with events:
            async for event in events:
                if isinstance(event, Transitioned):
                    await self._on(event)

    async def _on(self, event: Transitioned) -> None:
        report = self.report
        if event.trigger == "lease_lost":
            self._say(f"lost the lease on {self._whose()}: {printable(event.detail or '')}; "
                      "standby again, writing nothing until the lease is granted anew")
        elif event.dst == STANDBY:
            holder, fence = _holder(printable(event.detail or ""))
            if not fence:  # no session holds it: Redis is new, emptied, or not answering yet
                report.waited = True
                self._say(f"waiting for the fleet before {self._whose()} may be claimed: "
                          f"{holder}")
                return
            report.standby, report.waited = True, True
            report.held_by, report.held_by_fence = holder, fence
            waiting = ("waiting to take over, neither logging in nor displacing it"
                       if report.claim == "lease" else "waiting for that login to share it")
            self._say(f"standby for {self._whose()}: held by {holder} (fence {fence}); "
                      f"{waiting}")
        elif event.trigger == "lease_granted":
            report.fence = await self._fence()
            if report.standby:
                report.took_over = True
                self._say(f"took over {self._whose()} ({report.claim}, fence {report.fence})")
            else:
                self._say(f"{self._whose()} is this session's now ({report.claim}, fence "
                          f"{report.fence})")


def printable(text: str) -> str:
    """``text`` (read from Redis: anyone who can write there could have put anything in it)
    with control characters escaped, so that it cannot move a terminal's cursor."""
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii")
                   for c in text)


def _holder(detail: str) -> tuple[str, int | None]:
    """The holder and its fence in the detail of a transition to standby (the machine's words:
    "another session of the fleet holds the account: HOLDER (fence N)")."""
    holder = detail.split("holds the account: ", 1)[-1]
    found = re.fullmatch(r"(.*) \(fence (\d+)\)", holder, re.DOTALL)
    if found is None:
        return holder, None
    return found[1], int(found[2])


@asynccontextmanager
async def fleet_gateway(args: argparse.Namespace,
                        audit: AuditLog) -> AsyncIterator[tuple[Gateway, Any]]:
    """The gateway on the Redis coordinator the options name, and the coordinator."""
    try:
        # Imported here: the fleet needs the redis extra, one process does not.
        from brokergate.engine.fleet import open_redis_coordinator  # noqa: PLC0415
    except ImportError as missing:
        raise UsageError(str(missing)) from None
    async with open_redis_coordinator(
        args.coordinator, username=args.redis_user, password_file=args.redis_password_file,
        ca_file=args.redis_ca_file, key_file=args.fleet_key_file,
        prefix=args.prefix or DEFAULT_PREFIX,
        lease_ttl=args.lease_ttl if args.lease_ttl is not None else DEFAULT_LEASE_TTL,
    ) as coordinator, open_gateway(audit=audit, coordinator=coordinator) as gateway:
        yield gateway, coordinator

