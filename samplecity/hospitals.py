"""One hospital-day: patients, outpatient visits, discharges, prescription items, lab results.

Everything is drawn with numpy for all rows at once; the frames use contract field names and
keep a few helper columns (`_person`, ...) for the fault injector and the city state.
"""

from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl

from contracts.registry import Organisation
from samplecity import refdata
from samplecity.city import City
from samplecity.clock import DAY, day_number, is_holiday, is_workday, naive_seconds
from samplecity.orgs import LEVEL_INPATIENT_WEIGHT, LEVEL_OUTPATIENT_WEIGHT
from samplecity.schema import has_field, scale, scaled

# scale 1.0, reference city of 8 tertiary, 16 secondary, 16 primary hospitals, a weekday
VISITS_PER_UNIT = 120_000 / 14.88
STAYS_PER_UNIT = 6_000 / 16.16
LOCAL_SHARE = {"tertiary": 0.45, "secondary": 0.75, "primary": 0.92}
LOCAL_SHARE_IP = {"tertiary": 0.5, "secondary": 0.8, "primary": 0.95}
EMERGENCY_SHARE = {"tertiary": 0.10, "secondary": 0.08, "primary": 0.03}
LAB_SHARE = {"tertiary": 0.26, "secondary": 0.22, "primary": 0.15}
DOCTORS = {"tertiary": 40, "secondary": 15, "primary": 5}
REGISTRATION_FEE = {"tertiary": 2500, "secondary": 1500, "primary": 1000}  # cents
IP_FEE_MEAN = {"tertiary": 1_200_000, "secondary": 600_000, "primary": 250_000}  # cents
PANEL_PRICE = {"CBC": 2500, "BIO": 12000, "LIP": 4000, "URI": 1500, "CRP": 3000, "HBA1C": 6000}
OUT_HOURS = np.array([0.03, 0.16, 0.18, 0.16, 0.10, 0.03, 0.04, 0.10, 0.10, 0.07, 0.03])  # 7..17h

PATIENT, VISIT, STAY, RX, LAB = (
    "patient",
    "outpatient_visit",
    "inpatient_discharge",
    "prescription",
    "lab_result",
)
DATASETS = (PATIENT, VISIT, STAY, RX, LAB)


def day_factor(day: dt.date) -> float:
    """Hospital volume of a day relative to a normal weekday."""
    if day.weekday() >= 5:
        return 0.9 if is_workday(day) else (0.55 if day.weekday() == 5 else 0.45)
    return 0.5 if is_holiday(day) else 1.0


# --- static tables --------------------------------------------------------------------------

_DRUG_GROUPS = sorted({d.group for d in refdata.DRUGS})
_DRUG_ORDER = sorted(range(len(refdata.DRUGS)), key=lambda i: (refdata.DRUGS[i].group, i))
_DRUGS = [refdata.DRUGS[i] for i in _DRUG_ORDER]
_GROUP_INDEX = {g: i for i, g in enumerate(_DRUG_GROUPS)}
_GROUP_FIRST = np.array(
    [next(i for i, d in enumerate(_DRUGS) if d.group == g) for g in _DRUG_GROUPS]
)
_GROUP_LEN = np.array([sum(d.group == g for d in _DRUGS) for g in _DRUG_GROUPS])
_DRUG_PRICE = np.array([d.price for d in _DRUGS], dtype=np.int64)
_DRUG_QMAX = np.array([d.qty_max for d in _DRUGS], dtype=np.int64)
_DRUG_ABX = np.array([d.antibiotic for d in _DRUGS])
_DRUG_DDD = np.array([d.ddd for d in _DRUGS])
_DRUG_CODE = pl.Series([d.code for d in _DRUGS])
_DRUG_NAME = pl.Series([d.name for d in _DRUGS])
_DRUG_ROUTE = pl.Series([d.route for d in _DRUGS])
_RX_PROB = np.array([refdata.GROUP_RX_PROB[g] for g in _DRUG_GROUPS])

_OUT = refdata.OUTPATIENT_DX
_OUT_GROUP = np.array([_GROUP_INDEX[d.group] for d in _OUT])
_OUT_CHRONIC = np.array([d.group in refdata.CHRONIC_GROUPS for d in _OUT])

_DEATH_ONLY = (
    refdata.IpDx("I61.9", "脑出血", "0303", "CV", (0,) * 6, 6),
    refdata.IpDx("C22.0", "肝细胞癌", "1900", "ONC", (0,) * 6, 12),
)
_IP = refdata.INPATIENT_DX + _DEATH_ONLY
_IP_INDEX = {d.code: i for i, d in enumerate(_IP)}
_IP_GROUP = np.array([_GROUP_INDEX[d.group] for d in _IP])
_IP_LOS = np.array([d.los for d in _IP])
_IP_NEWBORN = np.array([d.newborn for d in _IP])
_IP_HAS_OP = np.array([d.op is not None for d in _IP])
_IP_OP_PROB = np.array([d.op_prob for d in _IP])
IN_HOSPITAL_CAUSES = frozenset(c for c, _ in refdata.DEATH_CAUSES if c in _IP_INDEX)

