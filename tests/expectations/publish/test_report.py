"""The static HTML reports: rendered from hand-made rows, then in headless Chromium, then end to
end from scored rule results in the embedded warehouse."""

import datetime as dt
import re
import shutil
import struct
import zlib
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from contracts.codesystems import make_resident_id
from contracts.pii import mask
from contracts.registry import Organisation, Registry
from expectations.publish import report
from expectations.publish.report import STATIC, band, render_city, render_org
from tests.conftest import record_run

DAY = dt.date(2026, 11, 15)
HOSTILE = "<script>alert('x')</script>医院"
IDENTITY = make_resident_id("411502", dt.date(1980, 5, 6), 12, "1")


def organisation(code, name, level="tertiary", county="411502"):
    kind = "county" if level == "county" else "hospital"
    return Organisation(code, name, kind, level, county, (), dt.date(2020, 1, 1), None)


def score(o, composite, rank, peer_size, *, day_change=None, month_change=None, **extra):
    row = {
        "run_id": "r-20261116",
        "org_code": o.org_code,
        "org_name": o.name,
        "peer_group": o.peer_group,
        "county_code": o.county_code,
        "business_date": DAY,
        "completeness": composite,
        "timeliness": composite,
        "correctness": composite,
        "logic": composite,
        "composite": composite,
        "rank": rank,
        "peer_size": peer_size,
        "rank_change_day": day_change,
        "rank_change_month": month_change,
        "rules_failed": 2,
        "blocking_failed": 0,
        "rules_error": 0,
        "new_failures": 1,
        "resolved_failures": 0,
        "persisting_failures": 1,
    }
    return row | extra


ORGS = {
    "A": organisation("H0000A", "甲医院"),
    "B": organisation("H0000B", HOSTILE),
    "C": organisation("H0000C", "丙医院"),
    "D": organisation("H0000D", "丁医院"),
    "E": organisation("H0000E", "戊医院", "secondary", "411521"),
    "F": organisation("411502", "浉河区公共卫生平台", "county"),
    "G": organisation("H0000G", "己医院（未评分）", "primary"),
}
REGISTRY = Registry({o.org_code: o for o in ORGS.values()}, "test registry")
SCORES = [
    # Given in no particular order: the page orders by peer group, rank, then org_code.
    score(ORGS["D"], 70.0, 4, 4, day_change=-2),
    score(ORGS["E"], 88.0, 1, 1, month_change=4),
    score(ORGS["C"], 90.0, 2, 4),
    score(ORGS["A"], 95.5, 1, 4, day_change=0, blocking_failed=1),
    score(ORGS["B"], 89.995, 2, 4, day_change=3, month_change=-1),  # rounds half up to 90.00
    score(ORGS["F"], 60.0, 1, 1, logic=None),
]
TREND = [
    {
        "business_date": DAY - dt.timedelta(days=29 - i),
        "composite": 80.0 + i / 2,
        "rank": 3 if i < 20 else 2,
        "peer_size": 4,
        "completeness": 85.0,
        "timeliness": 90.0,
        "correctness": 75.0 + i / 3,
        "logic": None if i == 5 else 88.0,
    }
    for i in range(30)
    if i not in (10, 11)  # two days without a score: a gap, not a line across
]
FAILURES = [
    {
        "dataset": "patient",
        "rule_id": "patient.id_no.resident_id",
        "dimension": "correctness",
        "severity": "warning",
        "weight": 2.0,
        "threshold": 0.0,
        "checked": 1234,
        "failed": 17,
        "failed_pct": 1.3776,
        "sample_keys": ["P0001", IDENTITY, "P0003", "P0004", "P0005", "P0006", "P0007"],
        "notes": "e.g. a phone 13812345678 in the notes <b>",
        "description_zh": "身份证号校验位正确",
        "description_en": "Resident identity number has a valid check digit",
        "fix_hint_zh": "请核对身份证号第18位校验码",
        "fix_hint_en": "Check the 18th character of the identity number",
        "change": "new",
    },
    {
        "dataset": "outpatient_visit",
        "rule_id": "outpatient_visit.batch_received",
        "dimension": "completeness",
        "severity": "blocking",
        "weight": 5.0,
        "threshold": 0.0,
        "checked": 1,
        "failed": 1,
        "failed_pct": 100.0,
        "sample_keys": [],
        "notes": "",
        "description_zh": "应上传的批次已收到",
        "description_en": "The expected batch was received",
        "fix_hint_zh": "请按日上传该数据集",
        "fix_hint_en": "Upload this dataset every day",
        "change": "persisting",
    },
]


