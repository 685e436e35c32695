"""The served portal of the portal tests: one tiny sample city scored once in the session's
chDB, its snapshot exported in this process, and a real `hqlake serve` subprocess on a free
loopback port over that home's snapshot and actions, with one account per role.

The test process holds chDB and the home lock, so the portal's `hqlake apply --if-idle` kick
exits at once and a test applies the queued actions itself with `infra.actions.apply_pending`,
as the next daily run would.

The dates follow the real clock, because the portal records every action at it: the appeal
day is yesterday (inside the appeal window of contracts/appeals.yaml), and the signed month is
the last one, which is over (its last day is scored too).
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import datetime as dt
import html.parser
import http.client
import os
import secrets
import shutil
import subprocess
import sys
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from contracts.timezone import TZ
from infra.localhost import free_port

# Screenshots stay here after the session (gitignored), so a person can look at them.
ARTEFACTS = Path(__file__).resolve().parents[3] / ".artefacts" / "portal"
HQLAKE = str(Path(sys.executable).with_name("hqlake"))
OFFICER = "qc.wang"  # a quality officer of contracts/appeals.yaml
SERVE_TIMEOUT = 60.0


def cheap_portal_config():
    """contracts/portal.yaml with Argon2id at its cheapest (1 pass, 8 KiB, 1 lane: a hash in
    microseconds instead of ~0.3 s of CPU), for tests of logins, not of the hash's cost;
    tests/infra/portal/test_auth.py keeps one at the bundled cost."""
    from infra.portal.config import PasswordHashing, load_portal_config

    config = load_portal_config()
    cheap = PasswordHashing(time_cost=1, memory_kib=8, parallelism=1)
    return config.model_copy(
        update={"passwords": config.passwords.model_copy(update={"hashing": cheap})}
    )


@dataclasses.dataclass(frozen=True)
class Account:
    name: str
    role: str
    scope: str
    password: str


@dataclasses.dataclass(frozen=True)
class City:
    """The scored sample city the portal serves."""

    registry: Any
    appeal_day: dt.date  # yesterday: an appeal of it is inside the window
    signed_month: dt.date  # the first day of last month, which is over
    dates: tuple[dt.date, ...]
    hospital: str  # the organisation user's hospital (its appeal would move its rank)
    rule_id: str  # the failed result of `hospital` on `appeal_day` it appeals
    dataset: str
    other: str  # another hospital, which the organisation user may not see
    county: str  # the county officer's county: one with a platform and hospitals
    in_county: str  # a hospital of `county`
    out_county: str  # a hospital of another county
    hostile_org: str  # the hospital whose registry name is HOSTILE_NAME
    hostile_key_org: str  # the hospital with a failing visit whose id is HOSTILE_KEY


# Values from uploads that must reach every page and export as text: markup, a formula, quotes.
HOSTILE_NAME = '=1+1 光山<script>alert("org")</script>&amp;\'"'
HOSTILE_KEY = "=2+5<script>alert('key')</script>"


def _plant_hostile_name(registry_path: Path) -> str:
    """The last hospital of the registry is renamed HOSTILE_NAME; its code."""
    with registry_path.open(encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    victim = sorted(r["org_code"] for r in rows if r["kind"] == "hospital")[-1]
    for row in rows:
        if row["org_code"] == victim:
            row["name"] = HOSTILE_NAME
    with registry_path.open("w", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return victim


def _plant_hostile_key(inbox: Path, org_code: str) -> str:
    """`org_code` re-uploads its visits of the day with the first visit's id HOSTILE_KEY and a
    negative fee, so the key is among its failing keys; `org_code` (empty: no visits)."""
    files = sorted((inbox / org_code / "outpatient_visit").glob("*/part-00001.csv"))
    if not files:
        return ""
    with files[0].open(encoding="utf-8-sig", newline="") as f:
        rows = list(csv.DictReader(f))
    rows[0]["visit_id"], rows[0]["total_fee"] = HOSTILE_KEY, "-1.00"
    with files[0].open("w", encoding="utf-8", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return org_code


def pytest_collection_modifyitems(config, items):
    """The browser scenario approves an appeal and signs a month of the package's city, so it
    runs after every other test of this package (which expect the city as scored)."""
    here = Path(__file__).parent
    ours = [i for i, item in enumerate(items) if here in Path(str(item.path)).parents]
    if not ours:
        return
    block = items[ours[0] : ours[-1] + 1]
    last = [item for item in block if item.get_closest_marker("browser")]
    items[ours[0] : ours[-1] + 1] = [item for item in block if item not in last] + last


def _run(pipeline: Any, day: dt.date, inbox: Path) -> None:
    pipeline.ingest_stage(day, str(inbox))
    pipeline.validate_stage(day, datadocs=False)
    pipeline.score_stage(day)


def _days() -> tuple[dt.date, dt.date]:
    today = dt.datetime.now(TZ).date()
    return today - dt.timedelta(days=1), today.replace(day=1) - dt.timedelta(days=1)


def _appealable(ch: Any, day: dt.date) -> tuple[str, dict[str, Any]]:
    """A hospital and its failed result of `day` whose waiver would move its rank most
    (infra.demo_loop's choice; else the one that cost most points)."""
    from infra.demo_loop import _candidate

    found = _candidate(ch, day, ("tertiary", "secondary", "primary"))
    assert found is not None, f"no hospital failed a rule on {day}: the sample city changed?"
    score, line = found
    return score["org_code"], line


@pytest.fixture(scope="package")
def city(tmp_path_factory, config, seaweed) -> Iterator[City]:
    """Four hospitals and two county platforms, the appeal day and last month's last day
    ingested, validated and scored (no dbt build: the portal reads the dq tables)."""
    from contracts.registry import load_registry
    from infra import pipeline
    from infra.settings import settings
    from samplecity import generate
    from tests.conftest import empty_runtime

    appeal_day, last_month_end = _days()
    dates = tuple(sorted({last_month_end, appeal_day}))
    root = tmp_path_factory.mktemp("portal-city")
    inboxes = {}
    for day in dates:  # not contiguous: one inbox a date, the same organisations in each
        inboxes[day] = root / day.isoformat()
        generate(inboxes[day], day, 1, hospitals=4, counties=2, scale=0.003, seed=11)
    registry_path = inboxes[dates[0]] / "_registry.csv"
    hostile_org = _plant_hostile_name(registry_path)
    registry = load_registry(registry_path)
    rt = empty_runtime(config, seaweed)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HQLAKE_ORG_REGISTRY", str(registry_path))
        settings.cache_clear()
        try:
            with pipeline.session(rt):
                for day in dates:
                    _run(pipeline, day, inboxes[day])
                hospital, _ = _appealable(rt.ch, appeal_day)
                hostile_key_org = _plant_hostile_key(inboxes[appeal_day], hospital)
                _run(pipeline, appeal_day, inboxes[appeal_day])  # its re-upload
            hospital, line = _appealable(rt.ch, appeal_day)
            orgs = registry.organisations
            hospitals = sorted(c for c, o in orgs.items() if o.kind == "hospital")
            platforms = [o for o in orgs.values() if o.kind == "county"]
            county = max(
                platforms,
                key=lambda p: (
                    sum(orgs[h].county_code == p.county_code for h in hospitals),
                    p.org_code,
                ),
            ).county_code
            inside = [h for h in hospitals if orgs[h].county_code == county]
            outside = [h for h in hospitals if orgs[h].county_code != county]
            assert inside and outside, f"the sample city's counties changed: {orgs}"
            yield City(
                registry=registry,
                appeal_day=appeal_day,
                signed_month=last_month_end.replace(day=1),
                dates=dates,
                hospital=hospital,
                rule_id=line["rule_id"],
                dataset=line["dataset"],
                other=next(h for h in hospitals if h != hospital),
                county=county,
                in_county=inside[0],
                out_county=outside[0],
                hostile_org=hostile_org,
                hostile_key_org=hostile_key_org,
            )
        finally:
            settings.cache_clear()


@dataclasses.dataclass
class Portal:
    """The served portal: its address, the accounts by role and the home it runs on."""

    url: str
    host: str
    port: int
    accounts: dict[str, Account]  # city, county, org, other (another hospital's user)
    config: Any
    city: City
    process: subprocess.Popen

    def log(self) -> str:
        return (self.config.home / "portal-serve.log").read_text(errors="replace")


def hqlake(*args: str) -> Any:
    """`hqlake ARGS` in this process (typer's runner: the command's code without a Python
    start-up of its own); the result has exit_code, stdout and stderr."""
    from typer.testing import CliRunner

    from infra.cli import app
    from infra.settings import settings

    settings.cache_clear()  # the environment of the moment (HQLAKE_ORG_REGISTRY)
    return CliRunner().invoke(app, list(args))


def add_account(config: Any, name: str, role: str, scope: str) -> Account:
    """An account made with `hqlake users add`, its password in an owner-only file."""
    password = secrets.token_urlsafe(18)
    secret = config.home / f"password-{name}"
    secret.write_text(password + "\n", encoding="utf-8")
    secret.chmod(0o600)
    args = ["users", "add", name, "--role", role, "--password-file", str(secret)]
    done = hqlake(*args, *(["--scope", scope] if scope else []))
    assert done.exit_code == 0, done.output
    return Account(name, role, scope, password)


def wait_until_serving(host: str, port: int, process: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + SERVE_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"hqlake serve exited {process.returncode}:\n{log.read_text()}")
        with contextlib.suppress(OSError):
            conn = http.client.HTTPConnection(host, port, timeout=2)
            conn.request("GET", "/healthz")
            if conn.getresponse().status == 200:
                return
        time.sleep(0.2)
    raise AssertionError(
        f"hqlake serve did not answer /healthz in {SERVE_TIMEOUT}s:\n{log.read_text()}"
    )


@pytest.fixture(scope="package")
def portal(city, config) -> Iterator[Portal]:
    """`hqlake serve` over the city's snapshot (exported here, as the report stage does),
    with one account per role: the city officer, the officer of `city.county`, the user of
    `city.hospital` and one of `city.other`."""
    from expectations.publish.snapshot import export_snapshot
    from infra.runtime import warehouse
    from infra.settings import settings

    export_snapshot(warehouse(config), city.registry, config.snapshot_dir)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {
        "HQLAKE_ORG_REGISTRY": city.registry.source,
        "HQLAKE_PORTAL_URL": url,
    }
    with pytest.MonkeyPatch.context() as mp:
        for key, value in env.items():
            mp.setenv(key, value)
        settings.cache_clear()
        accounts = {
            "city": add_account(config, OFFICER, "city", ""),
            "county": add_account(config, f"county.{city.county}", "county", city.county),
            "org": add_account(config, f"his.{city.hospital[-6:].lower()}", "org", city.hospital),
            "other": add_account(config, f"his.{city.other[-6:].lower()}", "org", city.other),
        }
        log = config.home / "portal-serve.log"
        with log.open("wb") as out:
            process = subprocess.Popen(
                [HQLAKE, "serve", "--host", "127.0.0.1", "--port", str(port)],
                stdout=out,
                stderr=subprocess.STDOUT,
                env=os.environ.copy(),
            )
        try:
            wait_until_serving("127.0.0.1", port, process, log)
            yield Portal(url, "127.0.0.1", port, accounts, config, city, process)
        finally:
            process.terminate()
            ARTEFACTS.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(log, ARTEFACTS / "portal-serve.log")  # for a failure's traceback
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            settings.cache_clear()


# ---- a plain HTTP client (no redirects followed, cookies by hand) --------------------------


@dataclasses.dataclass
class Response:
    status: int
    headers: http.client.HTTPMessage
    body: bytes

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")

    def header(self, name: str) -> str:
        return self.headers.get(name, "")


class Client:
    """One browser-less visitor of the portal: keeps the cookies it is given, follows nothing."""

    def __init__(self, portal: Portal, address: str = "127.0.0.1") -> None:
        self.portal = portal
        self.address = address  # another loopback address is another client to the throttle
        self.cookies: dict[str, str] = {}

    def request(
        self,
        method: str,
        path: str,
        form: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
        body: bytes | None = None,
    ) -> Response:
        conn = http.client.HTTPConnection(
            self.portal.host, self.portal.port, timeout=60, source_address=(self.address, 0)
        )
        sent = dict(headers or {})
        if form is not None:
            body = urllib.parse.urlencode(form).encode()
            sent.setdefault("Content-Type", "application/x-www-form-urlencoded")
        if self.cookies:
            sent["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        conn.request(method, path, body=body, headers=sent)
        raw = conn.getresponse()
        response = Response(raw.status, raw.headers, raw.read())
        conn.close()
        for cookie in raw.headers.get_all("Set-Cookie") or []:
            name, _, rest = cookie.partition("=")
            value = rest.split(";", 1)[0]
            if (
                value
                and "max-age=0" not in cookie.lower()
                and "expires=thu, 01 jan 1970" not in cookie.lower()
            ):
                self.cookies[name.strip()] = value
            else:
                self.cookies.pop(name.strip(), None)
        return response

    def get(self, path: str, **kw: Any) -> Response:
        return self.request("GET", path, **kw)

    def post(self, path: str, form: dict[str, str] | None = None, **kw: Any) -> Response:
        return self.request("POST", path, form=form, **kw)


# ---- real Chromium -------------------------------------------------------------------------

CHROMIUM = "/usr/bin/chromium"  # Debian's package (`make browser`); never `playwright install`
LAUNCH_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
VIEWPORT = {"width": 1280, "height": 900}


@pytest.fixture(scope="package")
def chromium():
    """Headless Debian Chromium driven by Playwright's sync API, for the package."""
    if not Path(CHROMIUM).is_file():
        pytest.skip(f"{CHROMIUM} is not installed (make browser installs it)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=LAUNCH_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture(scope="package")
def artefacts() -> Path:
    """The screenshots' folder: stable (gitignored), emptied at the start of the package."""
    ARTEFACTS.mkdir(parents=True, exist_ok=True)
    for old in ARTEFACTS.glob("*.png"):
        old.unlink()
    return ARTEFACTS


# ---- forms ---------------------------------------------------------------------------------


@dataclasses.dataclass
class Form:
    action: str
    method: str
    fields: dict[str, str]  # hidden and prefilled inputs, textareas, selected options


class _Forms(html.parser.HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.forms: list[Form] = []
        self._textarea: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form":
            self.forms.append(Form(a.get("action", ""), a.get("method", "get").lower(), {}))
        elif not self.forms:
            return
        elif tag == "input" and a.get("name"):
            if a.get("type") in ("checkbox", "radio") and "checked" not in a:
                return
            self.forms[-1].fields[a["name"]] = a.get("value", "")
        elif tag == "textarea" and a.get("name"):
            self._textarea = a["name"]
            self.forms[-1].fields[a["name"]] = ""
        elif tag == "select" and a.get("name"):
            self._select = a["name"]
        elif tag == "option" and "selected" in a and getattr(self, "_select", None):
            self.forms[-1].fields[self._select] = a.get("value", "")

    def handle_data(self, data: str) -> None:
        if self._textarea and self.forms:
            self.forms[-1].fields[self._textarea] += data

    def handle_endtag(self, tag: str) -> None:
        if tag == "textarea":
            self._textarea = None


def forms(page_html: str) -> list[Form]:
    parser = _Forms()
    parser.feed(page_html)
    return parser.forms


def login(client: Client, account: Account, password: str | None = None) -> Response:
    """Log `client` in through the login form (its pre-session token and cookie)."""
    page = client.get("/login")
    assert page.status == 200, page.status
    (form,) = [f for f in forms(page.text) if f.action == "/login"]
    fields = form.fields | {"name": account.name, "password": password or account.password}
    return client.post("/login", fields)


def logged_in(portal: Portal, role: str, address: str = "127.0.0.1") -> Client:
    client = Client(portal, address)
    response = login(client, portal.accounts[role])
    assert response.status == 303, (response.status, response.text[:500])
    return client


def csrf(client: Client, path: str = "/rules") -> str:
    """The session's CSRF token, as a page's forms carry it."""
    page = client.get(path)
    for form in forms(page.text):
        if "csrf_token" in form.fields:
            return form.fields["csrf_token"]
    raise AssertionError(f"no form with a csrf_token on {path}: {page.status}")


def pending(portal: Portal) -> set[str]:
    """The files of the action queue's pending folder."""
    folder = portal.config.actions_dir / "pending"
    return {p.name for p in folder.glob("*")} if folder.is_dir() else set()
