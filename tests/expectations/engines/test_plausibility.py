"""Section 7.3 (plausibility over time and against peers) on hand-made rows at the boundaries:
money level shift (levelshift), copied readings and implausible workload (crossrules),
volume spike (monitoring)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pytest

from contracts.registry import Organisation, Registry
from expectations.engines.crossrules import run_cross
from expectations.engines.levelshift import comparable_days, run_level
from expectations.engines.monitoring import spike_check
from expectations.rules.rulebase import rulebase
from tests.expectations.engines.test_crossrules import run_embedded
from tests.expectations.engines.test_sqlrules import COUNTY
from tests.expectations.engines.test_sqlrules import load as load_batch

D = dt.date(2026, 12, 9)  # a Wednesday
RULES = rulebase().rules
COUNTY2 = "411503"


def rule(type_name: str):
    (found,) = [r for r in RULES if r.type == type_name]
    return found


def load(ch, dataset, rows, org, day=D, version=1):
    load_batch(ch, dataset, rows, org=org, day=day, version=version)


def days(n: int) -> dt.date:
    return D + dt.timedelta(days=n)


@pytest.fixture
def ch(rt):
    return rt.ch


# --------------------------------------------------------------------------- volume spike


def test_volume_spike_needs_z_and_more_than_three_times_the_median():
    params = rulebase().types["volume_not_spiked"].params
    assert rulebase().types["volume_not_spiked"].section == "7.3"
    friday = dt.date(2026, 11, 13)
    steady = {friday - dt.timedelta(days=i): 100 for i in range(1, 5)}
    assert spike_check(301, friday, steady, params)[:2] == (1, 1)  # > 3 x 100
    assert spike_check(300, friday, steady, params)[:2] == (1, 0)  # exactly 3 x: passes
    # more than 3 x the median 100, but within the ordinary swings: modified z 1.6
    swings = dict(
        zip([*sorted(steady), dt.date(2026, 11, 6)], (10, 100, 200, 300, 100), strict=True)
    )
    checked, failed, note = spike_check(320, friday, swings, params)
    assert (checked, failed) == (1, 0) and "modified z 1.6" in note
    sunday = dt.date(2026, 11, 15)  # no rest day of history: not judged
    checked, failed, note = spike_check(900, sunday, steady, params)
    assert (checked, failed) == (0, 0) and "0 comparable rest days" in note


# --------------------------------------------------------------------------- level shift


def org(code: str, level: str = "tertiary") -> Organisation:
    return Organisation(code, code, "hospital", level, "411502", (), dt.date(2020, 1, 1), None)


def registry(*orgs: Organisation) -> Registry:
    return Registry({o.org_code: o for o in orgs}, "test")


def load_rx(ch, org_code, day, amounts):
    rows = [
        {"rx_item_id": f"{org_code[-3:]}{day:%m%d}-{i}", "amount": Decimal(a)}
        for i, a in enumerate(amounts)
    ]
    load(ch, "prescription", rows, org=org_code, day=day)


def level(ch, reg, day=D):
    """(org, dataset) -> (checked, failed, keys, notes, details)."""
    out = {}
    for r in run_level(ch, reg, day, [rule("money_level_shift")]):
        assert r["failed"] in (0, r["checked"]) and r["business_date"] == day
        assert r["failed"] == 0 or len(r["keys"]) == r["failed"]
        out[(r["org_code"], r["dataset"])] = (
            r["checked"],
            r["failed"],
            r["keys"],
            r["notes"],
            r["details"],
        )
    return out


WORKDAYS = comparable_days(D, 28)


def test_comparable_days_are_the_same_weekday_type():
    assert len(WORKDAYS) == 20 and days(-1) in WORKDAYS and days(-4) not in WORKDAYS  # Saturday
    assert dt.date(2026, 12, 5) not in WORKDAYS and dt.date(2026, 12, 4) in WORKDAYS


@pytest.mark.integration
def test_level_shift_against_own_history_ratio_10_fails_and_9_99_passes(ch):
    up, almost, down, few = "H00000001", "H00000002", "H00000003", "H00000004"
    for code in (up, almost, down):
        for day in WORKDAYS[-4:]:
            load_rx(ch, code, day, ["90.00", "110.00"])  # batch median 100 (even count)
        # a rest day of history in fen does not count: not the same weekday type
        load_rx(ch, code, dt.date(2026, 12, 5), ["10000.00"])
    for day in WORKDAYS[-3:]:
        load_rx(ch, few, day, ["100.00"])  # three comparable days: not enough
    load_rx(ch, up, D, ["999.00", "1000.00", "1001.00"])  # ratio exactly 10
    load_rx(ch, almost, D, ["999.00"])  # ratio 9.99
    load_rx(ch, down, D, ["5.00", "10.00", "20.00"])  # ratio exactly 0.1
    load_rx(ch, few, D, ["100000.00"])
    out = level(ch, registry(org(up), org(almost), org(down), org(few, "secondary")))
    checked, failed, keys, _, details = out[(up, "prescription")]
    assert (checked, failed) == (3, 3) and len(keys) == 3
    assert details[0] == "amount median 1000.00 vs 100.00 (own 28-day history), ratio 10"
    assert out[(almost, "prescription")][:2] == (1, 0)
    assert "ratio 9.99" in out[(almost, "prescription")][3]
    assert out[(down, "prescription")][:2] == (3, 3)
    assert "ratio 0.1" in out[(down, "prescription")][4][0]
    # not enough history and no peer of its group: not_applicable
    assert out[(few, "prescription")][:2] == (0, 0)


@pytest.mark.integration
def test_level_shift_against_peers_without_history(ch):
    new, lonely = "H00000010", "H00000020"
    peers = ["H00000011", "H00000012", "H00000013"]
    for code in peers:
        load_rx(ch, code, D, ["100.00", "120.00", "80.00"])
    load_rx(ch, new, D, ["1000.00"])  # ratio 10 against the peers' median 100
    load_rx(ch, lonely, D, ["1000.00"])  # its peer group has two organisations with a batch
    load_rx(ch, "H00000021", D, ["100.00"])
    load_rx(ch, "H00000022", D, ["100.00"])
    reg = registry(
        org(new),
        *(org(p) for p in peers),
        org(lonely, "primary"),
        org("H00000021", "primary"),
        org("H00000022", "primary"),
    )
    out = level(ch, reg)
    checked, failed, _, _, details = out[(new, "prescription")]
    assert (checked, failed) == (1, 1)
    assert details == [
        "amount median 1000.00 is at least 10 times the median of peer group tertiary, 3 peers"
    ]
    assert out[(peers[0], "prescription")][:2] == (3, 0)  # 100 vs median(100, 100, 1000)
    assert out[(lonely, "prescription")][:2] == (0, 0)  # not_applicable, never failed
    assert "fewer than 4 comparable days and fewer than 3 peers" in out[(lonely, "prescription")][3]


@pytest.mark.integration
def test_level_shift_never_shows_a_peers_median(ch):
    """With three peers their median is one other organisation's batch median: neither it nor
    a ratio to it (the own median / ratio would give it back) is in the notes or details."""
    up, same, zero = "H00000040", "H00000044", "H00000050"
    peers = {"H00000041": "80.00", "H00000042": "123.45", "H00000043": "130.00"}
    for code, amount in peers.items():
        load_rx(ch, code, D, [amount])
    load_rx(ch, up, D, ["5000.00"])  # 39.46 x its peers' median 126.73 (same's 200 too)
    load_rx(ch, same, D, ["200.00"])  # 1.62 x its peers' median 123.45: passes
    for code in ("H00000051", "H00000052", "H00000053"):
        load_rx(ch, code, D, ["0.00"])  # the peers' median is 0: not comparable
    load_rx(ch, zero, D, ["100.00"])
    reg = registry(
        *(org(c) for c in (up, same, *peers)),
        *(org(c, "primary") for c in (zero, "H00000051", "H00000052", "H00000053")),
    )
    out = level(ch, reg)
    for code in (up, same, zero):
        _, _, _, notes, details = out[(code, "prescription")]
        shown = notes + " ".join(details)
        assert not any(x in shown for x in ("123.45", "126.7", "39.46", "1.62")), shown
        assert "ratio" not in shown and "reference median" not in shown, shown
    assert out[(up, "prescription")][:2] == (1, 1)
    assert out[(up, "prescription")][4] == [
        "amount median 5000.00 is at least 10 times the median of peer group tertiary, 4 peers"
    ]
    assert out[(same, "prescription")][:2] == (1, 0)
    assert "between 0.1 and 10 times the median of peer group" in out[(same, "prescription")][3]
    assert out[(zero, "prescription")][:2] == (0, 0)  # not_applicable, never failed


@pytest.mark.integration
def test_level_shift_is_the_same_whenever_computed(ch):
    code = "H00000030"
    for day in WORKDAYS[-4:]:
        load_rx(ch, code, day, ["100.00"])
    load_rx(ch, code, D, ["1000.00"])
    reg = registry(org(code))
    before = level(ch, reg)
    for day in (days(1), days(2)):  # later batches, even shifted ones, change nothing for D
        load_rx(ch, code, day, ["1.00"])
    assert level(ch, reg) == before
    assert before[(code, "prescription")][:2] == (1, 1)


@pytest.mark.integration
def test_a_shifted_batch_is_kept_out_of_the_marts_row_by_row(ch):
    """validate writes every record key of a shifted batch to dq.record_issue as blocking,
    the rows staging leaves out."""
    from expectations.validate import validate_date

    code = "H00000040"
    for day in WORKDAYS[-4:]:
        load_rx(ch, code, day, ["100.00"])
    load_rx(ch, code, D, ["10000.00", "12000.00"])
    summary = validate_date(ch, registry(org(code)), D)
    rows = ch.query(
        "SELECT record_key, severity, dimension, detail FROM dq.record_issue"
        " WHERE run_id = {r:String} AND rule_id = 'cross.money_level_shift' ORDER BY record_key",
        parameters={"r": summary.run_id},
    ).result_rows
    detail = "amount median 11000.00 vs 100.00 (own 28-day history), ratio 110"
    assert rows == [
        (f"040{D:%m%d}-0", "blocking", "correctness", detail),
        (f"040{D:%m%d}-1", "blocking", "correctness", detail),
    ]


# --------------------------------------------------------------------------- copied readings


def followup(fid, rec, when, sbp=None, dbp=None, glucose=None, disease="I10", doctor="DR1"):
    return {
        "followup_id": fid,
        "record_id": rec,
        "disease_code": disease,
        "followup_date": when,
        "sbp": sbp,
        "dbp": dbp,
        "fasting_glucose": None if glucose is None else Decimal(glucose),
        "doctor_id": doctor,
    }


def cross(ch, type_name, day=D):
    """(dataset, org) -> (checked, failed, keys, details)."""
    out = {}
    for r in run_embedded(ch, day, [rule(type_name)]):
        assert r["failed"] == len(r["keys"]) <= r["checked"]
        out[(r["dataset"], r["org_code"])] = (r["checked"], r["failed"], r["keys"], r["details"])
    return out


@pytest.mark.integration
def test_copied_readings_three_fail_two_pass_a_different_reading_breaks(ch):
    bp = (140, 90)
    earlier = [
        # R1: three identical consecutive (the third on D) -> fails
        followup("A1", "R1", days(-60), *bp),
        followup("A2", "R1", days(-30), *bp),
        # R2: two identical -> passes
        followup("B1", "R2", days(-30), *bp),
        # R3: identical, different, identical, identical -> a run of two
        followup("C1", "R3", days(-90), *bp),
        followup("C2", "R3", days(-60), 150, 95),
        followup("C3", "R3", days(-30), *bp),
        # R4: diabetes, glucose identical three times; the blood pressure does not matter
        followup("E1", "R4", days(-60), 120, 80, "7.2", "E11"),
        followup("E2", "R4", days(-30), 130, 85, "7.2", "E11"),
        # R5: a blank reading between breaks the run
        followup("F1", "R5", days(-90), *bp),
        followup("F2", "R5", days(-60)),
        followup("F3", "R5", days(-30), *bp),
        # R6: a follow-up sent again is not a copy of itself
        followup("G1", "R6", days(-60), *bp),
        followup("G2", "R6", days(-30), *bp),
    ]
    load(ch, "chronic_followup", earlier, org=COUNTY, day=days(-5))
    load(
        ch,
        "chronic_followup",
        [
            followup("A3", "R1", D, *bp),
            followup("B2", "R2", D, *bp),
            followup("C4", "R3", D, *bp),
            followup("E3", "R4", D, 140, 90, "7.2", "E11"),
            followup("F4", "R5", D, *bp),
            followup("G2", "R6", days(-30), *bp),
            # R7: ordered by followup_date, not upload: D's row is the earliest of three
            followup("H1", "R7", days(-90), *bp),
        ],
        org=COUNTY,
    )
    load(
        ch,
        "chronic_followup",
        [followup("H2", "R7", days(-60), *bp), followup("H3", "R7", days(-30), *bp)],
        org=COUNTY,
        day=days(-1),
    )
    # another county's record of the same id is another record
    load(ch, "chronic_followup", [followup("K1", "R2", days(-60), *bp)], org=COUNTY2, day=days(-5))
    load(ch, "chronic_followup", [], org=COUNTY2)
    out = cross(ch, "copied_readings")
    checked, _, keys, details = out[("chronic_followup", COUNTY)]
    assert checked == 7
    assert keys == ["A3", "E3"]
    assert details == [
        "sbp, dbp identical in 3 consecutive follow-ups",
        "fasting_glucose identical in 3 consecutive follow-ups",
    ]
    assert out[("chronic_followup", COUNTY2)][:2] == (0, 0)
    # a fourth identical follow-up on a later date fails too, as the 4th of the run
    load(ch, "chronic_followup", [followup("A4", "R1", days(1), *bp)], org=COUNTY, day=days(1))
    later = cross(ch, "copied_readings", days(1))[("chronic_followup", COUNTY)]
    assert later[2:] == (["A4"], ["sbp, dbp identical in 4 consecutive follow-ups"])


# --------------------------------------------------------------------------- workload


@pytest.mark.integration
def test_implausible_workload_60_passes_61_fails(ch):
    when = days(-1)
    load(
        ch,
        "chronic_followup",
        [followup(f"P{i}", f"R{i}", when, doctor="DR2") for i in range(59)],
        org=COUNTY,
        day=days(-1),
    )
    today = [followup(f"Q{i}", f"S{i}", when, doctor="DR1") for i in range(60)]
    today += [followup("X1", "T1", when, doctor="DR2"), followup("X2", "T2", when, doctor="DR2")]
    today += [followup("Y1", "T3", D, doctor="DR2")]  # another date: its own count
    today += [followup("P0", "R0", when, doctor="DR2")]  # sent again: counted once
    load(ch, "chronic_followup", today, org=COUNTY)
    # the same doctor id in another county is another count
    load(ch, "chronic_followup", [followup("Z1", "U1", when, doctor="DR1")], org=COUNTY2)
    out = cross(ch, "implausible_workload")
    checked, _, keys, details = out[("chronic_followup", COUNTY)]
    assert checked == 64
    assert keys == ["P0", "X1", "X2"]  # DR2 on that date: 61 follow-ups; DR1: 60
    assert details[0] == f"doctor_id DR2: 61 rows on {when} (at most 60)"
    assert out[("chronic_followup", COUNTY2)][:2] == (1, 0)


# --------------------------------------------------------------------------- the clean city


START = dt.date(2026, 11, 9)  # a Monday: the week's Friday has 4 working days of history
SECTION = {r.id for r in RULES if rulebase().types[r.type].section == "7.3"}
# ground-truth defect -> the rule type of section 7.3 that must catch it
DEFECTS = {
    "money_unit_shift": "money_level_shift",
    "copied_readings": "copied_readings",
    "implausible_workload": "implausible_workload",
    "volume_spike": "volume_not_spiked",
}


def _week(rt, tmp_path, faults, seed):
    """Generate and ingest 7 days; per section-7.3 rule type: the failing (org, dataset,
    date, key or None) and the rule ids judged at least once; and the ground truth."""
    import json

    from contracts.registry import load_registry
    from expectations.engines.monitoring import monitor_date
    from infra.pipeline import ingestor
    from samplecity import generate

    generate(tmp_path, START, 7, hospitals=10, counties=2, scale=0.003, faults=faults, seed=seed)
    reg = load_registry(tmp_path / "_registry.csv")
    failing, judged = set(), set()
    for i in range(7):
        day = START + dt.timedelta(days=i)
        ingestor(rt, reg).ingest(str(tmp_path), day)
        for r in run_level(rt.ch, reg, day, RULES) + run_cross(rt.ch, day, RULES, reg):
            if r["rule_id"] not in SECTION:
                continue
            judged |= {r["rule_id"]} if r["checked"] else set()
            where = (rule_type(r["rule_id"]), r["org_code"], r["dataset"], day.isoformat())
            failing |= {(*where, k) for k in r["keys"]}
            failing |= {(*where, None)} if r["failed"] and r["rule_id"] in LEVEL else set()
        for res in monitor_date(rt.ch, reg, rulebase(), day, run_id="t"):
            if res.rule_id in SECTION and res.status != "not_applicable":
                judged.add(res.rule_type)
                if res.status == "failed":
                    failing.add((res.rule_type, res.org_code, res.dataset, day.isoformat(), None))
    truth = [json.loads(x) for x in (tmp_path / "_ground_truth.jsonl").read_text().splitlines()]
    return failing, judged, truth


LEVEL = {r.id for r in RULES if r.type == "money_level_shift"}


def rule_type(rule_id: str) -> str:
    return next(r.type for r in RULES if r.id == rule_id)


@pytest.mark.integration
def test_clean_city_fails_no_plausibility_rule_over_a_week(rt, tmp_path):
    """Zero failed results of section 7.3 on --faults none over 7 days, and the history- and
    peer-based rules are judged (not vacuously not_applicable)."""
    failing, judged, _ = _week(rt, tmp_path, "none", seed=3)
    assert failing == set()
    assert {"cross.money_level_shift", "cross.copied_readings", "volume_not_spiked"} <= judged
    assert "cross.implausible_workload" in judged


@pytest.mark.integration
def test_default_city_plausibility_defects_found_and_nothing_else(rt, tmp_path):
    """Recall and precision of section 7.3 on the default faults over a week (which also
    carry a volume collapse, late files, missing batches, ...)."""
    failing, _, truth = _week(rt, tmp_path, "default", seed=11)
    expected = {
        (
            DEFECTS[t["defect"]],
            t["org_code"],
            t["dataset"],
            t["business_date"],
            None if t["expected_ingest"] else t["record_key"],
        )
        for t in truth
        if t["defect"] in DEFECTS
    }
    assert {e[0] for e in expected} == set(DEFECTS.values())  # every kind was injected
    # a shifted batch fails with every one of its keys: compare batches for that rule
    found = {f if f[0] != "money_level_shift" else (*f[:4], None) for f in failing}
    assert found == expected, (expected - found, found - expected)


@pytest.mark.integration
def test_level_shift_on_hostile_amounts(ch):
    """Blank, negative, zero and the largest amounts stop nothing: a history median of 0 is
    not comparable (no division), all-blank is no value, and another organisation's odd
    amounts change nobody else's result."""
    blank, zero_hist, negative, huge, plain = (f"H0000006{i}" for i in range(5))
    for day in WORKDAYS[-4:]:
        load_rx(ch, zero_hist, day, ["0.00"])
        load_rx(ch, negative, day, ["100.00"])
        load_rx(ch, huge, day, ["0.01"])
        load_rx(ch, plain, day, ["100.00"])
    rows = [{"rx_item_id": f"B{i}", "amount": None} for i in range(3)]
    load(ch, "prescription", rows, org=blank)
    load_rx(ch, zero_hist, D, ["100.00"])
    load_rx(ch, negative, D, ["-100.00", "-50.00"])
    load_rx(ch, huge, D, ["9999999999.99"])
    load_rx(ch, plain, D, ["100.00"])
    out = level(ch, registry(*(org(c) for c in (blank, zero_hist, negative, huge, plain))))
    assert out[(blank, "prescription")][:2] == (0, 0)
    assert "amount: no value" in out[(blank, "prescription")][3]
    assert out[(zero_hist, "prescription")][:2] == (0, 0)  # not_applicable, never failed
    assert out[(negative, "prescription")][:2] == (2, 2)  # ratio -0.75: at most 0.1
    assert out[(huge, "prescription")][:2] == (1, 1)
    assert "ratio 999999999999" in out[(huge, "prescription")][4][0]
    assert out[(plain, "prescription")][:2] == (1, 0)
