"""The lake keeps every file: object keys are unique per file, and the lake holds, per file,
the rows the warehouse holds (real SeaweedFS + chDB)."""

import gzip
import hashlib
import io
import json
from collections import Counter

import pyarrow.parquet as pq
import pytest

from infra.pipeline import ingestor
from ingest.lake import lake_name
from tests.ingest.test_pipeline import DAY, HOSPITAL, OTHER, REGISTRY, VISITS, put

pytestmark = pytest.mark.integration

BASE = f"outpatient_visit/{DAY}/{HOSPITAL}/v1"
SOURCE = f"{HOSPITAL}/outpatient_visit/{DAY}"


def with_note(csv: str) -> str:
    """The CSV with an unknown column, so that its file also has schema drift."""
    return "\n".join(line + ",n" if line else line for line in csv.split("\n"))


def jsonl(rows: list[dict]) -> str:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)


def lake_rows(rt, prefix: str) -> Counter:
    """Rows per source_file of every Parquet object under `prefix`."""
    counts: Counter = Counter()
    for obj in rt.s3.list_objects(rt.settings.lake_bucket, prefix, recursive=True):
        data = rt.s3.get_object(rt.settings.lake_bucket, obj.object_name).read()
        counts.update(pq.read_table(io.BytesIO(data)).column("source_file").to_pylist())
    return counts


def warehouse_rows(rt, sql: str) -> Counter:
    return Counter(dict(rt.ch.query(sql).result_rows))


def test_files_sharing_a_stem_keep_their_own_lake_objects(rt, tmp_path):
    put(tmp_path, HOSPITAL, "outpatient_visit", "visits.a.csv", with_note(VISITS))
    second = VISITS.replace("v1,", "v4,").replace("v2,", "v5,").replace("v3,", "v6,")
    second = with_note(second.replace("20.00,20", "x,20"))
    put(tmp_path, HOSPITAL, "outpatient_visit", "visits.b.csv", second)
    put(
        tmp_path,
        HOSPITAL,
        "outpatient_visit",
        "visits.jsonl",
        jsonl(
            [
                {"visit_id": "v7", "visit_time": "2026-11-09 11:00:00", "note": "n"},
                {"visit_id": "v8", "visit_time": "not a time", "note": "n"},
                {"visit_id": "v9", "visit_time": "2026-11-09 12:00:00", "note": "n"},
            ]
        ),
    )
    results = ingestor(rt, REGISTRY).ingest(str(tmp_path), DAY)
    names = ("visits.a.csv", "visits.b.csv", "visits.jsonl")
    by_file = {r.file: r for r in results}
    assert sorted(by_file) == [f"{SOURCE}/{n}" for n in names]
    for r in results:
        assert r.status == "loaded" and r.rows_read == r.rows_loaded + r.rows_quarantined

    typed = lake_rows(rt, f"raw/typed/{BASE}/")
    loaded = warehouse_rows(
        rt, "SELECT source_file, count() FROM raw.outpatient_visit GROUP BY source_file"
    )
    expected = {"visits.a.csv": (2, 1), "visits.b.csv": (1, 2), "visits.jsonl": (2, 1)}
    assert typed == loaded == Counter({f"{SOURCE}/{n}": good for n, (good, _) in expected.items()})
    quarantine = lake_rows(rt, f"quarantine/{BASE}/")
    quarantined = warehouse_rows(
        rt, "SELECT source_file, count() FROM dq.quarantine FINAL GROUP BY source_file"
    )
    assert (
        quarantine == quarantined == Counter({f"{SOURCE}/{n}": q for n, (_, q) in expected.items()})
    )
    for r in results:
        assert typed[r.file] == r.rows_loaded and quarantine[r.file] == r.rows_quarantined

    objects = {o.object_name for o in rt.s3.list_objects(rt.settings.lake_bucket, recursive=True)}
    for n in names:
        assert {
            f"raw/original/{BASE}/{n}",
            f"raw/typed/{BASE}/{n}.parquet",
            f"quarantine/{BASE}/{n}.parquet",
            f"drift/{BASE}/{n}.parquet",
        } <= objects


def test_lake_names_are_distinct_and_one_segment():
    names = ["visits.csv", "门诊 就诊#1.csv", "a%2Fb.csv", "a/b.csv", "..", "a b.csv", "a+b.csv"]
    encoded = [lake_name(n) for n in names]
    assert len(set(encoded)) == len(names)
    assert all("/" not in e and e not in (".", "..") for e in encoded)
    assert encoded[:2] == ["visits.csv", "门诊%20就诊%231.csv"]


def test_a_file_refused_again_with_other_bytes_keeps_both_copies(rt, tmp_path):
    """Each rejected record points at the bytes it refused, also across batch versions."""
    path = put(tmp_path, HOSPITAL, "outpatient_visit", "visits.csv.gz", b"not gzip, first")
    put(tmp_path, HOSPITAL, "outpatient_visit", "good.csv", VISITS)
    ingestor(rt, REGISTRY).ingest(str(tmp_path), DAY)
    path.write_bytes(gzip.compress(VISITS.encode())[:25])
    ingestor(rt, REGISTRY).ingest(str(tmp_path), DAY)
    rejected = rt.ch.query(
        "SELECT batch_version, sha256, lake_object FROM dq.ingest_file FINAL"
        " WHERE status = 'rejected' ORDER BY batch_version"
    ).result_rows
    assert [v for v, _, _ in rejected] == [1, 2]
    assert len({key for _, _, key in rejected}) == 2
    for _, sha256, lake_object in rejected:
        key = lake_object.removeprefix(f"s3://{rt.settings.lake_bucket}/")
        data = rt.s3.get_object(rt.settings.lake_bucket, key).read()
        assert hashlib.sha256(data).hexdigest() == sha256


def test_a_name_too_long_for_a_key_is_that_files_matter_not_the_days(rt, tmp_path):
    """82 '+' percent-encode to 246 characters: the object store refuses such a key, which
    once stopped every organisation's ingest on every re-run."""
    long_name = "visits " + "+" * 82 + ".csv"
    put(tmp_path, HOSPITAL, "outpatient_visit", long_name, VISITS)
    put(tmp_path, HOSPITAL, "patient", "，" * 83 + ".txt", "x")  # refused, kept in rejected/
    put(tmp_path, OTHER, "outpatient_visit", "visits.csv", VISITS)
    results = {
        r.file.rsplit("/", 1)[1]: r for r in ingestor(rt, REGISTRY).ingest(str(tmp_path), DAY)
    }
    assert results[long_name].status == "loaded"
    assert results["，" * 83 + ".txt"].status == "rejected"
    assert results["visits.csv"].status == "loaded"
    names = [o.object_name for o in rt.s3.list_objects(rt.settings.lake_bucket, recursive=True)]
    assert max(len(n.rsplit("/", 1)[1]) for n in names) <= 128
    assert lake_name(long_name) != lake_name(long_name + "+")
    committed = rt.ch.query("SELECT org_code, dataset FROM dq.batch FINAL").result_rows
    assert sorted(committed) == sorted(  # every batch of the day commits
        [(HOSPITAL, "outpatient_visit"), (HOSPITAL, "patient"), (OTHER, "outpatient_visit")]
    )
