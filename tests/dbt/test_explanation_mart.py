"""dq_score_explanation and its test that points sum exactly to the lost total, run on chDB
from the models' own SQL over a hand-made scored day (the daily-run test builds them with
dbt on the sample city): the test passes on what the scoring stored and fails on one point
off by 10^-12."""

from __future__ import annotations

from pathlib import Path

import jinja2
import pytest

from expectations.scoring.store import score_date
from tests.expectations.scoring.test_scoring import D, _hand_made_day, org, registry

pytestmark = pytest.mark.integration

DBT = Path(__file__).parents[2] / "dbt"
NO_ORGANIZATIONS = "(SELECT '' AS org_code, '' AS org_name, '' AS county_code WHERE 0)"


def _render(path: Path, **tables: str) -> str:
    env = jinja2.Environment(undefined=jinja2.StrictUndefined)
    env.globals.update(
        config=lambda **_: "",
        ref=tables.__getitem__,
        source=lambda schema, name: f"{schema}.{name}",
    )
    return env.from_string(path.read_text()).render()


def _sums_exactly_to(model_sql: str) -> str:
    """The generic test's SQL on `model_sql`, with the arguments the mart's YAML gives it."""
    text = (DBT / "tests" / "generic" / "sums_exactly_to.sql").read_text()
    text = text.replace("{% test ", "{% macro test_").replace("{% endtest %}", "{% endmacro %}")
    module = jinja2.Environment(undefined=jinja2.StrictUndefined).from_string(text).module
    group_by = [
        "explanation_level",
        "org_code",
        "business_date",
        "if(explanation_level = 'batch', dataset, '')",
    ]
    return str(
        module.test_sums_exactly_to(
            f"({model_sql})", "points_lost", total="points_lost_total", group_by=group_by
        )
    )


def test_the_mart_and_its_sum_test(rt):
    _hand_made_day(rt.ch)
    score_date(rt.ch, registry(org("T1")), D)
    staging = _render(DBT / "models" / "staging" / "dq" / "stg_dq__score_explanation.sql")
    mart = _render(
        DBT / "models" / "marts" / "dq" / "dq_score_explanation.sql",
        stg_dq__score_explanation=f"({staging})",
        dim_organization=NO_ORGANIZATIONS,
    )
    result = rt.ch.query(mart)
    rows = [dict(zip(result.column_names, r, strict=True)) for r in result.result_rows]
    assert len(rows) == 5 + 5  # the organisation-day's lines and its batches'
    assert {r["explanation_level"] for r in rows} == {"org_day", "batch"}
    assert sum(r["is_waived"] for r in rows) == 0
    # the mart's columns can be a table's (dbt materialises it as one)
    rt.ch.command(f"CREATE TABLE dq.mart_probe ENGINE = MergeTree ORDER BY tuple() AS {mart}")
    assert rt.ch.query(_sums_exactly_to(mart)).result_rows == []
    # one point off by 10^-12: the test returns its organisation-day
    off = (
        f"SELECT * REPLACE (if(rule_id = 'outpatient_visit.a.required'"
        f" AND explanation_level = 'org_day', points_lost + toDecimal128('0.000000000001', 12),"
        f" points_lost) AS points_lost) FROM ({mart})"
    )
    [failing] = rt.ch.query(_sums_exactly_to(off)).result_rows
    assert failing[:2] == ("org_day", "T1")
