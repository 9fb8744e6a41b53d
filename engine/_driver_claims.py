"""A session's claim on its account in a fleet (``brokergate.engine._coordinator``).

With a fleet coordinator, a session of a broker where a second login displaces the first holds
a lease on its account, and a session of a broker whose sessions share a day token logs in only
inside the account's login flight. This part runs that claim in one task of the session's:

- not granted at the start: the machine goes to ``standby`` (``Standby``, naming the holder)
  and the task waits for the claim, then gives the machine ``LeaseGranted`` with what the fleet
  kept (the day token the flight obtained, the previous holder's handover);
- a lease, once granted, is renewed until the session ends; when it cannot be (Redis out of
  reach for longer than the TTL, this process paused, another took it) the machine gets
  ``LeaseLost`` and the task waits again. The single writer refuses to write from the moment
  the lease stops being valid here, before Redis could grant it to anyone else (``_fenced``);
- a flight is released once the session's login settles (authenticated, or an end), leaving
  how it ended for the sessions that waited; a failure that a retry would repeat reaches them
  as ``SharedOutcome`` and they end the same way without asking the broker.

Every grant and loss is an audit event naming the holder and the fencing token.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import trio

from brokergate.engine._coordinator import AccountClaim, Granted, Held
from brokergate.engine._driver_calls import CallsPart
from brokergate.machines import (
    AUTHENTICATED,
    DISCONNECTED,
    TERMINAL_STATES,
    Fault,
    LeaseGranted,
    LeaseLost,
    SharedOutcome,
    Standby,
    StoredToken,
    Transitioned,
)

#: Reads the account's day token as the fleet's token store has it now.
Reload = Callable[[], Awaitable[StoredToken | None]]

#: Faults of a flight's failure that every session with the same account would meet again.
_SHARED_FAULTS = frozenset({Fault.CONFIGURATION.value, Fault.ACCOUNT.value})


class ClaimsPart(CallsPart):
    """The session's account claim: standby, the lease kept, writing fenced, the flight."""

    __slots__ = ()

    def start_claimed(self, nursery: trio.Nursery, claim: AccountClaim,
                      first: Granted | Held, reload: Reload | None) -> None:
        """``start`` for a session with a claim: ``first`` is what taking it gave."""
        self._claim = claim
        if isinstance(first, Granted):
            self._log_claim("claim_granted", first.fence)
            self.start(nursery)
        else:
            self.start(nursery, Standby(f"{first.holder} (fence {first.fence})"))
        nursery.start_soon(self._hold_claim, first, reload, name=f"claim {self.session_id}")

    def _log_claim(self, event: str, fence: int, **fields: Any) -> None:
        claim = self._claim
        assert claim is not None
        self._log(event, claim=claim.kind, fence=fence, holder=claim.holder, **fields)

    async def _hold_claim(self, first: Granted | Held, reload: Reload | None) -> None:
        claim = self._claim
        assert claim is not None
        try:
            await self._claim_loop(claim, first, reload)
        finally:
            await self._let_go(claim)

    async def _claim_loop(self, claim: AccountClaim, first: Granted | Held,
                          reload: Reload | None) -> None:
        got: Granted | Held = first
        while not self._stopping:
            if isinstance(got, Held):
                got = await claim.wait()
                if self._stopping:
                    return
                self._log_claim("claim_granted", got.fence)
                if not self._granted(got):
                    return
                stored = await self._reload(reload)
                self.feed(LeaseGranted(stored, got.handover))
            if claim.kind == "flight":
                # Renewed while the login runs (a login that backs off can outlast the TTL);
                # released, with how it ended, once it has settled.
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(claim.keep)
                    await self._until_settled()
                    nursery.cancel_scope.cancel()
                await self._let_go(claim, self.outcome())  # how it ended, for those who waited
                return
            why = await claim.keep()
            if self._stopping:
                return
            self._log_claim("claim_lost", got.fence, detail=why)
            self.feed(LeaseLost(why))
            got = Held(holder="", fence=got.fence)

    def _granted(self, got: Granted) -> bool:
        """Act on the previous flight's outcome: False when this session ended with it."""
        outcome: Mapping[str, Any] | None = got.outcome
        if not outcome or outcome.get("fault") not in _SHARED_FAULTS:
            return True
        state = str(outcome.get("state") or "failed")
        if state not in TERMINAL_STATES:
            return True
        self.feed(SharedOutcome(
            state=state, reason=str(outcome.get("reason") or "failed_elsewhere"),
            fault=Fault(outcome["fault"]),
            detail=f"another session of the fleet logged this account in and it ended so: "
                   f"{outcome.get('detail') or outcome.get('reason')}"))
        return False

    async def _reload(self, reload: Reload | None) -> StoredToken | None:
        if reload is None:
            return None
        try:
            return await reload()
        except Exception as exc:  # the token store failing is a notice, not a crash
            self._log("token_store_failed", detail=f"{type(exc).__name__}: {exc}")
            return None

    async def _until_settled(self) -> None:
        while not (self.model.state == AUTHENTICATED or self.model.state in TERMINAL_STATES
                   or (self.model.state == DISCONNECTED and self._stopping)):
            await self._next_change()

    async def _let_go(self, claim: AccountClaim,
                      outcome: Mapping[str, Any] | None = None) -> None:
        """Give the claim up at once, so that a waiting session need not wait out the TTL.
        Shielded: it runs while the session's tasks are being cancelled (a session that ends
        as soon as its login settles cancels this task with the release on its way). A failed
        release is logged: the claim expires by itself, and the waiters take it then."""
        with trio.CancelScope(shield=True), trio.move_on_after(2.0):
            try:
                await claim.release(outcome)
            except Exception as exc:
                self._log("claim_release_failed", detail=f"{type(exc).__name__}: {exc}")

    def _on_transition(self, record: Transitioned) -> None:
        super()._on_transition(record)
        # A lease holder leaves its successor what it would need, as it changes: a new
        # session token, a logon attempted (for the fleet-wide spacing and daily cap).
        if self._handover is None or self._claim is None or not self._claim.valid():
            return
        handover = self._handover.handover()
        if handover is not None and handover != self._handed_over:
            self._handed_over = handover
            assert self._nursery is not None
            self._nursery.start_soon(self._publish_handover, handover)

    async def _publish_handover(self, handover: Mapping[str, Any]) -> None:
        """Leave the latest handover for the account's next holder. The tasks that do it may
        run in any order (trio starts tasks in no promised order), so each publishes what is
        latest when it runs, not what it was started with; the claim writes one at a time. A
        failure is logged: the next holder then logs on rather than restores."""
        claim = self._claim
        latest = self._handed_over
        if claim is None or latest is None:
            return
        try:
            await claim.publish(latest)
        except Exception as exc:
            self._log("claim_publish_failed", detail=self._scrub(f"{type(exc).__name__}: {exc}"))