_PANELS = list(refdata.LAB_PANELS)
_ITEMS = [item for p in _PANELS for item in refdata.LAB_PANELS[p]]
_PANEL_FIRST = np.cumsum([0] + [len(refdata.LAB_PANELS[p]) for p in _PANELS])[:-1]
_PANEL_LEN = np.array([len(refdata.LAB_PANELS[p]) for p in _PANELS])
_PANEL_PRICE = np.array([PANEL_PRICE[p] for p in _PANELS], dtype=np.int64)
_ITEM_NUMERIC = np.array([i.unit is not None for i in _ITEMS])


def _dx_tables(
    weights: list[tuple[float, ...]],
    sexes: list[str],
    groups: list[bool],
    chronic_factor: float,
    bands: int,
) -> np.ndarray:
    """Normalised cumulative weights per stratum (band * 2 + sex - 1)."""
    out = np.zeros((bands * 2, len(weights)))
    for band in range(bands):
        for sex in (1, 2):
            w = np.array(
                [
                    wt[band]
                    * (chronic_factor if chronic else 1.0)
                    * (0 if s and s != str(sex) else 1)
                    for wt, s, chronic in zip(weights, sexes, groups, strict=True)
                ]
            )
            out[band * 2 + sex - 1] = np.cumsum(w) / w.sum()
    out[:, -1] = 1.0
    return out


_OUT_TABLES = {
    level: _dx_tables(
        [d.weights for d in _OUT],
        [d.sex for d in _OUT],
        list(_OUT_CHRONIC),
        refdata.CHRONIC_LEVEL_FACTOR[level],
        len(refdata.OUT_BANDS),
    )
    for level in LEVEL_OUTPATIENT_WEIGHT
}
_IP_TABLE = _dx_tables(
    [d.weights for d in _IP], [d.sex for d in _IP], [False] * len(_IP), 1.0, len(refdata.IP_BANDS)
)


def _choose(tables: np.ndarray, stratum: np.ndarray, u: np.ndarray) -> np.ndarray:
    return (u[:, None] >= tables[stratum]).sum(axis=1).clip(0, tables.shape[1] - 1)


def _num(prefix: str | pl.Series, numbers: np.ndarray, width: int) -> pl.Series:
    return prefix + pl.Series(np.asarray(numbers, dtype=np.int64)).cast(pl.String).str.zfill(width)


def _drugs_for(group: np.ndarray, u: np.ndarray) -> np.ndarray:
    return _GROUP_FIRST[group] + np.minimum(
        (u * _GROUP_LEN[group]).astype(np.int64), _GROUP_LEN[group] - 1
    )


def dx_code_text(
    codes: list[str], ext: list[str | None], idx: np.ndarray, clinical: bool
) -> pl.Series:
    spelled = [e if clinical and e else c for c, e in zip(codes, ext, strict=True)]
    return pl.Series(spelled).gather(idx)


# --- persons --------------------------------------------------------------------------------


def pick_patients(
    city: City,
    org: Organisation,
    d: int,
    n: int,
    cum: np.ndarray,
    local_share: float,
    returning: float,
    rng: np.random.Generator,
) -> np.ndarray:
    pop = city.pop
    region = city.hosp_region[org.org_code]
    known = city.uploaded[org.org_code]
    if len(known):
        known = known[pop.usable(known, d)]
    n_ret = rng.binomial(n, returning) if len(known) else 0
    n_local = rng.binomial(n - n_ret, local_share)
    idx = np.concatenate(
        [
            known[rng.integers(0, max(len(known), 1), n_ret)] if n_ret else np.zeros(0, np.int64),
            pop.sample(rng, n_local, cum, region),
            pop.sample(rng, n - n_ret - n_local, cum, None),
        ]
    )
    for _ in range(6):
        bad = ~pop.usable(idx, d)
        if not bad.any():
            break
        idx[bad] = pop.sample(rng, int(bad.sum()), cum, region)
    return idx[pop.usable(idx, d)]


# --- the hospital day -----------------------------------------------------------------------


def hospital_day(
    city: City, org: Organisation, d: int, volume: float = 1.0, attempt: int = 0
) -> dict[str, pl.DataFrame]:
    """Frames (typed, contract field names, helper columns) of the five hospital datasets.

    `attempt` > 0 draws the day again from another random stream (see volumes.py)."""
    rng = city.rng("hospital", org.org_code, d, *([attempt] if attempt else []))
    day = city.day(d)
    level = org.level
    mean = city.scale * city.hosp_size[org.org_code] * day_factor(day) * volume
    n_vis = rng.poisson(VISITS_PER_UNIT * LEVEL_OUTPATIENT_WEIGHT[level] * mean)
    n_stay = rng.poisson(STAYS_PER_UNIT * LEVEL_INPATIENT_WEIGHT[level] * mean)
    clinical = org.org_code in city.clinical_coding

    v = _visit_arrays(city, org, d, n_vis, rng)
    s = _stay_arrays(city, org, d, n_stay, rng)
    rx_out, drug_fee = _outpatient_rx(v, day, rng)
    rx_in = _inpatient_rx(s, day, rng)
    lab_out, lab_fee = _outpatient_labs(v, level, day, rng)
    lab_in = _inpatient_labs(s, day, rng)

    frames = {
        VISIT: _visit_frame(city, org, v, day, drug_fee, lab_fee, clinical, rng),
        STAY: _stay_frame(city, org, s, day, clinical, rng),
        RX: pl.concat([rx_out, rx_in], how="vertical"),
        LAB: pl.concat([lab_out, lab_in], how="vertical"),
    }
    frames[RX] = frames[RX].with_columns(
        patient_id=city.patient_ids(org, frames[RX]["_person"].to_numpy())
    )
    frames[LAB] = frames[LAB].with_columns(
        patient_id=city.patient_ids(org, frames[LAB]["_person"].to_numpy())
    )
    frames[PATIENT] = patient_frame(
        city, org, d, v["person"], v["t"], s["person"], s["discharge"], rng
    )
    return frames


