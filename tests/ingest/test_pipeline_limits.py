"""Hostile uploads through the real ingest (SeaweedFS + chDB): caps refuse them with short
reasons and the other files of the day still load; records keep their lines (issue 11,
classes 5 and 9). Memory of the gzip bomb is measured in tests/ingest/test_readers.py."""

import json
import zlib

import pytest

from infra.pipeline import ingestor
from tests.ingest.test_pipeline import DAY, HOSPITAL, OTHER, REGISTRY, VISITS, put

pytestmark = pytest.mark.integration

HEADER, *ROWS = VISITS.splitlines()


def _gzip_bomb() -> bytes:
    """1 MB of gzip that inflates to 1 GiB of zeros."""
    packer = zlib.compressobj(9, zlib.DEFLATED, 31)
    block = bytes(1 << 20)
    return b"".join([packer.compress(block) for _ in range(1024)] + [packer.flush()])


def test_hostile_uploads_are_refused_with_short_reasons_and_the_rest_loads(rt, tmp_path):
    # A header that matches the contract, then 100,000 unknown columns (1.3 MB).
    wide = ",".join([HEADER] + [f"x{i}" for i in range(100_000)]) + "\n"
    wide += ",".join([ROWS[0]] + ["1"] * 100_000) + "\n"
    put(tmp_path, HOSPITAL, "outpatient_visit", "bomb.csv.gz", _gzip_bomb())
    put(tmp_path, HOSPITAL, "outpatient_visit", "wide.csv", wide)
    # U+2028 is legal inside a JSON string: the record stays one record.
    records = [dict(zip(HEADER.split(","), row.split(","), strict=True)) for row in ROWS]
    records[0]["diagnosis_name"] = "高血压\u2028(复诊)"
    jsonl = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
    put(tmp_path, HOSPITAL, "outpatient_visit", "visits.jsonl", jsonl)
    # A quoted line break in v1's department name: v2 starts on line 4, v3 on line 5.
    csv_text = VISITS.replace(",内科,d1,I10", ',"内科\n(门诊)",d1,I10', 1)
    put(tmp_path, OTHER, "outpatient_visit", "visits.csv", csv_text)

    results = {
        r.file.rsplit("/", 1)[1]: r for r in ingestor(rt, REGISTRY).ingest(str(tmp_path), DAY)
    }

    bomb, wide_file = results["bomb.csv.gz"], results["wide.csv"]
    assert bomb.status == "rejected"
    assert bomb.reason == (
        "bomb.csv.gz decompresses to more than 100 times its size "
        "(cap HQLAKE_MAX_COMPRESSION_RATIO = 100)"
    )
    assert wide_file.status == "rejected"
    assert wide_file.reason == (
        "wide.csv has 100,016 columns in its header, more than the cap HQLAKE_MAX_COLUMNS = 500"
    )
    logged = rt.ch.query("SELECT max(length(reason)) FROM dq.ingest_file FINAL").result_rows
    assert logged[0][0] < 500

    assert (results["visits.jsonl"].status, results["visits.jsonl"].rows_loaded) == ("loaded", 2)
    loaded = rt.ch.query(
        "SELECT org_code, visit_id, source_line, dept_name, diagnosis_name"
        " FROM raw.outpatient_visit ORDER BY org_code, visit_id"
    ).result_rows
    assert sorted(loaded) == sorted(
        [
            (HOSPITAL, "v1", 1, "内科", "高血压\u2028(复诊)"),
            (HOSPITAL, "v2", 2, "急诊科", "上呼吸道感染"),
            (OTHER, "v1", 2, "内科\n(门诊)", "高血压"),
            (OTHER, "v2", 4, "急诊科", "上呼吸道感染"),
        ]
    )
    quarantined = rt.ch.query(
        "SELECT org_code, source_line, record_key FROM dq.quarantine ORDER BY org_code"
    ).result_rows
    assert sorted(quarantined) == sorted([(HOSPITAL, 3, "v3"), (OTHER, 5, "v3")])


def test_a_file_over_the_size_cap_is_refused_before_it_is_read(rt, tmp_path):
    from dataclasses import replace

    from ingest.readers import ReadLimits

    put(tmp_path, HOSPITAL, "outpatient_visit", "big.csv", VISITS + "v9,p9\n" * 200)
    put(tmp_path, OTHER, "outpatient_visit", "visits.csv", VISITS)
    limits = replace(ReadLimits(), max_file_bytes=len(VISITS.encode()) + 10)
    results = {
        r.org_code: r
        for r in ingestor(rt, REGISTRY, limits=limits).ingest(str(tmp_path), DAY)
        if r.file.endswith(".csv")
    }
    big = results[HOSPITAL]
    assert big.status == "rejected" and big.size == 0 and not big.lake_object
    assert "more than the cap HQLAKE_MAX_FILE_BYTES" in big.reason
    assert results[OTHER].status == "loaded"
    s3 = rt.s3.list_objects(rt.settings.lake_bucket, recursive=True)
    assert not [o.object_name for o in s3 if HOSPITAL in o.object_name]
