"""The warehouse schema (infra/schema.py): one migration, idempotent, and its cluster form
parsed by ClickHouse's own parser (chDB); no reader issues DDL."""

from __future__ import annotations

import datetime as dt
import re
from zoneinfo import ZoneInfo

import pytest

from infra import schema

CLUSTER = "hqlake"
DDL = re.compile(r"\s*(CREATE|ALTER|DROP|EXCHANGE|TRUNCATE|OPTIMIZE)\b", re.IGNORECASE)


def tables(ch) -> set[str]:
    return {
        f"{db}.{name}"
        for db, name in ch.query(
            "SELECT database, name FROM system.tables WHERE database IN {d:Array(String)}",
            parameters={"d": list(schema.DATABASES)},
        ).result_rows
    }


@pytest.mark.integration
def test_migrate_is_idempotent_and_owns_every_table(rt):
    ch = rt.ch
    before = tables(ch)
    assert {"raw.current_batch", "dq.current_run", "reference.icd10_code"} <= before
    assert schema.migrate(ch) == len(schema.statements()) + 1  # code lists unchanged: one query
    assert tables(ch) == before
    created = {
        m.group(1) + "." + m.group(2)
        for s in schema.statements()
        if (m := re.search(r"(?:TABLE|VIEW) (?:IF NOT EXISTS )?(\w+)\.`?(\w+)`?", s))
    }
    assert before == created


@pytest.mark.integration
def test_a_marked_warehouse_is_current_until_its_code_or_a_code_list_changes(rt):
    """A runtime migrates a warehouse only when `is_current` says the last migration was not
    this code's (a task process would spend seconds on it)."""
    ch = rt.ch
    assert not schema.is_current(ch)  # migrated (reset) but never marked
    schema.mark_current(ch)
    assert schema.is_current(ch)
    assert not schema.is_current(ch, cluster=CLUSTER)  # other statements: another migration
    ch.command("TRUNCATE TABLE reference.division_code")  # a code list lost its rows
    assert not schema.is_current(ch)
    schema.migrate(ch)
    assert schema.is_current(ch)


@pytest.mark.integration
def test_migrate_brings_an_old_warehouse_up_to_date(rt):
    ch = rt.ch
    ch.command("DROP TABLE dq.record_issue SYNC")
    ch.command("DROP VIEW dq.current_run")
    ch.command(
        "CREATE TABLE dq.record_issue (run_id String, org_code String, dataset String,"
        " business_date Date, batch_version UInt32, record_key String, rule_id String,"
        " dimension String, severity String) ENGINE = MergeTree ORDER BY run_id"
    )
    ch.command("CREATE DATABASE ref")
    ch.command("CREATE TABLE ref.icd10 (code String) ENGINE = MergeTree ORDER BY code")
    # a score table and its view from before rules_waived (issue 14)
    ch.command("DROP VIEW dq.current_score_batch")
    ch.command("ALTER TABLE dq.score_batch DROP COLUMN rules_waived")
    ch.command("CREATE VIEW dq.current_score_batch AS SELECT * FROM dq.score_batch")
    schema.migrate(ch)
    columns = [
        r[0]
        for r in ch.query(
            "SELECT name FROM system.columns WHERE database = 'dq' AND table = 'record_issue'"
            " ORDER BY position"
        ).result_rows
    ]
    assert columns[5:7] == ["record_key", "detail"]
    view = ch.query("SELECT * FROM dq.current_score_batch LIMIT 0").column_names
    assert view[view.index("rules_error") + 1] == "rules_waived"
    assert "dq.current_run" in tables(ch)
    assert not ch.command("SELECT count() FROM system.databases WHERE name = 'ref'")


@pytest.mark.integration
def test_code_lists_are_filled_once(rt):
    ch = rt.ch
    sizes = schema.code_list_sizes(ch)
    assert sizes["icd10_code"] > 10_000 and sizes["division_code"] > 3_000
    assert (
        ch.command("SELECT count() FROM reference.icd10_code WHERE code IN ('I10', 'E11.9')") == 2
    )
    assert ch.command("SELECT count() FROM reference.division_code WHERE code = '411502'") == 1
    assert schema.load_code_lists(ch) == 1  # unchanged packages: nothing rewritten
    ch.command("TRUNCATE TABLE reference.division_code")  # a lost table is refilled
    assert schema.load_code_lists(ch) > 1
    assert schema.code_list_sizes(ch) == sizes


DAY = dt.date(2026, 11, 2)


def at(hour: int) -> dt.datetime:
    return dt.datetime(2026, 11, 2, hour, tzinfo=ZoneInfo("Asia/Shanghai"))


@pytest.mark.integration
def test_current_views_are_the_one_definition(rt):
    ch = rt.ch
    ch.insert(
        "dq.batch",
        [["H1", "patient", DAY, v] for v in (1, 3, 2)],
        column_names=["org_code", "dataset", "business_date", "batch_version"],
    )
    assert ch.query("SELECT org_code, batch_version FROM raw.current_batch").result_rows == [
        ("H1", 3)
    ]
    ch.insert(
        "dq.run",
        [
            ["r1", DAY, "complete", at(10)],
            ["r2", DAY, "complete", at(11)],
            ["r3", DAY, "running", at(12)],
        ],
        column_names=["run_id", "business_date", "status", "finished_at"],
    )
    assert ch.query("SELECT run_id FROM dq.current_run").result_rows == [("r2",)]


