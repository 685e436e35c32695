"""The portal's snapshot on a real scored sample city (ingested, validated and scored in the
session's chDB, with an approved appeal, an open one, a waiver and a signed month): every
reader equals what the warehouse readers give for the same date; generations switch
atomically and a reader opened on an old one keeps reading it; no snapshot file holds a raw
identity number, name or phone of the city."""

from __future__ import annotations

import datetime as dt
import gzip
import os
import threading
from pathlib import Path

import pytest

from contracts.timezone import TZ

pytestmark = pytest.mark.integration

START = dt.date(2026, 11, 9)
DAYS = 2
DATES = [START + dt.timedelta(days=i) for i in range(DAYS)]
MONTH = START.replace(day=1)
OFFICER = "qc.wang"


def _failed_line(ch, day):
    """(org_code, explanation line) of the failed result that cost the most points on `day`."""
    from expectations.scoring.read import read_explanation, read_scores

    best = None
    for s in read_scores(ch, day):
        for line in read_explanation(ch, s["org_code"], day):
            failed = line["status"] == "failed" and line["cause"] == "failed"
            if failed and line["points"] and (best is None or line["points"] > best[1]["points"]):
                best = (s["org_code"], line)
    assert best is not None, "the sample city has failed results"
    return best


def build_scored_city(
    config, seaweed, folder: Path, mp: pytest.MonkeyPatch, loop: bool = True
) -> dict:
    """A tiny sample city over DATES, ingested, validated and scored in the session's chDB
    (emptied first), its registry the settings' one (through `mp`), with the quality loop
    on it unless `loop` is False: an appeal approved, one left open, a waiver added, the month
    signed. The portal's tests build their inputs on it."""
    from minio.deleteobjects import DeleteObject

    from contracts.registry import load_registry
    from expectations.validate import validate_date
    from infra import appeals, pipeline
    from infra.pipeline import ingestor
    from infra.runtime import Runtime, warehouse
    from infra.settings import settings
    from samplecity import generate
    from tests.conftest import reset_warehouse

    ch = warehouse(config)
    reset_warehouse(ch)
    s3 = seaweed.client()
    for bucket in (config.lake_bucket, config.inbox_bucket):
        objects = [DeleteObject(o.object_name) for o in s3.list_objects(bucket, recursive=True)]
        assert not list(s3.remove_objects(bucket, objects))
    rt = Runtime(config, s3, ch)
    inbox = folder / "inbox"
    generate(inbox, START, DAYS, hospitals=4, counties=2, scale=0.003, faults="default", seed=11)
    mp.setenv("HQLAKE_ORG_REGISTRY", str(inbox / "_registry.csv"))
    settings.cache_clear()
    registry = load_registry(inbox / "_registry.csv")
    loader = ingestor(rt, registry)
    with pipeline.session(rt):
        for day in DATES:
            loader.ingest(str(inbox), day)
            assert validate_date(ch, registry, day).errors == 0
            pipeline.score(day)
        if not loop:
            return {"ch": ch, "rt": rt, "registry": registry, "inbox": inbox}
        day = DATES[0]
        org, line = _failed_line(ch, day)
        at = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(10), TZ)
        approved = appeals.submit_appeal(
            org,
            day,
            line["dataset"],
            line["rule_id"],
            "编码映射未同步 110101199003077774",
            "his",
            now=at,
        )
        appeals.decide_appeal(
            approved["appeal_id"],
            "approved",
            "ok 13800138000",
            OFFICER,
            now=at + dt.timedelta(hours=2),
        )
        org2, line2 = _failed_line(ch, DATES[1])
        opened = appeals.submit_appeal(
            org2,
            DATES[1],
            line2["dataset"],
            line2["rule_id"],
            "<b>still open</b>",
            "his",
            now=at + dt.timedelta(days=1),
        )
        waiver = appeals.add_waiver(
            "required", DATES[1], None, "HIS outage", OFFICER, peer_group="secondary", now=at
        )
        signed = pipeline.sign_acceptance(MONTH, OFFICER)
    return {
        "ch": ch,
        "rt": rt,
        "registry": registry,
        "inbox": inbox,
        "approved": approved,
        "open": opened,
        "waiver": waiver,
        "signed": signed,
    }


