"""Unit or level shift of money fields (upload standard 7.3) against history or peers.

Engine `level_sql`: its rules need the organisation registry (peer groups) and the
working-day calendar besides ClickHouse, which the `cross_sql` engine's rule builders do not
receive, so they run here. The output has the shape of `crossrules.run_cross` (one dict per
organisation, judged dataset and current batch of D, with every failing record key), so
validation writes results and dq.record_issue rows the same way.

money_level_shift (judged: every dataset of the `fields` parameter)
    For each money field (outpatient_visit.total_fee, inpatient_discharge.total_fee,
    prescription.amount: the parameter, not this code) the *batch median* is the median of
    the field over the rows of one current batch (ClickHouse quantileExactLow/High, the
    mean of the two middle values for an even count, blank values left out). The reference
    is, in this order:
      - own history: the median of the organisation's batch medians of the business dates
        D - window_days .. D - 1 of the same weekday type as D (working day or not,
        contracts/calendar.py), when there are at least min_history such dates with a
        batch median; a median of daily medians, so one odd day in the window (even a
        previous shift) does not move it;
      - otherwise peers: the median of the batch medians on D of the other organisations of
        the same peer group (registry) with a batch median that day, when there are at
        least min_peers of them;
      - otherwise none: the result is not_applicable (checked 0).
    A reference of 0 is not comparable (not_applicable). ratio = batch median / reference;
    ratio >= max_ratio or ratio <= min_ratio fails every row of the batch (the rule is
    blocking: the whole batch stays out of the marts); the comparisons are exact decimal
    arithmetic, so a ratio of exactly 10 fails and 9.99 passes. A dataset with several
    money fields fails when any of them shifted; each failing key's detail names the
    shifted fields, e.g. "amount median 12345.00 vs 123.45 (own 28-day history), ratio 100"
    (medians are not personal data). A peer reference is never shown, nor a ratio to it: with
    three peers their median is one other organisation's batch median, so the text says
    only on which side of the bounds the batch median lies ("amount median 1000.00 is at
    least 10 times the median of peer group tertiary, 3 peers"). Everything read is current
    batches with business date
    <= D, so the result does not depend on the day it is computed.
"""

# SQL text is built from the contracts and rule parameters through quote()/ident(), never
# from uploaded data (see sqlrules).
# ruff: noqa: S608

from __future__ import annotations

import datetime as dt
import statistics
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from decimal import Decimal

from clickhouse_connect.driver.client import Client

from contracts.calendar import is_workday
from contracts.loader import contracts
from contracts.registry import Registry
from expectations.engines.sqlrules import RuleSQLError, current_rows, ident, keyed_result, quote
from expectations.engines.sqlrules import record_key as _record_key
from expectations.rules.rulebase import Rule


def _day(day: dt.date) -> str:
    return f"toDate({quote(day.isoformat())})"


@dataclass(frozen=True)
class _Reference:
    median: Decimal
    source: str  # "own 28-day history" / "peer group tertiary, 4 peers"
    own: bool = True  # the organisation's own history, which it may see; peers' it may not


def comparable_days(day: dt.date, window_days: int) -> list[dt.date]:
    """The business dates of the window before `day` with the same weekday type."""
    working = is_workday(day)[0]
    days = [day - dt.timedelta(days=k) for k in range(1, window_days + 1)]
    return sorted(d for d in days if is_workday(d)[0] == working)


def _medians(
    ch: Client, dataset: str, fields: list[str], days: list[dt.date]
) -> tuple[dict[tuple[str, dt.date], list[Decimal | None]], dict[str, int], str]:
    """((org_code, business date) -> the batch median of each field (None: no value),
    org_code -> rows of its batch on the last of `days`, the query)."""
    ds = contracts().dataset(dataset)
    for f in fields:
        if f not in ds.by_name:
            raise RuleSQLError(f"{dataset} has no field {f!r}")
    dates = f"IN ({', '.join(_day(d) for d in days)})"
    cols = ", ".join(
        f"quantileExactLow(0.5)(r.{ident(f)}) AS lo_{i}, quantileExactHigh(0.5)(r.{ident(f)})"
        f" AS hi_{i}"
        for i, f in enumerate(fields)
    )
    query = (
        f"SELECT r.org_code AS org_code, r.business_date AS business_date, count() AS n, {cols}"
        f" FROM raw.{ident(dataset)} AS r WHERE {current_rows(dataset, dates)}"
        f" GROUP BY org_code, business_date ORDER BY org_code, business_date"
    )
    out: dict[tuple[str, dt.date], list[Decimal | None]] = {}
    counts: dict[str, int] = {}
    for org, date, n, *values in ch.query(query).result_rows:
        if date == days[-1]:
            counts[org] = int(n)
        meds: list[Decimal | None] = []
        for i in range(len(fields)):
            lo, hi = values[2 * i], values[2 * i + 1]
            meds.append(None if lo is None or hi is None else (Decimal(lo) + Decimal(hi)) / 2)
        out[(org, date)] = meds
    return out, counts, query


def _fmt(value: Decimal) -> str:
    return f"{value.quantize(Decimal('0.01'))}"


def _ratio_text(ratio: Decimal) -> str:
    text = f"{ratio.quantize(Decimal('0.01')):f}".rstrip("0").rstrip(".")
    return text or "0"


