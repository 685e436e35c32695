"""Cross-dataset rules (section 5): hand-made batches per rule, and a generated city."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from collections import Counter, defaultdict

import pytest

from contracts.loader import contracts
from contracts.registry import load_registry
from expectations.engines.crossrules import cross_query, run_cross
from expectations.engines.sqlrules import CURRENT_BATCH, RuleSQLError, batches_table
from expectations.rules.rulebase import rulebase
from infra.pipeline import ingestor
from samplecity import generate
from tests.expectations.engines.test_sqlrules import COUNTY, HOSPITAL, at, rid
from tests.expectations.engines.test_sqlrules import load as load_batch

pytestmark = pytest.mark.integration

D = dt.date(2026, 12, 9)
RULES = rulebase().rules
CROSS = [r for r in RULES if r.level == "cross_dataset"]
HOSPITAL2, COUNTY2 = "12411500MB0000002X", "411503"
# identity numbers of the hand-made persons
A = rid(dt.date(1950, 3, 1), "1", seq=11)
B = rid(dt.date(1960, 4, 2), "2", seq=12)
C = rid(dt.date(1970, 5, 3), "1", seq=13)
IDS = (A, B, C)


def load(ch, dataset, rows, org=HOSPITAL, day=None, version=1):
    """One committed batch version of business date `day` (default D)."""
    load_batch(ch, dataset, rows, org=org, day=day or D, version=version)


def days(n: int) -> dt.date:
    return D + dt.timedelta(days=n)


@pytest.fixture
def ch(rt):
    return rt.ch


def rule(type_name: str):
    (found,) = [r for r in CROSS if r.type == type_name]
    return found


def run_embedded(ch, day, rules, registry=None):
    """run_cross as the embedded pipeline runs it (the shared steps as temporary tables).
    The one-query form a server runs gives the same results: the recall test's re-run and
    test_temporary_steps_are_dropped_and_a_leftover_one_is_replaced compare the two (running
    both here too cost 50 s of make test)."""
    return run_cross(ch, day, rules, registry, temporary_tables=True)


def outcome(ch, type_name, day=D):
    """(dataset, org) -> (batch_version, checked, failed, keys) for one rule."""
    rows = run_embedded(ch, day, [rule(type_name)])
    out = {}
    for r in rows:
        assert r["sample_keys"] == r["keys"][:20] == sorted(r["keys"])[:20]
        assert r["failed"] == len(r["keys"]) and r["failed"] <= r["checked"]
        assert r["query"] and r["notes"] and r["business_date"] == day
        assert not set(r["keys"]) & set(IDS)
        out[(r["dataset"], r["org_code"])] = (
            r["batch_version"],
            r["checked"],
            r["failed"],
            r["keys"],
        )
    return out


def patient(pid, id_no, sex="1"):
    return {"patient_id": pid, "id_type": "01", "id_no": id_no, "sex_code": sex}


def visit(vid, pid, when, dx="J06.9"):
    return {"visit_id": vid, "patient_id": pid, "visit_time": when, "diagnosis_code": dx}


def death(did, id_no, died):
    return {"death_id": did, "id_no": id_no, "death_date": died}


def record(rec_id, id_no, status="1"):
    return {"record_id": rec_id, "id_no": id_no, "status": status}


def test_no_activity_after_death(ch):
    load(ch, "patient", [patient("P1", A), patient("P2", B), patient("P4", None)], day=days(-3))
    # the same person at another hospital, written with blanks and a lower-case check char
    load(ch, "patient", [patient("Q1", f" {A.lower()} ")], org=HOSPITAL2, day=days(-3))
    load(ch, "death_registration", [death("SW1", A, days(-1))], org=COUNTY, day=days(-1))
    load(ch, "death_registration", [death("SW2", B, D)], org=COUNTY2, day=D)
    # superseded version and a registration after D: neither counts
    load(ch, "patient", [patient("P3", C)], day=days(-2))
    load(ch, "death_registration", [death("SW3", C, days(-9))], org=COUNTY, day=days(-2))
    load(ch, "death_registration", [], org=COUNTY, day=days(-2), version=2)
    load(ch, "death_registration", [death("SW4", C, days(-9))], org=COUNTY, day=days(1))
    load(
        ch,
        "outpatient_visit",
        [
            visit("V1", "P1", at(D, 9)),  # a day after the death: fails
            visit("V2", "P2", at(D, 9)),  # on the death date: not after it
            visit("V3", "P3", at(D, 9)),
            visit("V4", "P4", at(D, 9)),  # patient without identity number: not checked
            visit("V5", "P9", at(D, 9)),  # unknown patient: not checked
        ],
    )
    load(ch, "outpatient_visit", [visit("W1", "Q1", at(D, 23, 30))], org=HOSPITAL2)
    load(
        ch,
        "inpatient_discharge",
        [
            {
                "admission_id": "Z1",
                "patient_id": "P1",
                "admit_time": at(days(-4)),
                "discharge_time": at(D),
            }
        ],
    )
    load(
        ch,
        "prescription",
        [
            {"rx_item_id": "R1", "patient_id": "P1", "ordered_at": at(D, 8)},
            {"rx_item_id": "R2", "patient_id": "P1", "ordered_at": None},
        ],
    )
    assert outcome(ch, "no_activity_after_death") == {
        ("outpatient_visit", HOSPITAL): (1, 3, 1, ["V1"]),
        ("outpatient_visit", HOSPITAL2): (1, 1, 1, ["W1"]),
        ("inpatient_discharge", HOSPITAL): (1, 1, 0, []),  # admitted before the death
        ("prescription", HOSPITAL): (1, 1, 1, ["R1"]),
    }


def test_sex_specific_diagnosis(ch):
    load(
        ch,
        "patient",
        [patient("M", A, "2"), patient("F", B, "2"), patient("U", C, "9")],
        day=days(-5),
    )
    load(ch, "patient", [patient("M", A, "1")], day=days(-1))  # the latest row is current
    cases = {
        "V1": ("M", "O80.000", True),
        "V2": ("F", "O80.000", False),
        "V3": ("U", "N40", None),  # unknown sex: not checked
        "V4": ("M", "n40.x00 ", False),
        "V5": ("F", "C61", True),
        "V6": ("M", "J06.9", None),  # not sex-specific
        "V7": ("F", "N98.1", False),
        "V8": ("M", "N98", True),
        "V9": ("M", "N69.0", None),  # just outside N70-N98
        "V10": ("X", "O80.0", None),  # patient unknown
    }
    load(ch, "outpatient_visit", [visit(v, p, at(D), dx) for v, (p, dx, _) in cases.items()])
    load(
        ch,
        "inpatient_discharge",
        [
            {"admission_id": "Z1", "patient_id": "F", "principal_dx_code": "C61"},
            {"admission_id": "Z2", "patient_id": "M", "principal_dx_code": "C61"},
        ],
    )
    failing = sorted(v for v, (_, _, bad) in cases.items() if bad)
    checked = sum(bad is not None for _, _, bad in cases.values())
    assert outcome(ch, "sex_specific_diagnosis") == {
        ("outpatient_visit", HOSPITAL): (1, checked, len(failing), failing),
        ("inpatient_discharge", HOSPITAL): (1, 2, 1, ["Z1"]),
    }


def test_sex_specific_diagnosis_reads_every_diagnosis_field(ch):
    load(ch, "patient", [patient("M", A, "1"), patient("F", B, "2")], day=days(-1))

    def abstract(aid, pid, principal, other=None):
        return {
            "admission_id": aid,
            "patient_id": pid,
            "principal_dx_code": principal,
            "other_dx_codes": other,
        }

    cases = {
        "Z1": (abstract("Z1", "F", "C61"), "principal_dx_code C61"),
        "Z2": (abstract("Z2", "M", "C61", "I10"), None),  # checked, agrees
        "Z3": (abstract("Z3", "F", "J18.9", "I10;n40.1"), "other_dx_codes N40.1"),
        "Z4": (abstract("Z4", "F", "J18.9", "I10;E11.9;K29.7"), "not checked"),
        "Z5": (abstract("Z5", "F", "O80.0", "I10; O99.8"), None),
        "Z6": (abstract("Z6", "M", "N40.0", " O80.0 "), "other_dx_codes O80.0"),
        "Z7": (
            abstract("Z7", "F", "C61", "N40;;J18.9"),
            "principal_dx_code C61; other_dx_codes N40",
        ),
    }
    load(ch, "inpatient_discharge", [row for row, _ in cases.values()])
    (result,) = run_cross(ch, D, [rule("sex_specific_diagnosis")])
    failing = {k: d for k, (_, d) in cases.items() if d and d != "not checked"}
    assert result["dataset"] == "inpatient_discharge"
    assert result["checked"] == sum(d != "not checked" for _, d in cases.values()) == 6
    assert result["failed"] == len(failing) == 4
    # each failing key names the row and which field held the offending code
    assert dict(zip(result["keys"], result["details"], strict=True)) == failing
    assert result["sample_details"] == result["details"]


def followup(fid, rec_id, disease):
    return {"followup_id": fid, "record_id": rec_id, "disease_code": disease}


def test_followup_disease_on_record(ch):
    load(ch, "health_record", [record("R1", A), record("R2", B)], org=COUNTY, day=days(-10))
    load(ch, "health_record", [record("R3", C)], org=COUNTY, day=D)
    load(ch, "health_record", [record("R1", C)], org=COUNTY2, day=D)  # another county's R1
    load(ch, "patient", [patient("P1", A), patient("P2", B)], day=days(-10))
    load(ch, "patient", [patient("Q3", C)], org=HOSPITAL2, day=days(-10))
    load(ch, "outpatient_visit", [visit("V1", "P1", at(days(-3)), "I10.x00")], day=days(-3))
    load(
        ch,
        "inpatient_discharge",
        [
            {
                "admission_id": "Z1",
                "patient_id": "P2",
                "principal_dx_code": "J18.9",
                "other_dx_codes": "E11.9; i10",
            }
        ],
    )
    # C is diagnosed only after D, and only in a superseded version before it
    load(
        ch, "outpatient_visit", [visit("W1", "Q3", at(days(1)), "I10")], org=HOSPITAL2, day=days(1)
    )
    load(
        ch,
        "outpatient_visit",
        [visit("W2", "Q3", at(days(-2)), "I10")],
        org=HOSPITAL2,
        day=days(-2),
    )
    load(ch, "outpatient_visit", [], org=HOSPITAL2, day=days(-2), version=2)
    rows = [
        followup("F1", "R1", "I10"),
        followup("F2", "R1", "E11"),  # A has no diabetes diagnosis
        followup("F3", "R2", "I10"),  # from the other inpatient diagnoses
        followup("F4", "R2", "E11"),
        followup("F5", "R3", "I10"),  # C: no diagnosis up to D
        followup("F6", "R9", "I10"),  # unknown record: not checked
        followup("F7", "R1", None),  # no disease: not checked
    ]
    load(ch, "chronic_followup", rows, org=COUNTY)
    load(ch, "chronic_followup", [followup("G1", "R1", "I10")], org=COUNTY2)
    assert outcome(ch, "followup_disease_on_record") == {
        ("chronic_followup", COUNTY): (1, 5, 2, ["F2", "F5"]),
        ("chronic_followup", COUNTY2): (1, 1, 1, ["G1"]),  # R1 there is C
    }


def test_death_closes_health_record_judged_30_days_after_upload(ch):
    registered = days(-30)
    load(
        ch,
        "death_registration",
        [
            death("SW1", A, days(-31)),
            death("SW2", B, days(-32)),
            death("SW3", C, days(-30)),
            death("SW4", None, days(-30)),
        ],
        org=COUNTY,
        day=registered,
    )
    load(ch, "health_record", [record("R1", A, "2")], org=COUNTY, day=days(-20))
    load(ch, "health_record", [record("R2", B, "2")], org=COUNTY2, day=days(-29))  # any county
    load(ch, "health_record", [record("R3", C, "1")], org=COUNTY, day=days(-29))
    load(ch, "health_record", [record("R3", C, "2")], org=COUNTY, day=days(1))  # too late
    load(ch, "death_registration", [], org=COUNTY2, day=D)
    assert outcome(ch, "death_closes_health_record") == {
        ("death_registration", COUNTY): (0, 3, 1, ["SW3"]),  # no batch of its own on D
        ("death_registration", COUNTY2): (1, 0, 0, []),  # nothing registered 30 days ago
    }
    load(ch, "death_registration", [], org=COUNTY, day=D)
    assert outcome(ch, "death_closes_health_record")[("death_registration", COUNTY)][:3] == (
        1,
        3,
        1,
    )
    # on the day of the registration nothing is judged yet, nor on any day but D
    assert outcome(ch, "death_closes_health_record", registered) == {
        ("death_registration", COUNTY): (1, 0, 0, []),
    }
    assert outcome(ch, "death_closes_health_record", days(-1)) == {}


def test_every_batch_of_d_gets_a_row_and_results_do_not_move(ch):
    for ds in ("outpatient_visit", "inpatient_discharge", "prescription"):
        load(ch, ds, [], org=HOSPITAL2)
    load(ch, "chronic_followup", [], org=COUNTY)
    load(ch, "death_registration", [], org=COUNTY2)
    load(ch, "patient", [patient("P1", A, "1")], day=days(-1))
    load(ch, "outpatient_visit", [visit("V1", "P1", at(D), "O80.0")])
    load(ch, "death_registration", [death("SW1", A, days(-1))], org=COUNTY, day=days(-1))
    registry = load_registry()
    first = run_cross(ch, D, RULES, registry)
    judged = {
        "cross.no_activity_after_death": (
            "outpatient_visit",
            "inpatient_discharge",
            "prescription",
        ),
        "cross.sex_specific_diagnoses": ("outpatient_visit", "inpatient_discharge"),
        "cross.followup_disease_on_record": ("chronic_followup",),
        "cross.death_closes_health_record": ("death_registration",),
        "cross.principal_dx_not_external_cause": ("inpatient_discharge",),
        "cross.diagnosis_not_repeated": ("inpatient_discharge",),
        "cross.age_specific_diagnosis": ("inpatient_discharge",),
        "cross.inpatient_death_registered": ("death_registration",),
        # section 7.2: no patient or health_record batch on D, so no demographics result
        "cross.stay_overlap_same_org": ("inpatient_discharge",),
        "cross.stay_overlap_other_org": ("inpatient_discharge",),
        "cross.record_not_resent": (
            "outpatient_visit",
            "inpatient_discharge",
            "prescription",
            "chronic_followup",
            "death_registration",
        ),
        "cross.copied_readings": ("chronic_followup",),
        "cross.implausible_workload": ("chronic_followup",),
    }
    batches = {
        "outpatient_visit": (HOSPITAL, HOSPITAL2),
        "inpatient_discharge": (HOSPITAL2,),
        "prescription": (HOSPITAL2,),
        "chronic_followup": (COUNTY,),
        "death_registration": (COUNTY2,),
    }
    assert sorted((r["rule_id"], r["dataset"], r["org_code"]) for r in first) == sorted(
        (rule_id, ds, org) for rule_id, sets in judged.items() for ds in sets for org in batches[ds]
    )
    # later uploads (a newer patient row, a death registered after D) change nothing for D
    load(ch, "patient", [patient("P1", B, "2")], day=days(1))
    load(ch, "death_registration", [death("SW9", B, days(-5))], org=COUNTY, day=days(1))
    assert run_cross(ch, D, RULES, registry) == first
    failing = {(r["rule_id"], k) for r in first for k in r["keys"]}
    assert failing == {
        ("cross.no_activity_after_death", "V1"),
        ("cross.sex_specific_diagnoses", "V1"),
    }


def _one_stay(ch):
    """A patient and a stay of D: rows every step of the overlap rules reads."""
    load(ch, "patient", [patient("P1", A, "1")], day=days(-1))
    stay = {"admission_id": "Z1", "patient_id": "P1", "admit_time": at(days(-3))}
    load(ch, "inpatient_discharge", [stay | {"discharge_time": at(D)}])


def _temporary_tables(ch):
    return ch.query("SELECT name FROM system.tables WHERE is_temporary ORDER BY name").result_rows


class _Recording:
    """The test's chDB client, keeping the SQL it is sent (query and command)."""

    def __init__(self, ch):
        self.ch, self.sent, self.queries = ch, [], []

    def query(self, sql, *args, **kwargs):
        self.sent.append(sql)
        self.queries.append(sql)
        return self.ch.query(sql, *args, **kwargs)

    def command(self, sql, *args, **kwargs):
        self.sent.append(sql)
        return self.ch.command(sql, *args, **kwargs)


