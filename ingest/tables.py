"""ClickHouse tables written by ingestion, derived from the contracts.

raw.<dataset>       one table per dataset: contract columns (nullable, typed) + lineage.
                    Every batch version is kept; readers take the current version from dq.batch.
dq.batch            one row per committed batch version (the commit marker of a load).
dq.ingest_file      one row per file outcome (loaded / duplicate / rejected) and batch version.
dq.quarantine       one row per quarantined row, with field(s), reason(s) and the raw text.
raw.current_batch   view: the latest committed version of every (org, dataset, date).
"""

from __future__ import annotations

from clickhouse_connect.driver.client import Client

from contracts.loader import Contracts
from contracts.model import LINEAGE_COLUMNS, Dataset


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
          first_received_at DateTime('Asia/Shanghai'),
          last_received_at DateTime('Asia/Shanghai'),
          run_id String,
          ingested_at DateTime64(3, 'Asia/Shanghai')
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
          received_at DateTime('Asia/Shanghai'),
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
          ingested_at DateTime64(3, 'Asia/Shanghai')
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
}

CURRENT_BATCH_VIEW = """
    CREATE VIEW IF NOT EXISTS raw.current_batch AS
    SELECT org_code, dataset, business_date, max(batch_version) AS batch_version
    FROM dq.batch
    GROUP BY org_code, dataset, business_date
"""


def ensure_tables(ch: Client, contracts: Contracts) -> None:
    ch.command("CREATE DATABASE IF NOT EXISTS raw")
    ch.command("CREATE DATABASE IF NOT EXISTS dq")
    for ddl in DQ_TABLES.values():
        ch.command(ddl)
    for dataset in contracts.datasets.values():
        ch.command(raw_table_ddl(dataset))
    ch.command(CURRENT_BATCH_VIEW)
