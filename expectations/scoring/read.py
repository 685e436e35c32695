"""Readers for the pages and e-mails: the current scores of a date, an organisation's trend
and failures, and a month's acceptance, as plain rows (lists of dicts)."""

# SQL text here is formatted from module constants only (column and table names); every value
# is a bound query parameter.
# ruff: noqa: S608

from __future__ import annotations

import datetime as dt
import json
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from clickhouse_connect.driver.client import Client

from expectations.rules.rulebase import rulebase
from expectations.scoring.config import DIMENSIONS, PEER_GROUPS
from expectations.scoring.inputs import current_runs, failing
from expectations.scoring.store import from_millis
from expectations.scoring.tables import (
    ACCEPTANCE_COLUMNS,
    BATCH_COLUMNS,
    EXPLANATION_COLUMNS,
    ORG_DAY_COLUMNS,
)


def _select(columns: Iterable[str]) -> str:
    """Columns for a SELECT, with computed_at as epoch milliseconds (the driver would return
    the zoned column as a naive UTC datetime)."""
    return ", ".join(
        "toUnixTimestamp64Milli(computed_at) AS computed_at" if c == "computed_at" else c
        for c in columns
    )


def _rows(ch: Client, sql: str, parameters: dict[str, Any]) -> list[dict[str, Any]]:
    result = ch.query(sql, parameters=parameters)
    rows = [dict(zip(result.column_names, r, strict=True)) for r in result.result_rows]
    for row in rows:
        if "computed_at" in row:
            row["computed_at"] = from_millis(row["computed_at"])
    return rows


_PEER_ORDER = f"indexOf([{', '.join(repr(g) for g in PEER_GROUPS)}], peer_group)"


def read_scores(ch: Client, day: dt.date) -> list[dict[str, Any]]:
    """Organisation-day rows of the latest scoring of the current run of `day`, in display
    order (peer group, rank, org_code); empty when that run has not been scored."""
    return _rows(
        ch,
        f"SELECT {_select(ORG_DAY_COLUMNS)} FROM dq.current_score_org_day"
        f" WHERE business_date = {{d:Date}}"
        f" ORDER BY if({_PEER_ORDER} = 0, {len(PEER_GROUPS) + 1}, {_PEER_ORDER}),"
        f" rank IS NULL, rank, org_code",
        {"d": day},
    )


def read_batch_scores(
    ch: Client, day: dt.date, org_code: str | None = None
) -> list[dict[str, Any]]:
    """Batch rows of the latest scoring of the current run of `day`, by organisation, dataset."""
    return _rows(
        ch,
        f"SELECT {_select(BATCH_COLUMNS)} FROM dq.current_score_batch WHERE business_date ="
        " {d:Date} AND ({org:String} = '' OR org_code = {org:String}) ORDER BY org_code, dataset",
        {"d": day, "org": org_code or ""},
    )


def trend(ch: Client, org_code: str, day: dt.date, days: int = 30) -> list[dict[str, Any]]:
    """Composite, rank and dimension scores of `org_code` over the `days` dates ending with
    `day`, oldest first; current runs only (dates not scored are absent)."""
    return day_trends(ch, day, days, org_code).get(org_code, [])


def day_trends(
    ch: Client, day: dt.date, days: int = 30, org_code: str = ""
) -> dict[str, list[dict[str, Any]]]:
    """`trend` of every organisation (or of `org_code`) in one query, by organisation."""
    rows = _rows(
        ch,
        f"SELECT org_code, business_date, composite, rank, peer_size, {', '.join(DIMENSIONS)}"
        " FROM dq.current_score_org_day"
        " WHERE ({org:String} = '' OR org_code = {org:String})"
        " AND business_date BETWEEN {start:Date} AND {d:Date} ORDER BY org_code, business_date",
        {"org": org_code, "start": day - dt.timedelta(days=days - 1), "d": day},
    )
    return _by_org(rows)


def _by_org(rows: list[dict[str, Any]], keep: bool = False) -> dict[str, list[dict[str, Any]]]:
    """`rows` (ordered by org_code first) by organisation, without their org_code unless
    `keep`, in their order."""
    out: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        out[row["org_code"] if keep else row.pop("org_code")].append(row)
    return dict(out)


