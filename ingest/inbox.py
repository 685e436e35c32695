r"""List the files of one business date in an inbox: a local directory or an S3 prefix.

Layout (upload standard, section 2): `<org_code>/<dataset>/<YYYY-MM-DD>/<file>`. The receive
time is the object's last-modified time, or a file's mtime in a directory inbox. Top-level
names starting with `_` or `.` are reserved (registry copies, ground truth, staging).

The inbox never leaves the inbox. Uploaders control every name and entry below the root, so
nothing below it is trusted:

- A directory inbox is walked with `os.scandir` and `lstat` at every level, and each file is
  opened again from the root one component at a time with `O_NOFOLLOW`, so a symbolic link
  (to a file or a folder, dangling or not) is never followed, not even to look at what it
  points to, and a file swapped for a link after the listing is not read either. The root
  itself is the operator's configuration and may be a link.
- Every entry of the day's batch folder that is not a regular file with a clean name is an
  `InboxFile` with a `refusal` (a symbolic link, a sub-folder, a FIFO, a device, a socket, a
  name with control characters, a name that is not UTF-8, a backslash; in an S3 inbox also a
  `.` or `..` segment or a deeper object name). The same holds for a link or a badly named
  folder at the organisation, dataset and date levels (one record for the folder; nothing
  below it is listed) and for a file where the day's folder belongs. A refused entry is never
  opened (a FIFO would block) and never read: its size is 0 and its `read` raises
  `EntryRefused`. Its names are shown with control characters escaped (`printable`). Other
  entries at the organisation and dataset levels that are not folders (a stray README) are
  not part of the layout and are left alone.
- SeaweedFS itself normalises `.` and `..` segments and stores `\` as `/` (a sub-folder);
  MinIO keeps `\`, AWS keeps all three, and minio-py refuses to GET a `..` name, so the
  rules are checked here whatever the store does.
- Hard links are regular files; the kernel's protected_hardlinks setting keeps an uploader
  from linking a file they cannot read themselves.
"""

from __future__ import annotations

import datetime as dt
import errno
import os
import stat
import unicodedata
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlparse

from contracts.timezone import TZ as _TZ
from contracts.upload import MANIFEST

if TYPE_CHECKING:
    from minio import Minio  # the platform's object store (hqlake[platform])

_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)  # a listed folder may carry no time
# Receive times the warehouse stores (ClickHouse DateTime: seconds since 1970 in a UInt32).
_LAST_SECOND = 2**32 - 1

_LINK = "is a symbolic link; links are never followed, upload the file itself"
# Unicode categories that have no business in a file name: controls, invisible format
# characters (bidi overrides can disguise an extension), line and paragraph separators.
_INVISIBLE = {"Cc", "Cf", "Zl", "Zp"}
_ESCAPED = _INVISIBLE | {"Cs"}
_DIRECTORY = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
# O_NONBLOCK: should a FIFO be swapped in after the listing, opening it does not hang.
_REGULAR = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC


class EntryRefused(Exception):
    """An inbox entry that is not (or is no longer) a regular upload; the message is the reason."""


@dataclass(frozen=True)
class InboxFile:
    org_code: str
    dataset: str
    business_date: dt.date
    name: str
    path: str  # inbox-relative: org/dataset/date/name
    size: int
    received_at: dt.datetime  # aware, Asia/Shanghai, 1970 to 2106 (what the warehouse stores)
    read: Callable[[], bytes]
    refusal: str | None = None  # why this entry is not an upload; then nothing of it is read

    @property
    def is_manifest(self) -> bool:
        return self.name == MANIFEST


def printable(name: str) -> str:
    """`name` with backslashes, control and invisible characters and undecodable bytes
    escaped: safe to show in a reason, a log line or an e-mail, and distinct for distinct
    names."""
    out = []
    for char in name:
        code = ord(char)
        if char == "\\":
            out.append("\\\\")
        elif 0xDC80 <= code <= 0xDCFF:  # a byte that is not UTF-8 (os.fsdecode's surrogateescape)
            out.append(f"\\x{code - 0xDC00:02x}")
        elif unicodedata.category(char) in _ESCAPED:
            out.append(f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}")
        else:
            out.append(char)
    return "".join(out)


def name_problem(name: str, what: str = "name") -> str | None:
    """Why one folder or file name (or one segment of an object name) cannot be an upload's,
    or None."""
    if not name:
        return f"has an empty segment (//) in its {what}"
    if name in (".", ".."):
        return f"has a {name!r} segment in its {what}"
    if any(unicodedata.category(c) == "Cs" for c in name):
        return f"has a {what} that is not valid UTF-8"
    if any(unicodedata.category(c) in _INVISIBLE for c in name):
        return f"has control or invisible characters in its {what}"
    if "\\" in name:
        return f"has a backslash in its {what}"
    return None


def _reserved(part: str) -> bool:
    return part.startswith(("_", ".")) and part not in (".", "..")


