"""`hqlake explain` on a hand-made scored day: the table, the JSON, and one line with exit 2
for an unscored date or an organisation without a score."""

import json
from decimal import Decimal

import pytest
from typer.testing import CliRunner

from expectations.scoring.store import score_date
from tests.expectations.scoring.test_scoring import D, _hand_made_day, org, registry

pytestmark = pytest.mark.integration


def test_explain_table_json_and_operator_errors(rt, capsys):
    from infra.cli import app, main

    _hand_made_day(rt.ch)
    score_date(rt.ch, registry(org("T1")), D)
    runner = CliRunner()
    args = ["explain", "--org", "T1", "--date", D.isoformat()]
    as_json = runner.invoke(app, [*args, "--format", "json"])
    assert as_json.exit_code == 0, as_json.output
    answer = json.loads(as_json.stdout)
    assert (answer["composite"], answer["lost_total"], answer["run_id"]) == (
        47.5,
        "52.500000000000",
        "r1",
    )
    assert [(x["rule_id"], x["points"]) for x in answer["lines"]][:2] == [
        ("outpatient_visit.d.icd10_valid", "22.500000000000"),
        ("prescription.batch_received", "16.666666666667"),
    ]
    assert sum(Decimal(x["points"]) for x in answer["lines"]) == Decimal(answer["lost_total"])
    batches = {b["dataset"]: b for b in answer["batches"]}
    assert set(batches) == {"outpatient_visit", "prescription", "lab_result"}
    assert (
        batches["outpatient_visit"]["composite"],
        batches["outpatient_visit"]["lost_total"],
    ) == (
        59.375,
        "40.625000000000",
    )
    for b in batches.values():
        assert sum(Decimal(x["points"]) for x in b["lines"]) == Decimal(b["lost_total"])

    table = runner.invoke(app, args)
    assert table.exit_code == 0, table.output
    lines = table.stdout.splitlines()
    assert lines[0] == "T1 医院 (T1) 2026-03-31: composite 47.50, 52.50 points lost"
    first = lines[2].split()
    assert first[:4] == ["-22.50", "correctness", "5", "outpatient_visit.d.icd10_valid"]
    assert any("batch not received" in x and "-16.67" in x for x in lines)

    for bad, message in (
        (["--org", "NOPE", "--date", D.isoformat()], "organisation 'NOPE' has no score on"),
        (["--org", "T1", "--date", "2026-04-01"], "2026-04-01 has no scores"),
    ):
        capsys.readouterr()
        with pytest.raises(SystemExit) as stop:
            main(["explain", *bad])
        err = capsys.readouterr().err
        assert stop.value.code == 2 and err.startswith(message) and len(err.splitlines()) == 1
        assert "Traceback" not in err
