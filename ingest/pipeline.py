"""Ingest one business date: inbox -> lake (original, typed Parquet, quarantine) -> ClickHouse raw.

The Ingestor walks the day's batches and decides nothing itself; each concern has its module:

    ingest.policy     what is refused, and which failures are a file's or a batch's
    ingest.versions   fingerprints, committed versions, recovery of uncommitted ones
    ingest.prepare    everything a file's bytes decide, before anything is written
    ingest.lake       lake keys and puts
    ingest.buffer     warehouse inserts: raw and quarantined rows, file log, commits last
    ingest.manifest   a batch's declared row count
    ingest.outcomes   the FileResult recorded for every inbox entry

It receives its clients and configuration (an S3 client for the inbox and the lake, a
ClickHouse client, the lake bucket, read limits, the registry, the contracts); infra builds
it from a runtime (`infra.pipeline.ingestor`).

Inbox entries that are not uploads (links, folders, FIFOs, bad names: see ingest.inbox) are
recorded as rejected with their reason and batch version 0; nothing of them is read or stored.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import uuid
from collections import defaultdict
from collections.abc import Iterable
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from clickhouse_connect.driver.client import Client

from contracts.loader import Contracts
from contracts.registry import Registry
from ingest.buffer import Buffer
from ingest.inbox import EntryRefused, InboxFile, list_inbox
from ingest.lake import Lake
from ingest.manifest import read_manifest
from ingest.outcomes import FileResult, Upload, entry_refused, loaded_reason, upload_result
from ingest.policy import (
    DATA_FAILURES,
    INFRASTRUCTURE,
    batch_refusal,
    format_refusal,
    short_reason,
)
from ingest.prepare import prepare
from ingest.readers import ReadLimits, UnreadableFile, detect_format, too_large
from ingest.versions import BatchCommit, Versions, fingerprint

if TYPE_CHECKING:
    from minio import Minio  # the platform's object store (hqlake[platform])

log = logging.getLogger(__name__)


class Ingestor:
    def __init__(
        self,
        s3: Minio | None,
        ch: Client,
        *,
        lake_bucket: str,
        limits: ReadLimits,
        registry: Registry,
        contract_set: Contracts,
        run_id: str | None = None,
        lake: Lake | None = None,
    ):
        self.s3 = s3
        self.limits = limits
        self.registry = registry
        self.contracts = contract_set
        self.run_id = run_id or uuid.uuid4().hex[:12]
        self.tz = contract_set.timeliness.timezone
        self.lake = lake or Lake(s3, lake_bucket)
        self.versions = Versions(ch)
        self.buffer = Buffer(ch, self.run_id, ZoneInfo(self.tz))

    # ---------------------------------------------------------------- entry point
    def ingest(
        self, inbox: str, business_date: dt.date, org_codes: Iterable[str] | None = None
    ) -> list[FileResult]:
        """Ingest every batch of `business_date` in the inbox, or only those of `org_codes`
        (the daily DAG maps one task per organisation)."""
        files = list_inbox(inbox, business_date, self.s3)
        if org_codes is not None:
            wanted = set(org_codes)
            files = [f for f in files if f.org_code in wanted]
        return self.ingest_files(files, business_date)

    def ingest_files(self, files: list[InboxFile], business_date: dt.date) -> list[FileResult]:
        """Ingest listed inbox entries of `business_date` (`ingest` lists them; the pre-flight
        check lists a hospital's batch folder with `ingest.inbox.list_batch_folder`)."""
        groups: dict[tuple[str, str], list[InboxFile]] = defaultdict(list)
        results: list[FileResult] = []
        for f in files:
            if f.refusal:
                results.append(self._refuse_entry(f, f.refusal))
            else:
                groups[(f.org_code, f.dataset)].append(f)
        self.versions.read(business_date, {ds for _, ds in groups} & set(self.contracts.datasets))
        for (org, dataset), members in sorted(groups.items()):
            results += self._isolated_batch(org, dataset, business_date, members)
        self.buffer.flush(force=True)
        self.buffer.write_log_and_commit()
        return results

    # ---------------------------------------------------------------- one batch
    def _isolated_batch(
        self, org: str, dataset: str, day: dt.date, members: list[InboxFile]
    ) -> list[FileResult]:
        """One batch; a failure of its content is recorded for each of its files, the batch
        is not committed and the rows it buffered are dropped."""
        mark = self.buffer.mark()
        try:
            return self._ingest_batch(org, dataset, day, members)
        except INFRASTRUCTURE:
            raise
        except DATA_FAILURES as exc:
            log.exception("batch %s/%s/%s could not be processed", org, dataset, day)
            self.buffer.drop_batch(mark, org, dataset)
            reason = f"was not loaded: its batch could not be processed ({short_reason(exc)})"
            return [self._refuse_entry(f, reason) for f in members]

    def _ingest_batch(
        self, org: str, dataset: str, day: dt.date, members: list[InboxFile]
    ) -> list[FileResult]:
        uploads, results = [], []
        for f in sorted(members, key=lambda m: (m.received_at, m.name)):
            if reason := too_large(f.size, self.limits):  # refused before it fills memory
                results.append(self._refuse_entry(f, reason))
                continue
            try:
                data = f.read()
            except EntryRefused as exc:  # changed after the listing: nothing of it was read
                results.append(self._refuse_entry(f, str(exc)))
                continue
            uploads.append(Upload(f, data, hashlib.sha256(data).hexdigest(), detect_format(f.name)))
        if not uploads:
            return results
        return results + self._ingest_uploads(org, dataset, day, uploads)

    def _ingest_uploads(
        self, org: str, dataset: str, day: dt.date, uploads: list[Upload]
    ) -> list[FileResult]:
        refusal = batch_refusal(self.registry, self.contracts, org, dataset, day)
        if refusal:
            return [self._reject(u, refusal, version=0) for u in uploads]

        manifest = next((u for u in uploads if u.source.is_manifest), None)
        data_files, duplicates, seen = [], [], {}
        for u in uploads:
            if u.source.is_manifest:
                continue
            if u.sha256 in seen:
                duplicates.append((u, seen[u.sha256]))
            else:
                seen[u.sha256] = u.source.name
                data_files.append(u)
        batch_fingerprint = fingerprint(data_files, manifest)

        current = self.versions.current(org, dataset)
        if current and current[1] == batch_fingerprint:
            note = f"already loaded as version {current[0]}; nothing changed"
            return [upload_result(u, "duplicate", note, current[0]) for u in uploads]

        version = (current[0] if current else 0) + 1
        self.versions.clear_uncommitted(org, dataset, day, version)
        corrects = f"; correction, replaces version {current[0]}" if current else ""
        results = [self._load_file(u, dataset, day, version, corrects) for u in data_files]
        results += [
            upload_result(
                u, "duplicate", f"byte-identical to {original} in the same batch", version
            )
            for u, original in duplicates
        ]
        manifest_count, manifest_problem = None, None
        if manifest:
            manifest_count, manifest_problem = read_manifest(manifest.data)
            rows = sum(r.rows_read for r in results if r.status == "loaded")
            if manifest_problem is None and manifest_count != rows:
                manifest_problem = f"manifest row_count {manifest_count} but {rows} rows were read"
            results.append(
                upload_result(
                    manifest,
                    "loaded",
                    manifest_problem or f"manifest row_count {manifest_count} agrees",
                    version,
                )
            )
        commit = BatchCommit.of(
            version,
            batch_fingerprint,
            uploads,
            results,
            (manifest_count, manifest_problem),
            self.run_id,
            dt.datetime.now(self.buffer.tz),
        )
        self.buffer.commit(commit, results)
        self.versions.committed(commit)
        return results

    # ---------------------------------------------------------------- one file
    def _load_file(
        self, u: Upload, dataset: str, day: dt.date, version: int, corrects: str
    ) -> FileResult:
        if u.fmt is None:
            return self._reject(u, format_refusal(u.source.name), version)
        try:
            contract = self.contracts.dataset(dataset)
            prepared = prepare(u, contract, day, version, self.limits, self.run_id, self.tz)
        except UnreadableFile as exc:
            return self._reject(u, f"{u.source.name} {exc}", version)
        except DATA_FAILURES as exc:  # a file we failed to parse must not stop the others
            log.exception("could not process %s", u.source.path)
            return self._reject(
                u, f"{u.source.name} could not be processed: {short_reason(exc)}", version
            )

        lake_object = self.lake.put_loaded(
            u,
            dataset,
            day,
            version,
            prepared.typed_parquet,
            prepared.quarantine_parquet,
            prepared.drift_parquet,
        )
        if prepared.lineage.num_rows:
            self.buffer.add_rows(dataset, prepared.lineage)
        if prepared.quarantine is not None:
            self.buffer.add_quarantine(prepared.quarantine)

        conformed = prepared.conformed
        result = upload_result(u, "loaded", loaded_reason(conformed, corrects), version)
        result.rows_read, result.rows_loaded, result.rows_quarantined = (
            prepared.rows_read,
            prepared.lineage.num_rows,
            conformed.quarantine.height,
        )
        result.encoding = prepared.encoding
        result.extra_columns = conformed.extra_columns
        result.missing_columns = conformed.missing_required + conformed.missing_optional
        result.lake_object = lake_object
        return result

    # ---------------------------------------------------------------- refusals
    def _refuse_entry(self, f: InboxFile, reason: str) -> FileResult:
        """An entry refused unread, or a file of a failed batch: logged alone, version 0."""
        result = entry_refused(f, reason)
        self.buffer.log(result)
        return result

    def _reject(self, u: Upload, reason: str, version: int) -> FileResult:
        """A read file refused: its bytes are kept under rejected/."""
        result = upload_result(u, "rejected", reason, version)
        result.lake_object = self.lake.put_rejected(u)
        if version == 0:  # refused batches have no version to commit: log the refusal alone
            self.buffer.log(result)
        return result
