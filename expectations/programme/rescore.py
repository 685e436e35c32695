"""Scoring again what an appeal decision or a waiver change affects.

An approved appeal changes the results of one business date; a waiver added or ended changes
those of every date in a range. Every date already scored whose scores read those results is
scored again with the exemptions now in force: the dates in the range, the next day (its
rank_change_day compares with the range) and the date one month later (rank_change_month,
see arithmetic.same_day_previous_month). Each is scored with the configuration of its latest
scoring (dq.score_run keeps it), so nothing changes but the exemptions. Then the acceptance of
every month of the range that was already computed is computed again (dq.acceptance, with the
configuration its latest computation recorded). A signed month is frozen elsewhere and is not
this module's concern: dq.acceptance is the live judgement.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass

from clickhouse_connect.driver.client import Client

from contracts.registry import Registry
from expectations.programme.history import load_exemptions
from expectations.scoring.acceptance import acceptance
from expectations.scoring.arithmetic import same_day_previous_month
from expectations.scoring.config import ScoringConfig, load_scoring_config
from expectations.scoring.store import score_date


@dataclass(frozen=True)
class Rescored:
    dates: tuple[dt.date, ...]
    months: tuple[dt.date, ...]

    def public(self) -> dict[str, list[str]]:
        return {
            "dates_scored_again": [d.isoformat() for d in self.dates],
            "months_accepted_again": [m.strftime("%Y-%m") for m in self.months],
        }


NOTHING = Rescored((), ())


def scored_configs(ch: Client) -> dict[dt.date, ScoringConfig]:
    """Each scored date (its current run's latest scoring) with that scoring's configuration."""
    rows = ch.query(
        """
        SELECT business_date, argMax(config, computed_at)
        FROM dq.score_run
        WHERE (business_date, run_id) IN (SELECT business_date, run_id FROM dq.current_run)
        GROUP BY business_date
        """
    ).result_rows
    return {day: ScoringConfig.model_validate_json(config) for day, config in rows}


def affected(scored: set[dt.date], first: dt.date, last: dt.date | None) -> list[dt.date]:
    """The scored dates whose scores read the results of `first`..`last` (None: open): those
    dates and the ones whose rank changes compare with one of them."""

    def within(day: dt.date) -> bool:
        return first <= day and (last is None or day <= last)

    return sorted(
        d
        for d in scored
        if within(d) or within(d - dt.timedelta(days=1)) or within(same_day_previous_month(d))
    )


def rescore(
    ch: Client, registry: Registry, first: dt.date, last: dt.date | None = None
) -> Rescored:
    """Score again every scored date affected by a change of the results of `first`..`last`
    (None: open-ended), then the acceptance of their months already computed."""
    configs = scored_configs(ch)
    dates = affected(set(configs), first, last)
    exemptions = load_exemptions(ch)
    for day in dates:
        score_date(ch, registry, day, configs[day], exemptions)
    months = []
    for month, evidence in ch.query(
        "SELECT month, any(evidence) FROM dq.current_acceptance"
        " WHERE addMonths(month, 1) > {first:Date} AND ({open:Bool} OR month <= {last:Date})"
        " GROUP BY month ORDER BY month",
        parameters={"first": first, "open": last is None, "last": last or first},
    ).result_rows:
        config = json.loads(evidence).get("config")
        acceptance(
            ch,
            registry,
            month,
            ScoringConfig.model_validate(config) if config else load_scoring_config(),
            exemptions,
        )
        months.append(month)
    return Rescored(tuple(dates), tuple(months))
