"""Comparison (a): plain Great Expectations on pandas, one validation per batch.

This is what a user following the GX 1.x tutorials would write: an ephemeral context, a
pandas data source with one dataframe asset and one expectation suite per dataset, and for
every batch `ch.query_df(...)` of its rows followed by `ValidationDefinition.run` with the
dataframe as batch parameter (default result format). Our rules are mapped to built-in
expectations where GX has one with the same meaning:

| rule type                                   | expectation                                      |
|---------------------------------------------|--------------------------------------------------|
| required                                    | ExpectColumnValuesToNotBeNull                    |
| unique_key (one key field / compound)       | ExpectColumnValuesToBeUnique / ExpectCompound... |
| code_in_system, allowed_values (one code)   | ExpectColumnValuesToBeInSet                      |
| icd9cm3_format, phone_format                | ExpectColumnValuesToMatchRegex                   |
| min, max, gt, not_after_business_date,      | ExpectColumnValuesToBeBetween                    |
| max_age_years, record_not_late,             |                                                  |
| event_not_future                            |                                                  |
| compare (>, >=, <, <=, =)                   | ExpectColumnPairValuesAToBeGreaterThanB / ...Equal|

Everything else (check digits, ICD-10 with clinical extensions, division tables,
references to other batches, conditional and arithmetic record rules) has no built-in
expectation; those rules are counted as not expressible and left out, so this way does
less work than ours. Where a mapped expectation means something slightly different it is
said in `Mapped.note` (e.g. GX's not-null accepts a blank string, our `required` does not).

Only counts leave this module: GX's partial unexpected lists may hold personal data and are
never stored or printed.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
from clickhouse_connect.driver.client import Client

from contracts.loader import contracts
from contracts.model import Dataset, FieldSpec
from contracts.timezone import TZ
from expectations.engines.sqlrules import PHONE_PATTERN, ident, sql_rules
from expectations.rules.rulebase import Rule


@dataclass(frozen=True)
class Mapped:
    rule_id: str
    expectation: str  # class name in great_expectations.expectations
    kwargs: dict[str, Any]
    note: str = ""


def _bound(value: Any, spec: FieldSpec) -> Any:
    """A contract value as a Python value comparable with the pandas column of `spec`."""
    if spec.type == "int":
        return int(value)
    if spec.decimal:
        return float(value)
    if spec.type == "date":
        return pd.Timestamp(dt.date.fromisoformat(str(value)))
    if spec.type == "datetime":
        return pd.Timestamp(dt.datetime.fromisoformat(str(value)), tz=TZ)
    return None


def _day_start(day: dt.date, spec: FieldSpec) -> pd.Timestamp:
    """Midnight of `day` in the column's own terms (naive for dates, local for datetimes)."""
    if spec.type == "datetime":
        return pd.Timestamp(dt.datetime.combine(day, dt.time()), tz=TZ)
    return pd.Timestamp(day)


def _years_before(day: dt.date, years: int) -> dt.date:
    try:
        return day.replace(year=day.year - years)
    except ValueError:  # 29 February
        return day.replace(year=day.year - years, day=28)


