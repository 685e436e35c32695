"""One ranking rule for days and months: dq_org_month_score's means and ranks, run on chDB
from the model's own SQL, against an independent computation with Python's decimal module
(exact mean of the daily scores' decimal forms, ROUND_HALF_UP, standard competition ranks) on
ties at x.xx5, where ClickHouse's round(avg(x), 2) rounds many the other way."""

from __future__ import annotations

import datetime as dt
import random
from decimal import ROUND_HALF_UP, Decimal, localcontext
from pathlib import Path

import jinja2
import pytest

from expectations.scoring.arithmetic import round_score
from expectations.scoring.config import load_scoring_config
from infra import dbtrun

pytestmark = pytest.mark.integration

DBT = Path(__file__).parents[2] / "dbt"
MONTH = dt.date(2026, 11, 1)
DECIMALS = load_scoring_config().ranking.decimals
DIMENSIONS = ("completeness", "timeliness", "correctness", "logic", "composite")

# (org_code, peer_group) -> daily composites of November
HAND_MADE = {
    # 81.87 and 83.70: mean 82.785, half up 82.79, ties with B (round(avg) gives 82.78)
    ("A", "tertiary"): [81.87, 83.70],
    ("B", "tertiary"): [82.79],
    ("C", "tertiary"): [82.78],
    # 98.30 and 90.91: 94.605 -> 94.61, ties with E; a day without a composite does not count
    ("D", "secondary"): [98.30, 90.91],
    ("E", "secondary"): [94.61, None],
    ("F", "secondary"): [94.60],
    ("G", "county"): [None],  # no composite: not ranked
}


def _ties(seed: int, orgs: int) -> dict[tuple[str, str], list[float | None]]:
    """Organisations whose daily composites (2 or 3 decimals) average exactly to x.xx5."""
    rng = random.Random(seed)
    out: dict[tuple[str, str], list[float | None]] = {}
    while len(out) < orgs:
        days = rng.randint(2, 6)
        scores = [Decimal(rng.randint(8000, 10000)) / 100 for _ in range(days - 1)]
        target = Decimal(rng.randint(8000, 9999)) / 100 + Decimal("0.005")
        last = target * days - sum(scores)
        if 0 <= last <= 100:
            group = rng.choice(("tertiary", "secondary", "primary"))
            out[(f"R{len(out):03d}", group)] = [float(s) for s in (*scores, last)]
    return out


def _render_model(days_sql: str) -> str:
    """The model's SQL as dbt would compile it, with its inputs replaced by `days_sql`."""
    env = jinja2.Environment(undefined=jinja2.StrictUndefined)
    env.globals.update(
        var={"ranking_decimals": dbtrun.dbt_vars()["ranking_decimals"]}.__getitem__,
        config=lambda **_: "",
        adapter=type("Adapter", (), {"dispatch": staticmethod(lambda name, _: macros[name])}),
        **{"return": lambda value: value},
    )
    macros = {}
    for macro_file in ("scores.sql", "joins.sql"):  # the macros the model calls
        module = env.from_string((DBT / "macros" / macro_file).read_text()).make_module()
        names = [name for name in dir(module) if not name.startswith("_")]
        macros |= {
            n.removeprefix("clickhouse__"): getattr(module, n)
            for n in names
            if n.startswith("clickhouse__")
        }
        env.globals.update({name: getattr(module, name) for name in names})
    no_acceptance = (
        "(SELECT '' AS org_code, toDate('2026-01-01') AS period_month, 0 AS days_judged,"
        " 0 AS days_at_bar, 0.0 AS days_at_bar_pct, false AS is_accepted WHERE 0)"
    )
    inputs = {"dq_org_day_score": f"({days_sql})", "stg_dq__acceptance": no_acceptance}
    env.globals["ref"] = inputs.__getitem__
    sql = (DBT / "models" / "marts" / "dq" / "dq_org_month_score.sql").read_text()
    return env.from_string(sql).render()