def test_temporary_steps_are_dropped_and_a_leftover_one_is_replaced(ch):
    """The shared steps as temporary tables (the embedded pipeline's form): none is left in
    the session after a run, a table of a step's name left by a crashed run (chDB keeps
    one session per process) is replaced, not read, and the view of current batches is read
    once, into the copy every query reads; the results are the one-query form's."""
    _one_stay(ch)
    assert _temporary_tables(ch) == []
    ch.command("CREATE TEMPORARY TABLE stay_persons ENGINE = Memory AS SELECT 1 AS stale")
    # a stale copy of the current batches, holding none: were it read, not replaced, no row
    # of D would be judged
    ch.command(
        "CREATE TEMPORARY TABLE current_batch_copy ENGINE = Memory AS"
        " SELECT * FROM raw.current_batch WHERE business_date < toDate('2000-01-01')"
    )
    # chDB lists a session's temporary tables: the checks of none left can fail
    assert _temporary_tables(ch) == [("current_batch_copy",), ("stay_persons",)]
    registry = load_registry()
    recording = _Recording(ch)
    got = run_cross(recording, D, RULES, registry, temporary_tables=True)
    assert _temporary_tables(ch) == []
    views = [sql for sql in recording.sent if "raw.current_batch" in sql]
    assert len(views) == 1 and views[0].startswith("CREATE TEMPORARY TABLE `current_batch_copy`")
    # one query per group of rules, each judging current batches: all from the copy
    assert len(recording.queries) >= 10
    assert all("FROM current_batch_copy" in sql for sql in recording.queries)
    assert got == run_cross(ch, D, RULES, registry)
    assert any(r["rule_id"] == "cross.stay_overlap_same_org" and r["checked"] for r in got)


