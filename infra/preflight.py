"""`hqlake check`: the pre-flight check of one organisation's files on its own machine, with
no object storage and no persistent warehouse.

    check(path, org_code, day, registry) -> Checked

composes the platform's own steps, none re-implemented:

1. the files are listed as the inbox lists them (`ingest.inbox`): PATH is either a batch
   folder `PATH/<dataset>/<file>` (one organisation's day) or an inbox tree
   `PATH/<org>/<dataset>/<date>/<file>`, told apart by where the dataset folders are;
2. they are ingested by the same `Ingestor` (readers, typing, quarantine, manifests,
   versions) into a chDB warehouse in a temporary folder, migrated by `infra.schema`, with a
   lake that keeps nothing (`ingest.lake.NoLake`);
3. `expectations.preflight` judges them with the rules that need nothing but those files,
   and the quarantined rows are shown with their reasons;
4. the temporary folder is removed, whatever happened.

chDB opens one data path per process, so a check runs in a process of its own (the CLI's);
it never touches HQLAKE_HOME, SeaweedFS or a ClickHouse server.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from contracts.errors import OperatorError

if TYPE_CHECKING:
    from clickhouse_connect.driver.client import Client

    from contracts.registry import Registry
    from expectations.preflight import Preflight
    from ingest.inbox import InboxFile
    from ingest.outcomes import FileResult
    from ingest.readers import ReadLimits

BATCH_FOLDER = "batch folder"
INBOX_TREE = "inbox tree"


class CheckError(OperatorError):
    """The check cannot start: PATH, the organisation or the date is not what it needs."""


@dataclass
class Checked:
    path: Path
    layout: str
    files: list[FileResult]
    judged: Preflight
    quarantined: list[dict]  # the first rows each file sent to quarantine, with the reasons
    seconds: float

    def verdict(self) -> tuple[int, str]:
        """(exit code, why): 1 when the upload would not be accepted as it is — a blocking
        rule fails, a file would be refused (its rows would be lost), or no file could be
        checked at all; else 0."""
        refused = sum(f.status == "rejected" for f in self.files)
        why = [
            text
            for text, holds in (
                ("a blocking rule fails", self.judged.blocking),
                (f"{refused} of {len(self.files)} files would be refused", refused),
                ("no file could be checked", not self.judged.datasets_checked),
            )
            if holds
        ]
        return (1, "FAIL: " + "; ".join(why)) if why else (0, "OK: no blocking rule fails")


def _folders(path: Path) -> list[str]:
    """The sub-folders of `path` that can hold uploads (links are never followed; names
    starting with `_` or `.` are reserved, as in the inbox)."""
    with os.scandir(path) as entries:
        return sorted(
            e.name
            for e in entries
            if e.is_dir(follow_symlinks=False) and not e.name.startswith(("_", "."))
        )


def detect_layout(path: Path, datasets: set[str]) -> str:
    """BATCH_FOLDER when PATH's own folders are datasets, INBOX_TREE when its folders hold
    dataset folders; a PATH that is both or neither is refused with what was found."""
    if not path.is_dir():
        raise CheckError(f"{path} is not a folder; give the batch folder or the inbox folder")
    top = _folders(path)
    as_batch = [name for name in top if name in datasets]
    as_tree = [n for n in top if n not in datasets and set(_folders(path / n)) & datasets]
    shape = "PATH/<dataset>/<file> or PATH/<org>/<dataset>/<date>/<file>"
    if as_batch and as_tree:
        raise CheckError(
            f"{path} is ambiguous: dataset folders ({', '.join(as_batch)}) and organisation "
            f"folders ({', '.join(as_tree)}) side by side; check one layout at a time ({shape})"
        )
    if as_batch:
        return BATCH_FOLDER
    if as_tree:
        return INBOX_TREE
    raise CheckError(f"{path} holds no dataset folder; lay the files out as {shape}")


def list_files(path: Path, layout: str, org_code: str, day: dt.date) -> list[InboxFile]:
    """The entries to check: every file of a batch folder, or the organisation's files of
    `day` in an inbox tree; nothing to check is an operator mistake."""
    from ingest.inbox import list_batch_folder, list_inbox

    if layout == BATCH_FOLDER:
        files = list_batch_folder(str(path), org_code, day)
        if not files:
            raise CheckError(f"{path}: the dataset folders hold no file")
        return files
    files = [f for f in list_inbox(str(path), day) if f.org_code == org_code]
    if not files:
        orgs = _folders(path)
        if org_code not in orgs:
            shown = ", ".join(orgs[:5]) + (", ..." if len(orgs) > 5 else "")
            raise CheckError(f"{path} has no folder {org_code}; it has {shown}")
        raise CheckError(f"{path}/{org_code} has no files for {day} (<dataset>/{day}/<file>)")
    return files


@contextlib.contextmanager
def throwaway_warehouse() -> Iterator[Client]:
    """A migrated chDB warehouse in a temporary folder, removed on the way out."""
    import clickhouse_connect

    from infra.schema import migrate

    folder = Path(tempfile.mkdtemp(prefix="hqlake-check-"))
    try:
        ch = clickhouse_connect.get_client(dsn=f"chdb://{folder / 'chdb'}")
        try:
            migrate(ch)
            yield ch
        finally:
            ch.close()
    finally:
        shutil.rmtree(folder, ignore_errors=True)


# Quarantined rows shown per file: enough to see the pattern, as the e-mail's samples are.
QUARANTINE_SHOWN = 5


def quarantined_rows(ch: Client) -> list[dict]:
    """The first quarantined rows of every file, with why (the platform keeps them in
    dq.quarantine, where a hospital cannot look); personal data masked."""
    from contracts.pii import mask_key, mask_text

    rows = ch.query(
        "SELECT dataset, source_file, source_line, record_key, reasons FROM dq.quarantine"
        " ORDER BY dataset, source_file, source_line"
        " LIMIT {n:UInt32} BY source_file",
        parameters={"n": QUARANTINE_SHOWN},
    ).result_rows
    return [
        {
            "dataset": dataset,
            "file": file,
            "line": int(line),
            "record_key": mask_key(dataset, key) if key else None,
            "reasons": [mask_text(r) for r in reasons],
        }
        for dataset, file, line, key, reasons in rows
    ]


def resolve_org(registry: Registry, org_code: str, day: dt.date) -> None:
    """Refuse an organisation the registry does not know or does not accept on `day`."""
    reason = registry.why_not_accepted(org_code, day)
    if reason:
        raise CheckError(f"--org {org_code}: {reason}")


def check(
    path: Path,
    org_code: str,
    day: dt.date,
    registry: Registry,
    limits: ReadLimits | None = None,
) -> Checked:
    """Check the files at `path` as the platform would judge `org_code`'s uploads of `day`."""
    from contracts.loader import contracts
    from expectations.preflight import judge_batches
    from ingest.lake import NoLake
    from ingest.pipeline import Ingestor
    from ingest.readers import ReadLimits

    started = time.perf_counter()
    resolve_org(registry, org_code, day)
    contract_set = contracts()
    layout = detect_layout(path, set(contract_set.datasets))
    files = list_files(path, layout, org_code, day)
    with throwaway_warehouse() as ch:
        ingestor = Ingestor(
            None,
            ch,
            lake_bucket="",
            limits=limits or ReadLimits(),
            registry=registry,
            contract_set=contract_set,
            lake=NoLake(),
        )
        results = ingestor.ingest_files(files, day)
        judged = judge_batches(ch, registry, day, org_code)
        quarantined = quarantined_rows(ch)
    seconds = round(time.perf_counter() - started, 3)
    return Checked(path, layout, results, judged, quarantined, seconds)
