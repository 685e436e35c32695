"""The monthly sign-off on hand-made rule results: a signed month is frozen (a later correction
and a later approved appeal change dq.acceptance, never the signature), reopening and signing
again is version 2 with both kept, and subsidies are paid once per organisation per phase."""

import datetime as dt
import json
from zoneinfo import ZoneInfo

import pytest

from expectations.programme.appeals import APPEAL_COLUMNS
from expectations.programme.config import AppealsConfig, load_appeals_config
from expectations.programme.history import load_exemptions
from expectations.programme.signoff import (
    SIGNATURE_COLUMNS,
    SUBSIDY_COLUMNS,
    SignoffRefused,
    read_signature,
    reopen_month,
    sign_month,
    versions,
)
from expectations.programme.subsidies import load_subsidy_config
from expectations.rules.results import write_results
from expectations.scoring.acceptance import acceptance
from expectations.scoring.config import load_scoring_config
from expectations.scoring.read import read_acceptance
from tests.expectations.scoring.test_scoring import complete, completeness_only, org, registry, res

pytestmark = pytest.mark.integration

_TZ = ZoneInfo("Asia/Shanghai")
NOV = [dt.date(2026, 11, d) for d in range(1, 11)]
DEC = [dt.date(2026, 12, d) for d in range(1, 6)]
ORGS = registry(org("H1"), org("H2", "secondary"), org("C1", "county"))
# the quality officers who sign and reopen here (the commands read contracts/appeals.yaml)
OFFICERS = AppealsConfig.model_validate(
    load_appeals_config().model_dump()
    | {"decisions": {"role": "quality_officer", "people": ("王质控", "张科长", "李主任")}}
)


def month_of_results(ch, days, h2_low_days=()):
    """H1 and C1 at 100 every day; H2 at 85 on `h2_low_days` (its rule b.required failed)."""
    results = []
    for day in days:
        results += completeness_only("H1", day, 1, 0)
        results += completeness_only("H2", day, *((17, 3) if day in h2_low_days else (1, 0)))
        results += completeness_only("C1", day, 1, 0, ds="health_record")
        complete(ch, day)
    write_results(ch, results)


def approve_appeal(ch, appeal_id, day):
    at = dt.datetime(2026, 11, 12, 9, tzinfo=_TZ)
    result = [appeal_id, "H2", day, "outpatient_visit", "outpatient_visit.b.required", 1, "r1"]
    rows = [
        [result[0], event, *result[1:], actor, text, at + dt.timedelta(minutes=minutes)]
        for event, actor, text, minutes in (
            ("submitted", "H2 信息科", "系统故障", 0),
            ("approved", "质控科", "属实", 30),
        )
    ]
    ch.insert("dq.appeal_event", rows, column_names=list(APPEAL_COLUMNS))


def sign(ch, month, by="王质控"):
    return sign_month(
        ch,
        ORGS,
        month,
        by,
        load_scoring_config(),
        load_subsidy_config(),
        load_exemptions(ch),
        officers=OFFICERS,
    )


def reopen(ch, month, by, reason):
    return reopen_month(ch, month, by, reason, officers=OFFICERS)


def summary(signature):
    return {r["org_code"]: (r["days_at_bar"], r["passed"]) for r in signature.rows}


