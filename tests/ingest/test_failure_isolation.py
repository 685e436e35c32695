"""One bad file never stops the day: a file's or a batch's failure, native panics included, is
recorded for it and every other batch commits; trouble of the lake still propagates."""

import os

import polars as pl
import pytest
from minio.error import S3Error

from contracts.loader import contracts
from infra.pipeline import ingestor
from ingest import pipeline, prepare
from ingest.pipeline import Ingestor
from tests.ingest.test_pipeline import COUNTY, DAY, HOSPITAL, OTHER, REGISTRY, VISITS, put

pytestmark = pytest.mark.integration

VACCINATION = "vacc_id,id_no\nx1,1\n"


def ingest(rt, inbox):
    return ingestor(rt, REGISTRY).ingest(str(inbox), DAY)


def committed(rt):
    return {
        (org, ds): (version, rows)
        for org, ds, version, rows in rt.ch.query(
            "SELECT org_code, dataset, batch_version, rows_loaded FROM dq.batch FINAL"
        ).result_rows
    }


def others(inbox):
    """A good batch of another hospital and of a county: they must commit whatever happens."""
    put(inbox, OTHER, "outpatient_visit", "visits.csv", VISITS)
    put(inbox, COUNTY, "vaccination", "v.csv", VACCINATION)


def assert_others_committed(rt):
    got = committed(rt)
    assert got[(OTHER, "outpatient_visit")] == (1, 2)
    assert got[(COUNTY, "vaccination")] == (1, 1)


@pytest.mark.parametrize(
    ("name", "data"),
    [
        ("nul.csv", VISITS.replace("patient_id", "pat\x00ient_id", 1)),
        ("drift.csv", VISITS.replace("\n", ",1\n").replace("other_fee,1", "other_fee,no\x00te")),
        ("nul.jsonl", '{"visit_id": "v9", "pat\\u0000ient_id": "p9"}\n'),
    ],
)
def test_a_nul_in_a_header_name_is_that_files_failure(rt, tmp_path, name, data):
    """Polars panics (PanicException, not an Exception) on a NUL in a column name, both when
    quarantining a row and when keeping an unknown column aside."""
    put(tmp_path, HOSPITAL, "outpatient_visit", name, data)
    put(tmp_path, HOSPITAL, "outpatient_visit", "good.csv", VISITS.replace("v1,", "v7,"))
    others(tmp_path)
    results = {r.file.rsplit("/", 1)[1]: r for r in ingest(rt, tmp_path) if r.org_code == HOSPITAL}
    bad = results[name]
    assert bad.status == "rejected"
    assert "has control characters in header column" in bad.reason and "\\x00" in bad.reason
    assert results["good.csv"].status == "loaded"
    assert committed(rt)[(HOSPITAL, "outpatient_visit")] == (1, 2)
    assert_others_committed(rt)


def test_a_native_panic_while_processing_a_file_is_that_files_failure(rt, tmp_path, monkeypatch):
    real_conform = prepare.conform

    def conform_that_panics(strings, dataset):
        if "v1" in strings.table.to_pydict().get("visit_id", []):
            pl.DataFrame({"a\x00b": ["x"]}).to_arrow()  # a real polars panic
        return real_conform(strings, dataset)

    monkeypatch.setattr(prepare, "conform", conform_that_panics)
    put(tmp_path, HOSPITAL, "outpatient_visit", "visits.csv", VISITS)
    put(tmp_path, HOSPITAL, "outpatient_visit", "more.csv", VISITS.replace("v1,", "v7,"))
    others(tmp_path)
    results = {(r.org_code, r.file.rsplit("/", 1)[1]): r for r in ingest(rt, tmp_path)}
    r = results[(HOSPITAL, "visits.csv")]
    assert r.status == "rejected"
    assert r.reason.startswith("visits.csv could not be processed: PanicException: ")
    assert len(r.reason) < 300
    assert results[(HOSPITAL, "more.csv")].status == "loaded"
    assert results[(OTHER, "visits.csv")].status == "rejected"  # the same content panics there
    assert committed(rt)[(COUNTY, "vaccination")] == (1, 1)
    for res in results.values():
        assert res.rows_read == res.rows_loaded + res.rows_quarantined


