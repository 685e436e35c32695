"""ClickHouse roles and row policies for the marts, generated from the organisation registry.

- `hqlake_bi_reader`: read-only on every mart database (ehr, indicators, performance,
  dq_marts); no access to raw, staging or intermediate (where personal data is unmasked).
- `hqlake_county_<county_code>`, one per county of the registry: read-only on the mart
  tables that carry `county_code` or `org_code`, each guarded by a row policy that keeps the
  county's own rows (its county_code, or the org_codes of the organisations registered in
  it, the county platform included), plus the shared dimensions (dates, organisations).
  Tables without either column (person-level dimensions) are not granted to counties.
- `hqlake_read_only`, a settings profile of both kinds of role: readonly=1, so an analyst's
  session can neither write nor change a setting. No role gets anything but SELECT: no
  CREATE TEMPORARY TABLE and no source grants (FILE, URL, S3, REMOTE, MYSQL, POSTGRES,
  ODBC, JDBC, HDFS, AZURE, ... or SOURCES, `READ ON <source>` on newer servers), which the
  table functions file(), url(), s3(), remote(), mysql() ... need, so the server refuses
  them to analysts, as `hqlake sql` does on every runtime.
- ClickHouse applies row policies to everyone once a table has one: a policy
  `hqlake_unrestricted ... USING 1 TO ALL EXCEPT <county roles>` keeps every other user
  (pipeline, BI, administrators) seeing all rows.

The SQL is idempotent (IF NOT EXISTS, OR REPLACE): run it again after the registry or the
marts change (a new hospital joins its county's policy; a new mart table gets its policies).
Users and passwords are not in the generated SQL unless asked for (`users_sql`), and then
only as salted SHA-256 hashes.

    python -m infra.roles [--out roles.sql] [--apply] [--registry CSV]

reads the mart tables from the warehouse (system.columns) and prints or writes the SQL;
`--apply` executes it (a ClickHouse server with access management; chDB has no writable
access storage, so there the statements can only be parsed, not executed).
"""

from __future__ import annotations

import argparse
import hashlib
import re
import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from contracts.registry import Registry

MART_DATABASES = ("ehr", "indicators", "performance", "dq_marts")
SHARED_TABLES = ("ehr.dim_date", "ehr.dim_organization")
BI_ROLE = "hqlake_bi_reader"
READ_ONLY_PROFILE = "hqlake_read_only"
UNRESTRICTED_POLICY = "hqlake_unrestricted"
_CODE = re.compile(r"^[0-9A-Z]{6,18}$")
_NAME = re.compile(r"^[A-Za-z_][0-9A-Za-z_]*$")


@dataclass(frozen=True)
class Table:
    database: str
    name: str
    columns: tuple[str, ...]

    @property
    def qualified(self) -> str:
        return f"{_ident(self.database)}.{_ident(self.name)}"


def _ident(name: str) -> str:
    if not _NAME.match(name):
        raise ValueError(f"{name!r} is not a plain ClickHouse identifier")
    return f"`{name}`"


def _literal(code: str) -> str:
    """A registry code as a SQL string literal; codes are checked, never escaped."""
    if not _CODE.match(code):
        raise ValueError(f"{code!r} is not an organisation or division code")
    return f"'{code}'"


def county_role(county_code: str) -> str:
    _literal(county_code)
    return f"hqlake_county_{county_code}"


def counties(registry: Registry) -> dict[str, list[str]]:
    """county_code -> org_codes registered in that county (the county platform included)."""
    out: dict[str, list[str]] = {}
    for org in sorted(registry.organisations.values(), key=lambda o: o.org_code):
        out.setdefault(org.county_code, []).append(org.org_code)
    return dict(sorted(out.items()))


def county_predicate(table: Table, county_code: str, org_codes: Sequence[str]) -> str | None:
    """The row filter that keeps one county's rows of `table`, or None when the table has
    neither county_code nor org_code."""
    if "county_code" in table.columns:
        return f"county_code = {_literal(county_code)}"
    if "org_code" in table.columns:
        return f"org_code IN ({', '.join(_literal(c) for c in org_codes)})"
    return None