class _FailingOverlaps(_Recording):
    """Fails the overlap rules' query, as a broken query or a lost session would."""

    def query(self, sql, *args, **kwargs):
        if "ORDER BY _rule" in sql and "stay_told_earlier" in sql:
            raise RuntimeError("the overlap query failed")
        return super().query(sql, *args, **kwargs)


def test_a_failed_query_leaves_no_temporary_table_and_the_view_in_use(ch):
    """A rule query failing while its steps and the copy of the current batches exist: all
    of them dropped, and SQL built afterwards reads the view again."""
    _one_stay(ch)
    failing = _FailingOverlaps(ch)
    with pytest.raises(RuntimeError, match="the overlap query failed"):
        run_cross(failing, D, RULES, load_registry(), temporary_tables=True)
    assert any("CREATE TEMPORARY TABLE `stay_told_earlier`" in sql for sql in failing.sent)
    assert _temporary_tables(ch) == []
    assert batches_table() == CURRENT_BATCH


class _LostSession(_FailingOverlaps):
    """After the overlap query fails, every command fails too, as on a lost session."""

    def __init__(self, ch):
        super().__init__(ch)
        self.lost = False

    def query(self, sql, *args, **kwargs):
        try:
            return super().query(sql, *args, **kwargs)
        except RuntimeError:
            self.lost = True
            raise

    def command(self, sql, *args, **kwargs):
        if self.lost:
            raise ConnectionError("the session is gone")
        return super().command(sql, *args, **kwargs)


