"""The what-if page: rendered from a what-if of hand-made results (no warehouse), every value
escaped, and drawn by headless Chromium."""

from __future__ import annotations

import datetime as dt
import shutil

import pytest

from contracts.registry import Organisation, Registry
from expectations.publish import report
from expectations.publish.whatif_page import render_whatif
from expectations.rules.rulebase import rulebase
from expectations.scoring.arithmetic import ResultCount
from expectations.scoring.config import load_scoring_config
from expectations.scoring.whatif import compare, load_changes
from tests.expectations.publish.test_report import png_rows

DAY = dt.date(2026, 11, 15)
HOSTILE = '<script>alert("x")</script>医院'


def _org(code: str, name: str) -> Organisation:
    return Organisation(code, name, "hospital", "tertiary", "411502", (), dt.date(2026, 1, 1), None)


def answer(tmp_path):
    registry = Registry({"H1": _org("H1", HOSTILE), "H2": _org("H2", "二号医院")}, "two")
    rows = []
    for org, icd10 in (("H1", "failed"), ("H2", "passed")):
        for rule, rule_type, dimension, weight, status in (
            ("patient.batch_received", "batch_received", "completeness", 5, "passed"),
            ("patient.dx.icd10_valid", "icd10_valid", "correctness", 2, icd10),
            ("patient.age.max", "max", "correctness", 1, "failed" if org == "H2" else "passed"),
        ):
            failed = 3 if status == "failed" else 0
            rows.append(
                ResultCount(
                    DAY,
                    org,
                    "patient",
                    rule,
                    rule_type,
                    dimension,
                    status,
                    "warning",
                    weight,
                    1,
                    1,
                    failed,
                    10,
                )
            )
    path = tmp_path / "change.yaml"
    path.write_text(
        "types: {icd10_valid: {weight: 6}}\nacceptance: {bar: 70}\n"
        "overrides: [{rule: '*.max', weight: 1, notes: '<b>why</b>'}]\n",
        encoding="utf-8",
    )
    base = load_scoring_config()
    changes = load_changes(path, rulebase(), base, registry)
    runs = {DAY: "run-1"}
    return compare(runs, rows, registry, base, changes, rulebase().overrides, DAY, DAY)


def test_the_page_shows_who_moves_and_escapes_every_value(tmp_path):
    got = answer(tmp_path)
    # H2 passes at the lower bar: it moves and comes first; H1 only loses points
    assert [(o["org_code"], o["moves"]) for o in got["organisations"]] == [
        ("H2", True),
        ("H1", False),
    ]
    page = render_whatif(got)
    assert HOSTILE not in page and "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;医院" in page
    assert "<b>why</b>" not in page and "&lt;b&gt;why&lt;/b&gt;" in page
    assert page.count('<span class="tag blocking">变动 moves</span>') == 1
    assert "acceptance.bar" in page and "icd10_valid" in page
    assert "<script" not in page


@pytest.mark.skipif(
    shutil.which(report.CHROMIUM) is None,
    reason=f"{report.CHROMIUM} is not installed (make installs it with apt-get install chromium)",
)
@pytest.mark.browser
def test_the_page_renders_in_headless_chromium(tmp_path):
    html = tmp_path / "whatif.html"
    html.write_text(render_whatif(answer(tmp_path)), encoding="utf-8")
    png = report.screenshot(html, tmp_path / "whatif.png", 1280, 900)
    width, height, pixels = png_rows(png, 300)
    assert (width, height) == (1280, 900)
    colours = set(pixels)
    assert len(colours) > 300, f"{png} looks blank: {len(colours)} colours"
    assert bytes((0x0F, 0x2A, 0x4A)) in colours  # the navy header: the CSS was applied
