"""Validate one business date: every rule on every current batch, results as history.

A run of business date D:

1. batch- and file-level rules for every expected batch (`monitoring.monitor_date`);
2. field- and record-level rules: per dataset ONE ClickHouse pass
   (`sqlrules.violations_query`) returning per-batch counts and the key-or-NULL frame of the
   failing rows only, and ONE Great Expectations suite over that frame (`gxrun`); sample
   keys and every failing record key come from the same frame;
3. cross-dataset rules of section 5 of the standard in ClickHouse (`crossrules.run_cross`),
   and the money level shifts of section 7.3 against history or peers
   (`levelshift.run_level`, which needs the registry's peer groups);
4. results are judged with each organisation's effective rules (overrides of weight,
   threshold and severity), written to `dq.rule_result` and the failing keys to
   `dq.record_issue`; the run is committed by writing its `dq.run` row last, so readers of
   `dq.current_run` never see half a run.

Nothing here reads the clock except `computed_at` and the run id: the numbers of a business
date are the same whenever it is validated, and a re-run writes a new run with identical
numbers (the previous run stays as history).
"""

from __future__ import annotations

import datetime as dt
import logging
import secrets
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl
import pyarrow as pa
from clickhouse_connect.driver.client import Client

from contracts.loader import contracts
from contracts.registry import Registry
from contracts.timezone import TZ
from expectations.engines.gxrun import GxValidator
from expectations.engines.monitoring import monitor_date
from expectations.engines.sqlrules import (
    ORGS_PARAM,
    SAMPLE_KEYS,
    sql_rules,
    violations_query,
)
from expectations.rules.results import (
    RuleResult,
    record_rule_sets,
    write_results,
)
from expectations.rules.rulebase import Rule, RuleBase, fingerprint, rulebase

log = logging.getLogger(__name__)


@dataclass
class RunSummary:
    run_id: str
    business_date: dt.date
    rules_fingerprint: str
    rule_results: int = 0
    failed: int = 0
    errors: int = 0
    not_applicable: int = 0
    record_issues: int = 0
    batches: int = 0
    rows: int = 0
    seconds: dict[str, float] = field(default_factory=dict)
    datadocs: Path | None = None

    def public(self) -> dict:
        return {
            "run_id": self.run_id,
            "business_date": self.business_date.isoformat(),
            "rules_fingerprint": self.rules_fingerprint,
            "rule_results": self.rule_results,
            "failed": self.failed,
            "errors": self.errors,
            "not_applicable": self.not_applicable,
            "record_issues": self.record_issues,
            "batches": self.batches,
            "rows": self.rows,
            "seconds": {k: round(v, 3) for k, v in self.seconds.items()},
            "datadocs": str(self.datadocs) if self.datadocs else None,
        }


def new_run_id(day: dt.date) -> str:
    """Sortable and unique: business date, wall-clock start, random suffix."""
    now = dt.datetime.now(TZ)
    return f"{day:%Y%m%d}-{now:%Y%m%dT%H%M%S%f}-{secrets.token_hex(3)}"


def _current_batches(ch: Client, day: dt.date) -> dict[str, list[tuple[str, int]]]:
    out: dict[str, list[tuple[str, int]]] = defaultdict(list)
    for dataset, org, version in ch.query(
        "SELECT dataset, org_code, batch_version FROM raw.current_batch"
        " WHERE business_date = {d:Date} ORDER BY dataset, org_code",
        parameters={"d": day},
    ).result_rows:
        out[dataset].append((org, int(version)))
    return out


class _Judge:
    """Effective rules per organisation (overrides applied), with a fallback for batches of
    organisations the registry does not list as active on the date."""

    def __init__(self, rb: RuleBase, registry: Registry, day: dt.date) -> None:
        self.base = {r.id: r for r in rb.rules}
        self.by_org: dict[str, dict[str, Rule]] = {}
        self.fingerprints: dict[str, str] = {}
        self.rule_sets: dict[str, tuple[Rule, ...]] = {}
        for org in registry.active(day):
            rules, fp = rb.effective_rules(org.org_code, org.peer_group)
            self.by_org[org.org_code] = {r.id: r for r in rules}
            self.fingerprints[org.org_code] = fp
            self.rule_sets[fp] = rules

    def rule(self, org_code: str, rule_id: str) -> Rule:
        return self.by_org.get(org_code, self.base)[rule_id]

    def fingerprint(self, org_code: str) -> str:
        return self.fingerprints.get(org_code, "")


