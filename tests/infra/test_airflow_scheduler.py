"""The daily DAG under a real Airflow scheduler: `make airflow`'s stack on loopback.

One module-scoped scenario on a tiny city (one day D, the few organisations of the smallest
sample city), the components started once by `python -m infra.airflow_local start` (what
`make airflow` runs) and stopped by `... stop`, every operator step through the `airflow`
CLI commands infra/README.md shows (`infra.airflow_local.operator_commands`). The commands
are given at once where an operator could, and the scheduler orders the runs:

1. unpause: the scheduler makes the run of the latest interval, a date before
   HQLAKE_START_DATE, which skips at business_date (no rows, no e-mail);
2. a trigger with a conf date that is not a date: business_date fails, the tasks after it
   fail upstream or skip with a message, never a TypeError;
3. a trigger with only a conf date (D, no logical date): business date D, raw rows, scores,
   one e-mail per organisation;
4. a backfill of the date before D (its dry run first) started while D's run goes: its run
   waits at business_date and processes its date once D's run has ended (nothing uploaded:
   reminders);
5. a trigger with only a logical date (D+1 09:00 +08:00) given meanwhile: it waits for D's run
   (max_active_runs), then for the backfill's run of an earlier date, then processes D+1;
6. `airflow tasks clear` of D+1 (the README's command) re-runs it: success, the same rows, no
   e-mail sent twice.

The metadata database (SQLite) is read directly to follow the runs; the warehouse is read
by a separate process once no task holds the embedded home. The fixture prints the wall
time of each step and the CPU time of the stack (its processes and their tasks).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from infra.airflow_local import README_DATE, operator_commands, shown
from infra.schedule import latest_complete_date, logical_date, run_business_date

# the scenario (the first test's set-up) takes minutes more than the default timeout on a
# loaded machine
pytestmark = [pytest.mark.integration, pytest.mark.scheduler, pytest.mark.timeout(1800)]

ROOT = Path(__file__).resolve().parents[2]
AIRFLOW = str(Path(sys.executable).parent / "airflow")
RUN_SECONDS = 900  # the longest wait for one run (a loaded machine)


def _utc(day: dt.date) -> str:
    """The logical date of `day` as the metadata database stores it."""
    return logical_date(day).astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S")


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# Runs `airflow` commands (JSON argv lines on stdin) as the `airflow` executable does
# (airflow.__main__.main: Airflow's CLI parser, then the command's function), in one
# interpreter: each `airflow` process costs 5-7 s of CPU to start, the command itself little.
# Each answer is one line after the marker (a log line on stdout is not one).
_MARK = "@@hqlake-cli@@ "
_CLI_RUNNER = f"""
import contextlib, io, json, sys, traceback
from airflow.cli import cli_parser
parser = cli_parser.get_parser()
print({_MARK!r} + "{{}}", flush=True)
for line in sys.stdin:
    out, err, code = io.StringIO(), io.StringIO(), 0
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            args = parser.parse_args(json.loads(line)[1:])
            args.func(args)
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else int(exc.code is not None)
        except BaseException:
            traceback.print_exc()
            code = 1
    answer = {{"code": code, "stdout": out.getvalue(), "stderr": err.getvalue()}}
    print({_MARK!r} + json.dumps(answer), flush=True)
