"""Explanations on hand-made result counts: the points each failed rule cost, checked by hand
and, over many random batches, against the scoring's own composites."""

import datetime as dt
import random
from decimal import Decimal
from fractions import Fraction as F

import pytest

from contracts.registry import Organisation, Registry
from expectations.scoring.arithmetic import ResultCount, composite, count_results, score_days
from expectations.scoring.config import DIMENSIONS, DimensionWeights, load_scoring_config
from expectations.scoring.explain import (
    NOT_RECEIVED,
    WAIVED,
    Explanation,
    Line,
    apportion,
    explain,
    round_half_up,
)

D = dt.date(2026, 3, 31)
CONFIG = load_scoring_config()  # 30/20/30/20


def count(ds, rule, dimension, status, weight, *, org="T1", n=1, failed=0, day=D):
    """The results of one rule of a batch; the rule type is the rule id's last part."""
    return ResultCount(
        day, org, ds, f"{ds}.{rule}", rule.rsplit(".", 1)[-1], dimension, status, "warning",
        weight, 1, n, failed, 10,
    )  # fmt: skip


def points(explanation: Explanation) -> dict[str, F]:
    return {line.rule_id: line.points for line in explanation.lines}


OV, RX, LAB = "outpatient_visit", "prescription", "lab_result"


def _day():
    return [
        count(OV, "batch_received", "completeness", "passed", 5),
        count(OV, "a.required", "completeness", "failed", 2, failed=41),
        count(OV, "b.required", "completeness", "passed", 2),
        count(OV, "batch_on_time", "timeliness", "passed", 5),
        count(OV, "e.record_not_late", "timeliness", "failed", 1, failed=3),
        count(OV, "d.icd10_valid", "correctness", "failed", 3, failed=7),
        count(OV, "f.max", "correctness", "passed", 1),
        count(OV, "g.code_in_system", "correctness", "error", 2),
        count(OV, "h.required", "completeness", "not_applicable", 4),
        # prescription never arrived: its batch_received failed
        count(RX, "batch_received", "completeness", "failed", 5, failed=1),
        count(RX, "batch_on_time", "timeliness", "failed", 5, failed=1),
        count(RX, "file_readable", "correctness", "not_applicable", 3),
        count(LAB, "batch_received", "completeness", "passed", 5),
        count(LAB, "batch_on_time", "timeliness", "passed", 5),
        count(LAB, "x.unique_key", "logic", "passed", 2),
        count(LAB, "y.unique_key", "logic", "failed", 2, failed=5),
        count(LAB, "z.unique_key", "logic", WAIVED, 3, failed=2),
    ]


def test_organisation_day_and_batches_by_hand():
    e = explain(_day(), CONFIG)[(D, "T1")]
    # completeness: mean(100 x 7/9, 0, 100); timeliness: mean(100 x 5/6, 0, 100); correctness
    # 25 (the error counts nowhere); logic 50: composite 47.5
    assert e.org_day.composite == F(95, 2)
    assert points(e.org_day) == {
        f"{OV}.d.icd10_valid": F(45, 2),  # 75 lost x 30/100
        f"{RX}.batch_received": F(50, 3),  # 100/3 x 30/100 + 100/3 x 20/100
        f"{LAB}.y.unique_key": 10,  # 50 x 20/100
        f"{OV}.a.required": F(20, 9),  # 100 x 2/9 x 1/3 x 30/100
        f"{OV}.e.record_not_late": F(10, 9),  # 100 x 1/6 x 1/3 x 20/100
        f"{LAB}.z.unique_key": 0,  # waived
    }
    assert [line.rule_id for line in e.org_day.lines][:3] == [
        f"{OV}.d.icd10_valid",
        f"{RX}.batch_received",
        f"{LAB}.y.unique_key",
    ]
    assert sum(points(e.org_day).values()) == 100 - e.org_day.composite == e.org_day.lost
    receipt = next(line for line in e.org_day.lines if line.dataset == RX)
    assert (receipt.cause, receipt.status, receipt.failed_rows) == (NOT_RECEIVED, "failed", 1)
    waived = next(line for line in e.org_day.lines if line.status == WAIVED)
    assert (waived.cause, waived.failed_rows, waived.dimension) == (WAIVED, 2, "logic")
    # the error, not_applicable and the missing batch's other failures are not lines
    listed = {line.rule_id for line in e.org_day.lines}
    assert not listed & {f"{OV}.g.code_in_system", f"{OV}.h.required", f"{RX}.batch_on_time"}

    # per batch: the dimensions the batch has a score in share its composite
    assert points(e.batches[OV]) == {
        f"{OV}.d.icd10_valid": F(225, 8),
        f"{OV}.a.required": F(25, 3),
        f"{OV}.e.record_not_late": F(25, 6),
    }
    assert e.batches[OV].composite == 100 - F(325, 8)
    assert points(e.batches[RX]) == {f"{RX}.batch_received": 100}
    assert e.batches[RX].composite == 0
    assert points(e.batches[LAB]) == {f"{LAB}.y.unique_key": F(100, 7), f"{LAB}.z.unique_key": 0}
    assert e.batches[LAB].composite == F(600, 7)


