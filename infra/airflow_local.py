"""`make airflow` / `make airflow-stop`: the daily DAG under a real Airflow on this machine.

Three Airflow processes on loopback, as in production but with LocalExecutor and SQLite:
`airflow api-server` (UI, REST and execution API on 127.0.0.1), `airflow dag-processor`
(parses `dags/`) and `airflow scheduler --skip-serve-logs` (the log server would bind every
address; the api-server reads the task logs from the local folder instead). Embedded, an
SMTP sink writes the e-mails to `$HQLAKE_HOME/outbox`, and one SeaweedFS serves every task
(`infra.seaweed.share`: the runtime of a process on the home uses it instead of starting its
own; chDB stays one process at a time, through the one-slot pool and the home's lock).

Airflow's home is `$HQLAKE_HOME/airflow`: `airflow.cfg` (written here, owner-only: executor,
execution-API URL, JWT secret and API secret key generated once into the home's secrets,
SimpleAuthManager's `admin` user, local logs), the SQLite metadata database (migrated here),
the pool `HQLAKE_WAREHOUSE_POOL` (one slot embedded; `--slots N` only with a ClickHouse
server and MinIO), `stack.json` (the PIDs and ports) and one log per process under `logs/`.
So `AIRFLOW_HOME=$HQLAKE_HOME/airflow airflow ...` is the operator's CLI on this Airflow; the
commands infra/README.md shows are built by `operator_commands` (the real-scheduler test
runs them and checks the README shows them).

    python -m infra.airflow_local start [--port 8081] [--slots 1]
    python -m infra.airflow_local stop

The tasks inherit this process's environment (HQLAKE_HOME, HQLAKE_INBOX,
HQLAKE_ORG_REGISTRY, HQLAKE_START_DATE, ...): each task process opens the embedded runtime
itself (chDB; SeaweedFS is the stack's), one at a time through the pool.
"""

from __future__ import annotations

import argparse
import configparser
import contextlib
import json
import os
import shlex
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from contracts.errors import OperatorError
from infra.airflow_run import DAG_ID, DAGS_FOLDER, airflow_environment
from infra.home import home_secret, private_dir, write_private
from infra.localhost import alive, free_port, port_taken
from infra.schedule import logical_date
from infra.settings import Settings, settings, smtp_config, task_policy

COMPONENTS = ("api-server", "dag-processor", "scheduler")
READY_SECONDS = 180.0
STOP_SECONDS = 30.0
USER = "admin"


class AirflowLocalError(OperatorError):
    """The local Airflow cannot start or stop as asked: the message says why and what to do."""


@dataclass(frozen=True)
class Stack:
    """A local Airflow: its home, the api-server's port and the SMTP sink's (None: a relay)."""

    home: Path
    api_port: int
    smtp_port: int | None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    @property
    def record(self) -> Path:
        return self.home / "stack.json"

    @property
    def passwords(self) -> Path:
        return self.home / "simple_auth_manager_passwords.json.generated"


def pool_slots(config: Settings, slots: int) -> int:
    """The warehouse pool's slots: one on the embedded runtime (chDB and SeaweedFS open
    their files in one process), any number with a ClickHouse server and MinIO."""
    if slots < 1:
        raise AirflowLocalError(f"--slots {slots}: the pool needs at least one slot")
    if slots > 1 and (config.embedded_warehouse or config.embedded_storage):
        raise AirflowLocalError(
            f"--slots {slots}: the embedded runtime (chDB, SeaweedFS under HQLAKE_HOME) takes"
            " one task at a time; use one slot, or set HQLAKE_CLICKHOUSE_URL and"
            " HQLAKE_S3_ENDPOINT (the production profile) for more"
        )
    return slots