def city_page(datadocs=False):
    return render_city(DAY, SCORES, REGISTRY, datadocs, trends={ORGS["A"].org_code: TREND})


def org_page(datadocs=True):
    b = next(r for r in SCORES if r["org_code"] == ORGS["B"].org_code)
    return render_org(DAY, b, TREND, FAILURES, ORGS["B"], datadocs)


def section(html, anchor):
    start = html.index(anchor)
    return html[start : html.index("</section>", start)]


def row_of(html, name):
    """The table row (<tr>…</tr>) that names an organisation."""
    at = html.index(name)
    return html[html.rindex("<tr>", 0, at) : html.index("</tr>", at)]


def test_city_page_orders_league_tables_shows_ties_arrows_and_colours():
    html = city_page()
    tertiary = section(html, 'id="peer-tertiary"')
    names = ["甲医院", "&lt;script&gt;", "丙医院", "丁医院"]
    assert [tertiary.index(n) for n in names] == sorted(tertiary.index(n) for n in names)
    # B and C share rank 2 (89.995 is published as 90.00); the next rank is 4.
    assert tertiary.count('class="tag tie"') == 2
    assert "并列" in row_of(tertiary, "丙医院") and "并列" not in row_of(tertiary, "丁医院")
    assert re.search(r"<b>4</b>", row_of(tertiary, "丁医院"))
    assert "▲3" in row_of(tertiary, "&lt;script&gt;") and "▼1" in row_of(tertiary, "&lt;script")
    assert "▼2" in row_of(tertiary, "丁医院")
    assert 'title="持平 unchanged">=' in row_of(tertiary, "甲医院")
    assert 'class="score good">90.00<' in row_of(tertiary, "&lt;script&gt;")
    assert 'class="score poor">70.00<' in row_of(tertiary, "丁医院")
    assert "阻断 1" in row_of(tertiary, "甲医院")
    # peer groups in a fixed order; the county platform has no logic score
    order = [html.index(f'id="peer-{g}"') for g in ("tertiary", "secondary", "county")]
    assert order == sorted(order) and 'id="peer-primary"' not in html
    assert 'class="score small none">—<' in row_of(
        section(html, 'id="peer-county"'), "浉河区公共卫生平台"
    )
    # movers: the biggest gain first; the month gainer appears too
    movers = section(html, "排名变化")
    gains = movers[: movers.index("较上一日下降")]
    assert "&lt;script&gt;" in gains and "丁医院" not in gains
    assert "戊医院" in movers[movers.index("较上月同日上升") : movers.index("较上月同日下降")]
    # the active organisation without a score is listed, and the city is named
    assert "己医院（未评分）" in section(html, "未评分机构")
    assert "信阳市上传数据质控日报" in html
    assert html.count('<svg class="chart"') == 2  # dimension chart + one sparkline (only A)
    assert 'href="org/H0000A.html"' in html


def test_pages_escape_data_and_fetch_nothing():
    for html in (city_page(datadocs=True), org_page()):
        assert "<script" not in html
        assert "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;医院" in html
        for forbidden in ("http://", "https://", "src=", "<link", "@import", "url("):
            assert forbidden not in html, forbidden
        assert "<svg" in html and "<style>" in html
        # the one stylesheet of the reports' look, embedded whole: the file stands alone
        assert (STATIC / "report.css").read_text(encoding="utf-8") in html
    assert "&lt;b&gt;" in org_page()  # notes are data, not markup


def test_org_page_escapes_hostile_sample_keys_and_hints():
    keys = ["<script>alert(1)</script>", '"><img src=x onerror=alert(1)>', '=HYPERLINK("x")']
    failure = FAILURES[0] | {"sample_keys": keys, "fix_hint_en": "Don't <b>guess</b>"}
    b = next(r for r in SCORES if r["org_code"] == ORGS["B"].org_code)
    html = render_org(DAY, b, TREND, [failure], ORGS["B"], True)
    assert "<script>alert" not in html and "<img" not in html and "<b>guess" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "&#34;&gt;&lt;img src=x onerror=alert(1)&gt;" in html
    assert "Don&#39;t &lt;b&gt;guess&lt;/b&gt;" in html


