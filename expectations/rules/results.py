"""Rule results as history: one row per rule per batch per run in ClickHouse `dq.rule_result`.

Status follows the OHDSI DQD convention: a rule with nothing to check is not_applicable; it
fails when the share of violating rows exceeds its threshold; a rule that could not be
evaluated is an error, never a silent pass or fail.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import asdict, dataclass, field, fields

from clickhouse_connect.driver.client import Client

from contracts.timezone import TZ
from expectations.rules.rulebase import Rule

STATUSES = ("passed", "failed", "error", "not_applicable")

RULE_RESULT_DDL = """
    CREATE TABLE IF NOT EXISTS dq.rule_result (
      run_id String,
      org_code LowCardinality(String),
      dataset LowCardinality(String),
      business_date Date,
      batch_version UInt32,
      rule_id LowCardinality(String),
      rule_type LowCardinality(String),
      dimension LowCardinality(String),
      severity LowCardinality(String),
      weight Float64,
      threshold Float64,
      checked UInt64,
      failed UInt64,
      failed_pct Float64,
      status LowCardinality(String),
      sample_keys Array(String),
      sample_details Array(String),
      query_or_expectation String,
      notes String,
      rules_fingerprint String,
      computed_at DateTime64(3, 'Asia/Shanghai')
    ) ENGINE = MergeTree
    PARTITION BY toYYYYMM(business_date)
    ORDER BY (business_date, org_code, dataset, rule_id, computed_at)
    COMMENT 'Every rule result of every run; the latest run of a business date is current'
"""


def status_of(checked: int, failed: int, threshold: float) -> tuple[str, float]:
    """(status, failed %) for a rule that was evaluated."""
    if checked == 0:
        return "not_applicable", 0.0
    pct = round(100.0 * failed / checked, 4)
    return ("failed" if pct > threshold else "passed"), pct


@dataclass
class RuleResult:
    run_id: str
    org_code: str
    dataset: str
    business_date: dt.date
    batch_version: int
    rule_id: str
    rule_type: str
    dimension: str
    severity: str
    weight: float
    threshold: float
    checked: int
    failed: int
    failed_pct: float
    status: str
    sample_keys: list[str] = field(default_factory=list)
    # per sample key, what of the row failed (e.g. "other_dx_codes N40"), or ''
    sample_details: list[str] = field(default_factory=list)
    query_or_expectation: str = ""
    notes: str = ""
    rules_fingerprint: str = ""
    computed_at: dt.datetime = field(default_factory=lambda: dt.datetime.now(TZ))

    @classmethod
    def of(
        cls,
        rule: Rule,
        *,
        run_id: str,
        org_code: str,
        dataset: str,
        business_date: dt.date,
        batch_version: int,
        checked: int,
        failed: int,
        sample_keys: list[str] | None = None,
        sample_details: list[str] | None = None,
        query: str = "",
        notes: str = "",
        fingerprint: str = "",
        applicable: bool = True,
    ) -> RuleResult:
        status, pct = (
            status_of(checked, failed, rule.threshold) if applicable else ("not_applicable", 0.0)
        )
        return cls(
            run_id=run_id,
            org_code=org_code,
            dataset=dataset,
            business_date=business_date,
            batch_version=batch_version,
            rule_id=rule.id,
            rule_type=rule.type,
            dimension=rule.dimension,
            severity=rule.severity,
            weight=rule.weight,
            threshold=rule.threshold,
            checked=checked,
            failed=failed,
            failed_pct=pct,
            status=status,
            sample_keys=list(sample_keys or [])[:20],
            sample_details=list(sample_details or [])[:20],
            query_or_expectation=query,
            notes=notes,
            rules_fingerprint=fingerprint,
        )

    @classmethod
    def error(cls, rule: Rule, message: str, **where) -> RuleResult:
        result = cls.of(rule, checked=0, failed=0, **where)
        result.status, result.notes = "error", message
        return result


COLUMNS = [f.name for f in fields(RuleResult)]


# One row per validation run of a business date. The current results of a date are those of
# its latest complete run: `dq.current_run`.
RUN_DDL = """
    CREATE TABLE IF NOT EXISTS dq.run (
      run_id String,
      business_date Date,
      status LowCardinality(String),
      rules_fingerprint String,
      rule_results UInt64,
      rules_failed UInt64,
      started_at DateTime64(3, 'Asia/Shanghai'),
      finished_at DateTime64(3, 'Asia/Shanghai'),
      notes String
    ) ENGINE = MergeTree
    ORDER BY (business_date, run_id)
    COMMENT 'Validation runs; status complete marks a run whose results are all written'
