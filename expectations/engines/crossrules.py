"""Cross-dataset rules (upload standard, section 5) as ClickHouse SQL: one query per rule.

Every rule whose type names the `cross_sql` engine (contracts/rules.yaml; parameters from
contracts/cross_dataset.yaml) judges the rows of ONE dataset (the judged dataset) against
other datasets. `cross_query` builds the query of a rule for business date D; `run_cross` runs
them and returns one result per (organisation, judged dataset, batch version, rule) in the
shape of `sqlrules.run_dataset`, plus every failing record key (`keys`, for dq.record_issue),
the SQL (`query`) and a short explanation (`notes`). ClickHouse evaluates every textual
occurrence of a subquery on its own: what a rule reads in several places (e.g. the persons of
D's rows) is a `_Part.shared` subquery, computed once per query as a materialized WITH, or,
with `run_cross(..., temporary_tables=True)`, built first as a temporary table of the
client's session (`_as_tables`: the same rows with less planning); in that form the queries
also read a copy of `raw.current_batch` made once per call (`_BATCHES_COPY`) instead of the
view, which is evaluated again at every reference.

What the rules read is fixed so that a business date gets the same answer whenever it is
judged: only current batch versions (`raw.current_batch`) and only business dates <= D, never
the clock. Identity numbers are compared trimmed and upper-cased; a person's hospital record
is the latest row (business date, version, file, line) of `patient` for that organisation
and patient_id, and a county health record likewise per organisation and record_id. Record
keys are the judged dataset's key fields (`sqlrules.record_key`), never an identity number.

no_activity_after_death (judged: outpatient_visit, inpatient_discharge, prescription)
    Rows of D's batches whose patient (same organisation) has an identity number registered
    dead (death_registration of any organisation) with a death date before the date of the
    activity. checked = rows whose person is resolved (patient row with an identity number)
    and whose activity time is filled; failed = those dated after the death date.

A row's diagnoses are every field its contract marks `diagnosis` (outpatient_visit
diagnosis_code; inpatient_discharge principal_dx_code and each code of other_dx_codes), read
through one helper, `_row_diagnoses`, by every rule about diagnoses.

sex_specific_diagnosis (judged: the hospital datasets with diagnosis fields)
    Rows of D's batches with a diagnosis in a sex-specific range of the parameters
    ("O00-O99": the code's first three characters in that range; "C61": the code starts with
    it) for the other sex than the patient's (same organisation). checked = rows with at
    least one sex-specific code and a known patient sex (1 or 2); a failing key's detail
    names the field and code that disagree.

followup_disease_on_record (judged: chronic_followup)
    The contracts give the health record no disease field, so "on record" means the person's
    hospital diagnoses: follow-up -> health record of the same county (record_id) -> identity
    number -> patient rows of any hospital with that number -> the diagnoses of every row
    that carries the patient's key, business date <= D. The links are read from the
    contracts: the dataset keyed by the follow-up's record field, the hospital dataset holding
    an identity number (`pii: identity`), and the diagnosis fields. A diagnosis matches when
    its code starts with the disease code (I10 matches I10 and I10.x00). checked = follow-ups
    with a disease whose health record resolves to an identity number; failed = no matching
    diagnosis.

death_closes_health_record (judged: death_registration)
    On D the deaths of the death_registration batches of D - within_days are judged, each
    death once, within_days after it was uploaded: failed = no health record (any county,
    current batches, business date <= D) with that identity number and the closing status.
    The result rows are those of the organisation's death_registration batch of D (version 0
    when it has a batch on D - within_days but none on D); checked is 0 without a batch on
    D - within_days.

Section 7.1 (v1.1), the 病案首页 rules on inpatient_discharge (parameters in
cross_dataset.yaml; the fee sum is a row_sql record check, sum_not_above):

principal_dx_not_external_cause
    Rows of D's batches whose principal diagnosis (the `judged` field among _row_diagnoses)
    falls in an external-cause range ("V01-Y98", ICD-10 chapter XX, compared on the first
    three characters, so V01.0 and Y98 are in it and U07, Y99 and Z00 are not). checked = rows
    with a principal diagnosis; the detail names the field and code.

diagnosis_not_repeated
    Rows of D's batches with a code that occurs twice among _row_diagnoses (principal first,
    then the other diagnoses in order): the detail names every repeated occurrence.
    checked = rows with at least one diagnosis.

age_specific_diagnosis
    Rows of D's batches with a diagnosis in an age-specific range whose patient's age at
    admission (completed years between the birth date of the latest patient row of the same
    organisation, business date <= D, and the local date of the admission time) lies outside
    the range's inclusive min_years..max_years. checked = rows with an age-specific code and
    a known age; the detail names the field, code and age.

inpatient_death_registered
    On D the discharges of the batches of D - judged_after_days with the died-in-hospital
    discharge method are judged: failed = the person (latest patient row of the hospital with
    the resident identity type and a number) has no death registration (any county, current
    batches, business date <= D) whose death date is within within_days of the discharge
    date. Each judged row belongs to the registering county: the county of the organisation
    registry (`run_cross(..., registry)`) whose county code is the first county_digits digits
    of the patient's address division, or of the identity number when the address is blank;
    rows without such a county are not judged. Results are filed under the county's
    death_registration batch of D (version 0 when it has none); a failing key is
    "<hospital org_code> <admission_id>", never the identity number.

Section 7.2 (v1.1), one person across organisations. "Person": the resident identity number
(patient.id_no with id_type 01, or the county datasets' id_no), normalised as above; a
hospital row reaches it through the latest patient row (any batch <= D) of the same
organisation and patient_id.

person_demographics_agree (judged: patient for hospitals, health_record for counties)
    Who holds a person: per organisation and person (id type, number), the latest values of
    the compared fields and the first upload (business date, receipt). The person of a patient
    row is its (id_type, id_no): a passport number is a person of its own, compared on
    `compare_always` (name) and `compare_other_id_types` (birth date, sex); for id type 01
    only the name is compared, as the number carries birth date and sex (id_agrees). The
    reference value of a field: among the reference dataset's organisations (the counties)
    when one holds the person, otherwise among all holders, the value most organisations
    sent, ties to the earliest first upload (then the smaller value, so the choice is
    total). Counties are therefore judged only against each other (a county with the person
    alone is its own reference); hospitals against the counties, or against each other when
    no county holds the person. Judged: D's rows whose person at least `min_organisations`
    organisations hold; failed = a compared field, filled on both sides, differs from the
    reference. checked = D's rows with an identity number, whether or not another
    organisation holds the person (a count of held rows would tell the uploader which of
    its persons another organisation holds). The detail names the field ("name differs
    from the reference record"), never a value or another organisation. Only persons named
    by D's rows are read (by their identity numbers, whatever the id type).

stay_overlap_same_org, stay_overlap_other_org (judged: inpatient_discharge)
    D's stays of patients with a resident identity number, against every current stay
    (business date <= D, the latest row per organisation and admission) of the same person:
    at the same hospital, or at another. failed = an overlap of [admit_time, discharge_time]
    longer than max_overlap_hours (exactly that many passes); a stay is never compared with
    itself (its own key re-sent). Stays with discharge not after admission are not checked
    (discharge_before_admit is their rule). The detail names the hospital's own other stay
    (of those overlapping by more than the limit, the one discharged last, then the largest
    key), or "a stay at another organisation" without its code or data. Overlaps are found by
    a sorted pass per person (`_sweep`), n log n however many stays one person has. Across
    hospitals both are told on the date the overlap becomes knowable: when both stays come on
    the same D, each with its own batch; when they come on different dates, on D (the later
    stay's date) the later hospital with its batch and the earlier hospital under its earlier
    stay's own key (its result filed under its inpatient_discharge batch of D, version 0 when
    it has none; the row of D carries it through _Part org/key, as inpatient_death_registered
    does). The earlier stay is told once: not when it is itself in its hospital's batch of D
    (then it is judged there), nor when the later stay's current version before D already
    overlapped it (a re-send, or a correction that keeps the overlap); several stays of D
    overlapping it tell it once. Its key, never in its hospital's batch of D, marks no row of
    the marts.

record_not_resent (judged: every dataset except `updated_by_design`)
    A record key of D's current batch that the same organisation loaded for an earlier
    business date (its current version) is re-sent; blocking, so staging leaves the row out
    (dbt/macros/staging.sql) while raw keeps it. A new version of D itself is a correction.
    The master datasets (patient, health_record) are updated by design: their later rows
    are the current state ("latest row wins" in `_latest` and the marts).

Section 7.3 (v1.1), plausibility over time (parameters in cross_dataset.yaml; the money
level shift needs peers and the calendar and runs in levelshift.py, the volume spike in
monitoring.py):

copied_readings (judged: chronic_followup; upload standard 7.3)
    A follow-up's reading is (sbp, dbp) for I10 or fasting_glucose for E11 (the `readings`
    parameter: disease -> fields). The follow-ups of one organisation, record_id and disease
    (current batches, business date <= D, one row per key: the latest arrival, so a re-sent
    follow-up is not a copy of itself) are ordered by followup_date, then key; a run is a
    stretch of consecutive follow-ups with the same reading (a blank reading breaks it).
    checked = D's rows with a reading filled; failed = those that are the min_run-th (3rd)
    or later follow-up of a run. The detail names the fields and the run length so far,
    never a value.

implausible_workload (judged: each dataset of the `workload` parameter; standard 7.3)
    Rows per (organisation = county, doctor, event date of the dataset's contract, e.g.
    followup_date), counted over current batches with business date <= D, one row per key
    (the latest arrival), for the doctor-dates that D's rows name. checked = D's rows with a
    doctor and an event date; failed = those of a doctor-date with more than max_per_day
    rows. The detail names the doctor id (not personal data in the contracts), the date and
    the count.
"""

