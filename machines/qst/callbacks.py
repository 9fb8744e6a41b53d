"""The callbacks QST's table names (``table.py``): what a login answer leaves on the model."""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from transitions import EventData

from brokergate.machines._sansio import Fault

if TYPE_CHECKING:
    from brokergate.machines.qst.model import QstSession


def qst(ev: EventData) -> QstSession:
    return cast("QstSession", ev.model)


def take_grant(ev: EventData) -> None:
    qst(ev).granted = ev.kwargs.get("granted") or {}


def take_provisioning(ev: EventData) -> None:
    model = qst(ev)
    model.provisioning = ev.kwargs.get("messages", ())
    titles = [m.title or m.id or "untitled" for m in model.provisioning]
    model.conclude(
        "pending_agreements",
        Fault.ACCOUNT,
        "pending agreements must be accepted through QST support: " + ", ".join(titles),
    )
