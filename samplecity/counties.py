"""One county-day: health records, chronic follow-ups, elderly checks, vaccinations, deaths."""

from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl

from contracts.registry import Organisation
from samplecity import refdata
from samplecity.city import CHRONIC, City
from samplecity.clock import day_number, is_workday
from samplecity.schema import scaled

RECORD, FOLLOWUP, ELDERLY, VACCINATION, DEATH = (
    "health_record",
    "chronic_followup",
    "elderly_check",
    "vaccination",
    "death_registration",
)
DATASETS = (RECORD, FOLLOWUP, ELDERLY, VACCINATION, DEATH)
# scale 1.0, all ten counties of the reference city, a working day
FOLLOWUPS = {"I10": 17_000, "E11": 8_000}
ELDERLY_CHECKS = 18_000
VACCINATIONS = 32_000
EXTRA_RECORDS = 5_000  # births, people moving in: records without a visit today


def day_factor(day: dt.date) -> float:
    return 1.0 if is_workday(day) else 0.25


def county_day(city: City, org: Organisation, d: int, attempt: int = 0) -> dict[str, pl.DataFrame]:
    """Frames of the five county datasets; `attempt` > 0 draws the day again from another
    random stream (see volumes.py). Death registrations are planned beforehand."""
    rng = city.rng("county", org.org_code, d, *([attempt] if attempt else []))
    pop = city.pop
    day = city.day(d)
    region = city.county_region[org.org_code]
    sl = pop.region_slice(region)
    mean = city.scale * city.region_share(region) * day_factor(day)
    ids = np.arange(sl.start, sl.stop)
    usable = pop.usable(ids, d) & ~pop.foreign[sl]
    county = org.org_code

    # chronic follow-ups: only for persons with that diagnosis in a hospital batch so far
    fu_person, fu_disease = [], []
    for disease in CHRONIC:
        cand = ids[usable & city.support[disease][sl] & ~city.followed[disease][sl]]
        n = min(rng.poisson(FOLLOWUPS[disease] * mean), len(cand))
        pick = np.sort(rng.choice(cand, n, replace=False)) if n else np.zeros(0, np.int64)
        fu_person.append(pick)
        fu_disease.append(np.full(n, disease))
    fu_p = np.concatenate(fu_person).astype(np.int64)
    fu_d = np.concatenate(fu_disease) if fu_person else np.zeros(0, dtype=str)
    fu_lag = rng.choice(3, size=len(fu_p), p=[0.8, 0.15, 0.05])

    # elderly checks: 65 or older on the check date
    el_lag = rng.choice(2, size=len(ids), p=[0.85, 0.15])
    el_age = _age_on(pop, ids, day_number(day) - el_lag)
    cand = np.flatnonzero(usable & (el_age >= 65) & ~city.checked[sl])
    n = min(rng.poisson(ELDERLY_CHECKS * mean), len(cand))
    pick = np.sort(rng.choice(cand, n, replace=False)) if n else np.zeros(0, np.int64)
    el_p, el_lag_p = ids[pick], el_lag[pick]

    # extra new records (births, moving in)
    cand = ids[usable & ~np.isin(ids, city.records[county])]
    n = min(rng.poisson(EXTRA_RECORDS * mean), len(cand))
    extra = rng.choice(cand, n, replace=False) if n else np.zeros(0, np.int64)

    deaths = np.array(city.death_regs.get((region, d), []), dtype=np.int64)
    frames = {
        FOLLOWUP: followup_frame(city, county, d, fu_p, fu_d, fu_lag, rng),
        ELDERLY: elderly_frame(city, county, d, el_p, el_lag_p, rng),
        VACCINATION: vaccination_frame(city, county, d, ids[usable], mean, rng),
        DEATH: death_frame(city, county, d, deaths),
    }
    need = np.unique(np.concatenate([fu_p, el_p, extra]))
    new = need[~np.isin(need, city.records[county])]
    frames[RECORD] = pl.concat(
        [
            record_frame(city, county, d, new, "1", rng),
            record_frame(city, county, d, deaths, "2", rng, created_today=True),
        ],
        how="vertical",
    )
    return frames


def _age_on(pop, idx: np.ndarray, day_num: np.ndarray) -> np.ndarray:
    """Completed years on a per-row day number."""
    dates = np.datetime64("1970-01-01") + np.asarray(day_num).astype("timedelta64[D]")
    y = dates.astype("datetime64[Y]").astype(np.int64) + 1970
    m = dates.astype("datetime64[M]").astype(np.int64) % 12 + 1
    dd = (dates - dates.astype("datetime64[M]")).astype(np.int64) + 1
    before = (m < pop.bm[idx]) | ((m == pop.bm[idx]) & (dd < pop.bd[idx]))
    return y - pop.by[idx] - before.astype(np.int64)