def map_rule(rule: Rule, ds: Dataset, day: dt.date) -> Mapped | None:
    """The built-in expectation with the meaning of `rule` on business date `day`, or None."""
    p, f, t = rule.params, rule.field, rule.type
    if p.get("when"):
        return None
    spec = ds.by_name.get(f) if f else None
    dated = spec is not None and spec.type in ("date", "datetime")
    if t == "required":
        note = "blank strings pass GX, fail ours" if spec and spec.type == "str" else ""
        return Mapped(rule.id, "ExpectColumnValuesToNotBeNull", {"column": f}, note)
    if t == "unique_key":
        keys = list(ds.key) if f is None else [f]
        if len(keys) == 1:
            return Mapped(rule.id, "ExpectColumnValuesToBeUnique", {"column": keys[0]})
        return Mapped(rule.id, "ExpectCompoundColumnsToBeUnique", {"column_list": keys})
    if t in ("code_in_system", "allowed_values") and spec and not spec.separator:
        values = p.get("codes") if t == "code_in_system" else p.get("values")
        if values is None:
            return None
        if spec.type == "int":
            values = [int(v) for v in values]
        elif spec.type == "str":
            values = [str(v) for v in values]
        else:
            return None
        return Mapped(rule.id, "ExpectColumnValuesToBeInSet", {"column": f, "value_set": values})
    if t in ("icd9cm3_format", "phone_format") and spec and spec.type == "str":
        if t == "icd9cm3_format":
            pattern = contracts().codes[p.get("code_system", "icd9cm3")].pattern
        else:
            pattern = p.get("pattern", PHONE_PATTERN)
        return Mapped(rule.id, "ExpectColumnValuesToMatchRegex", {"column": f, "regex": pattern})
    if t in ("min", "max", "gt") and spec:
        bound = _bound(p["value"], spec)
        if bound is None:
            return None
        kwargs: dict[str, Any] = {"column": f}
        if t == "max":
            kwargs["max_value"] = bound
        else:
            kwargs["min_value"] = bound
            kwargs["strict_min"] = t == "gt"
        return Mapped(rule.id, "ExpectColumnValuesToBeBetween", kwargs)
    if t in ("not_after_business_date", "event_not_future") and dated:
        # On or before the business date: before midnight of the next day.
        end = _day_start(day + dt.timedelta(days=1), spec)
        kwargs = {"column": f, "max_value": end, "strict_max": True}
        return Mapped(rule.id, "ExpectColumnValuesToBeBetween", kwargs)
    if t == "record_not_late" and dated:
        days = int(contracts().timeliness.record_lag.late_after_days)
        start = _day_start(day - dt.timedelta(days=days), spec)
        return Mapped(rule.id, "ExpectColumnValuesToBeBetween", {"column": f, "min_value": start})
    if t == "max_age_years" and spec and spec.type == "date":
        # Age > N completed years <=> born on or before the date N+1 years ago.
        start = pd.Timestamp(_years_before(day, int(p["value"]) + 1))
        kwargs = {"column": f, "min_value": start, "strict_min": True}
        return Mapped(rule.id, "ExpectColumnValuesToBeBetween", kwargs)
    if t == "compare":
        left, op, right = p["left"], p["op"], p["right"]
        pair = {"ignore_row_if": "either_value_is_missing"}
        if op == "=":
            kwargs = {"column_A": left, "column_B": right, **pair}
            return Mapped(rule.id, "ExpectColumnPairValuesToBeEqual", kwargs)
        a, b = (left, right) if op in (">", ">=") else (right, left)
        kwargs = {"column_A": a, "column_B": b, "or_equal": op in (">=", "<="), **pair}
        return Mapped(rule.id, "ExpectColumnPairValuesAToBeGreaterThanB", kwargs)
    return None


def map_rules(dataset: str, rules: list[Rule], day: dt.date) -> tuple[list[Mapped], list[Rule]]:
    """(expectations for the rules GX can express, the rules it cannot)."""
    ds = contracts().dataset(dataset)
    mapped, missing = [], []
    for rule in sql_rules(dataset, rules):
        m = map_rule(rule, ds, day)
        if m is None:
            missing.append(rule)
        else:
            mapped.append(m)
    return mapped, missing


@dataclass
class GxPandasRun:
    """What the GX-pandas way did on one business date."""

    batches: int = 0
    rows: int = 0
    rules_total: int = 0
    rules_expressible: int = 0
    expressible_by_type: dict[str, list[int]] = field(default_factory=dict)
    expectation_errors: int = 0
    error_samples: list[str] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    # (org_code, dataset, batch_version, rule_id) -> GX unexpected_count
    unexpected: dict[tuple[str, str, int, str], int] = field(default_factory=dict)

    def public(self) -> dict:
        return {
            "batches": self.batches,
            "rows": self.rows,
            "rules_total": self.rules_total,
            "rules_expressible": self.rules_expressible,
            "expressible_by_type": self.expressible_by_type,
            "expectation_errors": self.expectation_errors,
            "error_samples": self.error_samples,
            "seconds": {k: round(v, 3) for k, v in self.seconds.items()},
        }


def _gx():
    for name in ("great_expectations", "great_expectations._docs_decorators"):
        logging.getLogger(name).setLevel(logging.WARNING)
    import great_expectations as gx

    return gx


