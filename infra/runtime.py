"""The services hqlake talks to, embedded or production, behind one context manager.

with runtime() as rt:
    rt.s3   # minio.Minio: SeaweedFS started here (or the home's shared one, see
            # infra.seaweed.share: `make airflow` runs one for every task), or MinIO
            # from HQLAKE_S3_ENDPOINT
    rt.ch   # clickhouse_connect client: chDB under HQLAKE_HOME, or HQLAKE_CLICKHOUSE_URL

The first session of a process on a warehouse migrates it (infra.schema.migrate) unless the
last migration was this code's (infra.schema.is_current): libraries receive a client whose
tables exist.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from urllib.parse import urlparse

import clickhouse_connect
from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import DatabaseError, OperationalError
from minio import Minio

from contracts.errors import OperatorError
from infra.home import private_dir, s3_keys
from infra.s3client import s3_client
from infra.seaweed import SeaweedServer, shared_server
from infra.settings import SECURE_SCHEMES, Settings, settings

log = logging.getLogger(__name__)


class HomeError(OperatorError):
    """HQLAKE_HOME cannot be used: not a writable directory, or another process has it."""


class ServiceError(OperatorError):
    """A production service (HQLAKE_CLICKHOUSE_URL, HQLAKE_S3_ENDPOINT) cannot be reached or
    refuses hqlake."""


# home -> descriptor of its lock file; closed (and so unlocked) only when the process exits,
# because chDB keeps its data path open until then.
_HELD: dict[Path, int] = {}


def hold_home(config: Settings) -> None:
    """Make this process the only one on the embedded home, or fail saying who has it.

    chDB and SeaweedFS lock their files under the home too, but a second process fails deep
    inside them ("Cannot lock file .../chdb/status", "filerldb2 ... resource temporarily
    unavailable"). Re-entrant: the test session and `dag.test()` open the runtime many times
    in one process. Nothing to hold when both services are production ones."""
    home = config.home
    if home in _HELD:
        return
    try:
        private_dir(home)  # 0700: the home holds the lake, the warehouse and the secrets
        if not (config.embedded_storage or config.embedded_warehouse):
            return
        fd = os.open(home / ".lock", os.O_RDWR | os.O_CREAT, 0o600)
    except OSError as exc:
        raise HomeError(
            f"HQLAKE_HOME={home} is not a writable directory ({exc.strerror}); "
            "point HQLAKE_HOME at a directory you can write"
        ) from exc
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.read(fd, 32).decode(errors="replace").strip() or "unknown"
        os.close(fd)
        raise HomeError(
            f"another hqlake process (pid {holder}) is using HQLAKE_HOME={home}; "
            "wait for it or use another home"
        ) from None
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())
    _HELD[home] = fd


def connection_reason(exc: Exception) -> str:
    """The socket-level reason inside a driver error ('connection refused'), else its start."""
    text = str(exc)
    if found := re.search(r"\[Errno -?\d+\] ([^\"')]+)", text):
        return found.group(1).lower()
    return "timed out" if "timed out" in text else text[:160]


@dataclass(frozen=True)
class Runtime:
    settings: Settings
    s3: Minio
    ch: Client


# warehouses (chDB path or server URL) this process has migrated
_MIGRATED: set[str] = set()


def _migrated(ch: Client, target: str, config: Settings) -> Client:
    """`ch`, migrated once per process; a warehouse whose last migration was this code's
    (infra.schema.is_current: one query) is not migrated again (a migration costs a task
    process seconds: every statement, and loading the code lists to compare them)."""
    if target not in _MIGRATED:
        from infra import schema

        cluster = config.clickhouse_cluster
        if not schema.is_current(ch, cluster=cluster):
            schema.migrate(ch, cluster=cluster)
            schema.mark_current(ch, cluster=cluster)
        _MIGRATED.add(target)
    return ch


@cache
def _chdb_client(path: str) -> Client:
    # chDB opens a data path in one process only, so the process keeps a single client.
    return clickhouse_connect.get_client(dsn=f"chdb://{path}")


def warehouse(config: Settings | None = None) -> Client:
    """A clickhouse-connect client for chDB (embedded) or a ClickHouse server (production),
    on a migrated warehouse."""
    config = config or settings()
    hold_home(config)
    if config.embedded_warehouse:
        path = str(private_dir(config.chdb_path))
        return _migrated(_chdb_client(path), path, config)
    url = urlparse(config.clickhouse_url)
    secure = url.scheme in SECURE_SCHEMES
    server = f"{'https' if secure else 'http'}://{url.hostname}" + (
        f":{url.port}" if url.port else ""
    )
    try:
        # clickhouse-connect reads TLS from the port (443/8443) only, not from the scheme
        ch = clickhouse_connect.get_client(dsn=config.clickhouse_url, secure=secure)
    except OperationalError as exc:
        raise ServiceError(
            f"cannot reach ClickHouse at {server} ({connection_reason(exc)}); "
            "check HQLAKE_CLICKHOUSE_URL"
        ) from exc
    except DatabaseError as exc:
        first = str(exc).strip().splitlines()[0][:200]
        raise ServiceError(
            f"ClickHouse at {server} refused the connection ({first}); "
            "check the host, port, user and password in HQLAKE_CLICKHOUSE_URL"
        ) from exc
    return _migrated(ch, config.clickhouse_url, config)


def object_store(config: Settings, endpoint: str | None = None) -> Minio:
    url = endpoint or config.s3_endpoint or ""
    parsed = urlparse(url if "://" in url else f"{'https' if config.s3_secure else 'http'}://{url}")
    access_key, secret_key = s3_keys(config)
    return s3_client(parsed.netloc, access_key, secret_key, secure=parsed.scheme == "https")


def _ensure_buckets(s3: Minio, buckets: tuple[str, ...], config: Settings) -> Minio:
    from minio.error import MinioException
    from urllib3.exceptions import HTTPError

    try:
        for bucket in buckets:
            if not s3.bucket_exists(bucket):
                s3.make_bucket(bucket)
    except HTTPError as exc:
        raise ServiceError(
            f"cannot reach object storage at {config.s3_endpoint} ({connection_reason(exc)}); "
            "check HQLAKE_S3_ENDPOINT"
        ) from exc
    except MinioException as exc:
        raise ServiceError(
            f"object storage at {config.s3_endpoint} refused hqlake ({str(exc)[:160]}); "
            "check HQLAKE_S3_ENDPOINT, HQLAKE_S3_ACCESS_KEY and HQLAKE_S3_SECRET_KEY"
        ) from exc
    return s3


@contextlib.contextmanager
def runtime(config: Settings | None = None) -> Iterator[Runtime]:
    """Start what the embedded runtime needs, yield clients, stop it again on the way out."""
    config = config or settings()
    buckets = (config.lake_bucket, config.inbox_bucket)
    hold_home(config)
    with contextlib.ExitStack() as stack:
        if config.embedded_storage and (shared := shared_server(config.seaweed_dir)):
            # the home's SeaweedFS another process runs for all (`make airflow`)
            s3 = object_store(config, shared["endpoint"])
        elif config.embedded_storage:
            server = stack.enter_context(
                SeaweedServer(config.seaweed_dir, buckets, *s3_keys(config))
            )
            s3 = server.client()
        else:
            s3 = _ensure_buckets(object_store(config), buckets, config)
        yield Runtime(config, s3, warehouse(config))
