"""When a Firstock session token dies: once a day at a fixed local time (Noren brokers expire
sessions early in the morning IST; Firstock documents no time, so it is configurable).

Pure functions of an aware ``datetime``: the caller supplies "now".
"""

from __future__ import annotations

from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

#: Renew this long before the expiry, so the new token is in place when the old one dies.
RENEW_AHEAD = timedelta(minutes=5)


def last_expiry(now: datetime, at: time, zone: str) -> datetime:
    """The most recent daily expiry at or before ``now`` (aware, in ``zone``)."""
    local = now.astimezone(ZoneInfo(zone))
    today = local.replace(hour=at.hour, minute=at.minute, second=at.second,
                          microsecond=at.microsecond)
    return today if today <= local else today - timedelta(days=1)


def next_expiry(now: datetime, at: time, zone: str) -> datetime:
    return last_expiry(now, at, zone) + timedelta(days=1)


def token_is_current(created: datetime, now: datetime, at: time, zone: str) -> bool:
    """A token created after the last expiry (and not in the future) may still be alive."""
    return last_expiry(now, at, zone) < created <= now


def seconds_until_renewal(now: datetime, at: time, zone: str) -> float:
    """Seconds until the proactive re-login (``RENEW_AHEAD`` before the next expiry), >= 0."""
    due = next_expiry(now, at, zone) - RENEW_AHEAD
    return max(0.0, (due - now).total_seconds())


def seconds_to_next_totp_window(now: datetime, step: int = 30) -> float:
    """Seconds until the next TOTP window starts (a code is valid for one ``step``)."""
    return step - (now.timestamp() % step)
