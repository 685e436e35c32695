"""The portal application: `create_app(settings)` → a Starlette app (`hqlake serve` runs it).

Starlette rather than FastAPI: the portal is server-rendered HTML forms, where FastAPI's
request models and OpenAPI add nothing, and Starlette is what FastAPI runs on anyway. Jinja2
renders every page with autoescape on; uvicorn serves it.

The routes are the login (GET/POST /login, POST /logout), /healthz, /static and every page of
`infra.portal.pages.ROUTES`, each of which must be wrapped by `access.page(...)`: a page route
without roles stops the app from starting (fail closed).

`PortalMiddleware` runs before every route:
- request bodies are limited (413), and read once so the CSRF check can see the form;
- the session cookie is looked up (`request.state.principal`, `.session`);
- every unsafe request (POST, PUT, PATCH, DELETE) but the login must carry the session's
  CSRF token (form field `csrf_token` or header `X-CSRF-Token`), else 403 and an audit row;
  the login form carries its own pre-session token (a cookie it must match), so a third
  party cannot log a victim into the attacker's account either;
- every response gets the security headers (CSP `default-src 'self'`: no inline script or
  style anywhere, no framing, nosniff, same-origin referrer) and `Cache-Control: no-store`
  except the static files.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from jinja2 import Environment, FileSystemLoader, select_autoescape
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.templating import Jinja2Templates

from contracts.registry import Registry, load_registry
from expectations.publish.snapshot import Snapshot, current_generation
from infra.portal import access
from infra.portal.auth import Authenticator, LoginResult, new_token, tokens_match
from infra.portal.config import PortalConfig, load_portal_config
from infra.portal.store import PortalStore
from infra.settings import Settings

HERE = Path(__file__).parent
TEMPLATES_DIR = HERE / "templates"
STATIC_DIR = HERE / "static"
# /static/report.css is the reports' stylesheet, served from where it is owned
STATIC_PACKAGES: list[str | tuple[str, str]] = [("expectations.publish", "static")]
SESSION_COOKIE = "hqlake_session"
LOGIN_COOKIE = "hqlake_login"  # the login form's pre-session CSRF token
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})

SECURITY_HEADERS = (
    (
        b"content-security-policy",
        b"default-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none';"
        b" object-src 'none'",
    ),
    (b"x-frame-options", b"DENY"),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
    (b"cross-origin-opener-policy", b"same-origin"),
)

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class Portal:
    """What every request shares: settings, the store, the authenticator, the templates, and
    the snapshot and registry (re-read when a new generation is published)."""

    def __init__(self, settings: Settings, config: PortalConfig) -> None:
        self.settings = settings
        self.config = config
        self.store = PortalStore.open(settings.portal_dir)
        self.auth = Authenticator(self.store, config)
        self.secure_cookies = (settings.portal_url or "").startswith("https://")
        env = Environment(
            loader=FileSystemLoader(TEMPLATES_DIR),
            autoescape=select_autoescape(default=True, default_for_string=True),
        )
        self.templates = Jinja2Templates(env=env)
        self._snapshot: Snapshot | None = None
        self._configured_registry: Registry | None = None

    def snapshot(self) -> Snapshot | None:
        """The published snapshot, or None before the first publication. CURRENT (a few
        bytes) is read at every call, so an action's effect shows as soon as `hqlake apply`
        has published it; the open generation (and what it has read, at most
        `snapshot.cache_files` files of contracts/portal.yaml) is kept until CURRENT names
        another, which replaces it. A request reads one generation: `access.snapshot` pins it."""
        folder = self.settings.snapshot_dir
        name = current_generation(folder)
        current = self._snapshot
        if name is None:
            current = None
        elif current is None or current.generation != name:
            current = Snapshot.open(folder, self.config.snapshot.cache_files)
        self._snapshot = current
        return current

    def registry(self) -> Registry:
        current = self.snapshot()
        if current is not None:
            return current.registry()
        if self._configured_registry is None:
            self._configured_registry = load_registry(self.settings.org_registry)
        return self._configured_registry

    def set_cookie(self, response: Response, name: str, value: str, **kw: Any) -> None:
        response.set_cookie(
            name, value, httponly=True, samesite="strict", secure=self.secure_cookies, **kw
        )


def registry_for(settings: Settings) -> Registry:
    """The registry accounts and pages are judged by: the published snapshot's (what was
    scored), else the configured one (HQLAKE_ORG_REGISTRY) before the first publication."""
    current = Snapshot.open(settings.snapshot_dir)
    return current.registry() if current is not None else load_registry(settings.org_registry)


class PortalMiddleware:
    """Body limit, session lookup, CSRF and the security headers (see the module doc)."""

    def __init__(self, app: Callable, portal: Portal) -> None:
        self.app = app
        self.portal = portal

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        send = self._with_headers(scope, send)
        if scope["method"] in UNSAFE_METHODS:
            body = await self._read_body(scope, receive)
            if body is None:
                await self._refuse(scope, 413, send)
                return
            receive = _replay(body)
        state = scope.setdefault("state", {})
        request = Request(scope, receive)
        session_id = request.cookies.get(SESSION_COOKIE)
        session = (
            None
            if scope["path"].startswith("/static/")
            else await run_in_threadpool(self.portal.auth.session, session_id, now=utcnow())
        )
        state["session"] = session
        state["session_id"] = session_id if session else None
        state["principal"] = (
            access.Principal(session.user.name, session.user.role, session.user.scope)
            if session
            else None
        )
        if scope["method"] in UNSAFE_METHODS and scope["path"] != "/login":
            given = request.headers.get(CSRF_HEADER) or await _form_token(request)
            if session is None or not tokens_match(session.csrf_token, given):
                await run_in_threadpool(access.audit, request, "csrf", scope["path"], "refused")
                await self._refuse(scope, 403, send)
                return
            receive = _replay(body)  # the token check read the replay: the endpoint reads anew
        await self.app(scope, receive, send)

    def _with_headers(self, scope: Scope, send: Send) -> Send:
        static = scope["path"].startswith("/static/")

        async def send_with_headers(message: MutableMapping[str, Any]) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                present = {k.lower() for k, _ in headers}
                extra = [*SECURITY_HEADERS]
                if not static:
                    extra.append((b"cache-control", b"no-store"))
                headers += [(k, v) for k, v in extra if k not in present]
                message["headers"] = headers
            await send(message)

        return send_with_headers

    async def _read_body(self, scope: Scope, receive: Receive) -> bytes | None:
        """The whole body, or None when it is larger than the limit."""
        limit = self.portal.config.requests.max_body_kib * 1024
        length = Headers(scope=scope).get("content-length")
        if length is not None and (not length.isdigit() or int(length) > limit):
            return None
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                return None
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        return b"".join(chunks)

    async def _refuse(self, scope: Scope, status: int, send: Send) -> None:
        response = HTMLResponse(error_html(self.portal, status), status_code=status)
        await response(scope, _replay(b""), send)


def _replay(body: bytes) -> Receive:
    sent = False

    async def receive() -> MutableMapping[str, Any]:
        nonlocal sent
        if sent:
            return {"type": "http.disconnect"}
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return receive


async def _form_token(request: Request) -> str | None:
    content_type = request.headers.get("content-type", "")
    if not content_type.startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
        return None
    try:
        async with request.form() as form:
            value = form.get(CSRF_FIELD)
    except (HTTPException, ValueError, KeyError):  # a malformed body: no token
        return None
    return value if isinstance(value, str) else None


ERROR_TEXT = {
    400: ("请求无效", "Bad request"),
    401: ("未登录", "Not logged in"),
    403: ("无权访问", "Forbidden"),
    404: ("页面不存在", "Not found"),
    405: ("方法不允许", "Method not allowed"),
    413: ("请求过大", "Request too large"),
    429: ("尝试次数过多", "Too many attempts"),
    500: ("服务器出错", "Server error"),
    503: ("数据尚未发布", "No snapshot published yet"),
}


def error_html(portal: Portal, status: int) -> str:
    zh, en = ERROR_TEXT.get(status, ("出错了", "Error"))
    return portal.templates.get_template("error.html").render(
        status=status, zh=zh, en=en, principal=None, nav=[], csrf_token=""
    )


async def http_error(request: Request, exc: Exception) -> Response:
    status = exc.status_code if isinstance(exc, HTTPException) else 500
    zh, en = ERROR_TEXT.get(status, ("出错了", "Error"))
    headers = getattr(exc, "headers", None)
    response = access.render(request, "error.html", status_code=status, status=status, zh=zh, en=en)
    if headers:
        response.headers.update(headers)
    return response


async def server_error(request: Request, exc: Exception) -> Response:
    """A failure's page: the error page with the security headers (Starlette answers a
    failure outside the middleware, so they are set here), never a traceback."""
    response = HTMLResponse(error_html(access.portal(request), 500), status_code=500)
    for key, value in (*SECURITY_HEADERS, (b"cache-control", b"no-store")):
        response.headers[key.decode()] = value.decode()
    return response


def safe_next(value: str | None) -> str:
    """A same-site path to go to after the login ("/" for anything else: no open redirect)."""
    if not value or not value.startswith("/") or value.startswith(("//", "/\\")):
        return "/"
    if any(ord(c) < 0x20 or c == "\\" for c in value):
        return "/"
    parts = urlsplit(value)
    if parts.scheme or parts.netloc or parts.path in ("/login", "/logout"):
        return "/"
    return value


# ---- the login -------------------------------------------------------------------------------


def _login_page(request: Request, *, status: int = 200, message: str | None = None, **kw):
    portal = access.portal(request)
    token = new_token()
    response = access.render(
        request,
        "login.html",
        status_code=status,
        login_token=token,
        next=safe_next(request.query_params.get("next") or kw.pop("next", None)),
        message=message,
        **kw,
    )
    portal.set_cookie(response, LOGIN_COOKIE, token, path="/login", max_age=3600)
    return response


async def login_form(request: Request) -> Response:
    who = access.principal(request)
    if who is not None:
        return RedirectResponse(safe_next(request.query_params.get("next")), status_code=303)
    return _login_page(request)


async def login(request: Request) -> Response:
    portal = access.portal(request)
    async with request.form() as form:
        name = str(form.get("name") or "")
        password = str(form.get("password") or "")
        token = str(form.get("login_token") or "")
        target = safe_next(str(form.get("next") or ""))
    if not tokens_match(request.cookies.get(LOGIN_COOKIE), token):
        await run_in_threadpool(access.audit, request, "login", name[:128], "refused: no token")
        return _login_page(
            request,
            status=403,
            message="登录页已过期，请重试 / The login page expired: try again",
            next=target,
        )
    address = access.client_address(request)
    outcome = await run_in_threadpool(
        portal.auth.login,
        name,
        password,
        address,
        now=utcnow(),
        old_session=request.cookies.get(SESSION_COOKIE),
    )
    account = name.strip()[:128]
    if outcome.result is LoginResult.locked:
        minutes = max(1, -(-int(outcome.retry_after.total_seconds()) // 60))
        await run_in_threadpool(_audit_login, portal, account, address, "locked")
        response = _login_page(
            request,
            status=429,
            message=f"登录失败次数过多，请 {minutes} 分钟后再试 / Too many failed logins:"
            f" try again in {minutes} min",
            next=target,
        )
        response.headers["Retry-After"] = str(int(outcome.retry_after.total_seconds()) + 1)
        return response
    if outcome.result is LoginResult.refused:
        await run_in_threadpool(_audit_login, portal, account, address, "refused")
        return _login_page(
            request,
            status=401,
            message="用户名或密码错误 / Wrong name or password",
            next=target,
            name=account,
        )
    user = outcome.user
    await run_in_threadpool(
        portal.store.add_audit,
        user_name=user.name,
        role=user.role,
        address=address,
        action="login",
        target="",
        outcome="ok",
        now=utcnow(),
    )
    home = access.home_url(access.Principal(user.name, user.role, user.scope))
    response = RedirectResponse(home if target == "/" else target, status_code=303)
    portal.set_cookie(response, SESSION_COOKIE, outcome.session_id, path="/")
    response.delete_cookie(LOGIN_COOKIE, path="/login", httponly=True, samesite="strict")
    return response


def _audit_login(portal: Portal, account: str, address: str, outcome: str) -> None:
    portal.store.add_audit(
        user_name=account,
        role="",
        address=address,
        action="login",
        target="",
        outcome=outcome,
        now=utcnow(),
    )


async def logout(request: Request) -> Response:
    portal = access.portal(request)
    if access.principal(request) is not None:
        await run_in_threadpool(access.audit, request, "logout", "", "ok")
    await run_in_threadpool(portal.auth.logout, request.state.session_id)
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/", httponly=True, samesite="strict")
    return response


async def healthz(request: Request) -> Response:
    current = access.snapshot(request)
    return JSONResponse({"ok": True, "snapshot": getattr(current, "generation", None)})


# ---- the application -------------------------------------------------------------------------


def _check_guarded(routes: list[BaseRoute]) -> None:
    for route in routes:
        endpoint = getattr(route, "endpoint", None)
        if not isinstance(route, Route) or not hasattr(endpoint, "roles"):
            raise RuntimeError(
                f"portal route {getattr(route, 'path', route)!r} is not wrapped by"
                " infra.portal.access.page(...): every page names the roles that may see it"
            )


def create_app(
    settings: Settings,
    *,
    config: PortalConfig | None = None,
    pages: list[BaseRoute] | None = None,
) -> Starlette:
    """The portal over `settings`' snapshot, actions and portal state, with the page routes
    of `infra.portal.pages` (or `pages`, for a test)."""
    if pages is None:
        from infra.portal.pages import ROUTES as pages
    _check_guarded(pages)
    portal = Portal(settings, config or load_portal_config())
    routes: list[BaseRoute] = [
        Route("/login", login_form, methods=["GET"]),
        Route("/login", login, methods=["POST"]),
        Route("/logout", logout, methods=["POST"]),
        Route("/healthz", healthz, methods=["GET"]),
        Mount(
            "/static", StaticFiles(directory=STATIC_DIR, packages=STATIC_PACKAGES), name="static"
        ),
        *pages,
    ]
    app = Starlette(
        routes=routes, exception_handlers={HTTPException: http_error, Exception: server_error}
    )
    app.state.portal = portal
    app.add_middleware(PortalMiddleware, portal=portal)
    return app
