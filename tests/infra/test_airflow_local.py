"""`make airflow`'s pool and the embedded runtime's one-task rule (the stack itself runs in
tests/infra/test_airflow_scheduler.py)."""

from __future__ import annotations

import dataclasses
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from infra.airflow_local import AirflowLocalError, pool_slots
from infra.settings import from_env

ROOT = Path(__file__).resolve().parents[2]


def _env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "HQLAKE_"))}
    env.update(
        HQLAKE_HOME=str(home),
        AIRFLOW_HOME=str(home / "airflow"),
        AIRFLOW__CORE__LOAD_EXAMPLES="False",
        AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=f"sqlite:///{home / 'airflow.db'}",
    )
    return env


def test_the_embedded_pool_has_one_slot_and_production_many(tmp_path):
    embedded = from_env({"HQLAKE_HOME": str(tmp_path)})
    assert pool_slots(embedded, 1) == 1
    with pytest.raises(AirflowLocalError, match="one task at a time"):
        pool_slots(embedded, 2)
    production = dataclasses.replace(
        embedded, clickhouse_url="https://ch.internal:8443", s3_endpoint="minio.internal:9000"
    )
    assert pool_slots(production, 8) == 8
    with pytest.raises(AirflowLocalError, match="at least one slot"):
        pool_slots(production, 0)


@pytest.mark.integration  # a Python process that imports Airflow
def test_make_airflow_refuses_two_slots_embedded_in_one_line(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "infra.airflow_local", "start", "--slots", "2"],
        env=_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )
    assert done.returncode == 2
    assert done.stderr.startswith("error: --slots 2: the embedded runtime")
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert not (tmp_path / "airflow" / "stack.json").exists()


_HOLDER = "from infra.runtime import hold_home; from infra.settings import settings\n" + (
    "hold_home(settings()); print('held', flush=True); import sys; sys.stdin.read()"
)

_TASK = textwrap.dedent(
    """
    import datetime as dt, importlib.util, sys
    spec = importlib.util.spec_from_file_location("hqlake_daily", sys.argv[1])
    dag_file = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(dag_file)
    from airflow.sdk.exceptions import AirflowFailException
    try:
        dag_file._stage("validate_stage", dt.date(2026, 11, 16))
    except AirflowFailException as exc:
        print("FAIL:", exc)
    """
)


@pytest.mark.integration
def test_a_task_finding_the_embedded_home_taken_fails_saying_the_pool_needs_one_slot(tmp_path):
    """What a second task at once (a pool of two slots) meets: a task error naming the pool,
    not chDB's "Cannot lock file" deep inside the stage."""
    env = _env(tmp_path)
    holder = subprocess.Popen(
        [sys.executable, "-c", _HOLDER],
        env=env,
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        done = subprocess.run(
            [sys.executable, "-c", _TASK, str(ROOT / "dags" / "hqlake_daily.py")],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            cwd=ROOT,
        )
    finally:
        holder.communicate("", timeout=30)
    assert done.returncode == 0, done.stderr[-3000:]
    message = done.stdout.strip().splitlines()[-1]
    assert message.startswith(f"FAIL: another hqlake process (pid {holder.pid})")
    assert "give the pool hqlake_warehouse exactly one slot" in message
