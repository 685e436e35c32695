"""One place that decides embedded vs production, from the environment.

Embedded (the default): SeaweedFS started by hqlake on loopback, chDB under HQLAKE_HOME.
Production: set HQLAKE_S3_ENDPOINT (MinIO) and HQLAKE_CLICKHOUSE_URL (ClickHouse server).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ingest.readers import ReadLimits


@dataclass(frozen=True)
class Settings:
    home: Path
    s3_endpoint: str | None
    s3_access_key: str
    s3_secret_key: str
    s3_secure: bool
    lake_bucket: str
    inbox_bucket: str
    clickhouse_url: str | None
    org_registry: str | None
    read_limits: ReadLimits

    @property
    def embedded_storage(self) -> bool:
        return self.s3_endpoint is None

    @property
    def embedded_warehouse(self) -> bool:
        return self.clickhouse_url is None

    @property
    def chdb_path(self) -> Path:
        return self.home / "chdb"

    @property
    def seaweed_dir(self) -> Path:
        return self.home / "seaweedfs"

    @property
    def outbox(self) -> Path:
        return self.home / "outbox"

    @property
    def airflow_home(self) -> Path:
        return self.home / "airflow"


def _flag(value: str | None, default: bool) -> bool:
    if value is None or value == "":
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def _read_limits(env: dict[str, str]) -> ReadLimits:
    """Caps on one upload's work: each field's variable (HQLAKE_MAX_...) overrides its default."""
    import dataclasses

    from ingest.readers import ReadLimits  # imported here: pyarrow is heavy for a settings read

    given = {}
    for spec in dataclasses.fields(ReadLimits):
        name = spec.metadata["env"]
        if env.get(name):
            try:
                given[spec.name] = int(env[name])  # 1_000_000 is accepted too
            except ValueError:
                raise ValueError(f"{name} must be a whole number, got {env[name]!r}") from None
            if given[spec.name] <= 0:
                raise ValueError(f"{name} must be positive, got {env[name]!r}")
    return ReadLimits(**given)


def from_env(env: dict[str, str] | None = None) -> Settings:
    env = dict(os.environ if env is None else env)
    home = Path(env.get("HQLAKE_HOME") or ".hqlake").expanduser().resolve()
    endpoint = env.get("HQLAKE_S3_ENDPOINT") or None
    return Settings(
        home=home,
        s3_endpoint=endpoint,
        # Keys come only from the environment; unset, the embedded SeaweedFS gets the keys its
        # home generated (infra.home.s3_keys) and production has none.
        s3_access_key=env.get("HQLAKE_S3_ACCESS_KEY") or "",
        s3_secret_key=env.get("HQLAKE_S3_SECRET_KEY") or "",
        s3_secure=_flag(env.get("HQLAKE_S3_SECURE"), default=False),
        lake_bucket=env.get("HQLAKE_LAKE_BUCKET") or "hqlake-lake",
        inbox_bucket=env.get("HQLAKE_INBOX_BUCKET") or "hqlake-inbox",
        clickhouse_url=env.get("HQLAKE_CLICKHOUSE_URL") or None,
        org_registry=env.get("HQLAKE_ORG_REGISTRY") or None,
        read_limits=_read_limits(env),
    )


@cache
def settings() -> Settings:
    return from_env()
