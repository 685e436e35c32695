"""Hostile uploads against the section 7 rules: what one organisation sends must neither
stop the day's validation nor make a rule fail for another organisation."""

from __future__ import annotations

import datetime as dt
import time

import pytest

from contracts.registry import load_registry
from expectations.engines.crossrules import run_cross
from expectations.publish.feedback import compose
from tests.expectations.engines.test_crossrules import (
    CROSS,
    HOSPITAL2,
    IDS,
    A,
    D,
    abstract,
    days,
    details,
    load,
    rule,
)
from tests.expectations.engines.test_crossrules_persons import outcome, person, stay
from tests.expectations.engines.test_sqlrules import HOSPITAL, at
from tests.expectations.publish.test_feedback import _csv_rows, _feedback, _parsed

pytestmark = pytest.mark.integration

FIELD_BYTES = 64 * 1024  # ReadLimits.max_field_bytes: the longest value ingest admits


@pytest.fixture
def ch(rt):
    return rt.ch


def test_a_diagnosis_list_as_long_as_ingest_admits_is_judged_quickly(ch):
    """32 768 one-letter codes in other_dx_codes (64 KiB with the separators), in a few rows:
    the rule finds the repeats in linear time, and the other hospital's row is judged as
    usual."""
    huge = ";".join(["A"] * (FIELD_BYTES // 2))
    load(ch, "inpatient_discharge", [abstract(f"Z{i}", other=huge) for i in range(4)])
    load(ch, "inpatient_discharge", [abstract("Y1", other="E11.9;E11.9")], org=HOSPITAL2)
    started = time.monotonic()
    got = details(ch, "diagnosis_not_repeated")
    assert time.monotonic() - started < 30
    checked, failing = got[("inpatient_discharge", HOSPITAL)]
    assert checked == 4 and sorted(failing) == [f"Z{i}" for i in range(4)]
    # the detail names the first 20 repeats and counts the rest
    more = FIELD_BYTES // 2 - 1 - 20
    assert failing["Z0"] == "; ".join(["other_dx_codes A"] * 20) + f"; and {more} more"
    assert got[("inpatient_discharge", HOSPITAL2)] == (1, {"Y1": "other_dx_codes E11.9"})
    # every other cross rule reading the diagnoses copes with the list too
    started = time.monotonic()
    run_cross(ch, D, CROSS, load_registry())
    assert time.monotonic() - started < 60


def test_extreme_times_and_blanks_in_stays_stop_no_rule(ch):
    """A stay from 1970 to 2106 (the ends of DateTime), blank times and a birth date in the
    future, inserted as they are (past any ingest check): every cross rule still runs, and
    the other hospital is told only "another organisation"."""
    load(ch, "patient", [person("P1", A, "甲", birth=dt.date(2105, 12, 31))], day=days(-9))
    load(ch, "patient", [person("Q1", A, "甲")], org=HOSPITAL2, day=days(-9))
    ends = (dt.datetime(1970, 1, 2), dt.datetime(2106, 1, 1))
    load(
        ch,
        "inpatient_discharge",
        [
            {**stay("Y1", "Q1", *ends), "principal_dx_code": "P07.3", "discharge_method": "5"},
            {**stay("Y2", "Q1", None, None), "other_dx_codes": ";;;"},
        ],
        org=HOSPITAL2,
    )
    load(
        ch,
        "inpatient_discharge",
        [{**stay("Z1", "P1", at(days(-4)), at(D)), "principal_dx_code": "O80"}],
    )
    for r in run_cross(ch, D, CROSS, load_registry()):  # no rule raises
        assert not set(r["keys"]) & set(IDS)
    got = outcome(ch, "stay_overlap_other_org")
    assert got[("inpatient_discharge", HOSPITAL)] == (
        1,
        1,
        {"Z1": "overlaps a stay at another organisation by more than 24 h"},
    )
    assert got[("inpatient_discharge", HOSPITAL2)] == (
        1,
        1,
        {"Y1": "overlaps a stay at another organisation by more than 24 h"},
    )


def test_a_detail_quoting_an_identifier_is_masked_in_the_e_mail(ch):
    """A hospital that uses identity numbers as admission ids: the overlap rule's detail
    names its other stay by that key; the e-mail (both parts) and the CSV mask it as they
    mask the failing key itself. A doctor id that is a mobile number likewise."""
    ident = "110101199003074519"  # a valid resident identity number
    load(ch, "patient", [person("P1", A, "甲")], day=days(-9))
    load(ch, "inpatient_discharge", [stay(ident, "P1", at(days(-5)), at(days(-1)))], day=days(-1))
    load(ch, "inpatient_discharge", [stay("Z2", "P1", at(days(-3)), at(D))])
    (r,) = [r for r in run_cross(ch, D, [rule("stay_overlap_same_org")]) if r["failed"]]
    assert r["sample_details"] == [f"overlaps stay {ident} by more than 24 h"]
    failure = {
        "dataset": r["dataset"],
        "rule_id": r["rule_id"],
        "dimension": "logic",
        "severity": "warning",
        "failed": 1,
        "checked": 1,
        "failed_pct": 100.0,
        "change": "new",
        "sample_keys": r["sample_keys"],
        "sample_details": [*r["sample_details"], "doctor_id 13812345678: 61 rows"],
    }
    failure["sample_keys"] = [*r["sample_keys"], "F1"]
    issue = {
        "dataset": r["dataset"],
        "rule_id": r["rule_id"],
        "dimension": "logic",
        "severity": "warning",
        "record_key": r["keys"][0],
        "detail": r["details"][0],
    }
    fb = _feedback(failures=[failure], issues=[issue], issues_total=1)
    msg = _parsed(compose(fb, "qc@wjw.example.cn"))
    for kind in ("html", "plain"):
        body = msg.get_body((kind,)).get_content()
        assert ident not in body and "13812345678" not in body
        assert "overlaps stay 110*************19" in body and "138****5678" in body
    text = _csv_rows(msg)[0]
    assert ident not in text and "110*************19" in text


def test_twenty_thousand_overlapping_stays_of_one_person_are_judged(ch):
    """A hostile hospital sends 20,000 stays of one person on one day, all over the same
    days, and another hospital holds 20,000 earlier stays of that person just as long: a
    join of every pair would be 400 million pairs per rule (minutes); the sorted pass judges
    them all (its time is in `make bench`: bench/overlap.py)."""
    n = 20_000
    load(ch, "patient", [person("P1", A, "甲")], day=days(-9))
    load(ch, "patient", [person("Q1", A, "甲")], org=HOSPITAL2, day=days(-9))
    earlier = [stay(f"Y{i:05d}", "Q1", at(days(-6)), at(days(-2))) for i in range(n)]
    load(ch, "inpatient_discharge", earlier, org=HOSPITAL2, day=days(-1))
    load(
        ch,
        "inpatient_discharge",
        [stay(f"Z{i:05d}", "P1", at(days(-4)), at(D)) for i in range(n)],
    )
    same = outcome(ch, "stay_overlap_same_org")[("inpatient_discharge", HOSPITAL)]
    assert same[:2] == (n, n)
    # every stay names one of its own hospital's other stays, never itself
    # (all discharged together: the largest other key)
    assert same[2]["Z19999"] == "overlaps stay Z19998 by more than 24 h"
    assert set(same[2].values()) == {
        "overlaps stay Z19999 by more than 24 h",
        "overlaps stay Z19998 by more than 24 h",
    }
    other = outcome(ch, "stay_overlap_other_org")
    assert other[("inpatient_discharge", HOSPITAL)][:2] == (n, n)
    # each earlier stay of the other hospital is told once, under its own key
    told = other[("inpatient_discharge", HOSPITAL2)]
    assert told[:2] == (n, n) and sorted(told[2]) == [f"Y{i:05d}" for i in range(n)]
