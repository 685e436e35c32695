"""The column lists the score writers and readers use; the score tables and their views are
defined in infra/schema.py, the one owner of the warehouse schema.

MergeTree tables keep every scoring: rows carry the validation run_id and the scoring's
computed_at (strictly increasing per date and run), and a scoring commits by writing its
dq.score_run row (configuration and fingerprint included) last. Readers use the views
dq.current_score_batch, dq.current_score_org_day, dq.current_failure_change and
dq.current_score_explanation: the rows of the latest committed scoring of the current run of
each date. Re-scoring never shows duplicates; rows of an older run or of an interrupted
scoring never show; a date whose current run has not been scored yet shows nothing.
dq.current_acceptance shows the latest computation of each month. Only computed_at depends on
the clock.
"""

# SQL text here is formatted from module constants only (table names).

from __future__ import annotations

from expectations.scoring.config import DIMENSIONS

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
    "rules_waived",
    "computed_at",
)
# An organisation-day's scores and rank, and its counts of rules and failures: the columns
# pages, e-mails and `hqlake scores` show.
RANK_COLUMNS = (
    *DIMENSIONS,
    "composite",
    "rank",
    "peer_size",
    "rank_change_day",
    "rank_change_month",
)
COUNT_COLUMNS = (
    "rules_failed",
    "blocking_failed",
    "rules_error",
    "rules_waived",
    "new_failures",
    "resolved_failures",
    "persisting_failures",
)
ORG_DAY_COLUMNS = (
    "run_id",
    "org_code",
    "org_name",
    "peer_group",
    "county_code",
    "business_date",
    *RANK_COLUMNS,
    *COUNT_COLUMNS,
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
# The points of the composite each failed rule cost (explain.py): level org_day or batch.
EXPLANATION_COLUMNS = (
    "run_id",
    "business_date",
    "level",
    "org_code",
    "dataset",
    "rule_id",
    "rule_type",
    "dimension",
    "status",
    "cause",
    "failed_rows",
    "points",
    "lost_total",
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
