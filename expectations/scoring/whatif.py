"""What a change of weights, thresholds, severities or scoring configuration would do over a
period (upload standard section 8, `hqlake whatif`): every organisation's composite, rank and
acceptance before and after, and who moves.

Computed from the stored rule results of the current runs (one ResultCount per rule of a
batch, with the exemptions in force already applied as `waived`), never by validating again,
and nothing is written: this module only counts what it is given.

The change file uses the formats of the files it changes, validated by their own models:
  types:              rule types as in contracts/rules.yaml, only weight, threshold, severity
  overrides:          entries as in contracts/rule_overrides.yaml (rulebase.Override)
  dimension_weights, ranking, acceptance:
                      as in contracts/scoring.yaml; only the keys given change
A change to a rule type's attribute applies to a result unless an override of
contracts/rule_overrides.yaml sets that attribute for the result's rule and organisation (the
override wins, as in RuleBase.effective_rules); the change file's overrides apply after every
other change, later entries winning. Changing a result's weight or severity counts it with the
new value; a changed threshold judges a passed or failed result again from its failed and
checked rows exactly as validation does (results.status_of): validation writes one result per
rule of a batch, so these are that result's counts (were there several with one status, their
sums would be judged). error, not_applicable and waived results stay as they are.

Composite of the period: the exact mean of the organisation's daily composites of the period
(the days it has one), on their decimal forms as published and as dbt's monthly ranking
(dbt/macros/scores.sql) reads them. Rank of the period: that mean ranked within the registry
peer group as a daily composite is (arithmetic.rank: rounded half up to ranking.decimals,
"1224"). Acceptance: each month the period touches is judged on every date of that month with
a current run (acceptance.judge_month), the change applied to all of them, since acceptance is
a month's.
"""

from __future__ import annotations

import datetime as dt
import fnmatch
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from fractions import Fraction
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from contracts.loader import ContractError
from contracts.registry import Registry
from contracts.yamltext import safe_load
from expectations.rules.results import status_of
from expectations.rules.rulebase import Override, RuleBase, RuleType
from expectations.scoring.acceptance import judge_month
from expectations.scoring.arithmetic import (
    Day,
    OrgDay,
    ResultCount,
    count_results,
    display_order,
    mean,
    rank,
    round_score,
    score_days,
    to_float,
)
from expectations.scoring.config import PEER_GROUPS, ScoringConfig

CHANGEABLE = ("weight", "threshold", "severity")
_JUDGED = ("passed", "failed")


class ChangeFile(BaseModel):
    """The shape of a change file; each part is validated again by its real model."""

    model_config = ConfigDict(extra="forbid", frozen=True)
    types: dict[str, dict[str, Any]] = Field(default_factory=dict)
    overrides: list[dict[str, Any]] = Field(default_factory=list)
    dimension_weights: dict[str, Any] = Field(default_factory=dict)
    ranking: dict[str, Any] = Field(default_factory=dict)
    acceptance: dict[str, Any] = Field(default_factory=dict)


@dataclass(frozen=True)
class Changes:
    """A validated change: per rule type the attributes it sets, the extra overrides, and the
    scoring configuration after the change."""

    source: str
    types: Mapping[str, Mapping[str, Any]]
    overrides: tuple[Override, ...]
    config: ScoringConfig

    def summary(self, base: ScoringConfig) -> dict[str, Any]:
        before, after = base.model_dump(), self.config.model_dump()
        return {
            "file": self.source,
            "types": {name: dict(spec) for name, spec in self.types.items()},
            "overrides": [o.model_dump(exclude_none=True) for o in self.overrides],
            "scoring": {
                f"{part}.{key}": {"before": value, "after": after[part][key]}
                for part, values in before.items()
                for key, value in values.items()
                if after[part][key] != value
            },
        }


def _errors(exc: ValidationError, prefix: str) -> str:
    return "; ".join(
        f"{'.'.join([prefix, *map(str, e['loc'])]).strip('.') or '<top>'}: {e['msg']}"
        for e in exc.errors()
    )


def _read(path: Path, text: str | None = None) -> ChangeFile:
    """The change file's YAML (`text` when given, else read from `path`, which then only
    names it) in the shape of ChangeFile; a syntax error in one line."""
    if text is None:
        try:
            text = path.read_text(encoding="utf-8")
        except OSError as exc:
            raise ContractError(f"{path}: cannot read: {exc.strerror or exc}") from None
    try:
        data = safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ContractError(f"{path}: not valid YAML{where}: {problem}") from None
    try:
        return ChangeFile.model_validate({} if data is None else data)
    except ValidationError as exc:
        raise ContractError(f"{path}: {_errors(exc, '')}") from None