def test_a_failure_of_one_batch_is_recorded_and_every_other_batch_commits(
    rt, tmp_path, monkeypatch
):
    real_read_manifest = pipeline.read_manifest

    def read_manifest_that_panics(data):
        if b"panic" in data:
            pl.DataFrame({"a\x00b": ["x"]}).to_arrow()
        return real_read_manifest(data)

    monkeypatch.setattr(pipeline, "read_manifest", read_manifest_that_panics)
    put(tmp_path, HOSPITAL, "outpatient_visit", "visits.csv", VISITS)
    manifest = put(tmp_path, HOSPITAL, "outpatient_visit", "_manifest.json", '{"panic": 1}')
    others(tmp_path)
    results = [r for r in ingest(rt, tmp_path) if r.org_code == HOSPITAL]
    assert {r.status for r in results} == {"rejected"}
    assert all("its batch could not be processed (PanicException" in r.reason for r in results)
    assert (HOSPITAL, "outpatient_visit") not in committed(rt)
    assert_others_committed(rt)
    hospital_rows = f"SELECT count() FROM raw.outpatient_visit WHERE org_code = '{HOSPITAL}'"
    assert rt.ch.query(hospital_rows).result_rows == [(0,)]  # its buffered rows were dropped

    manifest.write_text('{"row_count": 3}', encoding="utf-8")
    again = {r.file.rsplit("/", 1)[1]: r for r in ingest(rt, tmp_path) if r.org_code == HOSPITAL}
    assert again["_manifest.json"].reason == "manifest row_count 3 agrees"
    assert committed(rt)[(HOSPITAL, "outpatient_visit")] == (1, 2)
    assert rt.ch.query(hospital_rows).result_rows == [(2,)]


HUGE = "9" * 5000  # more digits than Python converts to an int


@pytest.mark.parametrize(
    ("row_count", "shown"),
    [
        *[(v, v) for v in ("true", "false", "3.0", '"3"', "-1", "null", "[3]")],
        ("1e3", "1000.0"),
        (str(2**63), str(2**63)),
        (str(2**64), str(2**64)),
        (HUGE, HUGE[:40] + "..."),
    ],
)
def test_a_manifest_row_count_that_is_not_a_json_integer_in_range_is_a_manifest_problem(
    rt, tmp_path, row_count, shown
):
    put(tmp_path, HOSPITAL, "outpatient_visit", "visits.csv", VISITS)
    put(tmp_path, HOSPITAL, "outpatient_visit", "_manifest.json", f'{{"row_count": {row_count}}}')
    others(tmp_path)
    results = {r.file.rsplit("/", 1)[1]: r for r in ingest(rt, tmp_path)}
    assert_others_committed(rt)
    again = ingest(rt, tmp_path)  # a re-run meets the same manifest
    assert {r.status for r in again} == {"duplicate"}
    reason = results["_manifest.json"].reason
    assert reason == (
        f"manifest row_count must be a JSON integer from 0 to {2**63 - 1}; got {shown}"
    )
    assert rt.ch.query(
        "SELECT batch_version, rows_loaded, manifest_row_count, manifest_problem FROM dq.batch"
        f" FINAL WHERE org_code = '{HOSPITAL}'"
    ).result_rows == [(1, 2, None, reason)]


def test_the_largest_manifest_row_count_is_accepted(rt, tmp_path):
    put(tmp_path, HOSPITAL, "outpatient_visit", "visits.csv", VISITS)
    put(tmp_path, HOSPITAL, "outpatient_visit", "_manifest.json", f'{{"row_count": {2**63 - 1}}}')
    results = {r.file.rsplit("/", 1)[1]: r for r in ingest(rt, tmp_path)}
    reason = results["_manifest.json"].reason
    assert reason == f"manifest row_count {2**63 - 1} but 3 rows were read"


def test_trouble_of_the_lake_still_propagates(rt, tmp_path):
    """Infrastructure errors are not bad data: the task fails and the scheduler retries."""
    put(tmp_path, HOSPITAL, "outpatient_visit", "visits.csv", VISITS)
    broken = Ingestor(
        rt.s3,
        rt.ch,
        lake_bucket="no-such-bucket",
        limits=rt.settings.read_limits,
        registry=REGISTRY,
        contract_set=contracts(),
    )
    with pytest.raises(S3Error, match="NoSuchBucket"):
        broken.ingest(str(tmp_path), DAY)
    assert rt.ch.query("SELECT count() FROM dq.ingest_file").result_rows == [(0,)]


@pytest.mark.parametrize(
    ("mtime", "shown"),
    [
        (-315619200, "1960-01-01 08:00:00"),
        (7258118400, "2200-01-01 08:00:00"),
    ],
)
def test_a_modification_time_the_warehouse_cannot_store_is_that_files_refusal(
    rt, tmp_path, mtime, shown
):
    """rsync -t and scp -p keep an uploader's mtime; outside ClickHouse's DateTime it made
    the insert of every organisation's file log fail, on every re-run."""
    path = put(tmp_path, HOSPITAL, "outpatient_visit", "old.csv", VISITS)
    os.utime(path, (mtime, mtime))
    put(tmp_path, HOSPITAL, "outpatient_visit", "visits.csv", VISITS.replace("v1,", "v7,"))
    others(tmp_path)
    results = {r.file.rsplit("/", 1)[1]: r for r in ingest(rt, tmp_path) if r.org_code == HOSPITAL}
    assert (results["old.csv"].status, results["old.csv"].reason) == (
        "rejected",
        f"old.csv has a modification time ({shown}) that cannot stand for its receive time;"
        " upload it without preserving the time",
    )
    assert results["visits.csv"].status == "loaded"
    assert committed(rt)[(HOSPITAL, "outpatient_visit")] == (1, 2)
    assert_others_committed(rt)
