"""The portal's pages over the scored sample city's snapshot, served by `hqlake serve` (the
package's `portal` fixture): each page renders for the roles it allows and shows the right
organisation's values, hostile organisation names and keys reach pages as text and downloads
as neutralised cells, keys are paged, forms post what the queue takes, and no page carries an
inline style or script (the CSP would refuse them)."""

from __future__ import annotations

import contextlib
import csv
import html
import io
import re
import sqlite3
import urllib.parse

import pytest
from markupsafe import escape

from contracts.pii import mask_text
from tests.infra.portal.conftest import HOSTILE_KEY, HOSTILE_NAME, csrf, forms, logged_in

pytestmark = pytest.mark.integration


def _snapshot(portal):
    from expectations.publish.snapshot import Snapshot

    return Snapshot.open(portal.config.snapshot_dir)


@pytest.fixture(scope="module")
def clients(portal):
    return {role: logged_in(portal, role) for role in ("city", "county", "org", "other")}


def day_of(portal) -> str:
    return portal.city.appeal_day.isoformat()


def clean(page: str) -> None:
    """No inline style or script anywhere (CSP), no unmasked identity or mobile number."""
    assert "style=" not in page and "<script" not in page and "<style" not in page
    assert mask_text(page) == page


def test_org_day_page_shows_its_own_values_to_the_roles_that_may_see_it(portal, clients):
    city, day = portal.city, day_of(portal)
    own = clients["org"].get(f"/org/{city.hospital}/{day}")
    assert own.status == 200, own.text[:300]
    clean(own.text)
    name = city.registry.get(city.hospital).name
    assert html.escape(name, quote=False) in own.text
    for section in ("近30日趋势", "未通过的规则", "不合格记录", "问题变化", "失分明细"):
        assert section in own.text, section
    assert city.rule_id in own.text
    assert f'href="/org/{city.hospital}/{day}/keys' in own.text
    assert "file://" not in own.text and 'href="../index.html"' not in own.text
    # the organisation user and its latest date; another hospital is not found, not forbidden
    latest = clients["org"].get(f"/org/{city.hospital}")
    assert latest.status == 303 and latest.header("Location").startswith(f"/org/{city.hospital}/")
    assert clients["org"].get(f"/org/{city.other}/{day}").status == 404
    assert clients["org"].get(f"/org/NOSUCHORG/{day}").status == 404
    # the county officer sees its county's hospital only; the city officer both
    assert clients["county"].get(f"/org/{city.in_county}/{day}").status == 200
    assert clients["county"].get(f"/org/{city.out_county}/{day}").status == 404
    for code in (city.in_county, city.out_county):
        page = clients["city"].get(f"/org/{code}/{day}")
        assert page.status == 200
        assert html.escape(city.registry.get(code).name, quote=False) in page.text
    # a date that was not scored has no page
    assert clients["city"].get(f"/org/{city.hospital}/2001-01-01").status == 404
    assert clients["city"].get(f"/org/{city.hospital}/not-a-date").status == 404


def test_org_day_page_appeal_form_only_for_the_organisation_in_window(portal, clients):
    city, day = portal.city, day_of(portal)
    own = clients["org"].get(f"/org/{city.hospital}/{day}").text
    appeal_forms = [f for f in forms(own) if f.action.endswith("/appeal")]
    assert appeal_forms, "no appeal form on the hospital's own day page"
    failed = {
        (f["dataset"], f["rule_id"])
        for f in _snapshot(portal).failures(city.hospital, city.appeal_day)
    }
    for form in appeal_forms:  # one per failed result not appealed yet, its own token
        assert form.action == f"/org/{city.hospital}/{day}/appeal"
        assert (form.fields["dataset"], form.fields["rule_id"]) in failed
        assert form.fields["csrf_token"] == csrf(clients["org"])
    # officers read the same page without appeal forms
    officer = clients["city"].get(f"/org/{city.hospital}/{day}").text
    assert not [f for f in forms(officer) if f.action.endswith("/appeal")]