# This module generates SQL text by design; every piece comes from the contracts and rule
# parameters through quote()/ident(), none from uploaded data (see sqlrules).
# ruff: noqa: S608

from __future__ import annotations

import datetime as dt
import logging
import re
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

from clickhouse_connect.driver.client import Client

from contracts.loader import contracts
from contracts.model import Dataset
from contracts.registry import Registry
from expectations.engines.sqlrules import (
    CURRENT_BATCH,
    RuleSQLError,
    _age_years,
    batches_from,
    batches_table,
    current_rows,
    ident,
    keyed_result,
    quote,
    record_key,
)
from expectations.rules.rulebase import Rule

log = logging.getLogger(__name__)

# join_use_nulls: a row without a match reads NULL, not the type's default ('' or 0), so
# "no such person" is never mistaken for a value. query_plan_filter_push_down = 0: pushing a
# WHERE into these nested subqueries made ClickHouse 26.9 evaluate the pushed side again;
# measured on the bench's 1 M-row day, the join of 7,306 judged stays with 7,566 stays of the
# same persons took 16.0 s with it and 2.2 s without, and every cross rule was as fast or faster
# (all rules: 50.9 s -> 14.9 s on a busy machine).
_SETTINGS = "join_use_nulls = 1, query_plan_filter_push_down = 0"
_ICD10_CATEGORY = re.compile(r"^[A-Z][0-9]{2}$")
_ICD10_PREFIX = re.compile(r"^[A-Z][0-9]{2}(\.[0-9A-Z]+)?$")
# Rows of a history table in the order of their arrival: the last one is the current state.
_ARRIVAL = "(r.business_date, r.batch_version, r.source_file, r.source_line)"


# --------------------------------------------------------------------------- building blocks


def _day(day: dt.date) -> str:
    return f"toDate({quote(day.isoformat())})"


def _norm(expr: str) -> str:
    """An identity number or a code as compared: trimmed, upper case."""
    return f"upperUTF8(trimBoth({expr}))"


def _dataset(name: str) -> Dataset:
    try:
        return contracts().dataset(name)
    except KeyError as exc:
        raise RuleSQLError(str(exc)) from None


def _col(ds: Dataset, name: str, alias: str = "r") -> str:
    if name not in ds.by_name:
        raise RuleSQLError(f"{ds.dataset} has no field {name!r}")
    return f"{alias}.{ident(name)}"


def _as_date(ds: Dataset, name: str, alias: str = "t") -> str:
    col = _col(ds, name, alias)
    return col if ds.by_name[name].type == "date" else f"toDate32({col})"


def _latest(
    master: Dataset,
    key: str,
    value: str,
    dates: str,
    among: str | None = None,
    hashes: str | None = None,
) -> str:
    """Per organisation and `key` of `master`: the `value` (an expression on alias r) of the
    latest current row with business_date `dates`, as (org_code, k, v); `among` restricts
    the (org_code, key) pairs looked up (a subquery returning such pairs); `hashes`, the
    _pair_hash of the same pairs, narrows them first (a PREWHERE on a UInt64 set, a fifth of
    the cost of a tuple of strings IN a set; the exact `among` decides)."""
    k = _col(master, key)
    only = f" AND (r.org_code, {k}) IN ({among})" if among else ""
    first = f" PREWHERE {_pair_hash('r.org_code', k)} IN ({hashes})" if hashes else ""
    return (
        f"SELECT r.org_code AS org_code, {k} AS k, argMax({value}, {_ARRIVAL}) AS v"
        f" FROM raw.{ident(master.dataset)} AS r{first}"
        f" WHERE {current_rows(master.dataset, dates)} AND {k} IS NOT NULL{only}"
        f" GROUP BY org_code, k"
    )


def _pair_hash(org: str, key: str) -> str:
    """A UInt64 of (organisation, key) to narrow a lookup before its exact (org, key) IN."""
    return f"cityHash64(toString({org}), ifNull(toString({key}), ''))"


def _named(judged: Dataset, key: str, day: dt.date, hashed: bool = False) -> str:
    """(org_code, key) pairs the judged rows of `day` name: what a lookup needs to read;
    `hashed`: their _pair_hash instead."""
    pair = f"r.org_code, {_col(judged, key)}"
    if hashed:
        pair = _pair_hash("r.org_code", _col(judged, key))
    return (
        f"SELECT {pair} FROM raw.{ident(judged.dataset)} AS r WHERE r.business_date = {_day(day)}"
    )


def _identity(ds: Dataset) -> str:
    found = [f.name for f in ds.fields if f.pii == "identity"]
    if len(found) != 1:
        raise RuleSQLError(f"{ds.dataset} has {len(found)} identity-number fields, need one")
    return found[0]


@dataclass(frozen=True)
class _Part:
    """The rows one rule judges in one dataset, as expressions on alias t after `joins`."""

    dataset: Dataset
    checked: str
    failed: str  # only counted where checked
    joins: str = ""
    judged_day_offset: int = 0  # judge the batches of D - offset (death_closes_health_record)
    detail: str = "''"  # what of a failing row failed, e.g. the field and code; '' for none
    # Whose result a row is, when not the uploader's (inpatient_death_registered: the county
    # an expression names, '' for none; stay_overlap_other_org: the earlier hospital of a
    # stay the row overlaps): the org_code expression, the dataset the result is filed under
    # and the record key of a failing row.
    org: str = "t.org_code"
    result_dataset: Dataset | None = None
    key: str | None = None
    # Subqueries several places of the rule read, or costly to plan inline, as (name,
    # SELECT): computed once per query (a materialized WITH of cross_query, or a temporary
    # table, _as_tables) and read by name; parts may share one by name.
    shared: tuple[tuple[str, str], ...] = ()


def _part_query(part: _Part, day: dt.date) -> str:
    """rows, checked, failed and every failing key per organisation; one row per current
    batch of D of the judged dataset (and, for a judged day before D, per organisation with
    a batch that day: batch_version 0 when it has none on D)."""
    ds, owner = part.dataset, part.result_dataset or part.dataset
    d, judged_day = _day(day), _day(day - dt.timedelta(days=part.judged_day_offset))
    rows = (
        f"SELECT {part.org} AS org_code, {part.key or record_key(ds)} AS _key,"
        f" ifNull({part.checked}, 0) AS is_checked,"
        f" is_checked AND ifNull({part.failed}, 0) AS is_failed,"
        f" if(is_failed, {part.detail}, '') AS _detail"
        f" FROM (SELECT * FROM raw.{ident(ds.dataset)} AS r"
        f" WHERE {current_rows(ds.dataset, f'= {judged_day}')}) AS t {part.joins}"
    )
    if part.org != "t.org_code":
        rows = f"SELECT * FROM ({rows}) WHERE org_code != ''"
    judged = (
        f"SELECT org_code, count() AS n_rows, countIf(is_checked) AS n_checked,"
        f" countIf(is_failed) AS n_failed,"
        f" arraySort(groupArrayIf((_key, _detail), is_failed)) AS failing,"
        f" arrayMap(x -> x.1, failing) AS keys, arrayMap(x -> x.2, failing) AS details"
        f" FROM ({rows}) GROUP BY org_code"
    )
    batches = (
        f"SELECT org_code, maxIf(batch_version, business_date = {d}) AS batch_version"
        f" FROM {batches_table()} WHERE dataset = {quote(owner.dataset)}"
        f" AND business_date IN ({d}, {judged_day}) GROUP BY org_code"
    )
    # the owners judged (also those other than the uploaders, when a part names the owner):
    # their batch of D, else version 0. A full join, not a union with the judged owners: a
    # second textual occurrence of `judged` would be evaluated again.
    other_owners = owner is not ds or part.org != "t.org_code"
    return (
        f"SELECT {quote(owner.dataset)} AS dataset,"
        f" {'ifNull(c.org_code, a.org_code)' if other_owners else 'c.org_code'} AS org_code,"
        f" ifNull(c.batch_version, 0) AS batch_version, ifNull(a.n_rows, 0) AS rows,"
        f" ifNull(a.n_checked, 0) AS checked, ifNull(a.n_failed, 0) AS failed, a.keys AS keys,"
        f" a.details AS details"
        f" FROM ({batches}) AS c {'FULL' if other_owners else 'LEFT'} JOIN ({judged}) AS a"
        f" ON a.org_code = c.org_code"
    )


# --------------------------------------------------------------------------- the four rules


