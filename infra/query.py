"""Read-only SQL against the warehouse (embedded chDB or a ClickHouse server): `hqlake sql`.

run_sql(query, fmt="table"|"json"|"csv") -> str

An analyst's query may read the warehouse's own tables and nothing else. ClickHouse's own
parser decides, never a regular expression: `formatQuerySingleLine` turns the text (passed as
a query parameter) into one canonical statement or refuses it (multi-statements, syntax
errors), `parseQueryToJSON` gives that statement's AST, and the walk below allows

- statements: SELECT / WITH (UNION, INTERSECT, EXCEPT), EXPLAIN of such a query,
  SHOW TABLES / DICTIONARIES FROM <warehouse database>, SHOW DATABASES, SHOW COLUMNS and
  DESCRIBE of a warehouse table;
- tables: `database.table` in a warehouse database (every Atomic/Replicated database but
  system, default and information_schema: raw, dq, ref, reference, the dbt schemas), plus
  system.tables and system.columns for discovery; an unqualified name only where it is a CTE
  in scope, because on chDB the default database maps file paths to tables
  (SELECT * FROM `/proc/self/environ` reads the file);
- table functions: numbers, generate_series and values only (they make rows from their
  arguments); file, url, s3, remote, mysql, executable, merge, view ... are refused;
- no INTO OUTFILE, no FORMAT clause, no SETTINGS that lift a guard (readonly, dialect, ...),
  no scalar function that reads outside the tables (file(), dictGet*, joinGet, ...).

What runs is the statement that was checked (the canonical text; DESCRIBE is rebuilt from the
checked table name). The engine is the second guard: embedded, the query runs on its own
chDB handle with readonly=1, which also refuses the file/url/s3/remote table functions;
chDB applies settings with SET on a handle and readonly cannot be undone, so the shared
warehouse client never carries it. On a server every request carries readonly=2 and the
analysts' roles (infra/roles.py) grant SELECT on marts and no sources.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Iterator, Mapping
from typing import Any, Literal

import clickhouse_connect
from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import ClickHouseError

from infra.runtime import warehouse

Format = Literal["table", "json", "csv"]
FORMATS: dict[str, str] = {
    "table": "PrettyCompactNoEscapes",
    "json": "JSONEachRow",
    "csv": "CSVWithNames",
}
OUTPUT_SETTINGS = {
    "output_format_json_quote_64bit_integers": 0,
    "output_format_pretty_max_rows": 10_000,
}
# Bounds on one analyst query, so that `numbers(1e13)` or a cross join cannot hold the
# warehouse: protected below, so a query cannot lift them.
LIMIT_SETTINGS = {"max_execution_time": 300, "max_memory_usage": 4 << 30}
QUERY_SETTINGS = {**OUTPUT_SETTINGS, **LIMIT_SETTINGS}
SERVER_SETTINGS = {**QUERY_SETTINGS, "readonly": 2}
EMBEDDED_READONLY = 1  # stricter than 2: chDB then refuses file/url/s3/remote... itself
# databases of other engines (MySQL, PostgreSQL, Filesystem, S3, chDB's default Overlay
# that maps file paths to tables ...) reach outside the warehouse
WAREHOUSE_ENGINES = ("Atomic", "Ordinary", "Replicated", "Shared")
NOT_WAREHOUSE = ("system", "default", "information_schema", "INFORMATION_SCHEMA")
DISCOVERY_TABLES = frozenset({("system", "tables"), ("system", "columns")})
# rows made from the arguments alone (a calendar, a list of values): nothing is read
ROW_TABLE_FUNCTIONS = frozenset({"numbers", "generate_series", "generateSeries", "values"})
# scalar functions that read files, dictionaries (whose sources may be files, URLs or
# programs), Join tables named by a string, or another server's metadata
OUTSIDE_FUNCTIONS = frozenset(
    {
        "file",
        "joinget",
        "joingetornull",
        "hascolumnintable",
        "catboostevaluate",
        "naivebayesclassifier",
        "naivebayesclassifierwithprob",
        "naivebayesclassifierwithallprobs",
    }
)
IN_FUNCTIONS = frozenset(
    {
        "in",
        "notin",
        "globalin",
        "globalnotin",
        "nullin",
        "notnullin",
        "globalnullin",
        "globalnotnullin",
    }
)
PROTECTED_SETTINGS = frozenset(
    {
        "readonly",
        "allow_ddl",
        "allow_introspection_functions",
        "dialect",
        "enable_global_with_statement",  # the CTE scopes below assume it
        *LIMIT_SETTINGS,
        "timeout_overflow_mode",  # 'break' would turn the time limit into a silent cut
    }
)
# C0 and C1 control characters but tab and newline: an uploaded value must not drive the
# analyst's terminal (ESC sequences set its title, colours, cursor).
_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")
SELECTS = ("SelectWithUnionQuery", "SelectIntersectExceptQuery")
STATEMENTS = "SELECT, WITH, SHOW TABLES / DATABASES / COLUMNS, DESCRIBE, EXPLAIN"
_SHOW_MODIFIERS = frozenset({"full", "not_like", "case_insensitive_like"})
_PLAIN_NAME = re.compile(r"^[A-Za-z_][0-9A-Za-z_]*$")


class QueryRefused(ValueError):
    """The query is not a single read-only statement on the warehouse's own tables."""