def _issue_rows(
    run_id: str, day: dt.date, dataset: str, issues: pl.DataFrame, judge: _Judge
) -> pa.Table:
    """dq.record_issue rows from (org_code, batch_version, rule_id, record_key[, detail])."""
    orgs = issues["org_code"].to_list()
    rule_ids = issues["rule_id"].to_list()
    rules = [judge.rule(o, r) for o, r in zip(orgs, rule_ids, strict=True)]
    n = issues.height
    return pa.table(
        {
            "run_id": pa.array([run_id] * n, pa.string()),
            "org_code": pa.array(orgs, pa.string()),
            "dataset": pa.array([dataset] * n, pa.string()),
            "business_date": pa.array([day] * n, pa.date32()),
            "batch_version": pa.array(issues["batch_version"].to_list(), pa.uint32()),
            "record_key": pa.array(issues["record_key"].to_list(), pa.string()),
            "detail": pa.array(
                issues["detail"].to_list() if "detail" in issues.columns else [""] * n,
                pa.string(),
            ),
            "rule_id": pa.array(rule_ids, pa.string()),
            "dimension": pa.array([r.dimension for r in rules], pa.string()),
            "severity": pa.array([r.severity for r in rules], pa.string()),
        }
    )


@dataclass
class RowCounts:
    """What the single SQL pass over one dataset's current batches of a date found
    (`sqlrules.violations_query`), before Great Expectations double-checks it: the pre-flight
    check (expectations.preflight) judges with these counts alone."""

    rule_ids: list[str]
    frame: pl.DataFrame  # r{i}: a failing row's record key where it breaks rule i, else null
    counts: dict[tuple[str, int], tuple]  # (org, version) -> c0..c{n-1}, f0..f{n-1}
    failing: pl.DataFrame  # org_code, batch_version, rule_id, record_key of every failure
    samples: dict[tuple[str, int, str], list[str]]
    rows: int

    def checked_failed(self, org: str, version: int, i: int) -> tuple[int, int]:
        """(rows rule `i` applies to, rows breaking it) in one batch."""
        row = self.counts.get((org, version))
        n = len(self.rule_ids)
        return (int(row[i]), int(row[n + i])) if row else (0, 0)

    def totals(self) -> dict[str, int]:
        """Failing rows per rule over every batch."""
        n = len(self.rule_ids)
        return {
            rid: sum(int(row[n + i]) for row in self.counts.values())
            for i, rid in enumerate(self.rule_ids)
        }


# Rows one SQL pass of the row rules reads at most (unless one batch alone is larger): the
# passes of a dataset-day go by groups of organisations, so what ClickHouse holds for the
# uniqueness windows and the lookups is one group's, whatever the size of the day (bench/:
# at 4 M rows a day one pass over lab_result's 1.56 M rows took the process from 1.6 to
# 2.9 GiB). 200,000 is above the largest batch of the bench's 1 M-row day (161,535 rows).
ROWS_PER_PASS = 200_000


def organisation_groups(
    ch: Client, day: dt.date, dataset: str, rows_per_pass: int = ROWS_PER_PASS
) -> list[list[str]]:
    """The organisations with a current batch of `dataset` on `day`, in order, grouped so
    that each group's current batches hold at most `rows_per_pass` rows together (a larger
    batch is a group alone)."""
    sizes = ch.query(
        "SELECT c.org_code, ifNull(max(b.rows_loaded), 0) FROM raw.current_batch AS c"
        " LEFT JOIN (SELECT org_code, batch_version, rows_loaded FROM dq.batch FINAL"
        "  WHERE business_date = {d:Date} AND dataset = {ds:String}) AS b"
        " ON b.org_code = c.org_code AND b.batch_version = c.batch_version"
        " WHERE c.business_date = {d:Date} AND c.dataset = {ds:String}"
        " GROUP BY c.org_code ORDER BY c.org_code",
        parameters={"d": day, "ds": dataset},
    ).result_rows
    groups: list[list[str]] = []
    held = 0
    for org, rows in sizes:
        if not groups or held + int(rows) > rows_per_pass:
            groups.append([])
            held = 0
        groups[-1].append(org)
        held += int(rows)
    return groups


