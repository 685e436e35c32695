"""`hqlake sql`: read-only in fact. ClickHouse's parser decides what runs (only the warehouse's
own tables, no table functions that reach files, the network or other engines, no INTO
OUTFILE), chDB's readonly=1 is the second guard; analysts' ordinary queries keep working."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import socket
import threading

import pytest
from typer.testing import CliRunner

from infra.query import QueryRefused, reader, run_sql
from infra.runtime import warehouse

pytestmark = pytest.mark.integration
SECRET = "hqlake-secret-7f3a"


@pytest.fixture
def ch(config):
    ch = warehouse(config)
    ch.command("CREATE DATABASE IF NOT EXISTS query_probe")
    ch.command(
        "CREATE OR REPLACE TABLE query_probe.t (n UInt64, name String,"
        " at DateTime('Asia/Shanghai')) ENGINE = MergeTree ORDER BY n"
    )
    ch.command("INSERT INTO query_probe.t VALUES (1, '甲', '2026-11-09 08:30:00'), (2, 'b;c', 0)")
    ch.command(
        "CREATE OR REPLACE TABLE query_probe.org (n UInt64, county String)"
        " ENGINE = MergeTree ORDER BY n"
    )
    ch.command("INSERT INTO query_probe.org VALUES (1, 'east'), (2, 'west'), (3, 'east')")
    yield ch
    ch.command("DROP DATABASE IF EXISTS query_probe SYNC")


@pytest.fixture
def secret_file(tmp_path):
    path = tmp_path / "secret.csv"
    path.write_text(f"{SECRET},1\n")
    return path


@pytest.fixture
def listener():
    """A TCP port that counts the connections made to it (and closes each at once)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(8)
    accepted: list[str] = []

    def serve() -> None:
        with contextlib.suppress(OSError):
            while True:
                conn, peer = server.accept()
                accepted.append(peer[0])
                conn.close()

    threading.Thread(target=serve, daemon=True).start()
    yield server.getsockname()[1], accepted
    server.close()


def _refused(query: str, *fragments: str) -> str:
    with pytest.raises(QueryRefused) as refused:
        run_sql(query, "csv")
    reason = str(refused.value)
    assert "\n" not in reason
    for fragment in fragments:
        assert fragment in reason
    return reason


def test_formats(ch):
    rows = json.loads(run_sql("SELECT n, name, at FROM query_probe.t ORDER BY n", "json"))
    # local time as ClickHouse prints it, 64-bit integers as numbers
    assert rows[0] == {"n": 1, "name": "甲", "at": "2026-11-09 08:30:00"}
    table = list(csv.reader(io.StringIO(run_sql("SELECT n, name FROM query_probe.t", "csv"))))
    assert table == [["n", "name"], ["1", "甲"], ["2", "b;c"]]
    pretty = run_sql("SHOW TABLES FROM query_probe", "table")
    assert "name" in pretty and "t" in pretty and "│" in pretty
    assert "ReadFromMergeTree" in run_sql("EXPLAIN SELECT n FROM query_probe.t;", "csv")
    assert run_sql("WITH 2 AS x SELECT x", "csv").splitlines()[-1] == "2"


