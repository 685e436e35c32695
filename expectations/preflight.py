"""The pre-flight check's judging: the rules a hospital or county can run on its own files
before it uploads them (`hqlake check`; infra.preflight ingests the files into a throwaway
warehouse and calls `judge_batches`).

Judged here with the same rule base, overrides and engines as a validation run:

- the batch rules of `monitoring.LOCAL_BATCH_RULES` (what the batch's own files hold);
- every field and record rule (engine `row_sql`), counted by the same single SQL pass as a
  validation run (`validate.row_counts`), without the Great Expectations double-check.

Not judged: the other rules of the batch and organisation-day engines (receive times,
deadlines, earlier dates: "checked by the platform"), and the cross-dataset rules and any
other engine's (they need other organisations' data or the platform's history: "not run").
A rule that looks up records of another dataset (a visit's patient) sees only the files
checked; the platform also sees those uploaded on earlier dates, and the result says so.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from clickhouse_connect.driver.client import Client

from contracts.loader import contracts
from contracts.pii import mask_key, mask_text
from contracts.registry import Registry
from expectations.engines.monitoring import LOCAL_BATCH_RULES, monitor_date
from expectations.engines.sqlrules import sql_rules
from expectations.rules.results import RuleResult
from expectations.rules.rulebase import Rule, RuleBase, rulebase
from expectations.validate import new_run_id, row_counts

# The engines whose rules are judged per organisation and day by the platform alone.
PLATFORM_ENGINES = ("monitoring", "org_day")


@dataclass
class Preflight:
    """What the check found for one organisation's files of one business date."""

    org_code: str
    business_date: dt.date
    rules_fingerprint: str
    results: list[RuleResult]  # of the batches that were in the files checked
    rules: dict[str, Rule]  # the organisation's effective rules by id
    datasets_checked: list[str]
    datasets_missing: list[str]  # owed by the organisation that day, not among the files
    checked_by_platform: list[str] = field(default_factory=list)  # rule types
    not_run: list[str] = field(default_factory=list)  # rule types

    @property
    def failed(self) -> list[RuleResult]:
        return [r for r in self.results if r.status in ("failed", "error")]

    @property
    def blocking(self) -> list[RuleResult]:
        """Failed rules whose severity keeps the rows out of the EHR models."""
        return [r for r in self.failed if r.severity == "blocking"]

    def public(self, result: RuleResult) -> dict[str, Any]:
        """One result as `hqlake check --format json` prints it (personal data masked)."""
        rule = self.rules[result.rule_id]
        return {
            "rule_id": result.rule_id,
            "rule_type": result.rule_type,
            "dataset": result.dataset,
            "field": rule.field,
            "level": rule.level,
            "dimension": result.dimension,
            "severity": result.severity,
            "weight": result.weight,
            "threshold": result.threshold,
            "checked": result.checked,
            "failed": result.failed,
            "failed_pct": result.failed_pct,
            "status": result.status,
            "sample_keys": [mask_key(result.dataset, k) for k in result.sample_keys],
            "notes": mask_text(result.notes),
            "description": {"zh": rule.description_zh, "en": rule.description_en},
            "fix_hint": {"zh": rule.fix_hint_zh, "en": rule.fix_hint_en},
        }


def _reads_other_datasets(rule: Rule) -> list[str]:
    """The datasets other than its own whose records a rule's parameters look up."""
    found: set[str] = set()

    def walk(value: Any) -> None:
        if isinstance(value, dict):
            other = value.get("dataset")
            if isinstance(other, str) and other != rule.dataset:
                found.add(other)
            for inner in value.values():
                walk(inner)
        elif isinstance(value, list):
            for inner in value:
                walk(inner)

    walk(rule.params)
    return sorted(found)


def _lookup_note(rule: Rule) -> str:
    others = _reads_other_datasets(rule)
    if not others:
        return ""
    return (
        f"looks up {', '.join(others)} records in the files checked only; the platform also"
        " finds those uploaded on earlier dates"
    )


def judge_batches(
    ch: Client,
    registry: Registry,
    day: dt.date,
    org_code: str,
    rb: RuleBase | None = None,
) -> Preflight:
    """Judge the batches of `org_code` for `day` in `ch` (a warehouse holding only the files
    checked) with the rules that need nothing but those files."""
    rb = rb or rulebase()
    org = registry.get(org_code)
    if org is None:
        raise KeyError(org_code)
    rules, fingerprint = rb.effective_rules(org.org_code, org.peer_group)
    by_id = {r.id: r for r in rules}
    run_id = f"check-{new_run_id(day)}"
    present = {
        ds: int(version)
        for ds, version in ch.query(
            "SELECT dataset, batch_version FROM raw.current_batch"
            " WHERE business_date = {d:Date} AND org_code = {org:String}",
            parameters={"d": day, "org": org_code},
        ).result_rows
    }
    owed = sorted(d.dataset for d in contracts().datasets_for(org.kind))
    results = [
        r
        for r in monitor_date(
            ch, registry, rb, day, run_id, org_code=org_code, batch_types=LOCAL_BATCH_RULES
        )
        if r.dataset in present
    ]
    row_rules = [r for r in rules if rb.types[r.type].engine == "row_sql"]
    for dataset in sorted(present):
        chosen = sql_rules(dataset, row_rules)
        if not chosen:
            continue
        found = row_counts(ch, day, dataset, chosen)
        for i, rule_id in enumerate(found.rule_ids):
            rule = by_id[rule_id]
            checked, failed = found.checked_failed(org_code, present[dataset], i)
            results.append(
                RuleResult.of(
                    rule,
                    run_id=run_id,
                    org_code=org_code,
                    dataset=dataset,
                    business_date=day,
                    batch_version=present[dataset],
                    checked=checked,
                    failed=failed,
                    sample_keys=found.samples.get((org_code, present[dataset], rule_id), []),
                    notes=_lookup_note(rule),
                    fingerprint=fingerprint,
                )
            )
    judged = {"row_sql"} | set(PLATFORM_ENGINES)
    return Preflight(
        org_code=org_code,
        business_date=day,
        rules_fingerprint=fingerprint,
        results=sorted(results, key=lambda r: (r.dataset, r.rule_id)),
        rules=by_id,
        datasets_checked=sorted(present),
        datasets_missing=[d for d in owed if d not in present],
        checked_by_platform=[
            t
            for engine in PLATFORM_ENGINES
            for t in rb.types_of(engine)
            if t not in LOCAL_BATCH_RULES
        ],
        not_run=[name for name, t in rb.types.items() if t.engine not in judged],
    )
