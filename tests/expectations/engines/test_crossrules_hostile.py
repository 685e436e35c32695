"""Hostile uploads against the section 7 rules: what one organisation sends must neither
stop the day's validation nor make a rule fail for another organisation."""

from __future__ import annotations

import time

import pytest

from tests.expectations.engines.test_crossrules import (
    HOSPITAL2,
    abstract,
    details,
    load,
)
from tests.expectations.engines.test_sqlrules import HOSPITAL

pytestmark = pytest.mark.integration

FIELD_BYTES = 64 * 1024  # ReadLimits.max_field_bytes: the longest value ingest admits


@pytest.fixture
def ch(rt):
    return rt.ch


def test_a_diagnosis_list_as_long_as_ingest_admits_is_judged_quickly(ch):
    """32 768 one-letter codes in other_dx_codes (64 KiB with the separators), in a few rows:
    the rule finds the repeats in linear time, and the other hospital's row is judged as
    usual."""
    huge = ";".join(["A"] * (FIELD_BYTES // 2))
    load(ch, "inpatient_discharge", [abstract(f"Z{i}", other=huge) for i in range(4)])
    load(ch, "inpatient_discharge", [abstract("Y1", other="E11.9;E11.9")], org=HOSPITAL2)
    started = time.monotonic()
    got = details(ch, "diagnosis_not_repeated")
    assert time.monotonic() - started < 30
    checked, failing = got[("inpatient_discharge", HOSPITAL)]
    assert checked == 4 and sorted(failing) == [f"Z{i}" for i in range(4)]
    # the detail names the first 20 repeats and counts the rest
    more = FIELD_BYTES // 2 - 1 - 20
    assert failing["Z0"] == "; ".join(["other_dx_codes A"] * 20) + f"; and {more} more"
    assert got[("inpatient_discharge", HOSPITAL2)] == (1, {"Y1": "other_dx_codes E11.9"})