def test_no_ddl_outside_the_schema_module():
    """Libraries and readers create nothing: DDL text lives in infra/schema.py (and, until
    the merge, the scoring's tables in expectations/scoring)."""
    from pathlib import Path

    root = Path(schema.__file__).resolve().parent.parent
    owners = {
        path.relative_to(root).as_posix()
        for folder in ("ingest", "expectations", "infra", "contracts")
        for path in (root / folder).rglob("*.py")
        if re.search(r"CREATE (TABLE|VIEW|DATABASE)|ALTER TABLE", path.read_text("utf-8"))
    }
    assert owners <= {"infra/schema.py", "expectations/scoring/scoring.py", "infra/roles.py"}


@pytest.fixture
def count_statements(rt, monkeypatch):
    issued: list[str] = []
    client = type(rt.ch)
    command = client.command

    def counting(self, cmd, *args, **kwargs):
        issued.append(cmd)
        return command(self, cmd, *args, **kwargs)

    monkeypatch.setattr(client, "command", counting)
    return issued


@pytest.mark.integration
def test_a_report_run_issues_no_ddl(rt, tmp_path, count_statements, monkeypatch):
    """Before the schema had one owner, every reader re-ran the scoring's CREATE ... IF NOT
    EXISTS (126 statements for this report run of three organisations)."""
    from expectations.publish import report
    from tests.expectations.publish import test_report

    issued: list[list[str]] = []
    write_reports = report.write_reports

    def measured(*args, **kwargs):
        count_statements.clear()
        out = write_reports(*args, **kwargs)
        issued.append([s for s in count_statements if DDL.match(s)])
        return out

    monkeypatch.setattr(report, "write_reports", measured)
    test_report.test_write_reports_from_scored_rule_results(rt, tmp_path)
    assert issued == [[], []]


@pytest.fixture(scope="module")
def cluster_statements():
    from contracts.loader import contracts

    out = schema.statements(contracts(), CLUSTER)
    for name in schema.DBT_REFERENCE:
        new = f"{name}__new"
        out += schema.clustered(
            [
                f"DROP TABLE IF EXISTS reference.`{new}`",
                schema.reference_ddl(name, new, False),
                f"EXCHANGE TABLES reference.`{new}` AND reference.`{name}`",
                f"DROP TABLE reference.`{new}`",
            ],
            CLUSTER,
        )
    return out


@pytest.mark.integration
def test_every_cluster_statement_parses(rt, cluster_statements):
    """No ClickHouse server here: ClickHouse's own parser (chDB's formatQuery) is the check."""
    ch = rt.ch
    for statement in cluster_statements:
        formatted = ch.query("SELECT formatQuery({q:String})", parameters={"q": statement})
        assert "ON CLUSTER" in formatted.result_rows[0][0], statement


def test_cluster_form_shards_replicated_tables_under_distributed_ones(cluster_statements):
    text = "\n".join(cluster_statements)
    single = schema.statements()
    assert len([s for s in cluster_statements if "ON CLUSTER" in s]) == len(cluster_statements)
    assert "ENGINE = MergeTree" not in text and "ENGINE = ReplacingMergeTree" not in text
    assert (
        "CREATE TABLE IF NOT EXISTS dq.`batch_local` ON CLUSTER 'hqlake'" in text
        and "ReplicatedReplacingMergeTree('/clickhouse/tables/{uuid}/{shard}', '{replica}',"
        " ingested_at)"
        in text
    )
    assert (
        "CREATE TABLE IF NOT EXISTS dq.`batch` ON CLUSTER 'hqlake' AS dq.`batch_local`"
        " ENGINE = Distributed('hqlake', 'dq', 'batch_local', cityHash64(org_code))" in text
    )
    assert "Distributed('hqlake', 'dq', 'run_local', cityHash64(business_date))" in text
    assert "Distributed('hqlake', 'dq', 'rule_set_local', cityHash64(rules_fingerprint))" in text
    # reference tables: whole on every node, no Distributed table over them
    assert "'/clickhouse/tables/{uuid}/all', '{replica}'" in text
    assert "reference.`calendar_local`" not in text
    # every single-node table has its pair, every ALTER reaches local and distributed tables
    raw_tables = [s for s in single if s.startswith("CREATE TABLE IF NOT EXISTS raw.")]
    assert text.count("ENGINE = Distributed('hqlake', 'raw'") == len(raw_tables)
    alters = [s for s in cluster_statements if s.startswith("ALTER TABLE")]
    assert len(alters) == 2 * len(schema.ADDED_COLUMNS)


def test_cluster_setting_needs_a_server():
    from infra.settings import SettingsError, from_env

    assert from_env({"HQLAKE_HOME": "/tmp/x"}).clickhouse_cluster is None
    server = {"HQLAKE_HOME": "/tmp/x", "HQLAKE_CLICKHOUSE_URL": "http://ch:8123"}
    assert from_env(server | {"HQLAKE_CLICKHOUSE_CLUSTER": CLUSTER}).clickhouse_cluster == CLUSTER
    with pytest.raises(SettingsError, match="HQLAKE_CLICKHOUSE_URL"):
        from_env({"HQLAKE_HOME": "/tmp/x", "HQLAKE_CLICKHOUSE_CLUSTER": CLUSTER})
    with pytest.raises(SettingsError, match="cluster name"):
        from_env(server | {"HQLAKE_CLICKHOUSE_CLUSTER": "a b'"})
