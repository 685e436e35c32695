"""The dbt runner: the one patched place (dbt-clickhouse on the process's chDB engine), the
reference tables, the generated code-system docs and the server settings."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace

import chinese_calendar
import pytest

from contracts.loader import contracts
from contracts.registry import load_registry
from infra import dbtrun
from infra.runtime import warehouse
from infra.settings import from_env

# dbt's adapter is imported in the tests that use it (1.7 s at collection otherwise)


def _credentials():
    from dbt.adapters.clickhouse.credentials import ClickHouseCredentials

    return ClickHouseCredentials(
        host=dbtrun.EMBEDDED_HOST,
        port=8123,
        driver="http",
        schema="hqlake_dbt_swap_test",
        user="default",
        password="",
        database="",
    )


@pytest.mark.integration
def test_dbt_client_is_a_handle_on_the_warehouse_engine(config):
    from dbt.adapters.clickhouse.httpclient import ChHttpClient

    ch = warehouse(config)
    ch.command("CREATE DATABASE IF NOT EXISTS swap_probe")
    ch.command("CREATE OR REPLACE TABLE swap_probe.t (n UInt8) ENGINE = Memory")
    ch.insert("swap_probe.t", [[7]], column_names=["n"])
    original = ChHttpClient._create_client
    shared_database = ch.database
    with dbtrun._dbt_on_chdb(ch):
        client = ChHttpClient(_credentials())
        # dbt sees what the rest of hqlake wrote, and what dbt writes, the warehouse sees
        assert client.query("SELECT n FROM swap_probe.t").result_rows == [(7,)]
        client.command("CREATE TABLE swap_probe.from_dbt (n UInt8) ENGINE = Memory")
        assert client.database == "hqlake_dbt_swap_test"
        assert ch.command("EXISTS DATABASE hqlake_dbt_swap_test") == 1
        client.close()
    # dbt's session (USE database, close) left the shared client alone; the patch is undone
    assert ch.database == shared_database
    assert ch.command("EXISTS TABLE swap_probe.from_dbt") == 1
    assert ChHttpClient._create_client is original
    ch.command("DROP DATABASE swap_probe SYNC")
    ch.command("DROP DATABASE hqlake_dbt_swap_test SYNC")


def test_swap_refuses_a_client_that_is_not_chdb():
    class Http:
        pass

    with pytest.raises(TypeError, match="not a chDB client"), dbtrun._dbt_on_chdb(Http()):
        pass


@pytest.mark.integration
def test_reference_tables_follow_registry_contracts_and_calendar(config):
    ch = warehouse(config)
    registry = load_registry()
    counts = dbtrun.write_reference_tables(ch, registry)
    assert counts["organization"] == len(registry.organisations)
    enumerated = sum(len(c.codes or {}) for c in contracts().codes.values())
    assert counts["code_value"] == enumerated
    assert counts["icd10_chapter"] == 22
    # the same table again: rewritten, not appended
    dbtrun.write_reference_tables(ch, registry)
    assert ch.command("SELECT count() FROM reference.organization") == counts["organization"]
    national_day = dt.date(2026, 10, 1)
    row = ch.query(
        "SELECT is_workday, is_holiday, holiday_name FROM reference.calendar"
        " WHERE date_day = {d:Date}",
        parameters={"d": national_day},
    ).result_rows[0]
    assert row == (0, 1, chinese_calendar.get_holiday_detail(national_day)[1])
    beyond = ch.query(
        "SELECT is_workday, calendar_note FROM reference.calendar WHERE date_day = '2030-01-07'"
    ).result_rows[0]
    assert beyond[0] == 1 and "Monday-Friday" in beyond[1]
    assert (
        ch.command(
            "SELECT c.chapter FROM reference.icd10_category AS k"
            " INNER JOIN reference.icd10_chapter AS c ON k.chapter_number = c.chapter_number"
            " WHERE k.category = 'I10'"
        )
        == "IX"
    )
    infusion = ch.command(
        "SELECT code_groups FROM reference.code_value WHERE code_system = 'route' AND code = '2'"
    )
    assert "infusion_iv" in str(infusion)
    assert not ch.command(
        "SELECT count() FROM system.columns WHERE database = 'reference' AND name = 'emails'"
    )


def test_code_system_docs_are_up_to_date():
    """dbt/models/code_systems.md is generated: regenerate with infra.dbtrun.write_code_docs()."""
    assert dbtrun.CODE_DOCS.read_text(encoding="utf-8") == dbtrun.code_system_docs()
    assert "{% docs code_sex %}" in dbtrun.code_system_docs()


def test_dbt_vars_carry_pii_tags_and_keys_from_the_contracts():
    found = dbtrun.dbt_vars()
    for name, ds in contracts().datasets.items():
        spec = found["hqlake_datasets"][name]
        assert spec["key"] == list(ds.key) and spec["fields"] == ds.field_names
        assert spec["pii"] == {f.name: f.pii for f in ds.fields if f.pii}
    assert found["hqlake_datasets"]["patient"]["pii"] == {
        "id_no": "identity",
        "name": "name",
        "phone": "phone",
    }
    assert found["infusion_route_codes"] == ["2", "3"]


def test_server_target_settings_from_the_dsn():
    dsn = "https://an%40alyst:p%3Ass@ch.internal:8443/db"
    config = from_env({"HQLAKE_CLICKHOUSE_URL": dsn})
    assert dbtrun._server_env(config) == {
        "HQLAKE_CLICKHOUSE_HOST": "ch.internal",
        "HQLAKE_CLICKHOUSE_PORT": "8443",
        "HQLAKE_CLICKHOUSE_USER": "an@alyst",
        "HQLAKE_CLICKHOUSE_PASSWORD": "p:ss",
        "HQLAKE_CLICKHOUSE_SECURE": "true",
    }
    plain = from_env({"HQLAKE_CLICKHOUSE_URL": "http://localhost"})
    assert dbtrun._server_env(plain)["HQLAKE_CLICKHOUSE_PORT"] == "8123"
    # a variable set explicitly wins over the DSN
    explicit = from_env({"HQLAKE_CLICKHOUSE_URL": dsn, "HQLAKE_CLICKHOUSE_PORT": "9443"})
    assert dbtrun._server_env(explicit)["HQLAKE_CLICKHOUSE_PORT"] == "9443"


def test_pii_salt_is_generated_per_embedded_home_and_required_on_a_server(tmp_path):
    home = from_env({"HQLAKE_HOME": str(tmp_path / "a")})
    salt = dbtrun._pii_salt(home)
    assert salt != "hqlake-embedded-demo-salt-not-secret"  # the public salt, reversed in 5 s
    assert len(salt) >= 40 and dbtrun._pii_salt(home) == salt  # stable: marts are incremental
    assert (tmp_path / "a" / "secrets" / "pii-salt").stat().st_mode & 0o777 == 0o600
    assert dbtrun._pii_salt(from_env({"HQLAKE_HOME": str(tmp_path / "b")})) != salt
    server = from_env(
        {"HQLAKE_HOME": str(tmp_path / "c"), "HQLAKE_CLICKHOUSE_URL": "https://ch.internal:8443"}
    )
    with pytest.raises(RuntimeError, match="HQLAKE_PII_SALT"):
        dbtrun._pii_salt(server)
    assert not (tmp_path / "c").exists()
    assert dbtrun._pii_salt(replace(server, pii_salt="s3cret")) == "s3cret"
    assert dbtrun._pii_salt(replace(home, pii_salt="s3cret")) == "s3cret"  # it wins embedded too


def test_a_home_built_with_the_public_salt_is_told_to_rebuild(tmp_path, caplog):
    old = from_env({"HQLAKE_HOME": str(tmp_path)})
    (dbtrun.dbt_home(old) / "target").mkdir(parents=True)  # dbt ran here before
    salt = dbtrun._pii_salt(old)
    assert "--full-refresh" in caplog.text
    caplog.clear()
    assert dbtrun._pii_salt(old) == salt and not caplog.text  # told once, when generated
