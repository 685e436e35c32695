"""Ingest one business date: inbox -> lake (original, typed Parquet, quarantine) -> ClickHouse raw.

Batches and versions. The files of one (organisation, dataset, business date) are a batch.
Its fingerprint is the set of distinct file contents (sha256) plus the manifest. When the
fingerprint equals the latest committed version's, nothing is loaded (a re-run, or a
byte-identical re-upload). When it differs, the whole batch is loaded again as version N+1,
which replaces version N for everything downstream; older versions stay in raw as history.

A load commits by writing its dq.batch row last. Rows of an uncommitted version (a crash
half-way) are deleted before the version is loaded again, so a re-run never duplicates rows.

Failure isolation: a file that cannot be read or typed is rejected with its reason and the
others carry on. Everything a file's bytes decide (parsing, typing, building its Parquet) runs
before anything is written for it, and any failure there, a native library's panic included
(polars raises `PanicException`, a `BaseException`), is that file's rejection; a failure
inside one batch outside its files is that batch's, recorded for each of its files, and the
batch is not committed. Errors of the lake, the warehouse or the inbox storage themselves
(`_INFRASTRUCTURE`) propagate, so the scheduler retries the task instead of recording
infrastructure trouble as bad data; KeyboardInterrupt and SystemExit are never caught.

Inbox entries that are not uploads (links, folders, FIFOs, bad names: see ingest.inbox) are
recorded as rejected with their reason and batch version 0; nothing of them is read or stored.

Lake keys (under `<dataset>/<date>/<org>/v<N>/`): `raw/original/<name>`, `raw/typed/<name>
.parquet`, `quarantine/<name>.parquet`, `drift/<name>.parquet`, with the file's full name
percent-encoded outside letters, digits and `-_.()`, so files sharing a stem (visits.a.csv,
visits.b.csv, visits.jsonl) never overwrite each other. Refused files go to
`rejected/<date>/<org>/<dataset>/<sha256>/<name>`: one key per content, so a changed file
refused again does not overwrite the copy an earlier record points to.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
import json
import logging
import uuid
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import urllib3.exceptions
from clickhouse_connect.driver.exceptions import ClickHouseError
from minio.error import MinioException
from polars.exceptions import PanicException

from contracts.loader import Contracts, contracts
from contracts.registry import Registry, load_registry
from infra.runtime import Runtime
from ingest.conform import LINE, Conformed, conform
from ingest.inbox import EntryRefused, InboxFile, list_inbox, printable
from ingest.readers import (
    MAX_REASON_CHARS,
    ReadLimits,
    UnreadableFile,
    brief,
    detect_format,
    read_upload,
    short_list,
    too_large,
)

log = logging.getLogger(__name__)
_TZ = ZoneInfo("Asia/Shanghai")

# What a file's or a batch's content can raise: every Exception, and the panics of native
# libraries, which are BaseExceptions. KeyboardInterrupt and SystemExit are not in it.
_DATA_FAILURES = (Exception, PanicException)
# Trouble of the lake, the warehouse or the inbox storage: never a batch's recorded failure.
_INFRASTRUCTURE = (OSError, MinioException, urllib3.exceptions.HTTPError, ClickHouseError)
# dq.batch.manifest_row_count is UInt64; the bound is Int64's so that arithmetic downstream
# (read minus declared) cannot overflow.
_MAX_ROW_COUNT = 2**63 - 1
_KEY_SAFE = frozenset("-_.()")


@dataclass
class FileResult:
    org_code: str
    dataset: str
    business_date: str
    file: str
    status: str  # loaded | duplicate | rejected
    reason: str
    rows_read: int = 0
    rows_loaded: int = 0
    rows_quarantined: int = 0
    batch_version: int = 0
    sha256: str = ""
    size: int = 0
    received_at: str = ""
    format: str = ""
    encoding: str = ""
    extra_columns: list[str] = field(default_factory=list)
    missing_columns: list[str] = field(default_factory=list)
    lake_object: str = ""

    @property
    def needs_attention(self) -> bool:
        """Refused, or loaded with something to fix; not a re-run or an agreeing manifest."""
        if self.status == "rejected":
            return True
        return bool(self.reason) and not self.reason.endswith(("agrees", "nothing changed"))

    def public(self) -> dict:
        """The fields `hqlake ingest --format json` prints."""
        keys = (
            "org_code",
            "dataset",
            "business_date",
            "file",
            "status",
            "reason",
            "rows_read",
            "rows_loaded",
            "rows_quarantined",
            "batch_version",
        )
        return {k: getattr(self, k) for k in keys}


@dataclass
class _Upload:
    source: InboxFile
    data: bytes
    sha256: str
    fmt: str | None


@dataclass
class _Prepared:
    """Everything one file's bytes decide, computed before anything of it is written."""

    rows_read: int
    encoding: str
    conformed: Conformed
    lineage: pa.Table
    typed_parquet: bytes
    quarantine: pa.Table | None
    quarantine_parquet: bytes | None
    drift_parquet: bytes | None


