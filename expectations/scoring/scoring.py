"""Scores, peer-group ranks, failure deltas and monthly acceptance from the rule results.

Input
  The rule results (dq.rule_result) of the current run of each business date (dq.current_run:
  the latest complete validation run of the date). A result counts with the weight, severity
  and status it was given when it was validated (rule overrides included), so every score can
  be recomputed from the results alone, whatever the rule base says today. passed and failed
  results count; not_applicable results are left out; error results (the platform could not
  evaluate the rule: our fault, not the organisation's) are left out of every score but
  counted (rules_error) and shown.

Batch (organisation, dataset, date): dq.score_batch
  dimension score = 100 x sum(weight of passed) / sum(weight of passed + failed) over the
  batch's results of that dimension; NULL when no result of the dimension counts (or all
  their weights are 0). A missing batch (batch_received failed) scores completeness 0 and
  timeliness 0, and NULL on correctness and logic, whatever its other results say.
  composite = sum(w_d x score_d) / sum(w_d) over the dimensions d whose score is not NULL,
  with the dimension weights w_d of contracts/scoring.yaml; NULL when that sum of w_d is 0.
  Every dataset label in an organisation's results is one batch: each expected dataset is
  (monitoring writes a batch_received result for every expected batch), and cross-dataset
  rules are one more under the label their validator gives them.

Organisation-day: dq.score_org_day
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
  Earlier ranks are recomputed from the rule results of those dates' current runs with the
  same configuration, never read back from stored scores: a rank change compares like with
  like and does not depend on the order in which dates were scored.
  rules_failed / blocking_failed / rules_error count the day's results over all batches.

Failure deltas: dq.failure_change
  The set of (dataset, rule_id) with status failed in the current run of D, against that set
  in the current run of the organisation's most recent earlier business date with results:
  new (failing now, not then), resolved (failing then, not now: passed, not applicable or
  error now), persisting (both). With no earlier date every failure is new.

Acceptance for a month: dq.acceptance
  Judged days: business dates of the month with a current run on which the organisation was
  active in the registry and has a composite. A good day has a rounded composite >=
  acceptance.bar. The organisation passes when good days x 100 >= acceptance.share_pct x
  judged days (exact arithmetic, at least one judged day) and no blocking rule result of the
  month has status failed (batch_received is blocking: a batch never sent fails the month).
  A month not yet over is judged on the days it has so far. The evidence (JSON) lists the
  configuration, every judged day with its run and composite, the days below the bar, days
  expected but not scored, and every blocking failure (date, dataset, rule, failed %,
  threshold).

Exactness
  ClickHouse counts results by (date, organisation, dataset, dimension, status, severity,
  weight); Python sums the weights as exact fractions (Fraction of the stored Float64) and
  converts each score to Float64 once, so a score does not depend on the order in which rows
  arrive (a Float64 sum in ClickHouse could, by its last bit, across threads). Ranking and the
  acceptance bar use `round_score`: half up on the shortest decimal form of the stored
  Float64 composite, so anyone rounds a stored composite the same way (in ClickHouse:
  round(toDecimal128(toString(composite), 10), 2), since round() on Float64 is half-even).

Storage and re-runs
  MergeTree tables keep every scoring: rows carry the validation run_id and the scoring's
  computed_at (strictly increasing per date and run), and a scoring commits by writing its
  dq.score_run row (configuration and fingerprint included) last. Readers use the views
  dq.current_score_batch, dq.current_score_org_day and dq.current_failure_change: the rows of
  the latest committed scoring of the current run of each date. Re-scoring never shows
  duplicates; rows of an older run or of an interrupted scoring never show; a date whose
  current run has not been scored yet shows nothing. dq.current_acceptance shows the latest
  computation of each month. Only computed_at depends on the clock.
"""

# SQL text here is formatted from module constants only (column and table names); every value
# is a bound query parameter.
# ruff: noqa: S608

from __future__ import annotations

import calendar
import datetime as dt
import hashlib
import json
import time
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction
from pathlib import Path
from typing import Any

import yaml
from clickhouse_connect.driver.client import Client
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from contracts.loader import CONTRACTS_DIR, ContractError
from contracts.registry import LEVELS, Organisation, Registry
from contracts.timezone import TZ as _TZ
from expectations.rules.rulebase import rulebase

DIMENSIONS = ("completeness", "timeliness", "correctness", "logic")
PEER_GROUPS = tuple(level for levels in LEVELS.values() for level in levels)
SCORING_CONFIG = CONTRACTS_DIR / "scoring.yaml"
RECEIPT_RULE_TYPE = "batch_received"


