"""What one ingestion run writes to the warehouse, buffered: raw rows and quarantined rows
(one insert per dataset instead of one per file), then the file log, then the commits.

Every insert names its columns from the data inserted: an arrow table's column names, or the
fields of the record written (`FileResult` for dq.ingest_file, `BatchCommit` for dq.batch),
so no column list here restates the tables' DDL.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import asdict
from zoneinfo import ZoneInfo

import pyarrow as pa
from clickhouse_connect.driver.client import Client

from ingest.outcomes import FileResult
from ingest.versions import BatchCommit

RAW_ROWS_PER_INSERT = 200_000
QUARANTINE_TABLES_PER_INSERT = 100


class Buffer:
    def __init__(self, ch: Client, run_id: str, tz: ZoneInfo):
        self.ch = ch
        self.run_id = run_id
        self.tz = tz
        self._raw: dict[str, list[pa.Table]] = defaultdict(list)
        self._quarantine: list[pa.Table] = []
        self._file_log: list[FileResult] = []
        self._commits: list[BatchCommit] = []

    def add_rows(self, dataset: str, table: pa.Table) -> None:
        """Rows of one file for `raw.<dataset>`; inserted when enough have gathered."""
        self._raw[dataset].append(table)
        self.flush()

    def add_quarantine(self, table: pa.Table) -> None:
        """Quarantined rows of one file for dq.quarantine."""
        self._quarantine.append(table)

    def log(self, result: FileResult) -> None:
        """A file outcome that commits nothing (a refusal)."""
        self._file_log.append(result)

    def commit(self, commit: BatchCommit, results: list[FileResult]) -> None:
        """A batch version's file outcomes and its commit row."""
        self._file_log += results
        self._commits.append(commit)

    def mark(self) -> tuple[int, int]:
        """Where the file log and the commits stand, for `drop_batch`."""
        return len(self._file_log), len(self._commits)

    def drop_batch(self, mark: tuple[int, int], org: str, dataset: str) -> None:
        """Forget what a failed batch buffered since `mark` (rows it already inserted are an
        uncommitted version, removed before that version is loaded again)."""
        # Buffered tables hold one file each, so one organisation each.
        self._raw[dataset] = [t for t in self._raw[dataset] if t["org_code"][0].as_py() != org]
        self._quarantine = [
            t
            for t in self._quarantine
            if (t["org_code"][0].as_py(), t["dataset"][0].as_py()) != (org, dataset)
        ]
        logged, committing = mark
        del self._file_log[logged:], self._commits[committing:]

    def flush(self, force: bool = False) -> None:
        """Insert buffered rows: one insert per dataset instead of one per file."""
        for dataset, tables in self._raw.items():
            if tables and (force or sum(t.num_rows for t in tables) >= RAW_ROWS_PER_INSERT):
                self.ch.insert_arrow(f"raw.`{dataset}`", pa.concat_tables(tables))
                tables.clear()
        if self._quarantine and (force or len(self._quarantine) > QUARANTINE_TABLES_PER_INSERT):
            self.ch.insert_arrow("dq.quarantine", pa.concat_tables(self._quarantine))
            self._quarantine.clear()

    def write_log_and_commit(self) -> None:
        """File outcomes, then the commit rows: written after every data row of the run."""
        now = dt.datetime.now(self.tz)
        _insert(
            self.ch,
            "dq.ingest_file",
            [
                asdict(r)
                | {
                    "business_date": dt.date.fromisoformat(r.business_date),
                    "received_at": dt.datetime.fromisoformat(r.received_at),
                    "run_id": self.run_id,
                    "ingested_at": now,
                }
                for r in self._file_log
            ],
        )
        _insert(self.ch, "dq.batch", [asdict(c) for c in self._commits])
        self._file_log, self._commits = [], []


def _insert(ch: Client, table: str, rows: list[dict]) -> None:
    if rows:
        ch.insert(table, [list(row.values()) for row in rows], column_names=list(rows[0]))
