"""`make portal`'s demo accounts (infra/portal/demo.py): one per role, created once, their
generated passwords kept owner-only and the same on every later start."""

from __future__ import annotations

import dataclasses
import stat

from contracts.registry import load_registry
from infra.portal.auth import verify_password
from infra.portal.demo import ACCOUNTS_FILE, demo_accounts, ensure_accounts
from infra.portal.store import PortalStore
from infra.settings import settings

REGISTRY = load_registry()


def test_without_an_appeal_the_first_hospital_and_its_county():
    accounts = demo_accounts(REGISTRY, None)
    first = min(o.org_code for o in REGISTRY.organisations.values() if o.kind == "hospital")
    county = REGISTRY.get(first).county_code
    assert accounts == [
        ("qc.wang", "city", ""),
        (f"county.{county}", "county", county),
        (f"hospital.{first}", "org", first),
    ]


def test_accounts_are_made_once_and_their_passwords_kept_private(tmp_path):
    config = dataclasses.replace(settings(), home=tmp_path / "home", org_registry=None)
    first = ensure_accounts(config)
    assert [(n, r) for n, r, _, _ in first] == [
        ("qc.wang", "city"),
        (first[1][0], "county"),
        (first[2][0], "org"),
    ]
    store = PortalStore.open(config.portal_dir)
    for name, _, _, password in first:
        assert password and verify_password(store.user(name).password_hash, password)
    path = config.portal_dir / ACCOUNTS_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert ensure_accounts(config) == first  # a second start prints the same accounts

    store.disable_user("qc.wang", now=store.user("qc.wang").created_at)
    path.unlink()  # an account the demo file no longer knows: left alone, no password shown
    again = ensure_accounts(config)
    assert again[0] == ("qc.wang", "city", "", None)
    assert not store.user("qc.wang").active
