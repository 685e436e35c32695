"""Ingestion end to end on the real embedded services (SeaweedFS + chDB)."""

import datetime as dt
import gzip
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from contracts.codesystems import make_uscc
from contracts.registry import parse_registry, registry_csv
from infra.pipeline import ingestor

pytestmark = pytest.mark.integration

DAY = dt.date(2026, 11, 9)
HOSPITAL, OTHER, RETIRED = make_uscc("411502", 11), make_uscc("411503", 12), make_uscc("411503", 13)
COUNTY = "411526"
REGISTRY = parse_registry(
    "org_code,name,kind,level,county_code,emails,active_from,active_to\n"
    f"{HOSPITAL},甲医院,hospital,tertiary,411502,a@x.cn,2020-01-01,\n"
    f"{OTHER},乙医院,hospital,secondary,411503,b@x.cn,2020-01-01,\n"
    f"{RETIRED},丙医院,hospital,primary,411503,c@x.cn,2020-01-01,2025-12-31\n"
    f"{COUNTY},潢川县公共卫生平台,county,county,411526,d@x.cn,2020-01-01,\n",
    "test-registry",
)
VISITS = (
    "visit_id,patient_id,visit_time,visit_type,dept_code,dept_name,doctor_id,diagnosis_code,"
    "diagnosis_name,total_fee,drug_fee,exam_fee,lab_fee,treatment_fee,material_fee,other_fee\n"
    "v1,p1,2026-11-09 08:00:00,1,D1,内科,d1,I10,高血压,100.00,50.00,10,10,10,10,10\n"
    "v2,p2,2026-11-09 09:00:00,2,D2,急诊科,d2,J06.9,上呼吸道感染,20.00,20.00,0,0,0,0,0\n"
    "v3,p3,2026-11-09 10:00:00,1,D1,内科,d1,E11.9,糖尿病,abc,1,,,,,\n"
)


def put(inbox: Path, org: str, dataset: str, name: str, data: bytes | str, day=DAY) -> Path:
    path = inbox / org / dataset / day.isoformat() / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data.encode("utf-8") if isinstance(data, str) else data)
    return path


def ingest(rt, inbox, day=DAY):
    return {
        r.file.split("/", 1)[1] if r.file.count("/") else r.file: r
        for r in ingestor(rt, REGISTRY).ingest(str(inbox), day)
    }


def scalar(rt, sql):
    return rt.ch.query(sql).result_rows[0][0]


def test_loads_typed_rows_with_lineage_and_lake_copies(rt, tmp_path):
    put(tmp_path, HOSPITAL, "outpatient_visit", "visits.csv", VISITS.encode("gbk"))
    results = ingest(rt, tmp_path)
    r = results["outpatient_visit/2026-11-09/visits.csv"]
    assert (r.status, r.rows_read, r.rows_loaded, r.rows_quarantined, r.batch_version) == (
        "loaded",
        3,
        2,
        1,
        1,
    )
    rows = rt.ch.query(
        "SELECT visit_id, org_code, business_date, batch_version, source_file, source_line,"
        " toString(total_fee) FROM raw.outpatient_visit ORDER BY visit_id"
    ).result_rows
    assert rows == [
        ("v1", HOSPITAL, DAY, 1, f"{HOSPITAL}/outpatient_visit/2026-11-09/visits.csv", 2, "100"),
        ("v2", HOSPITAL, DAY, 1, f"{HOSPITAL}/outpatient_visit/2026-11-09/visits.csv", 3, "20"),
    ]
    q = rt.ch.query("SELECT source_line, record_key, reasons FROM dq.quarantine").result_rows
    assert q == [(4, "v3", ["total_fee: 'abc' is not a number"])]
    lake = {o.object_name for o in rt.s3.list_objects(rt.settings.lake_bucket, recursive=True)}
    base = f"outpatient_visit/2026-11-09/{HOSPITAL}/v1"
    assert {
        f"raw/original/{base}/visits.csv",
        f"raw/typed/{base}/visits.csv.parquet",
        f"quarantine/{base}/visits.csv.parquet",
    } <= lake
    logged = rt.ch.query("SELECT status, encoding, rows_read FROM dq.ingest_file FINAL").result_rows
    assert logged == [("loaded", "gb18030", 3)]


