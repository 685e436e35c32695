"""Which organisations upload: a slice of the bundled registry, plus synthetic ones beyond it."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from contracts.codesystems import division_name, division_valid, make_uscc
from contracts.registry import LEVELS, SAMPLE_REGISTRY, Organisation, parse_registry
from samplecity.refdata import EXTRA_COUNTY_CANDIDATES, XINYANG

ACTIVE_FROM = dt.date(2020, 1, 1)
# size of a hospital relative to a tertiary one (outpatient and inpatient volume)
LEVEL_OUTPATIENT_WEIGHT = {"tertiary": 1.0, "secondary": 0.35, "primary": 0.08}
LEVEL_INPATIENT_WEIGHT = {"tertiary": 1.0, "secondary": 0.45, "primary": 0.06}


@dataclass(frozen=True)
class OrgPlan:
    hospitals: list[Organisation]
    counties: list[Organisation]
    unregistered: str  # a valid-looking USCC that is not in the registry

    @property
    def all(self) -> list[Organisation]:
        return self.hospitals + self.counties


def bundled() -> list[Organisation]:
    """The bundled sample city, whatever HQLAKE_ORG_REGISTRY says."""
    reg = parse_registry(SAMPLE_REGISTRY.read_text(encoding="utf-8"), str(SAMPLE_REGISTRY))
    return list(reg.organisations.values())


def _apportion(total: int, counts: dict[str, int]) -> dict[str, int]:
    """Largest-remainder split of `total` over levels in proportion to `counts`."""
    whole = sum(counts.values())
    if whole == 0:
        return dict.fromkeys(counts, 0)
    quotas = {k: total * v / whole for k, v in counts.items()}
    take = {k: int(q) for k, q in quotas.items()}
    order = sorted(counts, key=lambda k: (-(quotas[k] - take[k]), list(counts).index(k)))
    for k in order[: total - sum(take.values())]:
        take[k] += 1
    if total >= len(counts):  # at least one per level
        for k in counts:
            while take[k] == 0 and counts[k] > 0:
                donor = max(take, key=lambda j: (take[j], -list(counts).index(j)))
                take[donor] -= 1
                take[k] += 1
    return take


def select(hospitals: int, counties: int) -> OrgPlan:
    orgs = bundled()
    used = {o.org_code for o in orgs}
    levels = LEVELS["hospital"]
    by_level = {lv: [o for o in orgs if o.kind == "hospital" and o.level == lv] for lv in levels}
    n_known = sum(len(v) for v in by_level.values())
    if hospitals <= n_known:
        take = _apportion(hospitals, {lv: len(v) for lv, v in by_level.items()})
        chosen_h = [o for lv in levels for o in by_level[lv][: take[lv]]]
    else:
        chosen_h = [o for lv in levels for o in by_level[lv]]
        chosen_h += _synthetic_hospitals(hospitals - n_known, used)
    known_c = [o for o in orgs if o.kind == "county"]
    chosen_c = known_c[:counties]
    if counties > len(known_c):
        chosen_c += _synthetic_counties(counties - len(known_c), used)
    used |= {o.org_code for o in chosen_h + chosen_c}
    serial = 990_001
    unregistered = make_uscc("411502", serial)
    while unregistered in used:
        serial += 1
        unregistered = make_uscc("411502", serial)
    return OrgPlan(chosen_h, chosen_c, unregistered)


def _synthetic_hospitals(n: int, used: set[str]) -> list[Organisation]:
    out: list[Organisation] = []
    pattern = ("tertiary", "secondary", "secondary", "primary", "primary")
    serial = 800_001
    for i in range(n):
        level = pattern[i % len(pattern)]
        county = XINYANG[i % len(XINYANG)]
        code = make_uscc(county.code, serial)
        while code in used:
            serial += 1
            code = make_uscc(county.code, serial)
        serial += 1
        used.add(code)
        kind_name = {"tertiary": "第{}人民医院", "secondary": "第{}医院", "primary": "第{}卫生院"}
        name = county.name + kind_name[level].format(i + 1)
        out.append(
            Organisation(
                org_code=code,
                name=name,
                kind="hospital",
                level=level,
                county_code=county.code,
                emails=(f"qc-{code[-6:].lower()}@hosp.xy.example.cn",),
                active_from=ACTIVE_FROM,
                active_to=None,
            )
        )
    return out


def _synthetic_counties(n: int, used: set[str]) -> list[Organisation]:
    codes = [c for c in EXTRA_COUNTY_CANDIDATES if c not in used and division_valid(c)]
    if n > len(codes):
        raise ValueError(f"at most {len(codes)} synthetic county platforms are available")
    out = []
    for code in codes[:n]:
        out.append(
            Organisation(
                org_code=code,
                name=f"{division_name(code)}公共卫生平台",
                kind="county",
                level="county",
                county_code=code,
                emails=(f"gw-{code}@cdc.example.cn",),
                active_from=ACTIVE_FROM,
                active_to=None,
            )
        )
    return out
