"""What the portal's pages share: the snapshot of the request, parsing a date or month from a
path or query, the report bodies' links to portal routes, the visible part of the registry,
the scale (acceptance bar, decimals), queuing an action (`queue`) from a POST endpoint
(`action_endpoint`), and labels for the templates.

Every value a page shows comes from the published snapshot (expectations/publish/snapshot.py):
the portal never opens the warehouse. Visibility is the access policy's (infra/portal/access):
a page narrows every list to `visible(request)` on the server, whatever the links show.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable
from functools import cache
from typing import Any
from urllib.parse import quote, urlencode

from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from contracts import labels
from contracts.registry import Organisation, Registry
from contracts.timezone import TZ
from expectations.publish.report import Links
from infra.portal import access

MAX_QUERY = 64  # characters of a query value worth reading (a date, code, rule id)


class PortalLinks(Links):
    """The report bodies' links as portal routes (never a file)."""

    def org(self, org_code: str, day: dt.date) -> str:
        return org_url(org_code, day)

    def city(self, day: dt.date) -> str:
        return f"/city?{urlencode({'date': day.isoformat()})}"

    def keys(self, org_code: str, day: dt.date, rule_id: str | None = None) -> str:
        query = f"?{urlencode({'rule': rule_id})}" if rule_id else ""
        return f"{org_url(org_code, day)}/keys{query}"


LINKS = PortalLinks()


def org_url(org_code: str, day: dt.date | None = None) -> str:
    base = f"/org/{quote(org_code, safe='')}"
    return f"{base}/{day.isoformat()}" if day else base


def snapshot(request: Request):
    """The published snapshot; 503 before the first publication."""
    current = access.snapshot(request)
    if current is None:
        raise HTTPException(503)
    return current


def today() -> dt.date:
    """Today in the standard's time zone (an appeal's window is counted in it)."""
    return dt.datetime.now(TZ).date()


def query(request: Request, name: str) -> str:
    return (request.query_params.get(name) or "").strip()[:MAX_QUERY]


def parse_date(value: str) -> dt.date:
    """A YYYY-MM-DD from a path or query; 404 for anything else (a page that cannot exist)."""
    try:
        if len(value) != 10:
            raise ValueError(value)
        return dt.date.fromisoformat(value)
    except ValueError:
        raise HTTPException(404) from None


def parse_month(value: str) -> dt.date:
    """A YYYY-MM (or a date inside the month); its first day; 404 for anything else."""
    try:
        if len(value) == 7:
            return dt.date.fromisoformat(value + "-01")
        return parse_date(value).replace(day=1)
    except ValueError:
        raise HTTPException(404) from None


def scored_day(current: Any, value: str) -> dt.date:
    """The date asked (a scored one), or the latest scored date when none is asked."""
    dates = current.dates()
    if not value:
        if not dates:
            raise HTTPException(404)
        return dates[-1]
    day = parse_date(value)
    if day not in dates:
        raise HTTPException(404)
    return day


def month_of(current: Any, value: str) -> dt.date:
    months = current.months()
    if not value:
        if not months:
            raise HTTPException(404)
        return months[-1]
    month = parse_month(value)
    if month not in months:
        raise HTTPException(404)
    return month


def visible(request: Request, registry: Registry | None = None) -> Registry:
    """The registry narrowed to the organisations the principal may see."""
    registry = registry or access.registry(request)
    who = access.principal(request)
    codes = access.visible_codes(who, registry) if who else set()
    return Registry(
        {c: o for c, o in registry.organisations.items() if c in codes}, registry.source
    )


def counties(registry: Registry) -> list[tuple[str, str]]:
    """(county code, name) of the registry's counties, by code."""
    from contracts.codesystems import division_name

    codes = sorted({o.county_code for o in registry.organisations.values()})
    return [(c, division_name(c) or c) for c in codes]


@cache
def scale() -> tuple[float, int]:
    """(acceptance bar, decimals of a published composite) of contracts/scoring.yaml."""
    from expectations.scoring.config import load_scoring_config

    config = load_scoring_config()
    return config.acceptance.bar, config.ranking.decimals


@cache
def appeals_config():
    from expectations.programme.config import load_appeals_config

    return load_appeals_config()


def in_window(day: dt.date) -> bool:
    """Whether results of `day` may still be appealed today."""
    return today() <= appeals_config().last_day(day)


def form_text(form: Any, name: str, limit: int = 4000) -> str:
    value = form.get(name)
    return value.strip()[: limit + 1] if isinstance(value, str) else ""


class Refused(Exception):
    """A form the queue (or the page) refuses: shown to the user with its reason (400)."""


def refused(request: Request, exc: Refused):
    return access.render(request, "refused.html", status_code=400, reason=str(exc))


def queue(request: Request, kind: str, payload: dict[str, Any], target: str) -> str:
    """Queue an action for `hqlake apply` as the principal, audit it, start an apply when the
    home is idle, and return the action id; a payload the queue refuses raises Refused."""
    from infra.actions import ActionRefused, enqueue, kick

    portal = access.portal(request)
    who = access.principal(request)
    assert who is not None  # page() let only a logged-in principal in
    try:
        action_id = enqueue(
            portal.settings.actions_dir, kind, payload, by=who.name, role=who.role, scope=who.scope
        )
    except ActionRefused as exc:
        access.audit(request, kind, target, f"refused: {exc}"[:500])
        raise Refused(str(exc)) from None
    access.audit(request, kind, target, f"queued {action_id}")
    kick(portal.settings)
    return action_id


def to_actions(action_id: str) -> RedirectResponse:
    """After a POST: the user's actions, the new one marked (303, so a reload does not post)."""
    return RedirectResponse(f"/actions?{urlencode({'queued': action_id})}", status_code=303)


def action_endpoint(
    step: Callable[[Request, dict[str, str]], str], *fields: str
) -> Callable[[Request], Awaitable[Response]]:
    """The POST endpoint of an action: it reads the text `fields` of the form (`form_text`),
    then runs `step(request, values)` in a thread (it reads the snapshot and queues through
    `queue`). The action id it returns → the user's actions (`to_actions`); a Refused → the
    refused page with its reason (400); an HTTPException (404, 503) goes through."""

    async def endpoint(request: Request) -> Response:
        values: dict[str, str] = {}
        if fields:
            async with request.form() as form:
                values = {k: form_text(form, k) for k in fields}
        return await run_in_threadpool(_queued, step, request, values)

    endpoint.__name__ = endpoint.__qualname__ = step.__name__.lstrip("_")
    endpoint.__doc__ = step.__doc__
    return endpoint


def _queued(
    step: Callable[[Request, dict[str, str]], str], request: Request, values: dict[str, str]
) -> Response:
    try:
        action_id = step(request, values)
    except Refused as exc:
        return refused(request, exc)
    return to_actions(action_id)


def org_label(org: Organisation) -> str:
    return f"{org.name} {org.org_code}"


LABELS = {
    "PEER_GROUPS": labels.PEER_GROUPS,
    "DIMENSIONS": labels.DIMENSIONS,
    "SEVERITIES": labels.SEVERITIES,
    "APPEAL_STATUSES": labels.APPEAL_STATUSES,
    "CHANGES": labels.CHANGES,
}