def current_batches(ch: Client, day: dt.date) -> list[tuple[str, str, int]]:
    """(dataset, org_code, batch_version) of every current batch of `day`."""
    rows = ch.query(
        "SELECT dataset, org_code, batch_version FROM raw.current_batch"
        " WHERE business_date = {d:Date} ORDER BY dataset, org_code",
        parameters={"d": day},
    ).result_rows
    return [(ds, org, int(v)) for ds, org, v in rows]


def validate_date(ch: Client, day: dt.date, rules: list[Rule]) -> GxPandasRun:
    """Validate every current batch of `day` the GX-tutorial way; counts only."""
    run = GxPandasRun()
    started = time.perf_counter()
    gx = _gx()
    from great_expectations.data_context.types.base import ProgressBarsConfig

    ctx = gx.get_context(mode="ephemeral")
    ctx.variables.progress_bars = ProgressBarsConfig(globally=False)
    source = ctx.data_sources.add_pandas("bench")
    definitions = {}
    by_type: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for dataset in sorted(contracts().datasets):
        mapped, missing = map_rules(dataset, rules, day)
        for m in mapped:
            by_type[next(r.type for r in rules if r.id == m.rule_id)][0] += 1
        for r in missing:
            by_type[r.type][1] += 1
        run.rules_total += len(mapped) + len(missing)
        run.rules_expressible += len(mapped)
        if not mapped:
            continue
        asset = source.add_dataframe_asset(name=dataset)
        batch_definition = asset.add_batch_definition_whole_dataframe(f"{dataset} batch")
        suite = ctx.suites.add(gx.ExpectationSuite(name=dataset))
        for m in mapped:
            expectation = getattr(gx.expectations, m.expectation)
            suite.add_expectation(expectation(**m.kwargs, meta={"rule_id": m.rule_id}))
        definitions[dataset] = ctx.validation_definitions.add(
            gx.ValidationDefinition(name=dataset, data=batch_definition, suite=suite)
        )
    # [expressible, not expressible] per rule type
    run.expressible_by_type = {k: v for k, v in sorted(by_type.items())}
    run.seconds["setup"] += time.perf_counter() - started
    for dataset, org, version in current_batches(ch, day):
        definition = definitions.get(dataset)
        if definition is None:
            continue
        clock = time.perf_counter()
        frame = ch.query_df(
            f"SELECT * FROM raw.{ident(dataset)} WHERE business_date = {{d:Date}}"  # noqa: S608
            " AND org_code = {o:String} AND batch_version = {v:UInt32}",
            parameters={"d": day, "o": org, "v": version},
        )
        loaded = time.perf_counter()
        run.seconds["query_df"] += loaded - clock
        result = definition.run(batch_parameters={"dataframe": frame})
        run.seconds["validate"] += time.perf_counter() - loaded
        run.batches += 1
        run.rows += len(frame)
        for r in result.results:
            rule_id = r.expectation_config.meta["rule_id"]
            info = r.exception_info or {}
            if isinstance(info, dict) and info.get("raised_exception"):
                run.expectation_errors += 1
                if len(run.error_samples) < 5:
                    run.error_samples.append(f"{rule_id}: {info.get('exception_message')}")
                continue
            count = (r.result or {}).get("unexpected_count")
            if count is not None:
                run.unexpected[(org, dataset, version, rule_id)] = int(count)
        del frame, result
    run.seconds["total"] = time.perf_counter() - started
    return run


def agreement(run: GxPandasRun, sql_rows: list[dict]) -> dict:
    """How often GX's unexpected count equals the failed count of our SQL for the same batch
    and rule; disagreements are listed by rule type with the reason they can differ."""
    ours = {
        (r["org_code"], r["dataset"], r["batch_version"], r["rule_id"]): r["failed"]
        for r in sql_rows
    }
    compared = equal = 0
    differ: dict[str, int] = defaultdict(int)
    for key, count in run.unexpected.items():
        if key not in ours:
            continue
        compared += 1
        if ours[key] == count:
            equal += 1
        else:
            differ[key[3]] += 1
    return {"compared": compared, "equal": equal, "differ_by_rule": dict(sorted(differ.items()))}


__all__ = [
    "GxPandasRun",
    "Mapped",
    "agreement",
    "current_batches",
    "map_rule",
    "map_rules",
    "validate_date",
]