def test_signed_month_is_frozen_reopened_and_signed_again(rt):
    ch = rt.ch
    month_of_results(ch, NOV, h2_low_days=NOV[:2])
    first = sign(ch, NOV[4])
    sig = first.signature
    assert (sig["month"], sig["version"], sig["signer"], sig["phase"]) == (
        NOV[0],
        1,
        "王质控",
        "一期",
    )
    assert summary(first) == {"H1": (10, 1), "H2": (8, 0), "C1": (10, 1)}
    assert [(s["org_code"], s["amount_yuan"]) for s in first.subsidies] == [
        ("C1", 60000),
        ("H1", 50000),
    ]
    assert sig["subsidy_yuan"] == 110000 and (sig["organisations"], sig["passed"]) == (3, 2)
    assert sig["runs"] == [
        {"business_date": d.isoformat(), "run_id": "r1", "rules_fingerprint": "fp"} for d in NOV
    ]
    assert sig["rules_fingerprints"] == ["fp"] and sig["appeal_ids"] == []
    assert sig["config_fingerprint"] == load_scoring_config().fingerprint()
    assert first.rows[0]["org_name"] == "H1 医院" and first.rows[0]["kind"] == "hospital"
    assert first.rows[0]["evidence"]["days_judged"] == 10 and first.reopening is None

    with pytest.raises(SignoffRefused, match=r"2026-11 is signed \(version 1, by 王质控"):
        sign(ch, NOV[0], by="张科长")

    # a correction: a new validation run of 3 Nov in which H1 fails a blocking rule
    corrected = completeness_only("H2", NOV[2], 1, 0, run="r2")
    corrected += completeness_only("C1", NOV[2], 1, 0, run="r2", ds="health_record")
    corrected += completeness_only("H1", NOV[2], 1, 0, run="r2")
    corrected.append(
        res(
            "H1",
            "outpatient_visit",
            NOV[2],
            "file_readable",
            "correctness",
            0,
            "failed",
            run="r2",
            severity="blocking",
        )
    )
    write_results(ch, corrected)
    complete(ch, NOV[2], run="r2", minute=5)
    # and an approved appeal of both of H2's low days
    approve_appeal(ch, "A-1", NOV[0])
    approve_appeal(ch, "A-2", NOV[1])
    now = acceptance(ch, ORGS, NOV[0], exemptions=load_exemptions(ch))
    assert {r["org_code"]: r["passed"] for r in now} == {"H1": 0, "H2": 1, "C1": 1}
    assert read_acceptance(ch, NOV[0]) == now
    assert read_signature(ch, NOV[0]) == first  # the signed month did not move

    with pytest.raises(SignoffRefused, match="reopen it first"):
        sign(ch, NOV[0])
    with pytest.raises(SignoffRefused, match=r"the reason .* is empty"):
        reopen(ch, NOV[0], "李主任", " \n")
    decision = reopen(ch, NOV[0], "李主任", "申诉 A-1、A-2 已批准，3日数据已更正")
    assert (decision["version"], decision["actor"]) == (1, "李主任")
    with pytest.raises(SignoffRefused, match="already reopened"):
        reopen(ch, NOV[0], "李主任", "again")
    reopened = read_signature(ch, NOV[0])
    assert reopened.version == 1 and reopened.reopening["reason"].startswith("申诉 A-1")
    assert reopened.rows == first.rows and reopened.subsidies == first.subsidies

    second = sign(ch, NOV[0], by="张科长")
    assert (second.version, second.signature["signer"]) == (2, "张科长")
    assert summary(second) == {"H1": (10, 0), "H2": (10, 1), "C1": (10, 1)}
    assert second.signature["appeal_ids"] == ["A-1", "A-2"]
    assert second.signature["runs"][2] == {
        "business_date": "2026-11-03",
        "run_id": "r2",
        "rules_fingerprint": "fp",
    }
    # the month's own earlier version does not count as paid: version 2 replaces it
    assert [(s["org_code"], s["amount_yuan"]) for s in second.subsidies] == [
        ("C1", 60000),
        ("H2", 50000),
    ]
    kept = versions(ch, NOV[0])
    assert [v.version for v in kept] == [1, 2]
    assert kept[0].rows == first.rows and kept[0].signature == first.signature
    assert read_signature(ch, NOV[0]) == second


def test_subsidy_once_per_organisation_per_phase(rt):
    ch = rt.ch
    month_of_results(ch, NOV, h2_low_days=NOV[:2])
    month_of_results(ch, DEC)
    nov = sign(ch, NOV[0])
    assert {s["org_code"]: s["amount_yuan"] for s in nov.subsidies} == {"C1": 60000, "H1": 50000}
    dec = sign(ch, DEC[0])
    assert summary(dec) == {"H1": (5, 1), "H2": (5, 1), "C1": (5, 1)}
    paid = {s["org_code"]: (s["amount_yuan"], s["paid_in"]) for s in dec.subsidies}
    assert paid == {
        "C1": (0, NOV[0]),
        "H1": (0, NOV[0]),
        "H2": (50000, None),
    }
    assert dec.signature["subsidy_yuan"] == 50000


def test_nothing_to_sign_without_runs(rt):
    with pytest.raises(SignoffRefused, match="2026-11 has no complete validation run"):
        sign(rt.ch, NOV[0])
    with pytest.raises(SignoffRefused, match="is not signed"):
        reopen(rt.ch, NOV[0], "李主任", "why")
    with pytest.raises(SignoffRefused, match="the signer is empty"):
        sign(rt.ch, NOV[0], by="")


@pytest.mark.parametrize(
    "name", ["H2 信息科", "王质控\u200b", "王 质控", "QC.WANG", "qc.wang", "ｑｃ.wang"]
)
def test_only_a_quality_officer_signs_or_reopens_by_exact_name(rt, name):
    """A hospital's staff, or a variant of an officer's name, neither signs nor reopens."""
    ch = rt.ch
    month_of_results(ch, NOV[:2])
    with pytest.raises(SignoffRefused, match="may not sign the acceptance: that is the quality"):
        sign(ch, NOV[0], by=name)
    assert versions(ch, NOV[0]) == []
    sign(ch, NOV[0])
    with pytest.raises(SignoffRefused, match="may not reopen a signed month"):
        reopen(ch, NOV[0], name, "more money")
    assert read_signature(ch, NOV[0]).reopening is None


