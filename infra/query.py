"""Read-only SQL against the warehouse (embedded chDB or a ClickHouse server): `hqlake sql`.

run_sql(query, fmt="table"|"json"|"csv") -> str

Two guards, so an analyst's query can never change the warehouse: the statement must be one
SELECT / WITH / SHOW / DESCRIBE / EXPLAIN / EXISTS statement, and it runs with the ClickHouse
setting readonly=2 (reads and session settings only; the server refuses writes, DDL and a
change of `readonly` itself). ClickHouse formats the result itself, so dates and times come
out in their column's time zone.

Embedded, the query runs on its own chDB handle on the process's engine: chDB applies the
settings of a raw query with SET on the handle and cannot undo readonly afterwards, so the
shared warehouse client must never carry it.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Iterator
from typing import Literal

import clickhouse_connect
from clickhouse_connect.driver.client import Client

from infra.runtime import warehouse

Format = Literal["table", "json", "csv"]
FORMATS: dict[str, str] = {
    "table": "PrettyCompactNoEscapes",
    "json": "JSONEachRow",
    "csv": "CSVWithNames",
}
READ_STATEMENTS = ("select", "with", "show", "describe", "desc", "explain", "exists")
SETTINGS = {
    "readonly": 2,
    "output_format_json_quote_64bit_integers": 0,
    "output_format_pretty_max_rows": 10_000,
}
_COMMENT = re.compile(r"--[^\n]*|/\*.*?\*/", re.DOTALL)
_STRING = re.compile(r"'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"|`(?:[^`\\]|\\.)*`", re.DOTALL)


class QueryRefused(ValueError):
    """The query is not a single read-only statement."""


def check_read_only(query: str) -> str:
    """The query without its trailing ';', or QueryRefused naming why it is refused."""
    code = _COMMENT.sub(" ", _STRING.sub("''", query)).strip()
    code = code.rstrip(";").strip()
    if not code:
        raise QueryRefused("empty query")
    if ";" in code:
        raise QueryRefused("one statement at a time")
    if re.search(r"\bformat\s+\w+\s*$", code, re.IGNORECASE):
        raise QueryRefused("leave FORMAT out: choose --format table, json or csv")
    first = code.split(None, 1)[0].lower()
    if first not in READ_STATEMENTS:
        raise QueryRefused(
            f"only read statements are allowed ({', '.join(s.upper() for s in READ_STATEMENTS)}),"
            f" not {first.upper()}"
        )
    return query.strip().rstrip(";").strip()


@contextlib.contextmanager
def _reader() -> Iterator[Client]:
    shared = warehouse()
    path = getattr(shared, "path", None)
    if not path:
        # a ClickHouse server: settings travel with each HTTP request, nothing sticks
        yield shared
        return
    handle = clickhouse_connect.get_client(dsn=f"chdb://{path}")
    try:
        yield handle
    finally:
        handle.close()


def run_sql(query: str, fmt: Format = "table") -> str:
    """Run one read-only statement and return its result formatted as text."""
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {sorted(FORMATS)}, not {fmt!r}")
    statement = check_read_only(query)
    with _reader() as client:
        raw = client.raw_query(statement, fmt=FORMATS[fmt], settings=SETTINGS)
    text = raw.decode("utf-8")
    if fmt == "json":
        rows = [json.loads(line) for line in text.splitlines() if line.strip()]
        return json.dumps(rows, ensure_ascii=False, indent=1)
    return text
