"""`hqlake acceptance` signs, refuses, reopens, signs again and exports, on the session's
warehouse with hand-made results of two organisations of the sample registry."""

import datetime as dt

import openpyxl
import pytest

from contracts.registry import SAMPLE_REGISTRY, load_registry
from expectations.rules.results import write_results
from infra.cli import main
from tests.expectations.scoring.test_scoring import complete, completeness_only

pytestmark = pytest.mark.integration

NOV = [dt.date(2026, 11, d) for d in range(1, 4)]


def hqlake(capsys, *args):
    with pytest.raises(SystemExit) as done:
        main(["acceptance", *args])
    out = capsys.readouterr()
    return done.value.code, out.out, out.err


def refused(result, text):
    code, _, err = result
    assert code == 2 and text in err and len(err.strip().splitlines()) <= 2, err
    assert "Traceback" not in err


def test_sign_refuse_reopen_sign_again_export(rt, capsys, tmp_path):
    orgs = load_registry(SAMPLE_REGISTRY).organisations.values()
    hospital = next(o for o in orgs if o.kind == "hospital").org_code
    county = next(o for o in orgs if o.kind == "county").org_code
    results = []
    for day in NOV:
        results += completeness_only(hospital, day, 1, 0)
        results += completeness_only(county, day, 1, 0, ds="health_record")
        complete(rt.ch, day)
    write_results(rt.ch, results)

    refused(
        hqlake(capsys, "--month", "2026-11", "--export", str(tmp_path / "a.xlsx")),
        "2026-11 is not signed",
    )
    refused(hqlake(capsys, "--month", "2026-11", "--sign"), "--sign needs --by NAME")
    refused(hqlake(capsys, "--month", "2026-13"), "'2026-13' is not a month YYYY-MM")
    refused(
        hqlake(capsys, "--month", "2026-11", "--sign", "--by", "QC.Wang"),
        "'QC.Wang' may not sign the acceptance: that is the quality_officer's role",
    )

    code, out, _ = hqlake(capsys, "--month", "2026-11", "--sign", "--by", "qc.wang")
    assert code == 0 and "2026-11 signed, version 1: by qc.wang" in out
    assert "2 passed; subsidy 110,000 yuan (一期)" in out
    assert f"{hospital:<20} PASS  3/3 days at bar, 0 blocking failures, subsidy 50,000 yuan" in out

    refused(hqlake(capsys, "--month", "2026-11", "--sign", "--by", "qc.li"), "reopen it first")
    refused(
        hqlake(capsys, "--month", "2026-11", "--reopen", "--by", "医院信息科", "--reason", "r"),
        "'医院信息科' may not reopen a signed month",
    )
    refused(hqlake(capsys, "--month", "2026-11", "--reopen", "--by", "qc.li"), "--reason")
    code, out, _ = hqlake(
        capsys, "--month", "2026-11", "--reopen", "--by", "qc.li", "--reason", "更正"
    )
    assert code == 0 and "version 1 reopened by qc.li" in out
    code, out, _ = hqlake(capsys, "--month", "2026-11")
    assert code == 0 and "reopened by qc.li" in out and "version 1" in out
    code, out, _ = hqlake(capsys, "--month", "2026-11", "--sign", "--by", "qc.li")
    assert code == 0 and "version 2: by qc.li" in out
    code, out, _ = hqlake(capsys, "--month", "2026-11")
    assert code == 0 and "version 2: by qc.li" in out and "reopened" not in out

    sheet = tmp_path / "out" / "2026-11.xlsx"
    code, out, _ = hqlake(capsys, "--month", "2026-11", "--export", str(sheet))
    assert code == 0 and f"sheet: {sheet}" in out
    rows = list(openpyxl.load_workbook(sheet)["验收结果"].iter_rows(values_only=True))
    assert rows[-1][0] == "合计" and rows[-1][7] == 2 and rows[-1][8] == 110000
    assert {r[9] for r in rows[1:]} == {"qc.li"}


def test_a_month_not_over_is_not_signed(rt, capsys):
    from contracts.timezone import TZ

    this_month = dt.datetime.now(TZ).date().strftime("%Y-%m")
    refused(hqlake(capsys, "--month", this_month, "--sign", "--by", "qc.wang"), "is not over")
    assert rt.ch.query("SELECT count() FROM dq.acceptance_signature").result_rows[0][0] == 0
