"""Why a score is what it is: the points of the composite each failed rule cost (upload
standard section 8), for every organisation-day and every batch. Pure and exact: rule result
counts in, Fractions out; no warehouse and no clock.

The arithmetic is the scoring's (arithmetic.py) read backwards. 100 - composite =
sum over the dimensions d with a score of (w_d / W) x (100 - score_d), where W = sum of the
dimension weights w_d over those dimensions. An organisation-day's 100 - score_d is the mean,
over its N_d batches with a score in d, of each batch's 100 - score_bd, and a batch's
100 - score_bd is 100 x (the failed weight) / (the judged weight J_bd). So a failed rule of
weight w (counted n times) in batch b and dimension d costs

    organisation-day:  100 x (w x n / J_bd) x (1 / N_d) x (w_d / W)
    batch:             100 x (w x n / J_bd) x (w_d / W_b)

points, and the lines sum EXACTLY to 100 - composite (Fraction equality). A missing batch
(its batch_received rule failed) scores 0 in completeness and timeliness whatever its other
results say: its loss of 100 in each is one line, its batch_received rule ("batch not
received"), and its other results cost nothing and are not listed. A failed rule whose weight,
judged weight or dimension weight is 0 costs 0 and is listed. `waived` results (an approved
appeal or a waiver) cost 0 and are listed, so a page can show them; `not_applicable` and
`error` results cost 0 and are not listed (errors are shown elsewhere). With no composite (no
dimension with a score) there is nothing to explain and no line.

Stored points (`apportion`): Decimals of `POINT_DECIMALS` (12) decimals, apportioned by
largest remainder from the exact fractions, so that the stored points of one explanation sum
exactly to its stored lost total, 100 - (the exact composite rounded half up to 12 decimals).
Each stored point differs from its exact fraction by less than 10^-12. The stored Float64
composite (dq.score_*) is the exact composite to Float64 precision (about 10^-14 here), so
the stored lost total and 100 - the Float64 composite agree to 10^-12, not always digit for
digit at the 12th decimal.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, replace
from decimal import Decimal
from fractions import Fraction

from expectations.scoring.arithmetic import (
    RECEIPT_RULE_TYPE,
    Batch,
    ResultCount,
    composite,
    count_results,
    mean,
)
from expectations.scoring.config import DIMENSIONS, ScoringConfig

POINT_DECIMALS = 12

# Why a line is there.
FAILED = "failed"  # a failed rule of a batch that arrived
NOT_RECEIVED = "batch_not_received"  # a missing batch: its batch_received rule
WAIVED = "waived"  # an approved appeal or a waiver: costs nothing, shown


@dataclass(frozen=True)
class Line:
    """One rule of one batch and the points of the composite it cost."""

    dataset: str
    rule_id: str
    rule_type: str
    dimension: str
    status: str
    cause: str
    failed_rows: int
    points: Fraction


@dataclass(frozen=True)
class Explanation:
    """The lines of one organisation-day or one batch, largest first; `composite` is the
    exact composite they explain: sum of points == 100 - composite."""

    composite: Fraction | None
    lines: tuple[Line, ...]

    @property
    def lost(self) -> Fraction | None:
        return None if self.composite is None else 100 - self.composite


@dataclass(frozen=True)
class OrgDayExplanation:
    org_day: Explanation
    batches: dict[str, Explanation]  # dataset -> the batch's explanation


# (dataset, rule_id, status): one line; a rule of a batch may come in several counts.
_Key = tuple[str, str, str]


@dataclass
class _Batch:
    dataset: str
    rows: list[ResultCount]
    counted: Batch

    def scores(self) -> dict[str, Fraction | None]:
        return self.counted.dimensions()

    def losses(self) -> dict[str, dict[_Key, Fraction]]:
        """Per dimension with a score, what each line costs of 100 - the batch's score there
        (summing to it exactly)."""
        scores = self.scores()
        out: dict[str, dict[_Key, Fraction]] = {d: {} for d in DIMENSIONS if scores[d] is not None}
        if self.counted.is_missing:
            receipt = _receipt(self.rows)
            key = (receipt.dataset, receipt.rule_id, receipt.status)
            for d in out:  # completeness and timeliness, both 0
                out[d][key] = 100 - scores[d]
            return out
        judged = self.counted.judged
        for r in self.rows:
            if r.status == "failed" and r.dimension in out:
                key = (r.dataset, r.rule_id, r.status)
                cost = 100 * Fraction(r.weight) * r.results / judged[r.dimension]
                out[r.dimension][key] = out[r.dimension].get(key, Fraction(0)) + cost
        return out

    def listed(self) -> dict[_Key, Line]:
        """The lines of this batch (points 0): its failures, or its receipt when it is
        missing, and its waived results."""
        lines: dict[_Key, Line] = {}
        missing = self.counted.is_missing
        receipt = _receipt(self.rows) if missing else None
        for r in self.rows:
            if r.status == WAIVED:
                cause = WAIVED
            elif r.status == "failed" and not missing:
                cause = FAILED
            elif r is receipt:
                cause = NOT_RECEIVED
            else:
                continue
            key = (r.dataset, r.rule_id, r.status)
            known = lines.get(key)
            failed_rows = r.failed_rows + (known.failed_rows if known else 0)
            lines[key] = Line(
                r.dataset,
                r.rule_id,
                r.rule_type,
                r.dimension,
                r.status,
                cause,
                failed_rows,
                Fraction(0),
            )
        return lines


def _receipt(rows: list[ResultCount]) -> ResultCount:
    """The failed batch_received result of a missing batch (the first, should there be two)."""
    return min(
        (r for r in rows if r.status == "failed" and r.rule_type == RECEIPT_RULE_TYPE),
        key=lambda r: r.rule_id,
    )


def _explanation(
    composite_: Fraction | None,
    weights: dict[str, Fraction],
    batches: list[_Batch],
    share: dict[str, Fraction],
) -> Explanation:
    """Lines of `batches` weighted by each dimension's share `weights[d] / W` and by each
    batch's share `share[d]` of the dimension."""
    if composite_ is None:
        return Explanation(None, ())
    total = sum(weights.values())
    points: dict[_Key, Fraction] = defaultdict(Fraction)
    lines: dict[_Key, Line] = {}
    for b in batches:
        lines |= b.listed()
        for d, costs in b.losses().items():
            for key, cost in costs.items():
                points[key] += cost * share[d] * weights[d] / total
    done = [replace(line, points=points.get(key, Fraction(0))) for key, line in lines.items()]
    done.sort(key=lambda line: (-line.points, line.dataset, line.rule_id, line.status))
    return Explanation(composite_, tuple(done))