def stack_environment(config: Settings, stack: Stack, slots: int = 1) -> dict[str, str]:
    """Airflow's configuration for the local stack (also written to its airflow.cfg, so that
    the operator's `airflow` CLI needs only AIRFLOW_HOME)."""
    env = airflow_environment(config)
    env.update(
        AIRFLOW__CORE__EXECUTION_API_SERVER_URL=f"{stack.url}/execution/",
        AIRFLOW__CORE__PARALLELISM=str(max(2, slots)),
        AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION="True",
        AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS=f"{USER}:admin",
        AIRFLOW__API__HOST="127.0.0.1",
        AIRFLOW__API__PORT=str(stack.api_port),
        AIRFLOW__API__BASE_URL=stack.url,
        AIRFLOW__API__SECRET_KEY=home_secret(config.home, "airflow-api-secret-key"),
        AIRFLOW__API_AUTH__JWT_SECRET=home_secret(config.home, "airflow-jwt-secret"),
        AIRFLOW__LOGGING__LOGGING_LEVEL="INFO",
        AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK="False",
        AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL="30",
    )
    return env


def _write_config(stack: Stack, env: dict[str, str]) -> None:
    cfg = configparser.RawConfigParser()
    for name, value in sorted(env.items()):
        if name.startswith("AIRFLOW__"):
            section, key = name.removeprefix("AIRFLOW__").lower().split("__", 1)
            if not cfg.has_section(section):
                cfg.add_section(section)
            cfg.set(section, key, value)
    lines = [f"# written by `make airflow` ({__name__}); secrets: {stack.home.parent}/secrets\n"]
    for section in cfg.sections():
        lines.append(f"[{section}]\n")
        lines += [f"{key} = {value}\n" for key, value in cfg.items(section)]
    write_private(stack.home / "airflow.cfg", "".join(lines).encode())


def _running(stack_home: Path) -> dict | None:
    record = stack_home / "stack.json"
    if not record.is_file():
        return None
    found = json.loads(record.read_text())
    return found if any(alive(pid) for pid in found["pids"].values()) else None


def _prepare(config: Settings, env: dict[str, str], slots: int) -> None:
    """Migrate the metadata database and set the pool, in this process (one interpreter
    start instead of two `airflow` commands)."""
    os.environ.update(env, AIRFLOW__LOGGING__LOGGING_LEVEL="WARNING")
    from infra.airflow_run import _prepare_airflow

    _prepare_airflow(config, slots=slots)


