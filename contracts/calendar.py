"""Upload deadlines (upload standard, section 3) from contracts/timeliness.yaml.

Hospitals: D + N days at HH:MM. Counties: HH:MM of the N-th working day after D, with
Chinese public holidays and adjusted working days from chinese-calendar. That package only
knows the years its release covers; past them the calendar falls back to Monday-Friday and
says so, so a result is never silently computed on a wrong calendar.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import chinese_calendar

from contracts.loader import contracts
from contracts.timezone import TZ


@dataclass(frozen=True)
class Deadline:
    at: dt.datetime  # aware, in the standard's time zone
    calendar_note: str | None  # set when the holiday calendar had no data for a year


def is_workday(day: dt.date) -> tuple[bool, str | None]:
    try:
        return chinese_calendar.is_workday(day), None
    except NotImplementedError:
        note = f"chinese-calendar has no holiday data for {day.year}; Monday-Friday assumed"
        return day.weekday() < 5, note


def deadline(kind: str, business_date: dt.date) -> Deadline:
    config = contracts().timeliness
    rule = config.deadlines[kind]  # type: ignore[index]
    hour, minute = (int(x) for x in rule.at.split(":"))
    note = None
    if rule.calendar == "natural":
        day = business_date + dt.timedelta(days=rule.days_after)
    else:
        day, found = business_date, 0
        while found < rule.days_after:
            day += dt.timedelta(days=1)
            working, day_note = is_workday(day)
            note = note or day_note
            found += working
    return Deadline(dt.datetime.combine(day, dt.time(hour, minute), TZ), note)
