"""The hostile hospital against the served portal: CSRF, session fixation, the login throttle
(and its bypasses by spelling the name differently or by another client address), header
injection and open redirects through the login's `next`, paths outside the portal, and every
value from uploads escaped on pages and neutralised in downloads.

Each attack runs against the real `hqlake serve` of the package fixture. Throttling tests
log in from loopback addresses of their own (127.0.0.x), so a lock they cause never locks
the other tests out."""

from __future__ import annotations

import csv
import io
import sqlite3
from urllib.parse import urlsplit

import pytest
from markupsafe import escape

from tests.infra.portal.conftest import (
    HOSTILE_KEY,
    HOSTILE_NAME,
    Account,
    Client,
    add_account,
    csrf,
    forms,
    hqlake,
    logged_in,
    login,
    pending,
)

pytestmark = pytest.mark.integration

SECURITY_HEADERS = {
    "x-frame-options": "DENY",
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",
}


def is_logged_in(client: Client) -> bool:
    """A logged-in visitor of /login is sent on (303); an anonymous one gets the form."""
    return client.get("/login").status == 303


def audit_rows(portal, action: str, *, prefix: bool = False) -> list[tuple]:
    """(user, address, action, target, outcome) of the audit rows of `action` (or of every
    action starting with it), oldest first, read as another process reads the file."""
    db = sqlite3.connect(f"file:{portal.config.portal_dir / 'portal.sqlite3'}?mode=ro", uri=True)
    try:
        rows = db.execute(
            "SELECT user_name, address, action, target, outcome FROM portal_audit ORDER BY seq"
        ).fetchall()
    finally:
        db.close()
    return [r for r in rows if (r[2].startswith(action) if prefix else r[2] == action)]


# ---- cookies and headers -------------------------------------------------------------------


def test_the_session_cookie_and_the_security_headers(portal):
    client = Client(portal)
    page = client.get("/login")
    assert page.status == 200
    response = login(client, portal.accounts["org"])
    assert response.status == 303
    (cookie,) = [c for c in response.headers.get_all("Set-Cookie") if "hqlake_session=" in c]
    attributes = {a.strip().lower() for a in cookie.split(";")[1:]}
    assert {"httponly", "samesite=strict", "path=/"} <= attributes, cookie
    assert "secure" not in attributes  # HQLAKE_PORTAL_URL is http here; https sets it
    for path in ("/login", "/healthz", "/no-such-page", "/static/portal.css"):
        answer = client.get(path)
        for name, value in SECURITY_HEADERS.items():
            assert answer.header(name) == value, (path, name, answer.header(name))
        csp = answer.header("content-security-policy")
        assert "default-src 'self'" in csp and "unsafe-inline" not in csp, (path, csp)
    assert client.get("/no-such-page").header("cache-control") == "no-store"


# ---- CSRF ----------------------------------------------------------------------------------


def test_a_post_without_the_sessions_csrf_token_is_refused(portal):
    victim = logged_in(portal, "org")
    attacker = logged_in(portal, "other")
    token, foreign = csrf(victim), csrf(attacker)
    assert token != foreign
    code, day = portal.city.hospital, portal.city.appeal_day
    appeal = {
        "dataset": portal.city.dataset,
        "rule_id": portal.city.rule_id,
        "reason": "csrf: a page elsewhere submits this for the victim",
    }
    before = pending(portal)
    for form, headers, path in (
        (appeal, {}, f"/org/{code}/{day}/appeal"),  # no token
        (appeal | {"csrf_token": ""}, {}, f"/org/{code}/{day}/appeal"),
        (appeal | {"csrf_token": token[:-1]}, {}, f"/org/{code}/{day}/appeal"),
        (appeal | {"csrf_token": foreign}, {}, f"/org/{code}/{day}/appeal"),  # another's
        (appeal, {"X-CSRF-Token": foreign}, f"/org/{code}/{day}/appeal"),
        (appeal, {}, f"/org/{code}/{day}/appeal?csrf_token={token}"),  # not in the URL
        ({}, {}, "/logout"),
        ({"csrf_token": foreign}, {}, "/logout"),
    ):
        answer = victim.post(path, form, headers=headers)
        assert answer.status == 403, (path, form, headers, answer.status)
    assert pending(portal) == before, "a refused POST queued an action"
    assert is_logged_in(victim), "a refused logout ended the session"
    # a JSON body is no way around it either
    answer = victim.request(
        "POST", "/logout", body=b'{"csrf_token": "x"}', headers={"Content-Type": "application/json"}
    )
    assert answer.status == 403
    assert audit_rows(portal, "csrf"), "refusals are audited"
    # the right token, as a header or a field, passes
    assert victim.post("/logout", {}, headers={"X-CSRF-Token": token}).status == 303
    assert not is_logged_in(victim)
    assert attacker.post("/logout", {"csrf_token": foreign}).status == 303