def load_changes(
    path: Path | str,
    rule_base: RuleBase,
    base: ScoringConfig,
    registry: Registry,
    *,
    text: str | None = None,
) -> Changes:
    """The change file at `path` (or its `text`, e.g. uploaded to the portal, `path` naming
    it), validated like the files it changes; a problem is one ContractError naming the file
    and the entry."""
    path = Path(path)
    raw = _read(path, text)
    types: dict[str, dict[str, Any]] = {}
    for name, spec in raw.types.items():
        if name not in rule_base.types:
            raise ContractError(f"{path}: types.{name}: not a rule type of contracts/rules.yaml")
        other = sorted(set(spec) - set(CHANGEABLE))
        if other:
            raise ContractError(
                f"{path}: types.{name}: a what-if changes only {', '.join(CHANGEABLE)},"
                f" not {', '.join(other)}"
            )
        try:
            RuleType.model_validate(rule_base.types[name].model_dump() | spec)
        except ValidationError as exc:
            raise ContractError(f"{path}: {_errors(exc, f'types.{name}')}") from None
        types[name] = dict(spec)
    overrides = []
    for i, spec in enumerate(raw.overrides):
        try:
            override = Override.model_validate(spec)
        except ValidationError as exc:
            raise ContractError(f"{path}: {_errors(exc, f'overrides.{i}')}") from None
        if not any(fnmatch.fnmatchcase(r.id, override.rule) for r in rule_base.rules):
            raise ContractError(f"{path}: overrides.{i}: {override.rule!r} matches no rule")
        if override.org_code is not None and registry.get(override.org_code) is None:
            raise ContractError(
                f"{path}: overrides.{i}: organisation {override.org_code!r} is not in the"
                f" registry {registry.source}"
            )
        if override.peer_group is not None and override.peer_group not in PEER_GROUPS:
            raise ContractError(
                f"{path}: overrides.{i}: peer group {override.peer_group!r} is not one of"
                f" {', '.join(PEER_GROUPS)}"
            )
        overrides.append(override)
    merged = base.model_dump()
    for part in ("dimension_weights", "ranking", "acceptance"):
        merged[part] = merged[part] | getattr(raw, part)
    try:
        config = ScoringConfig.model_validate(merged)
    except ValidationError as exc:
        raise ContractError(f"{path}: {_errors(exc, '')}") from None
    if not types and not overrides and config == base:
        raise ContractError(f"{path}: changes nothing (give types, overrides or scoring keys)")
    return Changes(str(path), types, tuple(overrides), config)


def _scoped(o: Override, rule_id: str, org_code: str, peer_group: str) -> bool:
    return (
        (o.org_code is None or o.org_code == org_code)
        and (o.peer_group is None or o.peer_group == peer_group)
        and fnmatch.fnmatchcase(rule_id, o.rule)
    )


def changed_attributes(
    changes: Changes,
    current_overrides: Iterable[Override],
    rule_id: str,
    rule_type: str,
    org_code: str,
    peer_group: str,
) -> dict[str, Any]:
    """The weight, threshold and severity the change gives one rule of one organisation
    (only those it changes)."""
    values = dict(changes.types.get(rule_type, {}))
    for o in current_overrides:
        if _scoped(o, rule_id, org_code, peer_group):
            for attr in CHANGEABLE:
                if getattr(o, attr) is not None:
                    values.pop(attr, None)  # the override the result was judged with wins
    for o in changes.overrides:
        if _scoped(o, rule_id, org_code, peer_group):
            values |= {a: getattr(o, a) for a in CHANGEABLE if getattr(o, a) is not None}
    return values


def apply_changes(
    rows: Iterable[ResultCount],
    changes: Changes,
    current_overrides: Iterable[Override],
    registry: Registry,
) -> list[ResultCount]:
    """The rows as the change would have counted them."""
    current_overrides = tuple(current_overrides)
    memo: dict[tuple[str, str, str], dict[str, Any]] = {}
    out = []
    for r in rows:
        key = (r.rule_id, r.rule_type, r.org_code)
        if key not in memo:
            org = registry.get(r.org_code)
            memo[key] = changed_attributes(
                changes, current_overrides, *key, org.peer_group if org else ""
            )
        values = memo[key]
        if values:
            status = r.status
            if "threshold" in values and status in _JUDGED:
                status = status_of(r.checked_rows, r.failed_rows, values["threshold"])[0]
            r = r._replace(
                weight=float(values.get("weight", r.weight)),
                severity=values.get("severity", r.severity),
                status=status,
            )
        out.append(r)
    return out


