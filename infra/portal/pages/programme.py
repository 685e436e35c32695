"""Section 8 in the portal: appeals (the officers' queue with approve / reject and a comment;
a county officer reads its county's, an organisation its own), waivers (the officers add and
end them; others read those covering what they see), and the user's actions with their state
(pending until `hqlake apply` or the next run, then applied or refused with the reason)."""

from __future__ import annotations

from typing import Any

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from contracts.labels import APPEAL_STATUSES, PEER_GROUPS
from infra.portal import access
from infra.portal.pages import common


def appeals_page(request: Request) -> Response:
    current = common.snapshot(request)
    shown = common.visible(request, current.registry())
    status = common.query(request, "status")
    rows = [
        a
        for a in current.appeals()
        if a["org_code"] in shown.organisations and (not status or a["status"] == status)
    ]
    who = access.principal(request)
    return access.render(
        request,
        "appeals.html",
        appeals=rows,
        names={c: o.name for c, o in shown.organisations.items()},
        status=status if status in APPEAL_STATUSES else "",
        may_decide=who.role == "city",
        org_url=common.org_url,
        **common.LABELS,
    )


def _decide(request: Request, fields: dict[str, str]) -> str:
    current = common.snapshot(request)
    appeal_id = request.path_params["appeal_id"]
    found = current.appeal(appeal_id)
    if found is None:
        raise HTTPException(404)
    if fields["decision"] not in ("approved", "rejected"):
        raise common.Refused("请选择批准或驳回 / choose approve or reject")
    if not fields["comment"]:
        raise common.Refused("请填写意见 / give a comment")
    return common.queue(
        request,
        "appeal_decide",
        {"appeal_id": appeal_id, "decision": fields["decision"], "comment": fields["comment"]},
        f"appeal/{appeal_id}",
    )


decide = common.action_endpoint(_decide, "decision", "comment")


def _covers_visible(waiver: dict[str, Any], shown: Any) -> bool:
    if waiver["org_code"]:
        return waiver["org_code"] in shown.organisations
    return any(o.peer_group == waiver["peer_group"] for o in shown.organisations.values())


def waivers_page(request: Request) -> Response:
    current = common.snapshot(request)
    shown = common.visible(request, current.registry())
    who = access.principal(request)
    rows = [w for w in current.waivers() if _covers_visible(w, shown)]
    return access.render(
        request,
        "waivers.html",
        waivers=rows,
        names={c: o.name for c, o in current.registry().organisations.items()},
        may_change=who.role == "city",
        organisations=sorted(shown.organisations.values(), key=lambda o: o.org_code),
        today=common.today(),
        **common.LABELS,
    )


def _waiver_add(request: Request, fields: dict[str, str]) -> str:
    common.snapshot(request)
    if bool(fields["org_code"]) == bool(fields["peer_group"]):
        raise common.Refused(
            "请选择一个机构或一个同级组 / choose one organisation or one peer group"
        )
    if fields["peer_group"] and fields["peer_group"] not in PEER_GROUPS:
        raise common.Refused("未知同级组 / unknown peer group")
    payload = {
        "rule": fields["rule"],
        "start": fields["start"],
        "end": fields["end"] or None,
        "reason": fields["reason"],
        "org_code": fields["org_code"] or None,
        "peer_group": fields["peer_group"] or None,
    }
    target = f"waiver/{fields['rule']}/{fields['org_code'] or fields['peer_group']}"
    return common.queue(request, "waiver_add", payload, target)


waiver_add = common.action_endpoint(
    _waiver_add, "rule", "start", "end", "reason", "org_code", "peer_group"
)


def _waiver_end(request: Request, fields: dict[str, str]) -> str:
    current = common.snapshot(request)
    waiver_id = request.path_params["waiver_id"]
    if not any(w["waiver_id"] == waiver_id for w in current.waivers()):
        raise HTTPException(404)
    return common.queue(
        request,
        "waiver_end",
        {"waiver_id": waiver_id, "end": fields["end"], "reason": fields["reason"]},
        f"waiver/{waiver_id}",
    )


waiver_end = common.action_endpoint(_waiver_end, "end", "reason")


def actions_page(request: Request) -> Response:
    from infra.actions import actions

    who = access.principal(request)
    folder = access.portal(request).settings.actions_dir
    rows = actions(folder, by=None if who.role == "city" else who.name)
    return access.render(
        request,
        "actions.html",
        actions=rows,
        queued=common.query(request, "queued"),
        everyone=who.role == "city",
    )
