"""The rule knowledge base: rule types (contracts/rules.yaml) and rules made from the contracts.

Every rule type names the engine that runs it (`engine` in rules.yaml, checked against the
engines' tables of expectations/engines/registry.py when the knowledge base loads). Most
rules come from the contracts (every required field, key, code system, range, check digit,
event window and record check becomes one); types of the `monitoring` engine become one
rule per dataset, `org_day` types one rule per organisation-day, and cross-dataset rules are
read from cross_dataset.yaml. Overrides in
contracts/rule_overrides.yaml change weight, threshold or severity per organisation or peer
group. `effective_rules` returns what applies to one organisation, with a fingerprint that
identifies the exact rule set, so a result can always be traced to the rules that made it.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
from dataclasses import asdict, dataclass, field, replace
from functools import cache
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from contracts.loader import CONTRACTS_DIR, ContractError, Contracts, contracts
from contracts.yamltext import safe_load

Dimension = Literal["completeness", "timeliness", "correctness", "logic"]
Level = Literal["file", "batch", "field", "record", "cross_dataset", "organisation_day"]
Severity = Literal["blocking", "warning"]

# Field-check rule of a contract -> rule type of the knowledge base.
_FIELD_RULE_TYPES = {
    "min": "min",
    "max": "max",
    "gt": "gt",
    "not_after_business_date": "not_after_business_date",
    "max_age_years": "max_age_years",
    "resident_id": "resident_id",
    "phone": "phone_format",
    "allowed_values": "allowed_values",
    "division_in_county": "division_in_county",
    "exists_in": "reference_exists",
}
_CODE_SYSTEM_TYPES = {
    "icd10": "icd10_valid",
    "icd9cm3": "icd9cm3_format",
    "division": "division_valid",
}
_CROSS_TYPES = {"sex_specific_diagnoses": "sex_specific_diagnosis"}


class _Text(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    zh: str
    en: str


class RuleType(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    dimension: Dimension
    level: Level
    engine: str  # a key of expectations.engines.registry.ENGINES
    # The section of the upload standard that states the type beyond the field rules
    # ("7.1".."7.3", v1.1); None for the rules of sections 3-6. The bench compares
    # validation with and without them.
    section: str | None = None
    severity: Severity = "warning"
    # finite: an infinite weight (YAML .inf) would make scores NaN or stop the arithmetic
    weight: float = Field(default=1, ge=0, allow_inf_nan=False)
    threshold: float = Field(default=0, ge=0, le=100, allow_inf_nan=False)
    notes: str | None = None
    params: dict[str, Any] = Field(default_factory=dict)
    description: _Text
    fix_hint: _Text


class Override(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    rule: str  # a rule id or an fnmatch pattern (outpatient_visit.*)
    org_code: str | None = None
    peer_group: str | None = None
    weight: float | None = Field(default=None, ge=0, allow_inf_nan=False)
    threshold: float | None = Field(default=None, ge=0, le=100, allow_inf_nan=False)
    severity: Severity | None = None
    notes: str


@dataclass(frozen=True)
class Rule:
    id: str
    type: str
    dataset: str | None
    field: str | None
    dimension: str
    level: str
    severity: str
    weight: float
    threshold: float
    params: dict[str, Any]
    description_zh: str
    description_en: str
    fix_hint_zh: str
    fix_hint_en: str


@dataclass(frozen=True)
class RuleBase:
    types: dict[str, RuleType]
    rules: tuple[Rule, ...]
    overrides: tuple[Override, ...]
    # effective_rules per set of overrides in scope: most organisations share one, and a
    # validation asks for every organisation's (the fingerprint serialises every rule)
    _effective: dict[tuple[int, ...], tuple[tuple[Rule, ...], str]] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    def effective_rules(self, org_code: str, peer_group: str) -> tuple[tuple[Rule, ...], str]:
        """The rules for one organisation after overrides, and their fingerprint."""
        scope = tuple(
            n
            for n, o in enumerate(self.overrides)
            if (o.org_code is None or o.org_code == org_code)
            and (o.peer_group is None or o.peer_group == peer_group)
        )
        if scope not in self._effective:
            self._effective[scope] = self._apply([self.overrides[n] for n in scope])
        return self._effective[scope]

    def _apply(self, overrides: list[Override]) -> tuple[tuple[Rule, ...], str]:
        out = []
        for rule in self.rules:
            for o in overrides:
                if fnmatch.fnmatchcase(rule.id, o.rule):
                    rule = replace(
                        rule,
                        weight=rule.weight if o.weight is None else o.weight,
                        threshold=rule.threshold if o.threshold is None else o.threshold,
                        severity=o.severity or rule.severity,
                    )
            out.append(rule)
        return tuple(out), fingerprint(out)

    def types_of(self, engine: str) -> list[str]:
        """The rule types that name `engine`, in the order of rules.yaml."""
        return _of_engine(self.types, engine)

    def without_sections(self) -> RuleBase:
        """The rule base without the types a section of the standard states beyond the field
        rules (`section:` in rules.yaml, section 7 of v1.1): what validation ran before v1.1,
        for measuring what those rules cost."""
        types = {n: t for n, t in self.types.items() if t.section is None}
        return RuleBase(types, tuple(r for r in self.rules if r.type in types), self.overrides)

    def rules_for(self, engine: str) -> tuple[Rule, ...]:
        """The rules whose type names `engine`."""
        return tuple(r for r in self.rules if self.types[r.type].engine == engine)


def fingerprint(rules: list[Rule] | tuple[Rule, ...]) -> str:
    payload = json.dumps(
        [asdict(r) for r in rules], sort_keys=True, ensure_ascii=False, default=str
    )
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def _load_yaml(path: Path) -> Any:
    try:
        return safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise ContractError(f"{path}: cannot read YAML: {exc}") from exc


def _rule(
    types: dict[str, RuleType],
    type_name: str,
    rule_id: str,
    dataset: str | None,
    field: str | None,
    params: dict[str, Any],
    path: Path,
) -> Rule:
    if type_name not in types:
        raise ContractError(f"{path}: rule type {type_name!r} (needed by {rule_id}) is not defined")
    t = types[type_name]
    return Rule(
        id=rule_id,
        type=type_name,
        dataset=dataset,
        field=field,
        dimension=t.dimension,
        level=t.level,
        severity=t.severity,
        weight=t.weight,
        threshold=t.threshold,
        params={**t.params, **params},
        description_zh=t.description.zh,
        description_en=t.description.en,
        fix_hint_zh=t.fix_hint.zh,
        fix_hint_en=t.fix_hint.en,
    )


def _of_engine(types: dict[str, RuleType], engine: str) -> list[str]:
    """The rule types of `engine`, in the order of rules.yaml."""
    return [name for name, t in types.items() if t.engine == engine]


def generate_rules(contract_set: Contracts, types: dict[str, RuleType], path: Path) -> list[Rule]:
    """One rule per checkable statement of the contracts."""
    rules: list[Rule] = []

    def add(
        type_name: str,
        rule_id: str,
        dataset: str | None,
        field: str | None = None,
        params: dict[str, Any] | None = None,
    ) -> None:
        rules.append(_rule(types, type_name, rule_id, dataset, field, params or {}, path))

    per_dataset = _of_engine(types, "monitoring")
    for ds in contract_set.datasets.values():
        name = ds.dataset
        for type_name in per_dataset:
            add(type_name, f"{name}.{type_name}", name)
        for key in ds.key:
            add("unique_key", f"{name}.{key}.unique_key", name, key)
        add("record_not_late", f"{name}.{ds.event}.record_not_late", name, ds.event)
        add("event_not_future", f"{name}.{ds.event}.event_not_future", name, ds.event)
        for f in ds.fields:
            if f.required:
                add("required", f"{name}.{f.name}.required", name, f.name)
            if f.codes:
                system = contract_set.codes[f.codes]
                type_name = _CODE_SYSTEM_TYPES.get(f.codes, "code_in_system")
                params: dict[str, Any] = {"code_system": f.codes}
                if system.codes:
                    params["codes"] = sorted(system.codes)
                if f.separator:
                    params["separator"] = f.separator
                add(type_name, f"{name}.{f.name}.{type_name}", name, f.name, params)
            for i, check in enumerate(f.checks):
                type_name = _FIELD_RULE_TYPES[check.rule]
                suffix = (
                    type_name
                    if sum(c.rule == check.rule for c in f.checks) == 1
                    else (f"{type_name}_{i + 1}")
                )
                extra = {"when": check.when} if check.when else {}
                add(type_name, f"{name}.{f.name}.{suffix}", name, f.name, {**check.params, **extra})
        for check in ds.record_checks:
            extra = {"when": check.when} if check.when else {}
            add(check.rule, f"{name}.{check.id}", name, None, {**check.params, **extra})
    for type_name in _of_engine(types, "org_day"):
        add(type_name, f"org.{type_name}", None)
    for cross_name, spec in contract_set.cross_dataset.items():
        add(_CROSS_TYPES.get(cross_name, cross_name), f"cross.{cross_name}", None, None, spec)
    ids = [r.id for r in rules]
    duplicated = sorted({i for i in ids if ids.count(i) > 1})
    if duplicated:
        raise ContractError(f"{path}: generated rule ids are not unique: {duplicated}")
    return rules


def load_rulebase(root: Path | None = None, contract_set: Contracts | None = None) -> RuleBase:
    root = Path(root) if root else CONTRACTS_DIR
    path = root / "rules.yaml"
    raw = _load_yaml(path)
    defaults = raw.get("defaults", {})
    types: dict[str, RuleType] = {}
    for name, spec in (raw.get("types") or {}).items():
        try:
            types[name] = RuleType.model_validate({**defaults, **spec})
        except ValidationError as exc:
            errors = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
            raise ContractError(f"{path}: rule type {name!r}: {errors}") from None
    # Imported here: the engines import Rule from this module.
    from expectations.engines.registry import check_engines

    check_engines(types, path)
    rules = generate_rules(contract_set or contracts(), types, path)
    overrides_path = root / "rule_overrides.yaml"
    overrides = []
    if overrides_path.exists():
        for i, spec in enumerate(_load_yaml(overrides_path).get("overrides") or []):
            try:
                overrides.append(Override.model_validate(spec))
            except ValidationError as exc:
                raise ContractError(
                    f"{overrides_path}: override {i}: {exc.errors()[0]['msg']}"
                ) from None
            if not any(fnmatch.fnmatchcase(r.id, overrides[-1].rule) for r in rules):
                raise ContractError(
                    f"{overrides_path}: override {i}: {spec['rule']!r} matches no rule"
                )
    return RuleBase(types, tuple(rules), tuple(overrides))


@cache
def rulebase() -> RuleBase:
    return load_rulebase()
