"""What ingestion records of every inbox entry: a `FileResult` per file and batch version.

A FileResult is also the row of `dq.ingest_file` (its fields, with the run id and the time
written; see ingest.buffer), so the file log's columns are these fields and nothing restates
them.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ingest.conform import Conformed
from ingest.inbox import InboxFile
from ingest.readers import MAX_REASON_CHARS, brief, detect_format, short_list


@dataclass
class Upload:
    """An inbox file read into memory, with its content hash and format (None: not allowed)."""

    source: InboxFile
    data: bytes
    sha256: str
    fmt: str | None


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


def upload_result(u: Upload, status: str, reason: str, version: int) -> FileResult:
    """The outcome of a file that was read."""
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


def entry_refused(f: InboxFile, reason: str) -> FileResult:
    """An inbox entry refused without reading it (or a file of a batch that failed): version
    0, no content hash, nothing of it stored."""
    return FileResult(
        org_code=f.org_code,
        dataset=f.dataset,
        business_date=f.business_date.isoformat(),
        file=f.path,
        status="rejected",
        reason=f"{f.name} {reason}",
        received_at=f.received_at.isoformat(),
        format=detect_format(f.name) or "",
    )


def loaded_reason(conformed: Conformed, corrects: str) -> str:
    """What a loaded file's uploader should know: quarantined rows, unknown and missing
    columns, and `corrects` ("; correction, replaces version N") when it is a correction."""
    notes = []
    if quarantined := conformed.quarantine.height:
        notes.append(f"{quarantined} rows quarantined")
    if conformed.extra_columns:
        notes.append(
            "schema drift: unknown columns " + short_list(conformed.extra_columns) + " kept aside"
        )
    if conformed.missing_required:
        notes.append("missing required columns " + short_list(conformed.missing_required))
    if conformed.missing_optional:
        notes.append("missing optional columns " + short_list(conformed.missing_optional))
    return "; ".join(notes) + corrects if notes else corrects[2:]