def test_org_page_lists_failures_with_fix_hints_and_masked_keys():
    html = org_page()
    table = section(html, "未通过的规则")
    # blocking first, whatever order the rows came in
    assert table.index("outpatient_visit.batch_received") < table.index("patient.id_no")
    for text in (
        "请按日上传该数据集",
        "Upload this dataset every day",
        "请核对身份证号第18位校验码",
    ):
        assert text in table
    assert "1,234" in table and "1.38%" in table and "100%" in table and "≤ 0%" in table
    assert 'class="tag new">新增' in table and 'class="tag persisting">持续' in table
    assert IDENTITY not in html and mask(IDENTITY, "identity") in table
    assert "13812345678" not in html and "138****5678" in table
    assert table.count("<code>") == 7 and "另 2 条 more" in table  # five shown, two folded
    # scores, rank, trend and the Data Docs link
    assert 'class="score big good">90.00<' in html
    assert re.search(r"2 <small>/ 4</small>", html)
    chart = section(html, "近30日趋势")
    assert chart.count("<svg") == 1 and chart.count("<circle") >= 2 * 28
    assert chart.count('stroke="#0f2a4a" stroke-width="2.4"') == 2  # composite split at the gap
    assert 'href="../datadocs/index.html"' in html and 'href="../index.html"' in html
    missing = org_page(datadocs=False)
    assert "datadocs" not in missing and "Data Docs for this date have not been built" in missing


def test_org_page_without_failures_or_history():
    b = next(r for r in SCORES if r["org_code"] == ORGS["B"].org_code)
    html = render_org(DAY, b, [], [], None, False)
    assert "本日所有规则均已通过" in html and "暂无历史得分" in html


def test_band():
    assert band(89.994) == "fair" and band(89.995) == "good" and band(79.99) == "poor"
    assert band(None) == "none" and band(95, bar=96, decimals=0) == "fair"


# ---- headless Chromium ---------------------------------------------------------------------


