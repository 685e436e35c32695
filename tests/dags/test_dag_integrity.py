"""DAG integrity: every DAG file imports fast and cleanly, with tags, retries and no cycles.

Each DAG file is probed once in a fresh interpreter with its own AIRFLOW_HOME (the tests of
a file share its probe), so that the import time is measured without whatever this test
session has imported already, and Airflow's configuration never leaks into other tests.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from infra.airflow_run import TASK_ORDER

DAGS = Path(__file__).resolve().parents[2] / "dags"
HEAVY = ("great_expectations", "dbt", "polars", "pandas", "chdb", "infra.pipeline", "ingest")
MAX_IMPORT_SECONDS = 2.0  # on top of `import airflow.sdk`; Airflow's own parse timeout is 30 s

_PROBE = textwrap.dedent(
    """
    import importlib.util, json, sys, time
    import airflow.sdk  # the baseline every DAG file pays
    path = sys.argv[1]
    started = time.perf_counter()
    spec = importlib.util.spec_from_file_location("dag_under_test", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    seconds = time.perf_counter() - started
    heavy = sorted(m for m in sys.modules for h in sys.argv[2].split(",")
                   if m == h or m.startswith(h + "."))
    from airflow.dag_processing.dagbag import DagBag
    bag = DagBag(path)
    dags = {}
    for dag_id, dag in bag.dags.items():
        dag.check_cycle()
        dags[dag_id] = {
            "tags": sorted(dag.tags),
            "catchup": dag.catchup,
            "schedule": getattr(dag.timetable, "expression", ""),
            "timezone": str(getattr(dag.timetable, "timezone", "")),
            "tasks": {t.task_id: {"retries": t.retries, "pool": t.pool,
                                  "backoff": bool(t.retry_exponential_backoff)}
                      for t in dag.tasks},
        }
    print(json.dumps({"seconds": seconds, "heavy": heavy, "dags": dags,
                      "errors": {k: str(v) for k, v in bag.import_errors.items()}}))
    """
)


def _probe(path: Path, tmp_path: Path) -> dict:
    env = dict(os.environ)
    env.update(
        AIRFLOW_HOME=str(tmp_path / "airflow"),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        AIRFLOW__CORE__DAGS_FOLDER=str(DAGS),
        AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=f"sqlite:///{tmp_path / 'airflow.db'}",
        AIRFLOW__LOGGING__LOGGING_LEVEL="ERROR",
    )
    env.pop("HQLAKE_TASK_RETRIES", None)
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, str(path), ",".join(HEAVY)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


DAG_FILES = sorted(DAGS.glob("*.py"))


@pytest.fixture(scope="module")
def probe(tmp_path_factory):
    """The probe of a DAG file, made once per file for this module's tests."""
    found: dict[Path, dict] = {}

    def get(path: Path) -> dict:
        if path not in found:
            found[path] = _probe(path, tmp_path_factory.mktemp(path.stem))
        return found[path]

    return get


def test_there_are_dag_files():
    assert [p.name for p in DAG_FILES] == ["hqlake_daily.py"]


@pytest.mark.parametrize("path", DAG_FILES, ids=lambda p: p.name)
def test_dag_file_integrity(path, probe):
    found = probe(path)
    assert found["errors"] == {}
    assert found["heavy"] == [], f"{path.name} imports heavy modules at parse time"
    assert found["seconds"] < MAX_IMPORT_SECONDS, f"{path.name} took {found['seconds']:.2f}s"
    assert found["dags"], f"{path.name} defines no DAG"
    for dag_id, dag in found["dags"].items():
        assert dag["tags"], f"{dag_id} has no tags"
        assert dag["catchup"] is False
        for task_id, task in dag["tasks"].items():
            assert task["retries"] >= 1, f"{dag_id}.{task_id} never retries"
            assert task["backoff"], f"{dag_id}.{task_id} retries without backoff"


def test_daily_dag_shape(probe):
    dag = probe(DAGS / "hqlake_daily.py")["dags"]["hqlake_daily"]
    # the run summary's task order (infra/airflow_run.py) names exactly the DAG's tasks
    assert set(dag["tasks"]) == set(TASK_ORDER)
    assert dag["schedule"] == "0 9 * * *" and "Shanghai" in dag["timezone"]
    assert {t["pool"] for t in dag["tasks"].values()} == {"hqlake_warehouse"}
    assert {"hqlake", "daily"} <= set(dag["tags"])