def _visit_arrays(city: City, org: Organisation, d: int, n: int, rng: np.random.Generator) -> dict:
    pop = city.pop
    level = org.level
    day = city.day(d)
    persons = pick_patients(city, org, d, n, pop.w_out, LOCAL_SHARE[level], 0.35, rng)
    n = len(persons)
    age = pop.age_years(persons, day)
    sex = pop.sex[persons].astype(np.int64)
    band = np.searchsorted(np.asarray(refdata.OUT_BANDS), age, side="right") - 1
    dx = _choose(_OUT_TABLES[level], band * 2 + sex - 1, rng.random(n))
    emergency = rng.random(n) < EMERGENCY_SHARE[level]
    hour = np.where(
        emergency,
        rng.integers(0, 24, n),
        7 + rng.choice(len(OUT_HOURS), size=n, p=OUT_HOURS / OUT_HOURS.sum()),
    )
    t = naive_seconds(day) + hour * 3600 + rng.integers(0, 3600, n)
    order = np.argsort(t, kind="stable")
    return {
        "person": persons[order],
        "age": age[order],
        "band": band[order],
        "sex": sex[order],
        "dx": dx[order],
        "emergency": emergency[order],
        "t": t[order],
        "seq": np.arange(1, n + 1),
        "n": n,
    }


def _visit_frame(
    city: City,
    org: Organisation,
    v: dict,
    day: dt.date,
    drug_fee: np.ndarray,
    lab_fee: np.ndarray,
    clinical: bool,
    rng: np.random.Generator,
) -> pl.DataFrame:
    n = v["n"]
    level = org.level
    depts = np.array([d.dept for d in _OUT], dtype=object)[v["dx"]]
    groups = np.array([d.group for d in _OUT], dtype=object)[v["dx"]]
    child = v["band"] == 0
    depts = np.where(child & np.isin(groups, ["RESP", "GI", "GEN"]), refdata.PEDIATRIC_DEPT, depts)
    if level == "primary":
        depts = np.full(n, refdata.GP_DEPT, dtype=object)
    if "中医" in org.name:
        depts = np.where(rng.random(n) < 0.4, refdata.TCM_DEPT, depts)
    depts = np.where(v["emergency"], refdata.EMERGENCY_DEPT, depts)
    dept_codes = pl.Series(depts.astype(str))
    dept_names = dept_codes.replace_strict(refdata.DEPTS, return_dtype=pl.String)
    doctors = _num("YS" + dept_codes, rng.integers(1, DOCTORS[level] + 1, n), 3)

    exam = np.where(rng.random(n) < 0.15, rng.integers(3000, 30000, n), 0)
    treat = np.where(rng.random(n) < 0.2, rng.integers(1000, 20000, n), 0)
    material = np.where(rng.random(n) < 0.15, rng.integers(200, 3000, n), 0)
    other = np.full(n, REGISTRATION_FEE[level]) + np.where(v["emergency"], 1000, 0)
    total = drug_fee + exam + lab_fee + treat + material + other
    name = VISIT
    yymmdd = f"{day:%y%m%d}"
    return pl.DataFrame(
        {
            "visit_id": _num(f"MZ{yymmdd}", v["seq"], 6),
            "patient_id": city.patient_ids(org, v["person"]),
            "visit_time": v["t"],
            "visit_type": np.where(v["emergency"], "2", "1"),
            "dept_code": dept_codes,
            "dept_name": dept_names,
            "doctor_id": doctors,
            "diagnosis_code": dx_code_text(
                [d.code for d in _OUT], [d.ext for d in _OUT], v["dx"], clinical
            ),
            "diagnosis_name": pl.Series([d.name for d in _OUT]).gather(v["dx"]),
            "total_fee": scaled(total, 2, name, "total_fee"),
            "drug_fee": scaled(drug_fee, 2, name, "drug_fee"),
            "exam_fee": scaled(exam, 2, name, "exam_fee"),
            "lab_fee": scaled(lab_fee, 2, name, "lab_fee"),
            "treatment_fee": scaled(treat, 2, name, "treatment_fee"),
            "material_fee": scaled(material, 2, name, "material_fee"),
            "other_fee": scaled(other, 2, name, "other_fee"),
            "_person": v["person"],
            "_sex": v["sex"],
        },
        schema_overrides={"visit_time": pl.Int64},
    )