@pytest.fixture(scope="module")
def city(config, seaweed, tmp_path_factory):
    from infra.settings import settings

    with pytest.MonkeyPatch.context() as mp:
        try:
            yield build_scored_city(config, seaweed, tmp_path_factory.mktemp("snapcity"), mp)
        finally:
            settings.cache_clear()


@pytest.fixture(scope="module")
def published(city, tmp_path_factory):
    from expectations.publish.snapshot import Snapshot, export_snapshot

    folder = tmp_path_factory.mktemp("snapshot")
    name = export_snapshot(city["ch"], city["registry"], folder)
    snap = Snapshot.open(folder)
    assert snap is not None and snap.generation == name
    return folder, snap


def _identities(ch) -> set[str]:
    """Every raw identity number, name and phone of the city's uploads."""
    values: set[str] = set()
    for table, columns in (
        ("raw.patient", ("id_no", "name", "phone")),
        ("raw.health_record", ("id_no", "name")),
        ("raw.vaccination", ("id_no",)),
        ("raw.death_registration", ("id_no", "name")),
    ):
        existing = {r[0] for r in ch.query(f"DESCRIBE TABLE {table}").result_rows}
        for column in columns:
            if column in existing:
                rows = ch.query(f"SELECT DISTINCT toString({column}) FROM {table}").result_rows
                values |= {r[0] for r in rows if r[0] and len(r[0]) >= 2}
    return values


def test_every_reader_equals_the_warehouse_readers(city, published):
    from expectations.programme.appeals import list_appeals, list_waivers
    from expectations.programme.read import Programme
    from expectations.programme.signoff import read_signature
    from expectations.publish.snapshot import (
        TREND_DAYS,
        masked_failures,
        masked_texts,
        read_failure_changes,
        scored_dates,
    )
    from expectations.scoring import read

    ch, registry = city["ch"], city["registry"]
    _, snap = published
    assert snap.dates() == scored_dates(ch) == DATES
    assert snap.months() == [MONTH]
    assert snap.registry() == registry
    programme = Programme(ch, registry)
    compared = 0
    for day in DATES:
        scores = read.read_scores(ch, day)
        assert scores and snap.scores(day) == scores
        for row in scores:
            code = row["org_code"]
            assert snap.trend(code, day) == read.trend(ch, code, day, TREND_DAYS)
            failures = read.failures(ch, code, day)
            assert snap.failures(code, day) == masked_failures(failures)
            assert snap.explanation(code, day) == read.read_explanation(ch, code, day)
            standing = programme.standing(code, day)
            got = snap.standing(code, day)
            assert got.waived == masked_texts(standing.waived, ("why",))
            assert got.appeals == masked_texts(standing.appeals, ("reason", "comment"))
            assert snap.failure_changes(code, day) == read_failure_changes(ch, code, day)
            compared += len(failures)
    assert compared > 0
    assert snap.appeals() == masked_texts(list_appeals(ch), ("reason", "comment"))
    assert snap.appeals(city["open"]["org_code"]) == masked_texts(
        list_appeals(ch, org_code=city["open"]["org_code"]), ("reason", "comment")
    )
    assert snap.waivers() == masked_texts(list_waivers(ch), ("reason", "end_reason"))
    assert len(snap.appeals()) == 2 and len(snap.waivers()) == 1
    assert snap.acceptance(MONTH) == read.read_acceptance(ch, MONTH)
    assert snap.signature(MONTH) == read_signature(ch, MONTH) == city["signed"]
    assert snap.signature(dt.date(2026, 10, 1)) is None
    sheet = snap.acceptance_sheet(MONTH, city["signed"].version)
    assert sheet is not None and sheet.read_bytes()[:2] == b"PK"
    assert snap.acceptance_sheet(MONTH, city["signed"].version + 1) is None


