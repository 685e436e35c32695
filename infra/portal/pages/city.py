"""The city's pages: the league tables of a day per peer group (the report's city body with
portal links, filtered by county and peer group; a county officer sees the county's
organisations only) and of a month (each organisation's mean composite over the month's
scored dates, ranked in its peer group as a day is, with its acceptance)."""

from __future__ import annotations

import statistics
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from contracts.labels import PEER_GROUPS
from contracts.registry import Registry
from expectations.publish.report import TREND_DAYS, band, render_city_body
from expectations.scoring.arithmetic import round_score
from infra.portal import access
from infra.portal.pages import common


def _filters(request: Request, current: Any) -> tuple[Registry, dict[str, Any]]:
    """The organisations the principal may see, narrowed by the county and peer-group
    filters of the query (a county officer's county is its scope), and what the filter form
    shows: the counties to choose from (the city officer's), the county and peer group."""
    everyone = current.registry()
    who = access.principal(request)
    county = who.scope if who.role == "county" else common.query(request, "county")
    group = common.query(request, "peer_group")
    if group not in PEER_GROUPS:
        group = ""
    visible = common.visible(request, everyone)
    kept = {
        c: o
        for c, o in visible.organisations.items()
        if (not county or o.county_code == county) and (not group or o.peer_group == group)
    }
    form = {
        "counties": common.counties(everyone) if who.role == "city" else [],
        "county": county,
        "peer_group": group,
    }
    return Registry(kept, visible.source), form


def day_page(request: Request) -> Response:
    current = common.snapshot(request)
    day = common.scored_day(current, common.query(request, "date"))
    shown, filters = _filters(request, current)
    scores = [r for r in current.scores(day) if r["org_code"] in shown.organisations]
    bar, decimals = common.scale()
    who = access.principal(request)
    body = render_city_body(
        day,
        scores,
        shown,
        trends={r["org_code"]: current.trend(r["org_code"], day, TREND_DAYS) for r in scores},
        bar=bar,
        decimals=decimals,
        # the signature's subsidy lines name every organisation: the city officer's to see
        signed=current.signature(day) if who.role == "city" else None,
        links=common.LINKS,
    )
    return access.render(
        request,
        "city.html",
        day=day,
        body=body,
        dates=list(reversed(current.dates())),
        months=current.months(),
        **filters,
        **common.LABELS,
    )


def _month_rows(current: Any, month: Any, shown: Registry, decimals: int, bar: float) -> list:
    dates = [d for d in current.dates() if d.replace(day=1) == month]
    daily: dict[str, list[float]] = {}
    for d in dates:
        for r in current.scores(d):
            if r["org_code"] in shown.organisations and r["composite"] is not None:
                daily.setdefault(r["org_code"], []).append(float(r["composite"]))
    accepted = {a["org_code"]: a for a in current.acceptance(month)}
    rows = []
    for code, values in daily.items():
        org = shown.organisations[code]
        mean = statistics.fmean(values)
        rows.append(
            {
                "org": org,
                "mean": mean,
                "rounded": round_score(mean, decimals),
                "band": band(mean, bar, decimals),
                "days": len(values),
                "acceptance": accepted.get(code),
            }
        )
    # ranked within the peer group on the rounded mean, equal values sharing a rank (1, 2, 2, 4)
    for row in rows:
        peers = [r["rounded"] for r in rows if r["org"].peer_group == row["org"].peer_group]
        row["rank"] = 1 + sum(1 for p in peers if p > row["rounded"])
        row["peer_size"] = len(peers)
    order = list(PEER_GROUPS)
    rows.sort(
        key=lambda r: (
            order.index(r["org"].peer_group) if r["org"].peer_group in order else len(order),
            r["rank"],
            r["org"].org_code,
        )
    )
    return rows


def month_page(request: Request) -> Response:
    current = common.snapshot(request)
    month = common.month_of(current, common.query(request, "month"))
    shown, filters = _filters(request, current)
    bar, decimals = common.scale()
    rows = _month_rows(current, month, shown, decimals, bar)
    groups: dict[str, list] = {}
    for r in rows:
        groups.setdefault(r["org"].peer_group, []).append(r)
    return access.render(
        request,
        "city_month.html",
        month=month,
        groups=groups,
        months=list(reversed(current.months())),
        **filters,
        bar=bar,
        org_url=common.org_url,
        **common.LABELS,
    )
