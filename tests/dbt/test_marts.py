"""End to end on the embedded runtime: a generated week of the sample city is ingested,
validated and scored, every model is built, a day is added incrementally and a batch is
corrected; indicators are checked against values computed independently in Python from the
same upload files, and no column of any model holds an identity number, name or phone."""

from __future__ import annotations

import datetime as dt
import gzip
import io
import json
import re
import time
from collections import defaultdict
from pathlib import Path

import polars as pl
import pytest
from stdnum.cn import ric

from contracts.loader import contracts
from contracts.registry import load_registry
from infra import dbtrun
from infra.pipeline import ingestor
from infra.runtime import Runtime
from infra.settings import settings
from samplecity import generate

pytestmark = pytest.mark.integration

START, WEEK = dt.date(2026, 11, 9), 7
DAY8 = START + dt.timedelta(days=WEEK)
MODEL_DATABASES = ("staging", "intermediate", "ehr", "indicators", "performance", "dq_marts")
MARTS = ("dim_person", "fct_encounter", "fct_diagnosis", "fct_prescription", "fct_lab_result")


# ----------------------------------------------------------------------------- reference values


def _read_upload(path: Path) -> pl.DataFrame:
    """One upload file as text columns, whatever its format (polars, not the ingest readers)."""
    name = path.name
    if name.endswith((".csv", ".csv.gz")):
        data = path.read_bytes()
        data = gzip.decompress(data) if name.endswith(".gz") else data
        for encoding in ("utf-8-sig", "gb18030"):
            try:
                text = data.decode(encoding)
                break
            except UnicodeDecodeError:
                continue
        frame = pl.read_csv(io.StringIO(text), infer_schema=False)
    elif name.endswith(".parquet"):
        frame = pl.read_parquet(path)
    elif name.endswith(".jsonl"):
        lines = path.read_bytes().strip()
        frame = (
            pl.read_ndjson(io.BytesIO(lines), infer_schema_length=None) if lines else pl.DataFrame()
        )
    elif name.endswith(".xlsx"):
        frame = pl.read_excel(path, infer_schema_length=0)
    else:
        raise ValueError(f"unexpected upload {path}")
    return frame.select(pl.all().cast(pl.String))


def _uploads(inbox: Path, dataset: str) -> pl.DataFrame:
    frames = []
    for path in sorted(inbox.glob(f"*/{dataset}/*/*")):
        if path.name.startswith("_") or path.parts[-4].startswith("_"):
            continue
        frames.append(_read_upload(path).with_columns(org_code=pl.lit(path.parts[-4])))
    return pl.concat(frames, how="diagonal")


def _month(column: str) -> pl.Expr:
    return pl.col(column).str.slice(0, 7)


def _per_org_month(frame: pl.DataFrame, **aggregates: pl.Expr) -> list[dict]:
    return frame.group_by("org_code", "month").agg(**aggregates).rows(named=True)


def _expected_hospital_months(inbox: Path) -> dict[tuple[str, str], dict[str, float]]:
    """(org_code, 'YYYY-MM') -> indicators, from the upload files."""
    visits = _uploads(inbox, "outpatient_visit").with_columns(
        month=_month("visit_time"), fee=pl.col("total_fee").cast(pl.Float64)
    )
    stays = _uploads(inbox, "inpatient_discharge").with_columns(
        month=_month("discharge_time"), los=pl.col("los_days").cast(pl.Int64)
    )
    items = _uploads(inbox, "prescription").filter(pl.col("encounter_type") == "1")
    prescriptions = items.group_by("org_code", "rx_id").agg(
        month=_month("ordered_at").min(),
        antibiotic=(pl.col("is_antibiotic") == "1").any(),
    )
    out: dict[tuple[str, str], dict[str, float]] = defaultdict(dict)
    for row in _per_org_month(
        visits,
        outpatient=(pl.col("visit_type") == "1").sum(),
        emergency=(pl.col("visit_type") == "2").sum(),
        fee=pl.col("fee").sum(),
        n=pl.len(),
    ):
        out[(row["org_code"], row["month"])] |= {
            "outpatient_visits": row["outpatient"],
            "emergency_visits": row["emergency"],
            "avg_fee_per_outpatient_visit": row["fee"] / row["n"],
        }
    for row in _per_org_month(stays, n=pl.len(), days=pl.col("los").sum()):
        out[(row["org_code"], row["month"])] |= {
            "discharges": row["n"],
            "avg_los_days": row["days"] / row["n"],
        }
    for row in _per_org_month(prescriptions, n=pl.len(), abx=pl.col("antibiotic").sum()):
        out[(row["org_code"], row["month"])] |= {
            "antibiotic_prescription_pct": 100 * row["abx"] / row["n"],
        }
    return out