def error_line(exc: BaseException) -> str:
    """ClickHouse's error message in one line, without the parser's list of expected tokens
    and the echo of the query."""
    text = " ".join(str(exc).split())
    code = re.search(r"\(([A-Z][A-Z_]+)\)\s*$", text)
    text = text.rsplit("DB::Exception: ", 1)[-1]
    for cut in (". Expected one of:", ": In scope ", ". In scope ", " (version "):
        text = text.split(cut, 1)[0]
    text = (text.removesuffix(f" ({code.group(1)})") if code else text).strip()
    if code and code.group(1) not in text:
        text = f"{text} ({code.group(1)})"
    return text if len(text) <= 300 else text[:297] + "..."


def warehouse_databases(client: Client, settings: Mapping[str, Any] | None = None) -> list[str]:
    """The databases hqlake keeps its tables in, as the warehouse lists them."""
    return [
        name
        for (name,) in client.query(
            "SELECT name FROM system.databases WHERE engine IN {engines:Array(String)}"
            " AND name NOT IN {others:Array(String)} ORDER BY name",
            parameters={"engines": list(WAREHOUSE_ENGINES), "others": list(NOT_WAREHOUSE)},
            settings=dict(settings or {}),
        ).result_rows
    ]


def _kind(node_type: str) -> str:
    """'ShowProcesslistQuery' -> 'SHOW PROCESSLIST'."""
    return " ".join(re.findall(r"[A-Z][a-z]*", node_type.removesuffix("Query"))).upper()


def _quote(name: str) -> str:
    return "`" + name.replace("\\", "\\\\").replace("`", "\\`") + "`"