def _no_activity_after_death(p: dict, day: dt.date) -> list[_Part]:
    death, link = p["death"], p["person_link"]
    deaths_ds, master = _dataset(death["dataset"]), _dataset(link["dataset"])
    upto = f"<= {_day(day)}"
    death_id, death_date = _col(deaths_ds, death["id_field"]), _col(deaths_ds, death["date_field"])
    deaths = (
        f"SELECT {_norm(death_id)} AS id_no, min({death_date}) AS death_date"
        f" FROM raw.{ident(deaths_ds.dataset)} AS r WHERE {current_rows(deaths_ds.dataset, upto)}"
        f" AND {death_id} IS NOT NULL AND {death_date} IS NOT NULL GROUP BY id_no"
    )
    key = link["key"]
    parts = []
    for activity in p["activity"]:
        ds = _dataset(activity["dataset"])
        person = _latest(
            master, key, _norm(_col(master, link["id_field"])), upto, _named(ds, key, day)
        )
        joins = (
            f"LEFT JOIN ({person}) AS p ON p.org_code = t.org_code AND p.k = {_col(ds, key, 't')}"
            f" LEFT JOIN ({deaths}) AS dd ON dd.id_no = p.v"
        )
        when = _as_date(ds, activity["time_field"])
        parts.append(
            _Part(ds, f"p.v != '' AND {when} IS NOT NULL", f"{when} > dd.death_date", joins)
        )
    return parts


def _code_condition(code: str, spec: str) -> str:
    """`code` (normalised) falls in a parameter range "O00-O99" or starts with "C61"."""
    low, _, high = (x.strip().upper() for x in spec.partition("-"))
    if high:
        if not (_ICD10_CATEGORY.match(low) and _ICD10_CATEGORY.match(high)):
            raise RuleSQLError(f"not an ICD-10 category range: {spec!r}")
        return f"substring({code}, 1, 3) BETWEEN {quote(low)} AND {quote(high)}"
    if not _ICD10_PREFIX.match(low):
        raise RuleSQLError(f"not an ICD-10 code: {spec!r}")
    return f"startsWith({code}, {quote(low)})"


def _row_diagnoses(ds: Dataset, alias: str) -> str:
    """The diagnoses of a row of `ds` (alias `alias`): an array of (field, code) tuples, one
    per non-blank code of every field the contract marks `diagnosis`, lists split.

    This is the one definition of "a row's diagnoses" (upload standard section 5, v1.1) that
    every rule about diagnoses reads."""
    parts = []
    for f in ds.diagnosis_fields:
        col = f"ifNull({_col(ds, f.name, alias)}, '')"
        if f.separator:
            parts.append(
                f"arrayMap(x -> ({quote(f.name)}, {_norm('x')}),"
                f" splitByString({quote(f.separator)}, {col}))"
            )
        else:
            parts.append(f"[({quote(f.name)}, {_norm(col)})]")
    if not parts:
        raise RuleSQLError(f"{ds.dataset} has no diagnosis field")
    return f"arrayFilter(d -> d.2 != '', arrayConcat({', '.join(parts)}))"


def _diagnosed_datasets(kind: str, key: str) -> list[Dataset]:
    """Datasets of `kind` with diagnosis fields that name a patient by `key`."""
    return [
        ds for ds in contracts().datasets_for(kind) if ds.diagnosis_fields and key in ds.by_name
    ]


def _sex_specific_diagnosis(p: dict, day: dt.date) -> list[_Part]:
    link = p["person_link"]
    master, key = _dataset(link["dataset"]), link["key"]
    sexes = sorted({str(r["sex"]) for r in p["rules"]})
    branches = [
        f"{' OR '.join(_code_condition('d.2', c) for c in r['codes'])}, {quote(str(r['sex']))}"
        for r in p["rules"]
    ]
    required = f"multiIf({', '.join(branches)}, NULL)"
    known = f"p.v IN ({', '.join(map(quote, sexes))})"
    parts = []
    for ds in _diagnosed_datasets(master.kind, key):
        specific = f"arrayFilter(d -> {required} IS NOT NULL, {_row_diagnoses(ds, 't')})"
        wrong = f"arrayFilter(d -> {required} != p.v, {specific})"
        sex = _latest(
            master, key, _col(master, link["sex_field"]), f"<= {_day(day)}", _named(ds, key, day)
        )
        joins = f"LEFT JOIN ({sex}) AS p ON p.org_code = t.org_code AND p.k = {_col(ds, key, 't')}"
        parts.append(
            _Part(
                ds,
                f"notEmpty({specific}) AND {known}",
                f"notEmpty({wrong})",
                joins,
                detail=f"arrayStringConcat(arrayMap(d -> concat(d.1, ' ', d.2), {wrong}), '; ')",
            )
        )
    return parts


def _hospital_persons() -> Dataset:
    """The hospital dataset that holds a patient's identity number (patient)."""
    found = [
        d
        for d in contracts().datasets_for("hospital")
        if any(f.pii == "identity" for f in d.fields)
    ]
    if len(found) != 1 or len(found[0].key) != 1:
        raise RuleSQLError("need exactly one hospital dataset with an identity number and one key")
    return found[0]


def _record_master(followup: Dataset, record_field: str) -> Dataset:
    """The dataset of the follow-up's kind keyed by `record_field` (health_record)."""
    found = [d for d in contracts().datasets_for(followup.kind) if d.key == (record_field,)]
    if len(found) != 1:
        raise RuleSQLError(f"no single {followup.kind} dataset is keyed by {record_field!r}")
    return found[0]


def _diagnoses(persons: Dataset, upto: str) -> str:
    """(org_code, k, code): every diagnosis of the rows that name a patient by the persons
    dataset's key."""
    key = persons.key[0]
    selects = [
        f"SELECT r.org_code AS org_code, {_col(ds, key)} AS k, d.2 AS code"
        f" FROM raw.{ident(ds.dataset)} AS r ARRAY JOIN {_row_diagnoses(ds, 'r')} AS d"
        f" WHERE {current_rows(ds.dataset, upto)}"
        for ds in _diagnosed_datasets(persons.kind, key)
        if ds.dataset != persons.dataset
    ]
    if not selects:
        raise RuleSQLError(f"no diagnosis field names a patient by {key!r}")
    return " UNION ALL ".join(selects)


def _followup_disease_on_record(p: dict, day: dt.date) -> list[_Part]:
    spec = p["followup"]
    ds = _dataset(spec["dataset"])
    record_field, disease = spec["record_field"], _norm(_col(ds, spec["disease_field"], "t"))
    records, persons = _record_master(ds, record_field), _hospital_persons()
    upto = f"<= {_day(day)}"
    number = _norm(_col(records, _identity(records)))
    record = _latest(records, record_field, number, upto, _named(ds, record_field, day))
    numbers = f"SELECT v FROM ({record})"
    person = _latest(persons, persons.key[0], _norm(_col(persons, _identity(persons))), upto)
    diagnosed = (
        f"SELECT pp.v AS id_no, groupUniqArray(dx.code) AS codes"
        f" FROM ({_diagnoses(persons, upto)}) AS dx"
        f" INNER JOIN (SELECT * FROM ({person}) WHERE v IN ({numbers})) AS pp"
        f" ON pp.org_code = dx.org_code AND pp.k = dx.k GROUP BY id_no"
    )
    joins = (
        f"LEFT JOIN ({record}) AS h ON h.org_code = t.org_code"
        f" AND h.k = {_col(ds, record_field, 't')}"
        f" LEFT JOIN ({diagnosed}) AS dg ON dg.id_no = h.v"
    )
    return [
        _Part(
            ds,
            f"{disease} != '' AND h.v != ''",
            f"NOT arrayExists(x -> startsWith(x, {disease}), dg.codes)",
            joins,
        )
    ]


def _death_closes_health_record(p: dict, day: dt.date) -> list[_Part]:
    death, rec = p["death"], p["record"]
    ds, records = _dataset(death["dataset"]), _dataset(rec["dataset"])
    number, status = _col(records, rec["id_field"]), _col(records, rec["status_field"])
    closed = (
        f"SELECT {_norm(number)} FROM raw.{ident(records.dataset)} AS r"
        f" WHERE {current_rows(records.dataset, f'<= {_day(day)}')} AND {number} IS NOT NULL"
        f" AND {status} = {quote(str(rec['status']))}"
    )
    person = _norm(_col(ds, death["id_field"], "t"))
    return [
        _Part(
            ds,
            f"{person} != ''",
            f"{person} NOT IN ({closed})",
            judged_day_offset=int(p["within_days"]),
        )
    ]


_LISTED = 20  # (field, code) pairs a detail names; a longer list ends "; and N more"


def _listed(found: str) -> str:
    """A failing row's detail: each (field, code) of `found` as "field code", '; '-joined,
    the first _LISTED of them (an upload's list of codes may be 64 KiB long)."""
    return (
        f"concat(arrayStringConcat(arrayMap(d -> concat(d.1, ' ', d.2),"
        f" arraySlice({found}, 1, {_LISTED})), '; '),"
        f" if(length({found}) > {_LISTED},"
        f" concat('; and ', toString(length({found}) - {_LISTED}), ' more'), ''))"
    )


def _principal_dx_not_external_cause(p: dict, day: dt.date) -> list[_Part]:
    judged = p["judged"]
    ds, name = _dataset(judged["dataset"]), judged["field"]
    if name not in {f.name for f in ds.diagnosis_fields}:
        raise RuleSQLError(f"{ds.dataset}.{name} is not a diagnosis field")
    principal = f"arrayFilter(d -> d.1 = {quote(name)}, {_row_diagnoses(ds, 't')})"
    external = " OR ".join(_code_condition("d.2", c) for c in p["codes"])
    wrong = f"arrayFilter(d -> {external}, {principal})"
    return [_Part(ds, f"notEmpty({principal})", f"notEmpty({wrong})", detail=_listed(wrong))]


