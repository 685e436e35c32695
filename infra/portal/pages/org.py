"""An organisation's pages: its day (the report's body with portal links, the masked keys
preview, problem changes, waivers and appeals on it, an appeal form per failed result), its
failing keys (paged, CSV, xlsx: masked in the snapshot, cells neutralised here) and its upload
calendar; and the appeal it submits."""

from __future__ import annotations

import calendar as calendar_module
import datetime as dt
import io
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote, urlencode

from markupsafe import Markup
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from contracts.labels import CHANGES
from contracts.loader import contracts
from expectations.publish.neutralise import spreadsheet_cell, spreadsheet_csv
from expectations.publish.report import render_org_body
from infra.portal import access
from infra.portal.pages import common

KEYS_PAGE = 100  # failing keys per page
KEYS_PREVIEW = 10  # keys on the organisation-day page
KEY_COLUMNS = ("dataset", "rule_id", "dimension", "severity", "record_key", "detail")
MAX_EXPORT = 100_000  # keys in one download (as the e-mail attachment's cap)


def home(request: Request) -> Response:
    return RedirectResponse(access.home_url(access.principal(request)), status_code=303)


def latest(request: Request) -> Response:
    """/org/{code}: the organisation's latest scored date."""
    current = common.snapshot(request)
    org = access.require_org(request, request.path_params["code"])
    dates = [d for d in current.dates() if current.score(org.org_code, d) is not None]
    day = (dates or current.dates() or [None])[-1]
    if day is None:
        raise HTTPException(404)
    return RedirectResponse(common.org_url(org.org_code, day), status_code=303)


def _org_day(request: Request):
    current = common.snapshot(request)
    org = access.require_org(request, request.path_params["code"])
    day = common.parse_date(request.path_params["day"])
    if day not in current.dates():
        raise HTTPException(404)
    return current, org, day


def _appealed(appeals: list[dict[str, Any]], day: dt.date) -> set[tuple[str, str]]:
    """(dataset, rule_id) of `day` with an appeal open or approved: nothing more to appeal."""
    return {
        (a["dataset"], a["rule_id"])
        for a in appeals
        if a["business_date"] == day and a["status"] in ("open", "approved")
    }


def _pending_appeals(request: Request, org_code: str, day: dt.date) -> set[tuple[str, str]]:
    from infra.actions import actions

    return {
        (a["payload"]["dataset"], a["payload"]["rule_id"])
        for a in actions(access.portal(request).settings.actions_dir)
        if a["kind"] == "appeal_submit"
        and a["state"] == "pending"
        and a["payload"]["org_code"] == org_code
        and a["payload"]["date"] == day.isoformat()
    }


def day_page(request: Request) -> Response:
    current, org, day = _org_day(request)
    who = access.principal(request)
    bar, decimals = common.scale()
    score = current.score(org.org_code, day)
    standing = current.standing(org.org_code, day)
    may_appeal = who.role == "org" and who.scope == org.org_code and common.in_window(day)
    taken = _appealed(standing.appeals, day) | (
        _pending_appeals(request, org.org_code, day) if may_appeal else set()
    )
    form = access.portal(request).templates.get_template("_appeal_form.html")

    def appeal_form(f: Mapping[str, Any]) -> Markup | None:
        if not may_appeal:
            return None
        if (f["dataset"], f["rule_id"]) in taken:
            return Markup('<span class="note">已申诉 Appealed</span>')
        action = f"{common.org_url(org.org_code, day)}/appeal"
        html = form.render(action=action, f=f, csrf_token=access.csrf_token(request))
        return Markup(html)  # noqa: S704 -- rendered with autoescape

    body = None
    if score is not None:
        body = render_org_body(
            day,
            score,
            current.trend(org.org_code, day),
            current.failures(org.org_code, day),
            org,
            bar=bar,
            decimals=decimals,
            explanation=current.explanation(org.org_code, day),
            standing=standing,
            links=common.LINKS,
            failure_actions=appeal_form,
        )
    keys, keys_total = current.failing_keys(org.org_code, day, limit=KEYS_PREVIEW)
    changes = [
        c | {"label": CHANGES.get(c["change"])} for c in current.failure_changes(org.org_code, day)
    ]
    waivers = [w for w in current.waivers() if _covers(w, org, day)]
    others = [d for d in current.dates() if current.score(org.org_code, d) is not None]
    return access.render(
        request,
        "org.html",
        org=org,
        day=day,
        body=body,
        keys=keys,
        keys_total=keys_total,
        keys_href=common.LINKS.keys(org.org_code, day),
        changes=changes,
        waivers=waivers,
        dates=others,
        may_appeal=may_appeal,
        window_last=common.appeals_config().last_day(day),
        calendar_href=f"{common.org_url(org.org_code)}/calendar?month={day:%Y-%m}",
        org_url=common.org_url,
        **common.LABELS,
    )


def _covers(waiver: Mapping[str, Any], org: Any, day: dt.date) -> bool:
    """Whether `waiver` covers the organisation on `day` (its own or its peer group's)."""
    if waiver["org_code"] and waiver["org_code"] != org.org_code:
        return False
    if waiver["peer_group"] and waiver["peer_group"] != org.peer_group:
        return False
    end = waiver["end_date"]
    return waiver["start_date"] <= day and (end is None or day <= end)