class _Checker:
    def __init__(self, databases: list[str]):
        self.databases = frozenset(databases)
        self.listing = ", ".join(databases) or "none yet"

    def outside(self, what: str) -> QueryRefused:
        return QueryRefused(
            f"{what} is not allowed: hqlake sql reads only the warehouse's databases"
            f" ({self.listing}) and system.tables / system.columns"
        )

    # statements -------------------------------------------------------------------------

    def statement(self, ast: dict) -> None:
        kind = ast.get("type", "")
        if kind in SELECTS:
            self.walk(ast, frozenset())
        elif kind == "ExplainQuery":
            if "table_function" in ast or "table_override" in ast:
                raise QueryRefused("EXPLAIN TABLE OVERRIDE is not allowed")
            inner = ast.get("query", {}).get("type", "")
            if inner not in SELECTS:
                raise QueryRefused(f"EXPLAIN takes a SELECT here, not {_kind(inner)}")
            self.walk(ast, frozenset())
        elif kind == "ShowTablesQuery":
            self.show_tables(ast)
            self.walk(ast, frozenset())
        elif kind == "ShowColumnsQuery":
            self.table([ast["database"], ast["table"]] if "database" in ast else [ast["table"]])
            self.walk(ast, frozenset())
        else:
            raise QueryRefused(
                f"only read statements are allowed ({STATEMENTS}), not {_kind(kind)}"
            )

    def show_tables(self, ast: dict) -> None:
        flags = {k for k, v in ast.items() if v is True} - _SHOW_MODIFIERS
        if flags == {"databases"}:
            return
        if flags - {"dictionaries"}:
            raise QueryRefused(f"SHOW {' '.join(sorted(flags)).upper()} is not allowed")
        what = "DICTIONARIES" if flags else "TABLES"
        database = ast.get("from", {}).get("name")
        if database is None:
            raise QueryRefused(f"SHOW {what} needs FROM <database> ({self.listing})")
        if database not in self.databases:
            raise self.outside(f"SHOW {what} FROM {database}")

    def describe(self, dump: str) -> str:
        """DESCRIBE of one warehouse table, from EXPLAIN AST's dump (parseQueryToJSON does not
        serialise DESCRIBE): anything but `DESCRIBE [TABLE] db.table` is refused, and the
        statement that runs is rebuilt from the checked name."""
        lines = dump.rstrip("\n").split("\n")
        if (
            len(lines) != 4
            or lines[0] != "DescribeQuery (children 2)"
            or lines[1] != " TableExpression (children 1)"
            or not lines[2].startswith("  TableIdentifier ")
            or not lines[3].startswith(" Identifier ")
        ):
            raise QueryRefused(
                "DESCRIBE takes one warehouse table, e.g. DESCRIBE dq.ingest_file"
                " (no table functions, subqueries, SETTINGS, FORMAT or INTO OUTFILE)"
            )
        parts = lines[2].removeprefix("  TableIdentifier ").split(".")
        if not all(_PLAIN_NAME.match(p) for p in parts):
            raise QueryRefused("DESCRIBE takes a plain database.table name")
        self.table(parts)
        return "DESCRIBE TABLE " + ".".join(_quote(p) for p in parts)

    # the AST walk -----------------------------------------------------------------------

    def walk(self, node: Any, ctes: frozenset[str]) -> None:
        if isinstance(node, list):
            for item in node:
                self.walk(item, ctes)
            return
        if not isinstance(node, dict):
            return
        kind = node.get("type")
        if "out_file" in node or node.get("is_into_outfile_with_stdout"):
            raise QueryRefused("INTO OUTFILE is not allowed: hqlake sql writes no files")
        if "format_ast" in node:
            raise QueryRefused("leave FORMAT out: choose --format table, json or csv")
        if kind == "SelectWithUnionQuery":
            self.union(node, ctes)
            return
        if kind == "SelectQuery":
            self.select(node, ctes)
            return
        if kind == "TableIdentifier":
            self.table(node.get("name_parts") or [node["name"]], ctes)
        elif kind == "TableExpression" and "table_function" in node:
            name = node["table_function"].get("name", "")
            if name not in ROW_TABLE_FUNCTIONS:
                raise self.outside(f"table function {name}()")
        elif kind == "Function":
            self.function(node, ctes)
        elif kind == "SetQuery":
            for change in node.get("changes", []):
                if change.get("name", "").lower() in PROTECTED_SETTINGS:
                    raise QueryRefused(f"SETTINGS {change['name']} is not allowed")
        for value in node.values():
            self.walk(value, ctes)

    def union(self, node: dict, ctes: frozenset[str]) -> None:
        # ClickHouse applies the first SELECT's WITH to every SELECT of the union
        selects = node.get("list_of_selects", {}).get("children", [])
        shared = ctes | _cte_names(selects[0]) if selects else ctes
        for i, select in enumerate(selects):
            self.walk(select, ctes if i == 0 else shared)
        for key, value in node.items():
            if key != "list_of_selects":
                self.walk(value, ctes)

    def select(self, node: dict, ctes: frozenset[str]) -> None:
        names = _cte_names(node)
        inner = ctes | names
        for element in node.get("with", {}).get("children", []):
            if element.get("type") == "WithElement":
                # a CTE's own name inside its body is the table of that name, unless RECURSIVE
                own = inner if node.get("recursive_with") else inner - {element.get("name")}
                self.walk(element.get("subquery"), own)
            else:
                self.walk(element, inner)
        for key, value in node.items():
            if key != "with":
                self.walk(value, inner)

    def function(self, node: dict, ctes: frozenset[str]) -> None:
        name = node.get("name", "")
        lower = name.lower()
        if lower in OUTSIDE_FUNCTIONS or lower.startswith("dict"):
            raise self.outside(f"function {name}()")
        args = node.get("arguments", {}).get("children", [])
        if lower in IN_FUNCTIONS and len(args) == 2 and args[1].get("type") == "Identifier":
            # `x IN db.table` reads that table
            self.table(args[1].get("name_parts") or [args[1]["name"]], ctes)

    def table(self, parts: list[str], ctes: frozenset[str] = frozenset()) -> None:
        if len(parts) == 1:
            if parts[0] in ctes:
                return
            raise QueryRefused(
                f"table {parts[0]} has no database: write database.table ({self.listing})"
            )
        if len(parts) == 2 and (parts[0] in self.databases or tuple(parts) in DISCOVERY_TABLES):
            return
        raise self.outside(f"table {'.'.join(parts)}")


