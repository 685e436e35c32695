"""The residents of the sample city: one shared pool of persons, stored as numpy arrays.

Every hospital and county record is about a person of this pool, so one resident can be a
patient in several hospitals, have a county health record, be vaccinated and die. Text
columns (identity numbers, names, phones) are built vectorised only for the persons a
batch needs.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import polars as pl

from samplecity import refdata
from samplecity.clock import day_number

ALIVE = np.iinfo(np.int32).max
_ID_WEIGHTS = np.array([7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2], dtype=np.int64)
_ID_CHECK = np.array(list("10X98765432"))
# identity document types of persons (index into ID_TYPES)
ID_TYPES = ("01", "02", "03", "06", "07")
RESIDENT, HOUSEHOLD, PASSPORT, HK_MACAU, TAIWAN = range(5)


def mix64(x: np.ndarray, salt: int) -> np.ndarray:
    """splitmix64 of `x` (as uint64) with a salt: a stable per-person hash."""
    with np.errstate(over="ignore"):
        z = x.astype(np.uint64) + np.uint64((salt * 0x9E3779B97F4A7C15) & 0xFFFFFFFFFFFFFFFF)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def unit_hash(x: np.ndarray, salt: int) -> np.ndarray:
    """A stable uniform [0, 1) per element."""
    return (mix64(x, salt) >> np.uint64(11)).astype(np.float64) / float(1 << 53)


@dataclass(frozen=True)
class Region:
    code: str  # GB/T 2260 county code where the person lives
    name: str
    old_code: str | None
    share: float


def resident_ids(area: np.ndarray, ymd: np.ndarray, seq3: np.ndarray) -> pl.Series:
    """Valid 18-character identity numbers, vectorised (same result as make_resident_id)."""
    body = area.astype(np.int64) * 10**11 + ymd.astype(np.int64) * 1000 + seq3.astype(np.int64)
    total = np.zeros(len(body), dtype=np.int64)
    rest = body.copy()
    for i in range(16, -1, -1):
        total += (rest % 10) * _ID_WEIGHTS[i]
        rest //= 10
    check = _ID_CHECK[total % 11]
    return pl.Series(body).cast(pl.String) + pl.Series(check, dtype=pl.String)


class Population:
    def __init__(self, regions: list[Region], size: int, start: dt.date, seed: int):
        rng = np.random.default_rng(np.random.SeedSequence([seed, 0x504F50]))
        self.regions = regions
        self.start = start
        shares = np.array([r.share for r in regions], dtype=float)
        counts = np.floor(shares / shares.sum() * size).astype(np.int64)
        counts[: size - counts.sum()] += 1
        self.size = n = int(counts.sum())
        self.region_start = np.concatenate([[0], np.cumsum(counts)[:-1]])
        self.region_end = np.cumsum(counts)
        self.region = np.repeat(np.arange(len(regions), dtype=np.int16), counts)

        # ages: a 5-year band, then uniform days inside it; everyone born before `start`
        bands = np.asarray(refdata.AGE_BAND_WEIGHTS, dtype=float)
        band = rng.choice(len(bands), size=n, p=bands / bands.sum())
        age_days = (band * 5 * 365.25 + rng.uniform(0, 5 * 365.25, n)).astype(np.int64) + 1
        self.birth = (day_number(start) - age_days).astype(np.int32)
        births = np.datetime64("1970-01-01") + self.birth.astype("timedelta64[D]")
        self.by = births.astype("datetime64[Y]").astype(np.int64) + 1970
        self.bm = (births.astype("datetime64[M]").astype(np.int64) % 12 + 1).astype(np.int8)
        self.bd = (births - births.astype("datetime64[M]")).astype(np.int64).astype(np.int8) + 1
        self.sex = rng.choice(np.array([1, 2], dtype=np.int8), size=n)

        # identity documents
        u = rng.random(n)
        id_type = np.full(n, RESIDENT, dtype=np.int8)
        child = age_days < 16 * 365
        id_type[child & (u < 0.15)] = HOUSEHOLD
        id_type[u > 0.997] = PASSPORT
        id_type[(u > 0.9960) & (u <= 0.9970)] = HK_MACAU
        id_type[(u > 0.9955) & (u <= 0.9960)] = TAIWAN
        self.id_type = id_type
        self.foreign = id_type >= PASSPORT

        # area code of the identity number: the county, or its pre-1998 code for people who
        # got their number before 1998, or somewhere else for migrants
        county_codes = np.array([int(r.code) for r in regions], dtype=np.int32)
        old_codes = np.array([int(r.old_code or r.code) for r in regions], dtype=np.int32)
        area = county_codes[self.region]
        issued_before_1998 = (self.by < 1982) & (rng.random(n) < 0.35)
        area[issued_before_1998] = old_codes[self.region[issued_before_1998]]
        migrant = rng.random(n) < 0.04
        migrant_codes = np.array([int(c) for c in refdata.MIGRANT_AREAS], dtype=np.int32)
        area[migrant] = migrant_codes[rng.integers(0, len(migrant_codes), migrant.sum())]
        self.area = area

        # sequence digits: unique within (area, birth date, sex)
        order = np.lexsort((rng.random(n), self.sex, self.birth, self.area))
        key = (self.area[order].astype(np.int64) * 100_000 + self.birth[order]) * 3 + self.sex[
            order
        ]
        new_group = np.r_[True, key[1:] != key[:-1]]
        group_start = np.maximum.accumulate(np.where(new_group, np.arange(n), 0))
        rank = np.arange(n) - group_start
        if rank.max(initial=0) >= 500:
            raise ValueError("population too dense for unique identity numbers")
        offset = (mix64(key, 11) % np.uint64(500)).astype(np.int64)
        seq = np.empty(n, dtype=np.int16)
        seq[order] = (rank * 37 + offset) % 500
        self.seq = seq

        # names
        sw = np.asarray(refdata.SURNAME_WEIGHTS)
        self.surname = rng.choice(len(sw), size=n, p=sw / sw.sum()).astype(np.int16)
        self.given1 = rng.integers(0, 60, n).astype(np.int16)
        self.given2 = np.where(rng.random(n) < 0.72, rng.integers(0, 60, n), -1).astype(np.int16)

        # where in the county: township (3 digits) and village (3 digits)
        self.township = rng.integers(0, 18, n).astype(np.int16)
        self.village = rng.integers(1, 31, n).astype(np.int16)

        self.death_day = np.full(n, ALIVE, dtype=np.int32)
        self.tainted = np.zeros(n, dtype=bool)

        years = age_days / 365.25
        self.w_out = self._cum(
            _piecewise(years, (1, 5, 14, 45, 65, 75), (2.5, 2.0, 0.9, 0.55, 1.0, 1.7, 2.1))
        )
        w_ip = _piecewise(years, (1, 14, 18, 45, 65, 75), (2.0, 0.5, 0.3, 0.6, 1.2, 2.5, 3.5))
        w_ip = np.where((self.sex == 2) & (years >= 20) & (years < 40), w_ip * 2.2, w_ip)
        self.w_ip = self._cum(w_ip)
        w_mort = _piecewise(
            years, (20, 40, 60, 70, 80, 90), (0.01, 0.04, 0.25, 1.0, 3.0, 10.0, 30.0)
        )
        self.w_mort = self._cum(np.where(self.foreign, 0.0, w_mort))

    @staticmethod
    def _cum(weights: np.ndarray) -> np.ndarray:
        return np.cumsum(weights, dtype=np.float64)

    # --- sampling --------------------------------------------------------------------------

    def sample(
        self, rng: np.random.Generator, n: int, cum: np.ndarray, region: int | None = None
    ) -> np.ndarray:
        """`n` persons drawn with the given cumulative weights, optionally inside one region."""
        if n <= 0:
            return np.zeros(0, dtype=np.int64)
        if region is None:
            lo, hi, first, last = 0.0, cum[-1], 0, self.size - 1
        else:
            first, last = int(self.region_start[region]), int(self.region_end[region]) - 1
            lo = cum[first - 1] if first > 0 else 0.0
            hi = cum[last]
        idx = np.searchsorted(cum, rng.uniform(lo, hi, n), side="right")
        return np.clip(idx, first, last).astype(np.int64)

    def usable(self, idx: np.ndarray, day: int) -> np.ndarray:
        """Persons alive on day index `day` (death strictly later) and not set aside by a defect."""
        return (self.death_day[idx] > day) & ~self.tainted[idx]

    def region_slice(self, region: int) -> slice:
        return slice(int(self.region_start[region]), int(self.region_end[region]))

    # --- attributes ------------------------------------------------------------------------

    def age_years(self, idx: np.ndarray, day: dt.date) -> np.ndarray:
        """Completed years of age on `day`."""
        before = (day.month < self.bm[idx]) | (
            (day.month == self.bm[idx]) & (day.day < self.bd[idx])
        )
        return day.year - self.by[idx] - before.astype(np.int64)

    def age_days(self, idx: np.ndarray, day: dt.date) -> np.ndarray:
        return day_number(day) - self.birth[idx].astype(np.int64)

    def birth_dates(self, idx: np.ndarray) -> pl.Series:
        return pl.Series(self.birth[idx]).cast(pl.Date)

    def sex_codes(self, idx: np.ndarray) -> pl.Series:
        return pl.Series(self.sex[idx]).cast(pl.String)

    def resident_id(self, idx: np.ndarray) -> pl.Series:
        ymd = self.by[idx] * 10_000 + self.bm[idx].astype(np.int64) * 100 + self.bd[idx]
        seq3 = self.seq[idx].astype(np.int64) % 500 * 2 + (self.sex[idx] == 1)
        return resident_ids(self.area[idx], ymd, seq3)

    def id_type_codes(self, idx: np.ndarray) -> pl.Series:
        return pl.Series(np.array(ID_TYPES)[self.id_type[idx]], dtype=pl.String)

    def document_no(self, idx: np.ndarray) -> pl.Series:
        """The number of the person's identity document (resident id, or passport/permit)."""
        resident = self.resident_id(idx)
        if not self.foreign[idx].any():
            return resident
        digits = pl.Series((mix64(idx, 21) % np.uint64(10**8)).astype(np.int64)).cast(pl.String)
        digits = digits.str.zfill(8)
        kind = self.id_type[idx]
        prefix = np.select([kind == PASSPORT, kind == HK_MACAU], ["E", "H"], "")
        foreign_no = pl.Series(prefix, dtype=pl.String) + digits
        return pl.select(
            pl.when(pl.Series(kind >= PASSPORT)).then(foreign_no).otherwise(resident)
        ).to_series()

    def names(self, idx: np.ndarray) -> pl.Series:
        male = pl.Series(list(refdata.GIVEN_MALE))
        female = pl.Series(list(refdata.GIVEN_FEMALE))
        g1 = self.given1[idx].astype(np.int64)
        g2 = self.given2[idx].astype(np.int64)
        is_male = self.sex[idx] == 1
        first = pl.select(
            pl.when(pl.Series(is_male))
            .then(male.gather(g1 % len(male)))
            .otherwise(female.gather(g1 % len(female)))
        ).to_series()
        second = pl.select(
            pl.when(pl.Series(g2 < 0))
            .then(pl.lit(""))
            .when(pl.Series(is_male))
            .then(male.gather(np.maximum(g2, 0) % len(male)))
            .otherwise(female.gather(np.maximum(g2, 0) % len(female)))
        ).to_series()
        surname = pl.Series(list(refdata.SURNAMES)).gather(self.surname[idx].astype(np.int64))
        return surname + first + second

    def phones(self, idx: np.ndarray) -> pl.Series:
        h = mix64(idx, 31)
        u = unit_hash(idx, 32)
        prefixes = pl.Series(refdata.MOBILE_PREFIXES)
        prefix = prefixes.gather((h % np.uint64(len(refdata.MOBILE_PREFIXES))).astype(np.int64))
        mobile = prefix + pl.Series(((h >> np.uint64(8)) % np.uint64(10**8)).astype(np.int64)).cast(
            pl.String
        ).str.zfill(8)
        local = pl.Series(((h >> np.uint64(9)) % np.uint64(7_000_000) + 2_000_000).astype(np.int64))
        landline = f"{refdata.LANDLINE_AREA}-" + local.cast(pl.String)
        return pl.select(
            pl.when(pl.Series(u < 0.03))
            .then(pl.lit(None, pl.String))
            .when(pl.Series(u < 0.08))
            .then(landline)
            .otherwise(mobile)
        ).to_series()

    def ethnicity(self, idx: np.ndarray) -> pl.Series:
        u = unit_hash(idx, 41)
        minority = pl.Series(refdata.ETHNIC_MINORITIES).gather(
            (mix64(idx, 42) % np.uint64(len(refdata.ETHNIC_MINORITIES))).astype(np.int64)
        )
        return pl.select(
            pl.when(pl.Series(u < 0.02))
            .then(pl.lit(None, pl.String))
            .when(pl.Series(u < 0.05))
            .then(minority)
            .otherwise(pl.lit("01"))
        ).to_series()

    def township_codes(self, idx: np.ndarray) -> np.ndarray:
        """Three-digit township part: streets 001-, towns 101-, townships 201-."""
        t = self.township[idx].astype(np.int64)
        return np.where(t < 4, t + 1, np.where(t < 12, 100 + t - 3, 200 + t - 11))

    def division12(self, idx: np.ndarray) -> pl.Series:
        county = pl.Series(
            np.array([r.code for r in self.regions])[self.region[idx]], dtype=pl.String
        )
        town = pl.Series(self.township_codes(idx)).cast(pl.String).str.zfill(3)
        village = self.village[idx].astype(np.int64) + np.where(self.township[idx] < 4, 0, 200)
        return county + town + pl.Series(village).cast(pl.String).str.zfill(3)

    def region_codes(self, idx: np.ndarray) -> pl.Series:
        return pl.Series(
            np.array([r.code for r in self.regions])[self.region[idx]], dtype=pl.String
        )


def _piecewise(x: np.ndarray, edges: tuple[float, ...], values: tuple[float, ...]) -> np.ndarray:
    return np.asarray(values, dtype=float)[np.searchsorted(np.asarray(edges), x, side="right")]
