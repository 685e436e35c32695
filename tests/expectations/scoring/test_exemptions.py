"""Exemptions turn covered results into `waived`, which scores count like not_applicable."""

import datetime as dt
from fractions import Fraction

from contracts.registry import Organisation, Registry
from expectations.scoring.arithmetic import ResultCount, count_results
from expectations.scoring.exemptions import Exemptions, Waiver, apply

D = dt.date(2026, 3, 10)


def org(code, level):
    kind = "county" if level == "county" else "hospital"
    return Organisation(code, code, kind, level, "411502", (), dt.date(2026, 1, 1), None)


REGISTRY = Registry({o.org_code: o for o in (org("T1", "tertiary"), org("S1", "secondary"))}, "t")


def result(org_code, rule_id, status, *, day=D, version=1, rule_type="code_valid", weight=1.0):
    return ResultCount(
        day, org_code, "ds", rule_id, rule_type, "correctness", status, "warning", weight, version
    )


def statuses(rows, exemptions):
    return [r.status for r in apply(rows, exemptions, REGISTRY)]


def test_an_approved_appeal_waives_only_the_failed_result_of_its_batch_version():
    appeals = Exemptions(appeals={(D, "T1", "ds", "ds.a", 1): "appeal-1"})
    rows = [
        result("T1", "ds.a", "failed"),
        result("T1", "ds.a", "failed", version=2),  # re-sent: a new result, not appealed
        result("T1", "ds.b", "failed"),
        result("S1", "ds.a", "failed"),
        result("T1", "ds.a", "failed", day=D + dt.timedelta(days=1)),
    ]
    assert statuses(rows, appeals) == ["waived", "failed", "failed", "failed", "failed"]


def test_a_waiver_covers_a_rule_type_of_a_peer_group_within_its_dates_passed_or_failed():
    waiver = Waiver("w-1", "code_valid", D, D + dt.timedelta(days=2), peer_group="tertiary")
    rows = [
        result("T1", "ds.a", "failed"),
        result("T1", "ds.b", "passed"),
        result("T1", "ds.c", "error"),
        result("T1", "ds.a", "failed", day=D - dt.timedelta(days=1)),
        result("T1", "ds.a", "failed", day=D + dt.timedelta(days=3)),
        result("T1", "ds.d", "failed", rule_type="other"),
        result("S1", "ds.a", "failed"),
    ]
    got = statuses(rows, Exemptions(waivers=(waiver,)))
    assert got == ["waived", "waived", "error", "failed", "failed", "failed", "failed"]
    open_ended = Waiver("w-2", "ds.a", D, None, org_code="S1")
    far = result("S1", "ds.a", "failed", day=D + dt.timedelta(days=400))
    assert statuses([far], Exemptions(waivers=(open_ended,))) == ["waived"]


def test_a_waived_result_counts_like_not_applicable():
    rows = [result("T1", "ds.a", "failed", weight=3), result("T1", "ds.b", "passed")]
    waived = list(apply(rows, Exemptions(appeals={(D, "T1", "ds", "ds.a", 1): "a"}), REGISTRY))
    na = [rows[0]._replace(status="not_applicable"), rows[1]]
    [(key, batch)] = count_results(waived).items()
    assert batch.dimensions() == count_results(na)[key].dimensions()
    assert batch.dimensions()["correctness"] == Fraction(100)
    assert (batch.rules_waived, batch.rules_failed) == (1, 0)
    assert count_results(rows)[key].dimensions()["correctness"] == 25