def test_rerun_changes_nothing(rt, tmp_path):
    put(tmp_path, HOSPITAL, "outpatient_visit", "visits.csv", VISITS)
    put(tmp_path, COUNTY, "vaccination", "v.csv", "vacc_id,id_no\nx1,1\n")
    ingest(rt, tmp_path)

    def counts():
        return [
            scalar(rt, f"SELECT count() FROM {t}")
            for t in (
                "raw.outpatient_visit",
                "raw.vaccination",
                "dq.batch FINAL",
                "dq.ingest_file FINAL",
                "dq.quarantine FINAL",
            )
        ]

    before = counts()
    again = ingest(rt, tmp_path)
    assert {r.status for r in again.values()} == {"duplicate"}
    assert all("already loaded as version 1" in r.reason for r in again.values())
    assert counts() == before == [2, 1, 2, 2, 1]


def test_byte_identical_copy_is_a_duplicate(rt, tmp_path):
    put(tmp_path, HOSPITAL, "outpatient_visit", "visits.csv", VISITS)
    put(tmp_path, HOSPITAL, "outpatient_visit", "visits (1).csv", VISITS)
    results = ingest(rt, tmp_path)
    statuses = sorted((r.status, r.reason) for r in results.values())
    assert statuses[0][0] == "duplicate" and "byte-identical to" in statuses[0][1]
    assert statuses[1][0] == "loaded"
    assert scalar(rt, "SELECT count() FROM raw.outpatient_visit") == 2


def test_correction_makes_a_new_version_and_keeps_history(rt, tmp_path):
    path = put(tmp_path, HOSPITAL, "outpatient_visit", "visits.csv", VISITS)
    ingest(rt, tmp_path)
    path.write_text(VISITS.replace("abc,1", "3.00,1"), encoding="utf-8")
    r = ingest(rt, tmp_path)["outpatient_visit/2026-11-09/visits.csv"]
    assert (r.status, r.batch_version, r.rows_loaded, r.rows_quarantined) == ("loaded", 2, 3, 0)
    assert "replaces version 1" in r.reason
    assert rt.ch.query(
        "SELECT batch_version, count() FROM raw.outpatient_visit GROUP BY 1 ORDER BY 1"
    ).result_rows == [(1, 2), (2, 3)]
    assert scalar(rt, "SELECT batch_version FROM raw.current_batch") == 2
    current = rt.ch.query(
        "SELECT count() FROM raw.outpatient_visit WHERE (org_code, business_date, batch_version)"
        " IN (SELECT org_code, business_date, batch_version FROM raw.current_batch"
        " WHERE dataset = 'outpatient_visit')"
    ).result_rows[0][0]
    assert current == 3


def test_refusals_name_their_reason_and_keep_the_file(rt, tmp_path):
    stranger = make_uscc("411521", 999)
    put(tmp_path, stranger, "patient", "p.csv", "patient_id\n1\n")
    put(tmp_path, RETIRED, "patient", "p.csv", "patient_id\n1\n")
    put(tmp_path, HOSPITAL, "surgery", "s.csv", "x\n1\n")
    put(tmp_path, COUNTY, "outpatient_visit", "v.csv", VISITS)
    put(tmp_path, HOSPITAL, "patient", "p.xls", b"\xd0\xcf\x11\xe0")
    results = ingestor(rt, REGISTRY).ingest(str(tmp_path), DAY)
    reasons = {(r.org_code, r.dataset): (r.status, r.reason) for r in results}
    assert reasons[(stranger, "patient")][1].startswith(
        f"organisation '{stranger}' is not in the registry"
    )
    assert "not active on 2026-11-09" in reasons[(RETIRED, "patient")][1]
    assert "unknown dataset 'surgery'" in reasons[(HOSPITAL, "surgery")][1]
    assert (
        "is a hospital dataset; 411526 is registered as a county"
        in reasons[(COUNTY, "outpatient_visit")][1]
    )
    assert "extension the standard does not allow" in reasons[(HOSPITAL, "patient")][1]
    assert {s for s, _ in reasons.values()} == {"rejected"}
    assert scalar(rt, "SELECT countIf(status = 'rejected') FROM dq.ingest_file FINAL") == 5
    rejected = [
        o.object_name
        for o in rt.s3.list_objects(rt.settings.lake_bucket, "rejected/", recursive=True)
    ]
    assert len(rejected) == 5


def test_one_corrupt_upload_does_not_stop_the_others(rt, tmp_path):
    put(
        tmp_path, HOSPITAL, "outpatient_visit", "visits.csv.gz", gzip.compress(VISITS.encode())[:30]
    )
    put(
        tmp_path,
        OTHER,
        "outpatient_visit",
        "visits.csv.gz",
        gzip.compress(VISITS.encode(), mtime=0),
    )
    by_org = {r.org_code: r for r in ingestor(rt, REGISTRY).ingest(str(tmp_path), DAY)}
    assert by_org[HOSPITAL].status == "rejected" and "not a valid gzip" in by_org[HOSPITAL].reason
    assert by_org[OTHER].status == "loaded" and by_org[OTHER].rows_loaded == 2
    assert scalar(rt, f"SELECT count() FROM raw.outpatient_visit WHERE org_code = '{OTHER}'") == 2