def blocking_of(rows: Iterable[ResultCount], runs: Mapping[dt.date, str]) -> dict[str, list]:
    """Failed blocking results per organisation, one entry per result (as
    acceptance.blocking_failures lists them)."""
    blocking: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for r in sorted(rows, key=lambda r: (r.business_date, r.org_code, r.dataset, r.rule_id)):
        if r.status == "failed" and r.severity == "blocking":
            entry = {
                "business_date": r.business_date.isoformat(),
                "dataset": r.dataset,
                "rule_id": r.rule_id,
                "failed_pct": round(100.0 * r.failed_rows / r.checked_rows, 4)
                if r.checked_rows
                else None,
                "run_id": runs[r.business_date],
            }
            blocking[r.org_code] += [entry] * r.results
    return blocking


def _months(dates: Iterable[dt.date]) -> list[dt.date]:
    return sorted({d.replace(day=1) for d in dates})


def _period_ranks(
    days: Mapping[dt.date, Day], first: dt.date, last: dt.date, decimals: int
) -> dict[str, OrgDay]:
    """Per organisation: the exact mean of the decimal forms of its daily composites of
    [first, last] (what it publishes, as dbt's monthly ranking reads them), ranked."""
    composites: dict[str, list[Fraction | None]] = defaultdict(list)
    orgs = {}
    for d, day in days.items():
        if first <= d <= last:
            for code, o in day.orgs.items():
                published = to_float(o.composite)
                composites[code].append(
                    None if published is None else Fraction(Decimal(repr(published)))
                )
                orgs[code] = o.org
    period = {code: OrgDay(orgs[code], {}, composite=mean(v)) for code, v in composites.items()}
    rank(period.values(), decimals)
    return period


@dataclass(frozen=True)
class Side:
    """One side (before or after) of a what-if."""

    days: dict[dt.date, Day]
    period: dict[str, OrgDay]
    acceptance: dict[tuple[dt.date, str], dict[str, Any]]


def _side(
    runs: Mapping[dt.date, str],
    rows: list[ResultCount],
    registry: Registry,
    config: ScoringConfig,
    first: dt.date,
    last: dt.date,
) -> Side:
    days = score_days(dict(runs), count_results(rows), registry, config)
    blocking = blocking_of(rows, runs)
    acceptance = {}
    for month in _months(d for d in runs if first <= d <= last):
        of_month = {d: day for d, day in days.items() if d.replace(day=1) == month}
        month_blocking = defaultdict(list)
        for org, entries in blocking.items():
            month_blocking[org] = [e for e in entries if e["business_date"][:7] == f"{month:%Y-%m}"]
        for row in judge_month(month, of_month, month_blocking, registry, config):
            acceptance[(month, row["org_code"])] = row
    return Side(days, _period_ranks(days, first, last, config.ranking.decimals), acceptance)


def judge_acceptance(
    runs: Mapping[dt.date, str],
    rows: list[ResultCount],
    registry: Registry,
    config: ScoringConfig,
    month: dt.date,
) -> list[dict[str, Any]]:
    """The acceptance of `month` as it stands (no change), from the same inputs as `compare`:
    the rows `judge_month` gives (`hqlake acceptance` stores the same), for a page that has
    the results but no stored acceptance."""
    dates = sorted(d for d in runs if d.replace(day=1) == month.replace(day=1))
    if not dates:
        return []
    side = _side(runs, rows, registry, config, dates[0], dates[-1])
    return [row for (m, _), row in side.acceptance.items() if m == month.replace(day=1)]


def _accepted(row: dict[str, Any] | None) -> dict[str, Any] | None:
    if row is None:
        return None
    return {
        "passed": bool(row["passed"]),
        "days_judged": row["days_judged"],
        "days_at_bar": row["days_at_bar"],
        "blocking_failures": row["blocking_failures"],
        "reasons": row["evidence"]["reasons"],
    }


