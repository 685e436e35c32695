import datetime as dt

import pytest

from contracts.calendar import deadline
from expectations.rules.results import status_of


def _local(deadline_):
    return deadline_.at.strftime("%Y-%m-%d %H:%M %Z")


@pytest.mark.parametrize(
    ("kind", "day", "expected"),
    [
        ("hospital", dt.date(2026, 11, 13), "2026-11-14 08:00 CST"),  # natural days, even Saturday
        ("county", dt.date(2026, 11, 13), "2026-11-16 08:00 CST"),  # Friday -> Monday
        ("county", dt.date(2026, 9, 24), "2026-09-28 08:00 CST"),  # Mid-Autumn Friday is a holiday
        ("county", dt.date(2026, 9, 30), "2026-10-08 08:00 CST"),  # National Day week
        (
            "county",
            dt.date(2026, 10, 9),
            "2026-10-10 08:00 CST",
        ),  # Saturday 10 Oct is a working day
    ],
)
def test_deadlines_follow_the_configured_calendar(kind, day, expected):
    result = deadline(kind, day)
    assert _local(result) == expected
    assert result.calendar_note is None


def test_years_without_holiday_data_fall_back_and_say_so():
    result = deadline("county", dt.date(2027, 3, 5))  # a Friday
    assert _local(result) == "2027-03-08 08:00 CST"
    assert "no holiday data for 2027" in result.calendar_note


@pytest.mark.parametrize(
    ("checked", "failed", "threshold", "expected"),
    [
        (0, 0, 0, ("not_applicable", 0.0)),
        (100, 0, 0, ("passed", 0.0)),
        (100, 1, 0, ("failed", 1.0)),
        (100, 1, 1, ("passed", 1.0)),  # at the threshold is tolerated
        (200, 3, 1, ("failed", 1.5)),
    ],
)
def test_status_against_threshold(checked, failed, threshold, expected):
    assert status_of(checked, failed, threshold) == expected