def test_manifest_disagreement_is_recorded(rt, tmp_path):
    put(tmp_path, HOSPITAL, "outpatient_visit", "visits.csv", VISITS)
    put(
        tmp_path,
        HOSPITAL,
        "outpatient_visit",
        "_manifest.json",
        '{"row_count": 5, "schema_version": "1"}',
    )
    results = ingest(rt, tmp_path)
    assert results["outpatient_visit/2026-11-09/_manifest.json"].reason == (
        "manifest row_count 5 but 3 rows were read"
    )
    assert rt.ch.query("SELECT manifest_row_count, manifest_problem FROM dq.batch").result_rows == [
        (5, "manifest row_count 5 but 3 rows were read")
    ]


def test_rows_of_a_crashed_load_are_not_duplicated(rt, tmp_path):
    put(tmp_path, HOSPITAL, "outpatient_visit", "visits.csv", VISITS)
    ingestor(rt, REGISTRY)  # creates the tables
    rt.ch.command(  # a load that died after inserting rows and before committing dq.batch
        f"INSERT INTO raw.outpatient_visit (visit_id, org_code, business_date, batch_version, "
        f"source_file, source_line, received_at) VALUES ('v1', '{HOSPITAL}', '2026-11-09', 1, "
        f"'x', 2, now())"
    )
    ingest(rt, tmp_path)
    assert scalar(rt, "SELECT count() FROM raw.outpatient_visit") == 2


def test_s3_inbox_uses_object_time_as_receive_time(rt, tmp_path):
    key = f"uploads/{HOSPITAL}/outpatient_visit/2026-11-09/visits.csv"
    rt.s3.put_object(
        rt.settings.inbox_bucket, key, io.BytesIO(VISITS.encode()), len(VISITS.encode())
    )
    stat = rt.s3.stat_object(rt.settings.inbox_bucket, key)
    results = ingestor(rt, REGISTRY).ingest(f"s3://{rt.settings.inbox_bucket}/uploads", DAY)
    assert [(r.status, r.rows_loaded) for r in results] == [("loaded", 2)]
    received = rt.ch.query(
        "SELECT DISTINCT toUnixTimestamp(received_at) FROM raw.outpatient_visit"
    ).result_rows
    assert received == [(int(stat.last_modified.timestamp()),)]


def test_receive_time_is_the_file_mtime(rt, tmp_path):
    path = put(tmp_path, HOSPITAL, "outpatient_visit", "visits.csv", VISITS)
    late = dt.datetime(2026, 11, 10, 9, 30, tzinfo=dt.timezone(dt.timedelta(hours=8)))
    os.utime(path, (late.timestamp(), late.timestamp()))
    ingest(rt, tmp_path)
    assert (
        scalar(rt, "SELECT DISTINCT toString(received_at) FROM raw.outpatient_visit")
        == "2026-11-10 09:30:00"
    )


def test_cli_prints_one_json_object_per_file(tmp_path):
    inbox = tmp_path / "inbox"
    put(inbox, HOSPITAL, "outpatient_visit", "visits.csv", VISITS)
    put(inbox, make_uscc("411521", 999), "patient", "p.csv", "patient_id\n1\n")
    registry = tmp_path / "registry.csv"
    registry.write_text(registry_csv(list(REGISTRY.organisations.values())), encoding="utf-8")
    env = {
        **os.environ,
        "HQLAKE_HOME": str(tmp_path / "home"),
        "HQLAKE_ORG_REGISTRY": str(registry),
    }
    out = subprocess.run(
        [
            Path(sys.executable).with_name("hqlake"),
            "ingest",
            "--inbox",
            inbox,
            "--date",
            "2026-11-09",
            "--format",
            "json",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert out.returncode == 0, out.stderr
    objects = [json.loads(line) for line in out.stdout.splitlines()]
    assert sorted(o["status"] for o in objects) == ["loaded", "rejected"]
    assert set(objects[0]) == {
        "org_code",
        "dataset",
        "business_date",
        "file",
        "status",
        "reason",
        "rows_read",
        "rows_loaded",
        "rows_quarantined",
        "batch_version",
    }
    loaded = next(o for o in objects if o["status"] == "loaded")
    assert (loaded["rows_read"], loaded["rows_loaded"], loaded["rows_quarantined"]) == (3, 2, 1)