# ---- configuration ----------------------------------------------------------------------


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DimensionWeights(_Strict):
    completeness: float = Field(ge=0)
    timeliness: float = Field(ge=0)
    correctness: float = Field(ge=0)
    logic: float = Field(ge=0)

    @model_validator(mode="after")
    def _not_all_zero(self) -> DimensionWeights:
        if not any(getattr(self, d) > 0 for d in DIMENSIONS):
            raise ValueError("at least one dimension weight must be greater than 0")
        return self


class Ranking(_Strict):
    decimals: int = Field(ge=0, le=6)


class Acceptance(_Strict):
    bar: float = Field(ge=0, le=100)
    share_pct: float = Field(ge=0, le=100)


class ScoringConfig(_Strict):
    dimension_weights: DimensionWeights
    ranking: Ranking
    acceptance: Acceptance

    def weight(self, dimension: str) -> Fraction:
        return Fraction(getattr(self.dimension_weights, dimension))

    def fingerprint(self) -> str:
        return hashlib.sha256(self.model_dump_json().encode()).hexdigest()[:16]


def load_scoring_config(path: Path | str | None = None) -> ScoringConfig:
    """The scoring configuration at `path` (default contracts/scoring.yaml), validated."""
    path = Path(path) if path else SCORING_CONFIG
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise ContractError(f"{path}: cannot read YAML: {exc}") from exc
    try:
        return ScoringConfig.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or '<top>'}: {e['msg']}" for e in exc.errors()
        )
        raise ContractError(f"{path}: {problems}") from None


def round_score(value: float | None, decimals: int) -> Decimal | None:
    """A stored score as published and ranked: half up on its shortest decimal form."""
    if value is None:
        return None
    return Decimal(repr(value)).quantize(Decimal(1).scaleb(-decimals), rounding=ROUND_HALF_UP)


# ---- tables -----------------------------------------------------------------------------

_SCORE_COLUMNS = (
    "completeness Nullable(Float64), timeliness Nullable(Float64),"
    " correctness Nullable(Float64), logic Nullable(Float64), composite Nullable(Float64)"
)
_DDL = (
    f"""
    CREATE TABLE IF NOT EXISTS dq.score_batch (
      run_id String,
      org_code LowCardinality(String),
      peer_group LowCardinality(String),
      dataset LowCardinality(String),
      business_date Date,
      batch_version UInt32,
      is_missing UInt8,
      {_SCORE_COLUMNS},
      rules_failed UInt32,
      blocking_failed UInt32,
      rules_error UInt32,
      computed_at DateTime64(3, 'Asia/Shanghai')
    ) ENGINE = MergeTree
    PARTITION BY toYYYYMM(business_date)
    ORDER BY (business_date, org_code, dataset, run_id, computed_at)
    COMMENT 'Scores of one batch per scoring (0-100); read dq.current_score_batch'
    """,
    f"""
    CREATE TABLE IF NOT EXISTS dq.score_org_day (
      run_id String,
      org_code LowCardinality(String),
      org_name String,
      peer_group LowCardinality(String),
      county_code LowCardinality(String),
      business_date Date,
      {_SCORE_COLUMNS},
      rank Nullable(UInt32),
      peer_size UInt32,
      rank_change_day Nullable(Int32),
      rank_change_month Nullable(Int32),
      rules_failed UInt32,
      blocking_failed UInt32,
      rules_error UInt32,
      new_failures UInt32,
      resolved_failures UInt32,
      persisting_failures UInt32,
      computed_at DateTime64(3, 'Asia/Shanghai')
    ) ENGINE = MergeTree
    PARTITION BY toYYYYMM(business_date)
    ORDER BY (business_date, peer_group, org_code, run_id, computed_at)
    COMMENT 'Scores and rank of an organisation-day per scoring; read dq.current_score_org_day'
    """,
    """
    CREATE TABLE IF NOT EXISTS dq.failure_change (
      run_id String,
      org_code LowCardinality(String),
      business_date Date,
      dataset LowCardinality(String),
      rule_id LowCardinality(String),
      change LowCardinality(String),
      computed_at DateTime64(3, 'Asia/Shanghai')
    ) ENGINE = MergeTree
    PARTITION BY toYYYYMM(business_date)
    ORDER BY (business_date, org_code, dataset, rule_id, run_id, computed_at)
    COMMENT 'Failing rules new, resolved or persisting against the previous date with results'
    """,
    """
    CREATE TABLE IF NOT EXISTS dq.score_run (
      business_date Date,
      run_id String,
      computed_at DateTime64(3, 'Asia/Shanghai'),
      config_fingerprint String,
      config String,
      organisations UInt32,
      batches UInt32,
      failure_changes UInt32
    ) ENGINE = MergeTree
    ORDER BY (business_date, run_id, computed_at)
    COMMENT 'One row per scoring of a validation run, written last: the scoring is committed'
    """,
    """
    CREATE TABLE IF NOT EXISTS dq.acceptance (
      org_code LowCardinality(String),
      month Date,
      peer_group LowCardinality(String),
      days_judged UInt32,
      days_at_bar UInt32,
      share Nullable(Float64),
      passed UInt8,
      blocking_failures UInt32,
      evidence String,
      computed_at DateTime64(3, 'Asia/Shanghai')
    ) ENGINE = MergeTree
    ORDER BY (month, org_code, computed_at)
    COMMENT 'Acceptance of an organisation-month per computation (share: % of judged days at
      the bar); read dq.current_acceptance'
    """,
    """
    CREATE VIEW IF NOT EXISTS dq.current_scoring AS
    SELECT business_date, run_id, max(computed_at) AS computed_at
    FROM dq.score_run
    WHERE (business_date, run_id) IN (SELECT business_date, run_id FROM dq.current_run)
    GROUP BY business_date, run_id
    """,
    *(
        f"""
        CREATE VIEW IF NOT EXISTS dq.current_{table} AS
        SELECT * FROM dq.{table}
        WHERE (business_date, run_id, computed_at)
          IN (SELECT business_date, run_id, computed_at FROM dq.current_scoring)
        """
        for table in ("score_batch", "score_org_day", "failure_change")
    ),
    """
    CREATE VIEW IF NOT EXISTS dq.current_acceptance AS
    SELECT * FROM dq.acceptance
    WHERE (month, computed_at) IN (SELECT month, max(computed_at) FROM dq.acceptance GROUP BY month)
    """,
)

