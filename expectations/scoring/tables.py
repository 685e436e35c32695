"""The score tables, their current-scoring views and the column lists their writers and
readers use (moved verbatim from the former scoring.py; infra/schema.py takes them over).

MergeTree tables keep every scoring: rows carry the validation run_id and the scoring's
computed_at (strictly increasing per date and run), and a scoring commits by writing its
dq.score_run row (configuration and fingerprint included) last. Readers use the views
dq.current_score_batch, dq.current_score_org_day and dq.current_failure_change: the rows of
the latest committed scoring of the current run of each date. Re-scoring never shows
duplicates; rows of an older run or of an interrupted scoring never show; a date whose
current run has not been scored yet shows nothing. dq.current_acceptance shows the latest
computation of each month. Only computed_at depends on the clock.
"""

# SQL text here is formatted from module constants only (table names).
# ruff: noqa: S608

from __future__ import annotations

from clickhouse_connect.driver.client import Client

from expectations.rules.results import ensure_results_table
from expectations.scoring.config import DIMENSIONS

_SCORE_COLUMNS = (
    "completeness Nullable(Float64), timeliness Nullable(Float64),"
    " correctness Nullable(Float64), logic Nullable(Float64), composite Nullable(Float64)"
)
_DDL = (
    f"""
    CREATE TABLE IF NOT EXISTS dq.score_batch (
      run_id String,
      org_code LowCardinality(String),
      peer_group LowCardinality(String),
      dataset LowCardinality(String),
      business_date Date,
      batch_version UInt32,
      is_missing UInt8,
      {_SCORE_COLUMNS},
      rules_failed UInt32,
      blocking_failed UInt32,
      rules_error UInt32,
      computed_at DateTime64(3, 'Asia/Shanghai')
    ) ENGINE = MergeTree
    PARTITION BY toYYYYMM(business_date)
    ORDER BY (business_date, org_code, dataset, run_id, computed_at)
    COMMENT 'Scores of one batch per scoring (0-100); read dq.current_score_batch'
    """,
    f"""
    CREATE TABLE IF NOT EXISTS dq.score_org_day (
      run_id String,
      org_code LowCardinality(String),
      org_name String,
      peer_group LowCardinality(String),
      county_code LowCardinality(String),
      business_date Date,
      {_SCORE_COLUMNS},
      rank Nullable(UInt32),
      peer_size UInt32,
      rank_change_day Nullable(Int32),
      rank_change_month Nullable(Int32),
      rules_failed UInt32,
      blocking_failed UInt32,
      rules_error UInt32,
      new_failures UInt32,
      resolved_failures UInt32,
      persisting_failures UInt32,
      computed_at DateTime64(3, 'Asia/Shanghai')
    ) ENGINE = MergeTree
    PARTITION BY toYYYYMM(business_date)
    ORDER BY (business_date, peer_group, org_code, run_id, computed_at)
    COMMENT 'Scores and rank of an organisation-day per scoring; read dq.current_score_org_day'
    """,
    """
    CREATE TABLE IF NOT EXISTS dq.failure_change (
      run_id String,
      org_code LowCardinality(String),
      business_date Date,
      dataset LowCardinality(String),
      rule_id LowCardinality(String),
      change LowCardinality(String),
      computed_at DateTime64(3, 'Asia/Shanghai')
    ) ENGINE = MergeTree
    PARTITION BY toYYYYMM(business_date)
    ORDER BY (business_date, org_code, dataset, rule_id, run_id, computed_at)
    COMMENT 'Failing rules new, resolved or persisting against the previous date with results'
    """,
    """
    CREATE TABLE IF NOT EXISTS dq.score_run (
      business_date Date,
      run_id String,
      computed_at DateTime64(3, 'Asia/Shanghai'),
      config_fingerprint String,
      config String,
      organisations UInt32,
      batches UInt32,
      failure_changes UInt32
    ) ENGINE = MergeTree
    ORDER BY (business_date, run_id, computed_at)
    COMMENT 'One row per scoring of a validation run, written last: the scoring is committed'
    """,
    """
    CREATE TABLE IF NOT EXISTS dq.acceptance (
      org_code LowCardinality(String),
      month Date,
      peer_group LowCardinality(String),
      days_judged UInt32,
      days_at_bar UInt32,
      share Nullable(Float64),
      passed UInt8,
      blocking_failures UInt32,
      evidence String,
      computed_at DateTime64(3, 'Asia/Shanghai')
    ) ENGINE = MergeTree
    ORDER BY (month, org_code, computed_at)
    COMMENT 'Acceptance of an organisation-month per computation (share: % of judged days at
      the bar); read dq.current_acceptance'
    """,
    """
    CREATE VIEW IF NOT EXISTS dq.current_scoring AS
    SELECT business_date, run_id, max(computed_at) AS computed_at
    FROM dq.score_run
    WHERE (business_date, run_id) IN (SELECT business_date, run_id FROM dq.current_run)
    GROUP BY business_date, run_id
    """,
    *(
        f"""
        CREATE VIEW IF NOT EXISTS dq.current_{table} AS
        SELECT * FROM dq.{table}
        WHERE (business_date, run_id, computed_at)
          IN (SELECT business_date, run_id, computed_at FROM dq.current_scoring)
        """
        for table in ("score_batch", "score_org_day", "failure_change")
    ),
    """
    CREATE VIEW IF NOT EXISTS dq.current_acceptance AS
    SELECT * FROM dq.acceptance
    WHERE (month, computed_at) IN (SELECT month, max(computed_at) FROM dq.acceptance GROUP BY month)
    """,
)

BATCH_COLUMNS = (
    "run_id",
    "org_code",
    "peer_group",
    "dataset",
    "business_date",
    "batch_version",
    "is_missing",
    *DIMENSIONS,
    "composite",
    "rules_failed",
    "blocking_failed",
    "rules_error",
    "computed_at",
)
ORG_DAY_COLUMNS = (
    "run_id",
    "org_code",
    "org_name",
    "peer_group",
    "county_code",
    "business_date",
    *DIMENSIONS,
    "composite",
    "rank",
    "peer_size",
    "rank_change_day",
    "rank_change_month",
    "rules_failed",
    "blocking_failed",
    "rules_error",
    "new_failures",
    "resolved_failures",
    "persisting_failures",
    "computed_at",
)
CHANGE_COLUMNS = (
    "run_id",
    "org_code",
    "business_date",
    "dataset",
    "rule_id",
    "change",
    "computed_at",
)
ACCEPTANCE_COLUMNS = (
    "org_code",
    "month",
    "peer_group",
    "days_judged",
    "days_at_bar",
    "share",
    "passed",
    "blocking_failures",
    "evidence",
    "computed_at",
)


def ensure_score_tables(ch: Client) -> None:
    ensure_results_table(ch)
    for ddl in _DDL:
        ch.command(ddl)
