"""Issue 15's scenario in a real headless Chromium (Debian's, through Playwright's sync API)
against the served portal: the hospital logs in, sees its day page, downloads its failing keys,
is refused another hospital's page, keys and downloads (also by typed URL), and appeals a
failed result; the actions are applied in this process (as the next run would); the city
officer approves the appeal; applied again, the hospital sees its new score and rank; the
officer signs last month and downloads the acceptance sheet, read back with openpyxl.

The main pages are screenshotted into .artefacts/portal/ (kept after the run, paths printed)
and checked: size, colours, and Chinese drawn with a real font. No page may open a dialog
(an `alert` from a value that escaped its escaping)."""

from __future__ import annotations

import csv
import io
import time

import pytest

from tests.infra.portal.conftest import HOSTILE_KEY, HOSTILE_NAME, VIEWPORT
from tests.infra.portal.screens import check_page

pytestmark = [pytest.mark.integration, pytest.mark.browser]

REASON = "系统升级期间编码映射表未同步，已补传对照表 <img src=x onerror=alert('reason')>"
COMMENT = "对照表核实无误，同意 <script>alert('comment')</script>"


def apply(portal) -> dict:
    """`hqlake apply`'s work in this process (the test holds chDB, as a run would)."""
    from infra.actions import apply_pending
    from infra.settings import settings

    settings.cache_clear()
    return apply_pending(settings())


class Visitor:
    """One person's browser context: its own cookies, every dialog recorded."""

    def __init__(self, chromium, portal) -> None:
        self.portal = portal
        self.context = chromium.new_context(
            viewport=VIEWPORT, locale="zh-CN", accept_downloads=True
        )
        self.page = self.context.new_page()
        self.dialogs: list[str] = []
        self.page.on("dialog", lambda d: (self.dialogs.append(d.message), d.dismiss()))

    def goto(self, path: str):
        return self.page.goto(self.portal.url + path)

    def login(self, role: str) -> None:
        account = self.portal.accounts[role]
        self.goto("/login")
        self.page.fill("input[name=name]", account.name)
        self.page.fill("input[name=password]", account.password)
        with self.page.expect_navigation():
            self.page.click("button[type=submit]")
        assert "/login" not in self.page.url, self.page.inner_text("body")[:300]

    def download(self, selector: str) -> bytes:
        with self.page.expect_download() as info:
            self.page.click(selector)
        return info.value.path().read_bytes()