def _outpatient_rx(
    v: dict, day: dt.date, rng: np.random.Generator
) -> tuple[pl.DataFrame, np.ndarray]:
    n = v["n"]
    group = _OUT_GROUP[v["dx"]]
    vi = np.flatnonzero(rng.random(n) < _RX_PROB[group])
    k = 1 + np.minimum(rng.poisson(np.where(_OUT_CHRONIC[v["dx"][vi]], 1.0, 1.6)), 5)
    item_visit = np.repeat(vi, k)
    m = len(item_visit)
    item_no = np.arange(m) - np.repeat(np.cumsum(k) - k, k) + 1
    drug = _drugs_for(group[item_visit], rng.random(m))
    day_end = naive_seconds(day) + DAY - 1
    ordered = np.minimum(v["t"][item_visit] + rng.integers(120, 2400, m), day_end)
    frame, amount = _rx_frame(
        rx_ids=_num(f"CF{day:%y%m%d}", v["seq"][item_visit], 6),
        item_no=item_no,
        item_width=2,
        encounter_type="1",
        encounter_ids=_num(f"MZ{day:%y%m%d}", v["seq"][item_visit], 6),
        persons=v["person"][item_visit],
        drug=drug,
        ordered=ordered,
        rng=rng,
    )
    drug_fee = np.bincount(item_visit, weights=amount, minlength=n).astype(np.int64)
    return frame, drug_fee


def _rx_frame(
    rx_ids: pl.Series,
    item_no: np.ndarray,
    item_width: int,
    encounter_type: str,
    encounter_ids: pl.Series,
    persons: np.ndarray,
    drug: np.ndarray,
    ordered: np.ndarray,
    rng: np.random.Generator,
) -> tuple[pl.DataFrame, np.ndarray]:
    m = len(drug)
    qty = 1 + (rng.random(m) * _DRUG_QMAX[drug]).astype(np.int64)
    amount = qty * _DRUG_PRICE[drug]
    abx = _DRUG_ABX[drug]
    ddd = np.round(qty * _DRUG_DDD[drug] * 1000).astype(np.int64)
    name = RX
    frame = pl.DataFrame(
        {
            "rx_item_id": rx_ids
            + pl.Series(item_no.astype(np.int64)).cast(pl.String).str.zfill(item_width),
            "rx_id": rx_ids,
            "encounter_type": pl.Series([encounter_type] * m, dtype=pl.String),
            "encounter_id": encounter_ids,
            "patient_id": pl.Series([None] * m, dtype=pl.String),
            "drug_code": _DRUG_CODE.gather(drug),
            "drug_name": _DRUG_NAME.gather(drug),
            "is_antibiotic": abx.astype(np.int64),
            "ddd_count": null_where(scaled(ddd, 3, name, "ddd_count"), ~abx),
            "route_code": _DRUG_ROUTE.gather(drug),
            "quantity": scaled(qty * 100, 2, name, "quantity"),
            "amount": scaled(amount, 2, name, "amount"),
            "ordered_at": ordered.astype(np.int64),
            "_person": persons.astype(np.int64),
        },
        schema_overrides={"ddd_count": pl.Int64, "is_antibiotic": pl.Int64},
    )
    return frame, amount


def _panel_choice(
    groups: np.ndarray, rng: np.random.Generator, inpatient: bool
) -> list[np.ndarray]:
    """Per panel: a boolean per encounter whether that panel was ordered."""
    g = np.array(_DRUG_GROUPS)[groups]
    n = len(groups)
    cardio = np.isin(g, ["HTN", "CV", "DM"])
    prob = {
        "CBC": np.full(n, 0.85 if inpatient else 0.75),
        "BIO": np.full(n, 0.7 if inpatient else 0.3),
        "LIP": np.where(cardio, 0.4, 0.05),
        "URI": np.where(np.isin(g, ["URO", "GYN", "OB"]), 0.7, 0.12),
        "CRP": np.where(g == "RESP", 0.5, 0.1),
        "HBA1C": np.where(g == "DM", 0.6, 0.0),
    }
    return [rng.random(n) < prob[p] for p in _PANELS]


def _outpatient_labs(
    v: dict, level: str, day: dt.date, rng: np.random.Generator
) -> tuple[pl.DataFrame, np.ndarray]:
    n = v["n"]
    has = rng.random(n) < LAB_SHARE[level]
    chosen = _panel_choice(_OUT_GROUP[v["dx"]], rng, inpatient=False)
    enc, panel = [], []
    for p, sel in enumerate(chosen):
        vi = np.flatnonzero(has & sel)
        enc.append(vi)
        panel.append(np.full(len(vi), p))
    enc_a = np.concatenate(enc)
    panel_a = np.concatenate(panel)
    order = np.lexsort((panel_a, enc_a))
    enc_a, panel_a = enc_a[order], panel_a[order]
    day_end = naive_seconds(day) + DAY - 1
    r = len(enc_a)
    sampled = np.minimum(v["t"][enc_a] + rng.integers(600, 3600, r), day_end - 60)
    reported = np.minimum(sampled + rng.integers(1800, 10800, r), day_end)
    lab_fee = np.bincount(enc_a, weights=_PANEL_PRICE[panel_a], minlength=n).astype(np.int64)
    frame = _lab_frame(
        report_ids=_num(f"JY{day:%y%m%d}", np.arange(1, r + 1), 7),
        encounter_ids=_num(f"MZ{day:%y%m%d}", v["seq"][enc_a], 6),
        persons=v["person"][enc_a],
        panel=panel_a,
        sampled=sampled,
        reported=reported,
        diabetic=_OUT_GROUP[v["dx"][enc_a]] == _GROUP_INDEX["DM"],
        rng=rng,
    )
    return frame, lab_fee


