"""ClickHouse roles and row policies generated from the registry, checked on chDB.

chDB runs without a writable access storage: CREATE ROLE / USER / ROW POLICY and GRANT cannot
be executed there (asserted below, so the day chDB can, this test says so). What chDB does
check: every generated statement parses (formatQuery, ClickHouse's own parser), and every
row-policy filter, run as a WHERE clause on real tables, keeps exactly its county's rows.
"""

from __future__ import annotations

import hashlib

import pytest

from contracts.registry import load_registry
from infra.roles import (
    BI_ROLE,
    READ_ONLY_PROFILE,
    UNRESTRICTED_POLICY,
    Table,
    counties,
    county_predicate,
    county_role,
    roles_sql,
    users_sql,
    warehouse_tables,
)

pytestmark = pytest.mark.integration
DB = "roles_marts"


@pytest.fixture
def marts(rt):
    ch = rt.ch
    registry = load_registry()
    ch.command(f"DROP DATABASE IF EXISTS {DB} SYNC")
    ch.command(f"CREATE DATABASE {DB}")
    ch.command(
        f"CREATE TABLE {DB}.fct_visit (org_code String, n UInt32)"
        " ENGINE = MergeTree ORDER BY org_code"
    )
    ch.command(
        f"CREATE TABLE {DB}.ind_county (county_code String, org_code String, n UInt32)"
        " ENGINE = MergeTree ORDER BY county_code"
    )
    ch.command(
        f"CREATE TABLE {DB}.dim_person (person_key String) ENGINE = MergeTree ORDER BY tuple()"
    )
    ch.command(f"CREATE TABLE {DB}.dim_date (date_day Date) ENGINE = MergeTree ORDER BY tuple()")
    orgs = list(registry.organisations.values())
    ch.insert(f"{DB}.fct_visit", [[o.org_code, 1] for o in orgs], column_names=["org_code", "n"])
    ch.insert(
        f"{DB}.ind_county",
        [[o.county_code, o.org_code, 1] for o in orgs],
        column_names=["county_code", "org_code", "n"],
    )
    yield ch, registry, warehouse_tables(ch, [DB])
    ch.command(f"DROP DATABASE IF EXISTS {DB} SYNC")


def _sql(registry, tables):
    return roles_sql(registry, tables, databases=[DB], shared=[f"{DB}.dim_date"])


def test_tables_are_read_from_the_warehouse(marts):
    _, _, tables = marts
    assert [t.name for t in tables] == ["dim_date", "dim_person", "fct_visit", "ind_county"]
    assert set(next(t for t in tables if t.name == "ind_county").columns) == {
        "county_code",
        "org_code",
        "n",
    }


def test_every_statement_parses(marts):
    ch, registry, tables = marts
    statements = _sql(registry, tables) + users_sql({"bi": (BI_ROLE, "s3cret-pass")})
    for statement in statements:
        formatted = ch.query(
            "SELECT formatQuery({q:String})", parameters={"q": statement}
        ).result_rows[0][0]
        assert formatted.split()[0] in {"CREATE", "GRANT"}


def test_bi_role_reads_marts_only(marts):
    _, registry, tables = marts
    statements = _sql(registry, tables)
    bi = [s for s in statements if BI_ROLE in s and "SETTINGS PROFILE" not in s]
    assert bi == [f"CREATE ROLE IF NOT EXISTS {BI_ROLE}", f"GRANT SELECT ON `{DB}`.* TO {BI_ROLE}"]
    default = roles_sql(registry, [])
    granted = {s.split(" ON ")[1].split(" TO ")[0] for s in default if s.startswith("GRANT")}
    assert granted == {"`ehr`.*", "`indicators`.*", "`performance`.*", "`dq_marts`.*"}


def test_county_roles_and_row_policies(marts):
    _, registry, tables = marts
    statements = _sql(registry, tables)
    by_county = counties(registry)
    assert len(by_county) >= 2
    roles = [county_role(c) for c in by_county]
    for role in roles:
        assert f"CREATE ROLE IF NOT EXISTS {role}" in statements
        assert f"GRANT SELECT ON `{DB}`.`dim_date` TO {role}" in statements
        assert not any("dim_person" in s and role in s for s in statements)
    for name in ("fct_visit", "ind_county"):
        policies = [s for s in statements if "ROW POLICY" in s and f"`{name}`" in s]
        assert len(policies) == len(by_county) + 1
        unrestricted = [p for p in policies if UNRESTRICTED_POLICY in p]
        assert unrestricted == [
            f"CREATE ROW POLICY OR REPLACE {UNRESTRICTED_POLICY} ON `{DB}`.`{name}` FOR SELECT"
            f" USING 1 TO ALL EXCEPT {', '.join(roles)}"
        ]


def test_policy_filters_keep_exactly_the_county_rows(marts):
    ch, registry, tables = marts
    statements = _sql(registry, tables)
    for table in (t for t in tables if t.name in ("fct_visit", "ind_county")):
        for county, orgs in counties(registry).items():
            predicate = county_predicate(table, county, orgs)
            assert f"USING {predicate} TO {county_role(county)}" in " ".join(statements)
            seen = ch.query(
                f"SELECT DISTINCT org_code FROM {table.qualified} WHERE {predicate}"
            ).result_rows
            assert sorted(r[0] for r in seen) == sorted(orgs)


def test_users_get_a_salted_hash_never_the_password():
    (create, grant) = users_sql({"county_411502": (county_role("411502"), "pw-411502!")})
    assert "pw-411502!" not in create
    digest = create.split("BY '")[1].split("'")[0]
    salt = create.split("SALT '")[1].split("'")[0]
    assert digest == hashlib.sha256(("pw-411502!" + salt).encode()).hexdigest().upper()
    assert grant == "GRANT `hqlake_county_411502` TO `county_411502`"


def test_codes_and_names_are_checked_not_escaped():
    with pytest.raises(ValueError):
        county_role("4115'; DROP")
    with pytest.raises(ValueError):
        Table("ehr", "bad name", ("org_code",)).qualified  # noqa: B018


def test_chdb_cannot_execute_access_control(marts):
    ch, registry, tables = marts
    create_role = _sql(registry, tables)[0]
    with pytest.raises(Exception, match=r"privileges|access storage|ACCESS_DENIED"):
        ch.command(create_role)


def test_analysts_are_read_only_and_get_no_sources(marts):
    """Table functions (file, url, s3, remote, mysql ...) need CREATE TEMPORARY TABLE and
    source grants on a server: the generated roles get SELECT and nothing else, and every
    analyst role carries the readonly=1 profile."""
    _, registry, tables = marts
    statements = _sql(registry, tables)
    grants = [s for s in statements if s.startswith("GRANT")]
    assert grants and all(s.startswith("GRANT SELECT ON `") for s in grants)
    roles = [BI_ROLE, *(county_role(c) for c in counties(registry))]
    assert (
        f"CREATE SETTINGS PROFILE OR REPLACE {READ_ONLY_PROFILE} SETTINGS readonly = 1"
        f" TO {', '.join(roles)}"
    ) in statements
    text = " ".join(statements).upper()
    for privilege in ("FILE", "URL", "REMOTE", "SOURCES", "TEMPORARY", "S3", "ALL ON", "INSERT"):
        assert f"GRANT {privilege}" not in text and f", {privilege}" not in text