@pytest.mark.parametrize(
    ("query", "last_line"),
    [
        (
            "SELECT o.county, count() AS n FROM query_probe.t AS t"
            " INNER JOIN query_probe.org AS o ON o.n = t.n GROUP BY o.county ORDER BY o.county",
            '"west",1',
        ),
        (
            "with counties as (select county, count() as orgs from query_probe.org"
            " group by county),"
            " final as (select * from counties where orgs > 1) select * from final",
            '"east",2',
        ),
        (
            "SELECT n, sum(n) OVER (ORDER BY n ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)"
            " AS running FROM query_probe.org ORDER BY n",
            "3,6",
        ),
        ("SELECT count() FROM query_probe.org WHERE n IN (SELECT n FROM query_probe.t)", "2"),
        ("SELECT (SELECT max(n) FROM query_probe.org) - min(n) FROM query_probe.t", "2"),
        (
            "SELECT count() FROM (SELECT n FROM query_probe.t"
            " UNION ALL SELECT n FROM query_probe.org)",
            "5",
        ),
        (
            "WITH x AS (SELECT n FROM query_probe.t)"
            " SELECT max(n) FROM x UNION ALL SELECT max(n) + 0 FROM x",
            "2",
        ),
        ("WITH x AS (SELECT n FROM query_probe.t) SELECT * FROM (SELECT count() FROM x)", "2"),
        (
            "WITH RECURSIVE r AS (SELECT 1 AS k UNION ALL SELECT k + 1 FROM r WHERE k < 4)"
            " SELECT max(k) FROM r",
            "4",
        ),
        (
            "/* odd */ sElEcT   `n`\n FROM `query_probe`.`org` -- the end\n"
            " ORDER BY n DESC LIMIT 1;",
            "3",
        ),
        ("SELECT count() FROM system.tables WHERE database = 'query_probe'", "2"),
        ("SELECT count() FROM system.columns WHERE database = 'query_probe' AND table = 't'", "3"),
        ("SELECT sum(number) FROM numbers(5)", "10"),
        ("SHOW TABLES FROM query_probe LIKE 'o%'", '"org"'),
        ("SHOW COLUMNS FROM query_probe.org LIKE 'co%'", '"county","String","NO","",\\N,""'),
        ("DESCRIBE query_probe.org", '"county","String","","","","",""'),
        ("desc table `query_probe`.`org`", '"county","String","","","","",""'),
        ("SELECT 'drop; table' -- insert;\n", '"drop; table"'),
        ("SELECT '{q:String}', '%s', '\\'' AS s", '"{q:String}","%s","\'"'),
        (
            "SELECT 'into outfile ''/tmp/x'' file(''/etc/passwd'')' AS s",
            "\"into outfile '/tmp/x' file('/etc/passwd')\"",
        ),
    ],
)
def test_analysts_queries_keep_working(ch, query, last_line):
    assert run_sql(query, "csv").strip().splitlines()[-1] == last_line


@pytest.mark.parametrize(
    "query",
    [
        "SELECT 1 INTO OUTFILE '{path}' TRUNCATE",
        "SELECT n FROM query_probe.t INTO OUTFILE '{path}' APPEND",
        "select 1 into outfile '{path}' and stdout",
        "SELECT * FROM (SELECT 1) INTO OUTFILE '{new}'",
        "DESCRIBE query_probe.t INTO OUTFILE '{new}'",
        "SHOW TABLES FROM query_probe INTO OUTFILE '{new}'",
        "EXPLAIN SELECT 1 INTO OUTFILE '{new}'",
    ],
)
def test_into_outfile_writes_nothing(ch, tmp_path, query):
    """Before: `SELECT ... INTO OUTFILE ... TRUNCATE` overwrote any file the process could write."""
    path, new = tmp_path / "warehouse.bin", tmp_path / "new.txt"
    path.write_bytes(b"precious")
    with pytest.raises(QueryRefused, match=r"INTO OUTFILE|DESCRIBE takes"):
        run_sql(query.format(path=path, new=new), "csv")
    assert path.read_bytes() == b"precious"
    assert not new.exists()