def _lab_frame(
    report_ids: pl.Series,
    encounter_ids: pl.Series,
    persons: np.ndarray,
    panel: np.ndarray,
    sampled: np.ndarray,
    reported: np.ndarray,
    diabetic: np.ndarray,
    rng: np.random.Generator,
) -> pl.DataFrame:
    k = _PANEL_LEN[panel]
    rep = np.repeat(np.arange(len(panel)), k)
    m = len(rep)
    within = np.arange(m) - np.repeat(np.cumsum(k) - k, k)
    item = _PANEL_FIRST[panel][rep] + within
    name = LAB
    ref_scale = max(_scale_or(name, "ref_low", 4), 0)
    mean = np.array([i.mean for i in _ITEMS])[item]
    sd = np.array([i.sd for i in _ITEMS])[item]
    codes = np.array([i.code for i in _ITEMS])[item]
    boost = diabetic[rep] & np.isin(codes, ["GLU", "HBA1C"])
    mean = np.where(boost, mean * 1.35, mean)
    dec = np.array([i.decimals for i in _ITEMS])[item]
    value = np.maximum(mean + sd * rng.standard_normal(m), 0.1 * mean)
    vint = np.round(value * 10.0**dec).astype(np.int64)  # value in units of 10**-dec
    lows = np.array([i.low if i.low is not None else 0 for i in _ITEMS])
    highs = np.array([i.high if i.high is not None else 0 for i in _ITEMS])
    low_c = np.round(lows[item] * 10**ref_scale).astype(np.int64)
    high_c = np.round(highs[item] * 10**ref_scale).astype(np.int64)
    # compare at the common scale 10**(dec + ref_scale)
    v_common = vint * 10**ref_scale
    numeric = _ITEM_NUMERIC[item]
    flag = np.where(
        v_common > high_c * 10**dec, "H", np.where(v_common < low_c * 10**dec, "L", "N")
    )
    qual_abnormal = rng.random(m) < 0.12
    qual_value = np.where(
        qual_abnormal,
        np.array(refdata.QUALITATIVE_ABNORMAL)[rng.integers(0, 3, m)],
        refdata.QUALITATIVE_NORMAL,
    )
    flag = np.where(numeric, flag, np.where(qual_abnormal, "A", "N"))
    vser = pl.Series(vint)
    text = pl.select(
        pl.when(pl.Series(dec) == 0)
        .then(vser.cast(pl.String))
        .when(pl.Series(dec) == 1)
        .then(_dec(vser, 1))
        .otherwise(_dec(vser, 2))
    ).to_series()
    result = pl.select(
        pl.when(pl.Series(numeric)).then(text).otherwise(pl.Series(qual_value))
    ).to_series()
    unit = pl.Series([i.unit for i in _ITEMS], dtype=pl.String).gather(item)
    report_of_row = report_ids.gather(rep)
    return pl.DataFrame(
        {
            "result_id": report_of_row + pl.Series(within + 1).cast(pl.String).str.zfill(2),
            "report_id": report_of_row,
            "encounter_id": encounter_ids.gather(rep),
            "patient_id": pl.Series([None] * m, dtype=pl.String),
            "item_code": pl.Series(codes, dtype=pl.String),
            "item_name": pl.Series([i.name for i in _ITEMS]).gather(item),
            "result_value": result,
            "unit": unit,
            "ref_low": null_where(low_c, ~numeric),
            "ref_high": null_where(high_c, ~numeric),
            "abnormal_flag": pl.Series(flag, dtype=pl.String),
            "sampled_at": sampled[rep].astype(np.int64),
            "reported_at": reported[rep].astype(np.int64),
            "_person": persons[rep].astype(np.int64),
        },
        schema_overrides={"ref_low": pl.Int64, "ref_high": pl.Int64},
    )


def _scale_or(name: str, field: str, default: int) -> int:
    return scale(name, field) if has_field(name, field) else default


def null_where(values: np.ndarray, mask: np.ndarray) -> pl.Series:
    """Int64 values with nulls where `mask` is true."""
    vals = pl.Series(np.asarray(values, dtype=np.int64))
    return pl.select(
        pl.when(pl.Series(mask, dtype=pl.Boolean)).then(None).otherwise(vals)
    ).to_series()