def _diagnosis_not_repeated(p: dict, day: dt.date) -> list[_Part]:
    ds = _dataset(p["judged"]["dataset"])
    dx = _row_diagnoses(ds, "t")
    # an occurrence whose code already appeared earlier in the row (principal first): its
    # occurrence number among equal codes is above 1. Linear in the list, as a lambda that
    # captured the whole list would copy it for every element (64 KiB of codes: 32 GiB).
    repeated = f"arrayFilter((d, n) -> n > 1, {dx}, arrayEnumerateUniq(arrayMap(x -> x.2, {dx})))"
    return [_Part(ds, f"notEmpty({dx})", f"notEmpty({repeated})", detail=_listed(repeated))]


def _age_specific_diagnosis(p: dict, day: dt.date) -> list[_Part]:
    judged, link = p["judged"], p["person_link"]
    ds, master, key = _dataset(judged["dataset"]), _dataset(link["dataset"]), link["key"]
    birth = _latest(
        master,
        key,
        _as_date(master, link["birth_field"], "r"),
        f"<= {_day(day)}",
        _named(ds, key, day),
        _named(ds, key, day, hashed=True),
    )
    at = _as_date(ds, judged["at_field"])
    age = _age_years("p.v", at)
    specific, outside = [], []
    for r in p["rules"]:
        codes = " OR ".join(_code_condition("d.2", c) for c in r["codes"])
        bounds = [f"{age} >= {int(r['min_years'])}"] if "min_years" in r else []
        bounds += [f"{age} <= {int(r['max_years'])}"] if "max_years" in r else []
        if not bounds:
            raise RuleSQLError(f"age rule for {r['codes']} has neither min_years nor max_years")
        specific.append(codes)
        outside += [codes, f"NOT ({' AND '.join(bounds)})"]
    dx = _row_diagnoses(ds, "t")
    found = f"arrayFilter(d -> {' OR '.join(f'({c})' for c in specific)}, {dx})"
    wrong = f"arrayFilter(d -> multiIf({', '.join(outside)}, 0), {found})"
    joins = f"LEFT JOIN ({birth}) AS p ON p.org_code = t.org_code AND p.k = {_col(ds, key, 't')}"
    return [
        _Part(
            ds,
            f"notEmpty({found}) AND p.v IS NOT NULL AND {at} IS NOT NULL",
            f"notEmpty({wrong})",
            joins,
            detail=f"concat({_listed(wrong)}, '; age ', toString({age}))",
        )
    ]


def _inpatient_death_registered(p: dict, day: dt.date, registry: Registry) -> list[_Part]:
    spec, death, link = p["discharge"], p["death"], p["person_link"]
    ds, deaths_ds = _dataset(spec["dataset"]), _dataset(death["dataset"])
    master, key = _dataset(link["dataset"]), link["key"]
    upto, offset = f"<= {_day(day)}", int(p["judged_after_days"])
    digits = int(p["county_digits"])
    arrival = _ARRIVAL
    persons = (
        f"SELECT r.org_code AS org_code, {_col(master, key)} AS k,"
        f" argMax({_col(master, link['id_type_field'])}, {arrival}) AS id_type,"
        f" argMax({_norm(_col(master, link['id_field']))}, {arrival}) AS id_no,"
        f" argMax(trimBoth(ifNull({_col(master, link['division_field'])}, '')), {arrival})"
        f" AS division"
        f" FROM raw.{ident(master.dataset)} AS r WHERE {current_rows(master.dataset, upto)}"
        f" AND {_col(master, key)} IS NOT NULL"
        f" AND (r.org_code, {_col(master, key)}) IN"
        f" ({_named(ds, key, day - dt.timedelta(days=offset))})"
        f" GROUP BY org_code, k"
    )
    death_id, death_date = _col(deaths_ds, death["id_field"]), _col(deaths_ds, death["date_field"])
    deaths = (
        f"SELECT {_norm(death_id)} AS id_no, groupArray({death_date}) AS dates"
        f" FROM raw.{ident(deaths_ds.dataset)} AS r WHERE {current_rows(deaths_ds.dataset, upto)}"
        f" AND {death_id} IS NOT NULL AND {death_date} IS NOT NULL GROUP BY id_no"
    )
    counties: dict[str, str] = {}
    for org in sorted(registry.organisations.values(), key=lambda o: o.org_code):
        if org.kind == "county":
            counties.setdefault(org.county_code[:digits], org.org_code)
    division = f"substring(if(pp.division != '', pp.division, pp.id_no), 1, {digits})"
    county = (
        f"transform({division}, [{', '.join(map(quote, counties))}],"
        f" [{', '.join(map(quote, counties.values()))}], '')"
        if counties
        else "''"
    )
    joins = (
        f"LEFT JOIN ({persons}) AS pp ON pp.org_code = t.org_code"
        f" AND pp.k = {_col(ds, key, 't')}"
        f" LEFT JOIN ({deaths}) AS dd ON dd.id_no = pp.id_no"
    )
    discharged = _as_date(ds, spec["time_field"])
    method = _col(ds, spec["method_field"], "t")
    hospital_key = f"concat(t.org_code, ' ', {record_key(ds)})"
    return [
        _Part(
            ds,
            f"{method} = {quote(str(spec['died']))}"
            f" AND pp.id_type = {quote(str(link['id_type']))} AND pp.id_no != ''"
            f" AND {discharged} IS NOT NULL",
            f"NOT arrayExists(x -> abs(dateDiff('day', x, {discharged}))"
            f" <= {int(p['within_days'])}, dd.dates)",
            joins,
            judged_day_offset=offset,
            detail=f"concat({hospital_key}, ' discharged ', toString({discharged}))",
            org=f"ifNull({county}, '')",
            result_dataset=deaths_ds,
            key=hospital_key,
        )
    ]


def _death_registered_notes(p: dict, day: dt.date, rows: int, checked: int) -> str:
    judged = day - dt.timedelta(days=int(p["judged_after_days"]))
    return (
        f"judged {p['judged_after_days']} days after upload: {checked} in-hospital deaths"
        f" discharged in batches of {judged} whose person and registering county are known;"
        f" death registrations up to {day}"
    )


# --------------------------------------------------------------------------- section 7.2


def _number_of(ds: Dataset, spec: dict, alias: str) -> str:
    """The identity number a row of `ds` names, normalised ('' for none)."""
    return _norm(f"ifNull({_col(ds, spec['id_field'], alias)}, '')")


def _person_of(ds: Dataset, spec: dict, resident: str, alias: str) -> str:
    """The person a row of `ds` names: (id type, identity number normalised); a dataset
    without an id type field holds resident identity numbers."""
    number = _number_of(ds, spec, alias)
    if "id_type_field" in spec:
        kind = f"ifNull(trimBoth({_col(ds, spec['id_type_field'], alias)}), '')"
    else:
        kind = quote(resident)
    return f"tuple({kind}, {number})"


def _text(ds: Dataset, name: str, alias: str) -> str:
    """A demographic value as compared: text, spaces trimmed, '' for NULL."""
    return f"trimBoth(ifNull(toString({_col(ds, name, alias)}), ''))"


def _person_demographics_agree(p: dict, day: dt.date) -> list[_Part]:
    resident, upto, d = str(p["resident_id_type"]), f"<= {_day(day)}", _day(day)
    always, others = list(p["compare_always"]), list(p["compare_other_id_types"])
    holders = [(_dataset(s["dataset"]), s) for s in p["persons"]]
    # The identity numbers D's rows name, whatever their id type: a superset of D's persons
    # that only adds persons no row of D is compared with. A tuple (type, number) IN a set
    # costs three times a string IN (measured on the bench's 1 M-row day).
    named = " UNION ALL ".join(
        f"SELECT {_number_of(ds, s, 'r')} AS id_no FROM raw.{ident(ds.dataset)} AS r"
        f" WHERE r.business_date = {d}"
        for ds, s in holders
    )
    # one row per organisation and person: its latest values (one argMax of them all) and
    # its first upload
    fields = always + others
    held = " UNION ALL ".join(
        f"SELECT r.org_code AS org_code, {_person_of(ds, s, resident, 'r')} AS person,"
        f" {1 if s.get('reference') else 0} AS is_reference,"
        f" argMax(tuple({', '.join(_text(ds, f, 'r') for f in fields)}), {_ARRIVAL}) AS _latest,"
        + "".join(f" _latest.{i} AS {ident(f)}," for i, f in enumerate(fields, 1))
        # (business date, receipt) as one number in the same order: a tuple's min is slow
        + f" min(bitShiftLeft(toUInt64(r.business_date), 32) + toUInt32(r.received_at))"
        f" AS first_upload"
        f" FROM raw.{ident(ds.dataset)} AS r WHERE {current_rows(ds.dataset, upto)}"
        f" AND {_number_of(ds, s, 'r')} IN ({named})"
        f" GROUP BY org_code, person"
        for ds, s in holders
    )
    shared = [("demographics_held", held)]

    # Per person that at least min_organisations organisations hold, and per field, the
    # reference value: among the reference dataset's holders when one holds the person, the
    # value most organisations sent, then the earliest upload, then the smaller value (the
    # first of the sorted (-is_reference, -n, first, v) of the filled values). One GROUP BY
    # person and array functions over its holders (one per organisation and dataset, so a
    # few): a third cheaper than grouping by (person, field, value) three times. Rows of
    # held are one per organisation and person of one dataset: where no two datasets share
    # the reference flag, the organisations of a value are counted by its rows.
    flags = [bool(s.get("reference")) for _, s in holders]
    one_each = len(set(flags)) == len(flags)
    picks = []
    for i, _ in enumerate(fields, 4):  # x: (is_reference, first_upload, org_code, fields...)
        filled = f"arrayFilter(x -> x.{i} != '', hs)"
        same = f"arrayFilter(y -> y.1 = x.1 AND y.{i} = x.{i}, {filled})"
        n = f"length({same})"
        if not one_each:
            n = f"length(arrayDistinct(arrayMap(y -> y.3, {same})))"
        ranked = (
            f"arrayMap(x -> (-toInt16(x.1), -toInt64({n}), arrayMin(y -> y.2, {same}), x.{i}),"
            f" {filled})"
        )
        picks.append(f"arraySort({ranked})[1].4")  # '' when no holder filled the field
    references = (
        f"SELECT person, mapFromArrays([{', '.join(map(quote, fields))}], [{', '.join(picks)}])"
        f" AS values FROM (SELECT person, groupArray((is_reference, first_upload, org_code,"
        f" {', '.join(map(ident, fields))})) AS hs FROM demographics_held GROUP BY person"
        f" HAVING uniqExact(org_code) >= {int(p['min_organisations'])})"
    )
    shared.append(("demographics_references", references))
    parts = []
    for ds, s in holders:
        person = _person_of(ds, s, resident, "t")
        # references are computed only for persons min_organisations hold, and a field
        # fails only against a filled reference value: a match of ref is that test (no join
        # of demographics_holders here)
        joins = f" LEFT JOIN demographics_references AS ref ON ref.person = {person}"
        differs = []
        for name in always + others:
            value, expected = _text(ds, name, "t"), f"ref.values[{quote(name)}]"
            wrong = f"({value} != '' AND {expected} != '' AND {value} != {expected})"
            if name in others:
                wrong = f"(tupleElement({person}, 1) != {quote(resident)} AND {wrong})"
            differs.append((name, wrong))
        failed = " OR ".join(w for _, w in differs)
        detail = (
            "arrayStringConcat(arrayFilter(x -> x != '', ["
            + ", ".join(
                f"if({w}, {quote(name + ' differs from the reference record')}, '')"
                for name, w in differs
            )
            + "]), '; ')"
        )
        # checked does not depend on other organisations: a count of rows "held elsewhere"
        # would tell the uploader which of its persons another organisation holds
        parts.append(
            _Part(
                ds,
                f"tupleElement({person}, 2) != ''",
                failed,
                joins,
                detail=detail,
                shared=tuple(shared),
            )
        )
    return parts