def test_a_failed_query_is_reported_even_when_its_steps_cannot_be_dropped(ch):
    """The error an operator reads is why the rule failed, not the clean-up after it; the
    next run replaces what was left."""
    _one_stay(ch)
    registry = load_registry()
    with pytest.raises(RuntimeError, match="the overlap query failed"):
        run_cross(_LostSession(ch), D, RULES, registry, temporary_tables=True)
    left = {name for (name,) in _temporary_tables(ch)}
    assert {"current_batch_copy", "stay_told_earlier"} <= left
    assert batches_table() == CURRENT_BATCH
    again = run_cross(ch, D, RULES, registry, temporary_tables=True)
    assert again == run_cross(ch, D, RULES, registry)
    assert _temporary_tables(ch) == []


def test_queries_come_from_parameters_only():
    q = cross_query(rule("sex_specific_diagnosis"), D)
    assert "'O00' AND 'O99'" in q and "startsWith" in q and "join_use_nulls = 1" in q
    assert "now()" not in q.lower() and "today()" not in q.lower()
    assert q.count("FROM raw.current_batch") >= 2
    sex = rule("sex_specific_diagnosis")
    injected = {**sex.params, "rules": [{"codes": ["O00-O9'9"], "sex": "2"}]}
    with pytest.raises(RuleSQLError):
        cross_query(dataclasses.replace(sex, params=injected), D)
    with pytest.raises(RuleSQLError):
        cross_query(next(r for r in RULES if r.level == "record"), D)


