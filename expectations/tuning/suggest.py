"""Weights from the accumulated history (upload standard 7.4): per rule over a period, how
many organisations and organisation-days failed it, how many rows its blocking failures kept
out of the marts, which indicator columns its fields feed and what share of their input rows
it failed, and a suggested weight with its reason.

It reads only what validation stored for the current runs of the period (dq.current_run,
dq.rule_result, dq.record_issue) and the committed batches (dq.batch, raw.current_batch), so
the answer for a period is the same whenever it is computed, and it writes nothing: a quality
officer adopts a suggestion by editing contracts/rules.yaml or contracts/rule_overrides.yaml.
The heuristics and their numbers are contracts/weight_suggestions.yaml (see there).

Which indicators a rule reaches comes from the dbt project: each measure column of the
indicator marts names the contract fields it reads (`meta: {sources: [dataset.field]}`),
handed in by the caller as `indicators` (infra.dbtrun.indicator_sources). A row-level
blocking failure leaves the whole row out, so it reaches every indicator that reads its
dataset; a warning failure keeps the row, so it reaches the indicators that read one of the
rule's fields; a batch-level rule judges whole batches of its dataset.
"""

# SQL text here is fixed; every value is a bound query parameter.

from __future__ import annotations

import datetime as dt
import fnmatch
import math
from collections import defaultdict
from collections.abc import Mapping, Sequence
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from clickhouse_connect.driver.client import Client

from contracts.errors import OperatorError
from contracts.loader import Contracts, contracts
from expectations.rules.rulebase import Rule, RuleBase
from expectations.tuning.config import SuggestionConfig

# Levels whose failures are records (dq.record_issue); the others judge batches or days.
ROW_LEVELS = frozenset({"field", "record", "cross_dataset"})
JUDGED = ("passed", "failed")
ACTIONS = ("raise", "lower", "keep")  # display order
MEANING = {
    "organisations_judged": "organisations with a passed or failed result of the rule",
    "org_days_judged": "organisation-days with a passed or failed result of the rule",
    "failed_in_results": (
        "what the rule itself counted as failing in its results (rows, or batches and files "
        "for a batch-level rule; rows quarantined at ingest for values_typed-like rules, "
        "which never reach dq.record_issue)"
    ),
    "rows.failed": "distinct records of current batches the rule failed (dq.record_issue)",
    "rows.kept_out": "of those, records its blocking failures kept out of the marts",
    "rows.kept_out_by_this_rule_alone": "kept out by this rule and no other blocking rule",
    "datasets[].failed_pct": (
        "share of the dataset's rows loaded in the period (the indicators' input rows from "
        "it) that the rule failed: for a blocking rule these rows are missing from the "
        "indicators, for a warning rule they are counted with the value as sent"
    ),
    "indicators.reach": (
        "rows: a blocking row-level rule leaves whole rows out of every indicator of its "
        "datasets; fields: a warning rule's rows stay, reaching the indicators that read "
        "one of its fields; batches: the rule judges whole batches of its dataset"
    ),
    "indicators.columns[]": (
        "an indicator column (model.column) the rule reaches, the datasets it reaches it "
        "through, their rows loaded in the period (the column's input rows from them, every "
        "organisation and month) and the share of those the rule failed"
    ),
    "suggestion.weight": "the suggested weight of the rule (current: current_weight)",
}


class NothingValidated(OperatorError):
    """No validation run is current for any business date of the period."""


def _runs(ch: Client, first: dt.date, last: dt.date) -> list[dt.date]:
    rows = ch.query(
        "SELECT business_date FROM dq.current_run"
        " WHERE business_date BETWEEN {first:Date} AND {last:Date} ORDER BY business_date",
        parameters={"first": first, "last": last},
    ).result_rows
    return [r[0] for r in rows]


_CURRENT_RESULTS = (
    " FROM dq.rule_result WHERE business_date BETWEEN {first:Date} AND {last:Date}"
    " AND (business_date, run_id) IN (SELECT business_date, run_id FROM dq.current_run"
    " WHERE business_date BETWEEN {first:Date} AND {last:Date})"
)