def list_inbox(inbox: str, business_date: dt.date, s3: Minio | None = None) -> list[InboxFile]:
    if inbox.startswith("s3://"):
        if s3 is None:
            raise ValueError("an s3:// inbox needs an object-store client")
        return _list_s3(inbox, business_date, s3)
    return _list_directory(Path(inbox), business_date)


def _refused(
    parts: list[str], day: dt.date, mtime: float, reason: str, name: str | None = None
) -> InboxFile:
    shown = [printable(p) for p in parts]

    def read() -> bytes:
        raise EntryRefused(reason)

    return InboxFile(
        org_code=shown[0],
        dataset=shown[1] if len(shown) > 1 else "",
        business_date=day,
        name=printable(name) if name is not None else shown[-1],
        path="/".join(shown),
        size=0,
        received_at=_received(mtime),
        read=read,
        refusal=reason,
    )


def _received(timestamp: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(min(max(int(timestamp), 0), _LAST_SECOND), _TZ)


# ---------------------------------------------------------------- directory inbox
def _shown_time(timestamp: float) -> str:
    try:
        return str(dt.datetime.fromtimestamp(int(timestamp), _TZ).replace(tzinfo=None))
    except (OverflowError, OSError, ValueError):  # beyond the years datetime knows
        return f"{int(timestamp)} s from 1970"


def _stamp(info: os.stat_result) -> float:
    """The entry's mtime, or its ctime (set by the kernel, never by the uploader) when the
    mtime is no receive time the warehouse can store."""
    return info.st_mtime if 0 <= info.st_mtime <= _LAST_SECOND else info.st_ctime


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISFIFO(mode):
        return "a named pipe (FIFO)"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "a file" if stat.S_ISREG(mode) else "a special file"


def _folder_like(info: os.stat_result) -> bool:
    return stat.S_ISDIR(info.st_mode) or stat.S_ISLNK(info.st_mode)


def _entries(dir_fd: int) -> list[tuple[str, os.stat_result]]:
    """(name, lstat) of every entry of an open folder, by name; an entry removed while the
    folder is read is not there."""
    found = []
    with os.scandir(dir_fd) as it:
        for entry in it:
            try:
                found.append((entry.name, entry.stat(follow_symlinks=False)))
            except FileNotFoundError:
                continue
    return sorted(found, key=lambda pair: pair[0])


def _open_folder(parent_fd: int, name: str, info: os.stat_result) -> int | str:
    """A descriptor of the real sub-folder `name` of `parent_fd`, or why it is refused."""
    if stat.S_ISLNK(info.st_mode):
        return _LINK
    problem = name_problem(name)
    if problem:
        return problem
    try:
        return os.open(name, _DIRECTORY, dir_fd=parent_fd)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return _LINK
        if exc.errno in (errno.ENOENT, errno.ENOTDIR):
            return "changed while the inbox was listed"
        if exc.errno in (errno.EACCES, errno.EPERM):
            return "cannot be listed by the platform (permission denied)"
        raise


def _list_directory(root: Path, business_date: dt.date) -> list[InboxFile]:
    if not root.is_dir():
        raise FileNotFoundError(f"inbox directory {root} does not exist")
    root_fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)  # the root may be a link
    try:
        return [
            found
            for org, info in _entries(root_fd)
            if not _reserved(org) and _folder_like(info)
            for found in _descend(root_fd, [org], info, business_date, str(root))
        ]
    finally:
        os.close(root_fd)


def _descend(
    parent_fd: int, parts: list[str], info: os.stat_result, day: dt.date, root: str
) -> Iterator[InboxFile]:
    """What lies below the folder `parts[-1]` of `parent_fd`: the datasets of an organisation
    (depth 1), the day's folder of a dataset (2), or the entries of the batch folder (3)."""
    opened = _open_folder(parent_fd, parts[-1], info)
    if isinstance(opened, str):
        yield _refused(parts, day, _stamp(info), opened)
        return
    try:
        entries = _entries(opened)
        if len(parts) == 3:
            yield from _batch_folder(entries, parts, day, root)
            return
        for name, child in entries:
            if len(parts) == 2 and name != day.isoformat():
                continue  # another day's folder
            if _folder_like(child):
                yield from _descend(opened, [*parts, name], child, day, root)
            elif len(parts) == 2:
                reason = f"is {_kind(child.st_mode)}, not a date folder"
                yield _refused([*parts, name], day, _stamp(child), reason)
    finally:
        os.close(opened)