def test_a_weight_override_changes_the_points():
    rows = [
        count(OV, "a.required", "completeness", "passed", 3),
        count(OV, "b.required", "completeness", "failed", 1),
    ]
    assert points(explain(rows, CONFIG)[(D, "T1")].org_day) == {f"{OV}.b.required": 25}
    # an override of b.required's weight (results carry it) to 3
    rows[1] = rows[1]._replace(weight=3.0)
    assert points(explain(rows, CONFIG)[(D, "T1")].org_day) == {f"{OV}.b.required": 50}
    # a result counted twice (two results of the rule) weighs twice
    rows[1] = rows[1]._replace(weight=1.0, results=2)
    assert points(explain(rows, CONFIG)[(D, "T1")].org_day) == {f"{OV}.b.required": 40}


def _config(**weights):
    zero = dict.fromkeys(DIMENSIONS, 0) | weights
    return CONFIG.model_copy(update={"dimension_weights": DimensionWeights(**zero)})


def test_zero_weights_cost_nothing_and_are_listed():
    rows = [
        count(OV, "a.required", "completeness", "passed", 1),
        count(OV, "b.required", "completeness", "failed", 0, failed=4),  # weight 0
        count(OV, "c.max", "correctness", "failed", 0, failed=2),  # correctness has no score
        count(OV, "d.unique_key", "logic", "failed", 1),  # logic weighs 0 in the composite
    ]
    e = explain(rows, _config(completeness=1, logic=0))[(D, "T1")].org_day
    assert e.composite == 100
    assert points(e) == {f"{OV}.b.required": 0, f"{OV}.c.max": 0, f"{OV}.d.unique_key": 0}
    assert apportion(e) == ([Decimal(0)] * 3, Decimal(0))
    # no dimension with a score of weight > 0: no composite, nothing to explain
    e = explain(rows, _config(correctness=1))[(D, "T1")].org_day
    assert (e.composite, e.lines, apportion(e)) == (None, (), ([], None))


def test_a_dimension_without_a_score_leaves_the_others_the_whole_loss():
    rows = [
        count(OV, "a.required", "completeness", "failed", 1),
        count(OV, "b.max", "correctness", "not_applicable", 1),
    ]
    e = explain(rows, CONFIG)[(D, "T1")]
    assert points(e.org_day) == {f"{OV}.a.required": 100}  # completeness is all of it
    assert e.org_day.composite == 0 == e.batches[OV].composite


def test_apportion_sums_exactly_to_the_rounded_loss():
    thirds = Explanation(
        F(200, 3),  # lost 100/3 = 33.333333333333 + 1/3 unit
        tuple(Line(OV, f"r{i}", "t", "logic", "failed", "failed", 0, F(100, 9)) for i in range(3)),
    )
    stored, lost = apportion(thirds)
    assert lost == Decimal("33.333333333333") == 100 - round_half_up(F(200, 3))
    assert stored == [Decimal("11.111111111111")] * 3 and sum(stored) == lost
    # 2/3 of 100 lost: 66.666666666667 needs one unit more, given to the largest remainder
    two = Explanation(
        F(100, 3),
        (
            Line(OV, "a", "t", "logic", "failed", "failed", 0, F(200, 9)),
            Line(OV, "b", "t", "logic", "failed", "failed", 0, F(400, 9)),
        ),
    )
    stored, lost = apportion(two)
    assert lost == Decimal("66.666666666667")
    assert stored == [Decimal("22.222222222222"), Decimal("44.444444444445")]
    assert round_half_up(F(5, 10**13)) == Decimal("1E-12")
    assert round_half_up(F(4999, 10**16)) == 0


