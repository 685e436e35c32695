"""`hqlake run` / `hqlake backfill`: the daily DAG through Airflow itself, in this process.

Airflow's home is `HQLAKE_HOME/airflow` with a SQLite metadata database, migrated on first
use; the DAG is loaded from `dags/` and run with `dag.test()`, which executes every task in
this process. That is what the embedded runtime needs: chDB opens its data path in one
process only. Around the run, the embedded services are started once and stopped again:
SeaweedFS (shared by every task through `infra.pipeline.session()`) and, unless
`HQLAKE_SMTP_HOST` names a relay, the SMTP sink writing the e-mails to `HQLAKE_HOME/outbox`.

The wall time of each task comes from Airflow's own task instance records.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import time
import warnings
from collections import defaultdict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from contracts.errors import OperatorError
from infra.home import private_dir
from infra.schedule import logical_date
from infra.settings import Settings, environment, settings, smtp_config, task_policy

if TYPE_CHECKING:
    from infra.runtime import Runtime

log = logging.getLogger(__name__)

DAG_ID = "hqlake_daily"
DAGS_FOLDER = Path(__file__).resolve().parent.parent / "dags"


def airflow_environment(config: Settings) -> dict[str, str]:
    """What Airflow (and the DAG file it parses) reads from the environment for an embedded
    run under HQLAKE_HOME. This sets variables for the library it drives; hqlake's own
    configuration is read in infra.settings only."""
    home = config.airflow_home
    # In one process a failed task is most likely our bug or a dead embedded service:
    # one quick retry, not the production backoff of minutes.
    policy = task_policy(retries=1, retry_delay=1.0)
    return {
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS_FOLDER),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        # a writer waits up to a minute for SQLite's lock (the default 5 s fails the scheduler,
        # the api-server and a CLI command writing at once on a loaded machine)
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}?timeout=60",
        "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(home / "logs"),
        "AIRFLOW__LOGGING__LOGGING_LEVEL": config.airflow_logging_level,
        "HQLAKE_TASK_RETRIES": str(policy.retries),
        "HQLAKE_TASK_RETRY_DELAY": f"{policy.retry_delay:g}",
    }


class EmbeddedPoolError(OperatorError):
    """A DAG task found the embedded home held by another process: under Airflow, a pool of
    more than one slot on the embedded runtime."""


def embedded_pool_message(reason: str, pool: str | None = None) -> str:
    pool = pool or task_policy().pool
    return (
        f"{reason}. The embedded runtime (chDB, SeaweedFS) takes one task at a time: give the"
        f" pool {pool} exactly one slot (airflow pools set {pool} 1 ...; make airflow does);"
        " a ClickHouse server and MinIO (HQLAKE_CLICKHOUSE_URL, HQLAKE_S3_ENDPOINT) take more"
    )


def claim_home(config: Settings | None = None) -> None:
    """Make this task's process the one on the embedded home before a stage opens chDB or
    SeaweedFS, or raise EmbeddedPoolError saying the pool must have one slot (their own
    errors, "Cannot lock file .../chdb/status", do not say so). Nothing to claim when both
    services are production ones."""
    from infra.runtime import HomeError, hold_home

    config = config or settings()
    try:
        hold_home(config)
    except HomeError as exc:
        if "another hqlake process" not in str(exc):
            raise
        raise EmbeddedPoolError(embedded_pool_message(str(exc).partition(";")[0])) from None


def _prepare_airflow(config: Settings, slots: int = 1) -> None:
    """Migrate the metadata database (idempotent) and create the warehouse pool (one slot
    embedded; `make airflow --slots` more with a ClickHouse server)."""
    import airflow.settings
    from airflow.configuration import conf

    if (
        conf.get("database", "sql_alchemy_conn")
        != airflow_environment(config)["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
    ):
        raise RuntimeError(
            "Airflow was imported in this process before its environment was set"
            f" (metadata {conf.get('database', 'sql_alchemy_conn')}): run hqlake run alone"
        )
    private_dir(config.airflow_home)
    if airflow.settings.Session is None:
        airflow.settings.configure_orm()
    from airflow.models.pool import Pool
    from airflow.utils import db

    db.initdb()
    Pool.create_or_update_pool(
        task_policy().pool,
        slots=slots,
        description=(
            "chDB opens its data path in one process: one warehouse task at a time"
            if slots == 1
            else "warehouse tasks at once on the ClickHouse server"
        ),
        include_deferred=False,
    )


def load_dag():
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(str(DAGS_FOLDER))
    if bag.import_errors:
        raise RuntimeError(f"DAG files failed to import: {bag.import_errors}")
    return bag.get_dag(DAG_ID)


# the DAG of each metadata database this process migrated: (database, its inode) -> DAG
_READY: dict[tuple[str, int], Any] = {}


def _ready_dag(config: Settings):
    """The DAG, on a migrated metadata database with the pool: migrated and parsed once per
    process and database (`make demo` runs the DAG twice; each migration check and parse
    took seconds), again when the database file is a new one (a test's fresh home)."""
    db_file = config.airflow_home / "airflow.db"
    key = (str(db_file), db_file.stat().st_ino if db_file.exists() else -1)
    if key not in _READY:
        _prepare_airflow(config)
        dag = load_dag()
        _READY.clear()  # one database per process at a time: forget the others
        _READY[(str(db_file), db_file.stat().st_ino)] = dag
        return dag
    return _READY[key]


def _summary(dag_run, seconds: float) -> dict[str, Any]:
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    tasks: dict[str, dict[str, Any]] = defaultdict(
        lambda: {"instances": 0, "seconds": 0.0, "states": defaultdict(int)}
    )
    failed = []
    for ti in dag_run.get_task_instances():
        t = tasks[ti.task_id]
        t["instances"] += 1
        t["seconds"] += float(ti.duration or 0.0)
        t["states"][str(ti.state)] += 1
        if str(ti.state) != "success":
            failed.append(ti.task_id if ti.map_index < 0 else f"{ti.task_id}[{ti.map_index}]")
    outputs: dict[str, list] = defaultdict(list)
    with create_session() as session:
        for x in session.scalars(
            XComModel.get_many(run_id=dag_run.run_id, dag_ids=DAG_ID, key="return_value")
        ):
            outputs[x.task_id].append(XComModel.deserialize_value(x))
    return {
        "run_id": dag_run.run_id,
        "state": str(dag_run.state),
        "seconds": round(seconds, 1),
        "tasks": {
            k: {**v, "seconds": round(v["seconds"], 2), "states": dict(v["states"])}
            for k, v in tasks.items()
        },
        "not_successful": sorted(failed),
        "outputs": dict(outputs),
    }


@contextlib.contextmanager
def embedded_services(config: Settings, rt: Runtime | None = None) -> Iterator[None]:
    """SeaweedFS (via the pipeline session, unless `rt` is already running) and, without a
    relay, the SMTP sink."""
    from infra import mail, pipeline

    with contextlib.ExitStack() as stack:
        if not smtp_config().host:
            sink = stack.enter_context(mail.SmtpSink(config.outbox))
            stack.enter_context(environment(sink.environment()))
        stack.enter_context(pipeline.session(rt))
        yield


def run(
    days: list[dt.date],
    inbox: str | None = None,
    rt: Runtime | None = None,
    progress: Callable[[str], None] | None = None,
) -> list[dict[str, Any]]:
    """Run the daily DAG for each business date in `days` (in order) through Airflow in this
    process; returns one summary per date: state, per-task wall time, task outputs. `rt`: a
    runtime already running in this process (tests), else the embedded one is started.
    `progress` gets a line per date as its run ends (`progress_line`)."""
    from infra.runtime import hold_home

    config = settings()
    hold_home(config)  # before Airflow migrates its SQLite database under the home
    # dag.test() talks to Airflow's in-process execution API through FastAPI's TestClient,
    # whose import warns that Starlette wants httpx2: Airflow's dependency, not ours, and a
    # line in the middle of an operator's progress lines.
    warnings.filterwarnings("ignore", message="Using `httpx` with `starlette.testclient`")
    summaries = []
    with environment(airflow_environment(config)):
        started = time.perf_counter()
        dag = _ready_dag(config)
        log.info("Airflow ready in %.1fs", time.perf_counter() - started)
        with embedded_services(config, rt):
            for day in days:
                started = time.perf_counter()
                dag_run = dag.test(
                    logical_date=logical_date(day),
                    run_conf={"date": day.isoformat(), "inbox": inbox},
                )
                summaries.append(_summary(dag_run, time.perf_counter() - started))
                if progress is not None:
                    progress(progress_line(day, summaries[-1]))
    return summaries


def progress_line(day: dt.date, summary: dict[str, Any]) -> str:
    """One line for a date's run: its stages' wall time in DAG order, the run's, its state."""
    order = {task_id: n for n, task_id in enumerate(TASK_ORDER)}
    stages = "  ".join(
        f"{task_id} {summary['tasks'][task_id]['seconds']:.1f}s"
        for task_id in sorted(summary["tasks"], key=lambda t: (order.get(t, len(order)), t))
        if task_id in STAGES_SHOWN
    )
    state = "" if summary["state"] == "success" else f"  {summary['state'].upper()}"
    return f"{day}  {stages}  = {summary['seconds']:.1f}s{state}"


def run_date(day: dt.date, inbox: str | None = None) -> dict[str, Any]:
    """`hqlake run --date D [--inbox PATH]`."""
    return run([day], inbox)[0]


def backfill(start: dt.date, end: dt.date, inbox: str | None = None) -> list[dict[str, Any]]:
    """`hqlake backfill --start D1 --end D2`: every business date from D1 to D2, oldest first."""
    if end < start:
        raise ValueError(f"backfill end {end} is before its start {start}")
    return run([start + dt.timedelta(days=i) for i in range((end - start).days + 1)], inbox)


TASK_ORDER = (
    "business_date",
    "plan",
    "ingest",
    "late_arrivals",
    "validate",
    "score",
    "build",
    "report",
    "feedback_targets",
    "feedback",
)


# the stages a progress line shows (the others take a fraction of a second)
STAGES_SHOWN = ("ingest", "late_arrivals", "validate", "score", "build", "report", "feedback")


def describe(summary: dict[str, Any]) -> str:
    """A DAG run summary for people: state, wall time per task, what it produced."""
    outputs = summary["outputs"]
    lines = [f"{summary['run_id']}: {summary['state']} in {summary['seconds']:.1f}s"]
    order = {task_id: n for n, task_id in enumerate(TASK_ORDER)}
    for task_id in sorted(summary["tasks"], key=lambda t: (order.get(t, len(order)), t)):
        t = summary["tasks"][task_id]
        states = ", ".join(f"{n} {s}" for s, n in sorted(t["states"].items()))
        lines.append(f"  {task_id:<17} x{t['instances']:<3} {t['seconds']:>7.1f}s  {states}")
    sent = [
        o
        for task in outputs.get("feedback", [])
        for stage in task
        for o in stage["outcomes"]
        if o["status"] == "sent"
    ]
    reports = [r["city"] for r in outputs.get("report", [])]
    late = [d for dates in outputs.get("late_arrivals", []) for d in dates[:-1]]
    lines.append(
        f"  e-mails sent: {len(sent)} ({sum(o['kind'] == 'reminder' for o in sent)} reminders)"
    )
    if late:
        lines.append(f"  late files re-processed business dates: {', '.join(late)}")
    lines += [f"  report: {path}" for path in reports]
    if summary["not_successful"]:
        lines.append(f"  not successful: {', '.join(summary['not_successful'])}")
    return "\n".join(lines)
