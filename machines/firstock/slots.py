"""Firstock allows 3 market-data sockets per user; a 4th is refused ("Maximum sessions limit
(3) reached"). Sessions of one user in one gateway share a ``SocketSlots``, so the gateway never
asks for a socket the broker would refuse."""

from __future__ import annotations

from typing import Final

#: Sockets per user Firstock accepts at once.
SOCKETS_PER_USER: Final = 3


class SocketSlots:
    __slots__ = ("_holders", "limit")

    def __init__(self, limit: int = SOCKETS_PER_USER) -> None:
        self.limit = limit
        self._holders: set[int] = set()

    def __repr__(self) -> str:
        return f"<SocketSlots {len(self._holders)}/{self.limit}>"

    def take(self, holder: object) -> bool:
        """Hold a slot for ``holder`` (again, if it already holds one); False if none is free."""
        key = id(holder)
        if key in self._holders:
            return True
        if len(self._holders) >= self.limit:
            return False
        self._holders.add(key)
        return True

    def release(self, holder: object) -> None:
        self._holders.discard(id(holder))

    @property
    def in_use(self) -> int:
        return len(self._holders)
