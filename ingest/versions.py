"""Batches and versions: fingerprints, the committed version of a batch, crash recovery.

The files of one (organisation, dataset, business date) are a batch. Its fingerprint is the
set of distinct file contents (sha256) plus the manifest. When the fingerprint equals the
latest committed version's, nothing is loaded (a re-run, or a byte-identical re-upload). When
it differs, the whole batch is loaded again as version N+1, which replaces version N for
everything downstream; older versions stay in raw as history.

A load commits by writing its dq.batch row (a `BatchCommit`) last. Rows of an uncommitted
version (a crash half-way) are deleted before the version is loaded again, so a re-run never
duplicates rows.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
from collections.abc import Iterable
from dataclasses import dataclass

from clickhouse_connect.driver.client import Client

from ingest.outcomes import FileResult, Upload

log = logging.getLogger(__name__)


def fingerprint(data_files: list[Upload], manifest: Upload | None) -> str:
    """The batch's identity: the sorted content hashes of its distinct files and manifest."""
    parts = [u.sha256 for u in data_files] + ([f"manifest:{manifest.sha256}"] if manifest else [])
    return hashlib.sha256("\n".join(sorted(parts)).encode()).hexdigest()


@dataclass
class BatchCommit:
    """One row of dq.batch, the commit marker of a batch version (inserted by its fields)."""

    org_code: str
    dataset: str
    business_date: dt.date
    batch_version: int
    fingerprint: str
    files: list[str]
    rows_read: int
    rows_loaded: int
    rows_quarantined: int
    manifest_row_count: int | None
    manifest_problem: str | None
    first_received_at: dt.datetime
    last_received_at: dt.datetime
    run_id: str
    ingested_at: dt.datetime

    @classmethod
    def of(
        cls,
        version: int,
        batch_fingerprint: str,
        uploads: list[Upload],
        results: list[FileResult],
        manifest: tuple[int | None, str | None],
        run_id: str,
        now: dt.datetime,
    ) -> BatchCommit:
        """The commit of `uploads` (one batch, manifest included) loaded as `results`."""
        first = uploads[0].source
        loaded = [r for r in results if r.status == "loaded"]
        received = [u.source.received_at for u in uploads]
        return cls(
            org_code=first.org_code,
            dataset=first.dataset,
            business_date=first.business_date,
            batch_version=version,
            fingerprint=batch_fingerprint,
            files=[u.source.path for u in uploads],
            rows_read=sum(r.rows_read for r in loaded),
            rows_loaded=sum(r.rows_loaded for r in loaded),
            rows_quarantined=sum(r.rows_quarantined for r in loaded),
            manifest_row_count=manifest[0],
            manifest_problem=manifest[1],
            first_received_at=min(received),
            last_received_at=max(received),
            run_id=run_id,
            ingested_at=now,
        )


class Versions:
    """The batch versions of one business date in the warehouse: the committed one of each
    batch, and versions with rows but no commit (a crash), which are cleared before reuse."""

    def __init__(self, ch: Client):
        self.ch = ch
        self._committed: dict[tuple[str, str], tuple[int, str]] = {}
        self._leftovers: set[tuple[str, str, int]] = set()

    def read(self, day: dt.date, datasets: Iterable[str]) -> None:
        """Read the state of `day` for the raw tables of `datasets` (known to the contracts)."""
        self._committed = {
            (org, ds): (int(version), batch_fingerprint)
            for org, ds, version, batch_fingerprint in self.ch.query(
                "SELECT org_code, dataset, batch_version, fingerprint FROM dq.batch FINAL"
                " WHERE business_date = {d:Date} AND (org_code, dataset, business_date,"
                " batch_version) IN (SELECT org_code, dataset, business_date, batch_version"
                " FROM raw.current_batch WHERE business_date = {d:Date})",
                parameters={"d": day},
            ).result_rows
        }
        present: list[tuple[str, str, int]] = [
            (org, ds, int(v))
            for org, ds, v in self.ch.query(
                "SELECT DISTINCT org_code, dataset, batch_version FROM dq.quarantine"
                " WHERE business_date = {d:Date}",
                parameters={"d": day},
            ).result_rows
        ]
        for ds in sorted(datasets):
            present += [
                (org, ds, int(v))
                for org, v in self.ch.query(
                    f"SELECT DISTINCT org_code, batch_version FROM raw.`{ds}`"  # noqa: S608
                    " WHERE business_date = {d:Date}",
                    parameters={"d": day},
                ).result_rows
            ]
        self._leftovers = {
            (org, ds, v) for org, ds, v in present if v > self._committed.get((org, ds), (0, ""))[0]
        }

    def current(self, org: str, dataset: str) -> tuple[int, str] | None:
        """(version, fingerprint) of the batch's latest committed version, or None."""
        return self._committed.get((org, dataset))

    def committed(self, commit: BatchCommit) -> None:
        """`commit` is the batch's current version from now on (its row is written later)."""
        self._committed[(commit.org_code, commit.dataset)] = (
            commit.batch_version,
            commit.fingerprint,
        )

    def clear_uncommitted(self, org: str, dataset: str, day: dt.date, version: int) -> None:
        """Delete rows a crashed load left under `version`, before that version is loaded."""
        if (org, dataset, version) not in self._leftovers:
            return
        params = {"org": org, "d": day, "v": version, "ds": dataset}
        where = (
            "org_code = {org:String} AND business_date = {d:Date} AND batch_version = {v:UInt32}"
        )
        log.warning(
            "removing rows of uncommitted version %s of %s/%s/%s", version, org, dataset, day
        )
        # Table names come from the contracts; every value is a bound parameter.
        self.ch.command(f"DELETE FROM raw.`{dataset}` WHERE {where}", parameters=params)  # noqa: S608
        self.ch.command(
            f"DELETE FROM dq.quarantine WHERE {where} AND dataset = {{ds:String}}",  # noqa: S608
            parameters=params,
        )
