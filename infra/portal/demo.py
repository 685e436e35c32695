"""`make portal`: the demo warehouse's portal (after `make demo`), one demo account per role.

1. The snapshot is published again from the demo warehouse (`hqlake snapshot` in a child
   process, before the server starts: the serving process never opens chDB), so the portal
   shows what `make demo` ended with, the quality loop's approval and signature included
   (while a run holds the home, the last published snapshot is served).
2. Three accounts are created if absent: `qc.wang` (a quality officer of
   contracts/appeals.yaml, city), the county officer of the county of the demo's hospital,
   and that hospital's user — the hospital the demo loop's appeal is about, else the first
   hospital of the registry. Their passwords are generated once and kept in
   `portal/demo-accounts.txt` (0600) of the demo home, so every `make portal` prints the same.
3. The URL and the accounts are printed and the portal is served on 127.0.0.1:8080.
"""

from __future__ import annotations

import argparse
import os
import secrets
import subprocess
import sys
from pathlib import Path

from contracts.registry import Registry
from expectations.publish.snapshot import Snapshot
from infra.home import write_private
from infra.settings import Settings, settings

ACCOUNTS_FILE = "demo-accounts.txt"
DEMO_ALPHABET = "abcdefghjkmnpqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no look-alikes
CITY_OFFICER = "qc.wang"
ROLE_NAMES = {"city": "市质控员 city officer", "county": "区县 county", "org": "医院 hospital"}


def demo_accounts(registry: Registry, snapshot: Snapshot | None) -> list[tuple[str, str, str]]:
    """(name, role, scope) of the three demo accounts."""
    hospitals = sorted(
        (o for o in registry.organisations.values() if o.kind == "hospital"),
        key=lambda o: o.org_code,
    )
    if not hospitals:
        raise SystemExit("the demo registry has no hospital")
    appealed = [a["org_code"] for a in (snapshot.appeals() if snapshot else [])]
    hospital = next(
        (h for code in appealed if (h := registry.get(code)) and h.kind == "hospital"),
        hospitals[0],
    )
    county = registry.get(hospital.county_code)
    if county is None or county.kind != "county":
        county = next(o for o in registry.organisations.values() if o.kind == "county")
    return [
        (CITY_OFFICER, "city", ""),
        (f"county.{county.org_code}", "county", county.org_code),
        (f"hospital.{hospital.org_code}", "org", hospital.org_code),
    ]


def _read_passwords(path: Path) -> dict[str, str]:
    if not path.is_file():
        return {}
    pairs = (line.split("\t") for line in path.read_text(encoding="utf-8").splitlines())
    return {p[0]: p[-1] for p in pairs if len(p) >= 2}


def ensure_accounts(config: Settings) -> list[tuple[str, str, str, str | None]]:
    """The demo accounts (name, role, scope, password), created if absent; the password is
    None for an account that existed before with a password the demo did not make."""
    from infra.cli_portal import add_account
    from infra.portal.app import registry_for
    from infra.portal.store import PortalStore

    snapshot = Snapshot.open(config.snapshot_dir)
    store = PortalStore.open(config.portal_dir)
    path = config.portal_dir / ACCOUNTS_FILE
    known = _read_passwords(path)
    accounts = []
    for name, role, scope in demo_accounts(registry_for(config), snapshot):
        password = known.get(name)
        if store.user(name) is None:
            password = password or "".join(secrets.choice(DEMO_ALPHABET) for _ in range(16))
            add_account(config, name, role, scope, password)
        accounts.append((name, role, scope, password))
    lines = [f"{n}\t{r}\t{s or '-'}\t{p}" for n, r, s, p in accounts if p is not None]
    write_private(path, ("\n".join(lines) + "\n").encode())
    return accounts


def publish(config: Settings) -> None:
    """Publish the snapshot again; when that cannot be done (a run holds the home), serve the
    one published last, if any: the portal does not need the warehouse to answer."""
    hqlake = Path(sys.executable).with_name("hqlake")
    print(f"publishing the portal's snapshot of {config.home} ...", flush=True)
    done = subprocess.run([str(hqlake), "snapshot"], env=os.environ, check=False)
    if done.returncode == 0:
        return
    current = Snapshot.open(config.snapshot_dir)
    if current is None:
        raise SystemExit(done.returncode)
    print(f"serving the snapshot published at {current.published_at} instead", flush=True)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8080)
    args = parser.parse_args(argv)
    config = settings()
    if not config.chdb_path.is_dir():
        print(f"no demo warehouse in {config.home}: run `make demo` first", file=sys.stderr)
        raise SystemExit(2)
    publish(config)
    accounts = ensure_accounts(config)
    url = config.portal_url or f"http://{args.host}:{args.port}"
    print(f"\nthe quality portal: {url}/login")
    print(f"demo accounts (passwords kept in {config.portal_dir / ACCOUNTS_FILE}, owner-only):")
    print(f"  {'name':<32} {'password':<18} role")
    for name, role, _, password in accounts:
        shown = password or "(set before the demo)"
        print(f"  {name:<32} {shown:<18} {ROLE_NAMES[role]}")
    print("Ctrl-C stops it.\n", flush=True)
    import uvicorn

    from infra.portal.app import create_app

    uvicorn.run(
        create_app(config),
        host=args.host,
        port=args.port,
        server_header=False,
        log_level="warning",
        proxy_headers=False,  # nothing in front of the demo: X-Forwarded-For is never believed
    )


if __name__ == "__main__":
    main()