def warehouse_tables(ch, databases: Iterable[str] = MART_DATABASES) -> list[Table]:
    """The tables (not views of other databases) of `databases`, with their columns."""
    rows = ch.query(
        "SELECT c.database, c.table, groupArray(c.name) FROM system.columns AS c"
        " INNER JOIN system.tables AS t ON t.database = c.database AND t.name = c.table"
        " WHERE c.database IN {dbs:Array(String)} AND NOT t.is_temporary"
        " GROUP BY c.database, c.table ORDER BY c.database, c.table",
        parameters={"dbs": list(databases)},
    ).result_rows
    return [Table(db, name, tuple(columns)) for db, name, columns in rows]


def roles_sql(
    registry: Registry,
    tables: Sequence[Table],
    databases: Sequence[str] = MART_DATABASES,
    shared: Sequence[str] = SHARED_TABLES,
) -> list[str]:
    """Statements creating the BI role, the county roles, their grants and row policies."""
    by_county = counties(registry)
    county_roles = [county_role(c) for c in by_county]
    sql = [f"CREATE ROLE IF NOT EXISTS {BI_ROLE}"]
    sql += [f"GRANT SELECT ON {_ident(db)}.* TO {BI_ROLE}" for db in databases]
    sql += [f"CREATE ROLE IF NOT EXISTS {role}" for role in county_roles]
    sql.append(
        f"CREATE SETTINGS PROFILE OR REPLACE {READ_ONLY_PROFILE} SETTINGS readonly = 1"
        f" TO {', '.join([BI_ROLE, *county_roles])}"
    )
    everyone_else = ", ".join(county_roles)
    for table in tables:
        if table.database not in databases:
            continue
        if f"{table.database}.{table.name}" in shared:
            sql += [f"GRANT SELECT ON {table.qualified} TO {role}" for role in county_roles]
            continue
        guarded = False
        for county, orgs in by_county.items():
            predicate = county_predicate(table, county, orgs)
            if predicate is None:
                break
            guarded = True
            role = county_role(county)
            sql.append(f"GRANT SELECT ON {table.qualified} TO {role}")
            sql.append(
                f"CREATE ROW POLICY OR REPLACE {role} ON {table.qualified}"
                f" FOR SELECT USING {predicate} TO {role}"
            )
        if guarded and county_roles:
            sql.append(
                f"CREATE ROW POLICY OR REPLACE {UNRESTRICTED_POLICY} ON {table.qualified}"
                f" FOR SELECT USING 1 TO ALL EXCEPT {everyone_else}"
            )
    return sql


def password_hash(password: str, salt: str | None = None) -> tuple[str, str]:
    """(sha256 hex of password + salt, salt): ClickHouse's `sha256_hash ... SALT` form."""
    salt = salt or secrets.token_hex(16)
    return hashlib.sha256((password + salt).encode()).hexdigest().upper(), salt


def users_sql(users: dict[str, tuple[str, str]]) -> list[str]:
    """user -> (role, password): CREATE USER with a salted hash, the role as default."""
    sql = []
    for user, (role, password) in sorted(users.items()):
        digest, salt = password_hash(password)
        sql.append(
            f"CREATE USER IF NOT EXISTS {_ident(user)} IDENTIFIED WITH sha256_hash"
            f" BY '{digest}' SALT '{salt}' DEFAULT ROLE {_ident(role)}"
        )
        sql.append(f"GRANT {_ident(role)} TO {_ident(user)}")
    return sql


def script(statements: Iterable[str], source: str) -> str:
    header = (
        f"-- hqlake ClickHouse roles and row policies, generated by infra/roles.py from {source}.\n"
        "-- Idempotent: run again after the registry or the marts change.\n"
    )
    return header + "".join(f"{s};\n" for s in statements)


def main(argv: list[str] | None = None) -> None:
    from contracts.registry import load_registry
    from infra.runtime import warehouse
    from infra.settings import settings

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--registry", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--apply", action="store_true")
    args = parser.parse_args(argv)
    registry = load_registry(args.registry or settings().org_registry)
    ch = warehouse()
    statements = roles_sql(registry, warehouse_tables(ch))
    text = script(statements, registry.source)
    if args.out:
        args.out.write_text(text, encoding="utf-8")
    else:
        print(text, end="")
    if args.apply:
        for statement in statements:
            ch.command(statement)


if __name__ == "__main__":
    main()