def _cte_names(select: dict) -> frozenset[str]:
    return frozenset(
        element["name"]
        for element in select.get("with", {}).get("children", [])
        if element.get("type") == "WithElement" and "name" in element
    )


def check_read_only(query: str, client: Client, settings: Mapping[str, Any] | None = None) -> str:
    """The statement to run for `query`, or QueryRefused naming what is refused."""
    if not query.strip():
        raise QueryRefused("empty query")
    settings = dict(settings or {})

    def scalar(sql: str, **parameters: str) -> str:
        return client.query(sql, parameters=parameters, settings=settings).result_rows[0][0]

    try:
        statement = scalar("SELECT formatQuerySingleLine({q:String})", q=query)
    except ClickHouseError as exc:
        raise QueryRefused(f"not one valid statement: {error_line(exc)}") from exc
    checker = _Checker(warehouse_databases(client, settings))
    try:
        ast = json.loads(scalar("SELECT parseQueryToJSON({q:String})", q=statement))
    except ClickHouseError as exc:
        if "not supported by parseQueryToJSON" not in str(exc):
            raise QueryRefused(f"the statement could not be checked: {error_line(exc)}") from exc
        return _check_without_json(statement, client, settings, checker)
    checker.statement(ast)
    return statement


def _check_without_json(
    statement: str, client: Client, settings: dict[str, Any], checker: _Checker
) -> str:
    """DESCRIBE, and the refusal of other statements parseQueryToJSON does not serialise
    (EXISTS, SHOW CREATE, SHOW PROCESSLIST, INSERT ... VALUES), from EXPLAIN AST's text dump:
    EXPLAIN AST only parses, it runs nothing."""
    try:
        dump = client.raw_query(f"EXPLAIN AST {statement}", fmt="TSVRaw", settings=settings)
    except ClickHouseError as exc:
        raise QueryRefused(f"the statement could not be checked: {error_line(exc)}") from None
    text = dump.decode("utf-8", "replace")
    root = text.split("\n", 1)[0].split(" (children", 1)[0]
    if root.split(" ", 1)[0] == "DescribeQuery":
        return checker.describe(text)
    # node ids are either CamelCase ('ExistsTableQuery db t') or words ('SHOW USERS query')
    words = root.removesuffix(" query")
    kind = words if words.isupper() else _kind(root.split()[0])
    raise QueryRefused(f"only read statements are allowed ({STATEMENTS}), not {kind}")


@contextlib.contextmanager
def reader() -> Iterator[tuple[Client, dict[str, Any]]]:
    """A client for analysts' queries and the settings each query must carry."""
    shared = warehouse()
    path = getattr(shared, "path", None)
    if not path:
        # a ClickHouse server: settings travel with each HTTP request, nothing sticks
        yield shared, SERVER_SETTINGS
        return
    handle = clickhouse_connect.get_client(dsn=f"chdb://{path}")
    try:
        for name, value in {**QUERY_SETTINGS, "readonly": EMBEDDED_READONLY}.items():
            handle.command(f"SET {name} = {value}")  # readonly last: after it nothing changes
        yield handle, {}
    finally:
        handle.close()


def run_sql(query: str, fmt: Format = "table") -> str:
    """Run one read-only statement and return its result formatted as text."""
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {sorted(FORMATS)}, not {fmt!r}")
    with reader() as (client, settings):
        statement = check_read_only(query, client, settings)
        raw = client.raw_query(statement, fmt=FORMATS[fmt], settings=settings)
    text = raw.decode("utf-8")
    if fmt == "json":  # JSON escapes control characters itself
        rows = [json.loads(line) for line in text.splitlines() if line.strip()]
        return json.dumps(rows, ensure_ascii=False, indent=1)
    if fmt == "table":
        return _CONTROL.sub(lambda m: f"\\x{ord(m[0]):02x}", text)
    return text