def _overlap(a: str, b: str) -> str:
    """Seconds the stays (start_at, end_at) of aliases a and b overlap (negative: apart)."""
    return (
        f"dateDiff('second', greatest({a}.start_at, {b}.start_at), least({a}.end_at, {b}.end_at))"
    )


def _longer(alias: str, limit: int) -> str:
    """The stay of `alias` lasts more than `limit` seconds (NULL times: no)."""
    return f"ifNull(dateDiff('second', {alias}.start_at, {alias}.end_at) > {limit}, 0)"


def _secs(at: str) -> str:
    """A time as seconds, not Nullable (the stays compared have both times): a comparison
    with NULL would be NULL, and a window's maxIf of no row is 0."""
    return f"ifNull(toInt64({at}), 0)"


def _sweep(events: str, queries: str, top: str) -> str:
    """The sorted pass that finds overlaps without comparing every pair of stays.

    Two stays overlap by more than L seconds exactly when each lasts more than L, the one
    (event) starts more than L before the other (query) ends, and it ends more than L after
    the other starts. So per partition (person, part), events (columns pos = start, reach =
    end) and queries (pos = end - L, need = start + L) are read in order of pos, queries
    before events at an equal pos; `top` is a window aggregate over the events read so far
    (an -If aggregate on is_event): the query rows come out with it as `top`. Sorting is
    n log n per person, however many stays one person has (a hostile upload of 20,000
    stays of one person, which a pair join makes 400 million pairs)."""
    frame = (
        "PARTITION BY person, part ORDER BY pos, is_event"
        " ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW"
    )
    return (
        f"SELECT * FROM (SELECT *, {top} OVER ({frame}) AS top"
        f" FROM ({events} UNION ALL {queries})) WHERE NOT is_event"
    )


def _event_row(person: str, part: str, start: str, end: str, tag: str) -> str:
    """The columns of a sweep row for a stay read as an event."""
    return (
        f"{person} AS person, {part} AS part, {_secs(start)} AS pos, toUInt8(1) AS is_event,"
        f" {_secs(end)} AS reach, {tag} AS tag"
    )


def _stay_overlaps(p: dict, day: dt.date, same_org: bool) -> list[_Part]:
    """Per stay of D: whether it overlaps another current stay of the same person by more
    than max_overlap_hours, at the same hospital or at another one (a sorted pass, _sweep)."""
    spec, link = p["stays"], p["person_link"]
    ds, master = _dataset(spec["dataset"]), _dataset(link["dataset"])
    if len(ds.key) != 1:
        raise RuleSQLError(f"{ds.dataset}: a stay needs a single key field")
    upto, d, key = f"<= {_day(day)}", _day(day), link["key"]
    resident = quote(str(p["resident_id_type"]))
    number = _norm(f"ifNull({_col(master, link['id_field'])}, '')")
    resident_row = f"ifNull(trimBoth({_col(master, link['id_type_field'])}), '') = {resident}"
    person = f"if({resident_row}, {number}, '')"
    # the persons of D's stays: the patient history narrowed by the keys' _pair_hash first
    # (a PREWHERE on a UInt64 set; on the bench's day 0.09 -> 0.05 s as a temporary step)
    shared = [
        (
            "stay_judged_persons",
            _latest(master, key, person, upto, _named(ds, key, day), _named(ds, key, day, True)),
        )
    ]
    judged_persons = "SELECT * FROM stay_judged_persons"
    numbers = f"SELECT v FROM ({judged_persons}) WHERE v != ''"
    among = (
        f"SELECT r.org_code, {_col(master, key)} FROM raw.{ident(master.dataset)} AS r"
        f" WHERE {current_rows(master.dataset, upto)} AND {number} IN ({numbers})"
    )
    shared.append(
        (
            "stay_persons",
            f"SELECT * FROM ({_latest(master, key, person, upto, among)}) WHERE v IN ({numbers})",
        )
    )
    persons = "SELECT * FROM stay_persons"
    stay_key, start, end = (
        _col(ds, ds.key[0]),
        _col(ds, spec["start_field"]),
        _col(ds, spec["end_field"]),
    )
    stays = (
        f"SELECT r.org_code AS org_code, {stay_key} AS k,"
        f" argMax({_col(ds, key)}, {_ARRIVAL}) AS pid,"
        f" argMax({start}, {_ARRIVAL}) AS start_at, argMax({end}, {_ARRIVAL}) AS end_at"
        f" FROM raw.{ident(ds.dataset)} AS r WHERE {current_rows(ds.dataset, upto)}"
        f" AND (r.org_code, {_col(ds, key)}) IN (SELECT org_code, k FROM ({persons}))"
        f" GROUP BY org_code, k"
    )
    located = (
        f"SELECT s.org_code AS org_code, s.k AS k, pp.v AS person, s.start_at AS start_at,"
        f" s.end_at AS end_at FROM ({stays}) AS s INNER JOIN ({persons}) AS pp"
        f" ON pp.org_code = s.org_code AND pp.k = s.pid"
        f" WHERE s.start_at IS NOT NULL AND s.end_at > s.start_at"
    )
    shared.append(("stay_located", located))
    located = "SELECT * FROM stay_located"
    judged = (
        f"SELECT r.org_code AS org_code, {stay_key} AS k, jp.v AS person, {start} AS start_at,"
        f" {end} AS end_at, r.source_file AS file, r.source_line AS line"
        f" FROM raw.{ident(ds.dataset)} AS r INNER JOIN ({judged_persons}) AS jp"
        f" ON jp.org_code = r.org_code AND jp.k = {_col(ds, key)}"
        f" WHERE {current_rows(ds.dataset, f'= {d}')} AND jp.v != ''"
        f" AND r.{ident(spec['start_field'])} IS NOT NULL AND end_at > start_at"
    )
    shared.append(("stay_judged", judged))
    judged = "SELECT * FROM stay_judged"
    limit = round(float(p["max_overlap_hours"]) * 3600)
    t_key = _col(ds, ds.key[0], "t")
    joins = (
        f"LEFT JOIN ({judged_persons}) AS tp ON tp.org_code = t.org_code"
        f" AND tp.k = {_col(ds, key, 't')}"
    )
    told = "ifNull(tw.told, 0) = 1"
    # What each rule finds is a step of its own too: read once, but as subqueries of the
    # rules' query it made that query the most expensive of all to plan (0.19 s before any
    # row on the bench's day; 0.04 s as steps)
    if same_org:
        shared.append(("stay_same_org_overlaps", _same_org_overlaps(judged, located, limit)))
        joins += (
            " LEFT JOIN stay_same_org_overlaps AS ov"
            f" ON ov.org_code = t.org_code AND ov.k = {t_key}"
        )
    else:
        told_earlier = _told_earlier(ds, spec, judged, located, limit, day, shared)
        shared.append(("stay_told_earlier", told_earlier))
        joins += (
            " LEFT JOIN stay_told_earlier AS tw"
            f" ON tw.org_code = t.org_code AND tw.k = {t_key}"
            " AND tw.file = t.source_file AND tw.line = t.source_line"
        )
    hours = quote(f"{p['max_overlap_hours']:g}")
    if same_org:
        detail = f"concat('overlaps stay ', ov.other, ' by more than ', {hours}, ' h')"
    else:
        detail = f"concat('overlaps a stay at another organisation by more than ', {hours}, ' h')"
    checked = (
        f"tp.v != '' AND {_col(ds, spec['start_field'], 't')} IS NOT NULL"
        f" AND {_col(ds, spec['end_field'], 't')} > {_col(ds, spec['start_field'], 't')}"
    )
    if same_org:
        return [_Part(ds, checked, "ov.overlapping", joins, detail=detail, shared=tuple(shared))]
    # A row of D also carries, as extra rows, the earlier stays of other hospitals it is the
    # first to overlap: each is that hospital's failing record, under its own key.
    return [
        _Part(
            ds,
            f"{told} OR ({checked})",
            f"{told} OR tw.overlapping",
            joins,
            detail=detail,
            org=f"if({told}, tw.whose, t.org_code)",
            key=f"if({told}, tw.whose_key, {record_key(ds)})",
            shared=tuple(shared),
        )
    ]