def _money_level_shift(ch: Client, registry: Registry, day: dt.date, rule: Rule) -> list[dict]:
    p = rule.params
    window, min_history, min_peers = (
        int(p["window_days"]),
        int(p["min_history"]),
        int(p["min_peers"]),
    )
    high, low = Decimal(str(p["max_ratio"])), Decimal(str(p["min_ratio"]))
    history_days = comparable_days(day, window)
    by_dataset: dict[str, list[str]] = defaultdict(list)
    for item in p["fields"]:
        by_dataset[item["dataset"]].append(item["field"])
    peer_group = {o.org_code: o.peer_group for o in registry.active(day)}
    out = []
    for dataset, fields in sorted(by_dataset.items()):
        ds = contracts().dataset(dataset)
        medians, counts, query = _medians(ch, dataset, fields, [*history_days, day])
        batches = ch.query(
            "SELECT org_code, batch_version FROM raw.current_batch"
            " WHERE dataset = {ds:String} AND business_date = {d:Date} ORDER BY org_code",
            parameters={"ds": dataset, "d": day},
        ).result_rows
        for org, version in batches:
            today = medians.get((org, day))
            checked_fields, shifted, notes = 0, [], []
            for i, f in enumerate(fields):
                value = today[i] if today else None
                ref = _reference(
                    org, i, day, window, history_days, medians, peer_group, min_history, min_peers
                )
                if value is None or ref is None or ref.median <= 0:
                    why = "no value" if value is None else "no reference"
                    notes.append(f"{f}: {why} ({_why_no_reference(ref, min_history, min_peers)})")
                    continue
                checked_fields += 1
                is_high, is_low = value >= high * ref.median, value <= low * ref.median
                if ref.own:
                    text = (
                        f"{f} median {_fmt(value)} vs {_fmt(ref.median)} ({ref.source}),"
                        f" ratio {_ratio_text(value / ref.median)}"
                    )
                else:  # another organisation's median: only the side of the bounds
                    side = (
                        f"at least {high:f}"
                        if is_high
                        else f"at most {low:f}"
                        if is_low
                        else f"between {low:f} and {high:f}"
                    )
                    text = f"{f} median {_fmt(value)} is {side} times the median of {ref.source}"
                notes.append(text)
                if is_high or is_low:
                    shifted.append(text)
            keys: list[str] = []
            if shifted:
                keys = [
                    k
                    for (k,) in ch.query(
                        f"SELECT {_record_key(ds, 'r.')} AS k FROM raw.{ident(dataset)} AS r"
                        f" WHERE {current_rows(dataset, f'= {_day(day)}')}"
                        f" AND r.org_code = {quote(org)} ORDER BY k"
                    ).result_rows
                ]
            rows = counts.get(org, 0)
            checked = rows if checked_fields else 0
            detail = "; ".join(shifted)
            failed = checked if shifted else 0
            out.append(
                keyed_result(
                    rule,
                    org,
                    dataset,
                    day,
                    version,
                    (checked, failed),
                    keys,
                    [detail] * len(keys),
                    query,
                    "; ".join(notes),
                )
            )
    return out


def _reference(
    org: str,
    i: int,
    day: dt.date,
    window: int,
    history_days: list[dt.date],
    medians: dict[tuple[str, dt.date], list[Decimal | None]],
    peer_group: dict[str, str],
    min_history: int,
    min_peers: int,
) -> _Reference | None:
    own = [m[i] for d in history_days if (m := medians.get((org, d))) and m[i] is not None]
    if len(own) >= min_history:
        return _Reference(statistics.median(own), f"own {window}-day history")
    group = peer_group.get(org)
    peers = [
        m[i]
        for (o, d), m in sorted(medians.items())
        if d == day and o != org and group is not None and peer_group.get(o) == group
        if m[i] is not None
    ]
    if len(peers) >= min_peers:
        return _Reference(
            statistics.median(peers), f"peer group {group}, {len(peers)} peers", own=False
        )
    return None


def _why_no_reference(ref: _Reference | None, min_history: int, min_peers: int) -> str:
    if ref is None:
        return f"fewer than {min_history} comparable days and fewer than {min_peers} peers"
    if not ref.own:  # another organisation's median is not shown, not even that it is 0
        return f"{ref.source}: no comparable median"
    return f"reference median {_fmt(ref.median)} ({ref.source})"


LevelRule = Callable[[Client, Registry, dt.date, Rule], list[dict]]

# The `level_sql` engine: rule type -> its results for business date D.
LEVEL_RULES: dict[str, LevelRule] = {
    "money_level_shift": _money_level_shift,
}


def run_level(
    ch: Client, registry: Registry, business_date: dt.date, rules: Sequence[Rule]
) -> list[dict]:
    """Results of every rule among `rules` whose type this engine runs, in the shape of
    crossrules.run_cross."""
    day = dt.date.fromisoformat(str(business_date))
    out = []
    for rule in (r for r in rules if r.type in LEVEL_RULES):
        try:
            out += LEVEL_RULES[rule.type](ch, registry, day, rule)
        except (KeyError, TypeError) as exc:
            raise RuleSQLError(f"{rule.id}: parameter missing or malformed: {exc}") from None
    return out
