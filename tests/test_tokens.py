"""Token stores: what a restarted process finds, and that nobody else can read it."""

from __future__ import annotations

import stat
from datetime import UTC, datetime
from pathlib import Path

from brokergate.engine._tokens import FileTokenStore, MemoryTokenStore, StoredToken
from brokergate.machines import Secret

CREATED = datetime(2026, 11, 21, 3, 0, tzinfo=UTC)


async def test_memory_store_round_trip() -> None:
    store = MemoryTokenStore()
    assert await store.load("firstock", "AA1") is None
    await store.save("firstock", "AA1", StoredToken(Secret("tok-1"), CREATED))
    found = await store.load("firstock", "AA1")
    assert found is not None and found.token.reveal() == "tok-1" and found.created == CREATED
    await store.delete("firstock", "AA1")
    assert await store.load("firstock", "AA1") is None
    assert "tok-1" not in repr(store)


async def test_file_store_survives_a_restart_and_is_private(tmp_path: Path) -> None:
    directory = tmp_path / "tokens"
    await FileTokenStore(directory).save("firstock", "AA1/../x", StoredToken(Secret("tok"),
                                                                              CREATED))
    store = FileTokenStore(directory)  # a new process
    found = await store.load("firstock", "AA1/../x")
    assert found is not None and found.token.reveal() == "tok" and found.created == CREATED
    [path] = list(directory.iterdir())
    assert path.name == "firstock-AA1_.._x.json"  # one file per user, no path tricks
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    await store.delete("firstock", "AA1/../x")
    assert list(directory.iterdir()) == []


async def test_an_unreadable_file_is_no_token(tmp_path: Path) -> None:
    store = FileTokenStore(tmp_path)
    store.path("firstock", "AA1").write_text("{not json")
    assert await store.load("firstock", "AA1") is None
    store.path("firstock", "AA1").write_text('{"token": "t", "created": "2026-11-21T03:00:00"}')
    assert await store.load("firstock", "AA1") is None  # a naive time cannot be trusted