def _result_stats(ch: Client, first: dt.date, last: dt.date) -> dict[str, dict[str, Any]]:
    result = ch.query(
        "SELECT rule_id,"
        " uniqExactIf(org_code, status IN ('passed', 'failed')) AS organisations_judged,"
        " uniqExactIf(org_code, status = 'failed') AS organisations_failed,"
        " uniqExactIf((org_code, business_date), status IN ('passed', 'failed'))"
        " AS org_days_judged,"
        " uniqExactIf((org_code, business_date), status = 'failed') AS org_days_failed,"
        " countIf(status = 'failed') AS failed_results,"
        " countIf(status = 'error') AS error_results,"
        " sumIf(failed, status IN ('passed', 'failed')) AS failed_in_results,"
        " arraySort(groupArrayIf(failed_pct, status = 'failed')) AS failed_pcts,"
        " arraySort(groupUniqArrayIf(dataset, dataset != '')) AS datasets,"
        " arraySort(groupUniqArray(weight)) AS weights" + _CURRENT_RESULTS + " GROUP BY rule_id",
        parameters={"first": first, "last": last},
    )
    return {
        row[0]: dict(zip(result.column_names[1:], row[1:], strict=True))
        for row in result.result_rows
    }


def _fingerprints(ch: Client, first: dt.date, last: dt.date) -> list[str]:
    rows = ch.query(
        "SELECT DISTINCT rules_fingerprint" + _CURRENT_RESULTS + " ORDER BY rules_fingerprint",
        parameters={"first": first, "last": last},
    ).result_rows
    return [r[0] for r in rows]


def _organisations(ch: Client, first: dt.date, last: dt.date) -> int:
    return int(
        ch.query(
            "SELECT uniqExact(org_code)" + _CURRENT_RESULTS,
            parameters={"first": first, "last": last},
        ).result_rows[0][0]
    )


def _record_stats(
    ch: Client, first: dt.date, last: dt.date
) -> dict[str, dict[str, dict[str, int]]]:
    """rule_id -> dataset -> rows failed, kept out, kept out by this rule alone: the records
    of the current batches that the current runs of the period failed."""
    rows = ch.query(
        "WITH records AS ("
        " SELECT org_code, dataset, business_date, batch_version, record_key,"
        " groupUniqArray(rule_id) AS rules,"
        " groupUniqArrayIf(rule_id, severity = 'blocking') AS blockers"
        " FROM dq.record_issue"
        " WHERE business_date BETWEEN {first:Date} AND {last:Date}"
        " AND (business_date, run_id) IN (SELECT business_date, run_id FROM dq.current_run"
        " WHERE business_date BETWEEN {first:Date} AND {last:Date})"
        " AND (org_code, dataset, business_date, batch_version) IN"
        " (SELECT org_code, dataset, business_date, batch_version FROM raw.current_batch"
        " WHERE business_date BETWEEN {first:Date} AND {last:Date})"
        " GROUP BY org_code, dataset, business_date, batch_version, record_key)"
        " SELECT rule, dataset, count() AS failed, countIf(has(blockers, rule)) AS kept_out,"
        " countIf(blockers = [rule]) AS alone"
        " FROM records ARRAY JOIN rules AS rule GROUP BY rule, dataset",
        parameters={"first": first, "last": last},
    ).result_rows
    out: dict[str, dict[str, dict[str, int]]] = defaultdict(dict)
    for rule, dataset, failed, kept_out, alone in rows:
        out[rule][dataset] = {
            "failed": int(failed),
            "kept_out": int(kept_out),
            "kept_out_by_this_rule_alone": int(alone),
        }
    return out


def _dataset_rows(ch: Client, first: dt.date, last: dt.date) -> dict[str, int]:
    """Rows loaded per dataset in the current batches of the validated dates of the period."""
    rows = ch.query(
        "SELECT dataset, sum(rows_loaded) FROM dq.batch FINAL"
        " WHERE business_date BETWEEN {first:Date} AND {last:Date}"
        " AND business_date IN (SELECT business_date FROM dq.current_run"
        " WHERE business_date BETWEEN {first:Date} AND {last:Date})"
        " AND (org_code, dataset, business_date, batch_version) IN"
        " (SELECT org_code, dataset, business_date, batch_version FROM raw.current_batch"
        " WHERE business_date BETWEEN {first:Date} AND {last:Date})"
        " GROUP BY dataset",
        parameters={"first": first, "last": last},
    ).result_rows
    return {dataset: int(n) for dataset, n in rows}