def failures(ch: Client, org_code: str, day: dt.date) -> list[dict[str, Any]]:
    """Failed rule results of `org_code` in the current run of `day`, blocking first, then by
    weight, dataset and rule, with what the rule checks and how to fix it (zh, en) and whether
    the failure is new or persisting against the organisation's previous date with results."""
    return day_failures(ch, day, org_code).get(org_code, [])


def day_failures(ch: Client, day: dt.date, org_code: str = "") -> dict[str, list[dict[str, Any]]]:
    """`failures` of every organisation of `day` (or of `org_code`) in one pass, by
    organisation (the city's pages and snapshot read them all at once)."""
    run_id = current_runs(ch, [day]).get(day)
    if run_id is None:
        return {}
    rows = _rows(
        ch,
        "SELECT org_code, dataset, rule_id, rule_type, dimension, severity, weight, threshold,"
        " checked, failed, failed_pct, sample_keys, sample_details, notes, batch_version"
        " FROM dq.rule_result"
        " WHERE business_date = {d:Date} AND run_id = {run:String}"
        " AND ({org:String} = '' OR org_code = {org:String}) AND status = 'failed'"
        " ORDER BY org_code, severity = 'blocking' DESC, weight DESC, dataset, rule_id",
        {"d": day, "run": run_id, "org": org_code},
    )
    by_org = _by_org(rows)
    _, before = failing(ch, day, run_id, org_code)
    types = rulebase().types
    for code, org_rows in by_org.items():
        for row in org_rows:
            rule_type = types.get(row["rule_type"])
            row["run_id"] = run_id
            row["change"] = (
                "persisting" if (row["dataset"], row["rule_id"]) in before[code] else "new"
            )
            for text in ("description", "fix_hint"):
                for lang in ("zh", "en"):
                    row[f"{text}_{lang}"] = (
                        getattr(getattr(rule_type, text), lang) if rule_type else ""
                    )
    return by_org


def read_acceptance(ch: Client, month: dt.date) -> list[dict[str, Any]]:
    """The latest acceptance computation of `month` (evidence as a dict), as `acceptance`
    returns it."""
    rows = _rows(
        ch,
        f"SELECT {_select(ACCEPTANCE_COLUMNS)} FROM dq.current_acceptance WHERE month = {{m:Date}}"
        f" ORDER BY {_PEER_ORDER}, org_code",
        {"m": month.replace(day=1)},
    )
    for row in rows:
        row["evidence"] = json.loads(row["evidence"])
    return rows


def read_explanation(
    ch: Client, org_code: str, day: dt.date, level: str = "org_day"
) -> list[dict[str, Any]]:
    """The points of the composite each failed rule of `org_code` cost on `day` (latest
    scoring of the current run), largest first, with what the rule checks (zh, en); `level`
    org_day (the organisation-day's composite) or batch (each batch's own composite).
    Points and lost_total are Decimals of 12 decimals; the points of one organisation-day (or
    batch) sum exactly to its lost_total. Empty when the date is not scored or nothing was
    lost or waived."""
    return day_explanations(ch, day, level, org_code).get(org_code, [])


def day_explanations(
    ch: Client, day: dt.date, level: str = "org_day", org_code: str = ""
) -> dict[str, list[dict[str, Any]]]:
    """`read_explanation` of every organisation of `day` (or of `org_code`) in one query, by
    organisation."""
    rows = _rows(
        ch,
        f"SELECT {_select(EXPLANATION_COLUMNS)} FROM dq.current_score_explanation"
        " WHERE business_date = {d:Date} AND ({org:String} = '' OR org_code = {org:String})"
        " AND level = {level:String}"
        " ORDER BY org_code, if(level = 'batch', dataset, ''), points DESC, dataset, rule_id,"
        " status",
        {"d": day, "org": org_code, "level": level},
    )
    types = rulebase().types
    for row in rows:
        rule_type = types.get(row["rule_type"])
        for lang in ("zh", "en"):
            row[f"description_{lang}"] = getattr(rule_type.description, lang) if rule_type else ""
    return _by_org(rows, keep=True)