def test_a_login_needs_the_login_pages_own_token(portal):
    """Login CSRF: a page elsewhere cannot log a victim into the attacker's account."""
    client = Client(portal)
    account = portal.accounts["other"]
    answer = client.post("/login", {"name": account.name, "password": account.password})
    assert answer.status == 403 and "hqlake_session" not in client.cookies
    page = client.get("/login")
    (form,) = [f for f in forms(page.text) if f.action == "/login"]
    stranger = Client(portal)  # has the token of the form, not its cookie
    fields = form.fields | {"name": account.name, "password": account.password}
    assert stranger.post("/login", fields).status == 403
    assert "hqlake_session" not in stranger.cookies


# ---- session fixation ----------------------------------------------------------------------


def test_a_session_id_planted_before_the_login_is_never_promoted(portal):
    attacker = logged_in(portal, "other")
    planted = attacker.cookies["hqlake_session"]
    for value in (planted, "A" * 43):  # the attacker's live session, or a chosen id
        victim = Client(portal)
        (form,) = [f for f in forms(victim.get("/login").text) if f.action == "/login"]
        victim.cookies["hqlake_session"] = value
        account = portal.accounts["org"]
        fields = form.fields | {"name": account.name, "password": account.password}
        assert victim.post("/login", fields).status == 303
        assert victim.cookies["hqlake_session"] != value
        replay = Client(portal)
        replay.cookies["hqlake_session"] = value
        assert not is_logged_in(replay), "the planted id is a session after the victim's login"
        assert is_logged_in(victim)


def test_logout_ends_the_session_on_the_server(portal):
    client = logged_in(portal, "org")
    copy = Client(portal)
    copy.cookies = dict(client.cookies)
    assert is_logged_in(copy)
    assert client.post("/logout", {"csrf_token": csrf(client)}).status == 303
    assert not is_logged_in(copy), "a copy of the cookie outlives the logout"


def test_disabling_an_account_ends_its_sessions(portal):
    city = portal.city
    account = add_account(portal.config, "his.disabled", "org", city.other)
    client = logged_in_as(portal, account)
    done = hqlake("users", "disable", account.name)
    assert done.exit_code == 0, done.output
    assert not is_logged_in(client)
    assert login(Client(portal), account).status == 401


def logged_in_as(portal, account: Account, address: str = "127.0.0.1") -> Client:
    client = Client(portal, address)
    answer = login(client, account)
    assert answer.status == 303, (answer.status, answer.text[:300])
    return client


# ---- the login throttle --------------------------------------------------------------------


def test_failed_logins_lock_the_account_however_its_name_is_spelt(portal):
    account = add_account(portal.config, "his.throttled", "org", portal.city.other)
    guesser = Client(portal, "127.0.0.21")
    spellings = [" his.throttled", "his.throttled ", "\this.throttled", "his.throttled\n"]
    for name in [account.name, *spellings]:
        answer = login(guesser, Account(name, "org", "", "wrong"), "wrong password 123")
        assert answer.status == 401, (name, answer.status)
    # locked now, also with the right password and from another address, and headers that
    # name another client do not count
    for address, headers in (("127.0.0.21", {}), ("127.0.0.22", {"X-Forwarded-For": "10.9.9.9"})):
        client = Client(portal, address)
        page = client.get("/login")
        (form,) = [f for f in forms(page.text) if f.action == "/login"]
        fields = form.fields | {"name": account.name, "password": account.password}
        answer = client.post("/login", fields, headers=headers)
        assert answer.status == 429, (address, answer.status)
        assert int(answer.header("retry-after")) > 0
        assert "hqlake_session" not in client.cookies
    # another spelling is not another account to guess at: it is no account at all
    upper = Account(account.name.upper(), "org", "", account.password)
    assert login(Client(portal, "127.0.0.23"), upper).status in (401, 429)
    locked = [r for r in audit_rows(portal, "login") if r[4] == "locked"]
    assert {r[0] for r in locked} >= {account.name}


def test_failed_logins_from_one_address_lock_that_address(portal):
    guesser = "127.0.0.31"
    limit = _throttle().address_failures
    for i in range(limit):
        answer = login(Client(portal, guesser), Account(f"guess.{i}", "org", "", ""), "x" * 12)
        assert answer.status == 401, (i, answer.status)
    account = portal.accounts["other"]
    assert login(Client(portal, guesser), account).status == 429
    assert login(Client(portal, "127.0.0.32"), account).status == 303  # others still log in


def test_a_forwarded_for_header_names_no_other_client(portal):
    """uvicorn believes X-Forwarded-For from 127.0.0.1 by default: a local client could pick
    the address the throttle counts. The portal counts the peer unless a proxy is named."""
    client = Client(portal)
    page = client.get("/login")
    (form,) = [f for f in forms(page.text) if f.action == "/login"]
    fields = form.fields | {"name": "nobody.forwarded", "password": "not the password"}
    assert client.post("/login", fields, headers={"X-Forwarded-For": "10.1.1.9"}).status == 401
    rows = [r for r in audit_rows(portal, "login") if r[0] == "nobody.forwarded"]
    assert [r[1] for r in rows] == ["127.0.0.1"], rows


def _throttle():
    from infra.portal.config import load_portal_config

    return load_portal_config().throttle


# ---- header injection, open redirects, paths -----------------------------------------------