def _race(ch, month, signer, later_ms=1000):
    """What a second signing racing the first writes: the same version, its own rows and
    signature, a moment later (both read 'not signed' before either wrote)."""
    for table in ("dq.acceptance_signed", "dq.subsidy_line", "dq.acceptance_signature"):
        ch.command(
            f"INSERT INTO {table} SELECT * REPLACE ("
            " signed_at + toIntervalMillisecond({ms:UInt32}) AS signed_at"
            + (", {signer:String} AS signer" if table.endswith("signature") else "")
            + f") FROM {table} WHERE month = {{m:Date}}",
            parameters={"ms": later_ms, "signer": signer, "m": month},
        )


def test_two_signatures_racing_for_one_version_count_once(rt):
    """The first signature of a version commits it; a racing second one (and its rows and
    subsidy lines) is never read, so nobody is paid twice."""
    ch = rt.ch
    month_of_results(ch, NOV[:3], h2_low_days=NOV[:1])
    first = sign(ch, NOV[0])
    _race(ch, NOV[0], "张科长")
    assert ch.query("SELECT count() FROM dq.acceptance_signature").result_rows == [(2,)]
    kept = versions(ch, NOV[0])
    assert [(v.version, v.signature["signer"]) for v in kept] == [(1, "王质控")]
    assert kept[0] == first and len(kept[0].rows) == 3
    assert sum(s["amount_yuan"] for s in kept[0].subsidies) == 110000
    # the next month of the phase sees the organisations paid once, by the first signature
    month_of_results(ch, DEC[:2])
    dec = sign(ch, DEC[0])
    assert {s["org_code"]: s["amount_yuan"] for s in dec.subsidies} == {
        "C1": 0,
        "H1": 0,
        "H2": 50000,
    }


def test_a_signed_month_stays_as_signed_after_a_waiver_rescoring_and_acceptance_again(rt):
    """Every later command that recomputes (a waiver with its re-scoring, a re-validation,
    acceptance computed again) changes dq.acceptance, never the signed version."""
    from expectations.programme.appeals import add_waiver
    from expectations.programme.rescore import rescore

    ch = rt.ch
    month_of_results(ch, NOV, h2_low_days=NOV[:2])
    signed = sign(ch, NOV[0])
    assert summary(signed)["H2"] == (8, 0)
    at = dt.datetime.now(_TZ)
    add_waiver(
        ch,
        ORGS,
        OFFICERS,
        {"outpatient_visit.b.required"},
        "outpatient_visit.b.required",
        NOV[0],
        NOV[1],
        "declared outage",
        "王质控",
        at,
        org_code="H2",
    )
    done = rescore(ch, ORGS, NOV[0], NOV[1])
    assert done.public()["months_accepted_again"]
    assert {r["org_code"]: r["passed"] for r in read_acceptance(ch, NOV[0])}["H2"] == 1
    write_results(ch, completeness_only("H1", NOV[3], 0, 1, run="r2"))
    complete(ch, NOV[3], run="r2", minute=5)
    acceptance(ch, ORGS, NOV[0], exemptions=load_exemptions(ch))
    assert read_signature(ch, NOV[0]) == signed and versions(ch, NOV[0]) == [signed]


def test_two_months_of_a_phase_signed_at_the_same_time_pay_once(rt):
    """December signed while November's signing was under way (each judged the other
    unsigned) would pay H1 and C1 twice: the later signature is found paying twice and its
    version reopened on the record; signing again pays once."""
    from expectations.programme.signoff import paid_twice

    ch = rt.ch
    month_of_results(ch, NOV, h2_low_days=NOV[:2])
    month_of_results(ch, DEC)
    dec = sign(ch, DEC[0])
    assert paid_twice(ch, DEC[0]) == {}
    assert {s["org_code"] for s in dec.subsidies if s["amount_yuan"]} == {"C1", "H1", "H2"}
    # November's racing signing, committed a second before December's: it paid H1 and C1
    sig = dec.signature | {"runs": json.dumps(dec.signature["runs"])}
    stamp = {"month": NOV[0], "version": 1, "signed_at": sig["signed_at"] - dt.timedelta(seconds=1)}
    ch.insert(
        "dq.subsidy_line",
        [
            [stamp[c] if c in stamp else line[c] for c in SUBSIDY_COLUMNS]
            for line in dec.subsidies
            if line["org_code"] in ("C1", "H1")
        ],
        column_names=list(SUBSIDY_COLUMNS),
    )
    ch.insert(
        "dq.acceptance_signature",
        [[stamp[c] if c in stamp else sig[c] for c in SIGNATURE_COLUMNS]],
        column_names=list(SIGNATURE_COLUMNS),
    )
    assert paid_twice(ch, DEC[0]) == {"C1": NOV[0], "H1": NOV[0]}
    assert paid_twice(ch, NOV[0]) == {}  # the earlier signature stands
    # the same check runs at the end of every signing: reopened on the record, then signed
    # again, December pays H2 only
    reopen(ch, DEC[0], "王质控", "found paying twice")
    again = sign(ch, DEC[0])
    assert {s["org_code"]: s["amount_yuan"] for s in again.subsidies} == {
        "C1": 0,
        "H1": 0,
        "H2": 50000,
    }
    assert paid_twice(ch, DEC[0]) == {}