"""


class Stack:
    def __init__(self, home: Path, env: dict[str, str]) -> None:
        self.home, self.env = home, env
        self.db = home / "airflow" / "airflow.db"
        self.known: set[int] = set()
        self.runner: subprocess.Popen | None = None

    def airflow(self, argv: list[str], executable: bool = False) -> str:
        """Run an `airflow` command: with `executable` the `airflow` program itself, else
        the same argv in the CLI runner (started by the first such call)."""
        assert argv[0] == "airflow"
        if executable:
            done = subprocess.run(
                [AIRFLOW, *argv[1:]], env=self.env, capture_output=True, text=True, timeout=120
            )
            code, stdout, stderr = done.returncode, done.stdout, done.stderr
        else:
            self.start_runner()
            assert self.runner and self.runner.stdin
            self.runner.stdin.write(json.dumps(argv) + "\n")
            self.runner.stdin.flush()
            answer = self._answer()
            code, stdout, stderr = answer["code"], answer["stdout"], answer["stderr"]
        if code != 0:
            pytest.fail(f"{shown(argv)} exited {code}:\n{stderr[-3000:]}")
        return stdout

    def start_runner(self) -> None:
        if self.runner is None:
            self.runner = subprocess.Popen(
                [sys.executable, "-c", _CLI_RUNNER],
                env=self.env,
                cwd=ROOT,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=(self.home / "cli-runner.log").open("ab"),
                text=True,
            )
            self._answer()  # imported: ready

    def _answer(self) -> dict:
        assert self.runner and self.runner.stdout
        for line in self.runner.stdout:
            if line.startswith(_MARK):
                return json.loads(line[len(_MARK) :])
        raise AssertionError(f"the CLI runner exited {self.runner.wait()}; see cli-runner.log")

    def stop_runner(self) -> None:
        if self.runner is not None:
            assert self.runner.stdin
            self.runner.stdin.close()
            try:
                self.runner.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.runner.kill()
                self.runner.wait()

    def rows(self, sql: str, *args) -> list[tuple]:
        with sqlite3.connect(f"file:{self.db}?mode=ro", uri=True, timeout=30) as db:
            return db.execute(sql, args).fetchall()

    def new_run(self, where: str, *args) -> tuple[int, str]:
        """The one run matching `where` that no earlier call returned: (id, run_id)."""
        found = [
            r
            for r in self.rows(f"SELECT id, run_id FROM dag_run WHERE {where}", *args)
            if r[0] not in self.known
        ]
        assert len(found) == 1, found
        self.known.add(found[0][0])
        return found[0]

    def state(self, run_pk: int) -> str:
        return self.rows("SELECT state FROM dag_run WHERE id = ?", run_pk)[0][0]

    def outcome(self, run_pk: int, run_id: str | None = None, after: str = "") -> dict:
        """Once the run has ended (after `after`): its state, tasks, business date, feedback
        outcomes, and with `run_id` its task logs."""
        found = {"state": self.wait(run_pk, after), "tasks": self.tasks(run_pk)}
        found["day"] = self.xcom(run_pk, "business_date", "day")
        found["feedback"] = self.xcom(run_pk, "feedback")
        if run_id:
            found["logs"] = self.logs(run_id)
        return found

    def after(self, first_pk: int, second_id: str) -> bool:
        """Whether run `second_id`'s first stage (plan) started after run `first_pk` ended."""
        return bool(
            self.rows(
                "SELECT (SELECT end_date FROM dag_run WHERE id = ?) <= min(ti.start_date)"
                " FROM task_instance ti WHERE ti.run_id = ? AND ti.task_id = 'plan'",
                first_pk,
                second_id,
            )[0][0]
        )

    def wait(self, run_pk: int, after: str = "") -> str:
        """The final state of the DAG run, once it has one (ended after `after`)."""
        deadline = time.monotonic() + RUN_SECONDS
        while time.monotonic() < deadline:
            ((state, ended),) = self.rows(
                "SELECT state, coalesce(end_date, '') FROM dag_run WHERE id = ?", run_pk
            )
            if state in ("success", "failed") and ended > after:
                return state
            time.sleep(2)
        raise AssertionError(f"run {run_pk} did not finish in {RUN_SECONDS}s: {self.tasks(run_pk)}")

    def wait_task(self, run_pk: int, task_id: str, states: set[str]) -> None:
        deadline = time.monotonic() + RUN_SECONDS
        while self.tasks(run_pk).get(task_id) not in states:
            assert time.monotonic() < deadline, (task_id, states, self.tasks(run_pk))
            time.sleep(1)

    def tasks(self, run_pk: int) -> dict[str, str]:
        return {
            task if index < 0 else f"{task}[{index}]": state
            for task, index, state in self.rows(
                "SELECT ti.task_id, ti.map_index, ti.state FROM task_instance ti JOIN dag_run r"
                " ON ti.dag_id = r.dag_id AND ti.run_id = r.run_id WHERE r.id = ?",
                run_pk,
            )
        }

    def xcom(self, run_pk: int, task_id: str, key: str = "return_value") -> list:
        return [
            json.loads(value)
            for (value,) in self.rows(
                "SELECT value FROM xcom WHERE dag_run_id = ? AND task_id = ? AND key = ?"
                " ORDER BY map_index",
                run_pk,
                task_id,
                key,
            )
        ]

    def logs(self, run_id: str) -> dict[str, str]:
        folder = self.home / "airflow" / "logs" / "dag_id=hqlake_daily" / f"run_id={run_id}"
        return {
            str(p.relative_to(folder)): p.read_text(errors="replace") for p in folder.rglob("*.log")
        }

    def warehouse(self, day: dt.date) -> dict:
        """Rows loaded and organisations scored for `day`, read by another process (chDB
        opens one data path per process; this session's is the test home)."""
        probe = (
            "import json, sys, datetime as dt\n"
            "from infra.runtime import warehouse\n"
            "ch = warehouse(); d = dt.date.fromisoformat(sys.argv[1])\n"
            "one = lambda sql: ch.query(sql, parameters={'d': d}).result_rows[0][0]\n"
            "print(json.dumps({'rows': one('SELECT sum(rows_loaded) FROM dq.batch FINAL"
            " WHERE business_date = {d:Date}'), 'scored': one('SELECT count() FROM"
            " dq.current_score_org_day WHERE business_date = {d:Date}')}))\n"
        )
        done = subprocess.run(
            [sys.executable, "-c", probe, day.isoformat()],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=120,
            cwd=ROOT,
        )
        assert done.returncode == 0, done.stderr[-3000:]
        return json.loads(done.stdout.strip().splitlines()[-1])

    def mails(self) -> list[Path]:
        return sorted((self.home / "outbox").glob("*.eml"))