# ----------------------------------------------------------------------------- the pipeline


def _validate_and_score(ch, registry, day):
    from expectations.validate import validate_date

    validate_date(ch, registry, day)
    try:
        from expectations.scoring.store import score_date
    except ImportError:
        return
    score_date(ch, registry, day)


def _ingest(rt, inbox: Path, registry, day: dt.date) -> None:
    ingestor(rt, registry).ingest(str(inbox), day)
    _validate_and_score(rt.ch, registry, day)


def _timed_build(registry, **kwargs) -> dbtrun.BuildResult:
    result = dbtrun.build(registry=registry, **kwargs)
    assert result.success, [(n.name, n.message) for n in result.failures()] or result.error
    assert result.models_failed == 0 and result.tests_failed == 0
    return result


def _slowest(result: dbtrun.BuildResult, n: int = 6) -> list[tuple[str, float]]:
    models = [x for x in result.nodes if x.resource_type == "model"]
    return [(x.name, round(x.seconds, 2)) for x in sorted(models, key=lambda x: -x.seconds)[:n]]


def _rebuilt_dates(model: str = "stg_raw__outpatient_visit") -> set[str]:
    """Business dates the last build's SQL of an incremental model selected."""
    run = dbtrun.dbt_home() / "target" / "run" / "hqlake" / "models" / "staging" / "raw"
    return set(re.findall(r"toDate\('(\d{4}-\d\d-\d\d)'\)", (run / f"{model}.sql").read_text()))


def _count(ch, table: str, where: str = "1") -> int:
    return int(ch.command(f"SELECT count() FROM {table} WHERE {where}"))


def _drop_last_record(
    inbox: Path, dataset: str, key: str, day: dt.date, org: str | None = None
) -> tuple[str, str]:
    """Re-upload an organisation's `dataset` batch of `day` (the first hospital's unless
    `org`) without its last record by `key`, as one UTF-8 CSV in place of its files: a
    correction. Returns (org_code, removed key)."""
    folders = sorted(p for p in inbox.glob(f"{org or '*'}/{dataset}/{day}") if p.is_dir())
    folder = folders[0]
    files = [p for p in folder.iterdir() if not p.name.startswith("_")]
    rows = pl.concat([_read_upload(p) for p in files], how="diagonal").sort(key)
    for path in folder.iterdir():
        path.unlink()
    rows.head(rows.height - 1).write_csv(folder / "corrected.csv")
    return folder.parts[-3], rows[key][-1]


def _checksums(ch) -> dict[str, tuple[int, int]]:
    """(rows, order-independent checksum of every column) of every table dbt built."""
    tables = ch.query(
        "SELECT database, name FROM system.tables WHERE database IN {d:Array(String)}"
        " AND engine LIKE '%MergeTree' ORDER BY database, name",
        parameters={"d": list(MODEL_DATABASES)},
    ).result_rows
    return {
        f"{db}.{name}": tuple(
            ch.query(f"SELECT count(), sum(cityHash64(*)) FROM `{db}`.`{name}`").result_rows[0]
        )
        for db, name in tables
    }


def _dim_person(ch) -> list[tuple]:
    return ch.query("SELECT * FROM ehr.dim_person ORDER BY person_key").result_rows


