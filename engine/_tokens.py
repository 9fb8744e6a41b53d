"""Where session tokens outlive a process: a restarted process reuses today's token (after a
cheap validity check) instead of logging in again.

A store keeps one token per (broker, user) with the time it was created. ``MemoryTokenStore``
lives as long as the process; ``FileTokenStore`` writes one file per user, created with mode
0600 in a directory created with mode 0700, replaced atomically, and never named in logs with
its content. A token file that someone else could read (or that is not the user's own, or is a
symlink) is not trusted: the session logs in again and replaces it with a private one.
"""

from __future__ import annotations

import json
import os
import re
import stat
import tempfile
from datetime import datetime
from pathlib import Path
from typing import Protocol

import trio

from brokergate.machines import Secret
from brokergate.machines._sansio import StoredToken

__all__ = ["FileTokenStore", "MemoryTokenStore", "StoredToken", "TokenStore"]


class TokenStore(Protocol):
    async def load(self, broker: str, user: str) -> StoredToken | None: ...

    async def save(self, broker: str, user: str, stored: StoredToken) -> None: ...

    async def delete(self, broker: str, user: str) -> None: ...


class MemoryTokenStore:
    """Tokens kept for the life of the process (the default)."""

    def __init__(self) -> None:
        self._tokens: dict[tuple[str, str], StoredToken] = {}

    def __repr__(self) -> str:
        return f"<MemoryTokenStore {len(self._tokens)} tokens>"

    async def load(self, broker: str, user: str) -> StoredToken | None:
        return self._tokens.get((broker, user))

    async def save(self, broker: str, user: str, stored: StoredToken) -> None:
        self._tokens[(broker, user)] = stored

    async def delete(self, broker: str, user: str) -> None:
        self._tokens.pop((broker, user), None)


_UNSAFE = re.compile(r"[^A-Za-z0-9_.-]")


def _private(st: os.stat_result) -> bool:
    """Only the owner may read or write the file, and the owner is this process's user."""
    if os.name != "posix":
        return True
    return stat.S_IMODE(st.st_mode) & 0o077 == 0 and st.st_uid == os.geteuid()


class FileTokenStore:
    """One JSON file per user in ``directory``: ``{"token": ..., "created": ISO 8601}``.

    A file that cannot be read or parsed, or that is not private (group or others may read or
    write it, another user owns it, it is a symlink), counts as no token: the session logs in
    again and overwrites it.
    """

    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)

    def __repr__(self) -> str:
        return f"<FileTokenStore {self.directory}>"

    def path(self, broker: str, user: str) -> Path:
        return self.directory / f"{_UNSAFE.sub('_', broker)}-{_UNSAFE.sub('_', user)}.json"

    async def load(self, broker: str, user: str) -> StoredToken | None:
        return await trio.to_thread.run_sync(self._load, self.path(broker, user))

    async def save(self, broker: str, user: str, stored: StoredToken) -> None:
        await trio.to_thread.run_sync(self._save, self.path(broker, user), stored)

    async def delete(self, broker: str, user: str) -> None:
        await trio.to_thread.run_sync(self._delete, self.path(broker, user))

    @staticmethod
    def _load(path: Path) -> StoredToken | None:
        try:
            # Not following a symlink, and not waiting on a FIFO planted where the file belongs.
            flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
            fd = os.open(path, flags)
            with open(fd, encoding="utf-8") as source:
                st = os.fstat(fd)
                if not stat.S_ISREG(st.st_mode) or not _private(st):
                    return None
                doc = json.loads(source.read())
            created = datetime.fromisoformat(doc["created"])
            token = doc["token"]
        except (OSError, ValueError, KeyError, TypeError, RecursionError):
            return None
        if not isinstance(token, str) or not token or created.tzinfo is None:
            return None
        return StoredToken(Secret(token), created)

    def _save(self, path: Path, stored: StoredToken) -> None:
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        doc = {"token": stored.token.reveal(), "created": stored.created.isoformat()}
        # A new file of our own (O_EXCL, mode 0600 whatever the umask), never one found there.
        fd, tmp = tempfile.mkstemp(dir=self.directory, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with open(fd, "w", encoding="utf-8") as out:
                json.dump(doc, out)
            os.replace(tmp, path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise

    @staticmethod
    def _delete(path: Path) -> None:
        path.unlink(missing_ok=True)