def _cpu_seconds(pgids: set[int]) -> float:
    """CPU time (user + system, with their waited-for children: the task processes) of the
    processes in the process groups `pgids`, as far as they have run."""
    ticks = 0
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                fields = (proc / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[2]) in pgids:  # pgrp
                ticks += sum(int(f) for f in fields[11:15])  # utime stime cutime cstime
    return ticks / os.sysconf("SC_CLK_TCK")


@pytest.fixture(scope="module")
def scheduler_run(tmp_path_factory):
    import resource

    from contracts.registry import load_registry
    from samplecity import generate

    root = tmp_path_factory.mktemp("scheduler")
    now = dt.datetime.now(dt.UTC)
    latest = latest_complete_date(now)  # the interval unpausing runs
    day = latest - dt.timedelta(days=2)  # the city's day, the conf trigger's
    older = day - dt.timedelta(days=1)  # the backfill's, started while D runs
    later = day + dt.timedelta(days=1)  # the logical-date trigger's, cleared at the end
    inbox = root / "inbox"
    generate(inbox, day, 1, hospitals=1, counties=1, scale=0.003, seed=11)
    registry = load_registry(inbox / "_registry.csv")
    home = root / "home"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "HQLAKE_"))}
    env.update(
        HQLAKE_HOME=str(home),
        HQLAKE_INBOX=str(inbox),
        HQLAKE_ORG_REGISTRY=str(inbox / "_registry.csv"),
        # two days on: a test that spans 09:00 +08:00 gets a second scheduled run, skipped too
        HQLAKE_START_DATE=(latest + dt.timedelta(days=2)).isoformat(),
        AIRFLOW_HOME=str(home / "airflow"),
        # Test only: the DAG file does not change during the test, so the dag-processor need
        # not parse it again every 30 s (Airflow's default, right for an operator editing
        # DAGs) beside the tasks on 2 cores
        AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL="600",
    )
    stack = Stack(home, env)
    started = time.perf_counter()
    timings: dict[str, float] = {}

    def mark(step: str) -> None:
        timings[step] = round(time.perf_counter() - started, 1)

    up = subprocess.run(
        [sys.executable, "-m", "infra.airflow_local", "start", "--port", str(_free_port())],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )
    mark("start")
    pgids: set[int] = set()
    try:
        assert up.returncode == 0, up.stderr[-3000:]
        pgids = set(json.loads((home / "airflow" / "stack.json").read_text())["pids"].values())
        out = {"start_output": up.stdout, "registry": registry}
        out.update(day=day, older=older, later=later, latest=latest)
        out["pools"] = dict(stack.rows("SELECT pool, slots FROM slot_pool"))
        commands = operator_commands(day.isoformat())

        # 1. unpause: the scheduled run of `latest`, before the start date
        stack.airflow(commands["unpause"], executable=True)  # the program, once
        stack.start_runner()  # the other commands' interpreter, while the scheduler goes
        deadline = time.monotonic() + 120
        while not stack.rows("SELECT id FROM dag_run WHERE run_type = 'scheduled'"):
            assert time.monotonic() < deadline, "the scheduler made no run on unpausing"
            time.sleep(1)
        scheduled, scheduled_id = stack.new_run("run_type = 'scheduled'")

        # 2. a conf date that is not a date; 3. only a conf date: both wait for the scheduled
        # run (max_active_runs), the scheduler runs them in turn
        bad_conf = json.dumps({"date": "2026-13-01"})
        stack.airflow(["airflow", "dags", "trigger", "hqlake_daily", "--conf", bad_conf])
        bad, bad_id = stack.new_run("run_type = 'manual' AND logical_date IS NULL")
        stack.airflow(commands["trigger_date"])
        run, _ = stack.new_run("run_type = 'manual' AND logical_date IS NULL")
        mark("triggered")

        # 4. a backfill of the date before D once D's run is past business_date: its run
        # waits (backfill runs do not count towards max_active_runs); the dry run first
        # (a date without a run: re-processing one clears it, which SQLite may refuse with
        # "database is locked" beside a busy scheduler)
        stack.wait_task(run, "business_date", {"success"})
        mark("conf run past business_date")
        older_commands = operator_commands(older.isoformat())
        out["dry_run"] = stack.airflow(older_commands["backfill_dry_run"])
        stack.airflow(older_commands["backfill"])
        filled, filled_id = stack.new_run("logical_date LIKE ?", f"{_utc(older)}%")
        # 5. only a logical date, meanwhile: waits for D's run, then for the backfill's
        stack.airflow(operator_commands(later.isoformat())["trigger_logical"])
        logical, logical_id = stack.new_run("logical_date LIKE ?", f"{_utc(later)}%")
        stack.wait_task(filled, "business_date", {"up_for_reschedule"})
        out["filled_waited_while"] = stack.state(run)

        out["scheduled"] = stack.outcome(scheduled, scheduled_id)
        out["scheduled"]["mails"] = len(stack.mails())
        out["bad"] = stack.outcome(bad, bad_id)
        out["run"] = stack.outcome(run)
        out["run"]["mails"] = stack.mails()
        mark("conf run")
        stack.wait_task(logical, "business_date", {"up_for_reschedule"})
        out["logical_waited_while"] = stack.state(filled)
        out["filled"] = stack.outcome(filled)
        out["filled"]["mails"] = stack.mails()
        mark("backfill run")
        out["logical"] = stack.outcome(logical)
        out["logical"]["mails"] = stack.mails()
        out["logical"]["warehouse"] = stack.warehouse(day)
        mark("logical run")
        # each waiting run's first stage started after the run it waited for had ended
        out["order"] = [stack.after(run, filled_id), stack.after(filled, logical_id)]

        # 6. clear the logical-date run (the README's command) and wait for the re-run
        ((ended,),) = stack.rows("SELECT end_date FROM dag_run WHERE id = ?", logical)
        stack.airflow(operator_commands(later.isoformat())["clear"])
        out["rerun"] = stack.outcome(logical, after=ended)
        out["rerun"]["warehouse"] = stack.warehouse(day)
        out["rerun"]["mails"] = stack.mails()
        out["listening"] = _listening(pgids)
        out["weed_starts"] = (
            (home / "seaweedfs" / "weed.log").read_text().count("Starting SeaweedFS Mini")
        )
        mark("cleared re-run")
        out["timings"] = timings
        ours = resource.getrusage(resource.RUSAGE_CHILDREN)  # the CLI commands, the probes
        stack_pids = json.loads((home / "airflow" / "stack.json").read_text())["pids"]
        cpu = {"stack": round(_cpu_seconds(pgids), 1)}
        cpu |= {name: round(_cpu_seconds({pid}), 1) for name, pid in stack_pids.items()}
        cpu["commands"] = round(ours.ru_utime + ours.ru_stime, 1)
        print(f"\nreal-scheduler scheduler_run, wall s since the start: {timings}")
        print(f"CPU s (user+sys): {cpu}; load average {os.getloadavg()}")
        yield out
    finally:
        subprocess.run(
            [sys.executable, "-m", "infra.airflow_local", "stop"], env=env, timeout=120, cwd=ROOT
        )
        stack.stop_runner()