# ---- what a rule reads and reaches ------------------------------------------------------------


def fields_read(rule: Rule, contract_set: Contracts | None = None) -> tuple[str, ...]:
    """The contract fields ('dataset.field') a rule reads: its field, and every parameter
    that names a field of its dataset, or of the dataset a nested parameter names
    ({dataset: patient, field: birth_date})."""
    contract_set = contract_set or contracts()
    found: set[str] = set()

    def known(dataset: str | None, name: Any) -> bool:
        ds = contract_set.datasets.get(dataset) if dataset else None
        return ds is not None and isinstance(name, str) and name in ds.by_name

    def walk(node: Any, dataset: str | None) -> None:
        if isinstance(node, Mapping):
            named = node.get("dataset")
            here = named if isinstance(named, str) and named in contract_set.datasets else dataset
            for key, value in node.items():
                if key == "dataset":
                    continue
                if known(here, key):
                    found.add(f"{here}.{key}")
                walk(value, here)
        elif isinstance(node, list | tuple):
            for value in node:
                walk(value, dataset)
        elif known(dataset, node):
            found.add(f"{dataset}.{node}")

    if rule.dataset and rule.field:
        found.add(f"{rule.dataset}.{rule.field}")
    walk(rule.params, rule.dataset)
    return tuple(sorted(found))


def _reach(rule: Rule) -> str | None:
    if rule.level in ROW_LEVELS:
        return "rows" if rule.severity == "blocking" else "fields"
    return "batches" if rule.dataset else None


def reached_indicators(
    reach: str | None,
    datasets: Sequence[str],
    fields: Sequence[str],
    indicators: Mapping[str, Sequence[str]],
) -> dict[str, tuple[str, ...]]:
    """The indicator columns a rule's failures reach (see the module's docstring), each with
    the datasets through which it reaches them."""
    out: dict[str, tuple[str, ...]] = {}
    for column, sources in sorted(indicators.items()):
        if reach == "fields":
            through = {s.split(".", 1)[0] for s in sources if s in fields}
        elif reach is not None:
            through = {s.split(".", 1)[0] for s in sources} & set(datasets)
        else:
            through = set()
        if through:
            out[column] = tuple(sorted(through))
    return out


# ---- the heuristics ---------------------------------------------------------------------------


def _round(value: float, decimals: int) -> float:
    step = Decimal(1).scaleb(-decimals)
    return float(Decimal(str(value)).quantize(step, rounding=ROUND_HALF_UP))


def _number(value: float | None) -> str:
    return "—" if value is None else f"{value:g}"


def _pct(part: int, whole: int) -> float:
    return 100.0 * part / whole if whole else 0.0


def percentile_threshold(failed_pcts: Sequence[float], percentile: float) -> float | None:
    """The threshold at which at least `percentile` % of these failed results would have
    passed (nearest rank, rounded up to 2 decimals), or None when that is 100 % or more."""
    if not failed_pcts:
        return None
    ordered = sorted(failed_pcts)
    value = ordered[max(0, math.ceil(percentile / 100 * len(ordered)) - 1)]
    threshold = math.ceil(round(value * 100, 6)) / 100
    return threshold if threshold < 100 else None