def _same_org_overlaps(judged: str, located: str, limit: int) -> str:
    """stay_overlap_same_org per (org_code, k) of D: `overlapping` (1: another stay of the
    same hospital and person, not its own key, overlaps a row of D with that key by more than
    `limit` seconds) and `other`, the key of such a stay: of those, the one discharged last
    (then the largest key).

    The sorted pass of _sweep, where the event discharged last so far (the leader) may be the
    row's own key: so the pass also keeps the best event other than the leader, as the
    leader before the current one took over (`before_lead` of the row where it did) or the
    best event since then. Keys are unique per hospital among the located stays."""
    tag = "ifNull(toString(k), '')"  # not Nullable: a comparison with NULL would be NULL
    events = (
        f"SELECT {_event_row('person', 'org_code', 'start_at', 'end_at', tag)},"
        f" NULL AS own, toInt64(0) AS need FROM ({located}) AS o"
        f" WHERE {_longer('o', limit)} AND k IS NOT NULL"
    )
    queries = (
        f"SELECT person, org_code AS part, {_secs('end_at')} - {limit} AS pos,"
        f" toUInt8(0) AS is_event, toInt64(0) AS reach, '' AS tag, k AS own,"
        f" {_secs('start_at')} + {limit} AS need FROM ({judged}) AS j"
        f" WHERE {_longer('j', limit)} AND k IS NOT NULL"
    )
    order = "ORDER BY pos, is_event, tag"
    upto = "ROWS BETWEEN UNBOUNDED PRECEDING AND"
    frame = f"PARTITION BY person, part {order}"
    best = "maxIf((reach, tag), is_event)"
    leads = (
        f"SELECT *, {best} OVER ({frame} {upto} CURRENT ROW) AS lead,"
        f" {best} OVER ({frame} {upto} 1 PRECEDING) AS before_lead,"
        f" is_event AND lead != before_lead AS takes_over"
        f" FROM ({events} UNION ALL {queries})"
    )
    reigns = f"SELECT *, sum(takes_over) OVER ({frame} {upto} CURRENT ROW) AS reign FROM ({leads})"
    reign = f"PARTITION BY person, part, reign {order}"
    seconds = (
        f"SELECT *, maxIf((reach, tag), is_event AND NOT takes_over)"
        f" OVER ({reign} {upto} CURRENT ROW) AS rest,"
        f" first_value(before_lead) OVER ({reign} {upto} CURRENT ROW) AS deposed"
        f" FROM ({reigns})"
    )
    partners = (
        f"SELECT part, own, need,"
        f" if(lead.2 != ifNull(toString(own), ''), lead, if(deposed > rest, deposed, rest))"
        f" AS partner"
        f" FROM ({seconds}) WHERE NOT is_event"
    )
    return (
        f"SELECT part AS org_code, own AS k, toUInt8(1) AS overlapping,"
        f" max(partner.2) AS other FROM ({partners}) WHERE partner.1 > need"
        f" GROUP BY org_code, k"
    )


def _told_earlier(
    ds: Dataset,
    spec: dict,
    judged: str,
    located: str,
    limit: int,
    day: dt.date,
    shared: list[tuple[str, str]],
) -> str:
    """stay_overlap_other_org per row of D, to join on (org_code, k, file, line): the row
    itself (told = 0) with `overlapping` (1: a stay of another hospital overlaps it by more
    than `limit` seconds), then (told = 1) the earlier stays of other hospitals told on D, as
    (whose, whose_key), each once, carried by the smallest row of D of the same person.

    An earlier stay is told on D when it is not in its hospital's batch of D (a stay of D is
    judged itself), a stay of D of another hospital overlaps it by more than `limit` seconds
    and that stay's current version before D (if any) did not: so an overlap reaches the
    earlier hospital once, on the date it becomes knowable. Both questions are sorted passes
    (_sweep) over each person's stays, one partition per other hospital; only stays of D
    whose version before D could itself have overlapped (it lasted more than `limit`: a
    correction) are compared pair by pair with the other hospitals' stays."""
    d, stay_key = _day(day), _col(ds, ds.key[0])
    of_d = (
        f"SELECT r.org_code, {stay_key} FROM raw.{ident(ds.dataset)} AS r"
        f" WHERE {current_rows(ds.dataset, f'= {d}')}"
    )
    shared.append(("stay_of_d", of_d))
    of_d = "SELECT * FROM stay_of_d"
    before = (
        f"SELECT r.org_code AS org_code, {stay_key} AS k,"
        f" argMax({_col(ds, spec['start_field'])}, {_ARRIVAL}) AS start_at,"
        f" argMax({_col(ds, spec['end_field'])}, {_ARRIVAL}) AS end_at"
        f" FROM raw.{ident(ds.dataset)} AS r WHERE {current_rows(ds.dataset, f'< {d}')}"
        f" AND (r.org_code, {stay_key}) IN ({of_d}) GROUP BY org_code, k"
    )
    # the hospitals holding stays of each person: a stay is compared with another hospital's
    # in that hospital's partition
    orgs = f"SELECT person, groupUniqArray(org_code) AS orgs FROM ({located}) GROUP BY person"
    shared.append(("stay_orgs", orgs))
    orgs = "SELECT * FROM stay_orgs"
    jrow = "(j.org_code, j.k, j.file, j.line)"
    # (1) the row of D against the other hospitals' stays
    # (the events carry a jrow of the same type as a placeholder: located stays have no line)
    events = (
        f"SELECT {_event_row('person', 'org_code', 'start_at', 'end_at', 'k')},"
        f" (o.org_code, o.k, '', toUInt32(0)) AS jrow, toInt64(0) AS need FROM ({located}) AS o"
        f" WHERE {_longer('o', limit)}"
    )
    queries = (
        f"SELECT j.person AS person, g AS part, {_secs('j.end_at')} - {limit} AS pos,"
        f" toUInt8(0) AS is_event, toInt64(0) AS reach, j.k AS tag, {jrow} AS jrow,"
        f" {_secs('j.start_at')} + {limit} AS need"
        f" FROM ({judged}) AS j INNER JOIN ({orgs}) AS h ON h.person = j.person"
        f" ARRAY JOIN h.orgs AS g WHERE g != j.org_code AND {_longer('j', limit)}"
    )
    own = (
        f"SELECT jrow, toUInt8(max(top > need)) AS overlapping"
        f" FROM ({_sweep(events, queries, 'maxIf(reach, is_event)')}) GROUP BY jrow"
    )
    # (2) the earlier stays told: by a row of D whose version before D cannot have
    # overlapped them (none, blank times, or not longer than the limit) ...
    marked = (
        f"SELECT j.*, {_longer('b', limit)} AS corrected, b.start_at AS b_start,"
        f" b.end_at AS b_end FROM ({judged}) AS j"
        f" LEFT JOIN ({before}) AS b ON b.org_code = j.org_code AND b.k = j.k"
    )
    shared.append(("stay_marked", marked))
    marked = "SELECT * FROM stay_marked"
    telling = (
        f"SELECT {_event_row('j.person', 'g', 'j.start_at', 'j.end_at', 'j.k')},"
        f" toInt64(0) AS need FROM ({marked}) AS j INNER JOIN ({orgs}) AS h"
        f" ON h.person = j.person ARRAY JOIN h.orgs AS g"
        f" WHERE g != j.org_code AND NOT j.corrected AND {_longer('j', limit)}"
    )
    earlier = (
        f"SELECT o.person AS person, o.org_code AS part, {_secs('o.end_at')} - {limit} AS pos,"
        f" toUInt8(0) AS is_event, toInt64(0) AS reach, o.k AS tag,"
        f" {_secs('o.start_at')} + {limit} AS need FROM ({located}) AS o"
        f" WHERE {_longer('o', limit)} AND (o.org_code, o.k) NOT IN ({of_d})"
    )
    by_new = (
        f"SELECT person, part AS whose, tag AS k"
        f" FROM ({_sweep(telling, earlier, 'maxIf(reach, is_event)')}) WHERE top > need"
    )
    # ... or by a corrected row of D whose version before D did not overlap them
    by_corrected = (
        f"SELECT o.person AS person, o.org_code AS whose, o.k AS k"
        f" FROM (SELECT * FROM ({marked}) WHERE corrected) AS j"
        f" INNER JOIN ({located}) AS o ON o.person = j.person"
        f" WHERE o.org_code != j.org_code AND {_overlap('j', 'o')} > {limit}"
        f" AND (o.org_code, o.k) NOT IN ({of_d})"
        f" AND NOT ifNull(dateDiff('second', greatest(j.b_start, o.start_at),"
        f" least(j.b_end, o.end_at)) > {limit}, 0)"
    )
    carriers = f"SELECT person, min({jrow}) AS jrow FROM ({judged}) AS j GROUP BY person"
    told = (
        f"SELECT c.jrow AS jrow, toUInt8(0) AS overlapping, toUInt8(1) AS told, w.whose AS whose,"
        f" ifNull(toString(w.k), '') AS whose_key"
        f" FROM (SELECT DISTINCT * FROM ({by_new} UNION ALL {by_corrected})) AS w"
        f" INNER JOIN ({carriers}) AS c ON c.person = w.person"
    )
    rows = (
        f"SELECT {jrow} AS jrow, ifNull(s.overlapping, 0) AS overlapping, toUInt8(0) AS told,"
        f" '' AS whose, '' AS whose_key FROM ({judged}) AS j"
        f" LEFT JOIN ({own}) AS s ON s.jrow = {jrow} UNION ALL {told}"
    )
    return (
        f"SELECT jrow.1 AS org_code, jrow.2 AS k, jrow.3 AS file, jrow.4 AS line, overlapping,"
        f" told, whose, whose_key FROM ({rows})"
    )