BATCH_COLUMNS = (
    "run_id",
    "org_code",
    "peer_group",
    "dataset",
    "business_date",
    "batch_version",
    "is_missing",
    *DIMENSIONS,
    "composite",
    "rules_failed",
    "blocking_failed",
    "rules_error",
    "computed_at",
)
ORG_DAY_COLUMNS = (
    "run_id",
    "org_code",
    "org_name",
    "peer_group",
    "county_code",
    "business_date",
    *DIMENSIONS,
    "composite",
    "rank",
    "peer_size",
    "rank_change_day",
    "rank_change_month",
    "rules_failed",
    "blocking_failed",
    "rules_error",
    "new_failures",
    "resolved_failures",
    "persisting_failures",
    "computed_at",
)
CHANGE_COLUMNS = (
    "run_id",
    "org_code",
    "business_date",
    "dataset",
    "rule_id",
    "change",
    "computed_at",
)
ACCEPTANCE_COLUMNS = (
    "org_code",
    "month",
    "peer_group",
    "days_judged",
    "days_at_bar",
    "share",
    "passed",
    "blocking_failures",
    "evidence",
    "computed_at",
)


# ---- arithmetic -------------------------------------------------------------------------


@dataclass
class _Batch:
    version: int = 0
    passed: dict[str, Fraction] = field(default_factory=lambda: defaultdict(Fraction))
    judged: dict[str, Fraction] = field(default_factory=lambda: defaultdict(Fraction))
    rules_failed: int = 0
    blocking_failed: int = 0
    rules_error: int = 0
    is_missing: bool = False

    def dimensions(self) -> dict[str, Fraction | None]:
        if self.is_missing:
            return {"completeness": Fraction(0), "timeliness": Fraction(0)} | dict.fromkeys(
                ("correctness", "logic")
            )
        return {
            d: 100 * self.passed[d] / self.judged[d] if self.judged[d] else None for d in DIMENSIONS
        }


@dataclass
class _OrgDay:
    org: Organisation
    batches: dict[str, _Batch]
    dimensions: dict[str, Fraction | None] = field(default_factory=dict)
    composite: Fraction | None = None
    rank: int | None = None
    peer_size: int = 0

    def count(self, attribute: str) -> int:
        return sum(getattr(b, attribute) for b in self.batches.values())


@dataclass
class _Day:
    run_id: str
    orgs: dict[str, _OrgDay]


