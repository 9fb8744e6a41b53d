"""The daily token expiry and TOTP windows, as pure functions of "now"."""

from __future__ import annotations

from datetime import UTC, datetime, time

import pytest

from brokergate.machines.firstock import expiry

IST = "Asia/Kolkata"
FIVE = time(5, 0)


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def test_last_and_next_expiry_in_ist() -> None:
    # 2026-11-21 03:00 UTC is 08:30 IST: today's 05:00 IST (23:30 UTC the day before) has passed.
    now = utc(2026, 11, 21, 3, 0)
    assert expiry.last_expiry(now, FIVE, IST) == utc(2026, 11, 20, 23, 30)
    assert expiry.next_expiry(now, FIVE, IST) == utc(2026, 11, 21, 23, 30)
    # 04:59 IST: the last expiry was yesterday's.
    early = utc(2026, 11, 20, 23, 29)
    assert expiry.last_expiry(early, FIVE, IST) == utc(2026, 11, 19, 23, 30)


@pytest.mark.parametrize(("created", "current"), [
    (utc(2026, 11, 21, 0, 0), True),     # after today's expiry
    (utc(2026, 11, 20, 23, 0), False),   # before it: yesterday's token
    (utc(2026, 11, 21, 4, 0), False),    # in the future: a clock went wrong, do not trust it
])
def test_a_stored_token_is_current_only_if_made_since_the_last_expiry(
    created: datetime, current: bool
) -> None:
    assert expiry.token_is_current(created, utc(2026, 11, 21, 3, 0), FIVE, IST) is current


def test_renewal_comes_a_minute_after_the_expiry() -> None:
    now = utc(2026, 11, 21, 23, 0)  # 04:30 IST: the expiry is half an hour away
    assert expiry.seconds_until_renewal(now, FIVE, IST) == 31 * 60
    # Just before the expiry a renewal is not "now": a token made then dies at the expiry too.
    assert expiry.seconds_until_renewal(utc(2026, 11, 21, 23, 29), FIVE, IST) == 2 * 60


def test_a_token_renewed_at_its_renewal_is_not_renewed_again_until_the_next_day() -> None:
    """The renewal's own login schedules the next renewal a day later, not at once (a renewal
    ahead of the expiry would have made a token that dies at it, and renewed again at once)."""
    due = utc(2026, 11, 21, 23, 31)  # 05:01 IST, when the renewal fires
    assert expiry.token_is_current(due, due, FIVE, IST)
    assert expiry.seconds_until_renewal(due, FIVE, IST) == 24 * 3600


def test_seconds_to_the_next_totp_window() -> None:
    assert expiry.seconds_to_next_totp_window(utc(2026, 11, 21, 3, 0, 10)) == 20.0
    assert expiry.seconds_to_next_totp_window(utc(2026, 11, 21, 3, 0, 30)) == 30.0
