"""Stand-ins for dbt and for this project's macros, so sqlfluff's jinja templater renders
the models to representative SQL without a warehouse (the dbt templater would compile with a
live connection, and the embedded chDB only exists inside `hqlake build`).

`var` returns the real values: dbt_project.yml's vars and the contract vars `hqlake build`
passes. The macros render the shape of their real SQL (macros/), which sqlfluff does not lint.
"""

from __future__ import annotations

from pathlib import Path

import yaml

from contracts.loader import contracts

_PROJECT = yaml.safe_load((Path(__file__).parent.parent / "dbt_project.yml").read_text())
_CONTRACTS = contracts()
VARS = {
    **_PROJECT["vars"],
    "hqlake_datasets": {
        name: {"kind": ds.kind, "key": list(ds.key), "fields": ds.field_names, "pii": ds.pii_fields}
        for name, ds in _CONTRACTS.datasets.items()
    },
    "infusion_route_codes": ["2", "3"],
}
execute = False
this = "this_schema.this_model"


def ref(name: str, *args: object, **kwargs: object) -> str:
    return f"ref_schema.{name}"


def source(source_name: str, table: str) -> str:
    return f"{source_name}.{table}"


def config(*args: object, **kwargs: object) -> str:
    return ""


def is_incremental() -> bool:
    return False


def var(name: str, default: object = None) -> object:
    return VARS.get(name, default)


def env_var(name: str, default: str = "") -> str:
    return default or "env_value"


def staged_records(dataset: str) -> str:
    spec = VARS["hqlake_datasets"][dataset]
    columns = []
    for field in spec["fields"]:
        kind = spec["pii"].get(field)
        if kind == "identity":
            columns += [f"{field}_hash", f"{field}_birth_date", f"{field}_sex_code"]
        elif kind == "phone":
            columns.append(f"{field}_hash")
        elif kind == "name":
            columns.append(f"{field}_masked")
        else:
            columns.append(field)
    columns += ["org_code", "record_key", "business_date", "has_dq_warning"]
    return f"select {', '.join(columns)} from raw.{dataset}"  # noqa: S608 (lint stub, never run)


def staging_lineage() -> str:
    return "record_key,\n        business_date,\n        has_dq_warning"


def stale_business_date_filter(column: str) -> str:
    return "1 = 1"


def patients_of(ctes: list[str]) -> str:
    union = " union all ".join("select org_code, patient_id from " + c for c in ctes)  # noqa: S608 (lint stub, never run)
    stub = "select org_code, patient_id, person_key from intermediate.int_patient_person"
    return stub + " where (org_code, patient_id) in (" + union + ")"


def stale_persons(evidence: str) -> str:
    return "select person_key from intermediate.person_evidence_stale"


def ratio(numerator: str, denominator: str, scale: int = 100, digits: int = 2) -> str:
    return f"round({numerator} * {scale} / nullIf({denominator}, 0), {digits})"


def mean_score(expression: str) -> str:
    return f"toFloat64(toString(floor(sum(toDecimal256(toString({expression}), 40)), 2)))"


def rounded_score(expression: str) -> str:
    return f"toFloat64(toString(floor(toDecimal256(toString({expression}), 40), 2)))"


def icd10_who_code(expression: str) -> str:
    return f"upper({expression})"


def age_in_years(birth_date: str, at_date: str) -> str:
    return f"dateDiff('year', {birth_date}, {at_date})"


def sql_tuple(values: list[str]) -> str:
    return "(" + ", ".join(f"'{v}'" for v in values) + ")"


def incremental_by_business_date(order_by: str, pre_hook: list[str] | None = None) -> str:
    return ""


def stale_rows(model: str) -> str:
    return f"select * from ref_schema.{model}"  # noqa: S608 (lint stub, never run)


def same_keys(left: str, right: str, keys: list[str]) -> str:
    return " and ".join(f"{left}.{key} = {right}.{key}" for key in keys)


def person_evidence(
    dataset: str, precedence: int, fields: list[str], county_code: str | None = "org_code"
) -> str:
    return f"select person_key, {precedence} as precedence from ref_schema.stg_raw__{dataset}"  # noqa: S608 (lint stub, never run)


def incremental_latest_by_key(source: str, key: list[str]) -> str:
    return ""


def changed_keys_filter(key: list[str]) -> str:
    return "1"
