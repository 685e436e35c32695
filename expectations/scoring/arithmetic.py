"""Score arithmetic on plain data: counts of rule results in, scores, ranks and deltas out.
No warehouse and no clock: everything here is a function of its arguments.

Batch (organisation, dataset, date)
  dimension score = 100 x sum(weight of passed) / sum(weight of passed + failed) over the
  batch's results of that dimension; NULL when no result of the dimension counts (or all
  their weights are 0). A missing batch (batch_received failed) scores completeness 0 and
  timeliness 0, and NULL on correctness and logic, whatever its other results say.
  composite = sum(w_d x score_d) / sum(w_d) over the dimensions d whose score is not NULL,
  with the dimension weights w_d of contracts/scoring.yaml; NULL when that sum of w_d is 0.
  Every dataset label in an organisation's results is one batch: each expected dataset is
  (monitoring writes a batch_received result for every expected batch), and cross-dataset
  rules are one more under the label their validator gives them.

Organisation-day
  dimension score = plain mean, over the organisation's batches of the day, of the batch
  dimension scores that are not NULL (every dataset counts the same; other weightings could
  come later). composite: as for a batch, from the organisation-day dimension scores (not a
  mean of batch composites).
  rank: within the registry peer group (tertiary, secondary, primary, county) per business
  date, by composite rounded half up to `ranking.decimals` (2), descending, standard
  competition ranking ("1224": equal rounded composites share a rank, the next is skipped);
  org_code only orders ties for display. peer_size = ranked organisations of the group.
  rank_change_day = rank on the previous business date - rank today (positive = moved up).
  Every calendar day is a business date (counties too: only their deadlines follow working
  days), so the previous business date is the day before. rank_change_month = the same
  against the same day of the previous month, clipped to that month's end (31 March ->
  28/29 February). NULL when either rank is missing (no current run then, or not ranked).
  rules_failed / blocking_failed / rules_error count the day's results over all batches.

Failure deltas
  The set of (dataset, rule_id) with status failed now, against that set on the
  organisation's most recent earlier business date with results: new (failing now, not
  then), resolved (failing then, not now: passed, not applicable or error now), persisting
  (both). With no earlier date every failure is new.

Exactness
  Weights are summed as exact fractions (Fraction of the stored Float64) and each score is
  converted to Float64 once, so a score does not depend on the order in which rows arrive
  (a Float64 sum in ClickHouse could, by its last bit, across threads). Ranking and the
  acceptance bar use `round_score`: half up on the shortest decimal form of the stored
  Float64 composite, so anyone rounds a stored composite the same way (in ClickHouse:
  round(toDecimal128(toString(composite), 10), 2), since round() on Float64 is half-even).
  The monthly ranking (dbt dq_org_month_score) follows the same rule on the exact mean of the
  daily composites' decimal forms (dbt/macros/scores.sql).
"""

from __future__ import annotations

import calendar
import datetime as dt
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction
from typing import NamedTuple

from contracts.registry import Organisation, Registry
from expectations.scoring.config import DIMENSIONS, PEER_GROUPS, ScoringConfig

RECEIPT_RULE_TYPE = "batch_received"


class ResultCount(NamedTuple):
    """The rule results of one rule of one batch, as ClickHouse groups them (usually one).

    `status` is the status scoring counts: the stored one, or `waived` when an approved appeal
    or a waiver covers the result (expectations/scoring/exemptions.py); `failed_rows` and
    `checked_rows` sum the results' failing and checked records (rows, keys or persons, as
    each rule counts them): what a changed threshold is judged on again."""

    business_date: dt.date
    org_code: str
    dataset: str
    rule_id: str
    rule_type: str
    dimension: str
    status: str
    severity: str
    weight: float
    batch_version: int
    results: int = 1
    failed_rows: int = 0
    checked_rows: int = 0


def round_score(value: float | None, decimals: int) -> Decimal | None:
    """A stored score as published and ranked: half up on its shortest decimal form."""
    if value is None:
        return None
    return Decimal(repr(value)).quantize(Decimal(1).scaleb(-decimals), rounding=ROUND_HALF_UP)


@dataclass
class Batch:
    version: int = 0
    passed: dict[str, Fraction] = field(default_factory=lambda: defaultdict(Fraction))
    judged: dict[str, Fraction] = field(default_factory=lambda: defaultdict(Fraction))
    rules_failed: int = 0
    blocking_failed: int = 0
    rules_error: int = 0
    rules_waived: int = 0
    is_missing: bool = False

    def add(
        self,
        dimension: str,
        status: str,
        severity: str,
        weight: float,
        *,
        is_receipt: bool,
        version: int,
        results: int,
    ) -> None:
        """Count `results` rule results of one dimension, status, severity and weight."""
        self.version = max(self.version, version)
        if status == "failed":
            self.rules_failed += results
            self.blocking_failed += results if severity == "blocking" else 0
            self.is_missing |= bool(is_receipt)
        elif status == "error":
            self.rules_error += results
        elif status == "waived":
            # An approved appeal or a waiver: counted like not_applicable, and shown.
            self.rules_waived += results
        if status in ("passed", "failed"):
            total = Fraction(weight) * results
            self.judged[dimension] += total
            self.passed[dimension] += total if status == "passed" else 0

    def dimensions(self) -> dict[str, Fraction | None]:
        if self.is_missing:
            return {"completeness": Fraction(0), "timeliness": Fraction(0)} | dict.fromkeys(
                ("correctness", "logic")
            )
        return {
            d: 100 * self.passed[d] / self.judged[d] if self.judged[d] else None for d in DIMENSIONS
        }


