from pathlib import Path

import pytest

from contracts.errors import OperatorError
from infra.settings import SettingsError, from_env


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
        with pytest.raises(SettingsError, match="HQLAKE_MAX_ROWS="):
            from_env({"HQLAKE_HOME": str(tmp_path), "HQLAKE_MAX_ROWS": bad})


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"HQLAKE_CLICKHOUSE_URL": "clickhous://x"}, "must start with http:// or https://"),
        ({"HQLAKE_CLICKHOUSE_URL": "localhost:8123"}, "must start with http:// or https://"),
        ({"HQLAKE_CLICKHOUSE_URL": "http://:8123"}, "names no host"),
        ({"HQLAKE_CLICKHOUSE_URL": "http://u:secret@h:80x"}, "port is not a number"),
        ({"HQLAKE_CLICKHOUSE_URL": "http://h:99999"}, "port is not a number"),
        ({"HQLAKE_S3_ENDPOINT": "https://minio:9000/lake"}, "must be only scheme://host:port"),
        ({"HQLAKE_S3_ENDPOINT": "ftp://minio:9000"}, "must start with http:// or https://"),
        ({"HQLAKE_S3_ENDPOINT": "minio:x"}, "port is not a number"),
        ({"HQLAKE_S3_SECURE": "ture"}, "set it to true or false"),
        ({"HQLAKE_LATE_DAYS": "seven"}, "HQLAKE_LATE_DAYS='seven' is not a whole number"),
        ({"HQLAKE_SMTP_PORT": "-25"}, "HQLAKE_SMTP_PORT='-25' is not a whole number"),
    ],
)
def test_malformed_settings_are_refused(env, expected):
    with pytest.raises(SettingsError) as err:
        from_env(env)
    assert expected in str(err.value)
    assert "secret" not in str(err.value) and isinstance(err.value, OperatorError)


@pytest.mark.parametrize(
    "env",
    [
        {"HQLAKE_CLICKHOUSE_URL": "https://u:p@ch.internal:8443/default?compress=lz4"},
        {"HQLAKE_CLICKHOUSE_URL": "clickhouses://ch.internal"},
        {"HQLAKE_S3_ENDPOINT": "minio.internal:9000", "HQLAKE_S3_SECURE": "false"},
        {"HQLAKE_S3_ENDPOINT": "https://minio.internal:9000/", "HQLAKE_LATE_DAYS": "10"},
    ],
)
def test_well_formed_settings_pass(env):
    assert from_env(env)


def test_the_pipeline_s_configuration_is_read_here(tmp_path):
    """Every variable the stages, dbt and the mailer use is a field read by from_env, so no
    other module reads the environment."""
    s = from_env({"HQLAKE_HOME": str(tmp_path)})
    assert (s.inbox, s.late_days, s.portal_url, s.pii_salt) == (None, 7, None, "")
    assert (s.dbt_log_level, s.airflow_logging_level) == ("warn", "WARNING")
    assert s.clickhouse_overrides == () and s.reports_dir == tmp_path / "reports"
    s = from_env(
        {
            "HQLAKE_HOME": str(tmp_path),
            "HQLAKE_INBOX": "s3://uploads/city",
            "HQLAKE_LATE_DAYS": "10",
            "HQLAKE_PORTAL_URL": "https://dq.example.internal/portal/",
            "HQLAKE_PII_SALT": "s3cret",
            "HQLAKE_DBT_LOG_LEVEL": "info",
            "HQLAKE_CLICKHOUSE_PORT": "9443",
        }
    )
    assert (s.inbox, s.late_days, s.pii_salt, s.dbt_log_level) == (
        "s3://uploads/city",
        10,
        "s3cret",
        "info",
    )
    assert s.portal_url == "https://dq.example.internal/portal"
    assert s.clickhouse_overrides == (("HQLAKE_CLICKHOUSE_PORT", "9443"),)
    with pytest.raises(SettingsError, match="HQLAKE_LATE_DAYS"):
        from_env({"HQLAKE_LATE_DAYS": "a week"})


def test_task_policy_defaults_are_the_caller_s():
    from infra.settings import TaskPolicy, task_policy

    assert task_policy({}) == TaskPolicy("hqlake_warehouse", 3, 120.0)
    assert task_policy({}, retries=1, retry_delay=1.0) == TaskPolicy("hqlake_warehouse", 1, 1.0)
    env = {
        "HQLAKE_WAREHOUSE_POOL": "ch",
        "HQLAKE_TASK_RETRIES": "5",
        "HQLAKE_TASK_RETRY_DELAY": "30",
    }
    assert task_policy(env, retries=1) == TaskPolicy("ch", 5, 30.0)  # set, it wins
    with pytest.raises(SettingsError, match="HQLAKE_TASK_RETRIES"):
        task_policy({"HQLAKE_TASK_RETRIES": "-1"})


def test_the_start_date_is_a_date_or_refused_naming_it():
    import datetime as dt

    from infra.settings import check_env, task_policy

    assert task_policy({"HQLAKE_START_DATE": "2026-12-01"}).start_date == dt.date(2026, 12, 1)
    assert task_policy({}).start_date is None
    with pytest.raises(SettingsError, match="HQLAKE_START_DATE='2026-12-32' is not a date"):
        check_env({"HQLAKE_START_DATE": "2026-12-32"})


def test_organisations_per_mapped_task(tmp_path):
    """One organisation a task on a ClickHouse server, all in one on chDB, unless set."""
    home = {"HQLAKE_HOME": str(tmp_path)}
    server = {**home, "HQLAKE_CLICKHOUSE_URL": "https://u:p@clickhouse.internal:8443/default"}
    assert from_env(home).org_group_size == 0
    assert from_env(server).org_group_size == 1
    assert from_env({**server, "HQLAKE_ORGS_PER_TASK": "0"}).org_group_size == 0
    assert from_env({**home, "HQLAKE_ORGS_PER_TASK": "5"}).org_group_size == 5
    with pytest.raises(SettingsError, match="HQLAKE_ORGS_PER_TASK"):
        from_env({**home, "HQLAKE_ORGS_PER_TASK": "all"})
