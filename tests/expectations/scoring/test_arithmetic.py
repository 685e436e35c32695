"""The score arithmetic on plain data, without a warehouse: counts in, exact scores out."""

import datetime as dt
from decimal import Decimal
from fractions import Fraction

import pytest

from contracts.registry import Organisation, Registry
from expectations.scoring.arithmetic import (
    Day,
    OrgDay,
    ResultCount,
    count_results,
    failure_changes,
    rank,
    rank_change,
    round_score,
    same_day_previous_month,
    score_days,
)
from expectations.scoring.config import load_scoring_config

D = dt.date(2026, 3, 31)
CONFIG = load_scoring_config()  # 30/20/30/20, 2 decimals


def org(code, level="tertiary"):
    kind = "county" if level == "county" else "hospital"
    return Organisation(code, f"{code} 医院", kind, level, "411502", (), dt.date(2026, 1, 1), None)


def registry(*orgs):
    return Registry({o.org_code: o for o in orgs}, "test registry")


def count(ds, dimension, status, weight, *, n=1, severity="warning", receipt=False, version=1):
    """One count row as ClickHouse groups the rule results of T1 on D."""
    rule_type = "batch_received" if receipt else f"{dimension}_rule"
    return ResultCount(
        D, "T1", ds, f"{ds}.{rule_type}", rule_type, dimension, status, severity, weight, version, n
    )


def test_round_score_is_half_up_on_the_decimal_form():
    assert (round(2.675, 2), round(0.125, 2)) == (2.67, 0.12)  # binary value; half-even
    assert round_score(2.675, 2) == Decimal("2.68")
    assert round_score(0.125, 2) == Decimal("0.13")
    assert round_score(89.995, 2) == Decimal("90.00")
    assert round_score(89.994, 2) == Decimal("89.99")
    assert round_score(None, 2) is None
    assert same_day_previous_month(dt.date(2026, 3, 31)) == dt.date(2026, 2, 28)
    assert same_day_previous_month(dt.date(2028, 3, 30)) == dt.date(2028, 2, 29)
    assert same_day_previous_month(dt.date(2026, 1, 15)) == dt.date(2025, 12, 15)


def test_batch_and_org_day_scores_are_exact_fractions():
    ov, rx, lab = "outpatient_visit", "prescription", "lab_result"
    rows = [
        count(ov, "completeness", "passed", 5, severity="blocking", receipt=True),
        count(ov, "completeness", "failed", 2),
        count(ov, "completeness", "passed", 2),
        count(ov, "completeness", "not_applicable", 1),
        count(ov, "timeliness", "passed", 5),
        count(ov, "timeliness", "failed", 1),
        count(ov, "correctness", "failed", 3, severity="blocking"),
        count(ov, "correctness", "passed", 1),
        count(ov, "correctness", "error", 2),
        # prescription never arrived: batch_received failed
        count(rx, "completeness", "failed", 5, severity="blocking", receipt=True, version=0),
        count(rx, "timeliness", "failed", 5, version=0),
        count(rx, "correctness", "not_applicable", 3, version=0),
        count(lab, "completeness", "passed", 5, severity="blocking", receipt=True),
        count(lab, "timeliness", "passed", 5),
        count(lab, "logic", "passed", 2),
        count(lab, "logic", "failed", 2),
    ]
    batches = count_results(rows)
    got = {ds: b.dimensions() for (_, _, ds), b in batches.items()}
    assert got[ov] == {
        "completeness": Fraction(700, 9),
        "timeliness": Fraction(500, 6),
        "correctness": Fraction(25),
        "logic": None,
    }
    assert got[rx] == {"completeness": 0, "timeliness": 0, "correctness": None, "logic": None}
    assert got[lab] == {"completeness": 100, "timeliness": 100, "correctness": None, "logic": 50}
    b = batches[(D, "T1", ov)]
    assert (b.rules_failed, b.blocking_failed, b.rules_error, b.is_missing) == (3, 1, 1, False)
    assert (batches[(D, "T1", rx)].is_missing, batches[(D, "T1", rx)].version) == (True, 0)

    [day] = score_days({D: "r1"}, batches, registry(org("T1")), CONFIG).values()
    t1 = day.orgs["T1"]
    assert t1.dimensions == {
        "completeness": Fraction(1600, 27),
        "timeliness": Fraction(550, 9),
        "correctness": 25,
        "logic": 50,
    }
    assert t1.composite == Fraction(95, 2)  # 47.5
    assert (t1.rank, t1.peer_size, t1.count("rules_failed"), t1.count("blocking_failed")) == (
        1,
        1,
        6,
        2,
    )


def test_counts_in_any_order_give_the_same_scores():
    rows = [
        count("ds", "completeness", "passed", 0.1, n=3),
        count("ds", "completeness", "failed", 0.2),
        count("ds", "completeness", "passed", 0.7),
    ]
    one = count_results(rows)[(D, "T1", "ds")].dimensions()
    other = count_results(reversed(rows))[(D, "T1", "ds")].dimensions()
    assert one == other
    total = Fraction(0.1) * 3 + Fraction(0.7)
    assert one["completeness"] == 100 * total / (total + Fraction(0.2))


def test_unknown_dimension_or_organisation_is_an_error():
    with pytest.raises(ValueError, match="T1 ds 2026-03-31 has unknown dimension 'speed'"):
        count_results([count("ds", "speed", "passed", 1)])
    batches = count_results([count("ds", "completeness", "passed", 1)])
    with pytest.raises(ValueError, match=r"not in the registry test registry: \['T1'\]"):
        score_days({D: "r1"}, batches, registry(org("T2")), CONFIG)


def _ranked(composites, level="tertiary"):
    orgs = [OrgDay(org(code, level), {}, composite=c) for code, c in composites.items()]
    rank(orgs, CONFIG.ranking.decimals)
    return {o.org.org_code: (o.rank, o.peer_size) for o in orgs}


def test_ranks_share_equal_rounded_composites_half_up():
    got = _ranked(
        {
            "A": Fraction(95),
            "B": Fraction(90),
            "C": Fraction(17999, 200),  # 89.995: half up to 90.00, ties with B
            "D": Fraction(44997, 500),  # 89.994: 89.99
            "E": Fraction(80),
            "F": None,  # no composite: not ranked, not counted
        }
    )
    assert got == {"A": (1, 5), "B": (2, 5), "C": (2, 5), "D": (4, 5), "E": (5, 5), "F": (None, 0)}
    # peer groups rank apart
    mixed = [OrgDay(org("T"), {}, composite=Fraction(50)), OrgDay(org("S", "secondary"), {})]
    mixed[1].composite = Fraction(40)
    rank(mixed, 2)
    assert [(o.rank, o.peer_size) for o in mixed] == [(1, 1), (1, 1)]


def test_rank_change_and_failure_changes():
    then = Day("r0", {"T1": OrgDay(org("T1"), {}, rank=3), "T2": OrgDay(org("T2"), {})})
    now = OrgDay(org("T1"), {}, rank=1)
    assert rank_change(then, now) == 2  # moved up two places
    assert rank_change(None, now) is None
    assert rank_change(then, OrgDay(org("T2"), {}, rank=1)) is None  # not ranked then
    assert rank_change(then, OrgDay(org("T3"), {}, rank=1)) is None  # no results then
    before = {("ov", "x"), ("ov", "y")}
    assert failure_changes({("ov", "y"), ("ov", "z")}, before) == [
        ("ov", "x", "resolved"),
        ("ov", "y", "persisting"),
        ("ov", "z", "new"),
    ]
    assert failure_changes({("ov", "z")}, set()) == [("ov", "z", "new")]