def explain(
    rows: Iterable[ResultCount], config: ScoringConfig
) -> dict[tuple[dt.date, str], OrgDayExplanation]:
    """The explanation of every organisation-day (date, org_code) of `rows` and of each of its
    batches, from the rule result counts scoring reads (exemptions already applied)."""
    rows = list(rows)
    counted = count_results(rows)
    by_batch: dict[tuple[dt.date, str, str], list[ResultCount]] = defaultdict(list)
    for r in rows:
        by_batch[(r.business_date, r.org_code, r.dataset)].append(r)
    org_days: dict[tuple[dt.date, str], list[_Batch]] = defaultdict(list)
    for key, batch_rows in sorted(by_batch.items()):
        org_days[key[:2]].append(_Batch(key[2], batch_rows, counted[key]))
    out = {}
    for key, batches in org_days.items():
        per_batch = {}
        for b in batches:
            scores = b.scores()
            with_score = {d: config.weight(d) for d in DIMENSIONS if scores[d] is not None}
            per_batch[b.dataset] = _explanation(
                composite(scores, config), with_score, [b], dict.fromkeys(DIMENSIONS, Fraction(1))
            )
        means = {d: mean(b.scores()[d] for b in batches) for d in DIMENSIONS}
        scored = {d: sum(b.scores()[d] is not None for b in batches) for d in DIMENSIONS}
        org_day = _explanation(
            composite(means, config),
            {d: config.weight(d) for d in DIMENSIONS if means[d] is not None},
            batches,
            {d: Fraction(1, n) for d, n in scored.items() if n},
        )
        out[key] = OrgDayExplanation(org_day, per_batch)
    return out


def round_half_up(value: Fraction, decimals: int = POINT_DECIMALS) -> Decimal:
    """An exact fraction rounded half up to `decimals` decimals (values here are >= 0)."""
    units = value * 10**decimals
    whole, rest = divmod(units.numerator, units.denominator)
    if 2 * rest >= units.denominator:
        whole += 1
    return Decimal(whole).scaleb(-decimals)


def apportion(
    explanation: Explanation, decimals: int = POINT_DECIMALS
) -> tuple[list[Decimal], Decimal | None]:
    """The stored points of each line (in order) and the stored lost total: the lines' exact
    points floored to `decimals` decimals, then one unit of 10^-decimals more to each of the
    lines with the largest remainders (ties in line order) until they sum to
    100 - round_half_up(composite). At most one unit per line is ever needed: the floors fall
    short of the exact loss by less than one unit per line with a remainder, and the rounded
    loss is within half a unit of the exact one."""
    if explanation.lost is None:
        return [], None
    lost = 100 - round_half_up(explanation.composite, decimals)
    scale = 10**decimals
    floors, remainders = [], []
    for line in explanation.lines:
        whole, rest = divmod(line.points.numerator * scale, line.points.denominator)
        floors.append(whole)
        remainders.append(Fraction(rest, line.points.denominator))
    short = int(lost.scaleb(decimals)) - sum(floors)
    if short < 0 or short > sum(r > 0 for r in remainders):
        raise ArithmeticError(f"cannot apportion {lost} over {len(floors)} lines: {short} units")
    by_remainder = sorted(range(len(floors)), key=lambda i: (-remainders[i], i))
    for i in by_remainder[:short]:
        floors[i] += 1
    return [Decimal(f).scaleb(-decimals) for f in floors], lost