@pytest.fixture(scope="module")
def city(config, seaweed, tmp_path_factory):
    """The week built in full, day 8 built incrementally, a corrected batch rebuilt."""
    from minio.deleteobjects import DeleteObject

    from infra.runtime import warehouse
    from infra.schema import migrate

    ch = warehouse(config)
    for database in ("raw", "dq", *MODEL_DATABASES):
        ch.command(f"DROP DATABASE IF EXISTS {database} SYNC")
    migrate(ch)
    s3 = seaweed.client()
    for bucket in (config.lake_bucket, config.inbox_bucket):
        objects = [DeleteObject(o.object_name) for o in s3.list_objects(bucket, recursive=True)]
        assert not list(s3.remove_objects(bucket, objects))
    rt = Runtime(config, s3, ch)

    inbox = tmp_path_factory.mktemp("inbox")
    generate(inbox, START, WEEK + 1, hospitals=6, counties=2, scale=0.004, faults="none", seed=5)
    registry = load_registry(inbox / "_registry.csv")
    timings: dict[str, object] = {}

    began = time.perf_counter()
    for i in range(WEEK):
        _ingest(rt, inbox, registry, START + dt.timedelta(days=i))
    timings["ingest_validate_week_s"] = round(time.perf_counter() - began, 1)
    print("\ningested and validated the week:", timings)

    full = _timed_build(registry, full_refresh=True)
    week_rows = {m: _count(ch, f"ehr.{m}") for m in MARTS}
    noop = _timed_build(registry)
    assert {m: _count(ch, f"ehr.{m}") for m in MARTS} == week_rows

    _ingest(rt, inbox, registry, DAY8)
    day8 = _timed_build(registry)
    rebuilt = {"day8": _rebuilt_dates()}
    day8_rows = {m: _count(ch, f"ehr.{m}") for m in MARTS}

    corrected_day = START + dt.timedelta(days=2)
    org, visit_id = _drop_last_record(inbox, "outpatient_visit", "visit_id", corrected_day)
    _drop_last_record(inbox, "patient", "patient_id", corrected_day, org)
    before = _count(ch, "ehr.fct_encounter", f"org_code = '{org}'")
    persons_before = _dim_person(ch)
    _ingest(rt, inbox, registry, corrected_day)
    correction = _timed_build(registry)
    rebuilt["correction"] = _rebuilt_dates()
    persons_incremental = _dim_person(ch)
    models_incremental = _checksums(ch)
    # dim_person resolves only the persons whose evidence changed: the result must be what
    # a build from scratch gives (macros/person_index.sql).
    _timed_build(registry, full_refresh=True)
    persons_full = _dim_person(ch)
    models_full = _checksums(ch)

    timings |= {
        "full_build_s": round(full.elapsed, 2),
        "noop_build_s": round(noop.elapsed, 2),
        "day8_incremental_build_s": round(day8.elapsed, 2),
        "correction_build_s": round(correction.elapsed, 2),
        "full_slowest_models": _slowest(full),
        "day8_slowest_models": _slowest(day8),
        "models": full.models_passed,
        "tests": full.tests_passed,
        "week_rows": week_rows,
        "day8_rows": day8_rows,
    }
    print("\ndbt timings:", timings)
    return {
        "ch": ch,
        "rt": rt,
        "inbox": inbox,
        "registry": registry,
        "full": full,
        "week_rows": week_rows,
        "day8_rows": day8_rows,
        "correction": (org, visit_id, corrected_day, before),
        "rebuilt": rebuilt,
        "timings": timings,
        "persons": (persons_before, persons_incremental, persons_full),
        "models": (models_incremental, models_full),
    }


# ----------------------------------------------------------------------------- tests


def test_every_model_and_test_builds(city):
    full = city["full"]
    assert full.models_passed >= 40 and full.tests_passed >= 100
    kinds = {n.resource_type for n in full.nodes}
    assert {"model", "test", "unit_test"} <= kinds
    unit_tests = [n for n in full.nodes if n.resource_type == "unit_test"]
    assert len(unit_tests) >= 8 and all(n.status == "pass" for n in unit_tests)
    ch = city["ch"]
    for table in ("ehr.dim_person", "ehr.fct_health_record_timeline", "ehr.dim_organization"):
        assert _count(ch, table) > 0, table
    domains = ch.query(
        "SELECT groupUniqArray(record_domain) FROM ehr.fct_health_record_timeline"
    ).result_rows[0][0]
    assert len(domains) == 7, domains


def test_hospital_indicators_match_python_on_the_upload_files(city):
    expected = _expected_hospital_months(city["inbox"])
    columns = sorted({c for values in expected.values() for c in values})
    rows = (
        city["ch"]
        .query(
            f"SELECT org_code, formatDateTime(period_month, '%Y-%m'), {', '.join(columns)}"
            " FROM indicators.ind_hospital_monthly WHERE area_level = 'organization'"
        )
        .result_rows
    )
    actual = {(r[0], r[1]): dict(zip(columns, r[2:], strict=True)) for r in rows}
    assert set(expected) <= set(actual)
    for key in set(actual) - set(expected):
        # months with admissions or inpatient antibiotics only (a stay discharged later)
        assert not any(actual[key][c] for c in ("outpatient_visits", "discharges")), key
    compared = 0
    for key, values in expected.items():
        for column, value in values.items():
            got = actual[key][column]
            assert got is not None and abs(float(got) - value) <= 0.0051, (key, column, got, value)
            compared += 1
    assert compared >= 30
    city_visits = city["ch"].command(
        "SELECT sum(outpatient_emergency_visits) FROM indicators.ind_hospital_monthly"
        " WHERE area_level = 'city'"
    )
    assert city_visits == sum(
        v.get("outpatient_visits", 0) + v.get("emergency_visits", 0) for v in expected.values()
    )


