"""The services hqlake talks to, embedded or production, behind one context manager.

with runtime() as rt:
    rt.s3   # minio.Minio: SeaweedFS started here, or MinIO from HQLAKE_S3_ENDPOINT
    rt.ch   # clickhouse_connect client: chDB under HQLAKE_HOME, or HQLAKE_CLICKHOUSE_URL
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from urllib.parse import urlparse

import clickhouse_connect
from clickhouse_connect.driver.client import Client
from minio import Minio

from infra.home import private_dir, s3_keys
from infra.seaweed import SeaweedServer
from infra.settings import Settings, settings

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Runtime:
    settings: Settings
    s3: Minio
    ch: Client


@cache
def _chdb_client(path: str) -> Client:
    # chDB opens a data path in one process only, so the process keeps a single client.
    return clickhouse_connect.get_client(dsn=f"chdb://{path}")


def warehouse(config: Settings | None = None) -> Client:
    """A clickhouse-connect client for chDB (embedded) or a ClickHouse server (production)."""
    config = config or settings()
    private_dir(config.home)
    if config.embedded_warehouse:
        return _chdb_client(str(private_dir(config.chdb_path)))
    return clickhouse_connect.get_client(dsn=config.clickhouse_url)


def object_store(config: Settings, endpoint: str | None = None) -> Minio:
    url = endpoint or config.s3_endpoint or ""
    parsed = urlparse(url if "://" in url else f"{'https' if config.s3_secure else 'http'}://{url}")
    access_key, secret_key = s3_keys(config)
    return Minio(
        parsed.netloc, access_key=access_key, secret_key=secret_key, secure=parsed.scheme == "https"
    )


@contextlib.contextmanager
def runtime(config: Settings | None = None) -> Iterator[Runtime]:
    """Start what the embedded runtime needs, yield clients, stop it again on the way out."""
    config = config or settings()
    private_dir(config.home)
    buckets = (config.lake_bucket, config.inbox_bucket)
    with contextlib.ExitStack() as stack:
        if config.embedded_storage:
            server = stack.enter_context(
                SeaweedServer(config.seaweed_dir, buckets, *s3_keys(config))
            )
            s3 = server.client()
        else:
            s3 = object_store(config)
            for bucket in buckets:
                if not s3.bucket_exists(bucket):
                    s3.make_bucket(bucket)
        yield Runtime(config, s3, warehouse(config))
