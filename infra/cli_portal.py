"""`hqlake serve` (the quality portal) and `hqlake users add|list|disable` (its accounts).

Accounts live in the portal's SQLite file (`Settings.portal_dir`, owner-only), never in git.
A mistake (an unknown role or scope, a city officer who is not one of contracts/appeals.yaml's
quality officers, a taken name, a short password) is one line on stderr and exit 2.
"""

from __future__ import annotations

import datetime as dt
import re
import sqlite3
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from contracts.errors import OperatorError

users_app = typer.Typer(
    no_args_is_help=True,
    help="The quality portal's accounts (city / county / organisation users).",
)

NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,63}")


class PortalUserError(OperatorError):
    """An account the portal cannot create or change as asked: the message says why."""


class Role(StrEnum):
    city = "city"
    county = "county"
    org = "org"


def check_account(name: str, role: str, scope: str, registry, officers) -> str:
    """The account's scope as stored, or PortalUserError naming what is wrong."""
    if not NAME.fullmatch(name):
        raise PortalUserError(
            f"user name {name!r}: use 1-64 letters, digits, '.', '_', '@' or '-'"
            " starting with a letter or digit"
        )
    if role == "city":
        if scope:
            raise PortalUserError("a city officer has no --scope (the city sees everything)")
        if name not in officers:
            raise PortalUserError(
                f"{name!r} is not a quality officer of contracts/appeals.yaml"
                f" ({', '.join(officers)}): decisions are recorded by that name"
            )
        return ""
    if not scope:
        raise PortalUserError(f"a {role} user needs --scope (its county or organisation code)")
    if role == "county":
        counties = {o.org_code for o in registry.organisations.values() if o.kind == "county"}
        if scope not in counties:
            raise PortalUserError(
                f"--scope {scope!r} is not a county platform of the registry ({registry.source})"
            )
        return scope
    if registry.get(scope) is None:
        raise PortalUserError(
            f"--scope {scope!r} is not an organisation of the registry ({registry.source})"
        )
    return scope


def check_password(password: str, config) -> str:
    limits = config.passwords
    if len(password) < limits.min_chars:
        raise PortalUserError(
            f"the password has {len(password)} characters; use at least {limits.min_chars}"
        )
    if len(password) > limits.max_chars:
        raise PortalUserError(f"the password is longer than {limits.max_chars} characters")
    return password


def _read_password(path: Path) -> str:
    text = path.read_text(encoding="utf-8")
    lines = text.splitlines() or [""]
    if len(lines) > 1 and any(line for line in lines[1:]):
        raise PortalUserError(f"{path}: the password file must hold one line")
    return lines[0]


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def add_account(settings, name: str, role: str, scope: str, password: str):
    """Create the account (validated); returns the stored user. Shared with `make portal`."""
    from expectations.programme.config import load_appeals_config
    from infra.portal.app import registry_for
    from infra.portal.auth import hash_password
    from infra.portal.config import load_portal_config
    from infra.portal.store import PortalStore

    officers = load_appeals_config().decisions.people
    scope = check_account(name, role, scope, registry_for(settings), officers)
    check_password(password, load_portal_config())
    store = PortalStore.open(settings.portal_dir)
    try:
        return store.add_user(name, role, scope, hash_password(password), now=_now())
    except sqlite3.IntegrityError:
        raise PortalUserError(f"user {name!r} exists already (hqlake users list)") from None


@users_app.command("add")
def users_add(
    name: Annotated[str, typer.Argument(help="the login name")],
    role: Annotated[Role, typer.Option(help="city, county or org")],
    scope: Annotated[
        str, typer.Option(help="county: its 6-digit code; org: the organisation code")
    ] = "",
    password_file: Annotated[
        Path | None, typer.Option(help="a file holding the password (else it is asked for)")
    ] = None,
) -> None:
    """Add an account; the password is hashed (Argon2id), never stored."""
    from infra.settings import settings

    if password_file is not None:
        password = _read_password(password_file)
    else:
        password = typer.prompt("password", hide_input=True, confirmation_prompt=True)
    user = add_account(settings(), name, role.value, scope.strip(), password)
    typer.echo(f"user {user.name} added: {user.role}" + (f" {user.scope}" if user.scope else ""))


@users_app.command("list")
def users_list() -> None:
    """The accounts: name, role, scope, created, disabled."""
    from infra.portal.store import PortalStore
    from infra.settings import settings

    users = PortalStore.open(settings().portal_dir).users()
    rows = [("name", "role", "scope", "created_at", "disabled_at")]
    rows += [
        (
            u.name,
            u.role,
            u.scope or "-",
            u.created_at.strftime("%Y-%m-%d %H:%M"),
            u.disabled_at.strftime("%Y-%m-%d %H:%M") if u.disabled_at else "-",
        )
        for u in users
    ]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        typer.echo("  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip())
    if not users:
        typer.echo("(no account yet: hqlake users add NAME --role ...)")


@users_app.command("disable")
def users_disable(name: Annotated[str, typer.Argument(help="the login name")]) -> None:
    """Disable an account and end its sessions (it can no longer log in)."""
    from infra.portal.store import PortalStore
    from infra.settings import settings

    store = PortalStore.open(settings().portal_dir)
    user = store.user(name)
    if user is None:
        raise PortalUserError(f"no user {name!r} (hqlake users list)")
    if not user.active:
        typer.echo(f"user {name} was disabled already ({user.disabled_at:%Y-%m-%d %H:%M} UTC)")
        return
    ended = store.disable_user(name, now=_now())
    typer.echo(f"user {name} disabled; {ended} session(s) ended")


def serve(
    host: Annotated[str, typer.Option(help="address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535)] = 8080,
    trusted_proxy: Annotated[
        str | None,
        typer.Option(
            help="the TLS proxy's address(es), comma-separated: its X-Forwarded-For is then"
            " the client's address (the login throttle counts it); by default none is trusted"
        ),
    ] = None,
) -> None:
    """Serve the quality portal (the published snapshot; never opens the warehouse)."""
    import uvicorn

    from infra.portal.app import create_app
    from infra.settings import settings

    config = settings()
    app = create_app(config)
    typer.echo(f"hqlake portal on http://{host}:{port} (state in {config.portal_dir})", err=True)
    if host not in ("127.0.0.1", "localhost", "::1") and not (config.portal_url or "").startswith(
        "https://"
    ):
        typer.echo(
            f"note: listening on {host} without TLS; put an https proxy in front and set"
            " HQLAKE_PORTAL_URL=https://... (cookies become Secure)",
            err=True,
        )
    uvicorn.run(
        app,
        host=host,
        port=port,
        server_header=False,
        log_level="warning",
        # Without a proxy named, X-Forwarded-For is ignored: a client must not choose the
        # address the throttle counts (uvicorn would otherwise trust any local client).
        proxy_headers=trusted_proxy is not None,
        forwarded_allow_ips=trusted_proxy or "",
    )