def _composite(dimensions: dict[str, Fraction | None], config: ScoringConfig) -> Fraction | None:
    weighted = [(config.weight(d), s) for d, s in dimensions.items() if s is not None]
    total = sum(w for w, _ in weighted)
    return sum(w * s for w, s in weighted) / total if total else None


def _mean(values: Iterable[Fraction | None]) -> Fraction | None:
    present = [v for v in values if v is not None]
    return sum(present, Fraction(0)) / len(present) if present else None


def _float(value: Fraction | None) -> float | None:
    return None if value is None else float(value)


def _rank(orgs: Iterable[_OrgDay], decimals: int) -> None:
    """Standard competition ranking per peer group on the rounded composite."""
    groups: dict[str, list[_OrgDay]] = defaultdict(list)
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


def _current_runs(ch: Client, dates: list[dt.date]) -> dict[dt.date, str]:
    rows = ch.query(
        "SELECT business_date, run_id FROM dq.current_run"
        " WHERE business_date IN {dates:Array(Date)}",
        parameters={"dates": dates},
    ).result_rows
    return dict(rows)


def _score_days(
    ch: Client, registry: Registry, dates: list[dt.date], config: ScoringConfig
) -> dict[dt.date, _Day]:
    """Batch and organisation-day scores and ranks of every date that has a current run."""
    runs = _current_runs(ch, dates)
    if not runs:
        return {}
    rows = ch.query(
        """
        SELECT business_date, org_code, dataset, dimension, status, severity, weight,
               rule_type = {receipt:String} AS is_receipt,
               max(batch_version) AS version, count() AS results
        FROM dq.rule_result
        WHERE business_date IN {dates:Array(Date)}
          AND (business_date, run_id) IN (SELECT business_date, run_id FROM dq.current_run)
        GROUP BY business_date, org_code, dataset, dimension, status, severity, weight, is_receipt
        """,
        parameters={"dates": sorted(runs), "receipt": RECEIPT_RULE_TYPE},
    ).result_rows
    batches: dict[tuple[dt.date, str, str], _Batch] = defaultdict(_Batch)
    for day, org, dataset, dimension, status, severity, weight, is_receipt, version, n in rows:
        if dimension not in DIMENSIONS:
            raise ValueError(
                f"rule result of {org} {dataset} {day} has unknown dimension {dimension!r}"
            )
        batch = batches[(day, org, dataset)]
        batch.version = max(batch.version, version)
        if status == "failed":
            batch.rules_failed += n
            batch.blocking_failed += n if severity == "blocking" else 0
            batch.is_missing |= bool(is_receipt)
        elif status == "error":
            batch.rules_error += n
        if status in ("passed", "failed"):
            weight = Fraction(weight) * n
            batch.judged[dimension] += weight
            batch.passed[dimension] += weight if status == "passed" else 0
    unknown = sorted({org for _, org, _ in batches if registry.get(org) is None})
    if unknown:
        raise ValueError(
            f"rule results name organisations not in the registry {registry.source}: {unknown}"
        )
    days = {d: _Day(run_id, {}) for d, run_id in runs.items()}
    for (day, org, dataset), batch in sorted(batches.items()):
        orgs = days[day].orgs
        if org not in orgs:
            orgs[org] = _OrgDay(registry.get(org), {})
        orgs[org].batches[dataset] = batch
    for day in days.values():
        for o in day.orgs.values():
            scores = [b.dimensions() for b in o.batches.values()]
            o.dimensions = {d: _mean(s[d] for s in scores) for d in DIMENSIONS}
            o.composite = _composite(o.dimensions, config)
        _rank(day.orgs.values(), config.ranking.decimals)
    return days


def same_day_previous_month(day: dt.date) -> dt.date:
    """The same day of the previous month, clipped to that month's last day."""
    year, month = (day.year, day.month - 1) if day.month > 1 else (day.year - 1, 12)
    # calendar.monthrange is all the month arithmetic needed; no date library is declared.
    return dt.date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