def suggestion(stats: Mapping[str, Any], config: SuggestionConfig) -> dict[str, Any]:
    """The suggestion for one rule from its period's numbers (the keys of a rule's entry in
    `suggest`'s answer): heuristic, action, weight, threshold and reason (zh, en)."""
    weight, threshold = stats["current_weight"], stats["threshold"]
    bounds = config.weight
    rows = stats.get("rows") or {}
    kept_out = rows.get("kept_out", 0)
    rows_in_period = sum(d["rows_in_period"] for d in stats.get("datasets", []))
    rows_pct = _pct(kept_out, rows_in_period)
    wide, keep_out = config.widespread, config.keeps_rows_out
    suggested, suggested_threshold, action = weight, None, "keep"
    if stats["organisations_judged"] == 0:
        heuristic = "not_judged"
    elif stats["organisations_failed"] == 0:
        heuristic = "never_failed"
    elif (
        stats["organisations_judged"] >= wide.min_organisations
        and _pct(stats["organisations_failed"], stats["organisations_judged"])
        >= wide.organisations_pct
        and _pct(stats["org_days_failed"], stats["org_days_judged"]) >= wide.org_days_pct
    ):
        heuristic, action = "widespread", "lower"
        lowered = _round(weight * wide.weight_factor, bounds.decimals)
        suggested = min(weight, max(bounds.min, min(bounds.max, lowered)))
        if stats["level"] in ROW_LEVELS:
            suggested_threshold = percentile_threshold(
                stats.get("failed_pcts", []), wide.threshold_percentile
            )
    elif (
        stats["severity"] == "blocking"
        and stats["indicators"]["columns"]
        and kept_out >= keep_out.min_rows
        and rows_in_period
        and rows_pct >= keep_out.rows_pct
    ):
        heuristic, action = "keeps_rows_out", "raise"
        raised = _round(weight * keep_out.weight_factor, bounds.decimals)
        suggested = max(weight, min(bounds.max, max(bounds.min, raised)))
    else:
        heuristic = "separates"
    values = {
        "weight": _number(weight),
        "suggested": _number(suggested),
        "orgs_failed": stats["organisations_failed"],
        "orgs_judged": stats["organisations_judged"],
        "org_days_failed": stats["org_days_failed"],
        "org_days_judged": stats["org_days_judged"],
        "rows_kept_out": kept_out,
        "rows_pct": _number(_round(rows_pct, 2)),
        "indicators": len(stats["indicators"]["columns"]),
        "threshold": _number(threshold),
        "suggested_threshold": _number(suggested_threshold),
        "threshold_percentile": _number(wide.threshold_percentile),
    }
    if suggested == weight and suggested_threshold is None:
        action = "keep"  # the bounds leave nothing to change
    template = getattr(config.reasons, heuristic)
    reason = {lang: getattr(template, lang).format_map(values) for lang in ("zh", "en")}
    if suggested_threshold is not None:
        for lang in reason:
            reason[lang] += getattr(config.reasons.threshold, lang).format_map(values)
    return {
        "heuristic": heuristic,
        "action": action,
        "weight": suggested,
        "threshold": suggested_threshold if suggested_threshold is not None else threshold,
        "reason": reason,
    }


# ---- the answer -------------------------------------------------------------------------------


def _overrides(rule_base: RuleBase, rule: Rule) -> list[dict[str, Any]]:
    return [
        {
            "rule": o.rule,
            "org_code": o.org_code,
            "peer_group": o.peer_group,
            "weight": o.weight,
            "threshold": o.threshold,
            "severity": o.severity,
        }
        for o in rule_base.overrides
        if fnmatch.fnmatchcase(rule.id, o.rule)
    ]


def _column_share(
    column: str,
    through: Sequence[str],
    records: Mapping[str, Mapping[str, int]],
    dataset_rows: Mapping[str, int],
    row_level: bool,
) -> dict[str, Any]:
    """One indicator column a rule reaches: the period's rows of the datasets it reaches it
    through (the column's input rows from them, all organisations and months) and how many
    of those the rule failed."""
    input_rows = sum(dataset_rows.get(ds, 0) for ds in through)
    failed = sum(records.get(ds, {}).get("failed", 0) for ds in through) if row_level else None
    return {
        "column": column,
        "through": list(through),
        "input_rows": input_rows,
        "rows_failed": failed,
        "failed_pct": _round(_pct(failed, input_rows), 4) if failed is not None else None,
    }


