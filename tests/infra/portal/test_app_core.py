"""The portal's core over HTTP (infra/portal/app.py, access.py): the login, CSRF, session
fixation, the throttle's 429, the security headers and the access decorator, through
Starlette's test client against the real app and its SQLite store (one home per test)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import re

import pytest
from starlette.responses import PlainTextResponse
from starlette.routing import Route
from starlette.testclient import TestClient

from contracts.registry import load_registry
from infra.portal import access
from infra.portal.app import LOGIN_COOKIE, SESSION_COOKIE, create_app, safe_next
from infra.portal.auth import hash_password
from infra.portal.config import load_portal_config
from infra.settings import settings
from tests.infra.portal.conftest import cheap_portal_config

PASSWORD = "correct horse battery staple"
REGISTRY = load_registry()
HOSPITAL = next(o for o in REGISTRY.organisations.values() if o.kind == "hospital")
OTHER_COUNTY = next(
    o
    for o in REGISTRY.organisations.values()
    if o.kind == "hospital" and o.county_code != HOSPITAL.county_code
)


@access.page("city", "county", "org")
def org_page(request):
    org = access.require_org(request, request.path_params["code"])
    return PlainTextResponse(org.org_code)


@access.page("city")
async def city_only(request):
    return PlainTextResponse("city")


@access.page("city", "org")
async def change(request):
    async with request.form() as form:  # the endpoint reads the body the CSRF check read
        return PlainTextResponse(f"changed {form.get('x', '')}".strip())


@access.page("city")
async def broken(request):
    raise RuntimeError("a bug with a secret path /srv/x")


TEST_PAGES = [
    Route("/broken", broken),
    Route("/org/{code}", org_page),
    Route("/whatif", city_only),
    Route("/change", change, methods=["POST"]),
]


@pytest.fixture
def app(tmp_path):
    home = dataclasses.replace(settings(), home=tmp_path / "home", org_registry=None)
    app = create_app(home, config=cheap_portal_config(), pages=TEST_PAGES)
    store, now = (
        app.state.portal.store,
        dt.datetime.now(dt.UTC),
    )
    hashed = hash_password(PASSWORD, app.state.portal.auth.hasher)
    store.add_user("qc.wang", "city", "", hashed, now=now)
    store.add_user("county", "county", HOSPITAL.county_code, hashed, now=now)
    store.add_user("hosp", "org", HOSPITAL.org_code, hashed, now=now)
    return app


def client(app, base_url: str = "http://127.0.0.1") -> TestClient:
    return TestClient(app, base_url=base_url, follow_redirects=False)


def login_token(c: TestClient) -> str:
    page = c.get("/login")
    assert page.status_code == 200
    return re.search(r'name="login_token" value="([^"]+)"', page.text).group(1)


def log_in(c: TestClient, name: str, password: str = PASSWORD, next: str = "/"):
    return c.post(
        "/login",
        data={"name": name, "password": password, "login_token": login_token(c), "next": next},
    )


def csrf(c: TestClient) -> str:
    page = c.get("/login?next=/whatif")  # logged in: a redirect; read a page that renders
    assert page.status_code == 303
    text = c.get("/missing").text  # the 404 page is rendered with the session's token
    return re.search(r'name="csrf_token" value="([^"]+)"', text).group(1)


def test_login_lands_on_next_or_the_role_home_with_a_strict_httponly_cookie(app):
    c = client(app)
    answer = log_in(c, "hosp")
    assert answer.status_code == 303
    assert answer.headers["location"] == f"/org/{HOSPITAL.org_code}"
    cookie = next(h for h in answer.headers.get_list("set-cookie") if SESSION_COOKIE in h)
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/" in cookie
    assert "Secure" not in cookie  # http portal URL: no Secure (https sets it)
    assert log_in(client(app), "qc.wang", next="/whatif").headers["location"] == "/whatif"


def test_secure_cookie_when_the_portal_url_is_https(tmp_path):
    home = dataclasses.replace(
        settings(), home=tmp_path / "home", portal_url="https://dq.example.cn"
    )
    app = create_app(home, config=cheap_portal_config(), pages=[])
    app.state.portal.store.add_user(
        "qc.wang",
        "city",
        "",
        hash_password(PASSWORD, app.state.portal.auth.hasher),
        now=dt.datetime.now(dt.UTC),
    )
    answer = log_in(client(app, "https://dq.example.cn"), "qc.wang")
    assert "Secure" in next(h for h in answer.headers.get_list("set-cookie") if SESSION_COOKIE in h)


def test_a_wrong_password_is_401_and_no_session(app):
    c = client(app)
    answer = log_in(c, "hosp", "wrong password!")
    assert answer.status_code == 401
    assert "用户名或密码错误" in answer.text
    assert SESSION_COOKIE not in answer.headers.get("set-cookie", "")
    assert c.get(f"/org/{HOSPITAL.org_code}").status_code == 303


def test_the_login_form_needs_its_own_token(app):
    c = client(app)
    c.get("/login")
    forged = c.post("/login", data={"name": "hosp", "password": PASSWORD, "login_token": "x"})
    assert forged.status_code == 403
    assert SESSION_COOKIE not in forged.headers.get("set-cookie", "")


def test_anonymous_pages_redirect_to_the_login_with_next(app):
    answer = client(app).get(f"/org/{HOSPITAL.org_code}?x=1")
    assert answer.status_code == 303
    assert answer.headers["location"] == f"/login?next=%2Forg%2F{HOSPITAL.org_code}%3Fx%3D1"


def test_a_link_from_another_site_is_opened_again_from_this_one(app):
    path = f"/org/{HOSPITAL.org_code}?x=<b>"
    answer = client(app).get(path, headers={"Sec-Fetch-Site": "cross-site"})
    assert answer.status_code == 200  # no cookie came: a Strict cookie never does cross-site
    target = f"/org/{HOSPITAL.org_code}?x=%3Cb%3E"
    assert f'<meta http-equiv="refresh" content="0;url={target}">' in answer.text
    assert "<b>" not in answer.text
    same_site = client(app).get(path, headers={"Sec-Fetch-Site": "same-origin"})
    assert same_site.status_code == 303 and same_site.headers["location"].startswith("/login")


def test_roles_and_scopes_are_checked_on_the_server(app):
    hosp, county, city = client(app), client(app), client(app)
    log_in(hosp, "hosp")
    log_in(county, "county")
    log_in(city, "qc.wang")
    own, far = HOSPITAL.org_code, OTHER_COUNTY.org_code
    assert hosp.get(f"/org/{own}").text == own
    assert hosp.get(f"/org/{far}").status_code == 404  # not 403: existence is not revealed
    assert hosp.get("/org/NO-SUCH-CODE").status_code == 404
    assert hosp.get("/whatif").status_code == 403
    assert county.get(f"/org/{own}").status_code == 200
    assert county.get(f"/org/{HOSPITAL.county_code}").status_code == 200  # its platform
    assert county.get(f"/org/{far}").status_code == 404
    assert city.get(f"/org/{far}").status_code == 200
    assert city.get("/whatif").status_code == 200
    refused = [
        (r["user_name"], r["target"], r["outcome"])
        for r in app.state.portal.store.audit_rows()
        if r["action"] == "page"
    ]
    assert sorted(refused) == [
        ("county", f"/org/{far}", "refused: scope"),
        ("hosp", f"/org/{far}", "refused: scope"),
        ("hosp", "/whatif", "refused: role"),
    ]


def test_posts_need_the_sessions_csrf_token(app):
    c = client(app)
    log_in(c, "hosp")
    token = csrf(c)
    assert c.post("/change", data={"x": "1"}).status_code == 403
    assert c.post("/change", data={"csrf_token": "forged"}).status_code == 403
    assert c.post("/change", headers={"X-CSRF-Token": "forged"}).status_code == 403
    assert c.post("/change", data={"csrf_token": token, "x": "1"}).text == "changed 1"
    assert c.post("/change", headers={"X-CSRF-Token": token}, data={"x": "2"}).text == "changed 2"
    upload = c.post("/change", files={"f": ("a.yaml", b"x")}, data={"csrf_token": token, "x": "3"})
    assert upload.text == "changed 3"
    other = client(app)
    log_in(other, "qc.wang")
    assert other.post("/change", data={"csrf_token": token}).status_code == 403  # not its own
    audit = app.state.portal.store.audit_rows()
    assert sum(r["action"] == "csrf" and r["outcome"] == "refused" for r in audit) == 4


def test_logout_needs_the_token_and_ends_the_session(app):
    c = client(app)
    log_in(c, "hosp")
    stolen = c.cookies[SESSION_COOKIE]
    assert c.post("/logout").status_code == 403
    assert c.get(f"/org/{HOSPITAL.org_code}").status_code == 200
    assert c.post("/logout", data={"csrf_token": csrf(c)}).status_code == 303
    replay = client(app)
    replay.cookies.set(SESSION_COOKIE, stolen, domain="127.0.0.1")
    assert replay.get(f"/org/{HOSPITAL.org_code}").status_code == 303


def test_a_planted_session_id_is_never_promoted_by_a_login(app):
    c = client(app)
    c.cookies.set(SESSION_COOKIE, "attacker-chosen-id", domain="127.0.0.1")
    answer = log_in(c, "hosp")
    new_id = c.cookies[SESSION_COOKIE]
    assert answer.status_code == 303 and new_id != "attacker-chosen-id"
    attacker = client(app)
    attacker.cookies.set(SESSION_COOKIE, "attacker-chosen-id", domain="127.0.0.1")
    assert attacker.get(f"/org/{HOSPITAL.org_code}").status_code == 303
    # and a session of its own the victim logs in again from is replaced, not kept
    fresh = client(app)
    token = login_token(fresh)
    c.cookies.set(LOGIN_COOKIE, fresh.cookies[LOGIN_COOKIE], domain="127.0.0.1", path="/login")
    again = c.post("/login", data={"name": "hosp", "password": PASSWORD, "login_token": token})
    assert again.status_code == 303 and c.cookies[SESSION_COOKIE] != new_id
    reuse = client(app)
    reuse.cookies.set(SESSION_COOKIE, new_id, domain="127.0.0.1")
    assert reuse.get(f"/org/{HOSPITAL.org_code}").status_code == 303


def test_repeated_failures_answer_429_and_are_audited(app):
    limit = load_portal_config().throttle.account_failures
    c = client(app)
    for _ in range(limit):
        assert log_in(c, "hosp", "wrong password!").status_code == 401
    locked = log_in(c, "hosp")  # the right password, still locked
    assert locked.status_code == 429
    assert int(locked.headers["retry-after"]) > 0
    assert SESSION_COOKIE not in locked.headers.get("set-cookie", "")
    outcomes = [r["outcome"] for r in app.state.portal.store.audit_rows() if r["action"] == "login"]
    assert outcomes.count("refused") == limit and outcomes.count("locked") == 1


def test_security_headers_on_every_answer(app):
    c = client(app)
    for answer in (c.get("/login"), c.get("/missing"), c.get("/static/portal.css")):
        headers = answer.headers
        assert headers["content-security-policy"].startswith("default-src 'self'")
        assert "unsafe-inline" not in headers["content-security-policy"]
        assert headers["x-frame-options"] == "DENY"
        assert headers["x-content-type-options"] == "nosniff"
        assert headers["referrer-policy"] == "same-origin"
    log_in(c, "hosp")
    assert c.get(f"/org/{HOSPITAL.org_code}").headers["cache-control"] == "no-store"
    assert "no-store" not in c.get("/static/portal.css").headers.get("cache-control", "")


def test_a_failure_is_a_plain_500_page_with_the_headers(app):
    c = TestClient(
        app, base_url="http://127.0.0.1", follow_redirects=False, raise_server_exceptions=False
    )
    log_in(c, "qc.wang")
    answer = c.get("/broken")
    assert answer.status_code == 500
    assert "/srv/x" not in answer.text and "Traceback" not in answer.text
    assert answer.headers["x-frame-options"] == "DENY"
    assert answer.headers["content-security-policy"].startswith("default-src 'self'")


def test_templates_have_no_inline_script_or_style():
    from infra.portal.app import TEMPLATES_DIR

    for template in TEMPLATES_DIR.glob("*.html"):
        text = template.read_text(encoding="utf-8")
        assert not re.search(r"<script(?![^>]*\bsrc=)|<style|\sstyle=|\son\w+=", text), template


def test_a_body_over_the_limit_is_413(app):
    c = client(app)
    log_in(c, "hosp")
    size = load_portal_config().requests.max_body_kib * 1024 + 1
    assert c.post("/change", content=b"x" * size).status_code == 413


def test_next_never_leaves_the_site():
    for hostile in ("//evil.example", "https://evil.example/", "/\\evil", "/login", "x", None):
        assert safe_next(hostile) == "/"
    assert safe_next("/org/X/2026-11-10?rule=a") == "/org/X/2026-11-10?rule=a"


def test_an_unguarded_page_stops_the_app(tmp_path):
    home = dataclasses.replace(settings(), home=tmp_path / "home")
    with pytest.raises(RuntimeError, match="not wrapped"):
        create_app(home, pages=[Route("/open", lambda request: PlainTextResponse("x"))])


def test_the_portal_keeps_one_generation_and_its_bounded_cache(tmp_path):
    import gc
    import weakref

    from infra.portal.app import Portal
    from tests.expectations.publish.test_snapshot import _hand_made_generation

    config = dataclasses.replace(settings(), home=tmp_path / "home")
    portal = Portal(config, cheap_portal_config())
    days = [dt.date(2026, 11, 1)]
    _hand_made_generation(config.snapshot_dir, "g1", days)
    first = portal.snapshot()
    assert first is not None and first.scores(days[0])
    assert first.cache_info().maxsize == load_portal_config().snapshot.cache_files
    assert portal.snapshot() is first  # same generation: what it has read is kept
    gone = weakref.ref(first)
    _hand_made_generation(config.snapshot_dir, "g2", days)
    second = portal.snapshot()
    assert second.generation == "g2" and second.cache_info().currsize == 0
    del first
    gc.collect()
    assert gone() is None  # the old generation went with its cache


def test_the_reports_stylesheet_is_served_from_its_owner_and_linked_first(app):
    from expectations.publish.report import STATIC

    c = client(app)
    css = c.get("/static/report.css")
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")
    assert css.text == (STATIC / "report.css").read_text(encoding="utf-8")
    assert "unsafe-inline" not in css.headers["content-security-policy"]
    page = c.get("/login").text
    assert page.index('href="/static/report.css"') < page.index('href="/static/portal.css"')
    assert c.get("/static/../templates/base.html").status_code == 404