# ----------------------------------------------------------------------------- generated city

START = dt.date(2026, 11, 9)
CITY = {"hospitals": 6, "counties": 2, "scale": 0.005}
CROSS_DEFECTS = {
    "visit_after_death",
    "sex_specific_dx",
    "followup_without_diagnosis",
    "external_cause_principal_dx",
    "repeated_diagnosis",
    "age_specific_dx",
    "copied_readings",
    "implausible_workload",
}


def _identity_numbers(ch) -> set[str]:
    """Every identity number in the warehouse (fields tagged pii: identity)."""
    numbers = set()
    for ds in contracts().datasets.values():
        for name, kind in ds.pii_fields.items():
            if kind == "identity":
                rows = ch.query(
                    f"SELECT DISTINCT upperUTF8(trimBoth({name})) FROM raw.{ds.dataset}"
                )
                numbers |= {n for (n,) in rows.result_rows if n}
    return numbers


def _city(rt, tmp_path, days, faults, seed):
    """Generate and ingest a city; failing keys per batch, checked rows per rule, truth."""
    generate(tmp_path, START, days, faults=faults, seed=seed, **CITY)
    registry = load_registry(tmp_path / "_registry.csv")
    for i in range(days):
        ingestor(rt, registry).ingest(str(tmp_path), START + dt.timedelta(days=i))
    numbers = _identity_numbers(rt.ch)
    assert len(numbers) > 100
    found, checked = defaultdict(set), Counter()
    for i in range(days):
        for r in run_cross(rt.ch, START + dt.timedelta(days=i), RULES, registry):
            parts = {p.strip().upper() for k in r["keys"] for p in k.split("|")}
            assert not parts & numbers  # record keys never carry an identity number
            checked[r["rule_id"]] += r["checked"]
            for key in r["keys"]:
                found[(r["org_code"], r["dataset"], r["business_date"].isoformat())].add(key)
    truth = [json.loads(x) for x in (tmp_path / "_ground_truth.jsonl").read_text().splitlines()]
    return found, checked, truth