@pytest.mark.parametrize(
    "query",
    [
        "SELECT * FROM file('{path}')",
        "SELECT * FROM file('{path}', 'CSV', 'a String, b UInt8')",
        "SELECT * FROM FILE('{path}')",
        "SELECT * FROM\n  file ( '{path}' )",
        "SELECT file('{path}')",
        "SELECT length(file('{path}')) > 0",
        "SELECT * FROM `{path}`",
        "SELECT * FROM default.`{path}`",
        "SELECT * FROM query_probe.t WHERE name IN (SELECT c1 FROM file('{path}'))",
        "SELECT (SELECT any(c1) FROM file('{path}'))",
        "SELECT * FROM query_probe.t AS t JOIN file('{path}') AS f ON f.c2 = t.n",
        "SELECT name FROM query_probe.t UNION ALL SELECT c1 FROM file('{path}')",
        "SELECT * FROM (SELECT * FROM (SELECT * FROM file('{path}')))",
        "WITH s AS (SELECT * FROM file('{path}')) SELECT * FROM s",
        "WITH t AS (SELECT * FROM `{path}`) SELECT * FROM t",
        # a CTE's own name inside its body is the table of that name
        "WITH `{path}` AS (SELECT * FROM `{path}`) SELECT * FROM `{path}`",
        # a CTE is not visible outside its subquery
        "SELECT * FROM (WITH `{path}` AS (SELECT 1) SELECT 1) AS a, `{path}` AS b",
        "SELECT 1 IN `{path}`",
        "SELECT count() FROM numbers(1) WHERE 'x' NOT IN `{path}`",
        "SELECT * FROM numbers((SELECT count() FROM file('{path}')))",
        "WITH RECURSIVE r AS (SELECT * FROM `{path}`) SELECT * FROM r",
        "SELECT * FROM (EXPLAIN AST SELECT * FROM file('{path}'))",
        "EXPLAIN SELECT * FROM file('{path}')",
        "EXPLAIN AST SELECT * FROM file('{path}')",
        "EXPLAIN SYNTAX SELECT file('{path}')",
        "DESCRIBE file('{path}')",
        "DESCRIBE TABLE file('{path}', 'CSV')",
        "DESC (SELECT * FROM file('{path}'))",
        "DESCRIBE `{path}`",
        "SHOW COLUMNS FROM `{path}`",
        "SELECT * FROM file('/proc/self/environ', 'LineAsString')",
    ],
)
def test_files_are_not_read(ch, secret_file, query):
    """Before: file('/proc/self/environ', ...) printed the environment, the PII salt included."""
    reason = _refused(query.format(path=secret_file))
    assert SECRET not in reason


@pytest.mark.parametrize(
    "query",
    [
        "SELECT * FROM url('http://127.0.0.1:{port}/x.csv', CSV, 'a String')",
        "SELECT * FROM URL('http://127.0.0.1:{port}/x.csv')",
        "SELECT * FROM s3('http://127.0.0.1:{port}/bucket/x.csv', 'key', 'secret', 'CSV')",
        "SELECT * FROM s3Cluster('default', 'http://127.0.0.1:{port}/b/x.csv')",
        "SELECT * FROM remote('127.0.0.1:{port}', system.one)",
        "SELECT * FROM remoteSecure('127.0.0.1:{port}', system.one)",
        "SELECT * FROM mysql('127.0.0.1:{port}', 'db', 't', 'u', 'p')",
        "SELECT * FROM postgresql('127.0.0.1:{port}', 'db', 't', 'u', 'p')",
        "SELECT * FROM mongodb('127.0.0.1:{port}', 'db', 'c', 'u', 'p', 'x String')",
        "SELECT * FROM redis('127.0.0.1:{port}', 'k', 'k String')",
        "SELECT * FROM hdfs('hdfs://127.0.0.1:{port}/x', 'CSV', 'a String')",
        "SELECT * FROM azureBlobStorage('http://127.0.0.1:{port}/a', 'c', 'x.csv')",
        "SELECT * FROM gcs('http://127.0.0.1:{port}/b/x.csv')",
        "SELECT * FROM icebergS3('http://127.0.0.1:{port}/b/t/')",
        "SELECT * FROM deltaLake('http://127.0.0.1:{port}/b/t/')",
        "SELECT * FROM query_probe.t WHERE n IN (SELECT a FROM url('http://127.0.0.1:{port}/'))",
        "SELECT hasColumnInTable('127.0.0.1:{port}', 'system', 'one', 'dummy')",
        "EXPLAIN PIPELINE SELECT * FROM url('http://127.0.0.1:{port}/x.csv')",
        "DESCRIBE TABLE url('http://127.0.0.1:{port}/x.csv')",
    ],
)
def test_the_network_is_never_reached(ch, listener, query):
    """Before: url(), s3(), remote(), mysql() ... opened connections from the warehouse."""
    port, accepted = listener
    _refused(query.format(port=port))
    assert accepted == []


