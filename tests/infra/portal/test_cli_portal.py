"""`hqlake users add|list|disable` and `hqlake serve` as an operator runs them, with its own
HQLAKE_HOME: the account commands in this process (`infra.cli.main(argv)`), the password
prompt and `serve` through the installed `hqlake` in a subprocess (the real entry point);
mistakes are one or two lines and exit 2."""

from __future__ import annotations

import re
import stat
import subprocess
import time
import urllib.request
from pathlib import Path

import httpx
import pytest

from contracts.registry import load_registry
from infra.cli_portal import PortalUserError, check_account
from infra.localhost import free_port
from infra.portal.store import STORE_FILE, PortalStore
from tests.infra.conftest import HQLAKE, assert_operator_error, operator_env, run_hqlake
from tests.infra.conftest import run_hqlake_here as hqlake

REGISTRY = load_registry()
HOSPITAL = next(o for o in REGISTRY.organisations.values() if o.kind == "hospital")
COUNTY = next(o for o in REGISTRY.organisations.values() if o.kind == "county")


@pytest.fixture
def password_file(tmp_path) -> Path:
    path = tmp_path / "password"
    path.write_text("correct horse battery staple\n", encoding="utf-8")
    return path


def test_users_add_list_disable(tmp_path, password_file):
    home = tmp_path / "home"
    pw = ("--password-file", str(password_file))
    added = [
        hqlake(home, "users", "add", "qc.wang", "--role", "city", *pw),
        hqlake(
            home, "users", "add", "county.a", "--role", "county", "--scope", COUNTY.org_code, *pw
        ),
        hqlake(home, "users", "add", "hosp.a", "--role", "org", "--scope", HOSPITAL.org_code, *pw),
    ]
    for out in added:
        assert out.returncode == 0, out.stderr
    assert "user hosp.a added: org " + HOSPITAL.org_code in added[2].stdout

    store = PortalStore(home / "portal" / STORE_FILE)
    user = store.user("hosp.a")
    assert user.password_hash.startswith("$argon2id$")
    assert "correct horse" not in (home / "portal" / STORE_FILE).read_text(errors="replace")
    assert stat.S_IMODE((home / "portal").stat().st_mode) == 0o700
    assert stat.S_IMODE((home / "portal" / STORE_FILE).stat().st_mode) == 0o600

    store.add_session("sid-1", "hosp.a", "csrf", now=user.created_at)
    disabled = hqlake(home, "users", "disable", "hosp.a")
    assert disabled.returncode == 0 and "1 session(s) ended" in disabled.stdout
    assert store.session("sid-1") is None and not store.user("hosp.a").active

    listed = hqlake(home, "users", "list").stdout.splitlines()
    assert listed[0].split() == ["name", "role", "scope", "created_at", "disabled_at"]
    rows = {line.split()[0]: line.split() for line in listed[1:]}
    assert rows["qc.wang"][1:3] == ["city", "-"]
    assert rows["county.a"][1:3] == ["county", COUNTY.org_code]
    assert rows["hosp.a"][-1] != "-" and rows["qc.wang"][-1] == "-"


def test_users_mistakes_are_one_line_and_exit_2(tmp_path, password_file):
    home = tmp_path / "home"
    pw = ("--password-file", str(password_file))
    assert hqlake(home, "users", "add", "qc.li", "--role", "city", *pw).returncode == 0
    short = tmp_path / "short"
    short.write_text("tooshort\n", encoding="utf-8")
    org = ("h", "--role", "org", "--scope", HOSPITAL.org_code)
    cases = [
        (("qc.li", "--role", "city", *pw), "exists already"),
        (("qc.zhang", "--role", "city", *pw), "is not a quality officer"),
        ((*org, "--password-file", str(short)), "use at least 12"),
        ((*org, "--password-file", str(tmp_path / "absent")), "check the path"),
        (("h", "--role", "admin", *pw), "admin"),
    ]
    for args, expected in cases:
        assert_operator_error(hqlake(home, "users", "add", *args), expected)
    assert_operator_error(hqlake(home, "users", "disable", "nobody"), "no user 'nobody'")
    names = [line.split()[0] for line in hqlake(home, "users", "list").stdout.splitlines()[1:]]
    assert names == ["qc.li"]


OFFICERS = ("qc.wang", "qc.li")


@pytest.mark.parametrize(
    ("name", "role", "scope", "expected"),
    [
        ("qc.zhang", "city", "", "is not a quality officer"),
        ("qc.wang", "city", COUNTY.org_code, "has no --scope"),
        ("c", "county", HOSPITAL.org_code, "not a county platform"),
        ("c", "county", "", "needs --scope"),
        ("h", "org", "12411502000599999X", "not an organisation"),
        ("bad name", "org", HOSPITAL.org_code, "user name"),
        ("-x", "org", HOSPITAL.org_code, "user name"),
    ],
)
def test_accounts_are_checked_against_the_officers_and_the_registry(name, role, scope, expected):
    with pytest.raises(PortalUserError, match=expected):
        check_account(name, role, scope, REGISTRY, OFFICERS)


def test_good_accounts_pass_the_check():
    assert check_account("qc.wang", "city", "", REGISTRY, OFFICERS) == ""
    assert check_account("c.a", "county", COUNTY.org_code, REGISTRY, OFFICERS) == COUNTY.org_code
    assert check_account("h", "org", HOSPITAL.org_code, REGISTRY, OFFICERS) == HOSPITAL.org_code
    assert check_account("p", "org", COUNTY.org_code, REGISTRY, OFFICERS) == COUNTY.org_code


def test_users_add_asks_for_the_password_twice(tmp_path):
    home = tmp_path / "home"
    out = run_hqlake(
        home,
        "users",
        "add",
        "qc.wang",
        "--role",
        "city",
        stdin="correct horse battery staple\ncorrect horse battery staple\n",
    )
    assert out.returncode == 0, out.stderr
    assert "correct horse" not in out.stdout + out.stderr


def test_serve_answers_on_loopback_without_the_warehouse(tmp_path):
    home, port = tmp_path / "home", free_port()
    server = subprocess.Popen(
        [str(HQLAKE), "serve", "--port", str(port)],
        env=operator_env(home),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as r:
                    assert r.status == 200
                    assert r.headers["x-frame-options"] == "DENY"
                    break
            except OSError:
                assert server.poll() is None, server.stderr.read().decode()
                assert time.monotonic() < deadline
                time.sleep(0.2)
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            page = client.get("/login")
            assert "上传数据质控" in page.text
            token = re.search(r'name="login_token" value="([^"]+)"', page.text).group(1)
            refused = client.post(
                "/login",
                data={"name": "nobody", "password": "wrong", "login_token": token},
                headers={"X-Forwarded-For": "203.0.113.7"},  # no proxy named: not believed
            )
            assert refused.status_code == 401
    finally:
        server.terminate()
        server.wait(timeout=20)
    assert not (home / "chdb").exists()  # the portal never opened the warehouse
    audit = PortalStore(home / "portal" / STORE_FILE).audit_rows()
    assert [(r["action"], r["address"]) for r in audit] == [("login", "127.0.0.1")]
    assert stat.S_IMODE((home / "portal" / STORE_FILE).stat().st_mode) == 0o600
