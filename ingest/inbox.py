"""List the files of one business date in an inbox: a local directory or an S3 prefix.

Layout (upload standard, section 2): `<org_code>/<dataset>/<YYYY-MM-DD>/<file>`. The receive
time is the object's last-modified time, or a file's mtime in a directory inbox. Top-level
names starting with `_` or `.` are reserved (registry copies, ground truth, staging).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse
from zoneinfo import ZoneInfo

from minio import Minio

MANIFEST = "_manifest.json"
_TZ = ZoneInfo("Asia/Shanghai")


@dataclass(frozen=True)
class InboxFile:
    org_code: str
    dataset: str
    business_date: dt.date
    name: str
    path: str  # inbox-relative: org/dataset/date/name
    size: int
    received_at: dt.datetime  # aware, Asia/Shanghai
    read: Callable[[], bytes]

    @property
    def is_manifest(self) -> bool:
        return self.name == MANIFEST


def _reserved(part: str) -> bool:
    return part.startswith(("_", "."))


def list_inbox(inbox: str, business_date: dt.date, s3: Minio | None = None) -> list[InboxFile]:
    if inbox.startswith("s3://"):
        if s3 is None:
            raise ValueError("an s3:// inbox needs an object-store client")
        return _list_s3(inbox, business_date, s3)
    return _list_directory(Path(inbox), business_date)


def _list_directory(root: Path, business_date: dt.date) -> list[InboxFile]:
    if not root.is_dir():
        raise FileNotFoundError(f"inbox directory {root} does not exist")
    day = business_date.isoformat()
    files = []
    for path in sorted(root.glob(f"*/*/{day}/*")):
        org, dataset = path.parts[-4], path.parts[-3]
        if _reserved(org) or not path.is_file():
            continue
        stat = path.stat()
        files.append(
            InboxFile(
                org_code=org,
                dataset=dataset,
                business_date=business_date,
                name=path.name,
                path=f"{org}/{dataset}/{day}/{path.name}",
                size=stat.st_size,
                received_at=dt.datetime.fromtimestamp(int(stat.st_mtime), _TZ),
                read=path.read_bytes,
            )
        )
    return files


def _list_s3(url: str, business_date: dt.date, s3: Minio) -> list[InboxFile]:
    parsed = urlparse(url)
    bucket, prefix = parsed.netloc, parsed.path.strip("/")
    prefix = f"{prefix}/" if prefix else ""
    day = business_date.isoformat()
    files = []
    for obj in s3.list_objects(bucket, prefix=prefix, recursive=True):
        relative = obj.object_name[len(prefix) :]
        parts = relative.split("/")
        if len(parts) != 4 or parts[2] != day or _reserved(parts[0]):
            continue

        def read(name: str = obj.object_name) -> bytes:
            response = s3.get_object(bucket, name)
            try:
                return response.read()
            finally:
                response.close()
                response.release_conn()

        files.append(
            InboxFile(
                org_code=parts[0],
                dataset=parts[1],
                business_date=business_date,
                name=parts[3],
                path=relative,
                size=obj.size or 0,
                received_at=obj.last_modified.astimezone(_TZ).replace(microsecond=0),
                read=read,
            )
        )
    return sorted(files, key=lambda f: f.path)