def test_the_quality_loop_in_a_browser(portal, chromium, artefacts):
    from expectations.scoring.read import read_scores
    from infra.runtime import warehouse

    city, ch = portal.city, warehouse(portal.config)
    code, other, day = city.hospital, city.other, city.appeal_day
    started = time.monotonic()
    shots = []

    def standing() -> dict:
        return next(s for s in read_scores(ch, day) if s["org_code"] == code)

    before = standing()

    # ---- the hospital: its day page, its keys, another's refused ------------------------
    hospital = Visitor(chromium, portal)
    hospital.login("org")
    assert hospital.page.url.endswith(f"/org/{code}/{day}"), hospital.page.url
    body = hospital.page.inner_text("body")
    assert city.registry.get(code).name in body and day.isoformat() in body
    assert f"{before['rank']} / {before['peer_size']}" in body
    shots.append(check_page(hospital.page, artefacts, "org-day"))

    hospital.goto(f"/org/{code}/{day}/keys")
    assert hospital.page.locator("table").count() >= 1
    keys_text = hospital.page.inner_text("body")
    assert HOSTILE_KEY in keys_text, "the planted failing key is shown as text"
    shots.append(check_page(hospital.page, artefacts, "org-keys"))
    rows = list(
        csv.reader(io.StringIO(hospital.download("a[href$='keys.csv']").decode("utf-8-sig")))
    )
    assert rows[0][:5] == ["dataset", "rule_id", "dimension", "severity", "record_key"]
    keys = [r[4] for r in rows[1:]]
    assert "'" + HOSTILE_KEY in keys and HOSTILE_KEY not in keys, "the key is neutralised"
    xlsx = _sheet(hospital.download("a[href$='keys.xlsx']"))
    values = [c for row in xlsx for c in row if c is not None]
    assert "'" + HOSTILE_KEY in values
    assert not [v for v in values if str(v).startswith("=")], "a cell is a formula"
    assert len(xlsx) == len(rows), "the xlsx holds the rows the CSV holds"

    for path in (
        f"/org/{other}/{day}",
        f"/org/{other}",
        f"/org/{other}/{day}/keys",
        f"/org/{other}/calendar",
    ):
        response = hospital.goto(path)
        assert response.status == 404, (path, response.status)
        assert city.registry.get(other).name not in hospital.page.inner_text("body")
    for path in (f"/org/{other}/{day}/keys.csv", f"/org/{other}/{day}/keys.xlsx"):
        response = hospital.page.request.get(portal.url + path)  # the session's cookies
        assert response.status == 404, (path, response.status)
        assert b"record_key" not in response.body()
    assert hospital.goto("/city").status == 403
    assert hospital.goto("/whatif").status == 403

    # ---- the hospital appeals a failed result -------------------------------------------
    hospital.goto(f"/org/{code}/{day}")
    form = hospital.page.locator(f"form:has(input[name=rule_id][value='{city.rule_id}'])")
    assert form.count() == 1, f"no appeal form for {city.rule_id}"
    form.locator("xpath=ancestor::details").locator("summary").click()
    form.locator("textarea[name=reason]").fill(REASON)
    with hospital.page.expect_navigation():
        form.locator("button[type=submit]").click()
    assert "/actions" in hospital.page.url
    assert REASON in hospital.page.inner_text("body")
    applied = apply(portal)
    assert len(applied["applied"]) == 1 and not applied["refused"], applied

    # ---- the city officer approves it ---------------------------------------------------
    officer = Visitor(chromium, portal)
    officer.login("city")
    officer.goto(f"/city?date={day}")
    assert HOSTILE_NAME in officer.page.inner_text("body"), "the name is shown as text"
    shots.append(check_page(officer.page, artefacts, "city-day"))
    officer.goto("/appeals?status=open")
    row = officer.page.locator("tr", has_text=city.rule_id).filter(has_text=code)
    assert row.count() == 1
    assert REASON in row.inner_text()
    assert officer.page.locator("img[src=x]").count() == 0, "the reason became markup"
    shots.append(check_page(officer.page, artefacts, "appeals"))
    row.locator("textarea[name=comment]").fill(COMMENT)
    with officer.page.expect_navigation():
        row.locator("button[value=approved]").click()
    assert "/actions" in officer.page.url, officer.page.inner_text("main")[:500]
    applied = apply(portal)
    assert len(applied["applied"]) == 1 and not applied["refused"], applied

    # ---- the hospital sees its new score and rank ---------------------------------------
    after = standing()
    assert after["composite"] > before["composite"], (before, after)
    assert after["rules_waived"] >= 1
    hospital.goto(f"/org/{code}/{day}")
    kpis = hospital.page.inner_text("body")
    score = float(hospital.page.locator(".score.big").first.inner_text())
    assert abs(score - after["composite"]) < 0.06, (score, after["composite"])
    assert abs(score - before["composite"]) > 0.05, "the page still shows the old score"
    assert f"{after['rank']} / {after['peer_size']}" in kpis
    assert COMMENT in kpis or "已批准" in kpis or "approved" in kpis.lower()
    shots.append(check_page(hospital.page, artefacts, "org-day-after-appeal"))

    # ---- the officer signs last month and downloads the sheet ---------------------------
    month = city.signed_month.strftime("%Y-%m")
    officer.goto(f"/acceptance?month={month}")
    with officer.page.expect_navigation():
        officer.page.click(f"form[action='/acceptance/{month}/sign'] button[type=submit]")
    assert "/actions" in officer.page.url, officer.page.inner_text("main")[:500]
    applied = apply(portal)
    assert len(applied["applied"]) == 1 and not applied["refused"], applied
    officer.goto(f"/acceptance?month={month}")
    shots.append(check_page(officer.page, artefacts, "acceptance"))
    sheet = _sheet(officer.download(f"a[href='/acceptance/{month}/v1.xlsx']"))
    cells = [str(c) for row in sheet for c in row if c is not None]
    assert city.registry.get(code).name in cells
    assert "'" + HOSTILE_NAME in cells and HOSTILE_NAME not in cells, "the name is neutralised"
    # the hospital may not download it, also by typed URL
    assert hospital.page.request.get(f"{portal.url}/acceptance/{month}/v1.xlsx").status == 403

    officer.goto("/rules")
    shots.append(check_page(officer.page, artefacts, "rules"))
    assert hospital.dialogs == [] and officer.dialogs == [], "a page ran a planted script"
    print(
        f"\n{code} on {day}: composite {before['composite']:.2f} rank {before['rank']}/"
        f"{before['peer_size']} -> {after['composite']:.2f} rank {after['rank']}/"
        f"{after['peer_size']} after the approved appeal of {city.rule_id}; {month} signed,"
        f" sheet of {len(sheet)} rows"
    )
    print(f"the browser scenario took {time.monotonic() - started:.1f}s; screenshots:")
    for path in shots:
        print(f"  {path}")


def _sheet(data: bytes) -> list[tuple]:
    """Every row of every sheet of an xlsx."""
    import openpyxl

    book = openpyxl.load_workbook(io.BytesIO(data), read_only=True)
    return [row for sheet in book.worksheets for row in sheet.iter_rows(values_only=True)]