def row_counts(
    ch: Client,
    day: dt.date,
    dataset: str,
    rules: list[Rule],
    rows_per_pass: int = ROWS_PER_PASS,
) -> RowCounts:
    """Run the field and record rules of one dataset on the current batches of `day`, one
    pass per group of organisations (`organisation_groups`)."""
    sql, rule_ids = violations_query(dataset, day, rules, orgs=True)
    parts = [
        ch.query_arrow(sql, parameters={ORGS_PARAM: group}, use_strings=True)
        for group in organisation_groups(ch, day, dataset, rows_per_pass)
    ]
    if not parts:  # no current batch: the empty frame of one pass
        parts = [ch.query_arrow(sql, parameters={ORGS_PARAM: []}, use_strings=True)]
    frame = pl.from_arrow(pa.concat_tables(parts))
    assert isinstance(frame, pl.DataFrame)
    n = len(rule_ids)
    rcols = [f"r{i}" for i in range(n)]
    per_batch = frame.group_by("org_code", "batch_version").agg(
        pl.col("n").first(),
        *[pl.col(f"c{i}").first() for i in range(n)],
        *[pl.col(f"f{i}").first() for i in range(n)],
    )
    counts = {(o, v): row for o, v, _rows, *row in per_batch.iter_rows()}
    failing = (
        frame.select("org_code", "batch_version", *rcols)
        .unpivot(index=["org_code", "batch_version"], on=rcols, variable_name="col")
        .drop_nulls("value")
        .with_columns(
            pl.col("col")
            .replace_strict({f"r{i}": rid for i, rid in enumerate(rule_ids)})
            .alias("rule_id")
        )
        .select("org_code", "batch_version", "rule_id", pl.col("value").alias("record_key"))
        .sort("org_code", "batch_version", "rule_id", "record_key")
    )
    samples = {
        (o, v, r): keys
        for o, v, r, keys in failing.group_by("org_code", "batch_version", "rule_id")
        .agg(pl.col("record_key").head(SAMPLE_KEYS))
        .iter_rows()
    }
    return RowCounts(
        rule_ids, frame.select(rcols), counts, failing, samples, int(per_batch["n"].sum())
    )


def _row_rules(
    ch: Client,
    gxv: GxValidator,
    day: dt.date,
    dataset: str,
    batches: list[tuple[str, int]],
    rules: list[Rule],
    judge: _Judge,
    run_id: str,
    rows_per_pass: int = ROWS_PER_PASS,
) -> tuple[list[RuleResult], pa.Table | None, int]:
    """Field and record rules of one dataset: (results, record issues, rows judged)."""
    found = row_counts(ch, day, dataset, rules, rows_per_pass)
    outcomes = gxv.validate(dataset, found.frame, rules)
    totals = found.totals()
    results: list[RuleResult] = []
    for org, version in batches:
        for i, rid in enumerate(found.rule_ids):
            rule = judge.rule(org, rid)
            outcome = outcomes[rid]
            where = {
                "run_id": run_id,
                "org_code": org,
                "dataset": dataset,
                "business_date": day,
                "batch_version": version,
                "fingerprint": judge.fingerprint(org),
                "query": outcome.expectation,
            }
            if outcome.error or outcome.unexpected_count != totals[rid]:
                reason = outcome.error or (
                    f"GX counted {outcome.unexpected_count} failing rows, the batches sum to "
                    f"{totals[rid]}"
                )
                results.append(RuleResult.error(rule, reason, **where))
                continue
            checked, failed = found.checked_failed(org, version, i)
            results.append(
                RuleResult.of(
                    rule,
                    checked=checked,
                    failed=failed,
                    sample_keys=found.samples.get((org, version, rid), []),
                    **where,
                )
            )
    failing = found.failing
    issues = _issue_rows(run_id, day, dataset, failing, judge) if failing.height else None
    return results, issues, found.rows


def _cross_rules(
    ch: Client,
    day: dt.date,
    rb: RuleBase,
    judge: _Judge,
    run_id: str,
    registry: Registry,
    temporary_tables: bool,
) -> tuple[list[RuleResult], list[pa.Table]]:
    """Results and record issues of the `cross_sql` and `level_sql` engines (the same
    shape: one dict per organisation, judged dataset and batch, with its failing keys)."""
    from expectations.engines.crossrules import run_cross
    from expectations.engines.levelshift import run_level

    results, issues = [], []
    rows = run_cross(
        ch, day, rb.rules_for("cross_sql"), registry, temporary_tables=temporary_tables
    ) + run_level(ch, registry, day, rb.rules_for("level_sql"))
    for row in rows:
        org, dataset, version = row["org_code"], row["dataset"], row["batch_version"]
        rule = judge.rule(org, row["rule_id"])
        results.append(
            RuleResult.of(
                rule,
                run_id=run_id,
                org_code=org,
                dataset=dataset,
                business_date=day,
                batch_version=version,
                checked=row["checked"],
                failed=row["failed"],
                sample_keys=row["sample_keys"],
                sample_details=row.get("sample_details"),
                query=row.get("query", ""),
                notes=row.get("notes", ""),
                fingerprint=judge.fingerprint(org),
            )
        )
        keys = row.get("keys") or []
        if keys:
            frame = pl.DataFrame(
                {
                    "org_code": [org] * len(keys),
                    "batch_version": [version] * len(keys),
                    "rule_id": [row["rule_id"]] * len(keys),
                    "record_key": keys,
                    "detail": row.get("details") or [""] * len(keys),
                }
            ).sort("record_key", "detail")
            issues.append(_issue_rows(run_id, day, dataset, frame, judge))
    return results, issues


