"""GX Data Docs are a page we publish: uploaded record keys in them are escaped."""

from __future__ import annotations

import datetime as dt
import html

import polars as pl
import pytest

from contracts.codesystems import make_uscc
from contracts.registry import parse_registry
from expectations.engines.gxrun import html_escaped
from expectations.validate import validate_date
from infra.pipeline import ingestor

DAY = dt.date(2026, 11, 9)
HOSPITAL = make_uscc("411502", 11)
SCRIPT = "<script>alert(1)</script>"
IMG = '"><img src=x onerror=alert(1)>'
HEADER = (
    "visit_id,patient_id,visit_time,visit_type,dept_code,dept_name,doctor_id,diagnosis_code,"
    "diagnosis_name,total_fee,drug_fee,exam_fee,lab_fee,treatment_fee,material_fee,other_fee\n"
)


def _csv_cell(value: str) -> str:
    return '"' + value.replace('"', '""') + '"'


def test_escaping_keeps_nulls_and_distinct_values():
    keys = [SCRIPT, IMG, "a&b", "a&amp;b", None, "P0001"]
    escaped = html_escaped(pl.DataFrame({"r0": keys, "n": [1, 2, 3, 4, 5, 6]}))
    assert escaped["r0"].null_count() == 1 and escaped["r0"].n_unique() == len(keys)
    assert escaped["n"].to_list() == [1, 2, 3, 4, 5, 6]
    assert escaped["r0"].to_list()[:4] == [html.escape(k) for k in keys[:4]]
    assert [html.unescape(k) for k in escaped["r0"].drop_nulls()] == [
        k for k in keys if k is not None
    ]


@pytest.mark.integration
def test_data_docs_escape_hostile_record_keys(rt, tmp_path):
    registry = parse_registry(
        "org_code,name,kind,level,county_code,emails,active_from,active_to\n"
        f"{HOSPITAL},甲医院,hospital,tertiary,411502,a@x.cn,2020-01-01,\n",
        "test-registry",
    )
    rows = [
        f"{_csv_cell(key)},p1,2026-11-09 08:00:00,1,D1,内科,d1,I10,高血压,-1.00,50.00,0,0,0,0,0\n"
        for key in (SCRIPT, IMG)
    ]
    folder = tmp_path / "inbox" / HOSPITAL / "outpatient_visit" / DAY.isoformat()
    folder.mkdir(parents=True)
    (folder / "visits.csv").write_text(HEADER + "".join(rows), encoding="utf-8")
    (loaded,) = ingestor(rt, registry).ingest(str(tmp_path / "inbox"), DAY)
    assert loaded.rows_loaded == 2

    summary = validate_date(
        rt.ch,
        registry,
        DAY,
        gx_dir=tmp_path / "gx",
        datadocs_dir=tmp_path / "datadocs",
    )
    assert summary.errors == 0 and summary.datadocs is not None
    keys = {k for (k,) in rt.ch.query("SELECT record_key FROM dq.record_issue").result_rows}
    assert keys == {SCRIPT, IMG}  # the warehouse keeps the keys as uploaded

    pages = {p: p.read_text(encoding="utf-8") for p in (tmp_path / "datadocs").rglob("*.html")}
    validation_pages = [p for p in pages if "validations" in p.parts]
    assert validation_pages
    for page, text in pages.items():
        assert "<script>alert" not in text, page
        assert "<img src=x" not in text, page
    shown = "".join(pages[p] for p in validation_pages)
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in shown
    assert "&quot;&gt;&lt;img src=x onerror=alert(1)&gt;" in shown


def test_a_datasets_suite_is_stored_once_whole(tmp_path, monkeypatch):
    """The file context writes a dataset's suite once with every rule's expectation, in
    rule order: adding expectations to a stored suite rewrote it per expectation (quadratic
    in the rules; most of a demo day's validation). The counts are GX's, as before."""
    from great_expectations.data_context.store.expectations_store import ExpectationsStore

    from expectations.engines.gxrun import GxValidator
    from expectations.rules.rulebase import rulebase

    rules = [r for r in rulebase().rules if r.dataset == "lab_result"][:12]
    assert len(rules) == 12
    writes = []
    for name in ("add", "update", "add_expectation", "update_expectation"):
        original = getattr(ExpectationsStore, name)

        def spy(self, *args, _original=original, _name=name, **kwargs):
            writes.append(_name)
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(ExpectationsStore, name, spy)
    frame = pl.DataFrame(
        {f"r{i}": (["k1", None, "k3"] if i % 3 == 0 else [None] * 3) for i in range(12)},
        schema={f"r{i}": pl.String for i in range(12)},
    )
    gxv = GxValidator(DAY, tmp_path / "gx")
    outcomes = gxv.validate("lab_result", frame, rules)

    assert writes == ["add"]
    assert [o.unexpected_count for o in (outcomes[r.id] for r in rules)] == [
        2 if i % 3 == 0 else 0 for i in range(12)
    ]
    assert all(outcomes[r.id].error is None for r in rules)
    (stored,) = gxv.ctx.suites.all()
    assert [e.meta["rule_id"] for e in stored.expectations] == [r.id for r in rules]
    assert [e.column for e in stored.expectations] == [f"r{i}" for i in range(12)]
