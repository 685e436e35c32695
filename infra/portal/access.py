"""The access policy every page goes through, and what a page needs to render.

Roles (issue 15): a city quality officer sees every organisation; a county officer the
county's platform and the hospitals whose `county_code` is the county; an organisation user
(a hospital, or a county platform's IT) its own organisation only. Authorisation is decided
here, on the server, for every route and every download:

- `page(*roles)` wraps an endpoint: anonymous → 303 to /login?next=…, a role not listed →
  403. A GET from another site (an e-mail's link, `Sec-Fetch-Site: cross-site`) carries no
  SameSite=Strict cookie: it gets a page that opens the same address again from this site
  (a meta refresh), where the session cookie is sent, so a logged-in user is not asked to
  log in again. `create_app` refuses to start with a page route that is not wrapped (fail closed).
- `require_org(request, code)` → the organisation, or 404 when it is unknown **or not
  visible** (a guessed code never reveals that it exists). A role or scope refusal is
  audited (who tried which path).
- `render(request, template, **ctx)` adds the principal, the session's CSRF token, the
  navigation and the snapshot's generation; `audit(...)` records an action.
"""

from __future__ import annotations

import datetime as dt
import functools
import inspect
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import quote

from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from contracts.registry import Organisation, Registry

if TYPE_CHECKING:
    from expectations.publish.snapshot import Snapshot
    from infra.portal.app import Portal

Role = Literal["city", "county", "org"]
ROLES: tuple[Role, ...] = ("city", "county", "org")


@dataclass(frozen=True)
class Principal:
    """Who is logged in. `scope`: "" for city, the county's 6-digit code for county, the
    organisation's code for org."""

    name: str
    role: Role
    scope: str


def can_see(principal: Principal, org: Organisation) -> bool:
    if principal.role == "city":
        return True
    if principal.role == "county":
        # the county's platform has the county's code as its own county_code too
        return org.county_code == principal.scope
    return org.org_code == principal.scope


def visible_codes(principal: Principal, registry: Registry) -> set[str]:
    return {code for code, org in registry.organisations.items() if can_see(principal, org)}


def home_url(principal: Principal) -> str:
    """Where a role lands after logging in (GET / redirects here)."""
    if principal.role == "org":
        return f"/org/{quote(principal.scope, safe='')}"
    return "/city"


# (path, 中文, English, roles): the navigation `render` gives the base template.
NAV: tuple[tuple[str, str, str, tuple[Role, ...]], ...] = (
    ("/city", "全市排名", "City", ("city", "county")),
    ("/org", "本机构", "My organisation", ("org",)),
    ("/appeals", "申诉", "Appeals", ROLES),
    ("/waivers", "豁免", "Waivers", ROLES),
    ("/whatif", "模拟", "What-if", ("city",)),
    ("/acceptance", "月度验收", "Acceptance", ROLES),
    ("/rules", "规则库", "Rules", ROLES),
    ("/actions", "操作记录", "Actions", ROLES),
)


def nav(principal: Principal | None) -> list[dict[str, str]]:
    if principal is None:
        return []
    return [
        {"href": home_url(principal) if path == "/org" else path, "zh": zh, "en": en}
        for path, zh, en, roles in NAV
        if principal.role in roles
    ]


def portal(request: Request) -> Portal:
    return request.app.state.portal


def principal(request: Request) -> Principal | None:
    return getattr(request.state, "principal", None)


def page(*roles: Role) -> Callable:
    """Decorate an endpoint (sync or async) with the roles that may request it."""
    unknown = set(roles) - set(ROLES)
    if not roles or unknown:
        raise ValueError(f"page() needs roles among {ROLES}, got {roles}")

    def wrap(endpoint: Callable) -> Callable:
        is_async = inspect.iscoroutinefunction(endpoint)

        @functools.wraps(endpoint)
        async def guarded(request: Request) -> Response:
            who = principal(request)
            if who is None:
                target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
                if request.method == "GET" and request.headers.get("sec-fetch-site") == (
                    "cross-site"
                ):
                    # a link from an e-mail: the Strict cookie comes with the next request
                    same = target if not target.startswith(("//", "/\\")) else "/"
                    return portal(request).templates.TemplateResponse(
                        request, "bounce.html", {"target": same}
                    )
                return RedirectResponse(f"/login?next={quote(target, safe='')}", status_code=303)
            if who.role not in roles:
                await run_in_threadpool(audit, request, "page", request.url.path, "refused: role")
                raise HTTPException(403)
            if is_async:
                return await endpoint(request)
            return await run_in_threadpool(endpoint, request)

        guarded.roles = frozenset(roles)  # type: ignore[attr-defined]
        return guarded

    return wrap


def request_registry(request: Request) -> Registry:
    """The registry the pages judge visibility with: the request's snapshot's, else the
    configured one (before the first publication)."""
    current = snapshot(request)
    return current.registry() if current is not None else portal(request).registry()


registry = request_registry


def snapshot(request: Request) -> Snapshot | None:
    """The published snapshot, or None; the same generation for the whole request (a
    publication while a page renders never mixes two)."""
    state = request.state
    if not hasattr(state, "snapshot"):
        state.snapshot = portal(request).snapshot()
    return state.snapshot


def require_org(request: Request, code: str, registry: Registry | None = None) -> Organisation:
    """The organisation `code` if the principal may see it; else 404 (never 403: whether a
    code exists is itself not shown to whoever may not see it)."""
    who = principal(request)
    org = (registry or request_registry(request)).get(code)
    if who is None or org is None:
        raise HTTPException(404)
    if not can_see(who, org):
        audit(request, "page", request.url.path, "refused: scope")
        raise HTTPException(404)
    return org


def csrf_token(request: Request) -> str:
    session = getattr(request.state, "session", None)
    return session.csrf_token if session is not None else ""


def render(request: Request, template: str, *, status_code: int = 200, **ctx: Any) -> Response:
    """The template rendered (autoescaped) with what every page shows."""
    who = principal(request)
    current = snapshot(request)
    context = {
        "principal": who,
        "csrf_token": csrf_token(request),
        "nav": nav(who),
        "generation": getattr(current, "generation", None),
        "published_at": getattr(current, "published_at", None),
        **ctx,
    }
    return portal(request).templates.TemplateResponse(
        request, template, context, status_code=status_code
    )


def client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def audit(request: Request, action: str, target: str, outcome: str) -> None:
    """Record `action` on `target` (e.g. "download keys.csv", "org/…/2026-11-10") and its
    outcome by whoever is logged in."""
    who = principal(request)
    portal(request).store.add_audit(
        user_name=who.name if who else "",
        role=who.role if who else "",
        address=client_address(request),
        action=action,
        target=target,
        outcome=outcome,
        now=dt.datetime.now(dt.UTC),
    )
