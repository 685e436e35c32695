"""dq_marts.dq_acceptance_signature built by dbt over a warehouse with two signed versions of a
month (hand-made results): one row per organisation and version, the latest flagged, a racing
second signature of a version left out."""

import datetime as dt

import pytest

from expectations.programme.signoff import reopen_month, sign_month
from expectations.programme.subsidies import load_subsidy_config
from expectations.rules.results import write_results
from expectations.scoring.config import load_scoring_config
from infra import dbtrun
from tests.expectations.programme.test_signoff import OFFICERS, _race
from tests.expectations.scoring.test_scoring import complete, completeness_only, org, registry

pytestmark = pytest.mark.integration

NOV = [dt.date(2026, 11, d) for d in range(1, 4)]


def test_every_signed_version_one_row_per_organisation(rt):
    orgs = registry(org("H1"), org("C1", "county"))
    results = []
    for day in NOV:
        results += completeness_only("H1", day, 1, 0)
        results += completeness_only("C1", day, *((1, 0) if day != NOV[0] else (0, 1)))
        complete(rt.ch, day)
    write_results(rt.ch, results)
    configs = (load_scoring_config(), load_subsidy_config())
    sign_month(rt.ch, orgs, NOV[0], "王质控", *configs, officers=OFFICERS)
    reopen_month(rt.ch, NOV[0], "李主任", "更正", officers=OFFICERS)
    sign_month(rt.ch, orgs, NOV[0], "张科长", *configs, officers=OFFICERS)
    # a racing signing of each version, a second later: it, its rows and subsidies never count
    _race(rt.ch, NOV[0], "qc.li")

    result = dbtrun.build(select="+dq_acceptance_signature", registry=orgs)
    assert result.success, result.error or [n for n in result.nodes if n.message]
    rows = rt.ch.query(
        "SELECT signature_version, org_code, signed_by, is_latest_version, is_reopened,"
        " is_accepted, subsidy_yuan, subsidy_phase, days_judged"
        " FROM dq_marts.dq_acceptance_signature ORDER BY signature_version, org_code"
    ).result_rows
    # version 1 stands no more (reopened, not the latest); C1 was below the bar on 1 Nov
    assert rows == [
        (1, "C1", "王质控", 0, 1, 0, 0, None, 3),
        (1, "H1", "王质控", 0, 1, 1, 50000, "一期", 3),
        (2, "C1", "张科长", 1, 0, 0, 0, None, 3),
        (2, "H1", "张科长", 1, 0, 1, 50000, "一期", 3),
    ]
    unit_tests = {n.name: n.status for n in result.nodes if n.resource_type == "unit_test"}
    assert unit_tests["acceptance_signature_keeps_versions_and_committed_rows"] == "pass"
