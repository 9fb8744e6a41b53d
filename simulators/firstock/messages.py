"""Building the simulator's WebSocket messages: Noren's ``t``-keyed frames and the new socket's
JSON. Prices are made up but stable (derived from the instrument), so runs are repeatable."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Final

#: What Firstock says to a user's 4th socket (the Go SDK matches this text).
MAX_SESSIONS: Final = 3
MAX_SESSIONS_TEXT: Final = f"Maximum sessions limit ({MAX_SESSIONS}) reached"
#: Noren's rejection of an unknown token, and of one that has expired.
INVALID_SESSION_TEXT: Final = "Invalid Session Key"
EXPIRED_SESSION_TEXT: Final = "Session Expired :  Invalid Session Key"
AUTH_OK: Final = {"status": "success", "message": "Authentication successful"}
AUTH_FAILED: Final = {"status": "failed", "message": "unauthenticated"}


def dump(payload: Mapping[str, object]) -> str:
    return json.dumps(payload, separators=(",", ":"))


def parse(data: str | bytes) -> dict[str, object] | None:
    """The JSON object in a frame, or None for anything else."""
    try:
        value = json.loads(data)
    except (ValueError, RecursionError):
        return None
    return value if isinstance(value, dict) else None


def describe(data: str | bytes, limit: int = 60) -> str:
    """A short description of a client frame, for violation lines."""
    kind = "text" if isinstance(data, str) else "binary"
    shown = data if isinstance(data, str) else data[:limit].hex()
    if len(shown) > limit:
        shown = shown[:limit] + "..."
    return f"a {kind} frame {shown!r}"


def _cents(key: str) -> int:
    """A last price, in paise, that depends only on the instrument."""
    digest = hashlib.sha256(key.encode()).digest()
    return 10_000 + int.from_bytes(digest[:4], "big") % 2_000_000


def _rupees(cents: int) -> str:
    return f"{cents // 100}.{cents % 100:02d}"


# -- Noren ----------------------------------------------------------------------------------------


def connect_ok(uid: str) -> str:
    return dump({"t": "ck", "s": "OK", "uid": uid})


def connect_refused(text: str) -> str:
    return dump({"t": "ck", "s": "Not_Ok", "emsg": text})


def noren_keys(value: object) -> tuple[list[tuple[str, str]], list[str]]:
    """("NSE", "26000") pairs from ``"NSE|26000#NSE|26009"``, and the parts that were not."""
    if not isinstance(value, str) or not value:
        return [], [repr(value)]
    keys, bad = [], []
    for part in value.split("#"):
        exchange, sep, token = part.partition("|")
        if sep and exchange and token:
            keys.append((exchange, token))
        else:
            bad.append(part)
    return keys, bad


def touchline_ack(exchange: str, token: str) -> str:
    price = _cents(f"{exchange}|{token}")
    return dump({"t": "tk", "e": exchange, "tk": token, "ts": f"SIM-{token}", "ti": "0.05",
                 "ls": "1", "lp": _rupees(price), "pc": "0.00", "o": _rupees(price),
                 "h": _rupees(price), "l": _rupees(price), "c": _rupees(price)})


def touchline_feed(exchange: str, token: str) -> str:
    price = _cents(f"{exchange}|{token}") + 5
    return dump({"t": "tf", "e": exchange, "tk": token, "lp": _rupees(price), "pc": "0.01"})


def depth_ack(exchange: str, token: str) -> str:
    price = _cents(f"{exchange}|{token}")
    return dump({"t": "dk", "e": exchange, "tk": token, "lp": _rupees(price),
                 "bp1": _rupees(price - 5), "sp1": _rupees(price + 5), "bq1": "10", "sq1": "10"})


def depth_feed(exchange: str, token: str) -> str:
    price = _cents(f"{exchange}|{token}") + 5
    return dump({"t": "df", "e": exchange, "tk": token, "lp": _rupees(price)})


def noren_ack(kind: str, keys: object = None) -> str:
    """The bare acknowledgement of an unsubscribe or order-update request (uk, udk, ok, uok)."""
    payload: dict[str, object] = {"t": kind}
    if isinstance(keys, str):
        payload["k"] = keys
    return dump(payload)


# -- the new socket -------------------------------------------------------------------------------


def feed_keys(value: object) -> tuple[list[tuple[str, str]], list[str]]:
    """("NSE", "26000") pairs from ``"NSE:26000|BSE:1"``, and the parts that were not."""
    if not isinstance(value, str) or not value:
        return [], [repr(value)]
    keys, bad = [], []
    for part in value.split("|"):
        exchange, sep, token = part.partition(":")
        if sep and exchange and token:
            keys.append((exchange, token))
        else:
            bad.append(part)
    return keys, bad


def action_ack(action: str, tokens: object) -> str:
    return dump({"status": "success", "action": action, "tokens": tokens,
                 "message": f"{action} successful"})


def action_failed(message: str) -> str:
    return dump({"status": "failed", "message": message})


def feed_tick(exchange: str, token: str) -> str:
    """One market-data message, shaped like the SDKs' SubscribeFeedModel (prices in paise)."""
    price = _cents(f"{exchange}|{token}")
    return dump({"c_exch_seg": exchange, "c_symbol": token, "i_last_traded_price": price,
                 "i_open_price": price, "i_high_price": price, "i_low_price": price,
                 "i_closing_price": price, "i_last_trade_quantity": 1})


def greeks_tick(exchange: str, token: str) -> str:
    return dump({f"{exchange}:{token}": {"c_exch_seg": exchange, "c_symbol": token, "gamma": 0,
                                        "theta": 0, "delta": 0, "vega": 0, "rho": 0}})
