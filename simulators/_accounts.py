"""A simulator's accounts by user name, each with the scripted countdowns the simulator keeps
beside it (never inside it: an account object can be handed to several simulators)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Generic, TypeVar

AccountT = TypeVar("AccountT")
CountdownsT = TypeVar("CountdownsT")


class AccountBook(Generic[AccountT, CountdownsT]):
    """Mixin: ``add_account``, ``account``, ``account_names`` and ``countdowns`` for a simulator.

    A simulator says how to name an account (``_account_key``) and how to arm its countdowns
    (``_arm``), and calls ``_open_book`` from its ``__init__``.
    """

    _accounts: dict[str, AccountT]
    _countdowns: dict[str, CountdownsT]

    def _open_book(self, accounts: Iterable[AccountT]) -> None:
        self._accounts = {}
        self._countdowns = {}
        for account in accounts:
            self.add_account(account)

    def _account_key(self, account: AccountT) -> str:
        raise NotImplementedError

    def _arm(self, account: AccountT) -> CountdownsT:
        raise NotImplementedError

    def add_account(self, account: AccountT) -> None:
        """Add or replace an account; its countdowns start afresh."""
        key = self._account_key(account)
        self._accounts[key] = account
        self._countdowns[key] = self._arm(account)

    def account(self, name: str) -> AccountT | None:
        return self._accounts.get(name)

    def account_names(self) -> list[str]:
        """The user names this simulator knows, in the order they were added."""
        return list(self._accounts)

    def countdowns(self, name: str) -> CountdownsT:
        return self._countdowns[name]