def _rounded(value: Fraction | None, decimals: int) -> str | None:
    rounded = round_score(to_float(value), decimals)
    return None if rounded is None else str(rounded)


def compare(
    runs: Mapping[dt.date, str],
    rows: list[ResultCount],
    registry: Registry,
    base: ScoringConfig,
    changes: Changes,
    current_overrides: Iterable[Override],
    first: dt.date,
    last: dt.date,
) -> dict[str, Any]:
    """The what-if of `changes` over [first, last] from the results `rows` of the current runs
    `runs` (date -> run_id) of every date of the months the period touches: a JSON-ready
    answer, organisations who move first."""
    changed = apply_changes(rows, changes, current_overrides, registry)
    before = _side(runs, rows, registry, base, first, last)
    after = _side(runs, changed, registry, changes.config, first, last)
    period_dates = sorted(d for d in runs if first <= d <= last)
    months = _months(period_dates)
    decimals_before, decimals_after = base.ranking.decimals, changes.config.ranking.decimals
    codes = sorted(set(before.period) | {code for _, code in before.acceptance})
    organisations = []
    for code in codes:
        org = registry.get(code)
        b, a = before.period.get(code), after.period.get(code)
        acceptance = [
            {
                "month": f"{m:%Y-%m}",
                "before": _accepted(before.acceptance.get((m, code))),
                "after": _accepted(after.acceptance.get((m, code))),
            }
            for m in months
            if (m, code) in before.acceptance or (m, code) in after.acceptance
        ]
        rank_moves = (b.rank if b else None) != (a.rank if a else None)
        acceptance_moves = any(
            (x["before"] or {}).get("passed") != (x["after"] or {}).get("passed")
            for x in acceptance
        )
        composite_before = b.composite if b else None
        composite_after = a.composite if a else None
        days = []
        for d in period_dates:
            ob, oa = before.days[d].orgs.get(code), after.days[d].orgs.get(code)
            if ob is None and oa is None:
                continue
            days.append(
                {
                    "business_date": d.isoformat(),
                    "run_id": runs[d],
                    "composite_before": to_float(ob.composite) if ob else None,
                    "composite_after": to_float(oa.composite) if oa else None,
                    "rank_before": ob.rank if ob else None,
                    "rank_after": oa.rank if oa else None,
                    "peer_size": oa.peer_size if oa else 0,
                }
            )
        organisations.append(
            {
                "org_code": code,
                "org_name": org.name,
                "peer_group": org.peer_group,
                "moves": rank_moves or acceptance_moves,
                "rank_moves": rank_moves,
                "acceptance_moves": acceptance_moves,
                "composite": {
                    "before": to_float(composite_before),
                    "after": to_float(composite_after),
                    "before_rounded": _rounded(composite_before, decimals_before),
                    "after_rounded": _rounded(composite_after, decimals_after),
                    "delta": to_float(composite_after - composite_before)
                    if composite_before is not None and composite_after is not None
                    else None,
                },
                "rank": {
                    "before": b.rank if b else None,
                    "after": a.rank if a else None,
                    "peer_size": a.peer_size if a else (b.peer_size if b else 0),
                },
                "acceptance": acceptance,
                "days": days,
            }
        )
    organisations.sort(
        key=lambda o: (
            not o["moves"],
            *display_order({**o, "rank": o["rank"]["after"]}),
        )
    )
    return {
        "period": {"from": first.isoformat(), "to": last.isoformat()},
        "dates_scored": [d.isoformat() for d in period_dates],
        "months": [f"{m:%Y-%m}" for m in months],
        "changes": changes.summary(base),
        "results": len(rows),
        "results_changed": sum(x != y for x, y in zip(rows, changed, strict=True)),
        "moves": sum(o["moves"] for o in organisations),
        "organisations": organisations,
        "meaning": {
            "composite": (
                "the mean of the organisation's daily composites over the period's dates"
                " with a current run"
            ),
            "rank": (
                "the period's rank: the mean composite ranked within the peer group, rounded"
                f" half up to {decimals_after} decimals, equal values share a rank (1, 2, 2, 4);"
                " each day's own rank is in days"
            ),
            "acceptance": (
                "each month the period touches, judged on every date of that month with a"
                " current run, the change applied to all of them"
            ),
            "moves": "the period's rank or a month's acceptance differs after the change",
            "source": (
                "the stored rule results of the current runs, with the approved appeals and"
                " waivers in force; nothing is validated again and nothing is written"
            ),
        },
    }
