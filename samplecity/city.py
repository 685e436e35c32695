"""The state of the sample city while days are generated one after another."""

from __future__ import annotations

import datetime as dt
import zlib
from dataclasses import dataclass, field

import numpy as np
import polars as pl

from contracts.registry import Organisation
from samplecity import refdata
from samplecity.orgs import OrgPlan
from samplecity.population import Population, Region

# chronic diseases whose follow-ups need a hospital diagnosis on record
CHRONIC = ("I10", "E11")
_PRIME = 999_999_937


def stable_int(*parts: object) -> int:
    return zlib.crc32("\x1f".join(str(p) for p in parts).encode("utf-8"))


@dataclass
class Death:
    person: int
    day: int  # day index of the death (may be before the window)
    registered: int | None  # day index of the registration upload, if inside the window
    cause: str
    place: str
    hospital: str | None  # org code when the person dies as an inpatient


@dataclass
class City:
    start: dt.date
    days: int
    scale: float
    seed: int
    pop: Population
    orgs: OrgPlan
    regions: list[Region]
    hosp_region: dict[str, int]
    county_region: dict[str, int]
    hosp_size: dict[str, float]
    clinical_coding: set[str]
    uploaded: dict[str, np.ndarray] = field(default_factory=dict)  # hospital -> persons
    records: dict[str, np.ndarray] = field(default_factory=dict)  # county -> persons
    support: dict[str, np.ndarray] = field(default_factory=dict)  # disease -> bool per person
    followed: dict[str, np.ndarray] = field(default_factory=dict)
    checked: np.ndarray | None = None
    deaths: dict[int, Death] = field(default_factory=dict)
    # person -> (hospital, admit, discharge, admission_id) of the latest stay uploaded, times
    # in naive local seconds (a person is in one hospital at a time: hospitals.py admits a new
    # stay after it)
    last_stay: dict[int, tuple[str, int, int, str]] = field(default_factory=dict)
    ip_deaths: dict[tuple[str, int], list[int]] = field(default_factory=dict)
    death_regs: dict[tuple[int, int], list[int]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        n = self.pop.size
        for disease in CHRONIC:
            self.support[disease] = np.zeros(n, dtype=bool)
            self.followed[disease] = np.zeros(n, dtype=bool)
        self.checked = np.zeros(n, dtype=bool)
        for org in self.orgs.hospitals:
            self.uploaded[org.org_code] = np.zeros(0, dtype=np.int64)
        for org in self.orgs.counties:
            self.records[org.org_code] = np.zeros(0, dtype=np.int64)

    def rng(self, *parts: object) -> np.random.Generator:
        return np.random.default_rng([self.seed, *(stable_int(p) for p in parts)])

    def day(self, d: int) -> dt.date:
        return self.start + dt.timedelta(days=d)

    def region_share(self, region: int) -> float:
        """Share of the region in the population of the reference city (Xinyang)."""
        total = sum(c.population for c in refdata.XINYANG)
        return self.regions[region].share / total

    # --- identifiers ------------------------------------------------------------------------

    def patient_ids(self, org: Organisation | str, persons: np.ndarray) -> pl.Series:
        """Hospital-local patient numbers: a per-hospital permutation of the person index."""
        code = org if isinstance(org, str) else org.org_code
        a = 1 + stable_int("pid-a", code) % (_PRIME - 1)
        b = stable_int("pid-b", code) % _PRIME
        num = (np.asarray(persons, dtype=np.int64) * a + b) % _PRIME
        prefix = ("P", "HZ", "", "ID")[stable_int("pid-style", code) % 4]
        return prefix + pl.Series(num).cast(pl.String).str.zfill(10)

    def record_ids(self, county: str, persons: np.ndarray) -> pl.Series:
        a = 1 + stable_int("rid-a", county) % (_PRIME - 1)
        b = stable_int("rid-b", county) % _PRIME
        num = (np.asarray(persons, dtype=np.int64) * a + b) % _PRIME
        return county + pl.Series(num).cast(pl.String).str.zfill(11)

    def township_org(self, county: str, township: np.ndarray) -> pl.Series:
        """Code of the township health centre managing a resident (a valid-looking USCC)."""
        from contracts.codesystems import make_uscc

        codes = [
            make_uscc(county, 600_000 + stable_int("thc", county) % 1000 * 20 + t)
            for t in range(20)
        ]
        return pl.Series(codes).gather(np.asarray(township, dtype=np.int64) % 20)