def test_generated_city_defects_are_found(rt, tmp_path):
    found, _, truth = _city(rt, tmp_path, 4, "default", seed=11)
    items = [t for t in truth if t["defect"] in CROSS_DEFECTS]
    assert {t["defect"] for t in items} == CROSS_DEFECTS
    missed = [
        t
        for t in items
        if t["record_key"] not in found[(t["org_code"], t["dataset"], t["business_date"])]
    ]
    assert not missed
    # and nothing else fails: every failing key is a ground-truth item
    listed = {(t["org_code"], t["dataset"], t["business_date"], t["record_key"]) for t in truth}
    extra = [(*w, k) for w, keys in found.items() for k in keys if (*w, k) not in listed]
    assert not extra


def test_clean_city_has_no_cross_dataset_failure(rt, tmp_path):
    found, checked, _ = _city(rt, tmp_path, 4, "none", seed=3)
    assert not found
    # the clean city does exercise the rules (no death or discharge is 30 days old within four days)
    assert {r.id for r in CROSS if checked[r.id]} == {r.id for r in CROSS} - {
        "cross.death_closes_health_record",
        "cross.inpatient_death_registered",
    }


# ----------------------------------------------------------------------------- section 7.1


def abstract(aid, pid="P1", principal="J18.9", other=None, **kw):
    return {
        "admission_id": aid,
        "patient_id": pid,
        "admit_time": at(days(-3)),
        "discharge_time": at(D),
        "principal_dx_code": principal,
        "other_dx_codes": other,
        "discharge_method": "1",
        **kw,
    }


def details(ch, type_name, day=D, registry=None):
    """(dataset, org) -> (checked, {key: detail}) for one rule."""
    out = {}
    for r in run_embedded(ch, day, [rule(type_name)], registry):
        assert r["failed"] == len(r["keys"]) == len(r["details"])
        out[(r["dataset"], r["org_code"])] = (
            r["checked"],
            dict(zip(r["keys"], r["details"], strict=True)),
        )
    return out


def test_principal_dx_not_external_cause(ch):
    cases = {
        "X1": ("V01", None, "principal_dx_code V01"),  # first category of chapter XX
        "X2": (" y98.9 ", None, "principal_dx_code Y98.9"),  # last category, any spelling
        "X3": ("W19", "I10", "principal_dx_code W19"),
        "X4": ("U07.1", None, None),  # chapter XXII, just below V
        "X5": ("Y99", None, None),  # not in WHO ICD-10 (ICD-10-CM only): outside V01-Y98
        "X6": ("Z00.0", None, None),
        "X7": ("S72.0", "W19;X59.9", None),  # external causes among the other diagnoses: fine
        "X8": (None, "V01", "not checked"),  # no principal diagnosis
        "X9": ("V00", None, None),  # below V01 (and no ICD-10 code)
    }
    load(
        ch,
        "inpatient_discharge",
        [abstract(k, principal=p, other=o) for k, (p, o, _) in cases.items()],
    )
    (((dataset, org), (checked, failing)),) = details(ch, "principal_dx_not_external_cause").items()
    assert (dataset, org) == ("inpatient_discharge", HOSPITAL)
    assert checked == 8
    assert failing == {k: d for k, (_, _, d) in cases.items() if d and d != "not checked"}
    assert rule("principal_dx_not_external_cause").severity == "blocking"


