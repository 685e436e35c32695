"""What scoring reads from validation: the current runs and their rule results.

The rule results (dq.rule_result) of the current run of each business date (dq.current_run:
the latest complete validation run of the date). A result counts with the weight, severity
and status it was given when it was validated (rule overrides included), so every score can
be recomputed from the results alone, whatever the rule base says today. passed and failed
results count; not_applicable results are left out; error results (the platform could not
evaluate the rule: our fault, not the organisation's) are left out of every score but
counted (rules_error) and shown. `waived` results (an approved appeal or a waiver, see
exemptions.py) count like not_applicable and are counted (rules_waived) and shown.

ClickHouse counts results by (date, organisation, dataset, dimension, status, severity,
weight); the arithmetic module sums them exactly. Earlier ranks (for rank changes) are
recomputed from the rule results of those dates' current runs with the same configuration,
never read back from stored scores: a rank change compares like with like and does not
depend on the order in which dates were scored.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict

from clickhouse_connect.driver.client import Client

from contracts.registry import Registry
from expectations.scoring.arithmetic import Day, ResultCount, count_results, score_days
from expectations.scoring.config import ScoringConfig
from expectations.scoring.exemptions import NO_EXEMPTIONS, Exemptions, apply


def current_runs(ch: Client, dates: list[dt.date]) -> dict[dt.date, str]:
    rows = ch.query(
        "SELECT business_date, run_id FROM dq.current_run"
        " WHERE business_date IN {dates:Array(Date)}",
        parameters={"dates": dates},
    ).result_rows
    return dict(rows)


def result_counts(
    ch: Client,
    registry: Registry,
    dates: list[dt.date],
    exemptions: Exemptions = NO_EXEMPTIONS,
) -> list[ResultCount]:
    """The rule results of the current runs of `dates`, one row per rule of a batch, with
    `waived` where `exemptions` cover them."""
    rows = ch.query(
        """
        SELECT business_date, org_code, dataset, rule_id, rule_type, dimension, status,
               severity, weight, batch_version, count() AS results, sum(failed) AS failed_rows,
               sum(checked) AS checked_rows
        FROM dq.rule_result
        WHERE business_date IN {dates:Array(Date)}
          AND (business_date, run_id) IN (SELECT business_date, run_id FROM dq.current_run)
        GROUP BY business_date, org_code, dataset, rule_id, rule_type, dimension, status,
                 severity, weight, batch_version
        """,
        parameters={"dates": sorted(dates)},
    ).result_rows
    return list(apply(map(ResultCount._make, rows), exemptions, registry))


def scored_days(
    ch: Client,
    registry: Registry,
    dates: list[dt.date],
    config: ScoringConfig,
    exemptions: Exemptions = NO_EXEMPTIONS,
) -> dict[dt.date, Day]:
    """Batch and organisation-day scores and ranks of every date that has a current run."""
    runs = current_runs(ch, dates)
    if not runs:
        return {}
    rows = result_counts(ch, registry, sorted(runs), exemptions)
    return score_days(runs, count_results(rows), registry, config)


def failing(
    ch: Client,
    day: dt.date,
    run_id: str,
    org_code: str = "",
    exemptions: Exemptions = NO_EXEMPTIONS,
    registry: Registry | None = None,
) -> tuple[dict[str, set[tuple[str, str]]], dict[str, set[tuple[str, str]]]]:
    """(dataset, rule_id) failing per organisation now, and on its previous date with results;
    a failure `exemptions` waive is not failing (`registry` names the peer groups waivers
    cover)."""
    params = {"d": day, "run": run_id, "org": org_code}

    def failed(rows) -> dict[str, set[tuple[str, str]]]:
        out: dict[str, set[tuple[str, str]]] = defaultdict(set)
        for business_date, org, dataset, rule_id, rule_type, version in rows:
            result = ResultCount(
                business_date,
                org,
                dataset,
                rule_id,
                rule_type,
                "",
                "failed",
                "",
                0.0,
                version,
                1,
                0,
                0,
            )
            known = registry.get(org) if registry else None
            if exemptions.reason(result, known.peer_group if known else "") is None:
                out[org].add((dataset, rule_id))
        return out

    now = failed(
        ch.query(
            "SELECT business_date, org_code, dataset, rule_id, rule_type, batch_version"
            " FROM dq.rule_result WHERE business_date = {d:Date}"
            " AND run_id = {run:String} AND status = 'failed'"
            " AND ({org:String} = '' OR org_code = {org:String})",
            parameters=params,
        ).result_rows
    )
    before = failed(
        ch.query(
            """
        WITH current_runs AS (
          SELECT business_date, run_id FROM dq.current_run WHERE business_date < {d:Date}
        ),
        previous AS (
          SELECT org_code, max(business_date) AS previous_date
          FROM dq.rule_result
          WHERE business_date < {d:Date} AND ({org:String} = '' OR org_code = {org:String})
            AND (business_date, run_id) IN (SELECT business_date, run_id FROM current_runs)
          GROUP BY org_code
        )
        SELECT r.business_date, r.org_code, r.dataset, r.rule_id, r.rule_type, r.batch_version
        FROM dq.rule_result AS r
        INNER JOIN previous AS p ON r.org_code = p.org_code AND r.business_date = p.previous_date
        WHERE r.status = 'failed'
          AND (r.business_date, r.run_id) IN (SELECT business_date, run_id FROM current_runs)
        """,
            parameters=params,
        ).result_rows
    )
    return now, before