def _spawn(name: str, argv: list[str], env: dict[str, str], logs: Path) -> int:
    log_fd = os.open(logs / f"{name}.log", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    with os.fdopen(log_fd, "ab") as log_file:
        process = subprocess.Popen(
            argv,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            cwd=DAGS_FOLDER.parent,
            start_new_session=True,  # its own process group: stop ends its children too
        )
    return process.pid


def _health(stack: Stack) -> dict:
    try:
        # the stack's own loopback address, never a URL from outside
        health = f"{stack.url}/api/v2/monitor/health"
        with urllib.request.urlopen(health, timeout=5) as r:  # noqa: S310
            return json.loads(r.read())
    except (urllib.error.URLError, OSError, ValueError):
        return {}


def _dag_parsed() -> bool:
    from airflow.models.dag import DagModel
    from airflow.utils.session import create_session

    with create_session() as session:
        return session.get(DagModel, DAG_ID) is not None


def _wait_storage(config: Settings, stack: Stack, pid: int) -> int:
    """The weed process of the home's shared SeaweedFS, once it answers."""
    from infra.seaweed import shared_server

    deadline = time.monotonic() + READY_SECONDS
    while time.monotonic() < deadline:
        if (found := shared_server(config.seaweed_dir)) and found["owner"] == pid:
            return found["pid"]
        if not alive(pid):
            raise AirflowLocalError(
                f"SeaweedFS exited at start; see {stack.home / 'logs'}/storage.log and"
                f" {config.seaweed_dir}/weed.log (another hqlake process using"
                f" HQLAKE_HOME={config.home}?)"
            )
        time.sleep(0.2)
    raise AirflowLocalError(f"SeaweedFS was not ready in {READY_SECONDS:.0f}s")


def _wait_ready(stack: Stack, pids: dict[str, int]) -> None:
    deadline = time.monotonic() + READY_SECONDS
    while time.monotonic() < deadline:
        if dead := [name for name, pid in pids.items() if not alive(pid)]:
            raise AirflowLocalError(
                f"{', '.join(dead)} exited at start; see {stack.home / 'logs'}/<name>.log"
            )
        health = _health(stack)
        healthy = all(
            (health.get(part) or {}).get("status") == "healthy"
            for part in ("metadatabase", "scheduler", "dag_processor")
        )
        if healthy and stack.passwords.is_file() and _dag_parsed():
            return
        time.sleep(1.0)
    raise AirflowLocalError(
        f"Airflow was not ready in {READY_SECONDS:.0f}s; see {stack.home / 'logs'}/<name>.log"
    )


def start(port: int = 8081, slots: int = 1, config: Settings | None = None) -> Stack:
    """Start the local Airflow (and the SMTP sink without a relay); returns once the
    api-server, scheduler and dag-processor are healthy and the DAG is parsed."""
    config = config or settings()
    slots = pool_slots(config, slots)
    home = private_dir(config.airflow_home)
    if found := _running(home):
        raise AirflowLocalError(
            f"the local Airflow is already running (PIDs {sorted(found['pids'].values())},"
            f" {found['url']}); stop it with make airflow-stop"
        )
    if port_taken(port):
        raise AirflowLocalError(f"port {port} on 127.0.0.1 is taken; use AIRFLOW_PORT=<free port>")
    relay = smtp_config().host
    stack = Stack(home, port, None if relay else free_port())
    env = stack_environment(config, stack, slots)
    _write_config(stack, env)
    _prepare(config, env, slots)
    logs = private_dir(home / "logs")
    child_env = {**os.environ, **env, "HQLAKE_HOME": str(config.home)}
    if stack.smtp_port is not None:
        child_env.update(HQLAKE_SMTP_HOST="127.0.0.1", HQLAKE_SMTP_PORT=str(stack.smtp_port))
    airflow = str(Path(sys.executable).parent / "airflow")
    argv = {
        "api-server": [airflow, "api-server", "--host", "127.0.0.1", "--port", str(port)],
        "dag-processor": [airflow, "dag-processor"],
        "scheduler": [airflow, "scheduler", "--skip-serve-logs"],
    }
    pids = {}
    if config.embedded_storage:
        # one SeaweedFS for every task (infra.seaweed.share), not one started and stopped
        # by each task process (~3 s each); it starts beside the Airflow components (a task
        # runs only once all are ready), and its weed process is recorded too
        storage = [sys.executable, "-m", "infra.airflow_local", "storage"]
        pids["storage"] = _spawn("storage", storage, child_env, logs)
    if stack.smtp_port is not None:
        sink = [
            sys.executable,
            "-m",
            "infra.airflow_local",
            "smtp-sink",
            "--port",
            str(stack.smtp_port),
        ]
        pids["smtp-sink"] = _spawn("smtp-sink", sink, child_env, logs)
    pids.update({name: _spawn(name, argv[name], child_env, logs) for name in COMPONENTS})

    def record() -> None:
        state = {"pids": pids, "url": stack.url, "smtp_port": stack.smtp_port}
        write_private(stack.record, json.dumps(state).encode())

    record()
    try:
        if "storage" in pids:
            pids["seaweedfs"] = _wait_storage(config, stack, pids["storage"])
            record()
        _wait_ready(stack, pids)
    except BaseException:
        stop(config)
        raise
    return stack


def stop(config: Settings | None = None) -> list[str]:
    """Stop every process `start` recorded (each its own process group: its task processes
    go with it; the shared SeaweedFS with its own); returns the names stopped."""
    config = config or settings()
    record = config.airflow_home / "stack.json"
    if not record.is_file():
        return []
    pids: dict[str, int] = json.loads(record.read_text())["pids"]
    stopped = [name for name, pid in pids.items() if _signal(pid, signal.SIGTERM)]
    deadline = time.monotonic() + STOP_SECONDS
    while time.monotonic() < deadline and any(alive(pid) for pid in pids.values()):
        time.sleep(0.2)
    for pid in pids.values():
        _signal(pid, signal.SIGKILL)
    record.unlink(missing_ok=True)  # a stop racing this one removed it
    return stopped


def _signal(pid: int, sig: int) -> bool:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pid, sig)
        return True
    return False


