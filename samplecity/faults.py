"""Where the defects go, and the record-level injectors.

Each injected defect is recorded as one ground-truth item. A defective row carries exactly
one defect: an injector only picks rows whose other values cannot trip a second rule (for
example a visit whose diagnosis is not sex-specific before making its patient's sex wrong),
and persons whose identity was damaged are set aside (`Population.tainted`) so that no later
record leans on them.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import asdict, dataclass, field, replace
from decimal import Decimal

import numpy as np
import polars as pl

from contracts.codesystems import resident_id_problem
from contracts.registry import Organisation
from samplecity import refdata
from samplecity.city import CHRONIC, City, Death
from samplecity.clock import DAY, is_workday, late_after_days, naive_seconds
from samplecity.counties import DEATH, ELDERLY, FOLLOWUP, RECORD, VACCINATION, record_frame
from samplecity.hospitals import LAB, PATIENT, RX, STAY, VISIT, patient_rows
from samplecity.population import ALIVE, RESIDENT
from samplecity.schema import key_field, scale, to_text
from samplecity.writers import CSV_FORMATS

COMPLETENESS, TIMELINESS, CORRECTNESS, LOGIC = "completeness", "timeliness", "correctness", "logic"
QUARANTINED = "quarantined_rows"


@dataclass
class Truth:
    org_code: str
    dataset: str
    business_date: str
    file: str | None
    record_key: str | None
    dimension: str | None
    defect: str
    detail: str
    expected_ingest: str | None

    def as_dict(self) -> dict:
        return asdict(self)


# file-level faults: kind -> (dimension, expected_ingest)
FILE_FAULTS = {
    "missing_batch": (COMPLETENESS, "missing"),
    "corrupt_gzip": (CORRECTNESS, "rejected"),
    "duplicate_file": (None, "duplicate"),
    "corrected_reupload": (None, "correction"),
    "late_file": (TIMELINESS, "loaded"),
    "manifest_row_count_mismatch": (COMPLETENESS, "loaded"),
    "extra_column": (CORRECTNESS, "loaded_drift"),
    "missing_required_column": (COMPLETENESS, "loaded_missing_column"),
    "volume_collapse": (COMPLETENESS, "loaded"),
    "volume_spike": (COMPLETENESS, "loaded"),
    "unregistered_org": (CORRECTNESS, "rejected"),
    "unknown_dataset": (CORRECTNESS, "rejected"),
    "wrong_org_kind": (CORRECTNESS, "rejected"),
}
# batches whose rows do not all arrive as generated: no record-level defect goes there
LOSSY = {"missing_batch", "corrupt_gzip", "corrected_reupload", "missing_required_column"}
UNKNOWN_DATASET = "drug_stock"
EXTRA_COLUMN = "remark"


@dataclass
class FaultPlan:
    enabled: bool
    faulty: set[str] = field(default_factory=set)
    collapse: dict[tuple[str, int], float] = field(default_factory=dict)
    spike: dict[tuple[str, int], float] = field(default_factory=dict)
    batch: dict[tuple[str, str, int], list[str]] = field(default_factory=dict)
    records: dict[tuple[str, int], list[tuple[str, str]]] = field(default_factory=dict)
    pending: list[tuple[str, str, str]] = field(default_factory=list)  # (kind, dataset, defect)
    extras: list[tuple[str, str, str, int]] = field(
        default_factory=list
    )  # (fault, org, dataset, d)
    dead_for_visit: list[int] = field(default_factory=list)
    # in-hospital deaths no county registers: person -> the registering county
    unregistered: dict[int, str] = field(default_factory=dict)
    bad_rows: dict[tuple[str, str, int], dict[int, str]] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)
    # org -> (day, visit rows, keys with a defect) of its last injected day: what it re-sends
    sent_visits: dict[str, tuple[int, pl.DataFrame, set[str]]] = field(default_factory=dict)

    def batch_faults(self, org: str, dataset: str, d: int) -> list[str]:
        return self.batch.get((org, dataset, d), [])

    def volume_changed(self, org: str, d: int) -> bool:
        """A collapse or a spike: no record-level defect goes to that organisation-day."""
        return (org, d) in self.collapse or (org, d) in self.spike


# record-level defects: (dataset, defect) per organisation kind, in planning order
HOSPITAL_RECORD_DEFECTS = (
    (PATIENT, "bad_check_digit"),
    (PATIENT, "birth_id_mismatch"),
    (PATIENT, "bad_phone"),
    (PATIENT, "unknown_code"),
    (VISIT, "fee_sum_mismatch"),
    (VISIT, "unknown_code"),
    (VISIT, "missing_required"),
    (VISIT, "sex_specific_dx"),
    (VISIT, "visit_after_death"),
    (VISIT, "unknown_patient_ref"),
    (VISIT, "late_record"),
    (STAY, "drug_fee_gt_total"),
    (STAY, "discharge_before_admit"),
    (STAY, "los_days_mismatch"),
    (STAY, "op_without_op_level"),
    (STAY, "sex_specific_dx"),
    (STAY, "external_cause_principal_dx"),
    (STAY, "repeated_diagnosis"),
    (STAY, "age_specific_dx"),
    (STAY, "drug_material_gt_total"),
    (RX, "unknown_code"),
    (RX, "late_record"),
    (RX, "untypeable_value"),
    (LAB, "abnormal_flag_mismatch"),
    (LAB, "duplicate_key"),
    (LAB, "event_after_business_date"),
    (LAB, "wrong_field_count"),
    # section 7.2 (v1.1): one person across organisations
    (PATIENT, "name_differs_from_record"),
    (STAY, "stay_overlap_same_org"),
    (STAY, "stay_overlap_other_org"),
    (VISIT, "resent_records"),
    # section 7.3 (v1.1): plausibility over time and against peers
    (RX, "money_unit_shift"),
)
COUNTY_RECORD_DEFECTS = (
    (RECORD, "sex_id_mismatch"),
    (RECORD, "missing_required"),
    (FOLLOWUP, "sbp_le_dbp"),
    (FOLLOWUP, "next_followup_too_far"),
    (FOLLOWUP, "followup_without_diagnosis"),
    (ELDERLY, "bmi_mismatch"),
    (ELDERLY, "elderly_under_65"),
    (ELDERLY, "untypeable_value"),
    (VACCINATION, "bad_check_digit"),
    (VACCINATION, "late_record"),
    (VACCINATION, "untypeable_value"),
    # section 7.3 (v1.1): plausibility over time
    (FOLLOWUP, "copied_readings"),
    (FOLLOWUP, "implausible_workload"),
)
HOSPITAL_FILE_FAULTS = (
    ("volume_collapse", None),
    ("corrupt_gzip", LAB),
    ("duplicate_file", VISIT),
    ("corrected_reupload", LAB),
    ("late_file", RX),
    ("missing_batch", RX),
    ("manifest_row_count_mismatch", PATIENT),
    ("extra_column", STAY),
    ("missing_required_column", RX),
)
COUNTY_FILE_FAULTS = (("late_file", FOLLOWUP), ("missing_batch", VACCINATION))


def n_faulty(n: int) -> int:
    """Organisations of a kind that get defects: 60 %, so that at least a third stay clean."""
    return max(1, int(n * 0.6)) if n else 0


def _collapse_day(city: City) -> int | None:
    """The last day a volume collapse can be judged on: a working day with at least the
    rule's `min_history` working days before it (validation compares like with like)."""
    from contracts.calendar import is_workday
    from expectations.rules.rulebase import rulebase

    need = rulebase().types["volume_not_collapsed"].params["min_history"]
    workdays = [is_workday(city.start + dt.timedelta(days=d))[0] for d in range(city.days)]
    for d in range(city.days - 1, 0, -1):
        if workdays[d] and sum(workdays[:d]) >= need:
            return d
    return None


# rows of an injected volume spike against a usual day (section 7.3: z >= 3.5 and > 3 x)
SPIKE_VOLUME = 6.0


def _comparable_before(city: City, d: int) -> int:
    """Days of the city before day d of the same weekday type (working day or not)."""
    from contracts.calendar import is_workday

    kind = is_workday(city.day(d))[0]
    return sum(is_workday(city.day(k))[0] == kind for k in range(d))


def _params(rb, rule_id: str) -> dict:
    return next(r.params for r in rb.rules if r.id == rule_id)


def _spike_judged(city: City) -> list[bool]:
    """Per day: whether the volume spike rule has enough history to judge it."""
    from expectations.rules.rulebase import rulebase

    need = rulebase().types["volume_not_spiked"].params["min_history"]
    return [_comparable_before(city, d) >= need for d in range(city.days)]


