"""Server frames for QST machine tests, built with the real schema."""

from __future__ import annotations

from brokergate.qst import pb


def login_ok(interval: int | None = pb._250_MS, last_trade: bool | None = False,
             request_id: int | None = 1) -> bytes:
    resp = pb.Response()
    if request_id is not None:
        resp.request_id = request_id
    resp.login.SetInParent()
    if interval is not None:
        resp.login.coalescing_interval = interval  # type: ignore[assignment]
    if last_trade is not None:
        resp.login.coalesce_last_trade = last_trade
    return resp.SerializeToString()


def error(code: int | None, text: str | None, request_id: int | None = 1) -> bytes:
    resp = pb.Response()
    if request_id is not None:
        resp.request_id = request_id
    resp.error.SetInParent()
    if code is not None:
        resp.error.code = code
    if text is not None:
        resp.error.message = text
    return resp.SerializeToString()


def provisioning(*titles: str) -> bytes:
    resp = pb.Response(request_id=1)
    resp.provisioning_messages.SetInParent()
    for i, title in enumerate(titles):
        resp.provisioning_messages.messages.add(id=str(i), title=title, text="accept",
                                                url="https://example.invalid/terms")
    return resp.SerializeToString()


def logout_ok() -> bytes:
    resp = pb.Response(request_id=2)
    resp.logout.SetInParent()
    return resp.SerializeToString()


def translated(request_id: int, *symbols: str) -> bytes:
    resp = pb.Response(request_id=request_id)
    resp.translate_instrument_symbol.SetInParent()
    for i, s in enumerate(symbols):
        resp.translate_instrument_symbol.records.add(symbol=s, instrument_id=100 + i)
    return resp.SerializeToString()
