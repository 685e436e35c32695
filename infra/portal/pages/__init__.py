"""The portal's pages (portal-pages owns this package): `ROUTES`, a list of Starlette
`Route`s, each endpoint wrapped by `infra.portal.access.page(*roles)` (create_app refuses any
other). The roles per route are the access matrix of issue 15; a page also narrows what it
shows to what the principal may see (`access.require_org`: 404 for an organisation outside
the scope). Modules: `common` (what the pages share), `city`, `org`, `programme` (appeals,
waivers, actions), `officer` (acceptance, what-if, rules)."""

from __future__ import annotations

from starlette.routing import BaseRoute, Route

from infra.portal.access import ROLES, page
from infra.portal.pages import city, officer, org, programme

OFFICERS = ("city", "county")
CITY = ("city",)

ROUTES: list[BaseRoute] = [
    Route("/", page(*ROLES)(org.home), methods=["GET"]),
    Route("/city", page(*OFFICERS)(city.day_page), methods=["GET"]),
    Route("/city/month", page(*OFFICERS)(city.month_page), methods=["GET"]),
    Route("/org/{code}", page(*ROLES)(org.latest), methods=["GET"]),
    Route("/org/{code}/calendar", page(*ROLES)(org.calendar_page), methods=["GET"]),
    Route("/org/{code}/{day}", page(*ROLES)(org.day_page), methods=["GET"]),
    Route("/org/{code}/{day}/keys", page(*ROLES)(org.keys_page), methods=["GET"]),
    Route("/org/{code}/{day}/keys.csv", page(*ROLES)(org.keys_csv), methods=["GET"]),
    Route("/org/{code}/{day}/keys.xlsx", page(*ROLES)(org.keys_xlsx), methods=["GET"]),
    Route("/org/{code}/{day}/appeal", page("org")(org.appeal), methods=["POST"]),
    Route("/appeals", page(*ROLES)(programme.appeals_page), methods=["GET"]),
    Route("/appeals/{appeal_id}/decide", page(*CITY)(programme.decide), methods=["POST"]),
    Route("/waivers", page(*ROLES)(programme.waivers_page), methods=["GET"]),
    Route("/waivers", page(*CITY)(programme.waiver_add), methods=["POST"]),
    Route("/waivers/{waiver_id}/end", page(*CITY)(programme.waiver_end), methods=["POST"]),
    Route("/whatif", page(*CITY)(officer.whatif_page), methods=["GET"]),
    Route("/whatif", page(*CITY)(officer.whatif_run), methods=["POST"]),
    Route("/acceptance", page(*ROLES)(officer.acceptance_page), methods=["GET"]),
    Route("/acceptance/{month}/sign", page(*CITY)(officer.sign), methods=["POST"]),
    Route("/acceptance/{month}/reopen", page(*CITY)(officer.reopen), methods=["POST"]),
    Route("/acceptance/{month}/v{version:int}.xlsx", page(*CITY)(officer.sheet), methods=["GET"]),
    Route("/rules", page(*ROLES)(officer.rules_page), methods=["GET"]),
    Route("/actions", page(*ROLES)(programme.actions_page), methods=["GET"]),
]