def test_incremental_day_adds_only_that_day_and_reruns_change_nothing(city):
    ch, week, day8 = city["ch"], city["week_rows"], city["day8_rows"]
    assert all(day8[m] >= week[m] for m in MARTS) and day8["fct_encounter"] > week["fct_encounter"]
    # the new day's rows are exactly the staged rows of that day
    assert _count(ch, "ehr.fct_encounter", f"business_date = '{DAY8}'") == _count(
        ch, "staging.stg_raw__outpatient_visit", f"business_date = '{DAY8}'"
    ) + _count(ch, "staging.stg_raw__inpatient_discharge", f"business_date = '{DAY8}'")
    for database, table, key in (
        ("staging", "stg_raw__outpatient_visit", "org_code, business_date, record_key"),
        ("ehr", "fct_encounter", "encounter_key"),
        ("ehr", "fct_prescription", "rx_item_key"),
        ("ehr", "fct_lab_result", "lab_result_key"),
        ("indicators", "ind_hospital_monthly", "area_level, area_code, period_month"),
    ):
        duplicates = ch.command(
            f"SELECT count() FROM (SELECT {key} FROM {database}.{table}"
            f" GROUP BY {key} HAVING count() > 1)"
        )
        assert duplicates == 0, table


def test_corrected_batch_replaces_its_rows(city):
    ch = city["ch"]
    org, visit_id, day, before = city["correction"]
    assert (
        ch.command(
            "SELECT max(batch_version) FROM raw.current_batch WHERE org_code = {o:String}"
            " AND dataset = 'outpatient_visit' AND business_date = {d:Date}",
            parameters={"o": org, "d": day},
        )
        == 2
    )
    assert _count(ch, "ehr.fct_encounter", f"org_code = '{org}'") == before - 1
    assert not _count(
        ch, "ehr.fct_encounter", f"org_code = '{org}' AND encounter_id = '{visit_id}'"
    )
    assert not _count(
        ch,
        "staging.stg_raw__outpatient_visit",
        f"batch_version = 1 AND org_code = '{org}' AND business_date = '{day}'",
    )


def test_incremental_person_index_equals_a_full_build(city):
    before, incremental, full = city["persons"]
    assert incremental != before, "the corrected patient batch changed no person"
    assert incremental == full


def test_incremental_models_equal_a_full_build(city):
    """Every table after the incremental builds (day 8, the corrected batch) has the rows a
    build from scratch gives: the incremental models' date predicates (staging reads the
    stale dates' batches, raw rows and record issues only) leave nothing out."""
    incremental, full = city["models"]
    assert len(incremental) > 20 and any(n.startswith("staging.stg_raw__") for n in incremental)
    # the latest row per patient and per health record are incremental by key
    # (macros/latest_by_key.sql) and rebuilt from scratch alike
    for model in ("int_patient_person", "int_health_record_person"):
        assert incremental[f"intermediate.{model}"][0] > 0, model
        assert incremental[f"intermediate.{model}_changed_keys"][0] == 0, model
    assert incremental.keys() == full.keys()
    differ = {n: (incremental[n], full[n]) for n in full if incremental[n] != full[n]}
    assert not differ, differ


def test_dq_marts_follow_the_scores(city):
    ch = city["ch"]
    expected = sum(
        len(contracts().datasets_for(org.kind)) for org in city["registry"].active(START)
    )
    assert _count(ch, "dq_marts.dq_upload_monitoring", f"business_date = '{START}'") == expected
    assert _count(ch, "dq_marts.dq_upload_monitoring", "is_received") > 0
    if ch.command("EXISTS TABLE dq.current_score_org_day"):
        assert _count(ch, "dq_marts.dq_org_day_score") == _count(ch, "dq.current_score_org_day")
        assert _count(ch, "dq_marts.dq_org_day_score", "composite_score IS NULL") < _count(
            ch, "dq_marts.dq_org_day_score"
        )
    assert _count(ch, "dq_marts.dq_rule_failure_trend") > 0