def keys_page(request: Request) -> Response:
    current, org, day = _org_day(request)
    rule = common.query(request, "rule") or None
    try:
        page = max(1, int(common.query(request, "page") or 1))
    except ValueError:
        raise HTTPException(404) from None
    rows, total = current.failing_keys(
        org.org_code, day, rule, offset=(page - 1) * KEYS_PAGE, limit=KEYS_PAGE
    )
    pages = max(1, -(-total // KEYS_PAGE))
    if page > pages:
        raise HTTPException(404)
    everything, _ = current.failing_keys(org.org_code, day, limit=MAX_EXPORT)
    rules = sorted({r["rule_id"] for r in everything})
    base = f"{common.org_url(org.org_code, day)}/keys"

    def page_href(n: int) -> str:
        return base + "?" + urlencode({k: v for k, v in (("rule", rule), ("page", n)) if v})

    download = urlencode({"rule": rule}) if rule else ""
    return access.render(
        request,
        "keys.html",
        org=org,
        day=day,
        rows=rows,
        total=total,
        page=page,
        pages=pages,
        first=(page - 1) * KEYS_PAGE + 1 if rows else 0,
        rule=rule,
        rules=rules,
        prev_href=page_href(page - 1) if page > 1 else None,
        next_href=page_href(page + 1) if page < pages else None,
        csv_href=f"{base}.csv" + (f"?{download}" if download else ""),
        xlsx_href=f"{base}.xlsx" + (f"?{download}" if download else ""),
        day_href=common.org_url(org.org_code, day),
    )


def _export(request: Request, extension: str) -> tuple[str, list[list[Any]]]:
    current, org, day = _org_day(request)
    rule = common.query(request, "rule") or None
    rows, total = current.failing_keys(org.org_code, day, rule, limit=MAX_EXPORT)
    name = f"failing-keys-{org.org_code}-{day.isoformat()}.{extension}"
    target = f"org/{org.org_code}/{day.isoformat()}/keys.{extension}" + (
        f"?rule={rule}" if rule else ""
    )
    access.audit(request, f"download keys.{extension}", target, f"ok {len(rows)} of {total}")
    return name, [[r[c] for c in KEY_COLUMNS] for r in rows]


def _attachment(name: str) -> str:
    # the name is built from a registry code and a date: quoted for the header all the same
    return f"attachment; filename*=UTF-8''{quote(name, safe='')}"


def keys_csv(request: Request) -> Response:
    name, rows = _export(request, "csv")
    return Response(
        spreadsheet_csv(KEY_COLUMNS, rows),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": _attachment(name)},
    )


def keys_xlsx(request: Request) -> Response:
    """The keys as an xlsx: every cell a string (neutralised), no formula, no URL."""
    import xlsxwriter

    name, rows = _export(request, "xlsx")
    out = io.BytesIO()
    book = xlsxwriter.Workbook(
        out, {"in_memory": True, "strings_to_formulas": False, "strings_to_urls": False}
    )
    sheet = book.add_worksheet("failing keys")
    for r, row in enumerate([list(KEY_COLUMNS), *rows]):
        for c, value in enumerate(row):
            sheet.write_string(r, c, str(spreadsheet_cell(value)))
    book.close()
    return Response(
        out.getvalue(),
        media_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        headers={"Content-Disposition": _attachment(name)},
    )


def calendar_page(request: Request) -> Response:
    """Each dataset × day of a month: received, late, missing, corrected (+ versions)."""
    current = common.snapshot(request)
    org = access.require_org(request, request.path_params["code"])
    month = common.month_of(current, common.query(request, "month"))
    cells = current.calendar(org.org_code, month)
    days = [
        month.replace(day=d)
        for d in range(1, calendar_module.monthrange(month.year, month.month)[1] + 1)
    ]
    scored = set(current.dates())
    datasets = contracts().datasets
    rows = [
        {
            "dataset": name,
            "title": datasets[name].title if name in datasets else None,
            "cells": [(d, cells[name].get(d), d in scored) for d in days],
        }
        for name in sorted(cells)
    ]
    months = current.months()
    return access.render(
        request,
        "calendar.html",
        org=org,
        month=month,
        days=days,
        rows=rows,
        months=months,
        org_url=common.org_url,
    )


def _appeal(request: Request, fields: dict[str, str]) -> str:
    """POST /org/{code}/{date}/appeal: the organisation's appeal of one failed result."""
    current, org, day = _org_day(request)
    who = access.principal(request)
    if who.scope != org.org_code:  # page("org") and require_org: its own, but say it twice
        raise HTTPException(404)
    if not common.in_window(day):
        raise common.Refused(
            f"{day} 的申诉期已于 {common.appeals_config().last_day(day)} 结束"
            f" / the appeal window of {day} is over"
        )
    failed = {(f["dataset"], f["rule_id"]) for f in current.failures(org.org_code, day)}
    if (fields["dataset"], fields["rule_id"]) not in failed:
        raise common.Refused("该日没有这条未通过的结果 / no such failed result on that day")
    if not fields["reason"]:
        raise common.Refused("请填写申诉理由 / give the reason")
    return common.queue(
        request,
        "appeal_submit",
        {
            "org_code": org.org_code,
            "date": day.isoformat(),
            "dataset": fields["dataset"],
            "rule_id": fields["rule_id"],
            "reason": fields["reason"],
        },
        f"org/{org.org_code}/{day.isoformat()}/{fields['dataset']}/{fields['rule_id']}",
    )


appeal = common.action_endpoint(_appeal, "dataset", "rule_id", "reason")