def _batch_folder(
    entries: list[tuple[str, os.stat_result]],
    parts: list[str],
    day: dt.date,
    root: str,
    on_disk: list[str] | None = None,
) -> Iterator[InboxFile]:
    """The entries of the batch folder `parts` (org, dataset, date), found at `on_disk`
    below `root` (the same folders, unless `list_batch_folder` lists it)."""
    for name, info in entries:
        here = [*parts, name]
        mode = info.st_mode
        if stat.S_ISLNK(mode):
            reason = _LINK
        elif stat.S_ISDIR(mode):
            reason = "is a folder; a batch folder holds files only (org/dataset/date/file)"
        elif not stat.S_ISREG(mode):
            reason = f"is {_kind(mode)}, not a regular file"
        elif not 0 <= info.st_mtime <= _LAST_SECOND:
            reason = (
                f"has a modification time ({_shown_time(info.st_mtime)}) that cannot stand for"
                " its receive time; upload it without preserving the time"
            )
        else:
            reason = name_problem(name)
        if reason:
            yield _refused(here, day, _stamp(info), reason)
            continue
        yield InboxFile(
            org_code=parts[0],
            dataset=parts[1],
            business_date=day,
            name=name,
            path="/".join(here),
            size=info.st_size,
            received_at=_received(info.st_mtime),
            read=_reader(root, [*(parts if on_disk is None else on_disk), name]),
        )


def list_batch_folder(folder: str, org_code: str, business_date: dt.date) -> list[InboxFile]:
    """The files of one organisation's day kept as `<dataset>/<file>` (a hospital's folder
    before it uploads, `hqlake check`), listed as `list_inbox` lists
    `<org>/<dataset>/<date>/<file>`: the same refusals, links never followed, and every path
    named as the inbox would name it."""
    root = Path(folder)
    if not root.is_dir():
        raise FileNotFoundError(f"batch folder {root} does not exist")
    root_fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    found: list[InboxFile] = []
    try:
        for dataset, info in _entries(root_fd):
            if _reserved(dataset) or not _folder_like(info):
                continue
            parts = [org_code, dataset, business_date.isoformat()]
            opened = _open_folder(root_fd, dataset, info)
            if isinstance(opened, str):
                found.append(_refused(parts[:2], business_date, _stamp(info), opened))
                continue
            try:
                found += _batch_folder(_entries(opened), parts, business_date, folder, [dataset])
            finally:
                os.close(opened)
    finally:
        os.close(root_fd)
    return found


def _reader(root: str, parts: list[str]) -> Callable[[], bytes]:
    """Read `root/parts...` opening one component at a time without following links: a file
    (or a folder on its path) replaced by a link after the listing is refused, not read."""

    def read() -> bytes:
        fds: list[int] = []
        try:
            fds.append(os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC))
            for folder in parts[:-1]:
                fds.append(os.open(folder, _DIRECTORY, dir_fd=fds[-1]))
            fds.append(os.open(parts[-1], _REGULAR, dir_fd=fds[-1]))
            mode = os.fstat(fds[-1]).st_mode
            if not stat.S_ISREG(mode):
                raise EntryRefused(f"became {_kind(mode)} after the inbox was listed")
            with os.fdopen(os.dup(fds[-1]), "rb") as handle:
                return handle.read()
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise EntryRefused(_LINK) from None
            if exc.errno in (errno.ENOENT, errno.ENOTDIR):
                raise EntryRefused("disappeared before it could be read") from None
            if exc.errno in (errno.EACCES, errno.EPERM):
                raise EntryRefused("cannot be read by the platform (permission denied)") from None
            raise
        finally:
            for fd in fds:
                os.close(fd)

    return read


# ---------------------------------------------------------------- S3 inbox
def object_problem(parts: list[str]) -> str | None:
    """Why an object name (split on `/`, relative to the inbox prefix) inside the day's batch
    folder is not an upload, or None for `org/dataset/date/name`."""
    for part in parts:
        problem = name_problem(part, "object name")
        if problem:
            return problem
    if len(parts) > 4:
        return "is inside a sub-folder of the batch folder; a batch folder holds files only"
    return None


def _list_s3(url: str, business_date: dt.date, s3: Minio) -> list[InboxFile]:
    parsed = urlparse(url)
    bucket, prefix = parsed.netloc, parsed.path.strip("/")
    prefix = f"{prefix}/" if prefix else ""
    day = business_date.isoformat()
    files = []
    for obj in s3.list_objects(bucket, prefix=prefix, recursive=True):
        relative = obj.object_name[len(prefix) :]
        parts = relative.split("/")
        if len(parts) < 3 or parts[2] != day or _reserved(parts[0]):
            continue
        if len(parts) == 4 and parts[3] == "":
            continue  # the batch folder's own marker (consoles create one per folder)
        received = _received((obj.last_modified or _EPOCH).timestamp())
        problem = object_problem(parts[:-1] if parts[-1] == "" else parts)
        if problem is None and len(parts) == 3:
            problem = "is a file, not a date folder"
        elif problem is None and parts[-1] == "":
            problem = "is a folder inside the batch folder; a batch folder holds files only"
        if problem:
            name = "/".join(parts[3:]) or parts[2]
            files.append(_refused(parts, business_date, received.timestamp(), problem, name))
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
                received_at=received,
                read=read,
            )
        )
    return sorted(files, key=lambda f: f.path)