@pytest.mark.parametrize(
    "query",
    [
        "SELECT * FROM executable('cat /etc/passwd', 'TSV', 'a String')",
        "SELECT * FROM input('a String')",
        "SELECT * FROM cluster('default', system.one)",
        "SELECT * FROM clusterAllReplicas('default', query_probe.t)",
        "SELECT * FROM jdbc('jdbc:x', 't')",
        "SELECT * FROM odbc('DSN=x', 't')",
        "SELECT * FROM sqlite('/tmp/x.db', 't')",
        "SELECT * FROM merge('system', '^users$')",
        "SELECT * FROM merge(REGEXP('.*'), '.*')",
        "SELECT * FROM view(SELECT * FROM system.users)",
        "SELECT * FROM loop(query_probe.t) LIMIT 1",
        "SELECT * FROM mergeTreeIndex(query_probe, t)",
        "SELECT * FROM dictionary('d')",
        "SELECT * FROM python('x')",
        "SELECT * FROM filesystem('/')",
        "SELECT * FROM format(CSV, 'a\\n')",
        "SELECT * FROM generateRandom('a String') LIMIT 1",
        "SELECT * FROM viewExplain('EXPLAIN', '', (SELECT 1))",
    ],
)
def test_only_row_making_table_functions_are_allowed(ch, query):
    _refused(query, "table function ", "is not allowed", "query_probe")


@pytest.mark.parametrize(
    ("query", "named"),
    [
        ("SELECT * FROM system.processes", "system.processes"),
        ("SELECT name FROM system.users", "system.users"),
        ("SELECT * FROM `system`.`settings`", "system.settings"),
        ("SELECT * FROM system.query_log", "system.query_log"),
        ("SELECT * FROM SYSTEM.users", "SYSTEM.users"),
        ("SELECT * FROM INFORMATION_SCHEMA.TABLES", "INFORMATION_SCHEMA.TABLES"),
        ("SELECT * FROM default.anything", "default.anything"),
        ("WITH users AS (SELECT 1) SELECT * FROM system.users", "system.users"),
        ("WITH `system.users` AS (SELECT 1) SELECT * FROM system.users", "system.users"),
        ("SELECT * FROM query_probe.t JOIN system.grants ON 1", "system.grants"),
        ("SELECT * FROM t", "table t has no database"),
        ("SELECT 1 WHERE 1 IN system.users", "system.users"),
        ("SELECT dictGet('query_probe.d', 'x', 1)", "dictGet()"),
        ("SELECT joinGet('query_probe.j', 'x', 1)", "joinGet()"),
        ("SHOW TABLES FROM system", "SHOW TABLES FROM system"),
        ("SHOW TABLES", "SHOW TABLES needs FROM"),
        ("SHOW COLUMNS FROM system.users", "system.users"),
        ("DESCRIBE system.users", "system.users"),
        ("DESCRIBE t", "table t has no database"),
        ("SHOW PROCESSLIST", "not SHOW PROCESSLIST"),
        ("SHOW USERS", "not SHOW USERS"),
        ("SHOW GRANTS", "not SHOW GRANTS"),
        ("SHOW SETTINGS LIKE 'read%'", "SHOW SETTINGS"),
        ("SHOW CREATE TABLE system.users", "not SHOW CREATE TABLE"),
        ("EXPLAIN SELECT * FROM system.users", "system.users"),
    ],
)
def test_only_warehouse_tables_and_discovery(ch, query, named):
    _refused(query, named)


@pytest.mark.parametrize(
    "query",
    [
        "SELECT 1 SETTINGS readonly = 0",
        "SELECT * FROM (SELECT 1 SETTINGS readonly = 0)",
        "SELECT 1 SETTINGS allow_introspection_functions = 1",
        "WITH `x` AS (SELECT 1) SELECT 1 UNION ALL SELECT * FROM x"
        " SETTINGS enable_global_with_statement = 0",
        "SET readonly = 0",
        "SELECT 1 FORMAT Native",
        "SELECT count() FROM numbers(10000000000000) SETTINGS max_execution_time = 0",
        "SELECT 1 SETTINGS max_memory_usage = 0",
        "SELECT 1 SETTINGS timeout_overflow_mode = 'break'",
    ],
)
def test_guards_cannot_be_lifted(ch, query):
    _refused(query)


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
        "CREATE TABLE query_probe.u ENGINE = Memory AS SELECT * FROM query_probe.t",
        "OPTIMIZE TABLE query_probe.t FINAL",
        "KILL QUERY WHERE 1",
        "SYSTEM DROP DNS CACHE",
        "USE system",
        "",
        "  -- only a comment\n",
    ],
)
def test_writes_and_tricks_are_refused(ch, query):
    with pytest.raises(QueryRefused):
        run_sql(query, "csv")
    assert ch.command("SELECT count() FROM query_probe.t") == 2