def validate_date(
    ch: Client,
    registry: Registry,
    day: dt.date,
    *,
    rb: RuleBase | None = None,
    gx_dir: Path | None = None,
    datadocs_dir: Path | None = None,
    rows_per_pass: int = ROWS_PER_PASS,
    temporary_tables: bool = False,
) -> RunSummary:
    """Validate business date `day`; with `gx_dir` and `datadocs_dir`, also keep the GX
    project of the run and render its Data Docs. The row rules read at most about
    `rows_per_pass` rows per SQL pass (`row_counts`); the results do not depend on it.
    `temporary_tables`: the cross-dataset rules build their shared steps as temporary tables
    of the client's session (`crossrules.run_cross`); the results do not depend on it."""
    rb = rb or rulebase()
    started = dt.datetime.now(TZ)
    clock = time.perf_counter()
    run_id = new_run_id(day)
    judge = _Judge(rb, registry, day)
    summary = RunSummary(run_id, day, fingerprint(rb.rules))

    def lap(stage: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        summary.seconds[stage] = summary.seconds.get(stage, 0.0) + now - clock
        clock = now

    results = monitor_date(ch, registry, rb, day, run_id)
    lap("monitoring")
    gxv = GxValidator(day, gx_dir)
    lap("gx_setup")
    issues: list[pa.Table] = []
    current = _current_batches(ch, day)
    row_rules = rb.rules_for("row_sql")
    for dataset in sorted(contracts().datasets):
        batches = current.get(dataset, [])
        rules = sql_rules(dataset, row_rules)
        if not batches or not rules:
            continue
        summary.batches += len(batches)
        rows, table, n = _row_rules(
            ch, gxv, day, dataset, batches, rules, judge, run_id, rows_per_pass
        )
        results += rows
        summary.rows += n
        if table is not None:
            issues.append(table)
        lap("row_rules")
    cross, cross_issues = _cross_rules(ch, day, rb, judge, run_id, registry, temporary_tables)
    results += cross
    issues += cross_issues
    lap("cross_dataset")
    write_results(ch, results)
    record_rule_sets(ch, judge.rule_sets, run_id)
    for table in issues:
        ch.insert_arrow("dq.record_issue", table)
        summary.record_issues += table.num_rows
    summary.rule_results = len(results)
    summary.failed = sum(r.status == "failed" for r in results)
    summary.errors = sum(r.status == "error" for r in results)
    summary.not_applicable = sum(r.status == "not_applicable" for r in results)
    ch.insert(
        "dq.run",
        [
            [
                run_id,
                day,
                "complete",
                summary.rules_fingerprint,
                summary.rule_results,
                summary.failed,
                started,
                dt.datetime.now(TZ),
                "",
            ]
        ],
        column_names=[
            "run_id",
            "business_date",
            "status",
            "rules_fingerprint",
            "rule_results",
            "rules_failed",
            "started_at",
            "finished_at",
            "notes",
        ],
    )
    lap("write")
    if datadocs_dir is not None and gx_dir is not None:
        summary.datadocs = gxv.build_docs(datadocs_dir)
        lap("datadocs")
    return summary


def current_results(ch: Client, day: dt.date) -> list[dict]:
    """The rule results of the current run of `day`, one dict per result (issue 3 point 4)."""
    query = (
        "SELECT run_id, org_code, dataset, business_date, batch_version, rule_id, dimension,"
        " severity, weight, threshold, checked, failed, failed_pct, status, sample_keys,"
        " sample_details, query_or_expectation, notes, rules_fingerprint,"
        " toString(computed_at) AS computed_at"
        " FROM dq.rule_result WHERE business_date = {d:Date}"
        " AND run_id = (SELECT run_id FROM dq.current_run WHERE business_date = {d:Date})"
        " ORDER BY org_code, dataset, rule_id"
    )
    result = ch.query(query, parameters={"d": day})
    out = []
    for row in result.named_results():
        row["business_date"] = row["business_date"].isoformat()
        row["sample_keys"] = list(row["sample_keys"])
        row["sample_details"] = list(row["sample_details"])
        out.append(row)
    return out