def record_frame(
    city: City,
    county: str,
    d: int,
    persons: np.ndarray,
    status: str,
    rng: np.random.Generator,
    created_today: bool = False,
) -> pl.DataFrame:
    pop = city.pop
    n = len(persons)
    today = day_number(city.day(d))
    lag = np.zeros(n, np.int64) if created_today else rng.choice(2, size=n, p=[0.85, 0.15])
    created = np.maximum(today - lag, pop.birth[persons].astype(np.int64))
    return pl.DataFrame(
        {
            "record_id": city.record_ids(county, persons),
            "id_no": pop.resident_id(persons),
            "name": pop.names(persons),
            "sex_code": pop.sex_codes(persons),
            "birth_date": pop.birth_dates(persons),
            "division_code": pop.division12(persons),
            "managing_org_code": city.township_org(county, pop.township[persons]),
            "created_date": pl.Series(created.astype(np.int32)).cast(pl.Date),
            "status": pl.Series([status] * n, dtype=pl.String),
            "_person": persons.astype(np.int64),
        },
        schema_overrides={"birth_date": pl.Date, "created_date": pl.Date},
    )


# A county's follow-up doctors: at least 59, and enough that a doctor has about
# FOLLOWUPS_PER_DOCTOR follow-ups a day at any scale (the standard's plausible workload is
# at most 60 a day, section 7.3).
MIN_DOCTORS, FOLLOWUPS_PER_DOCTOR = 59, 20


