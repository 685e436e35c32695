"""The inbox never leaves the inbox: links, special files and bad names are refused, recorded
and never read (real SeaweedFS + chDB)."""

import io
import os
import socket
import stat
import uuid

import pyarrow.parquet as pq
import pytest

from infra.pipeline import ingestor
from ingest.inbox import list_batch_folder, list_inbox, object_problem, printable
from tests.ingest.test_pipeline import DAY, HOSPITAL, OTHER, REGISTRY, VISITS, put

pytestmark = pytest.mark.integration

BATCH = f"{HOSPITAL}/outpatient_visit/{DAY}"
LINK = "is a symbolic link; links are never followed, upload the file itself"


def secret(tmp_path):
    """A file outside the inbox that would load as a valid upload if it were followed."""
    marker = f"s3cr3t-{uuid.uuid4().hex}"
    path = tmp_path / "outside" / "secret.csv"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(VISITS.replace("p1,", f"{marker},"), encoding="utf-8")
    return marker, path


def ingest(rt, inbox):
    return ingestor(rt, REGISTRY).ingest(str(inbox), DAY)


def logged(rt):
    return {
        file: (status, reason, size, lake_object)
        for file, status, reason, size, lake_object in rt.ch.query(
            "SELECT file, status, reason, size, lake_object FROM dq.ingest_file FINAL"
        ).result_rows
    }


def assert_nowhere(rt, marker, results):
    """The marker is in no lake object (Parquet read back as values), no warehouse table of
    raw and dq, and no result."""
    for obj in rt.s3.list_objects(rt.settings.lake_bucket, recursive=True):
        data = rt.s3.get_object(rt.settings.lake_bucket, obj.object_name).read()
        if obj.object_name.endswith(".parquet"):
            data = str(pq.read_table(io.BytesIO(data)).to_pylist()).encode()
        assert marker.encode() not in data, obj.object_name
    tables = rt.ch.query(
        "SELECT database, name FROM system.tables WHERE database IN ('raw', 'dq')"
        " AND engine NOT LIKE '%View'"
    ).result_rows
    for database, table in tables:
        dump = rt.ch.query(f"SELECT * FROM {database}.`{table}`").result_rows
        assert marker not in str(dump), f"{database}.{table}"
    assert marker not in str([r.__dict__ for r in results])


def test_a_linked_file_is_refused_and_nothing_it_points_to_is_read(rt, tmp_path):
    marker, target = secret(tmp_path)
    inbox = tmp_path / "inbox"
    put(inbox, HOSPITAL, "outpatient_visit", "good.csv", VISITS)
    batch = inbox / BATCH
    (batch / "visits.csv").symlink_to(target)  # would load: a valid CSV
    (batch / "environ.txt").symlink_to(target)  # would land in rejected/
    results = ingest(rt, inbox)
    by_file = {r.file: r for r in results}
    for name in ("visits.csv", "environ.txt"):
        r = by_file[f"{BATCH}/{name}"]
        assert r.status == "rejected" and r.batch_version == 0
        assert r.reason == f"{name} {LINK}"
        assert logged(rt)[f"{BATCH}/{name}"] == ("rejected", r.reason, 0, "")
    assert by_file[f"{BATCH}/good.csv"].status == "loaded"
    assert rt.ch.query("SELECT count() FROM raw.outpatient_visit").result_rows == [(2,)]
    assert_nowhere(rt, marker, results)


@pytest.mark.parametrize("level", ["organisation", "dataset", "date"])
def test_a_linked_folder_is_refused_and_not_entered(rt, tmp_path, level):
    marker, target = secret(tmp_path)
    elsewhere = tmp_path / "elsewhere"
    put(elsewhere, HOSPITAL, "outpatient_visit", "visits.csv", target.read_bytes())
    inbox = tmp_path / "inbox"
    put(inbox, OTHER, "outpatient_visit", "visits.csv", VISITS)
    parts = {"organisation": 1, "dataset": 2, "date": 3}[level]
    relative = BATCH.split("/")[:parts]
    link = inbox.joinpath(*relative)
    link.parent.mkdir(parents=True, exist_ok=True)
    link.symlink_to(elsewhere.joinpath(*relative), target_is_directory=True)
    results = ingest(rt, inbox)
    refused = [r for r in results if r.org_code == HOSPITAL]
    assert [(r.file, r.status, r.reason) for r in refused] == [
        (
            "/".join(relative),
            "rejected",
            f"{relative[-1]} {LINK}",
        )
    ]
    assert [r.status for r in results if r.org_code == OTHER] == ["loaded"]
    assert_nowhere(rt, marker, results)


def test_a_symlinked_inbox_root_is_the_operators_choice(rt, tmp_path):
    inbox = tmp_path / "inbox"
    put(inbox, HOSPITAL, "outpatient_visit", "visits.csv", VISITS)
    (tmp_path / "current").symlink_to(inbox, target_is_directory=True)
    assert [r.status for r in ingest(rt, tmp_path / "current")] == ["loaded"]