def test_start_prints_the_ui_and_login(scheduler_run):
    text = scheduler_run["start_output"]
    assert "http://127.0.0.1:" in text and "login admin / " in text
    assert "make airflow-stop" in text


def test_make_airflow_created_the_pool_with_one_slot(scheduler_run):
    assert scheduler_run["pools"]["hqlake_warehouse"] == 1


def test_unpausing_skips_a_date_before_the_start_date(scheduler_run):
    scheduled = scheduler_run["scheduled"]
    assert scheduled["state"] == "success"
    assert set(scheduled["tasks"].values()) == {"skipped"}, scheduled["tasks"]
    assert scheduled["mails"] == 0
    # the scheduled run's business date is the latest complete interval's
    logs = "\n".join(scheduled["logs"].values())
    assert f"scheduled run of {scheduler_run['latest']} skipped" in logs


def test_a_failed_business_date_stops_the_run_with_a_message(scheduler_run):
    bad = scheduler_run["bad"]
    assert bad["state"] == "failed"
    assert bad["tasks"]["business_date"] == "failed"
    assert bad["tasks"]["late_arrivals"] == "skipped"
    assert set(bad["tasks"].values()) <= {"failed", "upstream_failed", "skipped"}
    logs = "\n".join(bad["logs"].values())
    assert "is not a date" in logs and "no business date" in logs
    assert "TypeError" not in logs


