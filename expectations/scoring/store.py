"""Writing a scoring: dq.score_batch, dq.score_org_day, dq.failure_change and
dq.score_explanation of the current run of a date, committed by its dq.score_run row (written
last; see tables.py)."""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

from clickhouse_connect.driver.client import Client

from contracts.registry import Registry
from contracts.timezone import TZ as _TZ
from expectations.scoring.arithmetic import (
    composite,
    display_order,
    failure_changes,
    rank_change,
    same_day_previous_month,
    to_float,
)
from expectations.scoring.config import DIMENSIONS, ScoringConfig, load_scoring_config
from expectations.scoring.exemptions import NO_EXEMPTIONS, Exemptions
from expectations.scoring.explain import Explanation, apportion, explain
from expectations.scoring.inputs import failing, result_counts, scored_days
from expectations.scoring.tables import (
    BATCH_COLUMNS,
    CHANGE_COLUMNS,
    EXPLANATION_COLUMNS,
    ORG_DAY_COLUMNS,
)


def next_computed_at(ch: Client, sql: str, parameters: dict[str, Any]) -> dt.datetime:
    """Now to the millisecond, but strictly after the last computation `sql` returns, so the
    latest computation is always one well-defined set of rows."""
    last = ch.query(sql, parameters=parameters).result_rows[0][0] or 0
    millis = max(time.time_ns() // 1_000_000, int(last) + 1)
    return from_millis(millis)


def from_millis(millis: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(millis // 1000, _TZ) + dt.timedelta(milliseconds=millis % 1000)


def explanation_rows(
    stamp: dict[str, Any], level: str, org_code: str, explanation: Explanation
) -> list[dict[str, Any]]:
    """The stored lines of one explanation: points apportioned to 12 decimals (explain.py)."""
    stored, lost = apportion(explanation)
    return [
        stamp
        | {
            "level": level,
            "org_code": org_code,
            "dataset": line.dataset,
            "rule_id": line.rule_id,
            "rule_type": line.rule_type,
            "dimension": line.dimension,
            "status": line.status,
            "cause": line.cause,
            "failed_rows": line.failed_rows,
            "points": points,
            "lost_total": lost,
        }
        for line, points in zip(explanation.lines, stored, strict=True)
    ]


def score_date(
    ch: Client,
    registry: Registry,
    day: dt.date,
    config: ScoringConfig | None = None,
    exemptions: Exemptions = NO_EXEMPTIONS,
) -> list[dict[str, Any]]:
    """Score the current run of `day`: write dq.score_batch, dq.score_org_day,
    dq.failure_change and dq.score_explanation (then commit with dq.score_run) and return the
    organisation-day rows in display order (peer group, rank, org_code). `exemptions` (the
    approved appeals and the waivers in force) turn the results they cover into `waived`, on
    `day` and on the earlier dates its rank changes compare with."""
    config = config or load_scoring_config()
    previous_day, previous_month = day - dt.timedelta(days=1), same_day_previous_month(day)
    days = scored_days(ch, registry, [day, previous_day, previous_month], config, exemptions)
    if day not in days:
        raise LookupError(
            f"no complete validation run for {day} in dq.current_run: validate it first"
        )
    today = days[day]
    explained = explain(result_counts(ch, registry, [day], exemptions), config)
    now, before = failing(ch, day, today.run_id, exemptions=exemptions, registry=registry)
    computed_at = next_computed_at(
        ch,
        "SELECT toUnixTimestamp64Milli(max(computed_at)) FROM dq.score_run"
        " WHERE business_date = {d:Date} AND run_id = {run:String}",
        {"d": day, "run": today.run_id},
    )
    stamp = {"run_id": today.run_id, "business_date": day, "computed_at": computed_at}
    batch_rows, org_rows, change_rows, why_rows = [], [], [], []
    for code, o in sorted(today.orgs.items()):
        why = explained[(day, code)]
        if why.org_day.composite != o.composite:  # the same results, read twice
            raise RuntimeError(f"{code} {day}: explanation and score read different results")
        why_rows += explanation_rows(stamp, "org_day", code, why.org_day)
        for dataset, batch in sorted(o.batches.items()):
            why_rows += explanation_rows(stamp, "batch", code, why.batches[dataset])
            dims = batch.dimensions()
            batch_rows.append(
                stamp
                | {
                    "org_code": code,
                    "peer_group": o.org.peer_group,
                    "dataset": dataset,
                    "batch_version": batch.version,
                    "is_missing": int(batch.is_missing),
                    **{d: to_float(dims[d]) for d in DIMENSIONS},
                    "composite": to_float(composite(dims, config)),
                    "rules_failed": batch.rules_failed,
                    "blocking_failed": batch.blocking_failed,
                    "rules_error": batch.rules_error,
                    "rules_waived": batch.rules_waived,
                }
            )
        changes = failure_changes(now.get(code, set()), before.get(code, set()))
        change_rows += [
            stamp | {"org_code": code, "dataset": ds, "rule_id": rule, "change": change}
            for ds, rule, change in changes
        ]
        counted = {
            kind: sum(c[2] == kind for c in changes) for kind in ("new", "resolved", "persisting")
        }
        org_rows.append(
            stamp
            | {
                "org_code": code,
                "org_name": o.org.name,
                "peer_group": o.org.peer_group,
                "county_code": o.org.county_code,
                **{d: to_float(o.dimensions[d]) for d in DIMENSIONS},
                "composite": to_float(o.composite),
                "rank": o.rank,
                "peer_size": o.peer_size,
                "rank_change_day": rank_change(days.get(previous_day), o),
                "rank_change_month": rank_change(days.get(previous_month), o),
                "rules_failed": o.count("rules_failed"),
                "blocking_failed": o.count("blocking_failed"),
                "rules_error": o.count("rules_error"),
                "rules_waived": o.count("rules_waived"),
                "new_failures": counted["new"],
                "resolved_failures": counted["resolved"],
                "persisting_failures": counted["persisting"],
            }
        )
    for table, columns, rows in (
        ("dq.score_batch", BATCH_COLUMNS, batch_rows),
        ("dq.score_org_day", ORG_DAY_COLUMNS, org_rows),
        ("dq.failure_change", CHANGE_COLUMNS, change_rows),
        ("dq.score_explanation", EXPLANATION_COLUMNS, why_rows),
    ):
        if rows:
            ch.insert(table, [[r[c] for c in columns] for r in rows], column_names=list(columns))
    ch.insert(
        "dq.score_run",
        [
            [
                day,
                today.run_id,
                computed_at,
                config.fingerprint(),
                config.model_dump_json(),
                len(org_rows),
                len(batch_rows),
                len(change_rows),
            ]
        ],
        column_names=[
            "business_date",
            "run_id",
            "computed_at",
            "config_fingerprint",
            "config",
            "organisations",
            "batches",
            "failure_changes",
        ],
    )
    return sorted(({c: r[c] for c in ORG_DAY_COLUMNS} for r in org_rows), key=display_order)