@pytest.mark.timeout(60)
def test_special_entries_of_a_batch_folder_are_recorded_never_opened(rt, tmp_path, monkeypatch):
    inbox = tmp_path / "inbox"
    put(inbox, HOSPITAL, "outpatient_visit", "visits.csv", VISITS)
    batch = inbox / BATCH
    os.mkfifo(batch / "pipe.csv")  # opening it for reading would block
    (batch / "sub").mkdir()
    (batch / "sub" / "more.csv").write_text(VISITS, encoding="utf-8")
    (batch / "gone.csv").symlink_to(tmp_path / "does-not-exist.csv")
    monkeypatch.chdir(batch)  # a socket path must be short
    sock = socket.socket(socket.AF_UNIX)
    sock.bind("sock.csv")
    try:
        results = ingest(rt, inbox)
    finally:
        sock.close()
    reasons = {r.file.rsplit("/", 1)[1]: (r.status, r.reason) for r in results}
    assert reasons == {
        "visits.csv": ("loaded", "1 rows quarantined"),
        "pipe.csv": ("rejected", "pipe.csv is a named pipe (FIFO), not a regular file"),
        "sub": (
            "rejected",
            "sub is a folder; a batch folder holds files only (org/dataset/date/file)",
        ),
        "gone.csv": ("rejected", f"gone.csv {LINK}"),
        "sock.csv": ("rejected", "sock.csv is a socket, not a regular file"),
    }
    assert {f.rsplit("/", 1)[1]: s for f, (s, *_) in logged(rt).items()} == {
        k: s for k, (s, _) in reasons.items()
    }
    assert rt.ch.query("SELECT count() FROM raw.outpatient_visit").result_rows == [(2,)]


def test_a_name_with_control_characters_is_refused_and_shown_escaped(rt, tmp_path):
    inbox = tmp_path / "inbox"
    put(inbox, HOSPITAL, "outpatient_visit", "visits\n.csv", VISITS)
    put(inbox, HOSPITAL, "outpatient_visit", "a\x1b[31m.csv", VISITS)
    put(inbox, HOSPITAL, "outpatient_visit", "evil\u202ecsv.exe", VISITS)
    results = ingest(rt, inbox)
    assert sorted((r.file, r.status, r.reason, r.size) for r in results) == [
        (
            f"{BATCH}/{shown}",
            "rejected",
            f"{shown} has control or invisible characters in its name",
            0,
        )
        for shown in sorted(["visits\\x0a.csv", "a\\x1b[31m.csv", "evil\\u202ecsv.exe"])
    ]
    assert list(rt.s3.list_objects(rt.settings.lake_bucket, recursive=True)) == []


def test_a_name_that_is_not_utf8_is_refused(rt, tmp_path):
    inbox = tmp_path / "inbox"
    put(inbox, HOSPITAL, "outpatient_visit", "visits.csv", VISITS)
    folder = os.fsencode(inbox / BATCH)
    with open(os.path.join(folder, b"v\xff.csv"), "wb") as handle:
        handle.write(VISITS.encode())
    results = {r.file.rsplit("/", 1)[1]: (r.status, r.reason) for r in ingest(rt, inbox)}
    assert results["v\\xff.csv"] == ("rejected", "v\\xff.csv has a name that is not valid UTF-8")
    assert results["visits.csv"][0] == "loaded"


def test_a_file_swapped_for_a_link_after_the_listing_is_not_read(tmp_path):
    marker, target = secret(tmp_path)
    path = put(tmp_path / "inbox", HOSPITAL, "outpatient_visit", "visits.csv", VISITS)
    (listed,) = list_inbox(str(tmp_path / "inbox"), DAY)
    path.unlink()
    path.symlink_to(target)
    with pytest.raises(Exception, match="symbolic link") as raised:
        listed.read()
    assert marker not in str(raised.value)


def test_s3_object_names_outside_the_layout_are_recorded(rt):
    bucket = rt.settings.inbox_bucket
    names = {
        "visits.csv": "loaded",
        "sub/more.csv": "is inside a sub-folder of the batch folder",
        "a\x01b.csv": "has control or invisible characters in its object name",
        "line\nbreak.csv": "has control or invisible characters in its object name",
        # SeaweedFS stores a backslash as a folder separator, MinIO and AWS keep it
        "win\\visits.csv": "is inside a sub-folder of the batch folder",
    }
    keys = [f"uploads/{BATCH}/{name}" for name in names]
    keys.append(f"uploads/{OTHER}/outpatient_visit/{DAY}")  # an object where a folder belongs
    for key in keys:
        rt.s3.put_object(bucket, key, io.BytesIO(VISITS.encode()), len(VISITS.encode()))
    try:
        results = ingestor(rt, REGISTRY).ingest(f"s3://{bucket}/uploads", DAY)
    finally:  # one by one: a multi-object delete cannot carry \x01 in its XML body
        for obj in rt.s3.list_objects(bucket, recursive=True):
            rt.s3.remove_object(bucket, obj.object_name)
    (misplaced,) = [r for r in results if r.org_code == OTHER]
    assert (misplaced.file, misplaced.reason) == (
        f"{OTHER}/outpatient_visit/{DAY}",
        f"{DAY} is a file, not a date folder",
    )
    by_name = {r.file.split("/", 3)[3]: r for r in results if r.org_code == HOSPITAL}
    shown = {printable(n).replace("\\\\", "/"): why for n, why in names.items()}
    assert set(by_name) == set(shown)
    for name, why in shown.items():
        r = by_name[name]
        if why == "loaded":
            assert (r.status, r.rows_loaded) == ("loaded", 2)
        else:
            assert r.status == "rejected" and r.size == 0 and why in r.reason, r.reason
    rejected = list(rt.s3.list_objects(rt.settings.lake_bucket, "rejected/", recursive=True))
    assert rejected == []
    assert len(logged(rt)) == len(names) + 1