def _failing(
    ch: Client, day: dt.date, run_id: str, org_code: str = ""
) -> tuple[dict[str, set[tuple[str, str]]], dict[str, set[tuple[str, str]]]]:
    """(dataset, rule_id) failing per organisation now, and on its previous date with results."""
    params = {"d": day, "run": run_id, "org": org_code}
    now: dict[str, set[tuple[str, str]]] = defaultdict(set)
    for org, dataset, rule_id in ch.query(
        "SELECT org_code, dataset, rule_id FROM dq.rule_result WHERE business_date = {d:Date}"
        " AND run_id = {run:String} AND status = 'failed'"
        " AND ({org:String} = '' OR org_code = {org:String})",
        parameters=params,
    ).result_rows:
        now[org].add((dataset, rule_id))
    before: dict[str, set[tuple[str, str]]] = defaultdict(set)
    for org, dataset, rule_id in ch.query(
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
        SELECT r.org_code, r.dataset, r.rule_id
        FROM dq.rule_result AS r
        INNER JOIN previous AS p ON r.org_code = p.org_code AND r.business_date = p.previous_date
        WHERE r.status = 'failed'
          AND (r.business_date, r.run_id) IN (SELECT business_date, run_id FROM current_runs)
        """,
        parameters=params,
    ).result_rows:
        before[org].add((dataset, rule_id))
    return now, before


def _changes(now: set[tuple[str, str]], before: set[tuple[str, str]]) -> list[tuple[str, str, str]]:
    changes = [(*k, "new") for k in now - before]
    changes += [(*k, "resolved") for k in before - now]
    changes += [(*k, "persisting") for k in now & before]
    return sorted(changes)


def _next_computed_at(ch: Client, sql: str, parameters: dict[str, Any]) -> dt.datetime:
    """Now to the millisecond, but strictly after the last computation `sql` returns, so the
    latest computation is always one well-defined set of rows."""
    last = ch.query(sql, parameters=parameters).result_rows[0][0] or 0
    millis = max(time.time_ns() // 1_000_000, int(last) + 1)
    return _from_millis(millis)


def _from_millis(millis: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(millis // 1000, _TZ) + dt.timedelta(milliseconds=millis % 1000)


def _rank_change(earlier: _Day | None, o: _OrgDay) -> int | None:
    then = earlier.orgs.get(o.org.org_code) if earlier else None
    if then is None or then.rank is None or o.rank is None:
        return None
    return then.rank - o.rank


def _display_order(row: dict[str, Any]) -> tuple:
    group = row["peer_group"]
    return (
        PEER_GROUPS.index(group) if group in PEER_GROUPS else len(PEER_GROUPS),
        row["rank"] is None,
        row["rank"] or 0,
        row["org_code"],
    )


# ---- public API -------------------------------------------------------------------------


def score_date(
    ch: Client, registry: Registry, day: dt.date, config: ScoringConfig | None = None
) -> list[dict[str, Any]]:
    """Score the current run of `day`: write dq.score_batch, dq.score_org_day and
    dq.failure_change (then commit with dq.score_run) and return the organisation-day rows in
    display order (peer group, rank, org_code)."""
    config = config or load_scoring_config()
    previous_day, previous_month = day - dt.timedelta(days=1), same_day_previous_month(day)
    days = _score_days(ch, registry, [day, previous_day, previous_month], config)
    if day not in days:
        raise LookupError(
            f"no complete validation run for {day} in dq.current_run: validate it first"
        )
    today = days[day]
    now, before = _failing(ch, day, today.run_id)
    computed_at = _next_computed_at(
        ch,
        "SELECT toUnixTimestamp64Milli(max(computed_at)) FROM dq.score_run"
        " WHERE business_date = {d:Date} AND run_id = {run:String}",
        {"d": day, "run": today.run_id},
    )
    stamp = {"run_id": today.run_id, "business_date": day, "computed_at": computed_at}
    batch_rows, org_rows, change_rows = [], [], []
    for code, o in sorted(today.orgs.items()):
        for dataset, batch in sorted(o.batches.items()):
            dims = batch.dimensions()
            batch_rows.append(
                stamp
                | {
                    "org_code": code,
                    "peer_group": o.org.peer_group,
                    "dataset": dataset,
                    "batch_version": batch.version,
                    "is_missing": int(batch.is_missing),
                    **{d: _float(dims[d]) for d in DIMENSIONS},
                    "composite": _float(_composite(dims, config)),
                    "rules_failed": batch.rules_failed,
                    "blocking_failed": batch.blocking_failed,
                    "rules_error": batch.rules_error,
                }
            )
        changes = _changes(now.get(code, set()), before.get(code, set()))
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
                **{d: _float(o.dimensions[d]) for d in DIMENSIONS},
                "composite": _float(o.composite),
                "rank": o.rank,
                "peer_size": o.peer_size,
                "rank_change_day": _rank_change(days.get(previous_day), o),
                "rank_change_month": _rank_change(days.get(previous_month), o),
                "rules_failed": o.count("rules_failed"),
                "blocking_failed": o.count("blocking_failed"),
                "rules_error": o.count("rules_error"),
                "new_failures": counted["new"],
                "resolved_failures": counted["resolved"],
                "persisting_failures": counted["persisting"],
            }
        )
    for table, columns, rows in (
        ("dq.score_batch", BATCH_COLUMNS, batch_rows),
        ("dq.score_org_day", ORG_DAY_COLUMNS, org_rows),
        ("dq.failure_change", CHANGE_COLUMNS, change_rows),
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
    return sorted(({c: r[c] for c in ORG_DAY_COLUMNS} for r in org_rows), key=_display_order)


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
            row["computed_at"] = _from_millis(row["computed_at"])
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
    return _rows(
        ch,
        f"SELECT business_date, composite, rank, peer_size, {', '.join(DIMENSIONS)}"
        " FROM dq.current_score_org_day WHERE org_code = {org:String}"
        " AND business_date BETWEEN {start:Date} AND {d:Date} ORDER BY business_date",
        {"org": org_code, "start": day - dt.timedelta(days=days - 1), "d": day},
    )


def failures(ch: Client, org_code: str, day: dt.date) -> list[dict[str, Any]]:
    """Failed rule results of `org_code` in the current run of `day`, blocking first, then by
    weight, dataset and rule, with what the rule checks and how to fix it (zh, en) and whether
    the failure is new or persisting against the organisation's previous date with results."""
    run_id = _current_runs(ch, [day]).get(day)
    if run_id is None:
        return []
    rows = _rows(
        ch,
        "SELECT dataset, rule_id, rule_type, dimension, severity, weight, threshold, checked,"
        " failed, failed_pct, sample_keys, sample_details, notes, batch_version"
        " FROM dq.rule_result"
        " WHERE business_date = {d:Date} AND run_id = {run:String} AND org_code = {org:String}"
        " AND status = 'failed'"
        " ORDER BY severity = 'blocking' DESC, weight DESC, dataset, rule_id",
        {"d": day, "run": run_id, "org": org_code},
    )
    _, before = _failing(ch, day, run_id, org_code)
    types = rulebase().types
    for row in rows:
        rule_type = types.get(row["rule_type"])
        row["run_id"] = run_id
        row["change"] = (
            "persisting" if (row["dataset"], row["rule_id"]) in before[org_code] else "new"
        )
        for text in ("description", "fix_hint"):
            for lang in ("zh", "en"):
                row[f"{text}_{lang}"] = getattr(getattr(rule_type, text), lang) if rule_type else ""
    return rows


def _month_dates(month: dt.date) -> list[dt.date]:
    first = month.replace(day=1)
    return [
        first + dt.timedelta(days=i) for i in range(calendar.monthrange(first.year, first.month)[1])
    ]


def acceptance(
    ch: Client, registry: Registry, month: dt.date, config: ScoringConfig | None = None
) -> list[dict[str, Any]]:
    """Judge every organisation expected in `month` (any date of it), write dq.acceptance and
    return its rows (evidence as a dict) by peer group and org_code."""
    config = config or load_scoring_config()
    dates = _month_dates(month)
    first = dates[0]
    days = _score_days(ch, registry, dates, config)
    blocking: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for day, org, dataset, rule_id, pct, threshold, run_id in ch.query(
        """
        SELECT business_date, org_code, dataset, rule_id, failed_pct, threshold, run_id
        FROM dq.rule_result
        WHERE business_date BETWEEN {first:Date} AND {last:Date}
          AND (business_date, run_id) IN (SELECT business_date, run_id FROM dq.current_run)
          AND status = 'failed' AND severity = 'blocking'
        ORDER BY business_date, org_code, dataset, rule_id
        """,
        parameters={"first": first, "last": dates[-1]},
    ).result_rows:
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
    bar, share_pct, decimals = (
        config.acceptance.bar,
        config.acceptance.share_pct,
        config.ranking.decimals,
    )
    expected = sorted(
        {o.org_code: o for d in days for o in registry.active(d)}.values(),
        key=lambda o: (PEER_GROUPS.index(o.peer_group), o.org_code),
    )
    computed_at = _next_computed_at(
        ch,
        "SELECT toUnixTimestamp64Milli(max(computed_at)) FROM dq.acceptance WHERE month = {m:Date}",
        {"m": first},
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
                "computed_at": computed_at,
            }
        )
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
