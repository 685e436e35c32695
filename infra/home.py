"""The home's privacy: owner-only folders, and the secrets an embedded home makes for itself.

An embedded `HQLAKE_HOME` needs two secrets nobody sets by hand: the S3 keys of its SeaweedFS
and the salt of the hashed identifiers in the marts. Each is generated on first use
(`secrets.token_urlsafe`), kept in `HQLAKE_HOME/secrets/<name>` (0600, in a 0700 folder) and
read back on every later run, so a home keeps one salt for life: the marts are incremental and
a new salt would hash the same person twice. Production sets them in the environment instead.

The home itself holds the lake's volumes, chDB's files, reports and the outbox: it is made
owner-only (0700) too, and so are the folders hqlake puts its data in.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import stat
from pathlib import Path

from infra.settings import Settings

log = logging.getLogger(__name__)

SECRETS_DIR = "secrets"
_PRIVATE_DIR = 0o700
_TOKEN_BYTES = 32


def private_dir(path: Path) -> Path:
    """Create `path` and its missing parents owner-only (0700) and return it.

    A folder that exists already and lets others in is narrowed to 0700 when we own it (a home
    made before hqlake did this); one we do not own is left alone.
    """
    missing = []
    for folder in (path, *path.parents):
        if folder.exists():
            break
        missing.append(folder)
    for folder in reversed(missing):
        with contextlib.suppress(FileExistsError):  # another process made it meanwhile
            # mkdir's mode is filtered by the umask, which can only take bits away
            folder.mkdir(_PRIVATE_DIR)
    info = path.stat()
    if info.st_mode & 0o077 and info.st_uid == os.getuid():
        # Inside a folder that is already ours alone (a tool such as Airflow made a sub-folder
        # with its own mode), nobody else could enter: narrow it without alarming anyone.
        parent = path.parent.stat()
        exposed = parent.st_mode & 0o077 or parent.st_uid != os.getuid()
        (log.warning if exposed else log.debug)(
            "%s was open to other users (%s): narrowed to 0700", path, oct(info.st_mode)
        )
        path.chmod(_PRIVATE_DIR)
    return path


def write_private(path: Path, content: bytes) -> None:
    """Write `path` anew, readable by its owner only from the first byte (0600)."""
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(content)


def home_secret(home: Path, name: str) -> str:
    """The secret `name` of this home: read from its file, or generated once and stored.

    The file is written completely under a temporary name, then linked into place: two
    processes starting on a new home at once agree on the first one linked, and a crash never
    leaves a half-written secret.
    """
    folder = private_dir(home / SECRETS_DIR)
    path = folder / name
    with contextlib.suppress(FileNotFoundError):
        return _read_secret(path)
    draft = folder / f".{name}.{os.getpid()}.{secrets.token_hex(4)}"
    fd = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_urlsafe(_TOKEN_BYTES) + "\n")
        with contextlib.suppress(FileExistsError):  # another process got there first
            os.link(draft, path)
    finally:
        draft.unlink()
    log.info("generated %s", path)
    return _read_secret(path)


def _read_secret(path: Path) -> str:
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    with os.fdopen(fd) as f:
        info = os.fstat(f.fileno())
        if not stat.S_ISREG(info.st_mode) or info.st_mode & 0o077:
            raise PermissionError(
                f"{path} must be a regular file only its owner can read (chmod 600 {path})"
            )
        value = f.read().strip()
    if not value:
        raise ValueError(f"{path} is empty: delete it to generate a new secret")
    return value


def s3_keys(config: Settings) -> tuple[str, str]:
    """The S3 access and secret key: from the environment, else (embedded only) the home's.

    Production never falls back: MinIO's keys are the operator's to set.
    """
    if (config.s3_access_key and config.s3_secret_key) or not config.embedded_storage:
        return config.s3_access_key, config.s3_secret_key
    return home_secret(config.home, "s3-access-key"), home_secret(config.home, "s3-secret-key")
