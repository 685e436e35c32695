"""The check of tests/service_markers.py: a test that requests a service fixture or starts a
service without its marker fails, and one with its marker passes (a pytest of its own over
a few planted tests; the services they start are `weed version` and a chDB folder)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.service_markers import _process_service

ROOT = Path(__file__).resolve().parents[1]

PLANTED = """
import subprocess
import clickhouse_connect
import pytest

from infra.seaweed import weed_binary


@pytest.fixture
def seaweed():
    return None  # the name is what the check reads; nothing starts


def test_fixture_unmarked(seaweed):
    pass


@pytest.mark.integration
def test_fixture_marked(seaweed):
    pass


def test_process_unmarked():
    subprocess.run([weed_binary(), "version"], check=True, capture_output=True)


@pytest.mark.integration
def test_process_marked():
    subprocess.run([weed_binary(), "version"], check=True, capture_output=True)


def test_chdb_unmarked(tmp_path):
    clickhouse_connect.get_client(dsn=f"chdb://{tmp_path / 'chdb'}").query("SELECT 1")


def test_plain():
    assert subprocess.run(["true"]).returncode == 0


@pytest.fixture
def scenario():
    return None  # a common name (tests/test_daily_run.py has one): no service


def test_common_fixture_name(scenario):
    pass
"""


@pytest.mark.integration  # the planted tests start `weed version` and a chDB
def test_a_service_without_its_marker_fails_the_test(tmp_path):
    (tmp_path / "test_planted.py").write_text(PLANTED, encoding="utf-8")
    plugins = ["-p", "tests.service_markers", "-p", "no:cacheprovider"]
    done = subprocess.run(
        [sys.executable, "-m", "pytest", *plugins, "-q", "-rA", "-c", "/dev/null", str(tmp_path)],
        cwd=ROOT,
        env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    out = done.stdout
    outcomes = {
        line.split("::")[1].split()[0]: line.split()[0]
        for line in out.splitlines()
        if "test_planted.py::" in line and line.split()[0] in ("PASSED", "FAILED", "ERROR")
    }
    assert outcomes == {
        "test_fixture_unmarked": "ERROR",
        "test_fixture_marked": "PASSED",
        "test_process_unmarked": "FAILED",
        "test_process_marked": "PASSED",
        "test_chdb_unmarked": "FAILED",
        "test_plain": "PASSED",
        "test_common_fixture_name": "PASSED",
    }, out + done.stderr
    assert "seaweed needs @pytest.mark.integration" in out
    assert "SeaweedFS needs @pytest.mark.integration" in out
    assert "chDB needs @pytest.mark.integration" in out


def test_processes_are_told_by_their_first_words():
    assert _process_service(["/x/.venv/bin/weed", "mini"]) == ("SeaweedFS", "integration")
    assert _process_service(["/usr/bin/chromium", "--headless"])[1] == "browser"
    airflow = ["/x/bin/python3.11", "-m", "infra.airflow_local", "start"]
    assert _process_service(airflow)[1] == "integration"
    assert _process_service(["/x/bin/hqlake", "check", "inbox"])[1] == "integration"
    bench = ["/x/bin/python", "-m", "bench.cityday", "--scale", "0.01"]
    assert _process_service(bench)[1] == "integration"
    assert _process_service(["/x/bin/hqlake", "users", "add"]) is None
    assert _process_service(["uv", "lock", "--check"]) is None
    assert _process_service("true") is None
