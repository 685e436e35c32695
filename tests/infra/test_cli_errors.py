"""Operator mistakes end `hqlake` with a line or two naming the problem and the fix, exit 2.

Each case runs `hqlake` with its own HQLAKE_HOME, in this process (`infra.cli.main(argv)`)
unless it is about the real entry point: the installed `hqlake` in a subprocess (a command
costs about a second of start-up) for a usage error, a connection failure with and without
`--verbose` (the traceback) and the cases that need a process of their own (the home lock,
a damaged warehouse).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from contracts.codesystems import make_uscc
from infra.localhost import free_port
from tests.infra.conftest import assert_operator_error, run_hqlake, run_hqlake_here

HEADER = "org_code,name,kind,level,county_code,emails,active_from,active_to\n"
GOOD = make_uscc("411502", 9)
ROW = f"{GOOD},信阳市中心医院,hospital,tertiary,411502,qc@h.example.cn,2020-01-01,\n"
WRONG_CHECK = GOOD[:-1] + ("0" if GOOD[-1] != "0" else "1")
DAY = "2026-11-09"


def hqlake(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    """`hqlake ARGS` in this process."""
    return run_hqlake_here(tmp_path / "home", *args, **env)


def hqlake_process(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    """The installed `hqlake ARGS` in a subprocess."""
    return run_hqlake(tmp_path / "home", *args, **env)


# Every registry mistake has a unit test in tests/contracts/test_registry.py; here two of
# them go through the command line.
REGISTRY_CASES = {
    "check-character": (
        HEADER + ROW + ROW.replace(GOOD, WRONG_CHECK),
        f"line 3: org_code '{WRONG_CHECK}' has a wrong check character",
    ),
    "short-row": (HEADER + ROW.replace(",2020-01-01,\n", "\n"), "line 2: the row has 6 fields"),
}
NEWLINE_IN_NAME = HEADER + ROW.replace("信阳市中心医院", '"信阳市\n中心医院"')


@pytest.mark.parametrize("case", REGISTRY_CASES, ids=list(REGISTRY_CASES))
def test_registry_mistake(tmp_path, case):
    text, expected = REGISTRY_CASES[case]
    registry = tmp_path / "reg.csv"
    registry.write_text(text, encoding="utf-8")
    (tmp_path / "inbox").mkdir()
    args = ("ingest", "--date", DAY, "--inbox", str(tmp_path / "inbox"))
    out = hqlake(tmp_path, *args, HQLAKE_ORG_REGISTRY=str(registry))
    assert_operator_error(out, f"registry {registry} {expected}", "fix the registry and re-run")


@pytest.mark.integration
def test_newline_in_a_name_stops_feedback_at_load_not_in_the_mail(tmp_path):
    registry = tmp_path / "reg.csv"
    registry.write_text(NEWLINE_IN_NAME, encoding="utf-8")
    out = hqlake_process(tmp_path, "feedback", "--date", DAY, HQLAKE_ORG_REGISTRY=str(registry))
    assert_operator_error(out, f"registry {registry} line 2: name has a line break")


def test_run_checks_the_registry_before_airflow_starts(tmp_path):
    registry = tmp_path / "reg.csv"
    registry.write_text(NEWLINE_IN_NAME, encoding="utf-8")
    args = ("run", "--date", DAY, "--inbox", str(tmp_path))
    out = hqlake(tmp_path, *args, HQLAKE_ORG_REGISTRY=str(registry))
    assert_operator_error(out, f"registry {registry} line 2: name has a line break")
    assert not (tmp_path / "home" / "airflow").exists()


def test_missing_registry_and_inbox(tmp_path):
    (tmp_path / "inbox").mkdir()
    out = hqlake(
        tmp_path,
        *("ingest", "--date", DAY, "--inbox", str(tmp_path / "inbox")),
        HQLAKE_ORG_REGISTRY=str(tmp_path / "nope.csv"),
    )
    assert_operator_error(out, "nope.csv: cannot read it", "set HQLAKE_ORG_REGISTRY")
    out = hqlake(tmp_path, "ingest", "--date", DAY, "--inbox", str(tmp_path / "missing"))
    assert_operator_error(out, f"inbox {tmp_path / 'missing'} is not a directory")


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("HQLAKE_CLICKHOUSE_URL", "localhost:8123", "must start with http:// or https://"),
        ("HQLAKE_LATE_DAYS", "seven", "is not a whole number"),
    ],
)
def test_malformed_setting(tmp_path, variable, value, expected):
    out = hqlake(tmp_path, "scores", "--date", DAY, **{variable: value})
    assert_operator_error(out, variable, expected)
    assert "secret" not in out.stderr


def test_unreachable_clickhouse_is_one_line(tmp_path):
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    out = hqlake_process(tmp_path, "scores", "--date", DAY, HQLAKE_CLICKHOUSE_URL=url)
    assert_operator_error(
        out,
        f"cannot reach ClickHouse at {url} (connection refused); check HQLAKE_CLICKHOUSE_URL",
    )
    verbose = hqlake_process(
        tmp_path, "--verbose", "scores", "--date", DAY, HQLAKE_CLICKHOUSE_URL=url
    )
    assert verbose.returncode == 2
    assert "Traceback" in verbose.stderr and "OperationalError" in verbose.stderr
    assert verbose.stderr.strip().splitlines()[-1].startswith("cannot reach ClickHouse")


def test_unreachable_object_store_is_one_line(tmp_path):
    endpoint = f"127.0.0.1:{free_port()}"
    (tmp_path / "inbox").mkdir()
    args = ("ingest", "--date", DAY, "--inbox", str(tmp_path / "inbox"))
    out = hqlake(tmp_path, *args, HQLAKE_S3_ENDPOINT=endpoint)
    assert_operator_error(
        out, f"cannot reach object storage at {endpoint} (connection refused)", "HQLAKE_S3_ENDPOINT"
    )


def test_home_that_cannot_be_a_directory(tmp_path):
    # A path under a regular file fails for root too (a chmod 0500 directory does not).
    (tmp_path / "file").write_text("x")
    home = tmp_path / "file" / "home"
    out = hqlake(tmp_path, "scores", "--date", DAY, HQLAKE_HOME=str(home))
    assert_operator_error(out, f"HQLAKE_HOME={home} is not a writable directory")


def test_bad_option_value_is_two_lines(tmp_path):
    out = hqlake_process(tmp_path, "scores", "--date", "2026-13-01")
    assert_operator_error(out, "'2026-13-01' is not a date YYYY-MM-DD", "hqlake scores --help")


@pytest.mark.integration
def test_second_process_on_the_same_home_is_told_who_has_it(tmp_path):
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sys; from infra.runtime import warehouse; warehouse(); print('ready', "
            "flush=True); sys.stdin.read()",
        ],
        env={**os.environ, "HQLAKE_HOME": str(tmp_path / "home")},
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "ready"
        out = hqlake_process(tmp_path, "ingest", "--date", DAY, "--inbox", str(tmp_path))
        assert_operator_error(
            out,
            f"another hqlake process (pid {holder.pid}) is using HQLAKE_HOME={tmp_path / 'home'}",
            "wait for it or use another home",
        )
    finally:
        holder.communicate("", timeout=60)
    after = hqlake_process(tmp_path, "scores", "--date", DAY)  # the lock went with the process
    assert after.returncode == 0, after.stderr


@pytest.mark.integration
def test_unknown_failure_is_two_lines_and_verbose_shows_the_traceback(tmp_path):
    # a warehouse whose results table is not hqlake's: the migration cannot bring it up to date
    home = tmp_path / "home"
    home.mkdir(0o700)
    (home / "chdb").mkdir(0o700)
    damage = (
        "import clickhouse_connect, sys; ch = clickhouse_connect.get_client(dsn=sys.argv[1]);"
        " ch.command('CREATE DATABASE dq');"
        " ch.command('CREATE TABLE dq.rule_result (x UInt8) ENGINE = Memory')"
    )
    subprocess.run([sys.executable, "-c", damage, f"chdb://{home / 'chdb'}"], check=True)
    out = hqlake_process(tmp_path, "results", "--date", DAY)
    lines = out.stderr.strip().splitlines()
    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert len(lines) == 2 and lines[1] == "run with --verbose for the traceback"
    verbose = hqlake_process(tmp_path, "--verbose", "results", "--date", DAY)
    assert verbose.returncode == 1 and "Traceback" in verbose.stderr


def test_rules_suggest_operator_mistakes(tmp_path):
    suggest = ("rules", "suggest", "--from")
    out = hqlake(tmp_path, *suggest, "2026-11-31", "--to", DAY)
    assert_operator_error(out, "'2026-11-31' is not a date YYYY-MM-DD", "rules suggest --help")
    out = hqlake(tmp_path, *suggest, "2026-11-12", "--to", DAY)
    assert_operator_error(out, "--from 2026-11-12 is after --to 2026-11-09")
    url = f"http://127.0.0.1:{free_port()}"
    out = hqlake(tmp_path, *suggest, DAY, "--to", DAY, HQLAKE_CLICKHOUSE_URL=url)
    assert_operator_error(out, f"cannot reach ClickHouse at {url} (connection refused)")


@pytest.mark.integration
def test_rules_suggest_on_a_warehouse_without_validation(tmp_path):
    out = hqlake_process(tmp_path, "rules", "suggest", "--from", DAY, "--to", "2026-11-15")
    assert_operator_error(
        out, "nothing validated from 2026-11-09 to 2026-11-15", "hqlake validate --date"
    )
