"""Content validity dates are the site's calendar days, whatever the hour in UTC."""

from datetime import UTC, date, datetime

from parcours.content.service import day_of


def test_a_moment_falls_on_the_sites_day_not_the_utc_one(settings_env):
    settings_env(timezone="Europe/Paris")
    # 23:30 UTC on 31 January is already 1 February in Paris: a deck valid from 1 February
    # may be shown then (this was refused, and the suite failed, between 23:00 and midnight UTC)
    assert day_of(datetime(2026, 1, 31, 23, 30, tzinfo=UTC)) == date(2026, 2, 1)
    assert day_of(datetime(2026, 7, 31, 21, 59, tzinfo=UTC)) == date(2026, 7, 31)  # UTC+2
    assert day_of(datetime(2026, 7, 31, 22, 0)) == date(2026, 8, 1)  # naive means UTC
    settings_env(timezone="Europe/London")
    assert day_of(datetime(2026, 1, 31, 23, 30, tzinfo=UTC)) == date(2026, 1, 31)