def _entry(
    rule: Rule,
    rule_base: RuleBase,
    stats: Mapping[str, Any],
    records: Mapping[str, Mapping[str, int]],
    dataset_rows: Mapping[str, int],
    indicators: Mapping[str, Sequence[str]],
    contract_set: Contracts,
    config: SuggestionConfig,
) -> dict[str, Any]:
    rule_type = rule_base.types.get(rule.type)
    named = [rule.dataset] if rule.dataset else []
    datasets = sorted({*named, *stats.get("datasets", []), *records})
    fields = fields_read(rule, contract_set)
    reach = _reach(rule)
    row_level = rule.level in ROW_LEVELS
    entry: dict[str, Any] = {
        "rule_id": rule.id,
        "rule_type": rule.type,
        "section": rule_type.section if rule_type else None,
        "dimension": rule.dimension,
        "level": rule.level,
        "severity": rule.severity,
        "current_weight": rule.weight,
        "threshold": rule.threshold,
        "overrides": _overrides(rule_base, rule),
        "weights_in_results": [float(w) for w in stats.get("weights", [])],
        "description": {"zh": rule.description_zh, "en": rule.description_en},
        "fields": list(fields),
        "organisations_judged": int(stats.get("organisations_judged", 0)),
        "organisations_failed": int(stats.get("organisations_failed", 0)),
        "org_days_judged": int(stats.get("org_days_judged", 0)),
        "org_days_failed": int(stats.get("org_days_failed", 0)),
        "failed_results": int(stats.get("failed_results", 0)),
        "error_results": int(stats.get("error_results", 0)),
        "failed_in_results": int(stats.get("failed_in_results", 0)),
        "rows": (
            {
                key: sum(r[key] for r in records.values())
                for key in ("failed", "kept_out", "kept_out_by_this_rule_alone")
            }
            if row_level
            else None
        ),
        "datasets": [
            {
                "dataset": ds,
                "rows_in_period": dataset_rows.get(ds, 0),
                "rows_failed": records.get(ds, {}).get("failed", 0) if row_level else None,
                "rows_kept_out": records.get(ds, {}).get("kept_out", 0) if row_level else None,
                "failed_pct": (
                    _round(_pct(records.get(ds, {}).get("failed", 0), dataset_rows.get(ds, 0)), 4)
                    if row_level
                    else None
                ),
            }
            for ds in datasets
        ],
        "indicators": {
            "reach": reach,
            "columns": [
                _column_share(column, through, records, dataset_rows, row_level)
                for column, through in reached_indicators(
                    reach, datasets, fields, indicators
                ).items()
            ],
        },
    }
    entry["suggestion"] = suggestion(
        {**entry, "failed_pcts": [float(p) for p in stats.get("failed_pcts", [])]}, config
    )
    return entry


def _order(entry: Mapping[str, Any]) -> tuple:
    return (
        ACTIONS.index(entry["suggestion"]["action"]),
        -entry["org_days_failed"],
        -(entry["rows"] or {}).get("kept_out", 0),
        entry["rule_id"],
    )


def suggest(
    ch: Client,
    first: dt.date,
    last: dt.date,
    *,
    rule_base: RuleBase,
    config: SuggestionConfig,
    indicators: Mapping[str, Sequence[str]],
    contract_set: Contracts | None = None,
) -> dict[str, Any]:
    """Every rule of `rule_base` over the business dates `first`..`last` with its numbers and
    a suggested weight with its reason; raises NothingValidated when no date of the period
    has a current validation run. Reads only; the answer is JSON-able."""
    if first > last:
        raise OperatorError(f"the period starts {first} after it ends {last}")
    dates = _runs(ch, first, last)
    if not dates:
        raise NothingValidated(
            f"nothing validated from {first} to {last}; run `hqlake validate --date D` for "
            "dates of the period first"
        )
    contract_set = contract_set or contracts()
    stats = _result_stats(ch, first, last)
    records = _record_stats(ch, first, last)
    dataset_rows = _dataset_rows(ch, first, last)
    known = {r.id for r in rule_base.rules}
    rules = sorted(
        (
            _entry(
                rule,
                rule_base,
                stats.get(rule.id, {}),
                records.get(rule.id, {}),
                dataset_rows,
                indicators,
                contract_set,
                config,
            )
            for rule in rule_base.rules
        ),
        key=_order,
    )
    actions = {a: sum(r["suggestion"]["action"] == a for r in rules) for a in ACTIONS}
    return {
        "period": {"from": first.isoformat(), "to": last.isoformat()},
        "dates_validated": [d.isoformat() for d in dates],
        "organisations": _organisations(ch, first, last),
        "rules_fingerprints": _fingerprints(ch, first, last),
        "summary": {"rules": len(rules), **actions},
        "heuristics": config.model_dump(exclude={"reasons"}),
        "meaning": MEANING,
        "rules": rules,
        "rules_not_in_rule_base": sorted((set(stats) | set(records)) - known),
    }