def png_rows(path: Path, rows: int) -> tuple[int, int, list[bytes]]:
    """(width, height, the first `rows` pixel rows) of an 8-bit RGB(A) PNG.

    Pillow is not a dependency; a non-interlaced 8-bit PNG is zlib data with one filter byte
    per row (PNG spec, section 9), which takes a few lines to undo."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", data[16:29])
    assert (depth, interlace) == (8, 0) and colour in (2, 6)
    bpp = 3 if colour == 2 else 4
    idat, pos = b"", 8
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos : pos + 8])
        if kind == b"IDAT":
            idat += data[pos + 8 : pos + 8 + length]
        pos += 12 + length
    raw, stride = zlib.decompress(idat), width * bpp
    prev, out = bytearray(stride), []
    for y in range(min(rows, height)):
        kind = raw[y * (stride + 1)]
        line = bytearray(raw[y * (stride + 1) + 1 : (y + 1) * (stride + 1)])
        if kind == 2:
            line = bytearray((x + b) & 255 for x, b in zip(line, prev, strict=True))
        elif kind in (1, 3, 4):
            for i in range(stride):
                a = line[i - bpp] if i >= bpp else 0
                b, c = prev[i], (prev[i - bpp] if i >= bpp else 0)
                if kind == 1:
                    predictor = a
                elif kind == 3:
                    predictor = (a + b) // 2
                else:
                    p = a + b - c
                    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                    predictor = a if pa <= pb and pa <= pc else b if pb <= pc else c
                line[i] = (line[i] + predictor) & 255
        out.append(bytes(line))
        prev = line
    return width, height, [bytes(r[i : i + 3]) for r in out for i in range(0, stride, bpp)]


@pytest.mark.skipif(
    shutil.which(report.CHROMIUM) is None,
    reason=f"{report.CHROMIUM} is not installed (make installs it with apt-get install chromium)",
)
def test_pages_render_in_headless_chromium(tmp_path):
    folder = tmp_path / DAY.isoformat()
    (folder / "org").mkdir(parents=True)
    city, org = folder / "index.html", folder / "org" / "H0000B.html"
    city.write_text(city_page(), encoding="utf-8")
    org.write_text(org_page(), encoding="utf-8")
    for html, size in ((city, (1280, 2000)), (org, (1024, 1400))):
        png = report.screenshot(html, tmp_path / f"{html.stem}.png", *size)
        width, height, pixels = png_rows(png, 420)
        assert (width, height) == size
        colours = set(pixels)
        assert len(colours) > 300, f"{png} looks blank: {len(colours)} colours"
        assert bytes((0x0F, 0x2A, 0x4A)) in colours  # the navy header: the CSS was applied
    with pytest.raises(FileNotFoundError):
        report.screenshot(tmp_path / "absent.html", tmp_path / "absent.png")


# ---- end to end ----------------------------------------------------------------------------


@pytest.mark.integration
def test_write_reports_from_scored_rule_results(rt, tmp_path):
    from contracts.registry import load_registry
    from expectations.rules.results import RuleResult, write_results
    from expectations.rules.rulebase import rulebase
    from expectations.scoring.read import read_scores
    from expectations.scoring.store import score_date

    ch = rt.ch
    sample = load_registry()
    tertiary = sorted(o.org_code for o in sample.active(DAY) if o.peer_group == "tertiary")[:3]
    registry = Registry({c: sample.organisations[c] for c in tertiary}, "three hospitals")
    a, b, c = tertiary
    rules = rulebase().rules
    received = next(r for r in rules if r.type == "batch_received" and r.dataset == "patient")
    correctness_rule = next(
        r for r in rules if r.dataset == "patient" and r.dimension == "correctness"
    )
    before = DAY - dt.timedelta(days=1)
    # before: A and C clean, B fails the correctness rule; DAY: A fails it, C sent nothing
    failing = {before: {b: (0, 1)}, DAY: {a: (0, 1), c: (1, 0)}}
    for day in (before, DAY):
        run = f"run-{day:%m%d}"
        results = []
        for org in tertiary:
            missing, wrong = failing[day].get(org, (0, 0))
            where = {"run_id": run, "org_code": org, "dataset": "patient", "business_date": day}
            results.append(
                RuleResult.of(received, **where, batch_version=1, checked=1, failed=missing)
            )
            results.append(
                RuleResult.of(
                    correctness_rule,
                    **where,
                    batch_version=1,
                    checked=50,
                    failed=5 * wrong,
                    sample_keys=["P0001", IDENTITY][: 2 * wrong],
                    applicable=not missing,
                )
            )
        write_results(ch, results)
        at = dt.datetime(2026, 11, 16, 9, 0, tzinfo=ZoneInfo("Asia/Shanghai"))
        record_run(ch, run, day, at, rule_results=len(results))
        score_date(ch, registry, day)
    folder = tmp_path / DAY.isoformat()
    (folder / "datadocs").mkdir(parents=True)
    (folder / "datadocs" / "index.html").write_text("<html></html>", encoding="utf-8")
    (folder / "org").mkdir()
    (folder / "org" / "GONE.html").write_text("stale", encoding="utf-8")

    written = report.write_reports(ch, registry, DAY, tmp_path)

    scores = read_scores(ch, DAY)
    assert written["city"] == folder / "index.html"
    assert written["orgs"] == {code: folder / "org" / f"{code}.html" for code in tertiary}
    assert sorted(p.name for p in (folder / "org").iterdir()) == sorted(
        f"{code}.html" for code in tertiary
    )
    city = written["city"].read_text(encoding="utf-8")
    league = section(city, 'id="peer-tertiary"')
    links = [league.index(f'href="org/{r["org_code"]}.html"') for r in scores]
    assert scores[0]["org_code"] == b and links == sorted(links)
    assert 'href="datadocs/index.html"' in city
    page_a = written["orgs"][a].read_text(encoding="utf-8")
    assert correctness_rule.description_zh in page_a and correctness_rule.fix_hint_zh in page_a
    assert IDENTITY not in page_a and mask(IDENTITY, "identity") in page_a
    assert 'class="tag new">新增' in page_a and 'href="../datadocs/index.html"' in page_a
    page_c = written["orgs"][c].read_text(encoding="utf-8")
    assert "patient.batch_received" in page_c and 'class="tag blocking">阻断' in page_c
    b_row = next(r for r in scores if r["org_code"] == b)
    assert b_row["rank_change_day"] > 0 and f"▲{b_row['rank_change_day']}" in city
    again = report.write_reports(ch, registry, DAY, tmp_path)
    assert again == written
    assert written["city"].read_text(encoding="utf-8") == city


def test_org_page_names_the_field_of_a_failing_key():
    failure = {
        "dataset": "inpatient_discharge",
        "rule_id": "cross.sex_specific_diagnoses",
        "dimension": "logic",
        "severity": "warning",
        "weight": 2,
        "threshold": 0,
        "checked": 10,
        "failed": 1,
        "failed_pct": 10.0,
        "sample_keys": ["ZY0001", "ZY0002"],
        "sample_details": ["other_dx_codes N40", "principal_dx_code C61"],
    }
    b = next(r for r in SCORES if r["org_code"] == ORGS["B"].org_code)
    html = render_org(DAY, b, TREND, [failure], ORGS["B"], False)
    assert "<code>ZY0001 (other_dx_codes N40)</code>" in html
    assert "<code>ZY0002 (principal_dx_code C61)</code>" in html


def test_suggestions_page_escapes_every_value_and_fetches_nothing():
    hostile = "<script>alert('x')</script>"
    rule = {
        "rule_id": f"outpatient_visit.{hostile}",
        "severity": "blocking",
        "dimension": "logic",
        "description": {"zh": hostile, "en": '"><img src=x onerror=alert(1)>'},
        "current_weight": 3.0,
        "organisations_failed": 1,
        "organisations_judged": 4,
        "org_days_failed": 1,
        "org_days_judged": 12,
        "rows": {"failed": 2, "kept_out": 2, "kept_out_by_this_rule_alone": 2},
        "datasets": [
            {"dataset": hostile, "rows_in_period": 9, "rows_failed": 2, "failed_pct": 22.2}
        ],
        "indicators": {
            "reach": "rows",
            "columns": [
                {
                    "column": f"ind_x.{hostile}",
                    "through": [hostile],
                    "input_rows": 9,
                    "rows_failed": 2,
                    "failed_pct": 22.2,
                }
            ],
        },
        "suggestion": {"action": "keep", "weight": 3.0, "reason": {"zh": hostile, "en": hostile}},
    }
    kept = rule | {"rule_id": "kept.<b>rule</b>", "organisations_failed": 0}
    answer = {
        "period": {"from": "2026-11-09", "to": "2026-11-11"},
        "dates_validated": ["2026-11-09"],
        "organisations": 4,
        "rules_fingerprints": [hostile],
        "summary": {"rules": 2, "raise": 0, "lower": 0, "keep": 2},
        "meaning": {hostile: hostile},
        "rules": [rule, kept],
        "rules_not_in_rule_base": [hostile],
    }
    html = report.render_suggestions(answer)
    assert html.startswith("<!DOCTYPE html>")
    assert "<script" not in html and "<img" not in html and "<b>rule" not in html
    assert html.count("&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;") >= 8
    assert "&#34;&gt;&lt;img src=x onerror=alert(1)&gt;" in html
    assert "kept.&lt;b&gt;rule&lt;/b&gt;" in html
    for forbidden in ("http://", "https://", "src=", "<link", "@import", "url("):
        assert forbidden not in html.replace("src=x", ""), forbidden


def _standing():
    from expectations.programme.read import Standing

    at = dt.datetime(2026, 3, 12, 9, 30)
    waived = {
        "dataset": "patient",
        "rule_id": "patient.id_no.resident_id",
        "rule_type": "resident_id",
        "dimension": "correctness",
        "weight": 2.0,
        "status": "failed",
        "failed": 17,
        "checked": 1234,
        "batch_version": 0,
        "waived_by": "ap-0123456789ab",
        "kind": "appeal",
        "why": f"<script>x</script> {IDENTITY}",
    }
    appeal = {
        "appeal_id": "ap-0123456789ab",
        "org_code": ORGS["B"].org_code,
        "business_date": DAY,
        "dataset": "patient",
        "rule_id": "patient.id_no.resident_id",
        "batch_version": 0,
        "status": "approved",
        "submitted_by": "his.<b>zhou</b>",
        "submitted_at": at,
        "reason": f"<img src=x onerror=alert(1)> {IDENTITY}",
        "decided_by": "qc.wang",
        "decided_at": at,
        "comment": "ok 13812345678",
    }
    open_ = appeal | {
        "appeal_id": "ap-ffffffffffff",
        "status": "open",
        "decided_by": "",
        "comment": "",
    }
    return Standing([waived], [appeal, open_])


def test_org_page_lists_waived_results_and_appeals_escaped_and_masked():
    b = next(r for r in SCORES if r["org_code"] == ORGS["B"].org_code)
    html = render_org(
        DAY, b | {"rules_waived": 1}, TREND, FAILURES, ORGS["B"], True, standing=_standing()
    )
    # the waived failure is no longer listed as failed
    assert "patient.id_no.resident_id" not in section(html, "未通过的规则")
    card = section(html, "申诉与豁免")
    assert "已豁免的结果" in card and "申诉获批" in card and "ap-0123456789ab" in card
    assert "已批准" in card and "待审核" in card and "ap-ffffffffffff" in card
    assert "1 条结果已豁免" in html
    assert "<script>x" not in html and "<img" not in html and "<b>zhou" not in html
    assert "&lt;img src=x onerror=alert(1)&gt;" in card and "his.&lt;b&gt;zhou&lt;/b&gt;" in card
    assert IDENTITY not in html and "13812345678" not in html and "138****5678" in card
    assert "申诉与豁免" not in org_page()