def _random_rows(rng: random.Random, orgs: list[str]) -> list[ResultCount]:
    rows = []
    statuses = ["passed"] * 4 + ["failed"] * 3 + ["error", "not_applicable", WAIVED]
    weights = [0, 0.1, 0.5, 1, 1.5, 2, 3, 5, 7.25]
    for code in orgs:
        for ds in rng.sample(["a", "b", "c", "d", "cross"], rng.randint(1, 5)):
            received = rng.choice(["passed"] * 4 + ["failed", WAIVED])
            rows.append(count(ds, "batch_received", "completeness", received, 5, org=code))
            for i in range(rng.randint(0, 12)):
                rows.append(
                    count(
                        ds,
                        f"r{i}.rule",
                        rng.choice(DIMENSIONS),
                        rng.choice(statuses),
                        rng.choice(weights),
                        org=code,
                        n=rng.choice([1, 1, 1, 2, 3]),
                        failed=rng.randint(0, 50),
                    )
                )
    return rows


@pytest.mark.parametrize("seed", range(40))
def test_lines_sum_to_the_lost_points_of_every_score(seed):
    rng = random.Random(seed)
    orgs = [f"H{i}" for i in range(6)]
    config = _config(**{d: rng.choice([0, 1, 2, 30, 0.5]) for d in DIMENSIONS})
    if not any(getattr(config.dimension_weights, d) for d in DIMENSIONS):
        config = CONFIG
    rows = _random_rows(rng, orgs)
    batches = count_results(rows)
    registry = Registry(
        {c: Organisation(c, c, "hospital", "tertiary", "411502", (), D, None) for c in orgs}, "r"
    )
    scored = score_days({D: "r1"}, batches, registry, config)[D]
    explained = explain(rows, config)
    assert set(explained) == {(D, c) for c in scored.orgs}
    for code, o in scored.orgs.items():
        e = explained[(D, code)]
        assert e.org_day.composite == o.composite
        checks = [e.org_day]
        for ds, batch in o.batches.items():
            assert e.batches[ds].composite == composite(batch.dimensions(), config)
            checks.append(e.batches[ds])
        for x in checks:
            if x.composite is None:
                assert x.lines == ()
                continue
            assert sum(line.points for line in x.lines) == 100 - x.composite
            assert all(line.points >= 0 for line in x.lines)
            stored, lost = apportion(x)
            assert sum(stored, Decimal(0)) == lost == 100 - round_half_up(x.composite)
            for s, line in zip(stored, x.lines, strict=True):
                assert abs(F(s) - line.points) < F(1, 10**12)


@pytest.mark.parametrize(
    "rows",
    [
        # every result waived: nothing scored, nothing to explain
        [count(OV, "a.required", "completeness", WAIVED, 1, failed=3)],
        # one batch whose every failure weighs 0 (its dimension then has no score)
        [
            count(OV, "a.required", "completeness", "failed", 0, failed=3),
            count(OV, "b.max", "correctness", "failed", 2, failed=1),
            count(OV, "c.max", "correctness", "passed", 1),
        ],
        # extreme but finite weights: exact fractions, no float overflow or underflow
        [
            count(OV, "a.required", "completeness", "failed", 1e300, failed=3),
            count(OV, "b.required", "completeness", "passed", 1e-300),
            count(OV, "c.max", "correctness", "failed", 5e-324, failed=1),
            count(OV, "d.max", "correctness", "passed", 1.7976931348623157e308),
        ],
    ],
    ids=["all_waived", "zero_weight_failures", "extreme_weights"],
)
def test_hostile_weights_still_sum_exactly(rows):
    e = explain(rows, CONFIG)[(D, "T1")].org_day
    if e.composite is None:
        assert e.lines == () and apportion(e) == ([], None)
        return
    assert sum(line.points for line in e.lines) == 100 - e.composite
    stored, lost = apportion(e)
    assert sum(stored, Decimal(0)) == lost == 100 - round_half_up(e.composite)