def _sent(run: dict) -> list[dict]:
    return [o for task in run["feedback"] for stage in task for o in stage["outcomes"]]


def test_a_conf_date_alone_processes_its_business_date(scheduler_run):
    run, day, registry = scheduler_run["run"], scheduler_run["day"], scheduler_run["registry"]
    assert run["state"] == "success", run["tasks"]
    assert set(run["tasks"].values()) == {"success"}
    assert run["day"] == [day.isoformat()]
    assert scheduler_run["logical"]["warehouse"]["rows"] > 0
    assert scheduler_run["logical"]["warehouse"]["scored"] == len(registry.active(day))
    assert len(run["mails"]) == len(registry.active(day))
    assert {o["status"] for o in _sent(run)} == {"sent"}


def test_the_backfill_dry_run_lists_the_business_date(scheduler_run):
    older = scheduler_run["older"]
    runs = scheduler_run["dry_run"].partition("Runs to be attempted:")[2]
    stamp = logical_date(older).astimezone(dt.UTC)
    # Airflow's table of logical dates, in the zone the bounds were given in
    listed = re.findall(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d[+-]\d\d:\d\d", runs)
    assert [dt.datetime.fromisoformat(d) for d in listed] == [stamp], runs
    assert run_business_date(None, stamp) == older


def test_a_backfill_of_an_older_date_waits_for_the_run_going_on(scheduler_run):
    """D+1's late-arrivals pass re-ingests D: the backfill of D-1 started while D's run goes
    (backfill runs do not count towards max_active_runs) starts processing after it."""
    filled, older, registry = (
        scheduler_run["filled"],
        scheduler_run["older"],
        scheduler_run["registry"],
    )
    assert scheduler_run["filled_waited_while"] == "running"  # D was running while it waited
    assert scheduler_run["order"][0]  # its first stage started after D's run ended
    assert filled["state"] == "success", filled["tasks"]
    assert filled["day"] == [older.isoformat()]
    # nothing uploaded for it: one reminder per organisation, D's e-mails untouched
    reminders = len(filled["mails"]) - len(scheduler_run["run"]["mails"])
    assert reminders == len(registry.active(older))


def test_a_logical_date_alone_processes_its_date_after_the_earlier_ones(scheduler_run):
    logical, later, registry = (
        scheduler_run["logical"],
        scheduler_run["later"],
        scheduler_run["registry"],
    )
    assert scheduler_run["logical_waited_while"] == "running"  # the backfill of D-1 was
    assert scheduler_run["order"][1]  # it started after the backfill's run of an earlier date
    assert logical["state"] == "success", logical["tasks"]
    tasks = dict(logical["tasks"])
    assert tasks.pop("ingest") == "skipped"  # nothing uploaded: it maps over no organisation
    assert set(tasks.values()) == {"success"}
    assert logical["day"] == [later.isoformat()]
    reminders = len(logical["mails"]) - len(scheduler_run["filled"]["mails"])
    assert reminders == len(registry.active(later))
    assert {o["status"] for o in _sent(logical)} == {"sent"}


def test_tasks_clear_reruns_the_date_and_sends_nothing_twice(scheduler_run):
    logical, rerun = scheduler_run["logical"], scheduler_run["rerun"]
    assert rerun["state"] == "success", rerun["tasks"]
    assert rerun["day"] == logical["day"]
    assert rerun["warehouse"] == logical["warehouse"]
    assert rerun["mails"] == logical["mails"]
    outcomes = _sent(rerun)
    assert outcomes and {o["status"] for o in outcomes} == {"unchanged"}


def test_one_seaweedfs_serves_every_task(scheduler_run):
    """`make airflow` starts the home's SeaweedFS once; the tasks' runtimes use it (no task
    starts its own: ~3 s each)."""
    assert scheduler_run["weed_starts"] == 1


def test_every_process_of_the_stack_listens_on_loopback_only(scheduler_run):
    """api-server, scheduler (no log server on 0.0.0.0:8793), dag-processor, their task
    processes, the SMTP sink and the shared SeaweedFS: sockets on 127.0.0.1 only."""
    listening = scheduler_run["listening"]
    assert listening["ports"], "found none of the stack's listening sockets"
    assert listening["elsewhere"] == []


def _listening(pgids: set[int]) -> dict:
    """The TCP sockets the processes of `pgids` listen on: loopback ports, and any other."""
    inodes: dict[str, int] = {}
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if os.getpgid(int(proc.name)) not in pgids:
                continue
            for fd in (proc / "fd").iterdir():
                target = os.readlink(fd)
                if target.startswith("socket:["):
                    inodes[target[8:-1]] = int(proc.name)
        except (OSError, ProcessLookupError):
            continue
    ports, elsewhere = [], []
    for table in ("tcp", "tcp6"):
        for line in Path(f"/proc/net/{table}").read_text().splitlines()[1:]:
            fields = line.split()
            local, state, inode = fields[1], fields[3], fields[9]
            if state != "0A" or inode not in inodes:  # 0A: LISTEN
                continue
            address, port = local.split(":")
            loopback = address in ("0100007F", "00000000000000000000000001000000")
            (ports if loopback else elsewhere).append(int(port, 16))
    return {"ports": sorted(ports), "elsewhere": sorted(elsewhere)}


def test_the_readme_shows_the_commands_the_test_runs():
    readme = (ROOT / "infra" / "README.md").read_text()
    for name, argv in operator_commands(README_DATE).items():
        assert shown(argv) in readme, f"infra/README.md does not show the {name} command"
