"""`hqlake check`, the pre-flight check of an organisation's local files.

The acceptance test: on a generated sample-city day with the default faults, the check of an
organisation's files (as an inbox tree and as a batch folder) gives the same results of the
batch, field and record rules as a full ingest + validate of the same files on the platform
(SeaweedFS + chDB of the test session). The check runs the installed `hqlake` in a process of
its own (chDB opens one data path per process), with a home and a temp folder of its own that
it must leave as it found them.
"""

from __future__ import annotations

import datetime as dt
import json
import shutil
import subprocess
from pathlib import Path

import pytest

from contracts.pii import mask_key
from contracts.registry import load_registry
from expectations.engines.monitoring import LOCAL_BATCH_RULES
from expectations.rules.rulebase import rulebase
from expectations.validate import current_results, validate_date
from infra.pipeline import ingestor
from samplecity import generate
from tests.infra.conftest import HQLAKE, assert_operator_error, run_hqlake

DAY = dt.date(2026, 11, 9)
HOSPITAL = "12411502000501374K"  # 信阳市中心医院, in the bundled registry too
COUNTY = "411502"


def check(tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    """`hqlake check ...` with its own home and temp folder, and no platform settings."""
    (tmp_path / "tmp").mkdir(exist_ok=True)
    home = tmp_path / "home"
    return run_hqlake(home, "check", *args, timeout=300, TMPDIR=str(tmp_path / "tmp"))


def judged(report: dict) -> dict:
    return {
        (r["dataset"], r["rule_id"]): (r["checked"], r["failed"], r["status"], r["sample_keys"])
        for r in report["results"]
    }


def as_batch_folder(inbox: Path, org: str, out: Path) -> Path:
    """The organisation's files of DAY as `out/<dataset>/<file>`, receive times kept."""
    for folder in sorted((inbox / org).iterdir()):
        day = folder / DAY.isoformat()
        if day.is_dir():
            (out / folder.name).mkdir(parents=True)
            for f in day.iterdir():
                shutil.copy2(f, out / folder.name / f.name)
    return out


@pytest.mark.integration
def test_check_gives_the_platform_results_of_batch_field_and_record_rules(rt, tmp_path):
    inbox = tmp_path / "inbox"
    generate(inbox, DAY, 1, hospitals=4, counties=1, scale=0.02, faults="default", seed=7)
    registry_csv = inbox / "_registry.csv"
    registry = load_registry(registry_csv)
    ingestor(rt, registry).ingest(str(inbox), DAY)
    summary = validate_date(rt.ch, registry, day=DAY)
    assert summary.errors == 0
    rb = rulebase()
    local = LOCAL_BATCH_RULES | set(rb.types_of("row_sql"))
    type_of = {r.id: r.type for r in rb.rules}
    platform_rows = current_results(rt.ch, DAY)

    for org in (HOSPITAL, COUNTY):
        platform = {
            (r["dataset"], r["rule_id"]): (
                r["checked"],
                r["failed"],
                r["status"],
                [mask_key(r["dataset"], k) for k in r["sample_keys"]],
            )
            for r in platform_rows
            if r["org_code"] == org and type_of[r["rule_id"]] in local and r["batch_version"] > 0
        }
        tree = check(tmp_path, str(inbox), "--org", org, "--date", str(DAY), "--format", "json")
        report = json.loads(tree.stdout)
        assert report["layout"] == "inbox tree"
        failed = {k for k, v in judged(report).items() if v[2] == "failed"}
        print(org, "checked", len(report["results"]), "failed", sorted(failed), report["seconds"])
        assert failed, "the default faults fail some rule of every organisation here"
        assert judged(report) == platform
        if any(rule_id.endswith(".values_typed") for _, rule_id in failed):
            assert report["quarantined"], "the quarantined rows are shown with their reasons"
        blocking = [r for r in report["results"] if r["status"] == "failed"]
        blocking = [r["rule_id"] for r in blocking if r["severity"] == "blocking"]
        assert report["blocking_failed"] == blocking
        assert tree.returncode == (1 if blocking else 0), tree.stderr
        assert "cross_dataset" not in {r["level"] for r in report["results"]}
        assert "no_activity_after_death" in report["not_run"]
        assert {"batch_received", "batch_on_time"} <= set(report["checked_by_platform"])

        folder = as_batch_folder(inbox, org, tmp_path / f"batch-{org}")
        args = ("--org", org, "--date", str(DAY), "--format", "json")
        batch = check(tmp_path, str(folder), *args, "--registry", str(registry_csv))
        assert json.loads(batch.stdout)["layout"] == "batch folder"
        assert judged(json.loads(batch.stdout)) == platform
        assert batch.returncode == tree.returncode

    # what a person reads: the failing rules with their descriptions and fix hints, zh and en
    table = check(tmp_path, str(inbox), "--org", HOSPITAL, "--date", str(DAY))
    assert "would fail:" in table.stdout
    rule = rb.types["file_readable"]
    assert rule.description.zh in table.stdout and rule.fix_hint.en in table.stdout
    assert "checked by the platform: batch_received" in table.stdout
    # nothing left behind: no home, no warehouse in the temp folder
    assert not (tmp_path / "home").exists()
    assert list((tmp_path / "tmp").iterdir()) == []


def test_check_passes_a_clean_day_with_exit_0(tmp_path):
    inbox = tmp_path / "inbox"
    generate(inbox, DAY, 1, hospitals=2, counties=1, scale=0.01, faults="none", seed=3)
    hospitals = load_registry(inbox / "_registry.csv").organisations.values()
    org = next(o.org_code for o in hospitals if o.kind == "hospital")
    out = check(tmp_path, str(inbox), "--org", org, "--date", str(DAY))
    assert out.returncode == 0, out.stdout + out.stderr
    assert "would fail: 0 rules" in out.stdout
    assert "OK: no blocking rule fails (exit 0)" in out.stdout


def test_operator_mistakes_exit_2_in_a_line(tmp_path):
    day = ("--date", str(DAY))
    batch = tmp_path / "batch"
    (batch / "outpatient_visit").mkdir(parents=True)
    (batch / "outpatient_visit" / "visits.csv").write_text("visit_id\nV1\n")

    assert_operator_error(check(tmp_path, str(batch), "--org", "NOSUCHORG", *day), "NOSUCHORG")
    assert_operator_error(
        check(tmp_path, str(tmp_path / "missing"), "--org", HOSPITAL, *day), "is not a folder"
    )
    assert_operator_error(
        check(tmp_path, str(batch), "--org", HOSPITAL, "--date", "2026-13-01"),
        "is not a date YYYY-MM-DD",
    )
    empty = tmp_path / "empty"
    (empty / "notes").mkdir(parents=True)
    assert_operator_error(check(tmp_path, str(empty), "--org", HOSPITAL, *day), "no dataset folder")

    # a batch folder and an inbox tree side by side: refused, not guessed
    (batch / HOSPITAL / "patient" / str(DAY)).mkdir(parents=True)
    out = check(tmp_path, str(batch), "--org", HOSPITAL, *day)
    assert_operator_error(out, "ambiguous", "outpatient_visit", HOSPITAL)
    verbose = subprocess.run(
        [str(HQLAKE), "--verbose", "check", str(batch), "--org", HOSPITAL, *day],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert verbose.returncode == 2 and "Traceback" in verbose.stderr

    tree = tmp_path / "tree"
    (tree / COUNTY / "health_record" / str(DAY)).mkdir(parents=True)
    assert_operator_error(
        check(tmp_path, str(tree), "--org", HOSPITAL, *day), f"no folder {HOSPITAL}"
    )
