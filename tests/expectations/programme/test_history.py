"""The exemptions in force are read from the append-only event histories."""

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from expectations.programme.appeals import APPEAL_COLUMNS, WAIVER_COLUMNS
from expectations.programme.history import load_exemptions
from expectations.scoring.exemptions import Waiver

pytestmark = pytest.mark.integration

_TZ = ZoneInfo("Asia/Shanghai")
D = dt.date(2026, 3, 10)
T0 = dt.datetime(2026, 3, 12, 9, tzinfo=_TZ)


def appeal(ch, appeal_id, event, minutes, org="T1", rule="ds.a"):
    row = [
        appeal_id,
        event,
        org,
        D,
        "ds",
        rule,
        1,
        "r1",
        "someone",
        "why",
        T0 + dt.timedelta(minutes=minutes),
    ]
    ch.insert(
        "dq.appeal_event",
        [row],
        column_names=list(APPEAL_COLUMNS),
    )


def waiver(ch, waiver_id, event, minutes, *, end=None, rule="code_valid"):
    row = [
        waiver_id,
        event,
        rule,
        "",
        "tertiary",
        D,
        end,
        "officer",
        "why",
        T0 + dt.timedelta(minutes=minutes),
    ]
    ch.insert(
        "dq.waiver_event",
        [row],
        column_names=list(WAIVER_COLUMNS),
    )


def test_only_approved_appeals_and_added_waivers_are_in_force_as_of_a_time(rt):
    ch = rt.ch
    appeal(ch, "a1", "submitted", 0)
    appeal(ch, "a1", "approved", 10)
    appeal(ch, "a2", "submitted", 0, rule="ds.b")
    appeal(ch, "a2", "rejected", 10, rule="ds.b")
    appeal(ch, "a3", "submitted", 0, rule="ds.c")  # not decided yet
    waiver(ch, "w1", "added", 0)
    waiver(ch, "w1", "ended", 30, end=D + dt.timedelta(days=5))
    now = load_exemptions(ch)
    assert now.appeals == {(D, "T1", "ds", "ds.a", 1): "a1"}
    assert now.waivers == (
        Waiver("w1", "code_valid", D, D + dt.timedelta(days=5), None, "tertiary"),
    )
    before = load_exemptions(ch, as_of=T0 + dt.timedelta(minutes=5))
    assert before.appeals == {}
    assert before.waivers == (Waiver("w1", "code_valid", D, None, None, "tertiary"),)