def _level_shift_judged(city: City, org: str, d: int, levels: dict[str, str]) -> bool:
    """Whether the money level shift has a reference for this hospital-day: enough own
    history of the same weekday type, or enough peers (other hospitals of its level)."""
    from expectations.rules.rulebase import rulebase

    params = _params(rulebase(), "cross.money_level_shift")
    peers = sum(1 for o, level in levels.items() if level == levels.get(org) and o != org)
    return _comparable_before(city, d) >= params["min_history"] or peers >= params["min_peers"] + 1


def plan(city: City, formats: dict[str, str], enabled: bool) -> FaultPlan:
    fp = FaultPlan(enabled=enabled)
    if not enabled:
        return fp
    rng = city.rng("fault-plan")
    hospitals = [o.org_code for o in city.orgs.hospitals]
    counties = [o.org_code for o in city.orgs.counties]
    levels = {o.org_code: o.level for o in city.orgs.hospitals}
    fh = []
    for level in ("tertiary", "secondary", "primary"):
        same = [h for h in hospitals if levels[h] == level]
        take = max(1, int(len(same) * 0.6)) if same else 0
        fh += [same[i] for i in rng.permutation(len(same))[:take]]
    fh = fh[: n_faulty(len(hospitals))]
    fh = [fh[i] for i in rng.permutation(len(fh))]
    fc = [counties[i] for i in rng.permutation(len(counties))[: n_faulty(len(counties))]]
    fp.faulty = set(fh) | set(fc)
    days = city.days
    # defects that need inpatient rows or many lab rows go to the bigger hospitals
    big = [h for h in fh if levels[h] != "primary"] or fh
    hospital_sets = (PATIENT, VISIT, STAY, RX, LAB)

    def spread(
        pool: list[str], counter: list[int], ok: Callable[[str, int], bool], span: int = days
    ) -> tuple[str, int] | None:
        for _ in range(len(pool) * days * 2):
            k = counter[0]
            counter[0] += 1
            org, d = pool[k % len(pool)], (k // len(pool) + (k % len(pool)) * 3) % span
            if ok(org, d):
                return org, d
        return None

    def free(org: str, dataset: str, d: int) -> bool:
        return not fp.batch.get((org, dataset, d)) and not fp.volume_changed(org, d)

    counter_h, counter_c, counter_file = [0], [0], [0]
    for fault, dataset in HOSPITAL_FILE_FAULTS if fh else ():
        if fault == "volume_collapse":
            day = _collapse_day(city)
            if day is None:
                fp.skipped.append("volume_collapse (too few comparable days before any day)")
                continue
            fp.collapse[(big[0], day)] = 0.1
            for ds in hospital_sets:
                fp.batch.setdefault((big[0], ds, day), []).append(fault)
            # a spike (section 7.3, typically a re-sent history) on another hospital that day
            others = [h for h in big if h != big[0]] or [h for h in fh if h != big[0]]
            if others:
                fp.spike[(others[0], day)] = SPIKE_VOLUME
                for ds in hospital_sets:
                    fp.batch.setdefault((others[0], ds, day), []).append("volume_spike")
            else:
                fp.skipped.append("volume_spike (a single faulty hospital)")
            continue
        # file faults go to the bigger hospitals: their batches are never empty
        slot = spread(big, counter_file, lambda o, d, ds=dataset: free(o, ds, d)) or spread(
            fh, counter_h, lambda o, d, ds=dataset: free(o, ds, d)
        )
        if slot:
            fp.batch.setdefault((slot[0], dataset, slot[1]), []).append(fault)

    def county_late_ok(o: str, d: int, ds: str = FOLLOWUP) -> bool:
        # prefer a day followed by a non-working day, so the working-day deadline matters
        return free(o, ds, d) and (
            not is_workday(city.day(d + 1)) or counter_c[0] > 2 * len(fc) * days
        )

    for fault, dataset in COUNTY_FILE_FAULTS if fc else ():
        ok = county_late_ok if fault == "late_file" else (lambda o, d, ds=dataset: free(o, ds, d))
        slot = spread(fc, counter_c, ok)
        if slot is None and fault == "late_file":
            slot = spread(fc, counter_c, lambda o, d: free(o, FOLLOWUP, d))
        if slot:
            fp.batch.setdefault((slot[0], dataset, slot[1]), []).append(fault)
    # the manifest fault needs a manifest: the writer always writes one for that batch

    spike_judged = _spike_judged(city)
    counter_big = [0]
    for all_orgs, counter, defects in (
        (fh, counter_h, HOSPITAL_RECORD_DEFECTS),
        (fc, counter_c, COUNTY_RECORD_DEFECTS),
    ):
        if not all_orgs:
            continue
        for dataset, defect in defects:
            pool = big if dataset in (STAY, LAB) and all_orgs is fh else all_orgs
            count = counter_big if pool is big and pool is not all_orgs else counter

            def ok(o: str, d: int, ds: str = dataset, df: str = defect) -> bool:
                if df == "wrong_field_count" and formats.get(o) not in CSV_FORMATS:
                    return False
                if df == "money_unit_shift" and not _level_shift_judged(city, o, d, levels):
                    return False
                if df == "copied_readings" and not is_workday(city.day(d)):
                    return False  # a rest day has few follow-ups to copy from
                if df == "implausible_workload" and spike_judged[d]:
                    return False  # its extra rows must not also be a volume spike
                return not LOSSY & set(fp.batch.get((o, ds, d), [])) and not fp.volume_changed(o, d)

            # record defects avoid the last day: one that finds no suitable row moves on to
            # the next organisation-day, and the last day is left for those
            span = max(1, days - 1)
            slot = spread(pool, count, ok, span)
            if slot is None and pool is not all_orgs:
                slot = spread(all_orgs, counter, ok, span)
            if slot:
                fp.records.setdefault(slot, []).append((dataset, defect))
            else:
                fp.skipped.append(f"{dataset}.{defect}")

    # a person who died the day before a visit that should not have happened
    for (_, d), items in sorted(fp.records.items()):
        if (VISIT, "visit_after_death") in items:
            person = _plan_dead_person(city, d, rng)
            if person is None:
                items.remove((VISIT, "visit_after_death"))
                fp.skipped.append("outpatient_visit.visit_after_death (no county platform)")
            else:
                fp.dead_for_visit.append(person)

    _plan_unregistered_death(city, fp, fh, big, rng)

    # uploads that ingestion must refuse
    fp.extras.append(("unregistered_org", city.orgs.unregistered, PATIENT, 0))
    if fh:
        fp.extras.append(("unknown_dataset", fh[-1], UNKNOWN_DATASET, min(1, days - 1)))
    if fc:
        fp.extras.append(("wrong_org_kind", fc[-1], VISIT, min(2, days - 1)))
    return fp


def _plan_dead_person(city: City, d: int, rng: np.random.Generator) -> int | None:
    pop = city.pop
    regions = sorted(city.county_region.values())
    if not regions:
        return None
    for _ in range(50):
        region = regions[int(rng.integers(0, len(regions)))]
        cand = pop.sample(rng, 20, pop.w_mort, region)
        cand = cand[(pop.death_day[cand] == ALIVE) & ~pop.foreign[cand] & ~pop.tainted[cand]]
        if len(cand):
            person = int(cand[0])
            pop.death_day[person] = d - 1
            city.deaths[person] = Death(person, d - 1, d, "I21.9", "3", None)
            city.death_regs.setdefault((region, d), []).append(person)
            return person
    return None


def _death_judged_after() -> int:
    from contracts.loader import contracts

    return int(contracts().cross_dataset["inpatient_death_registered"]["judged_after_days"])


def _registering_county(city: City, hospital: str, person: int) -> str | None:
    """The county org that section 7.1 holds responsible for registering the person's death
    (first six digits of the address on the hospital's patient row, else of the id_no)."""
    row = patient_rows(city, hospital, np.array([person]), np.array([0]))
    if row["id_type"][0] != "01":
        return None
    division = (row["address_division"][0] or "").strip() or row["id_no"][0]
    counties = {o.county_code: o.org_code for o in city.orgs.counties}
    return counties.get(division[:6])


def _plan_unregistered_death(
    city: City, fp: FaultPlan, fh: list[str], big: list[str], rng: np.random.Generator
) -> None:
    """An in-hospital death on day 0 that no county registers (inpatient_death_registered).

    The rule judges a discharge on D + 30 of its upload, so the defect is only planned when
    that day lies inside the generated window; a shorter city says so in `skipped`."""
    after = _death_judged_after()
    where = "inpatient_discharge.death_not_registered"
    if city.days <= after:
        fp.skipped.append(f"{where} (judged {after} days after upload, beyond the window)")
        return
    hospitals = [
        h
        for h in big
        if h in fh and (h, 0) not in fp.collapse and not LOSSY & set(fp.batch.get((h, STAY, 0), []))
    ]
    pop = city.pop
    for hospital in hospitals:
        for region in sorted(city.county_region.values()):
            cand = pop.sample(rng, 40, pop.w_mort, region)
            cand = cand[(pop.death_day[cand] == ALIVE) & ~pop.foreign[cand] & ~pop.tainted[cand]]
            for person in (int(p) for p in cand):
                county = _registering_county(city, hospital, person)
                if county is None:
                    continue
                pop.death_day[person] = 0
                city.deaths[person] = Death(person, 0, None, "I63.9", "1", hospital)
                city.ip_deaths.setdefault((hospital, 0), []).append(person)
                fp.unregistered[person] = county
                fp.records.setdefault((hospital, 0), []).insert(0, (STAY, "death_not_registered"))
                return
    fp.skipped.append(f"{where} (no faulty hospital with a county resident)")


# --- record-level injection -----------------------------------------------------------------


@dataclass
class Batch:
    """The text frames of one organisation-day while defects are put in."""

    city: City
    org: Organisation
    d: int
    frames: dict[str, pl.DataFrame]
    rng: np.random.Generator
    plan: FaultPlan
    used: dict[str, set[int]] = field(default_factory=dict)
    # the frames as generated, before any defect: templates for added rows
    generated: dict[str, pl.DataFrame] = field(default_factory=dict)

    @property
    def day(self) -> dt.date:
        return self.city.day(self.d)

    def pick(self, dataset: str, mask: pl.Series | np.ndarray | None = None) -> int | None:
        df = self.frames[dataset]
        ok = np.ones(df.height, dtype=bool) if mask is None else np.asarray(mask, dtype=bool)
        if df.height == 0:
            return None
        used = self.used.setdefault(dataset, set())
        if used:
            ok[list(used)] = False
        rows = np.flatnonzero(ok)
        if not len(rows):
            return None
        row = int(rows[self.rng.integers(0, len(rows))])
        used.add(row)
        return row

    def get(self, dataset: str, row: int, column: str):
        return self.frames[dataset][column][row]

    def set(self, dataset: str, row: int, **values: object) -> None:
        df = self.frames[dataset]
        cols = []
        for column, value in values.items():
            series = df[column].clone()
            series[row] = value
            cols.append(series)
        self.frames[dataset] = df.with_columns(cols)

    def append(self, dataset: str, rows: pl.DataFrame) -> None:
        df = self.frames[dataset]
        missing = [
            pl.lit(None, dtype).alias(c) for c, dtype in df.schema.items() if c not in rows.columns
        ]
        rows = rows.with_columns(missing).select([pl.col(c).cast(df.schema[c]) for c in df.columns])
        start = df.height
        self.frames[dataset] = pl.concat([df, rows], how="vertical")
        self.used.setdefault(dataset, set()).update(range(start, start + rows.height))

    def key(self, dataset: str, row: int) -> str:
        return self.frames[dataset][key_field(dataset)][row]

    def truth(
        self,
        dataset: str,
        key: str | None,
        dimension: str,
        defect: str,
        detail: str,
        expected: str | None = None,
    ) -> Truth:
        return Truth(
            self.org.org_code,
            dataset,
            self.day.isoformat(),
            None,
            key,
            dimension,
            defect,
            detail,
            expected,
        )

    def row_truth(
        self,
        dataset: str,
        row: int,
        dimension: str,
        defect: str,
        detail: str,
        expected: str | None = None,
    ) -> Truth:
        """The truth of a defect put into `row` of `dataset`, by the row's record key."""
        return self.truth(dataset, self.key(dataset, row), dimension, defect, detail, expected)

    def persons_with(self, dataset: str, column: str, prefixes: tuple[str, ...]) -> set[int]:
        df = self.frames[dataset]
        if df.height == 0:
            return set()
        hit = pl.Series([False] * df.height)
        for p in prefixes:
            hit = hit | df[column].fill_null("").str.contains(p, literal=True)
        return set(df.filter(hit)["_person"].to_list())


def _dec(text: str) -> Decimal:
    return Decimal(text)


def _fmt(value: Decimal, digits: int) -> str:
    return f"{value:.{digits}f}"


def _naive(text: str) -> dt.datetime:
    return dt.datetime.strptime(text, "%Y-%m-%d %H:%M:%S")


def _chronic_persons(b: Batch) -> set[int]:
    persons = b.persons_with(VISIT, "diagnosis_code", CHRONIC)
    persons |= b.persons_with(STAY, "principal_dx_code", CHRONIC)
    persons |= b.persons_with(STAY, "other_dx_codes", CHRONIC)
    return persons


def _safe_identity_rows(b: Batch) -> np.ndarray:
    """Patient rows whose identity can be damaged without tripping another rule."""
    df = b.frames[PATIENT]
    pop = b.city.pop
    persons = df["_person"].to_numpy()
    avoid = _chronic_persons(b) | set(b.frames[STAY]["_person"].to_list())
    return (
        (df["id_type"] == "01").to_numpy()
        & df["_new"].to_numpy()
        & (pop.death_day[persons] == ALIVE)
        & ~np.isin(persons, list(avoid))
        & (pop.age_years(persons, b.day) >= 2)
    )


def _bad_check(number: str) -> str:
    for c in "0123456789X":
        if c != number[-1]:
            return number[:-1] + c
    return number


def inj_patient_bad_check_digit(b: Batch) -> Truth | None:
    row = b.pick(PATIENT, _safe_identity_rows(b))
    if row is None:
        return None
    number = b.get(PATIENT, row, "id_no")
    b.set(PATIENT, row, id_no=_bad_check(number))
    b.city.pop.tainted[b.get(PATIENT, row, "_person")] = True
    return b.row_truth(
        PATIENT,
        row,
        CORRECTNESS,
        "bad_check_digit",
        f"id_no {_bad_check(number)}: check character should be {number[-1]}",
    )


def inj_patient_birth_id_mismatch(b: Batch) -> Truth | None:
    row = b.pick(PATIENT, _safe_identity_rows(b))
    if row is None:
        return None
    birth = dt.date.fromisoformat(b.get(PATIENT, row, "birth_date"))
    shifted = birth + dt.timedelta(days=int(b.rng.integers(3, 40)))
    if shifted > b.day:
        shifted = birth - dt.timedelta(days=int(b.rng.integers(3, 40)))
    b.set(PATIENT, row, birth_date=shifted.isoformat())
    b.city.pop.tainted[b.get(PATIENT, row, "_person")] = True
    return b.row_truth(
        PATIENT, row, LOGIC, "birth_id_mismatch", f"birth_date {shifted} but id_no carries {birth}"
    )


def inj_patient_bad_phone(b: Batch) -> Truth | None:
    row = b.pick(PATIENT, b.frames[PATIENT]["phone"].str.len_chars().fill_null(0) == 11)
    if row is None:
        return None
    phone = b.get(PATIENT, row, "phone")[:10]
    b.set(PATIENT, row, phone=phone)
    return b.row_truth(PATIENT, row, CORRECTNESS, "bad_phone", f"phone {phone} has 10 digits")


def inj_patient_unknown_code(b: Batch) -> Truth | None:
    row = b.pick(PATIENT)
    if row is None:
        return None
    b.set(PATIENT, row, ethnicity_code="60")
    return b.row_truth(
        PATIENT, row, CORRECTNESS, "unknown_code", "ethnicity_code 60 is not a GB/T 3304 code"
    )


def inj_visit_fee_sum(b: Batch) -> Truth | None:
    row = b.pick(VISIT)
    if row is None:
        return None
    digits = scale(VISIT, "total_fee")
    total = _dec(b.get(VISIT, row, "total_fee")) + Decimal(int(b.rng.integers(500, 5000))) / 100
    b.set(VISIT, row, total_fee=_fmt(total, digits))
    return b.row_truth(
        VISIT,
        row,
        LOGIC,
        "fee_sum_mismatch",
        f"total_fee {_fmt(total, digits)} is not the sum of the fee components",
    )


def _non_chronic_visits(b: Batch) -> np.ndarray:
    dx = b.frames[VISIT]["diagnosis_code"].fill_null("")
    return ~(dx.str.starts_with("I10") | dx.str.starts_with("E11")).to_numpy()


def inj_visit_unknown_code(b: Batch) -> Truth | None:
    row = b.pick(VISIT, _non_chronic_visits(b))
    if row is None:
        return None
    code, name = refdata.INVALID_ICD10
    b.set(VISIT, row, diagnosis_code=code, diagnosis_name=name)
    return b.row_truth(
        VISIT, row, CORRECTNESS, "unknown_code", f"diagnosis_code {code} is not an ICD-10 code"
    )


def inj_visit_missing_required(b: Batch) -> Truth | None:
    row = b.pick(VISIT)
    if row is None:
        return None
    b.set(VISIT, row, doctor_id=None)
    return b.row_truth(VISIT, row, COMPLETENESS, "missing_required", "doctor_id is empty")


def inj_visit_sex_specific(b: Batch) -> Truth | None:
    sex = b.frames[VISIT]["_sex"].to_numpy()
    row = b.pick(VISIT, _non_chronic_visits(b) & np.isin(sex, [1, 2]))
    if row is None:
        return None
    male = b.get(VISIT, row, "_sex") == 1
    code, name = refdata.FEMALE_ONLY_DX if male else refdata.MALE_ONLY_DX
    b.set(VISIT, row, diagnosis_code=code, diagnosis_name=name)
    return b.row_truth(
        VISIT, row, LOGIC, "sex_specific_dx", f"{code} for a patient of sex {'1' if male else '2'}"
    )


def _extra_visit(
    b: Batch, person: int, patient_id: str, suffix: int
) -> tuple[pl.DataFrame, str] | None:
    template = b.pick(VISIT)
    if template is None:
        return None
    row = b.frames[VISIT].slice(template, 1)
    b.used[VISIT].discard(template)
    visit_id = f"MZ{b.day:%y%m%d}9{suffix:06d}"
    code, name = refdata.NEUTRAL_DX
    sex = int(b.city.pop.sex[person]) if person >= 0 else 0
    return row.with_columns(
        pl.lit(visit_id).alias("visit_id"),
        pl.lit(patient_id).alias("patient_id"),
        pl.lit(code).alias("diagnosis_code"),
        pl.lit(name).alias("diagnosis_name"),
        pl.lit(person, pl.Int64).alias("_person"),
        pl.lit(sex, pl.Int64).alias("_sex"),
    ), visit_id


def inj_visit_after_death(b: Batch) -> Truth | None:
    if not b.plan.dead_for_visit:
        return None
    person = b.plan.dead_for_visit[0]
    death = b.city.deaths[person]
    if death.registered is None or death.registered > b.d:
        return None
    made = _extra_visit(b, person, b.city.patient_ids(b.org, [person])[0], 1)
    if made is None:
        return None
    b.plan.dead_for_visit.pop(0)
    rows, visit_id = made
    b.append(VISIT, rows)
    if person not in b.frames[PATIENT]["_person"].to_list():
        updated = _naive(rows["visit_time"][0]) - dt.timedelta(minutes=5)
        secs = int((updated - dt.datetime(1970, 1, 1)).total_seconds())
        patient = patient_rows(b.city, b.org.org_code, np.array([person]), np.array([secs]))
        b.append(PATIENT, to_text(patient, PATIENT))
    died = b.city.start + dt.timedelta(days=death.day)
    return b.truth(
        VISIT,
        visit_id,
        LOGIC,
        "visit_after_death",
        f"visit on {b.day} of a person registered dead on {died}",
    )


def inj_visit_unknown_patient(b: Batch) -> Truth | None:
    ghost = b.city.pop.size + 1000 + int(b.rng.integers(0, 10**6))
    made = _extra_visit(b, -1, b.city.patient_ids(b.org, [ghost])[0], 2)
    if made is None:
        return None
    rows, visit_id = made
    b.append(VISIT, rows)
    return b.truth(
        VISIT,
        visit_id,
        COMPLETENESS,
        "unknown_patient_ref",
        f"patient_id {rows['patient_id'][0]} was never uploaded by this hospital",
    )


def _shift_days(text: str, days: int) -> str:
    if len(text) == 10:
        return (dt.date.fromisoformat(text) + dt.timedelta(days=days)).isoformat()
    return (_naive(text) + dt.timedelta(days=days)).strftime("%Y-%m-%d %H:%M:%S")


def _late_days() -> int:
    return late_after_days() + 3


def inj_visit_late(b: Batch) -> Truth | None:
    row = b.pick(VISIT)
    if row is None:
        return None
    when = _shift_days(b.get(VISIT, row, "visit_time"), -_late_days())
    b.set(VISIT, row, visit_time=when)
    return b.row_truth(
        VISIT,
        row,
        TIMELINESS,
        "late_record",
        f"visit_time {when} is more than {late_after_days()} days before {b.day}",
    )


def inj_stay_sex_specific_other_dx(b: Batch) -> Truth | None:
    """A code of the other sex among the other diagnoses only: the principal one agrees."""
    sex = b.frames[STAY]["_sex"].to_numpy()
    row = b.pick(STAY, np.isin(sex, [1, 2]))
    if row is None:
        return None
    male = b.get(STAY, row, "_sex") == 1
    code, _ = refdata.FEMALE_ONLY_DX if male else refdata.MALE_ONLY_DX
    other = b.get(STAY, row, "other_dx_codes")
    b.set(STAY, row, other_dx_codes=f"{other};{code}" if other else code)
    return b.row_truth(
        STAY,
        row,
        LOGIC,
        "sex_specific_dx",
        f"other_dx_codes holds {code} for a patient of sex {'1' if male else '2'}",
    )


def _living_stays(b: Batch) -> np.ndarray:
    return ~b.frames[STAY]["_death"].to_numpy()


def _extra_stay(b: Batch, suffix: int, min_drug_fee: float = 0) -> int | None:
    """A new stay of a resident aged two or more whom this hospital does not see today: a
    copy of one of today's living stays as generated (times, fees, operation) with a
    principal diagnosis that is neither sex- nor age-specific and no other diagnoses. The
    defects of section 7.1 go into such rows, so that they take no row from the other
    injectors even when a small hospital discharges one or two patients a day. Returns the
    new row."""
    source = b.generated.get(STAY, b.frames[STAY])
    if source.height == 0:
        return None
    drug = source["drug_fee"].cast(pl.Float64).fill_null(0).to_numpy()
    rows = np.flatnonzero(~source["_death"].to_numpy() & (drug >= min_drug_fee))
    if not len(rows):
        return None
    template = int(rows[b.rng.integers(0, len(rows))])
    pop, city = b.city.pop, b.city
    seen = set(b.frames[STAY]["_person"].to_list()) | set(b.frames[VISIT]["_person"].to_list())
    region = city.hosp_region[b.org.org_code]
    cand = pop.sample(b.rng, 50, pop.w_ip, region)
    cand = cand[
        pop.usable(cand, b.d)
        & ~pop.foreign[cand]
        & (pop.age_days(cand, b.day) >= 2 * 366)
        & ~np.isin(cand, list(seen))
    ]
    if not len(cand):
        return None
    person = int(cand[0])
    patient_id = city.patient_ids(b.org, [person])[0]
    code, _ = refdata.NEUTRAL_IP_DX
    row = source.slice(template, 1).with_columns(
        pl.lit(f"ZY{b.day:%y%m%d}9{suffix:04d}").alias("admission_id"),
        pl.lit(patient_id).alias("patient_id"),
        pl.lit(code).alias("principal_dx_code"),
        pl.lit(None, pl.String).alias("other_dx_codes"),
        pl.lit(None, pl.String).alias("newborn_weight_g"),
        pl.lit(person, pl.Int64).alias("_person"),
        pl.lit(int(pop.sex[person]), pl.Int64).alias("_sex"),
        pl.lit(int(pop.age_days(np.array([person]), b.day)[0]), pl.Int64).alias("_age_days"),
    )
    b.append(STAY, row)
    if person not in set(b.frames[PATIENT]["_person"].to_list()) and person not in set(
        city.uploaded[b.org.org_code].tolist()
    ):
        admitted = _naive(row["admit_time"][0]) - dt.timedelta(minutes=20)
        secs = int((admitted - dt.datetime(1970, 1, 1)).total_seconds())
        patient = patient_rows(city, b.org.org_code, np.array([person]), np.array([secs]))
        b.append(PATIENT, to_text(patient, PATIENT))
    return b.frames[STAY].height - 1


def inj_stay_external_cause(b: Batch) -> Truth | None:
    """The external cause (a fall) coded as the principal diagnosis, the condition treated
    moved to the other diagnoses."""
    row = _extra_stay(b, 1)
    if row is None:
        return None
    code, _ = refdata.EXTERNAL_CAUSE_DX
    principal, other = b.get(STAY, row, "principal_dx_code"), b.get(STAY, row, "other_dx_codes")
    b.set(
        STAY,
        row,
        principal_dx_code=code,
        other_dx_codes=f"{principal};{other}" if other else principal,
    )
    return b.row_truth(
        STAY,
        row,
        CORRECTNESS,
        "external_cause_principal_dx",
        f"principal_dx_code {code} is an external cause (chapter XX)",
    )


def inj_stay_repeated_dx(b: Batch) -> Truth | None:
    row = _extra_stay(b, 2)
    if row is None:
        return None
    principal, other = b.get(STAY, row, "principal_dx_code"), b.get(STAY, row, "other_dx_codes")
    b.set(STAY, row, other_dx_codes=f"{other};{principal}" if other else principal)
    return b.row_truth(
        STAY,
        row,
        LOGIC,
        "repeated_diagnosis",
        f"other_dx_codes repeats the principal diagnosis {principal}",
    )


def inj_stay_age_specific_dx(b: Batch) -> Truth | None:
    """A perinatal code (chapter XVI) for a patient aged two or more at discharge: at least
    one year old at admission, stays being at most 60 days."""
    row = _extra_stay(b, 3)
    if row is None:
        return None
    code, _ = refdata.PERINATAL_DX
    other = b.get(STAY, row, "other_dx_codes")
    b.set(STAY, row, other_dx_codes=f"{other};{code}" if other else code)
    years = int(b.get(STAY, row, "_age_days")) // 365
    return b.row_truth(
        STAY, row, LOGIC, "age_specific_dx", f"other_dx_codes holds {code} at about {years} years"
    )


def inj_stay_drug_material_gt_total(b: Batch) -> Truth | None:
    """Each fee within the total, the two together above it."""
    row = _extra_stay(b, 4, min_drug_fee=1)
    if row is None:
        return None
    digits = scale(STAY, "material_fee")
    total, drug_fee = _dec(b.get(STAY, row, "total_fee")), _dec(b.get(STAY, row, "drug_fee"))
    over = min(drug_fee, Decimal(int(b.rng.integers(100, 5000))) / 100)
    material = total - drug_fee + over
    b.set(STAY, row, material_fee=_fmt(material, digits))
    return b.row_truth(
        STAY,
        row,
        LOGIC,
        "drug_material_gt_total",
        f"drug_fee {drug_fee} + material_fee {_fmt(material, digits)} exceed total_fee {total}",
    )


def inj_stay_death_not_registered(b: Batch) -> Truth | None:
    """The planned in-hospital death: its county's truth, judged `judged_after_days` later."""
    df = b.frames[STAY]
    dying = [p for p in b.plan.unregistered if p in set(df.filter(pl.col("_death"))["_person"])]
    if not dying:
        return None
    person = dying[0]
    row = b.pick(STAY, (df["_person"] == person).to_numpy() & df["_death"].to_numpy())
    if row is None:
        return None
    county = b.plan.unregistered.pop(person)
    judged = b.day + dt.timedelta(days=_death_judged_after())
    key = f"{b.org.org_code} {b.key(STAY, row)}"
    return Truth(
        county,
        DEATH,
        judged.isoformat(),
        None,
        key,
        COMPLETENESS,
        "death_not_registered",
        f"in-hospital death discharged on {b.day} ({key}) has no death registration",
        None,
    )


def inj_stay_drug_gt_total(b: Batch) -> Truth | None:
    row = b.pick(STAY, ~b.frames[STAY]["_death"].to_numpy())
    if row is None:
        return None
    digits = scale(STAY, "drug_fee")
    drug = _dec(b.get(STAY, row, "total_fee")) + Decimal(int(b.rng.integers(100, 2000)))
    b.set(STAY, row, drug_fee=_fmt(drug, digits))
    return b.row_truth(
        STAY, row, LOGIC, "drug_fee_gt_total", f"drug_fee {_fmt(drug, digits)} exceeds total_fee"
    )


def inj_stay_discharge_before_admit(b: Batch) -> Truth | None:
    df = b.frames[STAY]
    hour = (
        df["discharge_time"].str.slice(11, 2).cast(pl.Int64).to_numpy()
        if df.height
        else np.zeros(0)
    )
    ok = ~df["_death"].to_numpy() & (df["_age_days"].to_numpy() >= 366) & (hour <= 20)
    row = b.pick(STAY, ok)
    if row is None:
        return None
    discharge = _naive(b.get(STAY, row, "discharge_time"))
    admit = (discharge + dt.timedelta(hours=2)).strftime("%Y-%m-%d %H:%M:%S")
    b.set(STAY, row, admit_time=admit, los_days="1")
    return b.row_truth(
        STAY,
        row,
        LOGIC,
        "discharge_before_admit",
        f"admit_time {admit} is after discharge_time {discharge}",
    )


def inj_stay_los(b: Batch) -> Truth | None:
    row = b.pick(STAY)
    if row is None:
        return None
    los = int(b.get(STAY, row, "los_days")) + 3
    b.set(STAY, row, los_days=str(los))
    return b.row_truth(
        STAY,
        row,
        LOGIC,
        "los_days_mismatch",
        f"los_days {los} disagrees with the admit and discharge dates",
    )


def inj_stay_op_level(b: Batch) -> Truth | None:
    row = b.pick(STAY, b.frames[STAY]["principal_op_code"].is_not_null().to_numpy())
    if row is None:
        # no operation today: record one (a transfusion, 99.04) but leave op_level empty
        row = b.pick(STAY, ~b.frames[STAY]["_death"].to_numpy())
        if row is None:
            return None
        b.set(STAY, row, principal_op_code="99.04", minimally_invasive="0")
    b.set(STAY, row, op_level=None)
    return b.row_truth(
        STAY,
        row,
        COMPLETENESS,
        "op_without_op_level",
        f"principal_op_code {b.get(STAY, row, 'principal_op_code')} without op_level",
    )


def inj_rx_unknown_code(b: Batch) -> Truth | None:
    row = b.pick(RX)
    if row is None:
        return None
    b.set(RX, row, route_code="7")
    return b.row_truth(RX, row, CORRECTNESS, "unknown_code", "route_code 7 is not a route")


def inj_rx_late(b: Batch) -> Truth | None:
    row = b.pick(RX)
    if row is None:
        return None
    when = _shift_days(b.get(RX, row, "ordered_at"), -_late_days())
    b.set(RX, row, ordered_at=when)
    return b.row_truth(
        RX,
        row,
        TIMELINESS,
        "late_record",
        f"ordered_at {when} is more than {late_after_days()} days before {b.day}",
    )


def inj_rx_untypeable(b: Batch) -> Truth | None:
    row = b.pick(RX)
    if row is None:
        return None
    value = "12,5" if b.rng.random() < 0.5 else "abc"
    b.set(RX, row, amount=value)
    return b.row_truth(
        RX, row, CORRECTNESS, "untypeable_value", f"amount {value!r} is not a decimal", QUARANTINED
    )


def inj_lab_flag(b: Batch) -> Truth | None:
    df = b.frames[LAB]
    numeric = df["unit"].is_not_null().to_numpy()
    flag = df["abnormal_flag"].fill_null("").to_numpy()
    row = b.pick(LAB, numeric & np.isin(flag, ["H", "L"]))
    if row is not None:
        old = b.get(LAB, row, "abnormal_flag")
        b.set(LAB, row, abnormal_flag="N")
        return b.row_truth(
            LAB,
            row,
            LOGIC,
            "abnormal_flag_mismatch",
            f"abnormal_flag N but the value is outside its range (should be {old})",
        )
    row = b.pick(LAB, numeric & (flag == "N"))
    if row is None:
        return None
    b.set(LAB, row, abnormal_flag="H")
    return b.row_truth(
        LAB,
        row,
        LOGIC,
        "abnormal_flag_mismatch",
        "abnormal_flag H but the value is inside its range (should be N)",
    )


def inj_lab_duplicate(b: Batch) -> Truth | None:
    row = b.pick(LAB)
    if row is None:
        return None
    b.append(LAB, b.frames[LAB].slice(row, 1))
    return b.row_truth(
        LAB, row, LOGIC, "duplicate_key", "the same result_id appears twice in the batch"
    )


def inj_lab_future(b: Batch) -> Truth | None:
    row = b.pick(LAB)
    if row is None:
        return None
    when = (dt.datetime.combine(b.day + dt.timedelta(days=1), dt.time(9, 30))).strftime(
        "%Y-%m-%d %H:%M:%S"
    )
    b.set(LAB, row, reported_at=when)
    return b.row_truth(
        LAB,
        row,
        CORRECTNESS,
        "event_after_business_date",
        f"reported_at {when} is after the business date {b.day}",
    )


def inj_lab_field_count(b: Batch) -> Truth | None:
    row = b.pick(LAB)
    if row is None:
        return None
    b.plan.bad_rows.setdefault((b.org.org_code, LAB, b.d), {})[row] = "复核"
    return b.row_truth(
        LAB,
        row,
        CORRECTNESS,
        "wrong_field_count",
        "the CSV line has one field more than the header",
        QUARANTINED,
    )


def _record_rows_without_refs(b: Batch) -> np.ndarray:
    df = b.frames[RECORD]
    referenced = set(b.frames[FOLLOWUP]["_person"].to_list()) | set(
        b.frames[ELDERLY]["_person"].to_list()
    )
    return (df["status"] == "1").to_numpy() & ~np.isin(df["_person"].to_numpy(), list(referenced))


def _pick_record(b: Batch) -> int | None:
    """A new record, preferably one that no follow-up or check of today refers to."""
    row = b.pick(RECORD, _record_rows_without_refs(b))
    if row is None:
        row = b.pick(RECORD, (b.frames[RECORD]["status"] == "1").to_numpy())
    return row


def inj_record_sex(b: Batch) -> Truth | None:
    row = _pick_record(b)
    if row is None:
        return None
    sex = "2" if b.get(RECORD, row, "sex_code") == "1" else "1"
    b.set(RECORD, row, sex_code=sex)
    b.city.pop.tainted[b.get(RECORD, row, "_person")] = True
    return b.row_truth(
        RECORD,
        row,
        LOGIC,
        "sex_id_mismatch",
        f"sex_code {sex} disagrees with the sex digit of id_no",
    )


def inj_record_missing(b: Batch) -> Truth | None:
    row = _pick_record(b)
    if row is None:
        return None
    b.set(RECORD, row, managing_org_code=None)
    return b.row_truth(RECORD, row, COMPLETENESS, "missing_required", "managing_org_code is empty")


def inj_followup_bp(b: Batch) -> Truth | None:
    df = b.frames[FOLLOWUP]
    dbp = df["dbp"].cast(pl.Int64, strict=False).fill_null(0).to_numpy()
    row = b.pick(FOLLOWUP, dbp >= 65)
    if row is None:
        return None
    sbp = int(b.get(FOLLOWUP, row, "dbp")) - 5  # still inside 60-300
    b.set(FOLLOWUP, row, sbp=str(sbp))
    return b.row_truth(
        FOLLOWUP,
        row,
        LOGIC,
        "sbp_le_dbp",
        f"sbp {sbp} is not above dbp {b.get(FOLLOWUP, row, 'dbp')}",
    )


def inj_followup_next(b: Batch) -> Truth | None:
    row = b.pick(FOLLOWUP)
    if row is None:
        return None
    nxt = _shift_days(b.get(FOLLOWUP, row, "followup_date"), 130)
    b.set(FOLLOWUP, row, next_followup_date=nxt)
    return b.row_truth(
        FOLLOWUP,
        row,
        LOGIC,
        "next_followup_too_far",
        f"next_followup_date {nxt} is 130 days after the follow-up",
    )


def _record_candidates(b: Batch) -> np.ndarray:
    """Persons with a record of this county uploaded today or before."""
    today = b.frames[RECORD].filter(pl.col("status") == "1")["_person"].to_numpy()
    return np.union1d(b.city.records[b.org.org_code], today).astype(np.int64)


def inj_followup_no_dx(b: Batch) -> Truth | None:
    pop = b.city.pop
    cand = _record_candidates(b)
    cand = cand[
        pop.usable(cand, b.d) & ~b.city.support["I10"][cand] & ~b.city.followed["I10"][cand]
    ]
    if not len(cand):
        return None
    person = int(cand[b.rng.integers(0, len(cand))])
    fid = f"SF{b.org.org_code}{b.day:%y%m%d}9{int(b.rng.integers(0, 10**5)):05d}"
    row = pl.DataFrame(
        {
            "followup_id": [fid],
            "record_id": [b.city.record_ids(b.org.org_code, [person])[0]],
            "disease_code": ["I10"],
            "followup_date": [b.day.isoformat()],
            "followup_method": ["3"],
            "sbp": ["146"],
            "dbp": ["88"],
            "fasting_glucose": [None],
            "followup_class": ["2"],
            "next_followup_date": [(b.day + dt.timedelta(days=90)).isoformat()],
            "doctor_id": [f"GW{b.org.org_code}001"],
            "_person": [person],
        }
    )
    b.append(FOLLOWUP, row)
    b.city.followed["I10"][person] = True
    return b.truth(
        FOLLOWUP,
        fid,
        LOGIC,
        "followup_without_diagnosis",
        "hypertension follow-up for a person with no I10 diagnosis on record",
    )


def inj_elderly_bmi(b: Batch) -> Truth | None:
    row = b.pick(ELDERLY)
    if row is None:
        return None
    digits = scale(ELDERLY, "bmi")
    bmi = _dec(b.get(ELDERLY, row, "bmi")) + Decimal("2.5")
    b.set(ELDERLY, row, bmi=_fmt(bmi, digits))
    return b.row_truth(
        ELDERLY,
        row,
        LOGIC,
        "bmi_mismatch",
        f"bmi {_fmt(bmi, digits)} does not agree with height and weight",
    )


def inj_elderly_under_65(b: Batch) -> Truth | None:
    city, pop = b.city, b.city.pop
    sl = pop.region_slice(city.county_region[b.org.org_code])
    ids = np.arange(sl.start, sl.stop)
    age = pop.age_years(ids, b.day)
    cand = ids[(age >= 60) & (age <= 64) & pop.usable(ids, b.d) & ~pop.foreign[ids]]
    if not len(cand):
        return None
    person = int(cand[b.rng.integers(0, len(cand))])
    if person not in set(_record_candidates(b).tolist()):
        rec = record_frame(
            city, b.org.org_code, b.d, np.array([person]), "1", b.rng, created_today=True
        )
        b.append(RECORD, to_text(rec, RECORD))
    cid = f"TJ{b.org.org_code}{b.day:%y%m%d}9{int(b.rng.integers(0, 10**5)):05d}"
    years = int(pop.age_years(np.array([person]), b.day)[0])
    row = pl.DataFrame(
        {
            "check_id": [cid],
            "record_id": [city.record_ids(b.org.org_code, [person])[0]],
            "check_date": [b.day.isoformat()],
            "age_at_check": [str(years)],
            "height_cm": ["160.0"],
            "weight_kg": ["60.0"],
            "bmi": ["23.4"],
            "sbp": ["132"],
            "dbp": ["80"],
            "self_care_score": ["0"],
            "_person": [person],
        }
    )
    b.append(ELDERLY, row)
    return b.truth(
        ELDERLY, cid, CORRECTNESS, "elderly_under_65", f"elderly check of a person aged {years}"
    )


def inj_elderly_untypeable(b: Batch) -> Truth | None:
    row = b.pick(ELDERLY)
    if row is None:
        return None
    b.set(ELDERLY, row, weight_kg="abc")
    return b.row_truth(
        ELDERLY,
        row,
        CORRECTNESS,
        "untypeable_value",
        "weight_kg 'abc' is not a decimal",
        QUARANTINED,
    )


def inj_vacc_check_digit(b: Batch) -> Truth | None:
    row = b.pick(VACCINATION)
    if row is None:
        return None
    number = b.get(VACCINATION, row, "id_no")
    bad = _bad_check(number)
    assert resident_id_problem(bad) is not None
    b.set(VACCINATION, row, id_no=bad)
    return b.row_truth(
        VACCINATION,
        row,
        CORRECTNESS,
        "bad_check_digit",
        f"id_no {bad}: check character should be {number[-1]}",
    )


def inj_vacc_late(b: Batch) -> Truth | None:
    df = b.frames[VACCINATION]
    persons = df["_person"].to_numpy()
    old_enough = b.city.pop.age_days(persons, b.day) > _late_days() + 30
    row = b.pick(VACCINATION, old_enough)
    if row is None:
        return None
    when = (b.day - dt.timedelta(days=_late_days())).isoformat()
    b.set(VACCINATION, row, vacc_date=when)
    return b.row_truth(
        VACCINATION,
        row,
        TIMELINESS,
        "late_record",
        f"vacc_date {when} is more than {late_after_days()} days before {b.day}",
    )


def inj_vacc_untypeable(b: Batch) -> Truth | None:
    row = b.pick(VACCINATION)
    if row is None:
        return None
    value = f"{b.day.year}-02-30"
    b.set(VACCINATION, row, vacc_date=value)
    return b.row_truth(
        VACCINATION,
        row,
        CORRECTNESS,
        "untypeable_value",
        f"vacc_date {value} is not a calendar date",
        QUARANTINED,
    )


# --- section 7.2 (v1.1): one person across organisations ----------------------------------


def inj_patient_name_differs(b: Batch) -> Truth | None:
    """A hospital writes a resident's name differently from the county health record."""
    recorded = np.concatenate([np.zeros(0, np.int64), *b.city.records.values()])
    df = b.frames[PATIENT]
    persons = df["_person"].to_numpy()
    ok = _safe_identity_rows(b) & np.isin(persons, recorded) & ~b.city.pop.tainted[persons]
    row = b.pick(PATIENT, ok)
    if row is None:
        return None
    name = b.get(PATIENT, row, "name")
    wrong = name[:-1] + ("明" if name[-1] != "明" else "亮")
    b.set(PATIENT, row, name=wrong)
    return b.row_truth(
        PATIENT, row, LOGIC, "name_differs_from_record", "name differs from the health record"
    )


_OVERLAP_HOURS = 26  # more than the rule's 24 h


def _overlapping_stay(b: Batch, same_org: bool) -> Truth | list[Truth] | None:
    """A new stay, discharged today, admitted 26 h before the end of the person's latest
    stay (uploaded earlier, at this hospital or another): that stay was judged without it,
    so the new row overlaps; at another hospital, that hospital is told today too, under its
    earlier stay's key (section 7.2: both hospitals are told), so the other hospital's batch
    of today is one validation reads in full (no lossy fault). The clinical content is
    neutral (no operation, a respiratory diagnosis), so no other rule is about it."""
    pop, org, day0 = b.city.pop, b.org.org_code, naive_seconds(b.day)
    df = b.frames[STAY]
    if df.height == 0:
        return None
    today = set(df["_person"].to_list())
    candidates = [
        person
        for person, (where, admit, end, _) in sorted(b.city.last_stay.items())
        if (where == org) == same_org
        and (same_org or not LOSSY & set(b.plan.batch_faults(where, STAY, b.d)))
        and end < day0
        and end - admit >= 3 * DAY
        and end >= day0 - 3 * DAY
        and pop.death_day[person] == ALIVE
        and not pop.tainted[person]
        and pop.id_type[person] == RESIDENT
        and person not in today
    ]
    ok = (
        ~df["_death"].to_numpy()
        & df["newborn_weight_g"].is_null().to_numpy()
        & (df["discharge_method"] != refdata.DEATH_DISCHARGE_METHOD).to_numpy()
    )
    if not candidates:
        return None
    template = b.pick(STAY, ok)
    if template is None:
        return None
    b.used[STAY].discard(template)
    person = candidates[int(b.rng.integers(0, len(candidates)))]
    earlier_org, _, end, earlier_key = b.city.last_stay[person]
    admit = dt.datetime(1970, 1, 1) + dt.timedelta(seconds=end - _OVERLAP_HOURS * 3600)
    discharge = _naive(b.get(STAY, template, "discharge_time"))
    patient_id = b.city.patient_ids(b.org, np.array([person]))[0]
    admission_id = f"ZY{b.day:%y%m%d}8{1 if same_org else 2:04d}"
    code, _ = refdata.NEUTRAL_DX
    rows = df.slice(template, 1).with_columns(
        pl.lit(admission_id).alias("admission_id"),
        pl.lit(patient_id).alias("patient_id"),
        pl.lit(admit.strftime("%Y-%m-%d %H:%M:%S")).alias("admit_time"),
        pl.lit(str(max((discharge.date() - admit.date()).days, 1))).alias("los_days"),
        pl.lit(code).alias("principal_dx_code"),
        pl.lit(None, pl.String).alias("other_dx_codes"),
        pl.lit(None, pl.String).alias("principal_op_code"),
        pl.lit(None, pl.String).alias("op_level"),
        pl.lit("0").alias("minimally_invasive"),
        pl.lit(person, pl.Int64).alias("_person"),
        pl.lit(int(pop.sex[person]), pl.Int64).alias("_sex"),
        pl.lit(int(pop.age_days(np.array([person]), b.day)[0]), pl.Int64).alias("_age_days"),
    )
    b.append(STAY, rows)
    if person not in b.city.uploaded[org] and person not in b.frames[PATIENT]["_person"]:
        secs = int((admit - dt.datetime(1970, 1, 1)).total_seconds()) - 600
        patient = patient_rows(b.city, org, np.array([person]), np.array([secs]))
        b.append(PATIENT, to_text(patient, PATIENT))
    where = "the same hospital" if same_org else "another hospital"
    truth = b.truth(
        STAY,
        admission_id,
        LOGIC,
        "stay_overlap_same_org" if same_org else "stay_overlap_other_org",
        f"overlaps the person's stay at {where} by {_OVERLAP_HOURS} h",
    )
    if same_org:
        return truth
    told = replace(
        truth,
        org_code=earlier_org,
        record_key=earlier_key,
        detail=f"a stay another hospital sent today overlaps this stay by {_OVERLAP_HOURS} h",
    )
    return [truth, told]


def inj_stay_overlap_same_org(b: Batch) -> Truth | list[Truth] | None:
    return _overlapping_stay(b, same_org=True)


def inj_stay_overlap_other_org(b: Batch) -> Truth | list[Truth] | None:
    return _overlapping_stay(b, same_org=False)


_RESENT = 3


def inj_visit_resent(b: Batch) -> Truth | list[Truth] | None:
    """A hospital sends a few of yesterday's visits again, unchanged: rows without a defect
    of their own, of living persons."""
    sent = b.plan.sent_visits.get(b.org.org_code)
    if sent is None or sent[0] != b.d - 1 or sent[1].height == 0:
        return None
    if LOSSY & set(b.plan.batch_faults(b.org.org_code, VISIT, b.d - 1)):
        return None
    _, visits, defective = sent
    pop = b.city.pop
    persons = visits["_person"].to_numpy()
    ok = (
        ~visits["visit_id"].is_in(sorted(defective)).to_numpy()
        & (persons >= 0)
        & (pop.death_day[np.maximum(persons, 0)] == ALIVE)
        & ~pop.tainted[np.maximum(persons, 0)]
    )
    rows = np.flatnonzero(ok)[:_RESENT]
    if len(rows) == 0:
        return None
    again = visits[rows.tolist()]
    b.append(VISIT, again)
    return [
        b.truth(
            VISIT,
            key,
            LOGIC,
            "resent_record",
            f"visit {key} was already sent for {b.city.day(b.d - 1)}",
        )
        for key in again["visit_id"].to_list()
    ]


# --- section 7.3 (v1.1): plausibility over time and against peers -----------------------
def inj_rx_money_unit_shift(b: Batch) -> Truth | None:
    """Section 7.3: one day of a hospital's prescription amounts in fen (x 100)."""
    df = b.frames[RX]
    if df.height < 3:
        return None

    def fen(text: str | None) -> str | None:
        try:
            return _fmt(_dec(text) * 100, 2) if text is not None else None
        except ArithmeticError:
            return text  # an untypeable value put in by another defect stays as it is

    amounts = [fen(t) for t in df["amount"].to_list()]
    b.frames[RX] = df.with_columns(amount=pl.Series(amounts, dtype=pl.String))
    return b.truth(
        RX,
        None,
        CORRECTNESS,
        "money_unit_shift",
        "every amount of the batch x 100 (fen instead of yuan)",
        "loaded",
    )


def _readable_bp(df: pl.DataFrame) -> np.ndarray:
    """Hypertension follow-ups with both blood pressures (as text) filled."""
    return (
        (df["disease_code"] == "I10") & df["sbp"].is_not_null() & df["dbp"].is_not_null()
    ).to_numpy()


def _has_reading(df: pl.DataFrame, readings: list[dict]) -> np.ndarray:
    """Follow-ups whose reading (the copied_readings parameter: disease -> fields) is filled."""
    ok = np.zeros(df.height, dtype=bool)
    for item in readings:
        mask = df["disease_code"] == item["disease"]
        for f in item["fields"]:
            mask = mask & df[f].is_not_null()
        ok |= mask.to_numpy()
    return ok


def _followup_copy(b: Batch, row: int, **values: object) -> pl.DataFrame:
    return b.frames[FOLLOWUP][row].with_columns(
        [pl.lit(v, dtype=pl.String).alias(k) for k, v in values.items()]
    )


def inj_followup_copied(b: Batch) -> Truth | None:
    """Section 7.3: the reading of a follow-up copied into the two follow-ups before it; the
    original, the third of the run, fails. The copies stay within the record lag."""
    from expectations.rules.rulebase import rulebase

    df = b.frames[FOLLOWUP]
    if df.height == 0:
        return None
    dates = [dt.date.fromisoformat(t) for t in df["followup_date"].to_list()]
    recent = np.array([(b.day - x).days <= late_after_days() - 2 for x in dates])
    readings = _params(rulebase(), "cross.copied_readings")["readings"]
    row = b.pick(FOLLOWUP, _has_reading(df, readings) & recent)
    if row is None:
        return None
    when = dates[row]
    fields = next(
        r["fields"] for r in readings if r["disease"] == b.get(FOLLOWUP, row, "disease_code")
    )
    gap = (dt.date.fromisoformat(b.get(FOLLOWUP, row, "next_followup_date")) - when).days
    key = b.key(FOLLOWUP, row)
    copies = [
        _followup_copy(
            b,
            row,
            followup_id=f"{key}C{k}",
            followup_date=(when - dt.timedelta(days=k)).isoformat(),
            next_followup_date=(when - dt.timedelta(days=k - gap)).isoformat(),
        )
        for k in (2, 1)
    ]
    b.append(FOLLOWUP, pl.concat(copies, how="vertical"))
    reading = "/".join(str(b.get(FOLLOWUP, row, f)) for f in fields)
    return b.truth(
        FOLLOWUP,
        key,
        LOGIC,
        "copied_readings",
        f"{'/'.join(fields)} {reading} in the two follow-ups before this one too",
    )


def inj_followup_workload(b: Batch) -> list[Truth] | None:
    """Section 7.3: one doctor id with one follow-up more than the rule allows on the
    business date (copies of this batch's hypertension follow-ups, each with its own
    blood pressure so no reading is copied); every such row fails."""
    from expectations.rules.rulebase import rulebase

    spec = _params(rulebase(), "cross.implausible_workload")["workload"]
    limit = next(int(w["max_per_day"]) for w in spec if w["dataset"] == FOLLOWUP)
    df = b.frames[FOLLOWUP]
    clean = _readable_bp(df)
    clean[list(b.used.get(FOLLOWUP, ()))] = False  # rows another defect was put into
    sources = np.flatnonzero(clean)
    if not len(sources):
        return None
    doctor, day = f"GW{b.org.org_code}900", b.day
    copies = []
    for k in range(limit + 1):
        row = int(sources[k % len(sources)])
        sbp = int(b.get(FOLLOWUP, row, "sbp")) + 1 + k  # still above dbp and below 300
        copies.append(
            _followup_copy(
                b,
                row,
                followup_id=f"{b.key(FOLLOWUP, row)}W{k:03d}",
                followup_date=day.isoformat(),
                next_followup_date=(day + dt.timedelta(days=90)).isoformat(),
                sbp=str(sbp),
                doctor_id=doctor,
            )
        )
    frame = pl.concat(copies, how="vertical")
    b.append(FOLLOWUP, frame)
    return [
        b.truth(
            FOLLOWUP,
            key,
            LOGIC,
            "implausible_workload",
            f"doctor {doctor}: {limit + 1} follow-ups on {day}",
        )
        for key in frame["followup_id"].to_list()
    ]


INJECTORS: dict[tuple[str, str], Callable[[Batch], Truth | list[Truth] | None]] = {
    (PATIENT, "bad_check_digit"): inj_patient_bad_check_digit,
    (PATIENT, "birth_id_mismatch"): inj_patient_birth_id_mismatch,
    (PATIENT, "bad_phone"): inj_patient_bad_phone,
    (PATIENT, "unknown_code"): inj_patient_unknown_code,
    (VISIT, "fee_sum_mismatch"): inj_visit_fee_sum,
    (VISIT, "unknown_code"): inj_visit_unknown_code,
    (VISIT, "missing_required"): inj_visit_missing_required,
    (VISIT, "sex_specific_dx"): inj_visit_sex_specific,
    (VISIT, "visit_after_death"): inj_visit_after_death,
    (VISIT, "unknown_patient_ref"): inj_visit_unknown_patient,
    (VISIT, "late_record"): inj_visit_late,
    (STAY, "drug_fee_gt_total"): inj_stay_drug_gt_total,
    (STAY, "discharge_before_admit"): inj_stay_discharge_before_admit,
    (STAY, "los_days_mismatch"): inj_stay_los,
    (STAY, "op_without_op_level"): inj_stay_op_level,
    (STAY, "sex_specific_dx"): inj_stay_sex_specific_other_dx,
    (STAY, "external_cause_principal_dx"): inj_stay_external_cause,
    (STAY, "repeated_diagnosis"): inj_stay_repeated_dx,
    (STAY, "age_specific_dx"): inj_stay_age_specific_dx,
    (STAY, "drug_material_gt_total"): inj_stay_drug_material_gt_total,
    (STAY, "death_not_registered"): inj_stay_death_not_registered,
    (RX, "unknown_code"): inj_rx_unknown_code,
    (RX, "late_record"): inj_rx_late,
    (RX, "untypeable_value"): inj_rx_untypeable,
    (LAB, "abnormal_flag_mismatch"): inj_lab_flag,
    (LAB, "duplicate_key"): inj_lab_duplicate,
    (LAB, "event_after_business_date"): inj_lab_future,
    (LAB, "wrong_field_count"): inj_lab_field_count,
    (RECORD, "sex_id_mismatch"): inj_record_sex,
    (RECORD, "missing_required"): inj_record_missing,
    (FOLLOWUP, "sbp_le_dbp"): inj_followup_bp,
    (FOLLOWUP, "next_followup_too_far"): inj_followup_next,
    (FOLLOWUP, "followup_without_diagnosis"): inj_followup_no_dx,
    (ELDERLY, "bmi_mismatch"): inj_elderly_bmi,
    (ELDERLY, "elderly_under_65"): inj_elderly_under_65,
    (ELDERLY, "untypeable_value"): inj_elderly_untypeable,
    (VACCINATION, "bad_check_digit"): inj_vacc_check_digit,
    (VACCINATION, "late_record"): inj_vacc_late,
    (VACCINATION, "untypeable_value"): inj_vacc_untypeable,
    (PATIENT, "name_differs_from_record"): inj_patient_name_differs,
    (STAY, "stay_overlap_same_org"): inj_stay_overlap_same_org,
    (STAY, "stay_overlap_other_org"): inj_stay_overlap_other_org,
    (VISIT, "resent_records"): inj_visit_resent,
    # section 7.3 (v1.1)
    (RX, "money_unit_shift"): inj_rx_money_unit_shift,
    (FOLLOWUP, "copied_readings"): inj_followup_copied,
    (FOLLOWUP, "implausible_workload"): inj_followup_workload,
}


def inject(
    city: City,
    fp: FaultPlan,
    org: Organisation,
    d: int,
    frames: dict[str, pl.DataFrame],
    formats: dict[str, str],
) -> list[Truth]:
    """Put this organisation-day's planned (and earlier failed) defects into its text frames."""
    if not fp.enabled or org.org_code not in fp.faulty:
        return []
    planned = list(fp.records.get((org.org_code, d), []))
    kind = org.kind
    retry = [p for p in fp.pending if p[0] == kind]
    fp.pending = [p for p in fp.pending if p[0] != kind]
    b = Batch(city, org, d, frames, city.rng("inject", org.org_code, d), fp, generated=dict(frames))
    truths = []
    for dataset, defect in planned + [(ds, df) for _, ds, df in retry]:
        lossy = LOSSY & set(fp.batch_faults(org.org_code, dataset, d))
        csv_needed = defect == "wrong_field_count" and formats.get(org.org_code) not in CSV_FORMATS
        result = (
            None
            if lossy or csv_needed or fp.volume_changed(org.org_code, d)
            else INJECTORS[(dataset, defect)](b)
        )
        if result is None:
            fp.pending.append((kind, dataset, defect))
        elif isinstance(result, list):
            truths += result
        else:
            truths.append(result)
    frames.update(b.frames)
    if VISIT in frames:
        defective = {t.record_key for t in truths if t.dataset == VISIT and t.record_key}
        fp.sent_visits[org.org_code] = (d, frames[VISIT], defective)
    return truths
