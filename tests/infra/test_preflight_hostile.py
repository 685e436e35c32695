"""`hqlake check` against a hostile or careless hospital's folder: links out of PATH, bombs,
huge files, pipes, names that are not UTF-8 and bad options are refused in a line (exit 2) or
reported per file; nothing outside PATH is read, and the throwaway warehouse is removed even
when the check fails half-way."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.infra.conftest import assert_operator_error
from tests.infra.test_preflight import DAY, HOSPITAL, check

# every test runs `hqlake check`, which opens a throwaway chDB
pytestmark = pytest.mark.integration

SECRET = "SECRET-OUTSIDE-PATH"


def _outside(tmp_path: Path) -> Path:
    """A folder beside PATH with a readable prescription file in it."""
    out = tmp_path / "outside" / "prescription" / str(DAY)
    out.mkdir(parents=True)
    (out / "rx.csv").write_text(f"rx_item_id,amount\n{SECRET},1.00\n")
    return out


def test_hostile_batch_folder_is_reported_file_by_file(tmp_path):
    outside = _outside(tmp_path)
    batch = tmp_path / "batch"
    rx = batch / "prescription"
    rx.mkdir(parents=True)
    (rx / "link.csv").symlink_to(outside / "rx.csv")
    (batch / "patient").symlink_to(outside)  # a dataset folder that is a link
    with gzip.open(rx / "bomb.csv.gz", "wb") as f:  # 100 MB of zeros in ~100 KB
        f.write(b"rx_item_id,amount\n")
        for _ in range(100):
            f.write(b"0" * 1_000_000)
    with open(rx / "huge.csv", "wb") as f:  # sparse: over the 256 MiB cap, no disk used
        f.truncate(300 * 1024 * 1024)
    os.mkfifo(rx / "pipe.csv")  # reading it would block the check forever
    (rx / os.fsdecode(b"bad-\xff\xfe.csv")).write_bytes(b"rx_item_id\nR1\n")
    out = check(tmp_path, str(batch), "--org", HOSPITAL, "--date", str(DAY), "--format", "json")
    assert out.returncode == 1, out.stdout + out.stderr  # nothing of it would be accepted
    assert "Traceback" not in out.stderr and SECRET not in out.stdout
    report = json.loads(out.stdout)
    n = len(report["files"])  # the unreadable files fail file_readable, which is blocking
    assert report["verdict"] == f"FAIL: a blocking rule fails; {n} of {n} files would be refused"
    reasons = {Path(f["file"]).name: f["reason"] for f in report["files"]}
    assert "symbolic link" in reasons["link.csv"] and "symbolic link" in reasons["patient"]
    assert "HQLAKE_MAX_COMPRESSION_RATIO" in reasons["bomb.csv.gz"]
    assert "HQLAKE_MAX_FILE_BYTES" in reasons["huge.csv"]
    assert "named pipe" in reasons["pipe.csv"]
    (bad,) = [name for name in reasons if name.startswith("bad-")]
    assert bad == "bad-\\xff\\xfe.csv" and "not valid UTF-8" in reasons[bad]  # shown escaped
    assert all(f["status"] == "rejected" for f in report["files"])
    assert not list((tmp_path / "tmp").iterdir())  # the throwaway warehouse is gone


def test_a_day_whose_only_file_is_refused_does_not_pass(tmp_path):
    """A link is refused before it joins a batch, so no rule fails; the check still says the
    upload would not be accepted (exit 1), instead of "OK" for a day with nothing checked."""
    outside = _outside(tmp_path)
    rx = tmp_path / "batch" / "prescription"
    rx.mkdir(parents=True)
    (rx / "link.csv").symlink_to(outside / "rx.csv")
    out = check(tmp_path, str(tmp_path / "batch"), "--org", HOSPITAL, "--date", str(DAY))
    assert out.returncode == 1, out.stdout + out.stderr
    assert "FAIL: 1 of 1 files would be refused; no file could be checked (exit 1)" in out.stdout
    assert SECRET not in out.stdout


def test_hostile_inbox_tree_and_options_exit_2_in_a_line(tmp_path):
    outside = _outside(tmp_path)
    tree = tmp_path / "tree"
    (tree / "OTHER" / "patient" / str(DAY)).mkdir(parents=True)
    (tree / HOSPITAL).symlink_to(outside.parent.parent)  # the organisation folder is a link
    out = check(tmp_path, str(tree), "--org", HOSPITAL, "--date", str(DAY), "--format", "json")
    assert "Traceback" not in out.stderr and SECRET not in out.stdout, out.stderr
    (rejected,) = json.loads(out.stdout)["files"]
    assert rejected["status"] == "rejected" and "symbolic link" in rejected["reason"]
    (tree / HOSPITAL).unlink()
    (tree / os.fsdecode(b"org-\xff") / "patient").mkdir(parents=True)
    day = ("--date", str(DAY))
    assert_operator_error(
        check(tmp_path, str(tree), "--org", HOSPITAL, *day), f"no folder {HOSPITAL}"
    )
    a_file = tmp_path / "visits.csv"
    a_file.write_text("visit_id\nV1\n")
    assert_operator_error(check(tmp_path, str(a_file), "--org", HOSPITAL, *day), "is not a folder")
    bogus = check(tmp_path, str(tree), "--org", HOSPITAL, *day, "--format", "bogus")
    assert_operator_error(bogus, "--format")
    assert not list((tmp_path / "tmp").iterdir())


def test_the_throwaway_warehouse_is_removed_when_the_check_fails_half_way(tmp_path):
    """An error inside the warehouse (here: ingestion raising) leaves no chDB folder behind."""
    batch = tmp_path / "batch" / "prescription"
    batch.mkdir(parents=True)
    (batch / "rx.csv").write_text("rx_item_id,amount\nR1,1.00\n")
    (tmp_path / "tmp").mkdir()
    script = (
        "import datetime as dt, sys\n"
        "from pathlib import Path\n"
        "from contracts.registry import load_registry\n"
        "from infra import preflight\n"
        "from ingest.pipeline import Ingestor\n"
        "def boom(*a, **k): raise RuntimeError('half-way')\n"
        "Ingestor.ingest_files = boom\n"
        "try:\n"
        f"    preflight.check(Path(sys.argv[1]), {HOSPITAL!r}, dt.date.fromisoformat("
        f"{str(DAY)!r}), load_registry())\n"
        "except RuntimeError as exc:\n"
        "    print('raised', exc)\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("HQLAKE_")}
    out = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "batch")],
        env={**env, "HQLAKE_HOME": str(tmp_path / "home"), "TMPDIR": str(tmp_path / "tmp")},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert "raised half-way" in out.stdout, out.stdout + out.stderr
    assert not list((tmp_path / "tmp").iterdir())