@pytest.mark.parametrize(
    ("parts", "problem"),
    [
        ([HOSPITAL, "outpatient_visit", str(DAY), "visits.csv"], None),
        ([HOSPITAL, "outpatient_visit", str(DAY), ".."], "has a '..' segment"),
        ([HOSPITAL, "..", str(DAY), "x.csv"], "has a '..' segment"),
        ([HOSPITAL, "outpatient_visit", str(DAY), ".", "x.csv"], "has a '.' segment"),
        ([HOSPITAL, "outpatient_visit", str(DAY), "a\\b.csv"], "has a backslash"),
        ([HOSPITAL, "", str(DAY), "x.csv"], "has an empty segment"),
        ([HOSPITAL, "outpatient_visit", str(DAY), "x\u2028.csv"], "control or invisible"),
        ([HOSPITAL, "outpatient_visit", str(DAY), "d", "x.csv"], "inside a sub-folder"),
    ],
)
def test_object_names_that_minio_and_aws_keep_are_refused(parts, problem):
    """SeaweedFS normalises `.`, `..` and `\\` away before listing; MinIO keeps `\\` and AWS
    keeps all three (and minio-py refuses to GET a `..` name): the rule is checked directly."""
    found = object_problem(parts)
    assert found is None if problem is None else problem in (found or ""), found


@pytest.mark.skipif(os.geteuid() != 0, reason="making a device node needs root")
def test_a_device_in_a_batch_folder_is_recorded_never_opened(rt, tmp_path):
    inbox = tmp_path / "inbox"
    put(inbox, HOSPITAL, "outpatient_visit", "visits.csv", VISITS)
    os.mknod(inbox / BATCH / "zero.csv", stat.S_IFCHR | 0o600, os.makedev(1, 5))  # /dev/zero
    reasons = {r.file.rsplit("/", 1)[1]: (r.status, r.reason) for r in ingest(rt, inbox)}
    assert reasons["zero.csv"] == ("rejected", "zero.csv is a device, not a regular file")
    assert reasons["visits.csv"][0] == "loaded"


def test_refused_entries_are_not_new_on_every_late_arrivals_pass(rt, tmp_path):
    from infra.pipeline import _has_unseen_files

    _, target = secret(tmp_path)
    inbox = tmp_path / "inbox"
    put(inbox, HOSPITAL, "outpatient_visit", "visits.csv", VISITS)
    (inbox / BATCH / "linked.csv").symlink_to(target)
    (inbox / BATCH / "sub").mkdir()
    ingest(rt, inbox)
    assert not _has_unseen_files(rt, str(inbox), DAY)


def test_a_batch_folder_is_listed_as_the_inbox_lists_it(tmp_path):
    """`list_batch_folder` (hqlake check): `<dataset>/<file>` listed with the inbox's paths
    and refusals; a linked file or dataset folder is refused and never read."""
    marker, target = secret(tmp_path)
    folder = tmp_path / "batch"
    (folder / "outpatient_visit").mkdir(parents=True)
    (folder / "outpatient_visit" / "visits.csv").write_text(VISITS, encoding="utf-8")
    (folder / "outpatient_visit" / "linked.csv").symlink_to(target)
    (folder / "patient").symlink_to(target.parent, target_is_directory=True)
    (folder / "_notes").mkdir()  # reserved, as at the top of an inbox
    listed = {f.path: f for f in list_batch_folder(str(folder), HOSPITAL, DAY)}
    assert sorted(listed) == [f"{BATCH}/linked.csv", f"{BATCH}/visits.csv", f"{HOSPITAL}/patient"]
    assert listed[f"{BATCH}/visits.csv"].read() == VISITS.encode()
    assert listed[f"{BATCH}/visits.csv"].refusal is None
    for path in (f"{BATCH}/linked.csv", f"{HOSPITAL}/patient"):
        assert listed[path].refusal == LINK
        with pytest.raises(Exception, match="symbolic link") as raised:
            listed[path].read()
        assert marker not in str(raised.value)
