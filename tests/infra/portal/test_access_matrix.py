"""Every route of the portal × city officer, county officer, organisation user and anonymous,
against the explicit table below: any other answer fails (a 200 where the table says 403 or
404 is an open door). The table is keyed by the app's own route list, so a new route without
a row fails too.

Organisation routes are asked about four organisations: the organisation user's own
hospital (outside the county officer's county), a hospital of that county, the county's
platform, and a code that does not exist. An organisation one may not see answers 404, like
an unknown one (its existence is not revealed). POSTs carry the session's CSRF token (this
tests roles, test_security tests CSRF) and ask for nothing that could be applied: an
allowed role gets 400 (the form is empty) or 404 (no such appeal, waiver or month)."""

from __future__ import annotations

import pytest

from tests.infra.portal.conftest import Client, csrf, logged_in, pending

pytestmark = pytest.mark.integration

ROLES = ("city", "county", "org", "anonymous")
NO_ORG = "00000000000000000X"
NO_MONTH = "1999-01"

# What a role gets on a page it may not open: anonymous → the login (303), a role not
# listed → 403. A refused POST of an anonymous visitor is the CSRF check's 403 (no session).
LOGIN, DENIED, HIDDEN = 303, 403, 404

# route (method, path as the app declares it) -> expected status per role; an organisation
# route maps each target (own, county, platform, unknown) to its row.
PAGES = {
    ("GET", "/"): (303, 303, 303, LOGIN),
    ("GET", "/city"): (200, 200, DENIED, LOGIN),
    ("GET", "/city/month"): (200, 200, DENIED, LOGIN),
    ("GET", "/appeals"): (200, 200, 200, LOGIN),
    ("POST", "/appeals/{appeal_id}/decide"): (404, DENIED, DENIED, DENIED),
    ("GET", "/waivers"): (200, 200, 200, LOGIN),
    ("POST", "/waivers"): (400, DENIED, DENIED, DENIED),
    ("POST", "/waivers/{waiver_id}/end"): (404, DENIED, DENIED, DENIED),
    ("GET", "/whatif"): (200, DENIED, DENIED, LOGIN),
    ("POST", "/whatif"): (200, DENIED, DENIED, DENIED),  # writes nothing: the form again
    ("GET", "/acceptance"): (200, 200, 200, LOGIN),
    ("POST", "/acceptance/{month}/sign"): (404, DENIED, DENIED, DENIED),
    ("POST", "/acceptance/{month}/reopen"): (404, DENIED, DENIED, DENIED),
    ("GET", "/acceptance/{month}/v{version:int}.xlsx"): (404, DENIED, DENIED, LOGIN),
    ("GET", "/rules"): (200, 200, 200, LOGIN),
    ("GET", "/actions"): (200, 200, 200, LOGIN),
    ("GET", "/login"): (303, 303, 303, 200),  # a logged-in visitor is sent on
    ("GET", "/healthz"): (200, 200, 200, 200),
    ("GET", "/static"): (200, 200, 200, 200),  # /static/portal.css
}
# Organisation routes: (city, county, org, anonymous) per target organisation.
SEEN, GONE = "seen", "gone"  # placeholders resolved per route below
ORG_TARGETS = {
    "own": (SEEN, HIDDEN, SEEN, LOGIN),  # the org user's hospital, outside the county
    "county": (SEEN, SEEN, HIDDEN, LOGIN),  # a hospital of the county officer's county
    "platform": (SEEN, SEEN, HIDDEN, LOGIN),  # the county's platform
    "unknown": (HIDDEN, HIDDEN, HIDDEN, LOGIN),
}
ORG_PAGES = {
    ("GET", "/org/{code}"): 303,  # to its latest scored date
    ("GET", "/org/{code}/calendar"): 200,
    ("GET", "/org/{code}/{day}"): 200,
    ("GET", "/org/{code}/{day}/keys"): 200,
    ("GET", "/org/{code}/{day}/keys.csv"): 200,
    ("GET", "/org/{code}/{day}/keys.xlsx"): 200,
}
# The appeal: only the organisation user, on its own results; an empty form → 400.
APPEAL = ("POST", "/org/{code}/{day}/appeal")
APPEAL_TARGETS = {
    "own": (DENIED, DENIED, 400, DENIED),
    "county": (DENIED, DENIED, HIDDEN, DENIED),
    "platform": (DENIED, DENIED, HIDDEN, DENIED),
    "unknown": (DENIED, DENIED, HIDDEN, DENIED),
}
# Covered by test_security (each would end or start the session under test).
NOT_IN_MATRIX = {("POST", "/login"), ("POST", "/logout")}