def _raw_personal_values(ch) -> set[str]:
    values: set[str] = set()
    for name, dataset in contracts().datasets.items():
        for field in dataset.pii_fields:
            values |= {
                v
                for (v,) in ch.query(
                    f"SELECT DISTINCT `{field}` FROM raw.`{name}` WHERE `{field}` != ''"
                ).result_rows
                if v
            }
    return values


RESIDENT_ID = re.compile(r"^[0-9]{17}[0-9Xx]$")


def test_no_model_holds_a_raw_identity_number_name_or_phone(city):
    ch = city["ch"]
    personal = _raw_personal_values(ch)
    assert len(personal) > 100
    org_codes = set(city["registry"].organisations)
    ch.command("CREATE DATABASE IF NOT EXISTS pii_probe")
    ch.command("CREATE OR REPLACE TABLE pii_probe.value (v String) ENGINE = Set")
    ch.insert("pii_probe.value", [[v] for v in sorted(personal)], column_names=["v"])
    columns = ch.query(
        "SELECT database, table, name, type FROM system.columns"
        " WHERE database IN {dbs:Array(String)} AND type LIKE '%String%'",
        parameters={"dbs": list(MODEL_DATABASES)},
    ).result_rows
    assert len(columns) > 100
    checked, found = 0, []
    for database, table, column, kind in columns:
        values = f"arrayJoin(`{column}`)" if kind.startswith("Array") else f"`{column}`"
        source = f"(SELECT toString({values}) AS v FROM `{database}`.`{table}`)"
        hits = ch.command(f"SELECT count() FROM {source} WHERE v IN pii_probe.value")
        shaped = [
            v
            for (v,) in ch.query(
                f"SELECT DISTINCT v FROM {source} WHERE match(v, '^[0-9]{{17}}[0-9Xx]$')"
            ).result_rows
            if v not in org_codes and ric.is_valid(v)
        ]
        if hits or shaped:
            found.append((database, table, column, hits, shaped[:3]))
        checked += 1
    ch.command("DROP DATABASE pii_probe SYNC")
    assert checked == len(columns) and not found, found
    assert RESIDENT_ID.match("411502197308164562")


def test_incremental_builds_select_only_the_changed_business_dates(city):
    _, _, corrected_day, _ = city["correction"]
    assert city["rebuilt"] == {"day8": {str(DAY8)}, "correction": {str(corrected_day)}}
    timings = city["timings"]
    assert timings["noop_build_s"] > 0 and timings["day8_incremental_build_s"] > 0


def test_catalogue_documents_every_model_without_the_salt(city, tmp_path):
    page = dbtrun.docs_generate(tmp_path / "catalogue", registry=city["registry"])
    assert page.name == "static_index.html" and page.stat().st_size > 100_000
    manifest = json.loads((page.parent / "manifest.json").read_text())
    catalog = json.loads((page.parent / "catalog.json").read_text())
    models = {n["name"]: n for n in manifest["nodes"].values() if n["resource_type"] == "model"}
    assert all(m["description"] for m in models.values()), [
        name for name, m in models.items() if not m["description"]
    ]
    assert "`1` 男" in models["dim_person"]["columns"]["sex_code"]["description"]
    share = models["ind_hospital_monthly"]["columns"]["drug_fee_share_pct"]["description"]
    assert "Formula" in share and "Source" in share
    built = {n["metadata"]["name"] for n in catalog["nodes"].values()}
    assert {"fct_encounter", "dim_person", "ind_hospital_monthly", "perf_hospital_monthly"} <= built
    salt = dbtrun._pii_salt(settings())
    files = [p for p in page.parent.rglob("*") if p.is_file()]
    assert files and not any(salt in p.read_text(errors="ignore") for p in files)


def _planted_duplicate(ch, table: str, day: dt.date) -> None:
    """A staged row of `day` inserted again: unique_combination(org_code, business_date,
    record_key) fails on that date, and the row keeps its date's stamp, so no model sees
    the date as stale."""
    ch.command(
        f"INSERT INTO {table} SELECT * FROM {table} WHERE business_date = {{d:Date}} LIMIT 1",
        parameters={"d": day},
    )