def login(stack: Stack) -> tuple[str, str]:
    """The UI's user and the password SimpleAuthManager generated for it."""
    return USER, json.loads(stack.passwords.read_text())[USER]


# ---- the operator's commands (infra/README.md shows them with README_DATE) ----------------

README_DATE = "2026-11-16"


def operator_commands(day: str = README_DATE, last: str | None = None) -> dict[str, list[str]]:
    """The `airflow` commands an operator runs against this Airflow, for business date `day`
    (a backfill from `day` to `last`); infra/README.md shows them for README_DATE."""
    import datetime as dt

    first = logical_date(dt.date.fromisoformat(day)).isoformat()
    until = logical_date(dt.date.fromisoformat(last or day)).isoformat()
    backfill = ["airflow", "backfill", "create", "--dag-id", DAG_ID]
    # one run at a time, oldest first; dates that ran already (a scheduled run skipped before
    # HQLAKE_START_DATE, a failed one) are processed again: every stage is idempotent
    bounds = ["--from-date", first, "--to-date", until, "--max-active-runs", "1"]
    bounds += ["--reprocess-behavior", "completed"]
    return {
        "unpause": ["airflow", "dags", "unpause", DAG_ID],
        "trigger_date": ["airflow", "dags", "trigger", DAG_ID, "--conf", json.dumps({"date": day})],
        "trigger_logical": ["airflow", "dags", "trigger", DAG_ID, "--logical-date", first],
        "clear": ["airflow", "tasks", "clear", DAG_ID, "-s", first, "-e", first, "--yes"],
        "backfill_dry_run": [*backfill, *bounds, "--dry-run"],
        "backfill": [*backfill, *bounds],
    }


def shown(argv: list[str]) -> str:
    """A command as the README shows it."""
    return shlex.join(argv)


def _storage() -> None:
    """The home's SeaweedFS, shared by every process on the home until SIGTERM."""
    from infra.home import s3_keys
    from infra.seaweed import SeaweedServer, share, unshare

    config = settings()
    stopping = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(True))
    buckets = (config.lake_bucket, config.inbox_bucket)
    with SeaweedServer(config.seaweed_dir, buckets, *s3_keys(config)) as server:
        share(server)
        try:
            while not stopping and server.process and server.process.poll() is None:
                time.sleep(0.5)
        finally:
            unshare(config.seaweed_dir)


def _smtp_sink(port: int) -> None:
    from infra import mail

    stopping = []
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(True))
    with mail.SmtpSink(settings().outbox, port=port):
        while not stopping:
            time.sleep(0.5)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    begin = sub.add_parser("start")
    begin.add_argument("--port", type=int, default=8081)  # make portal has 8080
    begin.add_argument("--slots", type=int, default=1)
    sub.add_parser("stop")
    sub.add_parser("storage")
    sink = sub.add_parser("smtp-sink")
    sink.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    try:
        if args.command == "smtp-sink":
            _smtp_sink(args.port)
        elif args.command == "storage":
            _storage()
        elif args.command == "stop":
            stopped = stop()
            print(
                f"stopped: {', '.join(stopped)}" if stopped else "the local Airflow is not running"
            )
        else:
            started = time.perf_counter()
            stack = start(args.port, args.slots)
            user, password = login(stack)
            print(f"Airflow is up in {time.perf_counter() - started:.0f}s: {stack.url}")
            print(f"  login {user} / {password}   (from {stack.passwords})")
            print(f"  CLI:  export AIRFLOW_HOME={stack.home}; then e.g.")
            print(f"        {shown(operator_commands()['unpause'])}")
            print(f"        {shown(operator_commands()['trigger_date'])}")
            print(f"  pool {task_policy().pool}: {args.slots} slot(s); logs: {stack.home}/logs")
            print(f"  e-mails: {settings().outbox}" if stack.smtp_port else "")
            print("  stop with: make airflow-stop")
    except OperatorError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