def app_routes(config) -> set[tuple[str, str]]:
    from starlette.routing import Mount, Route

    from infra.portal.app import create_app
    from tests.infra.portal.conftest import cheap_portal_config

    found = set()
    for route in create_app(config, config=cheap_portal_config()).routes:
        if isinstance(route, Mount):
            found.add(("GET", route.path))
        elif isinstance(route, Route):
            found |= {(m, route.path) for m in route.methods or () if m != "HEAD"}
        else:
            raise AssertionError(f"a route of an unknown kind: {route!r}")
    return found


def test_every_route_has_a_row(portal):
    declared = app_routes(portal.config)
    rows = set(PAGES) | set(ORG_PAGES) | {APPEAL} | NOT_IN_MATRIX
    assert declared - rows == set(), "routes without a row in the access matrix"
    assert rows - declared == set(), "rows of routes the app no longer has"


def _concrete(path: str, code: str, day: str, month: str) -> str:
    return (
        path.replace("{code}", code)
        .replace("{day}", day)
        .replace("{appeal_id}", "a-no-such-appeal")
        .replace("{waiver_id}", "w-no-such-waiver")
        .replace("{month}", month)
        .replace("v{version:int}", "v99")
        .replace("/static", "/static/portal.css")
    )


def test_the_access_matrix(portal):
    city = portal.city
    clients = {role: logged_in(portal, role) for role in ROLES[:3]}
    clients["anonymous"] = Client(portal)
    tokens = {role: csrf(c) for role, c in clients.items() if role != "anonymous"}
    targets = {
        "own": city.hospital,
        "county": city.in_county,
        "platform": city.county,
        "unknown": NO_ORG,
    }
    assert city.registry.get(city.county).kind == "county"
    day, month = city.appeal_day.isoformat(), city.signed_month.strftime("%Y-%m")
    cases = []  # (method, path, expected per role)
    for (method, path), expected in PAGES.items():
        month_here = NO_MONTH if method == "POST" or "xlsx" in path else month
        cases.append((method, _concrete(path, "", day, month_here), expected))
    for (method, path), allowed in ORG_PAGES.items():
        for target, row in ORG_TARGETS.items():
            expected = tuple(allowed if cell == SEEN else cell for cell in row)
            cases.append((method, _concrete(path, targets[target], day, month), expected))
    for target, expected in APPEAL_TARGETS.items():
        cases.append(("POST", _concrete(APPEAL[1], targets[target], day, month), expected))

    wrong, table, before = [], [], pending(portal)
    for method, path, expected in cases:
        got = []
        for role, want in zip(ROLES, expected, strict=True):
            client = clients[role]
            if method == "POST":
                answer = client.post(path, {"csrf_token": tokens.get(role, "")})
            else:
                answer = client.get(path)
            got.append(answer.status)
            if answer.status != want:
                wrong.append(f"{method} {path} as {role}: {answer.status}, expected {want}")
            if answer.status == LOGIN and role == "anonymous" and method == "GET":
                assert answer.header("location").startswith("/login?next="), path
        table.append(f"{method:4} {path:60} " + " ".join(f"{s:>4}" for s in got))
    print("\n".join(["method path" + " " * 56 + "city county org anon", *table]))
    assert not wrong, "\n".join(wrong)
    assert pending(portal) == before, "a request of the matrix queued an action"


def test_lists_show_only_the_organisations_one_may_see(portal):
    """A page every role may open lists only what the role may see: the county officer's city
    page, month and acceptance hold no hospital of another county, the hospital's acceptance
    only its own row."""
    city = portal.city
    registry = city.registry.organisations
    month = city.signed_month.strftime("%Y-%m")
    pages = {
        "county": [f"/city?date={city.appeal_day}", f"/city/month?month={month}", "/acceptance"],
        "org": [f"/acceptance?month={month}", "/appeals", "/waivers"],
    }
    for role, paths in pages.items():
        client = logged_in(portal, role)
        scope = portal.accounts[role].scope
        hidden = [
            o
            for o in registry.values()
            if (o.county_code != scope if role == "county" else o.org_code != scope)
        ]
        assert hidden
        for path in paths:
            answer = client.get(path)
            assert answer.status == 200, (role, path, answer.status)
            leaked = [o.org_code for o in hidden if o.org_code in answer.text]
            assert not leaked, f"{role} sees {leaked} on {path}"
