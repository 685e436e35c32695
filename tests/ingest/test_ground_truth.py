"""Ingest a generated week and compare every file-level outcome with the ground truth."""

import datetime as dt
from collections import defaultdict

import pytest

from contracts.registry import load_registry
from infra.pipeline import ingestor
from samplecity import apply_corrections
from tests.conftest import CITY_START, FAULTY_WEEK, ground_truth

pytestmark = pytest.mark.integration

START, DAYS = CITY_START, FAULTY_WEEK["days"]


@pytest.fixture
def faulty_city(faulty_week):
    """The session's faulty week (tests/conftest.py), a copy this test may correct."""
    return faulty_week, ground_truth(faulty_week)


def _ingest_week(rt, inbox, days=DAYS):
    registry = load_registry(inbox / "_registry.csv")
    results = []
    for i in range(days):
        results += ingestor(rt, registry).ingest(str(inbox), START + dt.timedelta(days=i))
    return registry, results


def test_every_file_level_defect_is_reported_as_expected(rt, faulty_city):
    inbox, truth = faulty_city
    registry, results = _ingest_week(rt, inbox)
    by_file = {r.file: r for r in results}
    batches = {(r.org_code, r.dataset, r.business_date) for r in results}

    for r in results:  # row accounting holds for every file
        assert r.rows_read == r.rows_loaded + r.rows_quarantined, r.file

    expected = [t for t in truth if t.get("expected_ingest")]
    kinds = {t["expected_ingest"] for t in expected}
    assert {
        "rejected",
        "duplicate",
        "quarantined_rows",
        "loaded_drift",
        "correction",
        "missing",
        "loaded_missing_column",
    } <= kinds
    quarantined_keys = defaultdict(set)
    for org, ds, key in rt.ch.query(
        "SELECT org_code, dataset, record_key FROM dq.quarantine FINAL"
    ).result_rows:
        quarantined_keys[(org, ds)].add(key)

    corrections = []
    for t in expected:
        kind, result = t["expected_ingest"], by_file.get(t["file"]) if t["file"] else None
        where = f"{t['defect']} {t['file'] or (t['org_code'], t['dataset'], t['business_date'])}"
        if kind == "missing":
            assert (t["org_code"], t["dataset"], t["business_date"]) not in batches, where
            continue
        if kind == "correction":
            corrections.append(t)
            continue
        if t["file"] is None:  # a batch-level defect (volume collapse): the batch loaded
            assert kind == "loaded", where
            assert (t["org_code"], t["dataset"], t["business_date"]) in batches, where
            continue
        assert result is not None, f"no ingest result for {where}"
        if kind == "rejected":
            assert result.status == "rejected" and result.reason, where
        elif kind == "duplicate":
            assert result.status == "duplicate" and "byte-identical" in result.reason, where
        elif kind == "quarantined_rows":
            assert result.status == "loaded" and result.rows_quarantined > 0, where
            if t.get("record_key"):
                assert t["record_key"] in quarantined_keys[(t["org_code"], t["dataset"])], where
        elif kind == "loaded_drift":
            assert result.status == "loaded" and "schema drift" in result.reason, where
        elif kind == "loaded_missing_column":
            assert result.status == "loaded" and "missing required columns" in result.reason, where
        else:
            assert kind == "loaded" and result.status == "loaded", where

    # Nothing refused or quarantined that the ground truth does not explain.
    explained = {t["file"] for t in expected if t["file"]}
    for r in results:
        if r.status == "rejected" or r.rows_quarantined:
            assert r.file in explained, f"unexplained {r.status} {r.file}: {r.reason}"

    # Corrections arrive late: re-ingesting their dates makes a new version of the batch.
    assert corrections
    apply_corrections(inbox)
    for day in sorted({t["business_date"] for t in corrections}):
        redo = {
            r.file: r for r in ingestor(rt, registry).ingest(str(inbox), dt.date.fromisoformat(day))
        }
        for t in (t for t in corrections if t["business_date"] == day):
            r = redo[t["file"]]
            assert r.status == "loaded" and r.batch_version >= 2, t
            assert "replaces version" in r.reason


def test_clean_city_loads_everything(rt, clean_city):
    _, results = _ingest_week(rt, clean_city, days=2)  # two of its days
    assert len(results) >= 2 * (6 * 5 + 2 * 5)  # every org uploads each of its datasets daily
    assert {r.status for r in results} == {"loaded"}
    assert sum(r.rows_quarantined for r in results) == 0
    assert all(not r.reason or r.reason.endswith("agrees") for r in results)
    assert sum(r.rows_loaded for r in results) > 0
