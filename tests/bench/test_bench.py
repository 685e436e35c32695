"""Smoke test of the bench at a tiny scale (no timing assertions: performance lives in the
bench, never in a timed test)."""

from __future__ import annotations

import datetime as dt
import json
import time

import pytest

from bench import profile, run
from bench.measure import MIB, Meter
from contracts.loader import contracts
from expectations.engines.sqlrules import sql_rules
from expectations.rules.rulebase import rulebase

DAY = dt.date(2026, 11, 16)


@pytest.fixture(scope="module")
def gx_pandas():
    """bench.gx_pandas, imported by the tests that use it (pandas: ~2 s at collection)."""
    from bench import gx_pandas

    return gx_pandas


def test_every_row_rule_is_mapped_or_counted_as_not_expressible(gx_pandas):
    rules = list(rulebase().rules)
    for dataset in contracts().datasets:
        mapped, missing = gx_pandas.map_rules(dataset, rules, DAY)
        assert len(mapped) + len(missing) == len(sql_rules(dataset, rules))
        by_id = {r.id: r for r in rules}
        for m in mapped:
            rule = by_id[m.rule_id]
            if rule.type == "required":
                assert m.expectation == "ExpectColumnValuesToNotBeNull"
                assert m.kwargs == {"column": rule.field}
        # A check digit or a code list with clinical extensions has no built-in expectation.
        assert not [m for m in mapped if by_id[m.rule_id].type in ("icd10_valid", "resident_id")]


def test_a_less_or_equal_comparison_becomes_greater_or_equal_with_columns_swapped(gx_pandas):
    rule = next(r for r in rulebase().rules if r.type == "compare" and r.params["op"] == "<=")
    mapped = gx_pandas.map_rule(rule, contracts().dataset(rule.dataset), DAY)
    assert mapped is not None
    assert mapped.expectation == "ExpectColumnPairValuesAToBeGreaterThanB"
    assert mapped.kwargs["column_A"] == rule.params["right"]
    assert mapped.kwargs["column_B"] == rule.params["left"]
    assert mapped.kwargs["or_equal"] is True


def test_event_not_future_allows_the_whole_business_date_and_nothing_after(gx_pandas):
    rule = next(r for r in rulebase().rules if r.type == "event_not_future")
    ds = contracts().dataset(rule.dataset)
    mapped = gx_pandas.map_rule(rule, ds, DAY)
    assert mapped is not None
    end = mapped.kwargs["max_value"]
    assert mapped.kwargs["strict_max"] is True
    assert end.date() == DAY + dt.timedelta(days=1)
    assert (end.hour, end.minute) == (0, 0)


def test_meter_peak_follows_each_stage():
    with Meter(interval=0.005) as meter:
        with meter.stage("big"):
            block = bytearray(200 * MIB)
            block[::4096] = b"x" * len(block[::4096])
            del block
        with meter.stage("small"):
            sum(range(1000))
    big, small = meter.stages
    assert big.peak_rss - big.rss_before >= 150 * MIB
    assert small.peak_rss < big.peak_rss - 100 * MIB
    assert big.seconds > 0


def test_profile_summary_attributes_samples_to_stages_and_libraries(tmp_path):
    raw = tmp_path / "profile.txt"
    raw.write_text(
        "<module> (bench/cityday.py:1);DailyRun.validate (bench/cityday.py:90);"
        "validate_date (expectations/validate.py:300);"
        "query (clickhouse_connect/driver/client.py:10);"
        "_query_locked (clickhouse_connect/driver/_backend/chdb_backend.py:458) 30\n"
        "<module> (bench/cityday.py:1);DailyRun.validate (bench/cityday.py:90);"
        "_row_rules (expectations/validate.py:150);"
        "DataFrame.unpivot (polars/dataframe/frame.py:1) 10\n"
        "<module> (bench/cityday.py:1);DailyRun.ingest (bench/cityday.py:80);"
        "Ingestor._load_file (ingest/pipeline.py:250) 10\n"
        "Thread._bootstrap (threading.py:1);Meter._sample (bench/measure.py:120) 99\n"
    )
    summary = profile.summarise(raw, rate=10)
    assert summary["validate"]["seconds"] == 4.0
    assert summary["validate"]["by_category_pct"] == {
        "chDB engine (query execution)": 75.0,
        "polars": 25.0,
    }
    assert summary["ingest"]["by_category_pct"] == {"hqlake Python": 100.0}
    assert "other_threads" not in summary
    assert "validate" in profile.markdown(summary)


@pytest.mark.integration
def test_meter_counts_the_cpu_a_stage_takes_not_the_time_it_waits():
    with Meter() as meter:
        with meter.stage("busy"):
            started = time.process_time()
            while time.process_time() - started < 0.3:
                pass
        with meter.stage("waiting"):
            time.sleep(0.3)
    busy, waiting = meter.stages
    assert busy.cpu_seconds >= 0.25
    assert waiting.seconds >= 0.3 and waiting.cpu_seconds < 0.15
    assert busy.public()["cpu_seconds"] == round(busy.cpu_seconds, 3)


@pytest.mark.integration
def test_bench_end_to_end_on_a_tiny_city(tmp_path, capsys):
    results = run.main(
        [
            "--scales", "0.01", "--history-days", "1", "--hospitals", "2", "--counties", "1",
            "--repeats", "1", "--dbt-history", "", "--skip", "build,report,feedback",
            "--work", str(tmp_path / "work"), "--results", str(tmp_path / "results"),
        ]
    )  # fmt: skip
    assert len(results) == 1
    written = sorted(p.name for p in (tmp_path / "results").iterdir())
    assert any(name.endswith("-0_01.json") for name in written)
    assert any(name.endswith("-summary.md") for name in written)
    record = json.loads(next((tmp_path / "results").glob("*-0_01.json")).read_text())
    stages = {s["name"]: s for s in record["stages"]}
    assert stages["ingest"]["rows"] > 0
    assert stages["validate"]["rows"] == stages["ingest"]["detail"]["rows_loaded"]
    assert stages["build"]["available"] is False
    assert stages["daily_run"]["seconds"] >= stages["validate"]["seconds"]
    assert stages["daily_run"]["peak_rss_mib"] > 0
    gx = stages["gx_pandas"]["detail"]
    assert 0 < gx["rules_expressible"] < gx["rules_total"]
    assert gx["agreement"]["compared"] > 0
    assert gx["agreement"]["equal"] == gx["agreement"]["compared"]
    assert record["ratios"]["validate_over_sql"] > 0
    assert record["ratios"]["validate_v11_over_v10_cpu"] > 0
    assert len(record["validation_cpu_tries"]["validate_v10"]) == 1
    assert record["machine"]["cores"] >= 1 and record["loadavg_before"]
    out = capsys.readouterr().out
    assert "| (b) SQL lower bound |" in out and "÷ GX-pandas |" in out
