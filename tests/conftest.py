"""Test session: real embedded services only (SeaweedFS started here, chDB in a temp dir).

chDB can open one data path per process, so the session shares one; tests that load data
reset the `raw` and `dq` databases first.
"""

from __future__ import annotations

import os
import shutil
import tempfile

import pytest

_HOME = tempfile.mkdtemp(prefix="hqlake-test-")
os.environ["HQLAKE_HOME"] = _HOME
for _var in ("HQLAKE_S3_ENDPOINT", "HQLAKE_CLICKHOUSE_URL", "HQLAKE_ORG_REGISTRY"):
    os.environ.pop(_var, None)


def pytest_sessionfinish(session, exitstatus):
    shutil.rmtree(_HOME, ignore_errors=True)


@pytest.fixture(scope="session")
def config():
    from infra.settings import settings

    return settings()


@pytest.fixture(scope="session")
def seaweed(config):
    from infra.seaweed import SeaweedServer

    with SeaweedServer(config.seaweed_dir, (config.lake_bucket, config.inbox_bucket)) as server:
        yield server


@pytest.fixture
def rt(config, seaweed):
    """A Runtime on the session's SeaweedFS and chDB: empty raw and dq databases and buckets."""
    from minio.deleteobjects import DeleteObject

    from infra.runtime import Runtime, warehouse

    ch = warehouse(config)
    ch.command("DROP DATABASE IF EXISTS raw SYNC")
    ch.command("DROP DATABASE IF EXISTS dq SYNC")
    s3 = seaweed.client()
    for bucket in (config.lake_bucket, config.inbox_bucket):
        objects = [DeleteObject(o.object_name) for o in s3.list_objects(bucket, recursive=True)]
        errors = list(s3.remove_objects(bucket, objects))
        assert not errors, errors
    return Runtime(config, s3, ch)