@dataclass
class OrgDay:
    org: Organisation
    batches: dict[str, Batch]
    dimensions: dict[str, Fraction | None] = field(default_factory=dict)
    composite: Fraction | None = None
    rank: int | None = None
    peer_size: int = 0

    def count(self, attribute: str) -> int:
        return sum(getattr(b, attribute) for b in self.batches.values())


@dataclass
class Day:
    run_id: str
    orgs: dict[str, OrgDay]


def composite(dimensions: dict[str, Fraction | None], config: ScoringConfig) -> Fraction | None:
    weighted = [(config.weight(d), s) for d, s in dimensions.items() if s is not None]
    total = sum(w for w, _ in weighted)
    return sum(w * s for w, s in weighted) / total if total else None


def mean(values: Iterable[Fraction | None]) -> Fraction | None:
    present = [v for v in values if v is not None]
    return sum(present, Fraction(0)) / len(present) if present else None


def to_float(value: Fraction | None) -> float | None:
    return None if value is None else float(value)


def rank(orgs: Iterable[OrgDay], decimals: int) -> None:
    """Standard competition ranking per peer group on the rounded composite."""
    groups: dict[str, list[OrgDay]] = defaultdict(list)
    for o in orgs:
        if o.composite is not None:
            groups[o.org.peer_group].append(o)
    for members in groups.values():
        rounded = {o.org.org_code: round_score(float(o.composite), decimals) for o in members}
        descending = sorted(rounded.values(), reverse=True)
        for o in members:
            # The first position of an equal value = 1 + how many are strictly better.
            o.rank = descending.index(rounded[o.org.org_code]) + 1
            o.peer_size = len(members)


def count_results(rows: Iterable[ResultCount]) -> dict[tuple[dt.date, str, str], Batch]:
    """The batches (date, organisation, dataset) of counted rule results."""
    batches: dict[tuple[dt.date, str, str], Batch] = defaultdict(Batch)
    for r in rows:
        if r.dimension not in DIMENSIONS:
            raise ValueError(
                f"rule result of {r.org_code} {r.dataset} {r.business_date} has unknown"
                f" dimension {r.dimension!r}"
            )
        batches[(r.business_date, r.org_code, r.dataset)].add(
            r.dimension,
            r.status,
            r.severity,
            r.weight,
            is_receipt=r.rule_type == RECEIPT_RULE_TYPE,
            version=r.batch_version,
            results=r.results,
        )
    return batches


def score_days(
    runs: dict[dt.date, str],
    batches: dict[tuple[dt.date, str, str], Batch],
    registry: Registry,
    config: ScoringConfig,
) -> dict[dt.date, Day]:
    """Organisation-day scores and ranks of every date of `runs` (date -> run_id) from its
    batches."""
    unknown = sorted({org for _, org, _ in batches if registry.get(org) is None})
    if unknown:
        raise ValueError(
            f"rule results name organisations not in the registry {registry.source}: {unknown}"
        )
    days = {d: Day(run_id, {}) for d, run_id in runs.items()}
    for (day, org, dataset), batch in sorted(batches.items()):
        orgs = days[day].orgs
        if org not in orgs:
            orgs[org] = OrgDay(registry.get(org), {})
        orgs[org].batches[dataset] = batch
    for day in days.values():
        for o in day.orgs.values():
            scores = [b.dimensions() for b in o.batches.values()]
            o.dimensions = {d: mean(s[d] for s in scores) for d in DIMENSIONS}
            o.composite = composite(o.dimensions, config)
        rank(day.orgs.values(), config.ranking.decimals)
    return days


def same_day_previous_month(day: dt.date) -> dt.date:
    """The same day of the previous month, clipped to that month's last day."""
    year, month = (day.year, day.month - 1) if day.month > 1 else (day.year - 1, 12)
    # calendar.monthrange is all the month arithmetic needed; no date library is declared.
    return dt.date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def rank_change(earlier: Day | None, o: OrgDay) -> int | None:
    then = earlier.orgs.get(o.org.org_code) if earlier else None
    if then is None or then.rank is None or o.rank is None:
        return None
    return then.rank - o.rank


def failure_changes(
    now: set[tuple[str, str]], before: set[tuple[str, str]]
) -> list[tuple[str, str, str]]:
    changes = [(*k, "new") for k in now - before]
    changes += [(*k, "resolved") for k in before - now]
    changes += [(*k, "persisting") for k in now & before]
    return sorted(changes)


def display_order(row: dict) -> tuple:
    group = row["peer_group"]
    return (
        PEER_GROUPS.index(group) if group in PEER_GROUPS else len(PEER_GROUPS),
        row["rank"] is None,
        row["rank"] or 0,
        row["org_code"],
    )
