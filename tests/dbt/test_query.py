"""`hqlake sql`: read-only queries in three formats; writes are refused twice over."""

from __future__ import annotations

import csv
import io
import json

import pytest

from infra.query import QueryRefused, check_read_only, run_sql
from infra.runtime import warehouse

pytestmark = pytest.mark.integration


@pytest.fixture
def ch(config):
    ch = warehouse(config)
    ch.command("CREATE DATABASE IF NOT EXISTS query_probe")
    ch.command(
        "CREATE OR REPLACE TABLE query_probe.t (n UInt64, name String,"
        " at DateTime('Asia/Shanghai')) ENGINE = MergeTree ORDER BY n"
    )
    ch.command("INSERT INTO query_probe.t VALUES (1, '甲', '2026-11-09 08:30:00'), (2, 'b;c', 0)")
    yield ch
    ch.command("DROP DATABASE IF EXISTS query_probe SYNC")


def test_formats(ch):
    rows = json.loads(run_sql("SELECT n, name, at FROM query_probe.t ORDER BY n", "json"))
    # local time as ClickHouse prints it, 64-bit integers as numbers
    assert rows[0] == {"n": 1, "name": "甲", "at": "2026-11-09 08:30:00"}
    table = list(csv.reader(io.StringIO(run_sql("SELECT n, name FROM query_probe.t", "csv"))))
    assert table == [["n", "name"], ["1", "甲"], ["2", "b;c"]]
    pretty = run_sql("SHOW TABLES FROM query_probe", "table")
    assert "name" in pretty and "t" in pretty and "│" in pretty
    assert "ReadFromSystemOne" in run_sql("EXPLAIN SELECT 1;", "csv")
    assert run_sql("WITH 2 AS x SELECT x", "csv").splitlines()[-1] == "2"


@pytest.mark.parametrize(
    "query",
    [
        "INSERT INTO query_probe.t VALUES (3, 'x', 0)",
        "insert into query_probe.t select * from query_probe.t",
        "DROP TABLE query_probe.t",
        "  /* a comment */ drop database query_probe",
        "ALTER TABLE query_probe.t DELETE WHERE 1",
        "TRUNCATE TABLE query_probe.t",
        "SELECT 1; DROP TABLE query_probe.t",
        "SELECT 1 FORMAT Native",
        "",
    ],
)
def test_writes_and_tricks_are_refused(ch, query):
    with pytest.raises(QueryRefused):
        run_sql(query, "csv")
    assert ch.command("SELECT count() FROM query_probe.t") == 2


def test_the_server_refuses_writes_even_past_the_statement_check(ch):
    """readonly=2 is the second guard: a write that looked like a read still fails."""
    with pytest.raises(Exception, match="readonly"):
        run_sql("SELECT 1 SETTINGS readonly = 0", "csv")
    assert ch.command("SELECT count() FROM query_probe.t") == 2


def test_the_shared_warehouse_client_stays_writable(ch):
    run_sql("SELECT count() FROM query_probe.t", "csv")
    ch.command("INSERT INTO query_probe.t VALUES (3, 'x', 0)")
    assert ch.command("SELECT count() FROM query_probe.t") == 3


def test_semicolons_and_keywords_inside_strings_and_comments_are_fine():
    assert check_read_only("select 'drop; table' -- insert;\n") == "select 'drop; table' -- insert"
    with pytest.raises(ValueError, match="format"):
        run_sql("SELECT 1", "xml")
