"""What a QST session needs to know."""

from __future__ import annotations

from dataclasses import dataclass

from brokergate.machines._config import SessionSettings, url_problems
from brokergate.machines._secret import Secret
from brokergate.machines.qst.codec import Coalescing


@dataclass(frozen=True, slots=True, kw_only=True)
class QstConfig(SessionSettings):
    """A QST login. ``url`` is the WebSocket endpoint QST hands out with the credentials.

    ``password_version`` is issued with the password. ``coalescing_interval`` and
    ``coalesce_last_trade`` are sent only when set: QST treats an absent preference differently
    from any explicit value.
    """

    url: str
    user_name: str
    password: Secret
    client_id: str
    password_version: int | None = 1
    coalescing_interval: Coalescing | None = None
    coalesce_last_trade: bool | None = None
    white_label_code: str | None = None
    local_ip: str | None = None

    @property
    def account(self) -> str:
        return self.user_name

    def problems(self) -> list[str]:
        """Everything wrong with this configuration; empty when it can be used."""
        problems = url_problems(self.url, secure="wss", plain="ws")
        if not self.user_name:
            problems.append("user_name is missing")
        if not isinstance(self.password, Secret):
            problems.append("password must be a Secret")
        elif not self.password:
            problems.append("password is missing")
        if not self.client_id:
            problems.append("client_id is missing")
        if self.password_version is not None and not 0 <= self.password_version < 2**32:
            problems.append("password_version must fit in a uint32")
        return problems + self.settings_problems()
