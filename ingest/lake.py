"""Where ingestion puts a file's bytes in the lake bucket.

Keys of a loaded file, under `<dataset>/<date>/<org>/v<N>/`: `raw/original/<name>`,
`raw/typed/<name>.parquet`, `quarantine/<name>.parquet`, `drift/<name>.parquet`, with the
file's full name percent-encoded outside letters, digits and `-_.()`, so files sharing a stem
(visits.a.csv, visits.b.csv, visits.jsonl) never overwrite each other. Refused files go to
`rejected/<date>/<org>/<dataset>/<sha256>/<name>`: one key per content, so a changed file
refused again does not overwrite the copy an earlier record points to. A segment whose
encoded form would pass `MAX_SEGMENT` characters (object stores refuse long keys, and one
refused key must not stop the day) keeps its first characters and ends in `~` and a digest
of the whole name; `~` is always encoded in a name, so such a segment never equals another.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import io
from typing import TYPE_CHECKING

from ingest.outcomes import Upload

if TYPE_CHECKING:
    from minio import Minio  # the platform's object store (hqlake[platform])

_KEY_SAFE = frozenset("-_.()")
MAX_SEGMENT = 120


def lake_name(name: str) -> str:
    """`name` as one segment of a lake key: letters and digits of any script and `-_.()` are
    kept, everything else (`%` and `~` included) is percent-encoded as UTF-8, so distinct
    names give distinct keys and no name adds or climbs a path segment ("." and ".." are
    encoded); a long one is cut and made unique by a digest (module docstring)."""
    safe = _KEY_SAFE if name.strip(".") else _KEY_SAFE - {"."}
    encoded = "".join(
        c if c.isalnum() or c in safe else "".join(f"%{b:02X}" for b in c.encode()) for c in name
    )
    if len(encoded.encode()) <= MAX_SEGMENT:
        return encoded
    digest = hashlib.sha256(name.encode()).hexdigest()[:16]
    head = encoded.encode()[: MAX_SEGMENT - len(digest) - 1].decode(errors="ignore")
    escape = head.rfind("%")
    if escape >= len(head) - 2:  # never end inside a %XX escape
        head = head[:escape]
    return f"{head}~{digest}"


class Lake:
    """The lake bucket on an S3 client; every put returns the object's `s3://` address."""

    def __init__(self, s3: Minio, bucket: str):
        self.s3 = s3
        self.bucket = bucket

    def put(self, key: str, data: bytes, content_type: str = "application/octet-stream") -> str:
        self.s3.put_object(self.bucket, key, io.BytesIO(data), len(data), content_type=content_type)
        return f"s3://{self.bucket}/{key}"

    def put_loaded(
        self,
        u: Upload,
        dataset: str,
        day: dt.date,
        version: int,
        typed: bytes,
        quarantine: bytes | None,
        drift: bytes | None,
    ) -> str:
        """The original bytes and the Parquet of one loaded file of batch version `version`;
        returns the original's address."""
        base = f"{dataset}/{day}/{u.source.org_code}/v{version}"
        name = lake_name(u.source.name)
        original = self.put(f"raw/original/{base}/{name}", u.data)
        self.put(f"raw/typed/{base}/{name}.parquet", typed)
        if quarantine is not None:
            self.put(f"quarantine/{base}/{name}.parquet", quarantine)
        if drift is not None:
            self.put(f"drift/{base}/{name}.parquet", drift)
        return original

    def put_rejected(self, u: Upload) -> str:
        """The bytes of a refused file, one key per content."""
        src = u.source
        folder = "/".join(
            lake_name(part) for part in (str(src.business_date), src.org_code, src.dataset)
        )
        return self.put(f"rejected/{folder}/{u.sha256}/{lake_name(src.name)}", u.data)


class NoLake(Lake):
    """A lake that keeps nothing: the pre-flight check (`hqlake check`, infra.preflight)
    judges a hospital's own files without object storage. Every address is empty."""

    def __init__(self) -> None:
        super().__init__(None, "")  # type: ignore[arg-type]

    def put(self, key: str, data: bytes, content_type: str = "application/octet-stream") -> str:
        return ""