def _put(rt: Runtime, key: str, data: bytes, content_type: str = "application/octet-stream") -> str:
    rt.s3.put_object(
        rt.settings.lake_bucket, key, io.BytesIO(data), len(data), content_type=content_type
    )
    return f"s3://{rt.settings.lake_bucket}/{key}"


class _HugeInt(str):
    """A JSON integer too long to be any count, kept as its text: Python refuses to convert
    more than 4,300 digits, and nothing near that many is in range."""


def _json_int(text: str) -> int | _HugeInt:
    return int(text) if len(text) <= 40 else _HugeInt(text)


def lake_name(name: str) -> str:
    """`name` as one segment of a lake key: letters and digits of any script and `-_.()` are
    kept, everything else (`%` included) is percent-encoded as UTF-8, so distinct names give
    distinct keys and no name adds or climbs a path segment ("." and ".." are encoded)."""
    safe = _KEY_SAFE if name.strip(".") else _KEY_SAFE - {"."}
    return "".join(
        c if c.isalnum() or c in safe else "".join(f"%{b:02X}" for b in c.encode()) for c in name
    )


def _short(exc: BaseException, limit: int = 200) -> str:
    """An exception as a short one-line reason: type, message escaped and cut."""
    text = printable(str(exc))
    return f"{type(exc).__name__}: {text[:limit]}{'...' if len(text) > limit else ''}"


def _parquet_bytes(table: pa.Table) -> bytes:
    sink = io.BytesIO()
    pq.write_table(table, sink, compression="zstd")
    return sink.getvalue()