def test_tests_of_rebuilt_dates_catch_a_fault_planted_in_a_rebuilt_date(city):
    """The data tests of date-rebuilt models read the build's dates only
    (macros/build_scope.sql): a duplicate planted on a date outside them is not read, the
    same duplicate on a date the build rebuilds fails the build."""
    ch, registry = city["ch"], city["registry"]
    table, model = "staging.stg_raw__outpatient_visit", "stg_raw__outpatient_visit"
    old_day, rebuilt_day = START + dt.timedelta(days=1), DAY8
    assert _timed_build(registry).success  # every date tested: none is in the next scope
    try:
        _planted_duplicate(ch, table, old_day)
        outside = dbtrun.build(select=model, registry=registry)
        assert outside.success and outside.tests_passed > 5, outside.failures()
        # the date is rebuilt when its stamp is not the one its tests passed with
        ch.command(
            "DELETE FROM hqlake_dbt.tested_business_date WHERE business_date = {d:Date}",
            parameters={"d": rebuilt_day},
        )
        _planted_duplicate(ch, table, rebuilt_day)
        inside = dbtrun.build(select=model, registry=registry)
        assert ch.query("SELECT business_date FROM hqlake_dbt.build_business_date").result_rows == [
            (rebuilt_day,)
        ]
        failed = [n.name for n in inside.failures()]
        assert not inside.success and failed == [
            f"unique_combination_{model}_org_code__business_date__record_key"
        ], failed
    finally:
        # the model rebuilds both dates from scratch (no rows: stale), the tests pass again
        ch.command(
            f"DELETE FROM {table} WHERE business_date IN {{d:Array(Date)}}",
            parameters={"d": [old_day, rebuilt_day]},
        )
        _timed_build(registry)
    assert _count(ch, table, f"business_date = '{rebuilt_day}'") > 0


# Last in the module: it changes the shared city (a new version of day 8).
def test_resent_visits_change_no_indicator_and_stay_in_raw(city):
    """A hospital re-sends the day before's visits inside day 8's batch (section 7.2): the
    rows are loaded to raw, blocked by cross.record_not_resent with their record key, and
    no indicator of the hospital moves."""
    ch, inbox, registry = city["ch"], city["inbox"], city["registry"]
    before_day = DAY8 - dt.timedelta(days=1)
    folder = sorted(p for p in inbox.glob(f"*/outpatient_visit/{DAY8}") if p.is_dir())[-1]
    org = folder.parts[-3]
    old_visits = pl.concat(
        [
            _read_upload(p)
            for p in sorted((folder.parent / str(before_day)).iterdir())
            if not p.name.startswith("_")
        ],
        how="diagonal",
    )
    assert old_visits.height > 0
    indicator = (
        "SELECT * FROM indicators.ind_hospital_monthly"
        f" WHERE area_level = 'organization' AND area_code = '{org}' ORDER BY period_month"
    )
    before = ch.query(indicator).result_rows
    files = [p for p in folder.iterdir() if not p.name.startswith("_")]
    today = pl.concat([_read_upload(p) for p in files], how="diagonal")
    for path in folder.iterdir():
        path.unlink()
    pl.concat([today, old_visits], how="diagonal").write_csv(folder / "with_resent.csv")
    _ingest(city["rt"], inbox, registry, DAY8)
    _timed_build(registry)

    resent = sorted(old_visits["visit_id"].to_list())
    in_raw = ch.query(
        "SELECT count() FROM raw.outpatient_visit WHERE org_code = {o:String}"
        " AND business_date = {d:Date} AND visit_id IN {k:Array(String)} AND batch_version ="
        " (SELECT batch_version FROM raw.current_batch WHERE dataset = 'outpatient_visit'"
        " AND org_code = {o:String} AND business_date = {d:Date})",
        parameters={"o": org, "d": DAY8, "k": resent},
    ).result_rows[0][0]
    assert in_raw == len(resent)  # nothing lost
    issues = ch.query(
        "SELECT record_key, severity FROM dq.record_issue WHERE rule_id = 'cross.record_not_resent'"
        " AND org_code = {o:String} AND business_date = {d:Date}"
        " AND run_id = (SELECT run_id FROM dq.current_run WHERE business_date = {d:Date})",
        parameters={"o": org, "d": DAY8},
    ).result_rows
    assert sorted(k for k, _ in issues) == resent and {s for _, s in issues} == {"blocking"}
    staged = ch.query(
        "SELECT count() FROM staging.stg_raw__outpatient_visit WHERE org_code = {o:String}"
        " AND business_date = {d:Date} AND record_key IN {k:Array(String)}",
        parameters={"o": org, "d": DAY8, "k": resent},
    ).result_rows[0][0]
    assert staged == 0
    assert ch.query(indicator).result_rows == before