def test_an_approved_appeal_is_on_the_page_of_its_day(city, published):
    _, snap = published
    org, day = city["approved"]["org_code"], city["approved"]["business_date"]
    standing = snap.standing(org, day)
    assert [w["waived_by"] for w in standing.waived] == [city["approved"]["appeal_id"]]
    assert [a["status"] for a in standing.appeals] == ["approved"]
    assert snap.appeals(org)[0]["reason"] == "编码映射未同步 110*************74"


def test_failing_keys_are_the_attachment_keys_masked_and_paged(city, published):
    from contracts.pii import mask_key, mask_text
    from expectations.publish.feedback import _record_issues

    ch = city["ch"]
    _, snap = published
    seen = 0
    for day in DATES:
        run = ch.query(
            "SELECT run_id FROM dq.current_run WHERE business_date = {d:Date}",
            parameters={"d": day},
        ).result_rows[0][0]
        for row in snap.scores(day):
            code = row["org_code"]
            waived = sorted(
                f"{w['dataset']}|{w['rule_id']}" for w in snap.standing(code, day).waived
            )
            issues, total = _record_issues(ch, day, run, code, waived)
            rows, n = snap.failing_keys(code, day, limit=10**9)
            assert n == total
            assert rows == [
                i
                | {
                    "record_key": mask_key(i["dataset"], i["record_key"]),
                    "detail": mask_text(i["detail"] or ""),
                }
                for i in issues
            ]
            if n > 3:
                page, same = snap.failing_keys(code, day, offset=2, limit=2)
                assert (page, same) == (rows[2:4], n)
                rule = rows[-1]["rule_id"]
                of_rule, count = snap.failing_keys(code, day, rule_id=rule, limit=10**9)
                assert of_rule == [r for r in rows if r["rule_id"] == rule] and count == len(
                    of_rule
                )
            seen += n
    assert seen > 0
    assert snap.failing_keys("../../etc", DATES[0]) == ([], 0)


def test_no_snapshot_file_holds_personal_data(city, published):
    folder, _ = published
    identities = {v for v in _identities(city["ch"]) if len(v) >= 11 or not v.isascii()}
    numbers = {v for v in identities if v.isdigit() or v[:-1].isdigit()}
    assert len(numbers) > 10
    texts = []
    for path in folder.rglob("*"):
        if path.is_file() and path.suffix != ".xlsx":
            data = path.read_bytes()
            texts.append(gzip.decompress(data) if path.suffix == ".gz" else data)
    blob = b"\n".join(texts).decode()
    assert "110101199003077774" not in blob  # the appeal's reason quoted one
    assert [n for n in numbers if n in blob] == []


def test_rules_and_calendar(city, published):
    from expectations.rules.rulebase import rulebase

    _, snap = published
    rules = snap.rules()
    assert [r["rule_id"] for r in rules] == [r.id for r in rulebase().rules]
    failed = [r for r in rules if r["recent_results_failed"]]
    assert failed and all(r["recent_orgs_failed"] >= 1 for r in failed)
    assert all(r["description_zh"] and r["fix_hint_zh"] for r in rules)
    org = snap.scores(DATES[0])[0]["org_code"]
    calendar = snap.calendar(org, MONTH)
    assert calendar and all(set(days) <= set(DATES) for days in calendar.values())
    assert any(cell["received"] for days in calendar.values() for cell in days.values())


def test_whatif_inputs_give_the_warehouse_answer(city, published):
    from expectations.rules.rulebase import rulebase
    from expectations.scoring.config import load_scoring_config
    from expectations.scoring.whatif import compare, load_changes
    from infra.cli_whatif import what_if

    ch, registry = city["ch"], city["registry"]
    _, snap = published
    change = Path(__file__).parents[3] / "contracts" / "examples" / "whatif.yaml"
    expected = what_if(ch, registry, change, DATES[0], DATES[-1])
    runs, rows = snap.whatif_inputs(MONTH)
    base = load_scoring_config()
    changes = load_changes(change, rulebase(), base, snap.registry())
    got = compare(runs, rows, snap.registry(), base, changes, rulebase().overrides, *DATES)
    assert got == expected