def _doctors(n: int) -> int:
    return max(MIN_DOCTORS, -(-n // FOLLOWUPS_PER_DOCTOR))


def followup_frame(
    city: City,
    county: str,
    d: int,
    persons: np.ndarray,
    disease: np.ndarray,
    lag: np.ndarray,
    rng: np.random.Generator,
) -> pl.DataFrame:
    n = len(persons)
    name = FOLLOWUP
    day = city.day(d)
    date = day_number(day) - lag
    htn = disease == "I10"
    sbp = np.clip(rng.normal(138, 15, n), 95, 200).astype(np.int64)
    dbp = np.clip(rng.normal(84, 9, n), 55, 115).astype(np.int64)
    sbp = np.maximum(sbp, dbp + 15)
    bp = htn | (rng.random(n) < 0.7)
    glucose = np.round(np.clip(rng.normal(7.6, 1.8, n), 3.5, 20.0) * 10).astype(np.int64)
    has_glucose = ~htn | (rng.random(n) < 0.3)
    methods = np.array(["1", "2", "3", "9"])[rng.choice(4, n, p=[0.35, 0.3, 0.3, 0.05])]
    classes = np.array(["1", "2", "3", "4"])[rng.choice(4, n, p=[0.7, 0.22, 0.03, 0.05])]
    return pl.DataFrame(
        {
            "followup_id": _ids(f"SF{county}{day:%y%m%d}", n, 5),
            "record_id": city.record_ids(county, persons),
            "disease_code": pl.Series(disease.astype(str), dtype=pl.String),
            "followup_date": pl.Series(date.astype(np.int32)).cast(pl.Date),
            "followup_method": pl.Series(methods, dtype=pl.String),
            "sbp": _nullable(sbp, ~bp),
            "dbp": _nullable(dbp, ~bp),
            "fasting_glucose": _nullable(scaled(glucose, 1, name, "fasting_glucose"), ~has_glucose),
            "followup_class": pl.Series(classes, dtype=pl.String),
            "next_followup_date": pl.Series((date + rng.integers(80, 96, n)).astype(np.int32)).cast(
                pl.Date
            ),
            "doctor_id": f"GW{county}"
            + pl.Series(rng.integers(1, _doctors(n) + 1, n)).cast(pl.String).str.zfill(3),
            "_person": persons.astype(np.int64),
        },
        schema_overrides={"followup_date": pl.Date, "next_followup_date": pl.Date},
    )


def elderly_frame(
    city: City, county: str, d: int, persons: np.ndarray, lag: np.ndarray, rng: np.random.Generator
) -> pl.DataFrame:
    pop = city.pop
    n = len(persons)
    name = ELDERLY
    date = day_number(city.day(d)) - lag
    male = pop.sex[persons] == 1
    height = np.round(np.clip(rng.normal(np.where(male, 166, 155), 6, n), 135, 195) * 10).astype(
        np.int64
    )
    bmi_target = np.clip(rng.normal(24, 3.4, n), 16, 38)
    weight = np.round(bmi_target * (height / 1000) ** 2 * 10).astype(np.int64)
    weight = np.clip(weight, 300, 1500)
    bmi = np.round(weight / 10 / (height / 1000) ** 2 * 10).astype(np.int64)
    sbp = np.clip(rng.normal(140, 18, n), 90, 210).astype(np.int64)
    dbp = np.clip(rng.normal(82, 10, n), 50, 115).astype(np.int64)
    sbp = np.maximum(sbp, dbp + 20)
    care = np.where(rng.random(n) < 0.8, 0, rng.integers(1, 12, n))
    return pl.DataFrame(
        {
            "check_id": _ids(f"TJ{county}{city.day(d):%y%m%d}", n, 5),
            "record_id": city.record_ids(county, persons),
            "check_date": pl.Series(date.astype(np.int32)).cast(pl.Date),
            "age_at_check": _age_on(pop, persons, date).astype(np.int64),
            "height_cm": scaled(height, 1, name, "height_cm"),
            "weight_kg": scaled(weight, 1, name, "weight_kg"),
            "bmi": scaled(bmi, 1, name, "bmi"),
            "sbp": sbp,
            "dbp": dbp,
            "self_care_score": care.astype(np.int64),
            "_person": persons.astype(np.int64),
        },
        schema_overrides={"check_date": pl.Date},
    )


def vaccination_frame(
    city: City, county: str, d: int, usable: np.ndarray, mean: float, rng: np.random.Generator
) -> pl.DataFrame:
    pop = city.pop
    day = city.day(d)
    n = rng.poisson(VACCINATIONS * mean)
    age_days = pop.age_days(usable, day)
    kids = usable[age_days < 7 * 365]
    n_kids = min(round(n * 0.75), len(kids))
    persons = np.concatenate(
        [
            rng.choice(kids, n_kids, replace=True) if len(kids) else np.zeros(0, np.int64),
            rng.choice(usable, n - n_kids, replace=True) if len(usable) else np.zeros(0, np.int64),
        ]
    ).astype(np.int64)
    lag = rng.choice(2, size=len(persons), p=[0.85, 0.15])
    date = np.maximum(day_number(day) - lag, pop.birth[persons].astype(np.int64))
    age = date - pop.birth[persons]
    sex = pop.sex[persons]
    vs = refdata.VACCINES
    lo = np.array([v.min_days for v in vs])
    hi = np.array([v.max_days for v in vs])
    vsex = np.array([int(v.sex or 0) for v in vs])
    ok = (age[:, None] >= lo) & (age[:, None] <= hi) & ((vsex == 0) | (vsex == sex[:, None]))
    score = np.where(ok, rng.random(ok.shape), -1.0)
    vacc = score.argmax(axis=1)
    keep = ok.any(axis=1)
    persons, date, vacc = persons[keep], date[keep], vacc[keep]
    order = np.lexsort((persons, date))
    persons, date, vacc = persons[order], date[order], vacc[order]
    m = len(persons)
    doses = np.array([v.doses for v in vs])[vacc]
    dose = 1 + (rng.random(m) * doses).astype(np.int64)
    batch = pl.Series(np.array([v.code for v in vs])[vacc]) + pl.Series(
        rng.integers(1, 40, m)
    ).cast(pl.String).str.zfill(3)
    return pl.DataFrame(
        {
            "vacc_id": _ids(f"YM{county}{day:%y%m%d}", m, 6),
            "id_no": pop.resident_id(persons),
            "vaccine_code": pl.Series(np.array([v.code for v in vs])[vacc], dtype=pl.String),
            "dose_no": dose,
            "vacc_date": pl.Series(date.astype(np.int32)).cast(pl.Date),
            "vacc_org_code": city.township_org(county, pop.township[persons]),
            "batch_no": f"{day.year - 1}" + batch,
            "_person": persons,
        },
        schema_overrides={"vacc_date": pl.Date, "dose_no": pl.Int64},
    )


def death_frame(city: City, county: str, d: int, persons: np.ndarray) -> pl.DataFrame:
    pop = city.pop
    n = len(persons)
    info = [city.deaths[int(p)] for p in persons]
    day = city.day(d)
    return pl.DataFrame(
        {
            "death_id": _ids(f"SW{county}{day:%y%m%d}", n, 4),
            "id_no": pop.resident_id(persons),
            "name": pop.names(persons),
            "sex_code": pop.sex_codes(persons),
            "death_date": pl.Series(
                [i.day + day_number(city.start) for i in info], dtype=pl.Int32
            ).cast(pl.Date),
            "underlying_cause_code": pl.Series([i.cause for i in info], dtype=pl.String),
            "death_place_code": pl.Series([i.place for i in info], dtype=pl.String),
            "_person": persons.astype(np.int64),
        },
        schema_overrides={"death_date": pl.Date},
    )


def _nullable(values: np.ndarray, mask: np.ndarray) -> pl.Series:
    vals = pl.Series(np.asarray(values, dtype=np.int64))
    return pl.select(
        pl.when(pl.Series(mask, dtype=pl.Boolean)).then(None).otherwise(vals)
    ).to_series()


def _ids(prefix: str, n: int, width: int) -> pl.Series:
    return prefix + pl.Series(np.arange(1, n + 1, dtype=np.int64)).cast(pl.String).str.zfill(width)
