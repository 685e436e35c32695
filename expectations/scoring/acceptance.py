"""Acceptance for a month: dq.acceptance.

Judged days: business dates of the month with a current run on which the organisation was
active in the registry and has a composite. A good day has a rounded composite >=
acceptance.bar. The organisation passes when good days x 100 >= acceptance.share_pct x
judged days (exact arithmetic, at least one judged day) and no blocking rule result of the
month has status failed (batch_received is blocking: a batch never sent fails the month).
A month not yet over is judged on the days it has so far. The evidence (JSON) lists the
configuration, every judged day with its run and composite, the days below the bar, days
expected but not scored, and every blocking failure (date, dataset, rule, failed %,
threshold). Results an approved appeal or a waiver covers count like not_applicable here too.
"""

from __future__ import annotations

import calendar
import datetime as dt
import json
from collections import defaultdict
from decimal import Decimal
from fractions import Fraction
from typing import Any

from clickhouse_connect.driver.client import Client

from contracts.registry import Registry
from expectations.scoring.arithmetic import Day, ResultCount, round_score
from expectations.scoring.config import PEER_GROUPS, ScoringConfig, load_scoring_config
from expectations.scoring.exemptions import NO_EXEMPTIONS, Exemptions
from expectations.scoring.inputs import scored_days
from expectations.scoring.store import next_computed_at
from expectations.scoring.tables import ACCEPTANCE_COLUMNS


def month_dates(month: dt.date) -> list[dt.date]:
    """Every date of the month of `month`."""
    first = month.replace(day=1)
    return [
        first + dt.timedelta(days=i) for i in range(calendar.monthrange(first.year, first.month)[1])
    ]


def blocking_failures(
    ch: Client,
    registry: Registry,
    first: dt.date,
    last: dt.date,
    exemptions: Exemptions = NO_EXEMPTIONS,
) -> dict[str, list[dict[str, Any]]]:
    """Failed blocking results of the current runs of [first, last] per organisation, leaving
    out the ones an appeal or a waiver covers."""
    blocking: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for day, org, dataset, rule_id, rule_type, version, pct, threshold, run_id in ch.query(
        """
        SELECT business_date, org_code, dataset, rule_id, rule_type, batch_version, failed_pct,
               threshold, run_id
        FROM dq.rule_result
        WHERE business_date BETWEEN {first:Date} AND {last:Date}
          AND (business_date, run_id) IN (SELECT business_date, run_id FROM dq.current_run)
          AND status = 'failed' AND severity = 'blocking'
        ORDER BY business_date, org_code, dataset, rule_id
        """,
        parameters={"first": first, "last": last},
    ).result_rows:
        known = registry.get(org)
        result = ResultCount(
            day, org, dataset, rule_id, rule_type, "", "failed", "blocking", 0.0, version
        )
        if exemptions.reason(result, known.peer_group if known else "") is not None:
            continue
        blocking[org].append(
            {
                "business_date": day.isoformat(),
                "dataset": dataset,
                "rule_id": rule_id,
                "failed_pct": pct,
                "threshold": threshold,
                "run_id": run_id,
            }
        )
    return blocking


def judge_month(
    month: dt.date,
    days: dict[dt.date, Day],
    blocking: dict[str, list[dict[str, Any]]],
    registry: Registry,
    config: ScoringConfig,
) -> list[dict[str, Any]]:
    """The acceptance of every organisation expected in the month of `month`, from its scored
    days and blocking failures: rows (evidence as a dict) by peer group and org_code, without
    computed_at. Pure: what-if judges changed scores with it too."""
    first = month.replace(day=1)
    bar, share_pct, decimals = (
        config.acceptance.bar,
        config.acceptance.share_pct,
        config.ranking.decimals,
    )
    expected = sorted(
        {o.org_code: o for d in days for o in registry.active(d)}.values(),
        key=lambda o: (PEER_GROUPS.index(o.peer_group), o.org_code),
    )
    rows = []
    for org in expected:
        judged, not_scored = [], []
        for d in sorted(days):
            if not org.active_on(d):
                continue
            scored = days[d].orgs.get(org.org_code)
            if scored is None or scored.composite is None:
                not_scored.append({"business_date": d.isoformat(), "run_id": days[d].run_id})
                continue
            composite = float(scored.composite)
            rounded = round_score(composite, decimals)
            judged.append(
                {
                    "business_date": d.isoformat(),
                    "run_id": days[d].run_id,
                    "composite": composite,
                    "composite_rounded": str(rounded),
                    "at_bar": rounded >= Decimal(repr(bar)),
                }
            )
        at_bar = sum(j["at_bar"] for j in judged)
        enough = bool(judged) and at_bar * 100 >= Fraction(share_pct) * len(judged)
        failures_ = blocking.get(org.org_code, [])
        reasons = []
        if not judged:
            reasons.append("no judged day in the month")
        elif not enough:
            reasons.append(
                f"composite >= {bar:g} on {at_bar} of {len(judged)} judged days"
                f" ({100 * at_bar / len(judged):.2f}%), {share_pct:g}% needed"
            )
        if failures_:
            reasons.append(f"{len(failures_)} blocking rule failures in the month")
        evidence = {
            "month": first.isoformat(),
            "rule": (
                f"passes when the composite (rounded half up to {decimals} decimals) is >= "
                f"{bar:g} on >= {share_pct:g}% of judged days and no blocking rule failed"
            ),
            "config": config.model_dump(),
            "config_fingerprint": config.fingerprint(),
            "days_judged": len(judged),
            "days_at_bar": at_bar,
            "days": judged,
            "days_below_bar": [j for j in judged if not j["at_bar"]],
            "days_not_scored": not_scored,
            "blocking_failures": failures_,
            "reasons": reasons,
        }
        rows.append(
            {
                "org_code": org.org_code,
                "month": first,
                "peer_group": org.peer_group,
                "days_judged": len(judged),
                "days_at_bar": at_bar,
                "share": float(Fraction(100 * at_bar, len(judged))) if judged else None,
                "passed": int(enough and not failures_),
                "blocking_failures": len(failures_),
                "evidence": evidence,
            }
        )
    return rows


def acceptance(
    ch: Client,
    registry: Registry,
    month: dt.date,
    config: ScoringConfig | None = None,
    exemptions: Exemptions = NO_EXEMPTIONS,
) -> list[dict[str, Any]]:
    """Judge every organisation expected in `month` (any date of it), write dq.acceptance and
    return its rows (evidence as a dict) by peer group and org_code."""
    config = config or load_scoring_config()
    dates = month_dates(month)
    days = scored_days(ch, registry, dates, config, exemptions)
    blocking = blocking_failures(ch, registry, dates[0], dates[-1], exemptions)
    computed_at = next_computed_at(
        ch,
        "SELECT toUnixTimestamp64Milli(max(computed_at)) FROM dq.acceptance WHERE month = {m:Date}",
        {"m": dates[0]},
    )
    rows = [
        r | {"computed_at": computed_at}
        for r in judge_month(month, days, blocking, registry, config)
    ]
    if rows:
        ch.insert(
            "dq.acceptance",
            [
                [_evidence_json(r[c]) if c == "evidence" else r[c] for c in ACCEPTANCE_COLUMNS]
                for r in rows
            ],
            column_names=list(ACCEPTANCE_COLUMNS),
        )
    return rows


def _evidence_json(evidence: dict[str, Any]) -> str:
    return json.dumps(evidence, ensure_ascii=False, sort_keys=True)