@pytest.mark.parametrize(
    "target",
    [
        "/\r\nSet-Cookie: evil=1",
        "/%0d%0aSet-Cookie:%20evil=1",
        "//evil.example/",
        "/\\evil.example",
        "https://evil.example/",
        "/login",
    ],
)
def test_the_login_goes_to_no_other_site_and_adds_no_header(portal, target):
    client = Client(portal)
    page = client.get("/login")
    (form,) = [f for f in forms(page.text) if f.action == "/login"]
    account = portal.accounts["org"]
    fields = form.fields | {"name": account.name, "password": account.password, "next": target}
    answer = client.post("/login", fields)
    assert answer.status == 303
    location = answer.header("location")
    assert location.startswith("/") and not location.startswith(("//", "/\\")), location
    assert not urlsplit(location).netloc and "\r" not in location and "\n" not in location
    assert all("evil" not in c for c in answer.headers.get_all("Set-Cookie") or [])


@pytest.mark.parametrize(
    "path",
    [
        "/static/../portal.sqlite3",
        "/static/..%2f..%2fportal%2fportal.sqlite3",
        "/static/%2e%2e/%2e%2e/portal/portal.sqlite3",
        "/static/..%5c..%5cportal.sqlite3",
        "/org/..%2f..%2fportal/2026-01-01/keys.csv",
        "/acceptance/..%2f..%2fportal/v1.xlsx",
    ],
)
def test_no_path_reaches_outside_the_portal(portal, path):
    for client in (Client(portal), logged_in(portal, "city")):
        answer = client.request("GET", path)
        assert answer.status in (303, 400, 403, 404), (path, answer.status)
        assert b"SQLite format" not in answer.body


# ---- values from uploads: text on pages, never formulas in downloads -----------------------


def _escaped(text: str, value: str) -> bool:
    """`value` is on the page as text: escaped as Jinja's autoescape writes it."""
    return str(escape(value)) in text


def test_an_organisation_name_from_the_registry_is_text_on_every_page(portal):
    city = portal.city
    officer = logged_in(portal, "city")
    month = city.signed_month.strftime("%Y-%m")
    for path in (
        f"/city?date={city.appeal_day}",
        f"/city/month?month={month}",
        f"/acceptance?month={month}",
        f"/org/{city.hostile_org}/{city.appeal_day}",
        f"/org/{city.hostile_org}/{city.appeal_day}/keys",
        f"/org/{city.hostile_org}/calendar",
        "/waivers",
    ):
        answer = officer.get(path)
        assert answer.status == 200, (path, answer.status)
        assert "<script>" not in answer.text, f"{path} carries the name's markup"
        assert _escaped(answer.text, HOSTILE_NAME), path


def test_a_failing_key_from_an_upload_is_text_and_no_formula(portal):
    city = portal.city
    client = logged_in(portal, "org")
    assert city.hostile_key_org == city.hospital
    base = f"/org/{city.hospital}/{city.appeal_day}"
    for path in (base, f"{base}/keys"):
        answer = client.get(path)
        assert "<script>alert('key')" not in answer.text, path
        assert _escaped(answer.text, HOSTILE_KEY), path
    answer = client.get(f"{base}/keys.csv")
    assert answer.status == 200
    assert answer.header("content-disposition").startswith("attachment;")
    rows = list(csv.reader(io.StringIO(answer.text.lstrip("\ufeff"))))
    cells = [c for row in rows for c in row]
    assert "'" + HOSTILE_KEY in cells and HOSTILE_KEY not in cells
    answer = client.get(f"{base}/keys.xlsx")
    import openpyxl

    book = openpyxl.load_workbook(io.BytesIO(answer.body))
    values = [c for sheet in book.worksheets for row in sheet.iter_rows() for c in row]
    assert not [c.value for c in values if c.data_type == "f"], "a cell is a formula"
    assert "'" + HOSTILE_KEY in [c.value for c in values]
    assert "download keys.csv" in {r[2] for r in audit_rows(portal, "download", prefix=True)}


def test_an_appeal_reason_is_text_where_it_is_shown(portal):
    city = portal.city
    client = logged_in(portal, "org")
    day_page = client.get(f"/org/{city.hospital}/{city.appeal_day}")
    appeal_forms = [f for f in forms(day_page.text) if f.action.endswith("/appeal")]
    others = [f for f in appeal_forms if f.fields.get("rule_id") != city.rule_id]
    assert others, "no other failed result to appeal"
    reason = '"><svg onload=alert(1)>=HYPERLINK("http://evil.example")\r\nX-Injected: 1'
    form, before = others[0], pending(portal)
    try:
        answer = client.post(form.action, form.fields | {"reason": reason})
        assert answer.status == 303, (answer.status, answer.text[:300])
        assert "x-injected" not in {k.lower() for k in answer.headers}
        listed = client.get(answer.header("location"))
        assert listed.status == 200
        assert "<svg onload" not in listed.text and "&lt;svg onload=alert(1)&gt;" in listed.text
    finally:  # the shared queue as it was: the browser scenario applies only its own
        for name in pending(portal) - before:
            (portal.config.actions_dir / "pending" / name).unlink()
