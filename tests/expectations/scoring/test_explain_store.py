"""dq.score_explanation: written by the scoring, read back through its current view, stored
points summing exactly to the stored lost total."""

import datetime as dt
from decimal import Decimal

import pytest

from expectations.rules.results import write_results
from expectations.scoring.exemptions import Exemptions, Waiver
from expectations.scoring.read import read_explanation
from expectations.scoring.store import score_date
from tests.expectations.scoring.test_scoring import (
    D,
    _hand_made_day,
    complete,
    completeness_only,
    org,
    registry,
)

pytestmark = pytest.mark.integration

OV, RX, LAB = "outpatient_visit", "prescription", "lab_result"


def _points(rows):
    return {(r["dataset"], r["rule_id"]): r["points"] for r in rows}


def test_the_scoring_stores_its_explanation(rt):
    _hand_made_day(rt.ch)
    [row] = score_date(rt.ch, registry(org("T1")), D)
    rows = read_explanation(rt.ch, "T1", D)
    assert row["composite"] == 47.5
    # exact points 45/2, 50/3, 10, 20/9, 10/9; the one unit short goes to 50/3 (remainder 2/3)
    assert [(r["rule_id"], r["points"]) for r in rows] == [
        (f"{OV}.d.icd10_valid", Decimal("22.5")),
        (f"{RX}.batch_received", Decimal("16.666666666667")),
        (f"{LAB}.y.unique_key", Decimal("10")),
        (f"{OV}.a.required", Decimal("2.222222222222")),
        (f"{OV}.e.record_not_late", Decimal("1.111111111111")),
    ]
    assert {r["lost_total"] for r in rows} == {Decimal("52.5")} == {sum(r["points"] for r in rows)}
    receipt = rows[1]
    assert (receipt["cause"], receipt["status"], receipt["level"]) == (
        "batch_not_received",
        "failed",
        "org_day",
    )
    assert rows[0]["description_zh"] and rows[0]["description_en"]
    assert (rows[0]["run_id"], rows[0]["dimension"], rows[0]["failed_rows"]) == (
        "r1",
        "correctness",
        5,
    )
    batches = read_explanation(rt.ch, "T1", D, level="batch")
    assert [r["dataset"] for r in batches] == [LAB, OV, OV, OV, RX]
    assert _points(batches) == {
        (LAB, f"{LAB}.y.unique_key"): Decimal("14.285714285714"),  # 100/7
        (OV, f"{OV}.d.icd10_valid"): Decimal("28.125"),
        (OV, f"{OV}.a.required"): Decimal("8.333333333333"),
        (OV, f"{OV}.e.record_not_late"): Decimal("4.166666666667"),
        (RX, f"{RX}.batch_received"): Decimal("100"),
    }
    for ds in (LAB, OV, RX):
        mine = [r for r in batches if r["dataset"] == ds]
        assert sum(r["points"] for r in mine) == mine[0]["lost_total"]
    assert {r["lost_total"] for r in batches if r["dataset"] == OV} == {Decimal("40.625")}
    assert read_explanation(rt.ch, "T2", D) == [] == read_explanation(rt.ch, "T1", D, "x")


def test_rescoring_replaces_the_explanation_and_a_waiver_lists_its_result(rt):
    _hand_made_day(rt.ch)
    write_results(rt.ch, completeness_only("T2", D, 1, 1))
    orgs = registry(org("T1"), org("T2"))
    score_date(rt.ch, orgs, D)
    waiver = Waiver("w1", f"{LAB}.y.unique_key", dt.date(2026, 3, 1), org_code="T1")
    [t1, _] = score_date(rt.ch, orgs, D, exemptions=Exemptions(waivers=(waiver,)))
    rows = read_explanation(rt.ch, "T1", D)
    lab = next(r for r in rows if r["dataset"] == LAB)
    assert (lab["status"], lab["cause"], lab["points"]) == ("waived", "waived", 0)
    assert rows[-1] is lab  # 0 points: last
    lost = {r["lost_total"] for r in rows}
    assert lost == {sum(r["points"] for r in rows)} == {100 - Decimal(repr(t1["composite"]))}
    stored = rt.ch.query(
        "SELECT count() FROM dq.score_explanation WHERE level = 'org_day' AND org_code = 'T1'"
    ).result_rows[0][0]
    assert stored == 2 * 5 and len(rows) == 5  # both scorings kept, the latest shown
    assert _points(read_explanation(rt.ch, "T2", D)) == {(OV, f"{OV}.b.required"): Decimal(50)}
    # a newer validation run: until it is scored, no explanation shows
    write_results(rt.ch, completeness_only("T2", D, 1, 0, run="r2"))
    complete(rt.ch, D, "r2", minute=10)
    assert read_explanation(rt.ch, "T2", D) == []
    score_date(rt.ch, orgs, D)
    [line] = read_explanation(rt.ch, "T2", D)  # a failure of weight 0: listed, nothing lost
    assert (line["run_id"], line["points"], line["lost_total"]) == ("r2", 0, 0)
