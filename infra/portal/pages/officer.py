"""The monthly acceptance (everyone reads the rows they may see; the city officer signs,
reopens and downloads the commission's xlsx of a signed version), the what-if (the city
officer edits or uploads a change and sees ranks and acceptance before and after, computed
from the snapshot's what-if inputs: nothing is written) and the rule knowledge base."""

from __future__ import annotations

import calendar as calendar_module
import datetime as dt
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, Response

from contracts.loader import CONTRACTS_DIR, ContractError
from infra.portal import access
from infra.portal.pages import common

MAX_CHANGE_FILE = 64 * 1024  # characters of a what-if change file
EXAMPLE_CHANGE = CONTRACTS_DIR / "examples" / "whatif.yaml"  # shown in the empty form


def acceptance_page(request: Request) -> Response:
    current = common.snapshot(request)
    month = common.month_of(current, common.query(request, "month"))
    shown = common.visible(request, current.registry())
    stored = current.acceptance(month)
    computed = not stored  # `hqlake acceptance` or a signing stores it; until then, judge here
    if computed:
        from expectations.scoring.config import load_scoring_config
        from expectations.scoring.whatif import judge_acceptance

        runs, results = current.whatif_inputs(month)
        stored = judge_acceptance(runs, results, current.registry(), load_scoring_config(), month)
    rows = [r for r in stored if r["org_code"] in shown.organisations]
    who = access.principal(request)
    signed = current.signature(month)
    signature = None
    if signed is not None:
        sig = signed.signature
        lines = {s["org_code"]: s for s in signed.subsidies}
        signature = {
            "version": sig["version"],
            "signer": sig["signer"],
            "signed_at": sig["signed_at"],
            "passed": sig["passed"],
            "organisations": sig["organisations"],
            "reopening": signed.reopening,
            "sheet": who.role == "city"
            and current.acceptance_sheet(month, sig["version"]) is not None,
        }
        rows = [r | {"subsidy": lines.get(r["org_code"])} for r in rows]
    last_day = month.replace(day=calendar_module.monthrange(month.year, month.month)[1])
    return access.render(
        request,
        "acceptance.html",
        month=month,
        months=list(reversed(current.months())),
        rows=rows,
        computed=computed,
        names={c: o.name for c, o in shown.organisations.items()},
        signature=signature,
        may_sign=who.role == "city",
        month_over=common.today() > last_day,
        org_url=common.org_url,
        **common.LABELS,
    )


def _month_param(request: Request) -> dt.date:
    current = common.snapshot(request)
    value = request.path_params["month"]
    if len(value) != 7:
        raise HTTPException(404)
    return common.month_of(current, value)


def _sign(request: Request, _fields: dict[str, str]) -> str:
    month = _month_param(request)
    return common.queue(
        request, "acceptance_sign", {"month": f"{month:%Y-%m}"}, f"acceptance/{month:%Y-%m}"
    )


sign = common.action_endpoint(_sign)


def _reopen(request: Request, fields: dict[str, str]) -> str:
    month = _month_param(request)
    if not fields["reason"]:
        raise common.Refused("请填写重新开启的理由 / give the reason")
    return common.queue(
        request,
        "acceptance_reopen",
        {"month": f"{month:%Y-%m}", "reason": fields["reason"]},
        f"acceptance/{month:%Y-%m}",
    )


reopen = common.action_endpoint(_reopen, "reason")


def sheet(request: Request) -> Response:
    current = common.snapshot(request)
    month = _month_param(request)
    version = request.path_params["version"]
    path = current.acceptance_sheet(month, version)
    if path is None:
        raise HTTPException(404)
    name = f"acceptance-{month:%Y-%m}-v{version}.xlsx"
    access.audit(request, "download acceptance sheet", f"acceptance/{month:%Y-%m}/v{version}", "ok")
    return FileResponse(
        path,
        media_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        filename=name,
    )


def _whatif_form(request: Request, current: Any, **ctx: Any) -> Response:
    return access.render(
        request,
        "whatif.html",
        months=list(reversed(current.months())),
        **{
            "month": None,
            "text": EXAMPLE_CHANGE.read_text(encoding="utf-8"),
            "error": None,
            "body": None,
        }
        | ctx,
    )


def whatif_page(request: Request) -> Response:
    return _whatif_form(request, common.snapshot(request))


async def whatif_run(request: Request) -> Response:
    async with request.form() as form:
        month = common.form_text(form, "month", 10)
        text = common.form_text(form, "changes", MAX_CHANGE_FILE)
        upload = form.get("file")
        name = "portal"
        if upload is not None and not isinstance(upload, str) and upload.filename:
            raw = await upload.read(MAX_CHANGE_FILE + 1)
            text = raw.decode("utf-8", errors="replace")
            name = upload.filename[:200]
    return await run_in_threadpool(_whatif, request, month, text, name)


def _whatif(request: Request, month_value: str, text: str, name: str) -> Response:
    from expectations.publish.whatif_page import render_whatif_body
    from expectations.rules.rulebase import rulebase
    from expectations.scoring.config import load_scoring_config
    from expectations.scoring.whatif import compare, load_changes

    current = common.snapshot(request)
    month = common.month_of(current, month_value)
    ctx = {"month": month, "text": text}
    if len(text) > MAX_CHANGE_FILE:
        return _whatif_form(
            request, current, error="变更文件过大 / the change file is too large", **ctx
        )
    registry = current.registry()
    rule_base, base = rulebase(), load_scoring_config()
    try:
        changes = load_changes(name, rule_base, base, registry, text=text)
    except ContractError as exc:
        return _whatif_form(request, current, error=str(exc), **ctx)
    runs, rows = current.whatif_inputs(month)
    dates = sorted(d for d in runs if d.replace(day=1) == month)
    if not dates:
        return _whatif_form(request, current, error="该月没有评分 / no scores that month", **ctx)
    answer = compare(runs, rows, registry, base, changes, rule_base.overrides, dates[0], dates[-1])
    access.audit(request, "whatif", f"{month:%Y-%m}", f"ok {answer['moves']} move")
    return _whatif_form(request, current, body=render_whatif_body(answer), **ctx)


def rules_page(request: Request) -> Response:
    current = common.snapshot(request)
    dimension = common.query(request, "dimension")
    rows = [r for r in current.rules() if not dimension or r["dimension"] == dimension]
    rows.sort(key=lambda r: (-r["recent_results_failed"], r["rule_id"]))
    return access.render(
        request,
        "rules.html",
        rules=rows,
        dimension=dimension,
        total=len(current.rules()),
        **common.LABELS,
    )