def test_diagnosis_not_repeated(ch):
    cases = {
        "R1": ("I10", "E11.9;I10", "other_dx_codes I10"),  # the principal again
        "R2": ("J18.9", "E11.9; e11.9 ", "other_dx_codes E11.9"),  # case and blanks
        "R3": ("i10 ", "I10.x00;E11.9", None),  # I10 and I10.x00 are different codes
        "R4": ("J18.9", "E11.9;;I10;", None),  # empty list items are no codes
        "R5": (None, "J18.9;J18.9;j18.9", "other_dx_codes J18.9; other_dx_codes J18.9"),
        "R6": (None, None, "not checked"),
        "R7": ("S72.0", "S72.0;S72.0", "other_dx_codes S72.0; other_dx_codes S72.0"),
        "R8": ("K35.8", None, None),
    }
    load(
        ch,
        "inpatient_discharge",
        [abstract(k, principal=p, other=o) for k, (p, o, _) in cases.items()],
    )
    ((_, (checked, failing)),) = details(ch, "diagnosis_not_repeated").items()
    assert checked == 7
    assert failing == {k: d for k, (_, _, d) in cases.items() if d and d != "not checked"}


def test_age_specific_diagnosis_at_its_boundaries(ch):
    admitted = days(-3)  # 2026-12-06

    def born(years: int, shift: int = 0) -> dt.date:
        return admitted.replace(year=admitted.year - years) + dt.timedelta(days=shift)

    births = {
        "A10": born(10),  # tenth birthday on the admission date: 10
        "A9": born(10, 1),  # tenth birthday the day after: 9
        "A60": born(60),
        "A61": born(61),
        "A60b": born(61, 1),  # 61st birthday tomorrow: still 60
        "N364": admitted - dt.timedelta(days=364),
        "N1": born(1),  # first birthday on the admission date
    }
    load(
        ch,
        "patient",
        [{**patient(p, None), "birth_date": b} for p, b in births.items()],
        day=days(-10),
    )
    # the latest patient row counts: A70 was first sent with a wrong birth date
    load(ch, "patient", [{**patient("A70", None), "birth_date": born(30)}], day=days(-9))
    load(ch, "patient", [{**patient("A70", None), "birth_date": born(70)}], day=days(-1))
    cases = {
        "Z1": ("A10", "O80", None, None),
        "Z2": ("A9", "O80", None, "principal_dx_code O80; age 9"),
        "Z3": ("A60", "O82", None, None),
        "Z4": ("A61", "O82", None, "principal_dx_code O82; age 61"),
        "Z5": ("A60b", "J18.9", "o99.8", None),
        "Z6": ("A61", "J18.9", "I10;O99.8", "other_dx_codes O99.8; age 61"),
        "Z7": ("N364", "P07.3", None, None),
        "Z8": ("N1", "P07.3", None, "principal_dx_code P07.3; age 1"),
        "Z9": ("A10", "J18.9", "P59.9", "other_dx_codes P59.9; age 10"),
        "Z10": ("A70", "O80", None, "principal_dx_code O80; age 70"),
        "Z11": ("A61", "J18.9", "I10", "not checked"),  # no age-specific diagnosis
        "Z12": ("P404", "O80", None, "not checked"),  # unknown patient: age unknown
    }
    rows = [abstract(k, pid, principal=p, other=o) for k, (pid, p, o, _) in cases.items()]
    # admitted at 00:30 Beijing time (16:30 UTC the day before): age is taken on the local date
    rows.append(abstract("Z13", "A10", principal="O80", admit_time=at(admitted, 0, 30)))
    load(ch, "inpatient_discharge", rows)
    ((_, (checked, failing)),) = details(ch, "age_specific_diagnosis").items()
    assert checked == len(rows) - 2
    assert failing == {k: d for k, (*_, d) in cases.items() if d and d != "not checked"}


H = HOSPITAL