def test_generations_switch_atomically_and_old_readers_keep_working(city, published, tmp_path):
    from expectations.publish.snapshot import CURRENT, KEEP, Snapshot, export_snapshot

    ch, registry = city["ch"], city["registry"]
    assert Snapshot.open(tmp_path) is None
    first = export_snapshot(ch, registry, tmp_path)
    old = Snapshot.open(tmp_path)
    scores = old.scores(DATES[0])
    # a new generation of one date: the other date's files are the same inodes (hard links)
    second = export_snapshot(ch, registry, tmp_path, [DATES[1]])
    assert second != first and (tmp_path / CURRENT).read_text().strip() == second
    new = Snapshot.open(tmp_path)
    for name in ("scores.json", "uploads.json"):
        a = tmp_path / first / "day" / DATES[0].isoformat() / name
        b = tmp_path / second / "day" / DATES[0].isoformat() / name
        assert os.stat(a).st_ino == os.stat(b).st_ino
    c = tmp_path / first / "day" / DATES[1].isoformat() / "scores.json"
    d = tmp_path / second / "day" / DATES[1].isoformat() / "scores.json"
    assert os.stat(c).st_ino != os.stat(d).st_ino
    assert new.scores(DATES[0]) == scores
    # the old reader keeps reading its generation (a file it had not read yet too)
    assert old.generation == first and old.failures(scores[0]["org_code"], DATES[1]) == (
        new.failures(scores[0]["org_code"], DATES[1])
    )
    # readers opening while generations are published always see a whole one
    errors: list[BaseException] = []
    stop = threading.Event()

    def read_loop():
        while not stop.is_set():
            try:
                snap = Snapshot.open(tmp_path)
                assert snap is not None and snap.scores(DATES[0]) == scores
            except BaseException as exc:
                errors.append(exc)
                return

    reader = threading.Thread(target=read_loop)
    reader.start()
    try:
        for _ in range(KEEP + 1):
            export_snapshot(ch, registry, tmp_path, [DATES[1]])
    finally:
        stop.set()
        reader.join()
    assert errors == []
    generations = [p.name for p in tmp_path.iterdir() if p.is_dir()]
    assert len(generations) == KEEP and first not in generations
    assert not list(tmp_path.glob(".*.tmp"))


def _hand_made_generation(folder: Path, name: str, days: list[dt.date]) -> None:
    from expectations.publish.snapshot import CURRENT, _dump

    for d in days:
        _dump(folder / name / "day" / d.isoformat() / "scores.json", [{"org_code": "A", "d": d}])
    meta = {"generation": name, "published_at": dt.datetime.now(dt.UTC), "dates": days}
    _dump(folder / name / "meta.json", meta | {"months": [days[0]], "window_days": 5})
    (folder / CURRENT).write_text(name + "\n", encoding="utf-8")


def test_a_reader_keeps_at_most_cache_files_parsed(tmp_path):
    from expectations.publish.snapshot import Snapshot

    days = [dt.date(2026, 11, d) for d in (1, 2, 3)]
    _hand_made_generation(tmp_path, "g1", days)
    snap = Snapshot.open(tmp_path, cache_files=2)
    assert [snap.scores(d)[0]["d"] for d in days] == days
    info = snap.cache_info()
    assert (info.maxsize, info.currsize, info.misses, info.hits) == (2, 2, 3, 0)
    assert snap.scores(days[2])[0]["d"] == days[2]  # the most recent stays parsed
    assert snap.cache_info().hits == 1
    assert snap.scores(days[0])[0]["d"] == days[0]  # the oldest went: read from disk again
    assert snap.cache_info().misses == 4 and snap.cache_info().currsize == 2
    assert snap.scores(dt.date(2026, 11, 9)) == []  # a file the generation lacks: a default
    assert snap.cache_info().currsize == 2
