"""When a Firstock session token dies: once a day at a fixed local time (Noren brokers expire
sessions early in the morning IST; Firstock documents no time, so it is configurable).

Pure functions of an aware ``datetime``: the caller supplies "now".
"""

from __future__ import annotations

from datetime import datetime, time, timedelta
from zoneinfo import ZoneInfo

#: Log in again this long after the daily expiry. Every token dies at the expiry, whenever it
#: was made (a token made five minutes before it lives five minutes), so a fresh login before
#: it gains nothing; just after it, the token is good for the whole day. The minute leaves the
#: broker's own reset time to happen; a call in that minute that is refused the old token logs
#: in again at once (the ``session_invalid`` row).
RENEW_AFTER = timedelta(minutes=1)


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
    """Seconds until the daily re-login: ``RENEW_AFTER`` past the next expiry (> 0).

    Never "now": a renewal due before the expiry would make a token that dies at the same
    expiry and so call for another renewal at once, a login loop until the expiry passed."""
    due = next_expiry(now, at, zone) + RENEW_AFTER
    return (due - now).total_seconds()


def seconds_to_next_totp_window(now: datetime, step: int = 30) -> float:
    """Seconds until the next TOTP window starts (a code is valid for one ``step``)."""
    return step - (now.timestamp() % step)