def _stay_overlap_same_org(p: dict, day: dt.date) -> list[_Part]:
    return _stay_overlaps(p, day, same_org=True)


def _stay_overlap_other_org(p: dict, day: dt.date) -> list[_Part]:
    return _stay_overlaps(p, day, same_org=False)


def _record_not_resent(p: dict, day: dt.date) -> list[_Part]:
    exempt = set(p["updated_by_design"])
    unknown = exempt - set(contracts().datasets)
    if unknown:
        raise RuleSQLError(f"updated_by_design names unknown datasets {sorted(unknown)}")
    d = _day(day)
    parts = []
    for name in sorted(contracts().datasets):
        if name in exempt:
            continue
        ds = _dataset(name)
        table, key = f"raw.{ident(name)}", record_key(ds, "r.")
        of_d = f"FROM {table} AS r WHERE r.business_date = {d}"
        if len(ds.key) == 1:
            # Only the earlier rows whose raw key D's rows also have (a cheap set; a blank key,
            # NULL or '', is compared as ''): the row of D itself matches organisation and key.
            col = _col(ds, ds.key[0])
            among = f"ifNull(toString({col}), '') = '' OR {col} IN (SELECT {col} {of_d})"
        else:
            among = f"(r.org_code, {key}) IN (SELECT r.org_code, {key} {of_d})"
        # PREWHERE: the key column alone is read for every earlier row, the others only for
        # the few that match (half the time of a WHERE on the bench's lab_result)
        sent = (
            f"SELECT r.org_code, {key} FROM {table} AS r PREWHERE {among}"
            f" WHERE {current_rows(name, f'< {d}')}"
        )
        parts.append(_Part(ds, "1", f"(t.org_code, {record_key(ds)}) IN ({sent})"))
    return parts


def _latest_per_key(ds: Dataset, columns: str, upto: str, among: str) -> str:
    """`columns` (expressions on alias r, each `AS` a name) of the current rows of `ds` with
    business_date `upto`, restricted by `among` (a condition on r), one row per organisation
    and record key: the latest arrival, so a record sent again is counted once."""
    return (
        f"SELECT r.org_code AS org_code, {record_key(ds, 'r.')} AS k, {columns}"
        f" FROM raw.{ident(ds.dataset)} AS r"
        f" WHERE {current_rows(ds.dataset, upto)} AND {among}"
        f" ORDER BY {_ARRIVAL} DESC LIMIT 1 BY org_code, k"
    )


def _copied_readings(p: dict, day: dt.date) -> list[_Part]:
    spec = p["followup"]
    ds = _dataset(spec["dataset"])
    record, disease = _col(ds, spec["record_field"]), _norm(_col(ds, spec["disease_field"]))
    order, min_run = _col(ds, spec["order_field"]), int(p["min_run"])
    readings, labels = [], []
    for item in p["readings"]:
        cols = [_col(ds, f) for f in item["fields"]]
        filled = " AND ".join(f"{c} IS NOT NULL" for c in cols)
        text = ", '/', ".join(f"toString({c})" for c in cols)
        code = quote(str(item["disease"]).strip().upper())
        readings.append(f"{disease} = {code}, if({filled}, concat({text}), NULL)")
        labels.append(f"{disease} = {code}, {quote(', '.join(item['fields']))}")
    if not readings:
        raise RuleSQLError("copied_readings: no readings")
    named = f"(r.org_code, {record}) IN ({_named(ds, spec['record_field'], day)})"
    rows = _latest_per_key(
        ds,
        f"{record} AS rid, {disease} AS dis, {order} AS ord,"
        f" multiIf({', '.join(readings)}, NULL) AS reading,"
        f" multiIf({', '.join(labels)}, '') AS label",
        f"<= {_day(day)}",
        named,
    )
    frame = "PARTITION BY org_code, rid, dis ORDER BY ord, k"
    unbounded = "ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW"
    starts = (
        f"SELECT *, reading IS NULL OR prev IS NULL OR reading != prev AS is_start FROM"
        f" (SELECT *, lagInFrame(reading) OVER ({frame} {unbounded}) AS prev FROM ({rows}))"
    )
    numbered = f"SELECT *, sum(is_start) OVER ({frame} {unbounded}) AS run_no FROM ({starts})"
    runs = (
        f"SELECT org_code, k, reading, label,"
        f" row_number() OVER (PARTITION BY org_code, rid, dis, run_no ORDER BY ord, k) AS pos"
        f" FROM ({numbered})"
    )
    joins = f"LEFT JOIN ({runs}) AS cr ON cr.org_code = t.org_code AND cr.k = {record_key(ds)}"
    return [
        _Part(
            ds,
            "cr.reading IS NOT NULL",
            f"cr.pos >= {min_run}",
            joins,
            detail=(
                "concat(cr.label, ' identical in ', toString(cr.pos), ' consecutive follow-ups')"
            ),
        )
    ]


def _implausible_workload(p: dict, day: dt.date) -> list[_Part]:
    parts = []
    for item in p["workload"]:
        ds = _dataset(item["dataset"])
        doctor, when = _col(ds, item["doctor_field"]), _as_date(ds, ds.event, "r")
        limit = int(item["max_per_day"])
        of_day = current_rows(ds.dataset, f"= {_day(day)}")
        named = (
            f"(r.org_code, {doctor}, {when}) IN (SELECT r.org_code, {doctor}, {when}"
            f" FROM raw.{ident(ds.dataset)} AS r WHERE {of_day})"
        )
        rows = _latest_per_key(
            ds, f"{doctor} AS doctor, {when} AS event_date", f"<= {_day(day)}", named
        )
        counts = (
            f"SELECT org_code, doctor, event_date, count() AS n FROM ({rows})"
            f" GROUP BY org_code, doctor, event_date"
        )
        t_doctor, t_when = _col(ds, item["doctor_field"], "t"), _as_date(ds, ds.event, "t")
        joins = (
            f"LEFT JOIN ({counts}) AS w ON w.org_code = t.org_code AND w.doctor = {t_doctor}"
            f" AND w.event_date = {t_when}"
        )
        parts.append(
            _Part(
                ds,
                f"{t_doctor} != '' AND {t_when} IS NOT NULL",
                f"w.n > {limit}",
                joins,
                detail=(
                    f"concat({quote(item['doctor_field'] + ' ')}, w.doctor, ': ', toString(w.n),"
                    f" ' rows on ', toString(w.event_date), ' (at most {limit})')"
                ),
            )
        )
    return parts


def _counted(what: str) -> Callable[[dict, dt.date, int, int], str]:
    """Notes "<checked> of <rows> <what> <D>"."""
    return lambda _p, day, rows, checked: f"{checked} of {rows} {what} {day}"


def _death_notes(p: dict, day: dt.date, rows: int, checked: int) -> str:
    judged = day - dt.timedelta(days=int(p["within_days"]))
    return (
        f"judged {p['within_days']} days after upload: {checked} of {rows} deaths"
        f" registered on {judged} had an identity number; health records up to {day}"
    )


@dataclass(frozen=True)
class CrossRule:
    """How the `cross_sql` engine runs one rule type: the datasets and rows it judges
    (from the rule's parameters and D), and the notes of a result (parameters, D, rows of
    the judged batch, rows checked)."""

    parts: Callable[..., list[_Part]]  # (params, D), and the registry with `registry`
    notes: Callable[[dict, dt.date, int, int], str]
    registry: bool = False  # the rule needs the organisation registry (counties)


