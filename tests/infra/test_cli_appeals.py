"""`hqlake appeal` and `hqlake waiver` on hand-made results in the session's chDB: each success
says what was recorded and which dates were scored again; a refusal is one line, exit 2."""

import csv
import datetime as dt
import io
import json

import pytest
from typer.testing import CliRunner

from contracts.timezone import TZ
from infra.cli import app, main
from tests.expectations.programme.test_appeals import (
    FAILED_RULE,
    OFFICER,
    OV,
    A,
    B,
    C,
    _city,
)

pytestmark = pytest.mark.integration

# The commands record at the real clock (no --at), so the results are of recent days, and one
# of a day whose window has closed.
D = dt.datetime.now(TZ).date() - dt.timedelta(days=2)
NEXT = D + dt.timedelta(days=1)
CLOSED = D - dt.timedelta(days=30)


def run(*args: str) -> str:
    out = CliRunner().invoke(app, list(args))
    assert out.exit_code == 0, out.output
    return out.stdout


def refused(capsys, *args: str) -> str:
    with pytest.raises(SystemExit) as exit_:
        main(list(args))
    err = capsys.readouterr().err
    assert exit_.value.code == 2, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    return err


def refused_usage(capsys, *args: str) -> str:
    """A usage error (click's): exit 2, what is wrong on stderr."""
    with pytest.raises(SystemExit) as exit_:
        main(list(args))
    err = capsys.readouterr().err
    assert exit_.value.code == 2, err
    return err


def test_appeal_decide_and_waive_from_the_command_line(rt, capsys):
    _city(rt.ch, dates=(CLOSED, D, NEXT))
    submit = [
        "appeal",
        "submit",
        "--org",
        A,
        "--date",
        D.isoformat(),
        "--dataset",
        OV,
        "--rule",
        f"{OV}.{FAILED_RULE}",
        "--reason",
        "walk-in vaccinations\nhave no patient id",
        "--by",
        "his.zhou",
    ]
    old = [*submit[:5], CLOSED.isoformat(), *submit[6:]]
    assert f"the window for appeals of {CLOSED} closed" in refused(capsys, *old)
    # no option sets the recorded time: an appeal is not backdated into its window
    assert "No such option: --at" in refused_usage(capsys, *old, "--at", f"{CLOSED}T09:00")
    assert f"this result is {B}'s" in refused(capsys, *submit, "--of", B)
    recorded = json.loads(run(*submit, "--format", "json"))
    appeal_id = recorded["appeal_id"]
    assert (recorded["org_code"], recorded["event"], recorded["actor"]) == (
        A,
        "submitted",
        "his.zhou",
    )

    listed = run("appeal", "list", "--org", A, "--status", "open")
    assert appeal_id in listed and "walk-in vaccinations have no patient id" in listed
    decide = ["appeal", "decide", appeal_id, "--comment", "confirmed"]
    assert "'his.zhou' may not decide appeals" in refused(
        capsys, *decide, "--decision", "approve", "--by", "his.zhou"
    )
    out = run(*decide, "--decision", "approve", "--by", OFFICER)
    assert f"appeal {appeal_id} approved by {OFFICER}" in out and "is waived" in out
    assert f"scored again: {D}, {NEXT}" in out
    assert "was already approved" in refused(
        capsys, *decide, "--decision", "reject", "--by", OFFICER
    )
    table = run("scores", "--date", D.isoformat())
    header = next(line for line in table.splitlines() if "COMPOSITE" in line)
    assert header.split()[-2:] == ["failed", "waived"]
    waived_line = next(line for line in table.splitlines() if line.strip().startswith("1 "))
    assert waived_line.split()[-3:] == ["new", "0", "1"]  # A ranks 1: 0 failed, 1 waived
    rows = [
        json.loads(x)
        for x in run("scores", "--date", D.isoformat(), "--format", "json").splitlines()
    ]
    assert {r["org_code"]: (r["rank"], r["rules_waived"]) for r in rows} == {
        A: (1, 1),
        B: (3, 0),
        C: (2, 0),
    }

    add = [
        "waiver",
        "add",
        "--rule",
        "required",
        "--peer-group",
        "tertiary",
        "--from",
        NEXT.isoformat(),
    ]
    assert "'nope' is neither a rule id" in refused(
        capsys,
        "waiver",
        "add",
        "--rule",
        "nope",
        "--org",
        A,
        "--from",
        "2026-03-11",
        "--reason",
        "x",
        "--by",
        OFFICER,
    )
    out = run(*add, "--reason", "=HIS outage", "--by", OFFICER)
    waiver_id = out.split()[1]
    assert f"for peer group tertiary from {NEXT} to open" in out
    assert f"scored again: {NEXT}" in out
    assert waiver_id in run("waiver", "list", "--on", NEXT.isoformat())
    # a reason that would start a formula stays text in a spreadsheet
    [row] = csv.DictReader(io.StringIO(run("waiver", "list", "--format", "csv").lstrip("\ufeff")))
    assert (row["waiver_id"], row["reason"], row["end_date"]) == (waiver_id, "'=HIS outage", "")
    [appeal_row] = csv.DictReader(
        io.StringIO(run("appeal", "list", "--format", "csv").lstrip("\ufeff"))
    )
    assert (appeal_row["appeal_id"], appeal_row["status"]) == (appeal_id, "approved")
    assert appeal_row["reason"] == "walk-in vaccinations\nhave no patient id"
    out = run(
        "waiver",
        "end",
        waiver_id,
        "--on",
        D.isoformat(),
        "--reason",
        "withdrawn",
        "--by",
        OFFICER,
    )
    assert f"waiver {waiver_id} ends on {D} (was open)" in out
    assert f"scored again: {NEXT}" in out
    assert run("waiver", "list", "--on", NEXT.isoformat()).strip() == "no waivers"
    assert "no appeal 'ap-x'" in refused(
        capsys,
        "appeal",
        "decide",
        "ap-x",
        "--decision",
        "reject",
        "--comment",
        "c",
        "--by",
        OFFICER,
    )