def test_inpatient_death_registered_judged_30_days_after_upload(ch):
    registry = load_registry()  # the sample city's counties: 411502, 411503, ...
    judged = days(-30)
    e, f, g = (rid(dt.date(1940, 1, 1), "1", seq=s) for s in (21, 22, 23))
    beijing = rid(dt.date(1941, 1, 1), "2", area="110101", seq=24)
    persons = [
        {**patient("P1", A), "address_division": "411502001001"},
        {**patient("P2", B), "address_division": "411503"},
        {**patient("P3", C), "address_division": "  "},  # blank: the id_no's area, 411502
        {**patient("P4", e), "id_type": "03", "address_division": "411502"},  # not a resident id
        {**patient("P5", beijing), "address_division": None},  # no county of the registry
        {**patient("P6", f), "address_division": "411503101201"},
        {**patient("P7", g), "address_division": "411502"},
    ]
    load(ch, "patient", persons, day=days(-32))

    def died(aid, pid, method="5"):
        return abstract(aid, pid, discharge_method=method, discharge_time=at(judged, 10))

    load(
        ch,
        "inpatient_discharge",
        [
            died("Z1", "P1"),  # registered the next day by another county: passes
            died("Z2", "P2"),  # registered, but dead two days before the discharge date
            died("Z3", "P3"),  # never registered
            died("Z4", "P4"),  # not checked
            died("Z5", "P5"),  # not judged: no registering county
            died("Z6", "P6"),  # registered the day before
            died("Z7", "P7"),  # registered only after D
            died("Z8", "P2", method="1"),  # not a death
            died("Z9", "P9"),  # unknown patient
        ],
        day=judged,
    )
    load(ch, "death_registration", [death("SW1", A, days(-29))], org=COUNTY2, day=days(-29))
    load(ch, "death_registration", [death("SW2", B, days(-32))], org=COUNTY, day=days(-28))
    load(ch, "death_registration", [death("SW6", f, days(-31))], org=COUNTY, day=days(-20))
    load(ch, "death_registration", [death("SW7", g, days(-30))], org=COUNTY, day=days(1))
    load(ch, "death_registration", [], org=COUNTY2, day=D)
    got = details(ch, "inpatient_death_registered", registry=registry)
    assert got == {
        # no batch of its own on D: version 0, as death_closes_health_record
        ("death_registration", COUNTY): (
            3,
            {f"{H} Z3": f"{H} Z3 discharged {judged}", f"{H} Z7": f"{H} Z7 discharged {judged}"},
        ),
        ("death_registration", COUNTY2): (2, {f"{H} Z2": f"{H} Z2 discharged {judged}"}),
    }
    versions = {
        r["org_code"]: r["batch_version"]
        for r in run_cross(ch, D, [rule("inpatient_death_registered")], registry)
    }
    assert versions == {COUNTY: 0, COUNTY2: 1}
    # on any other day the discharges of `judged` are not judged
    assert details(ch, "inpatient_death_registered", days(-1), registry) == {}
    before = details(ch, "inpatient_death_registered", judged, registry)
    assert all(checked == 0 for checked, _ in before.values())
    with pytest.raises(RuleSQLError):
        run_cross(ch, D, [rule("inpatient_death_registered")])


def test_generated_city_unregistered_in_hospital_death_is_the_countys(rt, tmp_path):
    """inpatient_death_registered judges a discharge 30 days after its upload, which no city of
    a week reaches (the generator skips the defect there and says so): a small city of 33 days
    carries one in-hospital death of day 0 that no county registers. On days 30-32 the
    discharges of days 0-2 are judged: the only failure is that death, reported to the
    registering county with the hospital's record key; any in-hospital death of the city's
    own on those days (registered on the death date or up to two days later) passes
    (tests/samplecity checks those registrations on a bigger city)."""
    n = 33
    generate(tmp_path, START, n, faults="default", seed=11, hospitals=3, counties=1, scale=0.001)
    registry = load_registry(tmp_path / "_registry.csv")
    for i in range(n):
        ingestor(rt, registry).ingest(str(tmp_path), START + dt.timedelta(days=i))
    truth = [json.loads(x) for x in (tmp_path / "_ground_truth.jsonl").read_text().splitlines()]
    (item,) = [t for t in truth if t["defect"] == "death_not_registered"]
    found, checked = set(), 0
    for i in range(30, n):
        for r in run_cross(
            rt.ch, START + dt.timedelta(days=i), [rule("inpatient_death_registered")], registry
        ):
            checked += r["checked"]
            found |= {
                (r["org_code"], r["dataset"], r["business_date"].isoformat(), k) for k in r["keys"]
            }
    want = (item["org_code"], item["dataset"], item["business_date"], item["record_key"])
    assert found == {want}
    assert checked >= 1