def _days_sql(orgs: dict[tuple[str, str], list[float | None]]) -> str:
    """One day-score row per daily composite; every dimension score equals the composite, so
    the dimension means are checked by the same numbers."""
    rows = []
    for (code, group), scores in orgs.items():
        for i, score in enumerate(scores):
            value = "NULL" if score is None else repr(score)
            rows.append(f"('{code}', '{group}', toDate('{MONTH}') + {i}, {value})")
    scores = ", ".join(f"composite AS {d}_score" for d in DIMENSIONS)
    return (
        "SELECT org_code, org_code AS org_name, peer_group, '411502' AS county_code,"
        f" business_date, {scores}, 0 AS rules_failed, 0 AS blocking_rules_failed,"
        " 0 AS new_failures, 0 AS resolved_failures FROM values("
        "'org_code String, peer_group String, business_date Date,"
        f" composite Nullable(Float64)', {', '.join(rows)})"
    )


def _half_up_mean(scores: list[float | None]) -> Decimal | None:
    present = [Decimal(repr(s)) for s in scores if s is not None]
    if not present:
        return None
    with localcontext() as context:
        # 60 digits: a mean of a few 17-digit scores is exact or far from a half
        context.prec = 60
        mean = sum(present) / len(present)
    return mean.quantize(Decimal(1).scaleb(-DECIMALS), rounding=ROUND_HALF_UP)


def _competition_ranks(means: dict[tuple[str, str], Decimal | None]) -> dict[str, int | None]:
    """1 + the number of the peer group's organisations with a greater rounded mean."""
    return {
        code: None
        if mean is None
        else 1 + sum(m is not None and m > mean for (_, g), m in means.items() if g == group)
        for (code, group), mean in means.items()
    }


def _month_rows(ch, orgs) -> dict[str, dict]:
    result = ch.query(_render_model(_days_sql(orgs)))
    rows = [dict(zip(result.column_names, r, strict=True)) for r in result.result_rows]
    return {r["org_code"]: r for r in rows}


def test_month_means_and_ranks_round_ties_half_up_like_the_days(rt):
    orgs = HAND_MADE | _ties(seed=12, orgs=150)
    got = _month_rows(rt.ch, orgs)
    means = {key: _half_up_mean(scores) for key, scores in orgs.items()}
    ranks = _competition_ranks(means)
    for (code, _), scores in orgs.items():
        row, mean = got[code], means[(code, _)]
        expected = None if mean is None else float(mean)
        assert [row[f"{d}_score"] for d in DIMENSIONS] == [expected] * 5, (code, scores)
        assert row["peer_rank"] == ranks[code], (code, scores)
        assert row["days_scored"] == len(scores)
        worst = min((s for s in scores if s is not None), default=None)
        assert row["worst_day_composite_score"] == (
            None if worst is None else float(round_score(worst, DECIMALS))
        )
    alone = _month_rows(rt.ch, HAND_MADE)
    hand = {code: (r["composite_score"], r["peer_rank"]) for code, r in alone.items()}
    assert hand == {
        "A": (82.79, 1),
        "B": (82.79, 1),
        "C": (82.78, 3),
        "D": (94.61, 1),
        "E": (94.61, 1),
        "F": (94.6, 3),
        "G": (None, None),
    }
    # A month of one day ranks by the day's rule (scoring's round_score on the composite).
    for (code, _), scores in orgs.items():
        if len(scores) == 1 and scores[0] is not None:
            assert Decimal(repr(got[code]["composite_score"])) == round_score(scores[0], DECIMALS)


def test_the_ties_are_ones_round_avg_gets_wrong(rt):
    """The cases above are not vacuous: ClickHouse's float mean rounds many of them down."""
    orgs = HAND_MADE | _ties(seed=12, orgs=150)
    old = dict(
        rt.ch.query(
            f"SELECT org_code, round(avg(composite_score), 2) FROM ({_days_sql(orgs)})"
            " GROUP BY org_code"
        ).result_rows
    )
    wrong = [
        code
        for (code, _), scores in orgs.items()
        if (mean := _half_up_mean(scores)) is not None and Decimal(repr(old[code])) != mean
    ]
    assert {"A", "D"} <= set(wrong) and len(wrong) > 30