"""

CURRENT_RUN_DDL = """
    CREATE VIEW IF NOT EXISTS dq.current_run AS
    SELECT business_date, argMax(run_id, f) AS run_id, max(f) AS finished_at
    FROM (SELECT business_date, run_id, finished_at AS f FROM dq.run WHERE status = 'complete')
    GROUP BY business_date
"""

# Every failing record of a row-level (field, record, cross-dataset) rule, by record key:
# what the EHR staging models exclude (severity blocking) or flag (warning). Keys are the
# dataset's key fields joined by '|' (never a personal identifier).
RECORD_ISSUE_DDL = """
    CREATE TABLE IF NOT EXISTS dq.record_issue (
      run_id String,
      org_code LowCardinality(String),
      dataset LowCardinality(String),
      business_date Date,
      batch_version UInt32,
      record_key String,
      detail String,
      rule_id LowCardinality(String),
      dimension LowCardinality(String),
      severity LowCardinality(String)
    ) ENGINE = MergeTree
    PARTITION BY toYYYYMM(business_date)
    ORDER BY (business_date, org_code, dataset, record_key, rule_id, run_id)
    COMMENT 'Failing record keys per rule per run; join on dq.current_run for the current ones'
"""


# The exact rule set behind a fingerprint (rule_result.rules_fingerprint): every rule with its
# effective weight, threshold, severity and parameters, so any result can be explained later.
RULE_SET_DDL = """
    CREATE TABLE IF NOT EXISTS dq.rule_set (
      rules_fingerprint String,
      rules_json String,
      rule_count UInt32,
      first_seen_run String
    ) ENGINE = ReplacingMergeTree
    ORDER BY rules_fingerprint
    COMMENT 'Effective rule sets by fingerprint (JSON list of rules)'
"""


# Columns added after a table's first release, for warehouses created before them.
ADDED_COLUMNS = (
    "ALTER TABLE dq.rule_result ADD COLUMN IF NOT EXISTS sample_details Array(String)"
    " AFTER sample_keys",
    "ALTER TABLE dq.record_issue ADD COLUMN IF NOT EXISTS detail String AFTER record_key",
)


def ensure_results_table(ch: Client) -> None:
    ch.command("CREATE DATABASE IF NOT EXISTS dq")
    for ddl in (RULE_RESULT_DDL, RUN_DDL, CURRENT_RUN_DDL, RECORD_ISSUE_DDL, RULE_SET_DDL):
        ch.command(ddl)
    for ddl in ADDED_COLUMNS:
        ch.command(ddl)


def write_results(ch: Client, results: list[RuleResult]) -> None:
    if results:
        ch.insert(
            "dq.rule_result",
            [[getattr(r, c) for c in COLUMNS] for r in results],
            column_names=COLUMNS,
        )


def record_rule_sets(ch: Client, rule_sets: dict[str, tuple[Rule, ...]], run_id: str) -> None:
    """Store each effective rule set once under its fingerprint."""
    if not rule_sets:
        return
    known = {
        row[0]
        for row in ch.query(
            "SELECT rules_fingerprint FROM dq.rule_set"
            " WHERE rules_fingerprint IN {f:Array(String)}",
            parameters={"f": list(rule_sets)},
        ).result_rows
    }
    rows = [
        [
            fp,
            json.dumps([asdict(r) for r in rules], ensure_ascii=False, sort_keys=True),
            len(rules),
            run_id,
        ]
        for fp, rules in sorted(rule_sets.items())
        if fp not in known
    ]
    if rows:
        ch.insert(
            "dq.rule_set",
            rows,
            column_names=["rules_fingerprint", "rules_json", "rule_count", "first_seen_run"],
        )