# The `cross_sql` engine: rule type -> how its rules are run.
CROSS_RULES: dict[str, CrossRule] = {
    "no_activity_after_death": CrossRule(
        _no_activity_after_death,
        _counted("rows linked to a person; deaths registered up to"),
    ),
    "sex_specific_diagnosis": CrossRule(
        _sex_specific_diagnosis,
        _counted("rows with a sex-specific diagnosis and a known sex; as of"),
    ),
    "followup_disease_on_record": CrossRule(
        _followup_disease_on_record,
        _counted("follow-ups linked to a person; diagnoses up to"),
    ),
    "death_closes_health_record": CrossRule(_death_closes_health_record, _death_notes),
    # section 7.1 (v1.1): 病案首页 rules on inpatient_discharge
    "principal_dx_not_external_cause": CrossRule(
        _principal_dx_not_external_cause,
        _counted("rows with a principal diagnosis; as of"),
    ),
    "diagnosis_not_repeated": CrossRule(
        _diagnosis_not_repeated, _counted("rows with a diagnosis; as of")
    ),
    "age_specific_diagnosis": CrossRule(
        _age_specific_diagnosis,
        _counted("rows with an age-specific diagnosis and a known age; birth dates up to"),
    ),
    "inpatient_death_registered": CrossRule(
        _inpatient_death_registered, _death_registered_notes, registry=True
    ),
    # section 7.2 (v1.1): one person across organisations
    "person_demographics_agree": CrossRule(
        _person_demographics_agree,
        _counted("rows with an identity number; persons held by two or more organisations up to"),
    ),
    "stay_overlap_same_org": CrossRule(
        _stay_overlap_same_org,
        _counted("stays linked to a person; stays of the same hospital up to"),
    ),
    "stay_overlap_other_org": CrossRule(
        _stay_overlap_other_org,
        _counted(
            "stays linked to a person (D's, and this hospital's earlier stays that a stay of D"
            " at another organisation is the first to overlap); stays of other hospitals up to"
        ),
    ),
    "record_not_resent": CrossRule(
        _record_not_resent,
        _counted("records; keys loaded for business dates before"),
    ),
    # section 7.3 (v1.1): plausibility over time
    "copied_readings": CrossRule(
        _copied_readings,
        _counted("follow-ups with a reading; earlier follow-ups up to"),
    ),
    "implausible_workload": CrossRule(
        _implausible_workload,
        _counted("rows with a doctor and an event date; rows counted up to"),
    ),
}


def _parts(rule: Rule, day: dt.date, registry: Registry | None) -> list[_Part]:
    if rule.type not in CROSS_RULES:
        raise RuleSQLError(f"{rule.id}: not a cross-dataset rule this module knows")
    spec = CROSS_RULES[rule.type]
    if spec.registry and registry is None:
        raise RuleSQLError(f"{rule.id}: needs the organisation registry")
    try:
        if spec.registry:
            return spec.parts(rule.params, day, registry)
        return spec.parts(rule.params, day)
    except (KeyError, TypeError) as exc:
        raise RuleSQLError(f"{rule.id}: parameter missing or malformed: {exc}") from None


# --------------------------------------------------------------------------- public API


def _union(rule: Rule, day: dt.date, registry: Registry | None) -> tuple[str, dict[str, str]]:
    """The parts of a rule as one UNION ALL, and the subqueries they share by name."""
    parts = _parts(rule, day, registry)
    union = " UNION ALL ".join(_part_query(part, day) for part in parts)
    shared: dict[str, str] = {}
    for name, select in (item for part in parts for item in part.shared):
        if shared.setdefault(name, select) != select:
            raise RuleSQLError(f"{rule.id}: two parts share {name!r} as different queries")
    return union, shared


def _query(select: str, order: str, shared: dict[str, str]) -> str:
    # ClickHouse evaluates every textual occurrence of a subquery on its own; a materialized
    # WITH is computed once per query.
    with_ = (
        "WITH " + ", ".join(f"{ident(n)} AS MATERIALIZED ({q})" for n, q in shared.items()) + " "
        if shared
        else ""
    )
    return (
        f"{with_}SELECT * FROM ({select}) ORDER BY {order}"
        f" SETTINGS {_SETTINGS}, enable_materialized_cte = 1"
    )


def cross_query(rule: Rule, business_date: dt.date, registry: Registry | None = None) -> str:
    """ONE query for a cross-dataset rule and business date D: per judged dataset and
    organisation (see the module docstring) dataset, org_code, batch_version, rows, checked,
    failed and every failing record key, sorted. `registry`: the organisation registry, for
    rules that attribute a result to a county (inpatient_death_registered)."""
    day = dt.date.fromisoformat(str(business_date))
    union, shared = _union(rule, day, registry)
    return _query(union, "dataset, org_code", shared)


def _together(
    rules: Sequence[Rule], day: dt.date, registry: Registry | None
) -> list[list[tuple[Rule, str, dict[str, str]]]]:
    """The rules in groups that run as one query: rules whose parts share a subquery by name
    (and as the same SELECT), e.g. the two overlap rules reading the same stays, which one
    query computes once for both."""
    groups: list[tuple[dict[str, str], list[tuple[Rule, str, dict[str, str]]]]] = []
    for rule in rules:
        union, shared = _union(rule, day, registry)
        for names, members in groups:
            common = names.keys() & shared.keys()
            if common and all(names[n] == shared[n] for n in common):
                names.update(shared)
                members.append((rule, union, shared))
                break
        else:
            groups.append((dict(shared), [(rule, union, shared)]))
    return [members for _, members in groups]


@contextmanager
def _as_tables(ch: Client, shared: dict[str, str]) -> Iterator[None]:
    """The shared steps as temporary tables of the client's session, built in order (a step
    reads the steps before it by name) and dropped at the end.

    The same rows as cross_query's materialized WITH, which is computed once but analysed
    again at every reference: a step read through steps costs geometrically more to plan
    (bench/results/2026-12-03-stop28.md: a chain of self-joined steps 4.7 to 26.0 ms at
    depth 1-5; stay_overlap_other_org on an empty warehouse 0.72-0.79 s as one query,
    0.26-0.48 s as tables). Temporary tables live in a session: chDB's process, or a server
    client with a session id (clickhouse-connect makes one unless told not to)."""
    made: list[str] = []
    try:
        for name, select in shared.items():
            table = ident(name)
            ch.command(f"DROP TEMPORARY TABLE IF EXISTS {table}")
            made.append(table)
            ch.command(
                f"CREATE TEMPORARY TABLE {table} ENGINE = Memory AS {select} SETTINGS {_SETTINGS}"
            )
        yield
    finally:
        for table in reversed(made):
            try:
                ch.command(f"DROP TEMPORARY TABLE IF EXISTS {table}")
            except Exception:  # a lost session: not to hide why the run failed; the next
                # run drops a leftover of the name before building it
                log.warning("could not drop temporary table %s", table, exc_info=True)


# The copy of raw.current_batch run_cross's temporary-table form reads (sqlrules.batches_from).
_BATCHES_COPY = "current_batch_copy"


def _run_groups(
    ch: Client,
    day: dt.date,
    mine: list[Rule],
    registry: Registry | None,
    temporary_tables: bool,
) -> dict[int, list[tuple]]:
    """The result rows of each rule of `mine` (by position): one query per group of rules
    that share subqueries (_together)."""
    found: dict[int, list[tuple]] = {i: [] for i in range(len(mine))}
    index = {id(rule): i for i, rule in enumerate(mine)}
    for members in _together(mine, day, registry):
        shared: dict[str, str] = {}
        for _, _, names in members:
            shared.update(names)
        select = " UNION ALL ".join(
            f"SELECT toUInt32({index[id(rule)]}) AS _rule, * FROM ({union})"
            for rule, union, _ in members
        )
        order = "_rule, dataset, org_code"
        if temporary_tables and shared:
            with _as_tables(ch, shared):
                rows = ch.query(_query(select, order, {})).result_rows
        else:
            rows = ch.query(_query(select, order, shared)).result_rows
        for nr, *row in rows:
            found[int(nr)].append(tuple(row))
    return found


def run_cross(
    ch: Client,
    business_date: dt.date,
    rules: Sequence[Rule],
    registry: Registry | None = None,
    *,
    temporary_tables: bool = False,
) -> list[dict]:
    """Evaluate every rule among `rules` whose type this engine runs for business date D.

    One dict per (org_code, dataset, batch_version, rule_id) as sqlrules.run_dataset returns
    it (sample_keys: the first 20 failing keys), plus `keys` (all failing record keys),
    `details` (per key, what of the row failed, e.g. "other_dx_codes N40"; '' where a rule
    names nothing more), `sample_details`, `query` (the rule's own query, cross_query) and
    `notes`. Rules that share subqueries run as one query (_together); the results come in
    the order of `rules`. `temporary_tables`: build the shared subqueries as temporary
    tables of the client's session (_as_tables; the same rows, less planning on small days)
    instead of one query with a materialized WITH, and read a copy of raw.current_batch made
    at the start (the same rows: nothing writes batches while rules run); `query` is
    cross_query either way (it reads the view)."""
    day = dt.date.fromisoformat(str(business_date))
    mine = [r for r in rules if r.type in CROSS_RULES]
    if temporary_tables:
        copy = {_BATCHES_COPY: f"SELECT * FROM {CURRENT_BATCH}"}
        with _as_tables(ch, copy), batches_from(_BATCHES_COPY):
            found = _run_groups(ch, day, mine, registry, temporary_tables)
    else:
        found = _run_groups(ch, day, mine, registry, temporary_tables)
    out = []
    for i, rule in enumerate(mine):
        query = cross_query(rule, day, registry)
        for dataset, org, version, rows, checked, failed, keys, details in found[i]:
            notes = CROSS_RULES[rule.type].notes(rule.params, day, int(rows), int(checked))
            out.append(
                keyed_result(
                    rule, org, dataset, day, version, (checked, failed), keys, details, query, notes
                )
            )
    return out