def _dec(s: pl.Series, digits: int) -> pl.Series:
    return (
        (s // 10**digits).cast(pl.String) + "." + (s % 10**digits).cast(pl.String).str.zfill(digits)
    )


# --- inpatient stays ------------------------------------------------------------------------


def _stay_arrays(city: City, org: Organisation, d: int, n: int, rng: np.random.Generator) -> dict:
    pop = city.pop
    day = city.day(d)
    persons = pick_patients(city, org, d, n, pop.w_ip, LOCAL_SHARE_IP[org.level], 0.15, rng)
    age_days = pop.age_days(persons, day)
    age = pop.age_years(persons, day)
    sex = pop.sex[persons].astype(np.int64)
    band = np.searchsorted(np.asarray(refdata.IP_BANDS), age, side="right") - 1
    dx = _choose(_IP_TABLE, band * 2 + sex - 1, rng.random(len(persons)))
    death = np.zeros(len(persons), dtype=bool)
    dying = city.ip_deaths.get((org.org_code, d), [])
    if dying:
        dp = np.array(dying, dtype=np.int64)
        persons = np.concatenate([persons, dp])
        age_days = np.concatenate([age_days, pop.age_days(dp, day)])
        age = np.concatenate([age, pop.age_years(dp, day)])
        sex = np.concatenate([sex, pop.sex[dp].astype(np.int64)])
        band = np.concatenate(
            [
                band,
                np.searchsorted(np.asarray(refdata.IP_BANDS), pop.age_years(dp, day), side="right")
                - 1,
            ]
        )
        dx = np.concatenate([dx, [_IP_INDEX[city.deaths[p].cause] for p in dying]])
        death = np.concatenate([death, np.ones(len(dp), dtype=bool)])
    n = len(persons)
    los = np.round(rng.gamma(2.0, _IP_LOS[dx] / 2.0)).astype(np.int64).clip(0, 60)
    los = np.where(_IP_NEWBORN[dx], np.minimum(los, age_days - 1), los).clip(0, None)
    # a stay that ends in death starts before the death date
    los = np.where(death, np.maximum(los, 1), los)
    day0 = naive_seconds(day)
    admit_day0 = day0 - los * DAY
    admit = admit_day0 + rng.integers(0, 24, n) * 3600 + rng.integers(0, 3600, n)
    discharge = day0 + rng.integers(8, 17, n) * 3600 + rng.integers(0, 3600, n)
    same_day = los == 0
    admit = np.where(
        same_day, day0 + rng.integers(6, 10, n) * 3600 + rng.integers(0, 3600, n), admit
    )
    discharge = np.where(same_day, admit + rng.integers(3 * 3600, 8 * 3600, n), discharge)
    discharge = np.where(
        death, day0 + rng.integers(0, 24, n) * 3600 + rng.integers(0, 3600, n), discharge
    )
    discharge = np.maximum(discharge, admit + 1800)
    discharge = np.minimum(discharge, day0 + DAY - 1)
    admit = np.minimum(admit, discharge)
    _after_earlier_stays(city, persons, death, admit, discharge)
    order = np.argsort(discharge, kind="stable")
    return {
        "person": persons[order],
        "age_days": age_days[order],
        "age": age[order],
        "sex": sex[order],
        "band": band[order],
        "dx": dx[order],
        "death": death[order],
        "admit": admit[order],
        "discharge": discharge[order],
        "seq": np.arange(1, n + 1),
        "n": n,
    }


def _after_earlier_stays(
    city: City, persons: np.ndarray, death: np.ndarray, admit: np.ndarray, discharge: np.ndarray
) -> None:
    """A person is in one hospital at a time: a stay is admitted once the person's earlier
    stays (any hospital, `City.last_stay`, and earlier stays of this draw) are discharged, or
    half an hour before its own discharge when that is earlier, so no two stays overlap by
    more than that (the standard's rule tolerates 24 h). Stays ending in death keep their
    admission (their last orders lie the day before the death)."""
    seen: dict[int, int] = {}
    for i, person in enumerate(persons.tolist()):
        last = city.last_stay.get(person)
        before = seen.get(person, last[2] if last else None)
        if before is not None and before > admit[i] and not death[i]:
            admit[i] = min(before, discharge[i] - 1800)
        seen[person] = max(int(discharge[i]), before or 0)


def _stay_frame(
    city: City, org: Organisation, s: dict, day: dt.date, clinical: bool, rng: np.random.Generator
) -> pl.DataFrame:
    n = s["n"]
    name = STAY
    dx = s["dx"]
    has_op = _IP_HAS_OP[dx] & (rng.random(n) < _IP_OP_PROB[dx]) & ~s["death"]
    op_codes = np.array([d.op.code if d.op else "" for d in _IP], dtype=object)[dx]
    if clinical:
        op_codes = np.array([c + "00" if c else c for c in op_codes], dtype=object)
    op_level = np.array([d.op.level if d.op else 0 for d in _IP])[dx]
    op_mi = np.array([d.op.minimally_invasive if d.op else 0 for d in _IP])[dx]
    op_ser = pl.Series(np.where(has_op, op_codes, "").astype(str))
    method_codes = [c for c, _ in refdata.DISCHARGE_METHODS]
    method_w = np.array([w for _, w in refdata.DISCHARGE_METHODS])
    method = np.array(method_codes)[rng.choice(len(method_codes), n, p=method_w / method_w.sum())]
    method = np.where(s["death"], refdata.DEATH_DISCHARGE_METHOD, method)

    los_cal = (s["discharge"] // DAY) - (s["admit"] // DAY)
    total = np.round(
        rng.lognormal(np.log(IP_FEE_MEAN[org.level]) - 0.18, 0.6, n)
        * (1 + 0.06 * los_cal)
        * np.where(has_op, 1.8, 1.0)
    ).astype(np.int64)
    drug = np.floor(total * rng.uniform(0.2, 0.45, n)).astype(np.int64)
    abx = np.floor(drug * np.where(rng.random(n) < 0.6, rng.uniform(0, 0.35, n), 0)).astype(
        np.int64
    )
    material = np.floor(total * (rng.uniform(0.03, 0.12, n) + np.where(has_op, 0.15, 0))).astype(
        np.int64
    )

    newborn = _IP_NEWBORN[dx] & (s["age_days"] < 365)
    preterm = dx == _IP_INDEX["P07.3"]
    weight = np.where(
        preterm,
        rng.integers(1200, 2400, n),
        np.clip(rng.normal(3300, 420, n), 2300, 4600).astype(np.int64),
    )
    comorbid = _comorbidities(s["age"], dx, rng)
    depts = pl.Series(np.array([d.dept for d in _IP])[dx])
    yymmdd = f"{day:%y%m%d}"
    return pl.DataFrame(
        {
            "admission_id": _num(f"ZY{yymmdd}", s["seq"], 5),
            "patient_id": city.patient_ids(org, s["person"]),
            "admit_time": s["admit"].astype(np.int64),
            "discharge_time": s["discharge"].astype(np.int64),
            "los_days": np.maximum(los_cal, 1).astype(np.int64),
            "admit_dept_code": depts,
            "discharge_dept_code": depts,
            "principal_dx_code": dx_code_text(
                [d.code for d in _IP], [None] * len(_IP), dx, clinical
            ),
            "other_dx_codes": comorbid,
            "principal_op_code": pl.select(
                pl.when(op_ser == "").then(None).otherwise(op_ser)
            ).to_series(),
            "op_level": null_where(op_level, ~has_op),
            "minimally_invasive": np.where(has_op, op_mi, 0).astype(np.int64),
            "discharge_method": pl.Series(method, dtype=pl.String),
            "total_fee": scaled(total, 2, name, "total_fee"),
            "drug_fee": scaled(drug, 2, name, "drug_fee"),
            "antibiotic_fee": scaled(abx, 2, name, "antibiotic_fee"),
            "material_fee": scaled(material, 2, name, "material_fee"),
            "newborn_weight_g": null_where(weight, ~newborn),
            "_person": s["person"],
            "_sex": s["sex"],
            "_age_days": s["age_days"].astype(np.int64),
            "_death": s["death"],
        },
        schema_overrides={
            "op_level": pl.Int64,
            "newborn_weight_g": pl.Int64,
            "minimally_invasive": pl.Int64,
            "los_days": pl.Int64,
        },
    )


def _comorbidities(age: np.ndarray, dx: np.ndarray, rng: np.random.Generator) -> pl.Series:
    n = len(age)
    principal = np.array([d.code for d in _IP])[dx]
    cols = []
    for code, p_mid, p_old in refdata.COMORBIDITIES:
        p = np.where(age >= 65, p_old, np.where(age >= 45, p_mid, 0.0))
        take = (rng.random(n) < p) & (principal != code)
        cols.append(pl.Series(np.where(take, code, "")))
    if not cols or n == 0:
        return pl.Series([None] * n, dtype=pl.String)
    joined = (
        pl.DataFrame(cols, schema=[f"c{i}" for i in range(len(cols))])
        .select(
            pl.concat_str(
                [
                    pl.when(pl.col(c) == "").then(None).otherwise(pl.col(c))
                    for c in [f"c{i}" for i in range(len(cols))]
                ],
                separator=";",
                ignore_nulls=True,
            )
        )
        .to_series()
    )
    return pl.select(pl.when(joined == "").then(None).otherwise(joined)).to_series()


def _inpatient_rx(s: dict, day: dt.date, rng: np.random.Generator) -> pl.DataFrame:
    """Orders of the stay's last days: only what is within the record-lag window.

    A stay that ends in death has its last orders the day before the death date, so that no
    prescription is dated on the death date (whether dates or timestamps are compared).
    """
    day0 = naive_seconds(day)
    lag = 6 * DAY
    ws = np.maximum(s["admit"], day0 - lag)
    we = np.where(s["death"], np.minimum(s["discharge"], day0 - 1), s["discharge"])
    span = (we - ws) / DAY
    k = np.clip(rng.poisson(2.5 * span + 1), 1, 30)
    stay = np.repeat(np.arange(s["n"]), k)
    m = len(stay)
    item_no = np.arange(m) - np.repeat(np.cumsum(k) - k, k) + 1
    ordered = ws[stay] + (rng.random(m) * (we - ws)[stay]).astype(np.int64)
    group = np.where(rng.random(m) < 0.6, _GROUP_INDEX["IP"], _IP_GROUP[s["dx"][stay]])
    drug = _drugs_for(group, rng.random(m))
    yymmdd = f"{day:%y%m%d}"
    order_day = (ordered // DAY - (day_number(day) - 6)).astype(np.int64)
    rx_ids = _num(f"ZC{yymmdd}", s["seq"][stay], 5) + pl.Series(order_day).cast(
        pl.String
    ).str.zfill(2)
    frame, _ = _rx_frame(
        rx_ids=rx_ids,
        item_no=item_no,
        item_width=3,
        encounter_type="2",
        encounter_ids=_num(f"ZY{yymmdd}", s["seq"][stay], 5),
        persons=s["person"][stay],
        drug=drug,
        ordered=ordered,
        rng=rng,
    )
    return frame


def _inpatient_labs(s: dict, day: dt.date, rng: np.random.Generator) -> pl.DataFrame:
    day0 = naive_seconds(day)
    ws = np.maximum(s["admit"], day0 - 6 * DAY)
    we = s["discharge"]
    span = (we - ws) / DAY
    k = np.clip(1 + rng.poisson(span / 2.5), 1, 8)
    stay = np.repeat(np.arange(s["n"]), k)
    m = len(stay)
    panel = rng.choice(4, size=m, p=[0.45, 0.3, 0.15, 0.1])  # CBC, BIO, LIP, URI / CRP
    panel = np.array([_PANELS.index(p) for p in ("CBC", "BIO", "CRP", "LIP")])[panel]
    hi = np.maximum(ws, we - 1800)[stay]
    sampled = ws[stay] + (rng.random(m) * (hi - ws[stay])).astype(np.int64)
    reported = np.minimum(sampled + rng.integers(1800, 14400, m), day0 + DAY - 1)
    order = np.lexsort((sampled, stay))
    stay, panel, sampled, reported = stay[order], panel[order], sampled[order], reported[order]
    yymmdd = f"{day:%y%m%d}"
    return _lab_frame(
        report_ids=_num(f"JZ{yymmdd}", np.arange(1, m + 1), 7),
        encounter_ids=_num(f"ZY{yymmdd}", s["seq"][stay], 5),
        persons=s["person"][stay],
        panel=panel,
        sampled=sampled,
        reported=reported,
        diabetic=_IP_GROUP[s["dx"][stay]] == _GROUP_INDEX["DM"],
        rng=rng,
    )


# --- patients -------------------------------------------------------------------------------


def patient_frame(
    city: City,
    org: Organisation | str,
    d: int,
    visit_persons: np.ndarray,
    visit_times: np.ndarray,
    stay_persons: np.ndarray,
    discharges: np.ndarray,
    rng: np.random.Generator,
    all_new: bool = False,
) -> pl.DataFrame:
    """Rows for persons seen today who are new to the hospital, and some updated ones."""
    code = org if isinstance(org, str) else org.org_code
    persons = np.concatenate([visit_persons, stay_persons]).astype(np.int64)
    times = np.concatenate([visit_times, discharges - rng.integers(600, 7200, len(stay_persons))])
    day0 = naive_seconds(city.day(d))
    if len(persons) == 0:
        return patient_rows(city, code, np.zeros(0, np.int64), np.zeros(0, np.int64))
    uniq, inv = np.unique(persons, return_inverse=True)
    first = np.full(len(uniq), np.iinfo(np.int64).max)
    np.minimum.at(first, inv, times)
    known = (
        np.zeros(len(uniq), dtype=bool) if all_new else np.isin(uniq, city.uploaded.get(code, []))
    )
    keep = ~known | (rng.random(len(uniq)) < 0.1)
    updated = np.maximum(first - rng.integers(60, 1200, len(uniq)), day0)
    return patient_rows(city, code, uniq[keep], updated[keep], new=~known[keep])


def patient_rows(
    city: City, code: str, persons: np.ndarray, updated: np.ndarray, new: np.ndarray | None = None
) -> pl.DataFrame:
    pop = city.pop
    n = len(persons)
    use12 = pl.Series((persons * 7 + 3) % 10 < 6)
    div12 = pop.division12(persons)
    div = pl.select(pl.when(use12).then(div12).otherwise(pop.region_codes(persons))).to_series()
    no_addr = pl.Series((persons * 13 + 5) % 100 < 4)
    div = pl.select(pl.when(no_addr).then(None).otherwise(div)).to_series()
    return pl.DataFrame(
        {
            "patient_id": city.patient_ids(code, persons),
            "id_type": pop.id_type_codes(persons),
            "id_no": pop.document_no(persons),
            "name": pop.names(persons),
            "sex_code": pop.sex_codes(persons),
            "birth_date": pop.birth_dates(persons),
            "ethnicity_code": pop.ethnicity(persons),
            "phone": pop.phones(persons),
            "address_division": div,
            "updated_at": np.asarray(updated, dtype=np.int64),
            "_person": persons.astype(np.int64),
            "_new": np.ones(n, dtype=bool) if new is None else new,
        },
        schema_overrides={"updated_at": pl.Int64, "birth_date": pl.Date},
    )


# --- standalone rows for the extra files of the fault plan ----------------------------------


def stray_visits(
    city: City, org_code: str, d: int, n: int, rng: np.random.Generator
) -> pl.DataFrame:
    """Outpatient rows not tied to the city state (for uploads that ingestion must reject)."""
    fake = Organisation(
        org_code=org_code,
        name="",
        kind="hospital",
        level="secondary",
        county_code=city.regions[0].code,
        emails=(),
        active_from=city.start,
        active_to=None,
    )
    day = city.day(d)
    persons = city.pop.sample(rng, n, city.pop.w_out)
    persons = persons[city.pop.usable(persons, d)]
    n = len(persons)
    age = city.pop.age_years(persons, day)
    sex = city.pop.sex[persons].astype(np.int64)
    band = np.searchsorted(np.asarray(refdata.OUT_BANDS), age, side="right") - 1
    t = np.sort(naive_seconds(day) + rng.integers(8 * 3600, 17 * 3600, n))
    v = {
        "person": persons,
        "age": age,
        "band": band,
        "sex": sex,
        "dx": _choose(_OUT_TABLES["secondary"], band * 2 + sex - 1, rng.random(n)),
        "emergency": np.zeros(n, dtype=bool),
        "t": t,
        "seq": np.arange(1, n + 1),
        "n": n,
    }
    return _visit_frame(
        city, fake, v, day, np.zeros(n, np.int64), np.zeros(n, np.int64), False, rng
    )