class Ingestor:
    def __init__(
        self,
        rt: Runtime,
        registry: Registry | None = None,
        contract_set: Contracts | None = None,
        run_id: str | None = None,
        limits: ReadLimits | None = None,
    ):
        self.rt = rt
        self.limits = limits or rt.settings.read_limits
        self.registry = registry or load_registry()
        self.contracts = contract_set or contracts()
        self.run_id = run_id or uuid.uuid4().hex[:12]
        self._committed: dict[tuple[str, str], tuple[int, str]] = {}
        self._leftovers: set[tuple[str, str, int]] = set()
        self._raw_buffer: dict[str, list[pa.Table]] = defaultdict(list)
        self._quarantine_buffer: list[pa.Table] = []
        self._file_log: list[FileResult] = []
        self._batch_rows: list[list] = []

    # ---------------------------------------------------------------- entry point
    def ingest(
        self, inbox: str, business_date: dt.date, org_codes: Iterable[str] | None = None
    ) -> list[FileResult]:
        """Ingest every batch of `business_date` in the inbox, or only those of `org_codes`
        (the daily DAG maps one task per organisation)."""
        files = list_inbox(inbox, business_date, self.rt.s3)
        if org_codes is not None:
            wanted = set(org_codes)
            files = [f for f in files if f.org_code in wanted]
        groups: dict[tuple[str, str], list[InboxFile]] = defaultdict(list)
        results: list[FileResult] = []
        for f in files:
            if f.refusal:
                results.append(self._refuse_entry(f, f.refusal))
            else:
                groups[(f.org_code, f.dataset)].append(f)
        self._read_state(business_date, {ds for _, ds in groups})
        for (org, dataset), members in sorted(groups.items()):
            results += self._isolated_batch(org, dataset, business_date, members)
        self._flush(force=True)
        self._write_log_and_commit()
        return results

    # ---------------------------------------------------------------- one batch
    def _refusal(self, org: str, dataset: str, day: dt.date) -> str | None:
        reason = self.registry.why_not_accepted(org, day)
        if reason:
            return reason
        contract = self.contracts.datasets.get(dataset)
        if contract is None:
            known = ", ".join(self.contracts.datasets)
            return f"unknown dataset {dataset!r}; the standard defines {known}"
        kind = self.registry.get(org).kind  # type: ignore[union-attr]
        if contract.kind != kind:
            return (
                f"dataset {dataset} is a {contract.kind} dataset; {org} is registered as a {kind}"
            )
        return None

    def _isolated_batch(
        self, org: str, dataset: str, day: dt.date, members: list[InboxFile]
    ) -> list[FileResult]:
        """One batch; a failure of its content is recorded for each of its files, the batch
        is not committed and the rows it buffered are dropped (rows it already inserted are
        an uncommitted version, removed before that version is loaded again)."""
        logged, committing = len(self._file_log), len(self._batch_rows)
        try:
            return self._ingest_batch(org, dataset, day, members)
        except _INFRASTRUCTURE:
            raise
        except _DATA_FAILURES as exc:
            log.exception("batch %s/%s/%s could not be processed", org, dataset, day)
            # Buffered tables hold one file each, so one organisation each.
            self._raw_buffer[dataset] = [
                t for t in self._raw_buffer[dataset] if t["org_code"][0].as_py() != org
            ]
            self._quarantine_buffer = [
                t
                for t in self._quarantine_buffer
                if (t["org_code"][0].as_py(), t["dataset"][0].as_py()) != (org, dataset)
            ]
            del self._file_log[logged:], self._batch_rows[committing:]
            reason = f"was not loaded: its batch could not be processed ({_short(exc)})"
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
            uploads.append(
                _Upload(f, data, hashlib.sha256(data).hexdigest(), detect_format(f.name))
            )
        if not uploads:
            return results
        return results + self._ingest_uploads(org, dataset, day, uploads)

    def _ingest_uploads(
        self, org: str, dataset: str, day: dt.date, uploads: list[_Upload]
    ) -> list[FileResult]:
        refusal = self._refusal(org, dataset, day)
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
        fingerprint = hashlib.sha256(
            "\n".join(
                sorted(
                    [u.sha256 for u in data_files]
                    + ([f"manifest:{manifest.sha256}"] if manifest else [])
                )
            ).encode()
        ).hexdigest()

        current = self._committed.get((org, dataset))
        if current and current[1] == fingerprint:
            note = f"already loaded as version {current[0]}; nothing changed"
            return [self._result(u, "duplicate", note, current[0]) for u in uploads]

        version = (current[0] if current else 0) + 1
        self._clear_uncommitted(org, dataset, day, version)
        corrects = f"; correction, replaces version {current[0]}" if current else ""
        results = [self._load_file(u, dataset, day, version, corrects) for u in data_files]
        results += [
            self._result(u, "duplicate", f"byte-identical to {original} in the same batch", version)
            for u, original in duplicates
        ]
        manifest_count, manifest_problem = None, None
        if manifest:
            manifest_count, manifest_problem = self._read_manifest(manifest.data)
            rows = sum(r.rows_read for r in results if r.status == "loaded")
            if manifest_problem is None and manifest_count != rows:
                manifest_problem = f"manifest row_count {manifest_count} but {rows} rows were read"
            results.append(
                self._result(
                    manifest,
                    "loaded",
                    manifest_problem or f"manifest row_count {manifest_count} agrees",
                    version,
                )
            )
        self._commit(
            org,
            dataset,
            day,
            version,
            fingerprint,
            uploads,
            results,
            manifest_count,
            manifest_problem,
        )
        return results

    # ---------------------------------------------------------------- one file
    def _load_file(
        self, u: _Upload, dataset: str, day: dt.date, version: int, corrects: str
    ) -> FileResult:
        if u.fmt is None:
            return self._reject(
                u,
                f"{u.source.name} has an extension the standard does not "
                "allow (csv, csv.gz, parquet, jsonl, xlsx)",
                version,
            )
        try:
            prepared = self._prepare(u, dataset, day, version)
        except UnreadableFile as exc:
            return self._reject(u, f"{u.source.name} {exc}", version)
        except _DATA_FAILURES as exc:  # a file we failed to parse must not stop the others
            log.exception("could not process %s", u.source.path)
            return self._reject(
                u, f"{u.source.name} could not be processed: {_short(exc)}", version
            )

        base = f"{dataset}/{day}/{u.source.org_code}/v{version}"
        name = lake_name(u.source.name)
        lake_object = _put(self.rt, f"raw/original/{base}/{name}", u.data)
        _put(self.rt, f"raw/typed/{base}/{name}.parquet", prepared.typed_parquet)
        if prepared.lineage.num_rows:
            self._raw_buffer[dataset].append(prepared.lineage)
            self._flush()
        if prepared.quarantine is not None and prepared.quarantine_parquet is not None:
            _put(self.rt, f"quarantine/{base}/{name}.parquet", prepared.quarantine_parquet)
            self._quarantine_buffer.append(prepared.quarantine)
        if prepared.drift_parquet is not None:
            _put(self.rt, f"drift/{base}/{name}.parquet", prepared.drift_parquet)

        conformed = prepared.conformed
        quarantined = conformed.quarantine.height
        notes = []
        if quarantined:
            notes.append(f"{quarantined} rows quarantined")
        if conformed.extra_columns:
            notes.append(
                "schema drift: unknown columns "
                + short_list(conformed.extra_columns)
                + " kept aside"
            )
        if conformed.missing_required:
            notes.append("missing required columns " + short_list(conformed.missing_required))
        if conformed.missing_optional:
            notes.append("missing optional columns " + short_list(conformed.missing_optional))
        result = self._result(
            u,
            "loaded",
            "; ".join(notes) + corrects if notes else (corrects[2:] if corrects else ""),
            version,
        )
        result.rows_read, result.rows_loaded, result.rows_quarantined = (
            prepared.rows_read,
            prepared.lineage.num_rows,
            quarantined,
        )
        result.encoding = prepared.encoding
        result.extra_columns = conformed.extra_columns
        result.missing_columns = conformed.missing_required + conformed.missing_optional
        result.lake_object = lake_object
        return result

    def _prepare(self, u: _Upload, dataset: str, day: dt.date, version: int) -> _Prepared:
        """Parse, type and encode one file; writes nothing."""
        strings = read_upload(u.data, u.fmt or "", self.limits)
        conformed = conform(strings, self.contracts.dataset(dataset))
        lineage = self._lineage(conformed, u, day, version)
        quarantine = (
            self._quarantine_rows(conformed, u, dataset, day, version)
            if conformed.quarantine.height
            else None
        )
        rows_read, quarantined = strings.rows_read, conformed.quarantine.height
        if rows_read != lineage.num_rows + quarantined:  # the accounting promise; never expected
            raise AssertionError(f"{rows_read} read != {lineage.num_rows} + {quarantined}")
        return _Prepared(
            rows_read=rows_read,
            encoding=strings.encoding or "",
            conformed=conformed,
            lineage=lineage,
            typed_parquet=_parquet_bytes(lineage),
            quarantine=quarantine,
            quarantine_parquet=_parquet_bytes(quarantine) if quarantine is not None else None,
            drift_parquet=(
                _parquet_bytes(conformed.extra.to_arrow()) if conformed.extra is not None else None
            ),
        )

    def _lineage(self, conformed: Conformed, u: _Upload, day: dt.date, version: int) -> pa.Table:
        typed = conformed.typed
        n = typed.num_rows
        lines = typed.column(LINE)
        table = typed.drop_columns([LINE])
        received = u.source.received_at
        return (
            table.append_column("org_code", pa.array([u.source.org_code] * n, pa.string()))
            .append_column("business_date", pa.array([day] * n, pa.date32()))
            .append_column("batch_version", pa.array([version] * n, pa.uint32()))
            .append_column("source_file", pa.array([u.source.path] * n, pa.string()))
            .append_column("source_line", lines)
            .append_column(
                "received_at", pa.array([received] * n, pa.timestamp("s", tz="Asia/Shanghai"))
            )
        )

    def _quarantine_rows(
        self, conformed: Conformed, u: _Upload, dataset: str, day: dt.date, version: int
    ) -> pa.Table:
        return conformed.quarantine.select(
            pl.lit(u.source.org_code).alias("org_code"),
            pl.lit(dataset).alias("dataset"),
            pl.lit(day).alias("business_date"),
            pl.lit(version, pl.UInt32).alias("batch_version"),
            pl.lit(u.source.path).alias("source_file"),
            pl.col(LINE).cast(pl.UInt32).alias("source_line"),
            "record_key",
            "fields",
            "reasons",
            "raw_record",
            pl.lit(self.run_id).alias("run_id"),
        ).to_arrow()

    # ---------------------------------------------------------------- bookkeeping
    def _result(self, u: _Upload, status: str, reason: str, version: int) -> FileResult:
        return FileResult(
            org_code=u.source.org_code,
            dataset=u.source.dataset,
            business_date=u.source.business_date.isoformat(),
            file=u.source.path,
            status=status,
            reason=brief(reason, MAX_REASON_CHARS),
            batch_version=version,
            sha256=u.sha256,
            size=len(u.data),
            received_at=u.source.received_at.isoformat(),
            format=u.fmt or "",
        )

    def _refuse_entry(self, f: InboxFile, reason: str) -> FileResult:
        """An inbox entry refused without reading it (or a batch that failed): recorded with
        version 0; no bytes of it are stored."""
        result = FileResult(
            org_code=f.org_code,
            dataset=f.dataset,
            business_date=f.business_date.isoformat(),
            file=f.path,
            status="rejected",
            reason=f"{f.name} {reason}",
            received_at=f.received_at.isoformat(),
            format=detect_format(f.name) or "",
        )
        self._file_log.append(result)
        return result

    def _reject(self, u: _Upload, reason: str, version: int) -> FileResult:
        src = u.source
        folder = "/".join(
            lake_name(part) for part in (str(src.business_date), src.org_code, src.dataset)
        )
        key = f"rejected/{folder}/{u.sha256}/{lake_name(src.name)}"
        result = self._result(u, "rejected", reason, version)
        result.lake_object = _put(self.rt, key, u.data)
        if version == 0:  # refused batches have no version to commit: log the refusal alone
            self._file_log.append(result)
        return result

    def _read_state(self, day: dt.date, datasets: set[str]) -> None:
        """Committed versions of the day, and versions with rows but no commit (a crash)."""
        self._committed = {
            (org, ds): (int(version), fingerprint)
            for org, ds, version, fingerprint in self.rt.ch.query(
                "SELECT org_code, dataset, batch_version, fingerprint FROM dq.batch FINAL"
                " WHERE business_date = {d:Date} AND (org_code, dataset, business_date,"
                " batch_version) IN (SELECT org_code, dataset, business_date, batch_version"
                " FROM raw.current_batch WHERE business_date = {d:Date})",
                parameters={"d": day},
            ).result_rows
        }
        present: list[tuple[str, str, int]] = [
            (org, ds, int(v))
            for org, ds, v in self.rt.ch.query(
                "SELECT DISTINCT org_code, dataset, batch_version FROM dq.quarantine"
                " WHERE business_date = {d:Date}",
                parameters={"d": day},
            ).result_rows
        ]
        for ds in sorted(datasets & set(self.contracts.datasets)):
            present += [
                (org, ds, int(v))
                for org, v in self.rt.ch.query(
                    f"SELECT DISTINCT org_code, batch_version FROM raw.`{ds}`"  # noqa: S608
                    " WHERE business_date = {d:Date}",
                    parameters={"d": day},
                ).result_rows
            ]
        self._leftovers = {
            (org, ds, v) for org, ds, v in present if v > self._committed.get((org, ds), (0, ""))[0]
        }

    def _clear_uncommitted(self, org: str, dataset: str, day: dt.date, version: int) -> None:
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
        self.rt.ch.command(f"DELETE FROM raw.`{dataset}` WHERE {where}", parameters=params)  # noqa: S608
        self.rt.ch.command(
            f"DELETE FROM dq.quarantine WHERE {where} AND dataset = {{ds:String}}",  # noqa: S608
            parameters=params,
        )

    def _flush(self, force: bool = False, threshold: int = 200_000) -> None:
        """Insert buffered rows: one insert per dataset instead of one per file."""
        for dataset, tables in self._raw_buffer.items():
            if tables and (force or sum(t.num_rows for t in tables) >= threshold):
                self.rt.ch.insert_arrow(f"raw.`{dataset}`", pa.concat_tables(tables))
                tables.clear()
        if self._quarantine_buffer and (force or len(self._quarantine_buffer) > 100):
            self.rt.ch.insert_arrow("dq.quarantine", pa.concat_tables(self._quarantine_buffer))
            self._quarantine_buffer.clear()

    def _write_log_and_commit(self) -> None:
        """File outcomes, then the commit rows: written after every data row of the run."""
        self._log_files(self._file_log)
        if self._batch_rows:
            self.rt.ch.insert("dq.batch", self._batch_rows, column_names=_BATCH_COLUMNS)
        self._file_log, self._batch_rows = [], []

    @staticmethod
    def _read_manifest(data: bytes) -> tuple[int | None, str | None]:
        """(row_count, None), or (None, the manifest problem)."""
        try:
            manifest = json.loads(data.decode("utf-8-sig"), parse_int=_json_int)
        except (ValueError, RecursionError) as exc:  # bad UTF-8 or JSON, nesting too deep
            return None, f"manifest is not valid JSON ({_short(exc, 120)})"
        if not isinstance(manifest, dict) or "row_count" not in manifest:
            return None, "manifest has no row_count"
        count = manifest["row_count"]
        # bool is an int in Python; JSON's true is not a count. 3.0 and "3" are not integers.
        if type(count) is not int or not 0 <= count <= _MAX_ROW_COUNT:
            shown = count if isinstance(count, _HugeInt) else json.dumps(count, ensure_ascii=False)
            shown = printable(shown)
            shown = shown if len(shown) <= 40 else shown[:40] + "..."
            return None, (
                f"manifest row_count must be a JSON integer from 0 to {_MAX_ROW_COUNT}; got {shown}"
            )
        return count, None

    def _log_files(self, results: list[FileResult]) -> None:
        now = dt.datetime.now(_TZ)
        rows = [
            [
                r.org_code,
                r.dataset,
                dt.date.fromisoformat(r.business_date),
                r.file,
                r.sha256,
                r.size,
                dt.datetime.fromisoformat(r.received_at),
                r.format,
                r.encoding,
                r.status,
                r.reason,
                r.rows_read,
                r.rows_loaded,
                r.rows_quarantined,
                r.batch_version,
                r.extra_columns,
                r.missing_columns,
                r.lake_object,
                self.run_id,
                now,
            ]
            for r in results
        ]
        if rows:
            self.rt.ch.insert(
                "dq.ingest_file",
                rows,
                column_names=[
                    "org_code",
                    "dataset",
                    "business_date",
                    "file",
                    "sha256",
                    "size",
                    "received_at",
                    "format",
                    "encoding",
                    "status",
                    "reason",
                    "rows_read",
                    "rows_loaded",
                    "rows_quarantined",
                    "batch_version",
                    "extra_columns",
                    "missing_columns",
                    "lake_object",
                    "run_id",
                    "ingested_at",
                ],
            )

    def _commit(
        self,
        org: str,
        dataset: str,
        day: dt.date,
        version: int,
        fingerprint: str,
        uploads: list[_Upload],
        results: list[FileResult],
        manifest_count: int | None,
        manifest_problem: str | None,
    ) -> None:
        self._file_log += results
        loaded = [r for r in results if r.status == "loaded"]
        received = [u.source.received_at for u in uploads]
        self._batch_rows.append(
            [
                org,
                dataset,
                day,
                version,
                fingerprint,
                [u.source.path for u in uploads],
                sum(r.rows_read for r in loaded),
                sum(r.rows_loaded for r in loaded),
                sum(r.rows_quarantined for r in loaded),
                manifest_count,
                manifest_problem,
                min(received),
                max(received),
                self.run_id,
                dt.datetime.now(_TZ),
            ]
        )
        self._committed[(org, dataset)] = (version, fingerprint)


_BATCH_COLUMNS = [
    "org_code",
    "dataset",
    "business_date",
    "batch_version",
    "fingerprint",
    "files",
    "rows_read",
    "rows_loaded",
    "rows_quarantined",
    "manifest_row_count",
    "manifest_problem",
    "first_received_at",
    "last_received_at",
    "run_id",
    "ingested_at",
]


def ingest_date(
    rt: Runtime, inbox: str, business_date: dt.date, registry: Registry | None = None
) -> list[FileResult]:
    return Ingestor(rt, registry).ingest(inbox, business_date)
