from pathlib import Path

import pytest

from infra.settings import from_env


def test_embedded_by_default(tmp_path):
    s = from_env({"HQLAKE_HOME": str(tmp_path)})
    assert s.embedded_storage and s.embedded_warehouse
    assert s.chdb_path == tmp_path / "chdb" and s.outbox == tmp_path / "outbox"
    # no built-in keys: the embedded SeaweedFS uses the ones its home generates (infra.home)
    assert (s.s3_access_key, s.s3_secret_key) == ("", "")


def test_production_from_environment():
    s = from_env(
        {
            "HQLAKE_S3_ENDPOINT": "https://minio.internal:9000",
            "HQLAKE_S3_ACCESS_KEY": "k",
            "HQLAKE_S3_SECRET_KEY": "s",
            "HQLAKE_CLICKHOUSE_URL": "https://ch.internal:8443",
        }
    )
    assert not s.embedded_storage and not s.embedded_warehouse
    assert (s.s3_access_key, s.s3_secret_key) == ("k", "s")
    assert s.home == Path(".hqlake").resolve()


def test_production_keys_never_default():
    s = from_env({"HQLAKE_S3_ENDPOINT": "minio:9000"})
    assert s.s3_access_key == "" and s.s3_secret_key == ""


def test_read_limits_from_environment(tmp_path):
    s = from_env({"HQLAKE_HOME": str(tmp_path), "HQLAKE_MAX_COLUMNS": "50"})
    assert s.read_limits.max_columns == 50
    assert s.read_limits.max_field_bytes == 64 * 1024  # the default stays
    s = from_env({"HQLAKE_HOME": str(tmp_path), "HQLAKE_MAX_DECOMPRESSED_BYTES": "1_073_741_824"})
    assert s.read_limits.max_decompressed_bytes == 1 << 30
    for bad in ("lots", "0", "-5"):
        with pytest.raises(ValueError, match="HQLAKE_MAX_ROWS must be"):
            from_env({"HQLAKE_HOME": str(tmp_path), "HQLAKE_MAX_ROWS": bad})