def test_appeal_post_queues_the_organisation_s_appeal(portal, clients):
    city, day = portal.city, day_of(portal)
    page = clients["org"].get(f"/org/{city.hospital}/{day}").text
    form = next(f for f in forms(page) if f.action.endswith("/appeal"))
    pending = portal.config.actions_dir / "pending"
    before = set(pending.glob("*.json")) if pending.is_dir() else set()
    reason = '<b>上传系统故障</b> ="1+1"'
    try:
        done = clients["org"].post(form.action, form.fields | {"reason": reason})
        assert done.status == 303, done.text[:400]
        queued = urllib.parse.parse_qs(urllib.parse.urlsplit(done.header("Location")).query)
        action_id = queued["queued"][0]
        listed = clients["org"].get(done.header("Location")).text
        clean(listed)
        assert action_id in listed and "pending" in listed
        assert str(escape(reason)) in listed and "<b>上传" not in listed
        # others: another organisation's user may not appeal it; officers may not at all
        for role, status in (("other", 404), ("city", 403), ("county", 403)):
            token = {"csrf_token": csrf(clients[role]), "reason": "x"}
            assert clients[role].post(form.action, form.fields | token).status == status, role
        # a result that did not fail is refused with its reason, nothing queued
        refused = clients["org"].post(
            form.action, form.fields | {"rule_id": "no.such.rule", "reason": "x"}
        )
        assert refused.status == 400 and "no such failed result" in refused.text
        assert len(set(pending.glob("*.json")) - before) == 1
    finally:
        # leave the shared home's queue as it was: the browser scenario appeals this result
        for path in set(pending.glob("*.json")) - before:
            path.unlink()


def test_city_page_county_officer_sees_only_the_county(portal, clients):
    city, day = portal.city, day_of(portal)
    whole = clients["city"].get(f"/city?date={day}")
    assert whole.status == 200
    clean(whole.text)
    for code in (city.in_county, city.out_county, city.hospital):
        assert f'href="/org/{code}/{day}"' in whole.text
    county = clients["county"].get(f"/city?date={day}")
    assert county.status == 200
    assert f'href="/org/{city.in_county}/{day}"' in county.text
    assert city.out_county not in county.text
    # the filter: a peer group the hospital is not in leaves it out
    group = city.registry.get(city.in_county).peer_group
    other_group = next(g for g in ("tertiary", "secondary", "primary", "county") if g != group)
    narrowed = clients["city"].get(f"/city?date={day}&peer_group={other_group}").text
    assert f'href="/org/{city.in_county}/{day}"' not in narrowed
    assert clients["org"].get("/city").status == 403
    month = clients["city"].get(f"/city/month?month={day[:7]}")
    assert month.status == 200 and city.hospital in month.text
    clean(month.text)
    assert city.out_county not in clients["county"].get(f"/city/month?month={day[:7]}").text


def test_hostile_organisation_name_is_text_on_every_page(portal, clients):
    city, day = portal.city, day_of(portal)
    escaped = str(escape(HOSTILE_NAME))  # as Jinja escapes it: quotes too
    for path in (
        f"/city?date={day}",
        f"/city/month?month={day[:7]}",
        f"/org/{city.hostile_org}/{day}",
        f"/acceptance?month={city.signed_month:%Y-%m}",
        "/waivers",
    ):
        page = clients["city"].get(path)
        assert page.status == 200, path
        assert '<script>alert("org")' not in page.text, path
        clean(page.text)
    assert escaped in clients["city"].get(f"/org/{city.hostile_org}/{day}").text
    assert escaped in clients["city"].get(f"/city?date={day}").text