def test_the_engine_is_the_second_guard(ch, secret_file):
    """Past the parser, chDB's readonly=1 still refuses writes, setting changes and the
    file/url table functions (not INTO OUTFILE or the scalar file(): the parser's job)."""
    with reader() as (client, settings):
        for statement in (
            "INSERT INTO query_probe.t VALUES (3, 'x', 0)",
            "SELECT 1 SETTINGS readonly = 0",
            f"SELECT * FROM file('{secret_file}')",
            f"SELECT * FROM `{secret_file}`",
            "SELECT * FROM url('http://127.0.0.1:1/x.csv', CSV, 'a String')",
        ):
            with pytest.raises(Exception, match="readonly"):
                client.raw_query(statement, fmt="CSV", settings=settings)
    assert ch.command("SELECT count() FROM query_probe.t") == 2


def test_the_shared_warehouse_client_stays_writable(ch):
    run_sql("SELECT count() FROM query_probe.t", "csv")
    ch.command("INSERT INTO query_probe.t VALUES (3, 'x', 0)")
    assert ch.command("SELECT count() FROM query_probe.t") == 3


def test_unknown_format():
    with pytest.raises(ValueError, match="format"):
        run_sql("SELECT 1", "xml")


def test_cli_prints_one_line_and_exits_2(ch, secret_file):
    from infra.cli import app

    runner = CliRunner()
    refused = runner.invoke(app, ["sql", f"SELECT * FROM file('{secret_file}')"])
    assert refused.exit_code == 2
    assert refused.stderr.startswith("refused: table function file() is not allowed")
    assert len(refused.stderr.strip().splitlines()) == 1 and SECRET not in refused.output
    failed = runner.invoke(app, ["sql", "SELECT * FROM query_probe.missing"])
    assert failed.exit_code == 2
    assert failed.stderr.startswith("SQL error: ") and "UNKNOWN_TABLE" in failed.stderr
    assert len(failed.stderr.strip().splitlines()) == 1
    syntax = runner.invoke(app, ["sql", "SELEC 1"])
    assert syntax.exit_code == 2 and "Syntax error" in syntax.stderr
    assert len(syntax.stderr) < 300
    verbose = runner.invoke(app, ["--verbose", "sql", "SELECT * FROM query_probe.missing"])
    assert verbose.exit_code == 2 and "Traceback" in verbose.stderr
    ok = runner.invoke(app, ["sql", "SELECT count() FROM query_probe.t", "--format", "csv"])
    assert ok.exit_code == 0 and ok.stdout.strip().splitlines()[-1] == "2"


def test_a_query_runs_within_time_and_memory_limits(ch):
    (limits,) = json.loads(
        run_sql(
            "SELECT toUInt64(getSetting('max_execution_time')) AS max_execution_time,"
            " toUInt64(getSetting('max_memory_usage')) AS max_memory_usage",
            "json",
        )
    )
    assert 0 < limits["max_execution_time"] <= 300
    assert 0 < limits["max_memory_usage"] <= 4 << 30


def test_uploaded_control_characters_do_not_reach_the_terminal(ch):
    ch.command("INSERT INTO query_probe.t VALUES (7, 'MZ\x1b[31mRED\x1b]0;PWNED\x07', 0)")
    table = run_sql("SELECT name FROM query_probe.t WHERE n = 7")
    assert "\x1b" not in table and "\x07" not in table
    assert "MZ\\x1b[31mRED\\x1b]0;PWNED\\x07" in table
    # JSON keeps the value and escapes it
    (row,) = json.loads(run_sql("SELECT name FROM query_probe.t WHERE n = 7", "json"))
    assert row["name"] == "MZ\x1b[31mRED\x1b]0;PWNED\x07"
