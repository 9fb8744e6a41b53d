"""A bare WebSocket client for simulator tests: the reads every protocol's raw client shares."""

from __future__ import annotations

import pytest
import trio_websocket


class RawSocket:
    def __init__(self, ws: trio_websocket.WebSocketConnection) -> None:
        self.ws = ws

    async def raw(self) -> bytes | str:
        return await self.ws.get_message()

    async def close_code(self) -> int:
        """Read until the server closes; the close code the client saw (1006: dropped)."""
        with pytest.raises(trio_websocket.ConnectionClosed) as closed:
            while True:
                await self.ws.get_message()
        assert closed.value.reason is not None
        return closed.value.reason.code