def test_keys_are_paged_masked_and_downloaded_neutralised(portal, clients):
    city, day = portal.city, day_of(portal)
    org = city.hostile_key_org or city.hospital
    base = f"/org/{org}/{day}/keys"
    first = clients["org"].get(base)
    assert first.status == 200
    clean(first.text)
    match = re.search(r"共 (\d+) 条", first.text)
    assert match, first.text[:500]
    total = int(match.group(1))
    assert total > 0
    pages = -(-total // 100)
    assert f"第 1 / {pages} 页" in first.text
    assert clients["org"].get(f"{base}?page={pages}").status == 200
    assert clients["org"].get(f"{base}?page={pages + 1}").status == 404
    if city.hostile_key_org:
        assert "<script>alert('key')" not in first.text
    # CSV: every key, BOM, quoted, the hostile key a text cell; audited
    got = clients["org"].get(f"{base}.csv")
    assert got.status == 200 and got.header("Content-Type").startswith("text/csv")
    assert "attachment" in got.header("Content-Disposition")
    text = got.body.decode("utf-8")
    assert text.startswith("\ufeff")
    rows = list(csv.reader(io.StringIO(text[1:])))
    assert rows[0] == ["dataset", "rule_id", "dimension", "severity", "record_key", "detail"]
    assert len(rows) - 1 == total
    assert mask_text(text) == text
    for row in rows[1:]:
        for cell in row:
            assert not cell.lstrip(" \u3000").startswith(("=", "+", "-", "@")), cell
    if city.hostile_key_org:
        assert "'" + HOSTILE_KEY in [r[4] for r in rows[1:]]
    # one rule's keys only
    rule = rows[1][1]
    only = clients["org"].get(f"{base}.csv?rule={urllib.parse.quote(rule)}").body.decode()
    assert {r[1] for r in list(csv.reader(io.StringIO(only[1:])))[1:]} == {rule}
    # xlsx: the same rows, every cell a string, no formula
    import openpyxl

    got = clients["org"].get(f"{base}.xlsx")
    assert got.status == 200 and "spreadsheetml" in got.header("Content-Type")
    sheet = openpyxl.load_workbook(io.BytesIO(got.body)).active
    cells = [[c.value for c in row] for row in sheet.iter_rows()]
    assert cells[0] == rows[0] and len(cells) == len(rows)
    assert all(c.data_type == "s" for row in sheet.iter_rows() for c in row if c.value)
    if city.hostile_key_org:
        assert "'" + HOSTILE_KEY in [r[4] for r in cells[1:]]
    # another organisation's keys and downloads are not found, also by typed URL
    for suffix in ("", ".csv", ".xlsx"):
        assert clients["other"].get(f"/org/{org}/{day}/keys{suffix}").status == 404
    with contextlib.closing(sqlite3.connect(portal.config.portal_dir / "portal.sqlite3")) as db:
        audited = {r[0] for r in db.execute("SELECT action FROM portal_audit")}
    assert {"download keys.csv", "download keys.xlsx"} <= audited


def test_programme_pages_narrow_to_what_each_role_sees(portal, clients):
    city = portal.city
    month = day_of(portal)[:7]
    for role, code in (("city", city.hospital), ("county", city.in_county), ("org", city.hospital)):
        for path in ("/appeals", "/waivers", "/actions", "/rules", f"/org/{code}/calendar"):
            page = clients[role].get(f"{path}?month={month}" if "calendar" in path else path)
            assert page.status == 200, (role, path)
            clean(page.text)
    # only the city officer gets the forms that change things, and only it may post them
    assert [f for f in forms(clients["city"].get("/waivers").text) if f.action == "/waivers"]
    for role in ("county", "org"):
        posts = [f.action for f in forms(clients[role].get("/waivers").text) if f.method == "post"]
        assert posts == ["/logout"], (role, posts)
        assert clients[role].post("/waivers", {"csrf_token": csrf(clients[role])}).status == 403
    rules = clients["org"].get("/rules").text
    assert "patient.id_no" in rules or "id_no" in rules
    assert "整改 Fix:" in rules
    calendar = clients["org"].get(f"/org/{city.hospital}/calendar?month={month}").text
    assert "outpatient_visit" in calendar and 'class="cal ' in calendar
    assert clients["org"].get(f"/org/{city.other}/calendar").status == 404
    assert clients["county"].get(f"/org/{city.out_county}/calendar").status == 404


def test_acceptance_rows_per_role_and_the_officer_s_forms(portal, clients):
    city = portal.city
    month = f"{city.signed_month:%Y-%m}"
    whole = clients["city"].get(f"/acceptance?month={month}")
    assert whole.status == 200
    clean(whole.text)
    # sign while the month is not signed, else reopen (the browser scenario may have signed it)
    actions = {f.action for f in forms(whole.text)}
    verb = "reopen" if _snapshot(portal).signature(city.signed_month) else "sign"
    assert f"/acceptance/{month}/{verb}" in actions, actions
    own = clients["org"].get(f"/acceptance?month={month}").text
    verdicts = own.count('class="score good">合格') + own.count('class="score poor">不合格')
    assert verdicts == 1 and city.other not in own  # its own row only
    assert not [f for f in forms(own) if "/acceptance/" in f.action]
    county = clients["county"].get(f"/acceptance?month={month}").text
    assert city.in_county in county and city.out_county not in county
    assert clients["org"].post(f"/acceptance/{month}/sign", {"csrf_token": "x"}).status == 403
    sheet = clients["city"].get(f"/acceptance/{month}/v1.xlsx")
    if verb == "reopen":  # signed: version 1's sheet is there, for the city officer only
        assert sheet.status == 200 and sheet.body.startswith(b"PK")
        assert clients["county"].get(f"/acceptance/{month}/v1.xlsx").status == 403
    else:
        assert sheet.status == 404


def test_whatif_runs_on_the_snapshot_and_writes_nothing(portal, clients):
    city = portal.city
    page = clients["city"].get("/whatif")
    assert page.status == 200
    (form,) = [f for f in forms(page.text) if f.action == "/whatif"]
    month = f"{city.appeal_day:%Y-%m}"
    snapshot = portal.config.snapshot_dir / "CURRENT"
    generation = snapshot.read_text()
    done = clients["city"].post("/whatif", form.fields | {"month": month})
    assert done.status == 200, done.text[:400]
    clean(done.text)
    assert "变动的机构" in done.text and city.hospital in done.text
    bad = clients["city"].post(
        "/whatif", form.fields | {"month": month, "changes": "types: {<b>x</b>: {weight: 2}}"}
    )
    assert bad.status == 200 and "not a rule type" in bad.text and "<b>x</b>" not in bad.text
    assert snapshot.read_text() == generation
    assert clients["county"].get("/whatif").status == 403
