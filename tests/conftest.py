"""Test session: real embedded services only (SeaweedFS started here, chDB in a temp dir).

chDB can open one data path per process, so the session shares one; tests that load data
reset the warehouse first: every database dropped, then migrated again (infra.schema), as a
new session would find it.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import tempfile
from pathlib import Path

import pytest

pytest_plugins = ["tests.service_markers", "tests.xdist_groups"]

_HOME = tempfile.mkdtemp(prefix="hqlake-test-")
os.environ["HQLAKE_HOME"] = _HOME
for _var in ("HQLAKE_S3_ENDPOINT", "HQLAKE_CLICKHOUSE_URL", "HQLAKE_ORG_REGISTRY"):
    os.environ.pop(_var, None)

# Airflow fixes its home, metadata database and DAG folder when it is first imported, and a
# test module imports it at collection (tests/infra/test_schedule.py compares with Airflow's
# own timetable). Give it now the environment infra.airflow_run sets for this home, or the
# in-process DAG runs of tests/test_daily_run.py later find another database ("Cannot
# create DagRun ... the dag is not serialized"; seen on a fresh clone's `make test`).
from infra.airflow_run import airflow_environment  # noqa: E402
from infra.settings import from_env  # noqa: E402

os.environ.update(
    {k: v for k, v in airflow_environment(from_env()).items() if k.startswith("AIRFLOW")}
)


def pytest_sessionfinish(session, exitstatus):
    shutil.rmtree(_HOME, ignore_errors=True)


@pytest.fixture(scope="session")
def config():
    from infra.settings import settings

    return settings()


@pytest.fixture(scope="session")
def seaweed(config):
    from infra.home import s3_keys
    from infra.seaweed import SeaweedServer

    buckets = (config.lake_bucket, config.inbox_bucket)
    with SeaweedServer(config.seaweed_dir, buckets, *s3_keys(config)) as server:
        yield server


# The generated cities several modules ingest whole (tests/ingest/test_ground_truth.py,
# tests/expectations/test_validate.py, tests/expectations/engines/test_sqlrules.py): each is
# generated once per process (the faulty week costs ~14 s of CPU) and every test gets a copy
# of its own (ingesting and correcting change nothing but the copy).
CITY_START = dt.date(2026, 11, 9)
FAULTY_WEEK = {"days": 7, "scale": 0.003, "faults": "default", "seed": 11}
CLEAN_CITY = {"days": 3, "hospitals": 6, "counties": 2, "scale": 0.003, "faults": "none", "seed": 3}


def _generated(tmp_path_factory, name: str, args: dict) -> Path:
    from samplecity import generate

    out = tmp_path_factory.mktemp(name) / "inbox"
    generate(out, CITY_START, args["days"], **{k: v for k, v in args.items() if k != "days"})
    return out


@pytest.fixture(scope="session")
def _faulty_week(tmp_path_factory) -> Path:
    return _generated(tmp_path_factory, "faulty-week", FAULTY_WEEK)


@pytest.fixture(scope="session")
def _clean_city(tmp_path_factory) -> Path:
    return _generated(tmp_path_factory, "clean-city", CLEAN_CITY)


def copy_inbox(inbox: Path, to: Path) -> Path:
    """A copy of a generated inbox at `to` (file times kept: timeliness reads them)."""
    return Path(shutil.copytree(inbox, to, copy_function=shutil.copy2))


def ground_truth(inbox: Path) -> list[dict]:
    return [json.loads(x) for x in (inbox / "_ground_truth.jsonl").read_text().splitlines()]


@pytest.fixture
def faulty_week(_faulty_week, tmp_path) -> Path:
    """A copy of the sample city's default faults over the week from CITY_START (the
    default organisations, FAULTY_WEEK's scale and seed): every fault kind is in it."""
    return copy_inbox(_faulty_week, tmp_path / "faulty-week")


@pytest.fixture
def clean_city(_clean_city, tmp_path) -> Path:
    """A copy of a clean sample city (no faults) of CLEAN_CITY's days from CITY_START."""
    return copy_inbox(_clean_city, tmp_path / "clean-city")


_SYSTEM_DATABASES = {
    "system",
    "default",
    "INFORMATION_SCHEMA",
    "information_schema",
    "_temporary_and_external_tables",
}


def reset_warehouse(ch) -> None:
    """Drop every database hqlake made (raw, dq, the dbt schemas, reference) and migrate: a
    test starts from an empty warehouse, whatever earlier tests of the session built."""
    from infra.schema import migrate

    # dbt runs on the same chDB engine and may leave its session in one of its databases
    ch.command("USE default")
    for (name,) in ch.query("SELECT name FROM system.databases").result_rows:
        if name not in _SYSTEM_DATABASES:
            ch.command(f"DROP DATABASE IF EXISTS `{name}` SYNC")
    migrate(ch)


def record_run(ch, run_id, business_date, at, status="complete", rule_results=0) -> None:
    """A validation run of `business_date` in dq.run, started and finished `at` (what scoring
    and the reports read as the date's run), without running the rules."""
    row = {
        "run_id": run_id,
        "business_date": business_date,
        "status": status,
        "rules_fingerprint": "fp",
        "rule_results": rule_results,
        "rules_failed": 0,
        "started_at": at,
        "finished_at": at,
        "notes": "",
    }
    ch.insert("dq.run", [list(row.values())], column_names=list(row))


def empty_runtime(config, seaweed):
    """A Runtime on the session's SeaweedFS and chDB: an empty warehouse and empty buckets
    (the `rt` fixture, and fixtures of a wider scope that build a warehouse once)."""
    from minio.deleteobjects import DeleteObject

    from infra.runtime import Runtime, warehouse

    ch = warehouse(config)
    reset_warehouse(ch)
    s3 = seaweed.client()
    for bucket in (config.lake_bucket, config.inbox_bucket):
        objects = [DeleteObject(o.object_name) for o in s3.list_objects(bucket, recursive=True)]
        errors = list(s3.remove_objects(bucket, objects))
        assert not errors, errors
    return Runtime(config, s3, ch)


@pytest.fixture
def rt(config, seaweed):
    """A Runtime on the session's SeaweedFS and chDB: an empty warehouse and empty buckets."""
    return empty_runtime(config, seaweed)
