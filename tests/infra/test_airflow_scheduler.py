"""The daily DAG under a real Airflow scheduler: `make airflow`'s stack on loopback.

One module-scoped scenario on a tiny city (one day, the few organisations of the smallest
sample city), the components started once by `python -m infra.airflow_local start` (what
`make airflow` runs) and stopped by `... stop`, every operator step through the `airflow`
CLI commands infra/README.md shows (`infra.airflow_local.operator_commands`):

1. unpause: the scheduler makes the run of the latest interval, a date before
   HQLAKE_START_DATE, which skips at business_date (no rows, no e-mail);
2. a trigger with a conf date that is not a date: business_date fails, the tasks after it
   fail upstream or skip with a message, never a TypeError;
3. a trigger with only a logical date (D 09:00 +08:00): business date D, raw rows, scores,
   one e-mail per organisation; the backfill's dry run over the next date lists its logical
   date, run meanwhile (the CLI only reads the metadata database);
4. a backfill of the next date started while D runs:
   its run waits for D's (backfill runs do not count towards max_active_runs), starts after
   it ended and processes its own date (nothing uploaded: reminders);
5. `airflow tasks clear` of that date (the README's command) re-runs it: success, the same
   rows, no e-mail sent twice.

The metadata database (SQLite) is read directly to follow the runs; the warehouse is read
by a separate process once no task holds the embedded home.
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

pytestmark = [pytest.mark.integration, pytest.mark.scheduler]

ROOT = Path(__file__).resolve().parents[2]
AIRFLOW = str(Path(sys.executable).parent / "airflow")
RUN_SECONDS = 900  # a run of the tiny city takes about 3 min on 2 idle cores


def _utc(day: dt.date) -> str:
    """The logical date of `day` as the metadata database stores it."""
    return logical_date(day).astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S")


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Stack:
    def __init__(self, home: Path, env: dict[str, str]) -> None:
        self.home, self.env = home, env
        self.db = home / "airflow" / "airflow.db"

    def airflow(self, argv: list[str]) -> str:
        assert argv[0] == "airflow"
        done = subprocess.run(
            [AIRFLOW, *argv[1:]], env=self.env, capture_output=True, text=True, timeout=120
        )
        if done.returncode != 0:
            pytest.fail(f"{shown(argv)} exited {done.returncode}:\n{done.stderr[-3000:]}")
        return done.stdout

    def rows(self, sql: str, *args) -> list[tuple]:
        with sqlite3.connect(f"file:{self.db}?mode=ro", uri=True, timeout=30) as db:
            return db.execute(sql, args).fetchall()

    def run_of(self, where: str, *args) -> tuple[int, str]:
        found = self.rows(f"SELECT id, run_id FROM dag_run WHERE {where}", *args)
        assert len(found) == 1, found
        return found[0]

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


@pytest.fixture(scope="module")
def scenario(tmp_path_factory):
    from contracts.registry import load_registry
    from samplecity import generate

    root = tmp_path_factory.mktemp("scheduler")
    now = dt.datetime.now(dt.UTC)
    latest = latest_complete_date(now)  # the interval unpausing runs
    day = latest - dt.timedelta(days=2)  # the city's day, a manual run's
    later = day + dt.timedelta(days=1)  # a backfill's, a date without a run yet
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
    )
    stack = Stack(home, env)
    started = time.perf_counter()
    up = subprocess.run(
        [sys.executable, "-m", "infra.airflow_local", "start", "--port", str(_free_port())],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )
    timings = {"start": time.perf_counter() - started}
    try:
        assert up.returncode == 0, up.stderr[-3000:]
        out = {"start_output": up.stdout, "day": day, "later": later, "registry": registry}
        out["pools"] = dict(stack.rows("SELECT pool, slots FROM slot_pool"))
        commands = operator_commands(day.isoformat())

        # 1. unpause: the scheduled run of `latest`, before the start date
        stack.airflow(commands["unpause"])
        deadline = time.monotonic() + 120
        while not stack.rows("SELECT id FROM dag_run WHERE run_type = 'scheduled'"):
            assert time.monotonic() < deadline, "the scheduler made no run on unpausing"
            time.sleep(1)
        ((scheduled,),) = stack.rows(
            "SELECT id FROM dag_run WHERE run_type = 'scheduled' ORDER BY logical_date LIMIT 1"
        )
        out["scheduled"] = {"state": stack.wait(scheduled), "tasks": stack.tasks(scheduled)}
        out["scheduled"]["mails"] = len(stack.mails())
        timings["scheduled"] = time.perf_counter() - started

        # 2. a conf date that is not a date
        bad_conf = json.dumps({"date": "2026-13-01"})
        stack.airflow(["airflow", "dags", "trigger", "hqlake_daily", "--conf", bad_conf])
        bad, bad_id = stack.run_of("run_type = 'manual' AND logical_date IS NULL")
        out["bad"] = {
            "state": stack.wait(bad),
            "tasks": stack.tasks(bad),
            "logs": stack.logs(bad_id),
        }
        timings["bad"] = time.perf_counter() - started

        # 3. only a logical date; the backfill's dry run meanwhile
        stack.airflow(commands["trigger_logical"])
        run, _ = stack.run_of("logical_date LIKE ?", f"{_utc(day)}%")
        # (a dry run lists the dates without a run, or with a finished one to re-process)
        out["dry_run"] = stack.airflow(operator_commands(later.isoformat())["backfill_dry_run"])

        # 4. a backfill of the next date while D runs: its run waits for D's, then processes
        # it (a date without a run: re-processing one clears it, which SQLite may refuse
        # with "database is locked" beside a busy scheduler)
        stack.wait_task(run, "business_date", {"success"})
        stack.airflow(operator_commands(later.isoformat())["backfill"])
        filled, filled_id = stack.run_of("logical_date LIKE ?", f"{_utc(later)}%")
        stack.wait_task(filled, "business_date", {"up_for_reschedule"})
        out["waited_while"] = stack.rows("SELECT state FROM dag_run WHERE id = ?", run)[0][0]

        out["run"] = {"state": stack.wait(run), "tasks": stack.tasks(run)}
        out["run"]["day"] = stack.xcom(run, "business_date", "day")
        out["run"]["feedback"] = stack.xcom(run, "feedback")
        out["run"]["mails"] = stack.mails()
        timings["run"] = time.perf_counter() - started
        out["filled"] = {"state": stack.wait(filled), "tasks": stack.tasks(filled)}
        out["filled"]["day"] = stack.xcom(filled, "business_date", "day")
        out["filled"]["order"] = stack.rows(
            "SELECT (SELECT end_date FROM dag_run WHERE id = ?) <= min(ti.start_date)"
            " FROM task_instance ti WHERE ti.run_id = ? AND ti.task_id = 'plan'",
            run,
            filled_id,
        )[0][0]
        out["filled"]["warehouse"] = stack.warehouse(day)
        out["filled"]["mails"] = stack.mails()
        timings["backfill"] = time.perf_counter() - started

        # 5. clear the backfilled date (the README's command) and wait for the re-run
        ((ended,),) = stack.rows("SELECT end_date FROM dag_run WHERE id = ?", filled)
        stack.airflow(operator_commands(later.isoformat())["clear"])
        out["rerun"] = {"state": stack.wait(filled, after=ended), "tasks": stack.tasks(filled)}
        out["rerun"]["day"] = stack.xcom(filled, "business_date", "day")
        out["rerun"]["feedback"] = stack.xcom(filled, "feedback")
        out["rerun"]["warehouse"] = stack.warehouse(day)
        out["rerun"]["mails"] = stack.mails()
        pids = json.loads((home / "airflow" / "stack.json").read_text())["pids"]
        out["listening"] = _listening(set(pids.values()))
        timings["rerun"] = time.perf_counter() - started
        out["timings"] = timings
        print(f"\nreal-scheduler scenario timings (s, cumulative): {timings}")
        yield out
    finally:
        subprocess.run(
            [sys.executable, "-m", "infra.airflow_local", "stop"], env=env, timeout=120, cwd=ROOT
        )


def test_start_prints_the_ui_and_login(scenario):
    text = scenario["start_output"]
    assert "http://127.0.0.1:" in text and "login admin / " in text
    assert "make airflow-stop" in text


def test_make_airflow_created_the_pool_with_one_slot(scenario):
    assert scenario["pools"]["hqlake_warehouse"] == 1


def test_unpausing_skips_a_date_before_the_start_date(scenario):
    scheduled = scenario["scheduled"]
    assert scheduled["state"] == "success"
    assert set(scheduled["tasks"].values()) == {"skipped"}, scheduled["tasks"]
    assert scheduled["mails"] == 0


def test_a_failed_business_date_stops_the_run_with_a_message(scenario):
    bad = scenario["bad"]
    assert bad["state"] == "failed"
    assert bad["tasks"]["business_date"] == "failed"
    assert bad["tasks"]["late_arrivals"] == "skipped"
    assert set(bad["tasks"].values()) <= {"failed", "upstream_failed", "skipped"}
    logs = "\n".join(bad["logs"].values())
    assert "is not a date" in logs and "no business date" in logs
    assert "TypeError" not in logs


def test_a_logical_date_alone_processes_its_business_date(scenario):
    run, day, registry = scenario["run"], scenario["day"], scenario["registry"]
    assert run["state"] == "success", run["tasks"]
    assert set(run["tasks"].values()) == {"success"}
    assert run["day"] == [day.isoformat()]
    assert scenario["filled"]["warehouse"]["rows"] > 0
    assert scenario["filled"]["warehouse"]["scored"] == len(registry.active(day))
    assert len(run["mails"]) == len(registry.active(day))
    sent = [o for task in run["feedback"] for stage in task for o in stage["outcomes"]]
    assert {o["status"] for o in sent} == {"sent"}


def test_the_backfill_dry_run_lists_the_business_date(scenario):
    later = scenario["later"]
    runs = scenario["dry_run"].partition("Runs to be attempted:")[2]
    stamp = logical_date(later).astimezone(dt.UTC)
    # Airflow's table of logical dates, in the zone the bounds were given in
    listed = re.findall(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d[+-]\d\d:\d\d", runs)
    assert [dt.datetime.fromisoformat(d) for d in listed] == [stamp], runs
    assert run_business_date(None, stamp) == later


def test_a_backfill_run_waits_for_the_run_before_it_and_processes_its_date(scenario):
    filled, later, registry = scenario["filled"], scenario["later"], scenario["registry"]
    assert scenario["waited_while"] == "running"  # D was running while it waited
    assert filled["order"] == 1  # its first stage started after D's run ended
    assert filled["state"] == "success", filled["tasks"]
    assert filled["day"] == [later.isoformat()]
    # nothing uploaded for it: one reminder per organisation, D's e-mails untouched
    reminders = len(filled["mails"]) - len(scenario["run"]["mails"])
    assert reminders == len(registry.active(later))


def test_tasks_clear_reruns_the_date_and_sends_nothing_twice(scenario):
    filled, rerun = scenario["filled"], scenario["rerun"]
    assert rerun["state"] == "success", rerun["tasks"]
    assert rerun["day"] == filled["day"]
    assert rerun["warehouse"] == filled["warehouse"]
    assert rerun["mails"] == filled["mails"]
    outcomes = [o for task in rerun["feedback"] for stage in task for o in stage["outcomes"]]
    assert outcomes and {o["status"] for o in outcomes} == {"unchanged"}


def test_every_process_of_the_stack_listens_on_loopback_only(scenario):
    """api-server, scheduler (no log server on 0.0.0.0:8793), dag-processor, their task
    processes and the SMTP sink: sockets on 127.0.0.1 only."""
    listening = scenario["listening"]
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
