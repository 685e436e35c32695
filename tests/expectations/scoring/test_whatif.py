"""What-if on hand-made rule results: every change is checked against a real re-scoring of the
same results made with the changed rules (a fresh warehouse, score_date and acceptance), and
the what-if itself writes nothing."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from decimal import ROUND_HALF_UP, Decimal
from fractions import Fraction
from zoneinfo import ZoneInfo

import pytest
from typer.testing import CliRunner

from contracts.loader import ContractError
from contracts.registry import Registry, load_registry
from expectations.programme.appeals import APPEAL_COLUMNS
from expectations.programme.history import load_exemptions
from expectations.rules.results import status_of, write_results
from expectations.rules.rulebase import rulebase
from expectations.scoring.acceptance import acceptance
from expectations.scoring.config import load_scoring_config
from expectations.scoring.inputs import scored_days
from expectations.scoring.store import score_date
from expectations.scoring.whatif import load_changes
from infra.cli_whatif import what_if
from tests.conftest import reset_warehouse
from tests.expectations.scoring.test_scoring import complete, res

pytestmark = pytest.mark.integration

_TZ = ZoneInfo("Asia/Shanghai")
SAMPLE = load_registry()
A, B, C = sorted(
    o.org_code for o in SAMPLE.active(dt.date(2026, 3, 1)) if o.peer_group == "tertiary"
)[:3]
REGISTRY = Registry({c: SAMPLE.organisations[c] for c in (A, B, C)}, "three hospitals")
DATES = [dt.date(2026, 3, 29), dt.date(2026, 3, 30), dt.date(2026, 3, 31), dt.date(2026, 4, 1)]
FIRST, LAST = DATES[1], DATES[-1]  # the period; acceptance judges March from the 29th
MONTHS = (dt.date(2026, 3, 1), dt.date(2026, 4, 1))
OV, RX = "outpatient_visit", "prescription"


@dataclasses.dataclass(frozen=True)
class Rules:
    """The rules the hand-made results are judged with."""

    icd10_weight: float = 2
    late_threshold: float = 1
    max_severity: str = "warning"


def judged(o, day, rule, dimension, weight, checked, failed, threshold=0.0, **kw):
    status, pct = status_of(checked, failed, threshold)
    return res(
        o,
        OV,
        day,
        rule,
        dimension,
        weight,
        status,
        checked=checked,
        failed=failed,
        failed_pct=pct,
        threshold=threshold,
        run=f"run-{day:%m%d}",
        **kw,
    )


def day_results(day: dt.date, rules: Rules) -> list:
    """A: fails the ICD-10 rule (composite 85); B: fails max and min and sends 2% of records
    late (79.29); C: clean, but its prescription batch is missing on 31 March (75 that day) and
    it fails max on 1 April (92.5)."""
    out = []
    for org, (icd10, maximum, minimum, late) in {
        A: (5, 0, 0, 0),
        B: (0, 3, 3, 2),
        C: (0, 3 if day == DATES[-1] else 0, 0, 0),
    }.items():
        out += [
            judged(org, day, "batch_received", "completeness", 5, 1, 0, severity="blocking"),
            judged(org, day, "a.required", "completeness", 2, 10, 0),
            judged(org, day, "batch_on_time", "timeliness", 5, 1, 0),
            judged(org, day, "e.record_not_late", "timeliness", 2, 100, late, rules.late_threshold),
            judged(org, day, "d.icd10_valid", "correctness", rules.icd10_weight, 10, icd10),
            judged(org, day, "f.max", "correctness", 1, 10, maximum, severity=rules.max_severity),
            judged(org, day, "g.min", "correctness", 1, 10, minimum),
            judged(org, day, "x.unique_key", "logic", 3, 10, 0, severity="blocking"),
        ]
        if org == C and day == DATES[2]:
            for rule, dimension, weight, severity in (
                ("batch_received", "completeness", 5, "blocking"),
                ("batch_on_time", "timeliness", 5, "warning"),
            ):
                out.append(
                    res(
                        org, RX, day, rule, dimension, weight, "failed",
                        run=f"run-{day:%m%d}", severity=severity, version=0, checked=1, failed=1,
                    )
                )  # fmt: skip
    return out


def load(ch, rules: Rules = Rules()) -> None:
    for i, day in enumerate(DATES):
        write_results(ch, day_results(day, rules))
        complete(ch, day, run=f"run-{day:%m%d}", minute=i)


def score_all(ch, config) -> tuple[dict, dict]:
    """The real thing: score every date and judge both months; the stored scores by (date,
    org) and the acceptance rows by (month, org)."""
    for day in DATES:
        score_date(ch, REGISTRY, day, config)
    months = {(m, r["org_code"]): r for m in MONTHS for r in acceptance(ch, REGISTRY, m, config)}
    scores = {
        (d, org): (composite, rank)
        for d, org, composite, rank in ch.query(
            "SELECT business_date, org_code, composite, rank FROM dq.current_score_org_day"
        ).result_rows
    }
    return scores, months


def fingerprint_dq(ch) -> dict[str, tuple]:
    """Row count and content hash of every dq table."""
    tables = [
        name
        for (name,) in ch.query(
            "SELECT name FROM system.tables WHERE database = 'dq' AND engine NOT LIKE '%View'"
            " ORDER BY name"
        ).result_rows
    ]
    assert "rule_result" in tables and "score_org_day" in tables
    return {
        t: tuple(ch.query(f"SELECT count(), groupBitXor(cityHash64(*)) FROM dq.`{t}`").first_row)
        for t in tables
    }


def half_up(value: Fraction) -> Decimal:
    return (Decimal(value.numerator) / Decimal(value.denominator)).quantize(
        Decimal("0.01"), rounding=ROUND_HALF_UP
    )


def period_ranks(scores: dict) -> dict[str, tuple[float, int]]:
    """Independently: the mean of the stored composites' decimal forms over the period and its
    competition rank among the three (one peer group)."""
    means = {
        org: sum(
            (Fraction(Decimal(repr(scores[(d, org)][0]))) for d in DATES if d >= FIRST),
            Fraction(0),
        )
        / 3
        for org in (A, B, C)
    }
    rounded = {org: half_up(m) for org, m in means.items()}
    return {
        org: (float(m), 1 + sum(r > rounded[org] for r in rounded.values()))
        for org, m in means.items()
    }


def check_side(answer: dict, side: str, scores: dict, months: dict) -> None:
    """Every day's composite and rank, the period's composite and rank and each month's
    acceptance of one side of the answer equal the real scoring's."""
    by_org = {o["org_code"]: o for o in answer["organisations"]}
    assert set(by_org) == {A, B, C}
    for org, (mean, rank) in period_ranks(scores).items():
        o = by_org[org]
        assert (o["composite"][side], o["rank"][side]) == (mean, rank), (org, side)
        assert [(d["composite_" + side], d["rank_" + side]) for d in o["days"]] == [
            scores[(d, org)] for d in DATES if d >= FIRST
        ]
        for a in o["acceptance"]:
            real = months[(dt.date.fromisoformat(a["month"] + "-01"), org)]
            assert (
                a[side]["passed"],
                a[side]["days_judged"],
                a[side]["days_at_bar"],
                a[side]["blocking_failures"],
            ) == (bool(real["passed"]), real["days_judged"], real["days_at_bar"],
                  real["blocking_failures"]), (org, a["month"], side)  # fmt: skip


BASE = load_scoring_config()
CASES = {
    # change file -> (the rules and scoring config a real re-scoring uses, who moves)
    "types: {icd10_valid: {weight: 4}}": (Rules(icd10_weight=4), BASE, {A, B}),
    "types: {record_not_late: {threshold: 2}}": (Rules(late_threshold=2), BASE, {B}),
    "dimension_weights: {timeliness: 60}": (
        Rules(),
        BASE.model_copy(
            update={
                "dimension_weights": BASE.dimension_weights.model_copy(update={"timeliness": 60})
            }
        ),
        {A, C},
    ),
    "acceptance: {bar: 85}": (
        Rules(),
        BASE.model_copy(update={"acceptance": BASE.acceptance.model_copy(update={"bar": 85})}),
        {A},
    ),
    "overrides: [{rule: '*.max', peer_group: tertiary, severity: blocking, notes: test}]": (
        Rules(max_severity="blocking"),
        BASE,
        {C},
    ),
}


@pytest.mark.parametrize(
    "change", list(CASES), ids=["weight", "threshold", "dimension", "bar", "severity"]
)
def test_whatif_matches_a_real_rescoring_and_writes_nothing(rt, tmp_path, change):
    ch = rt.ch
    rules, config, movers = CASES[change]
    path = tmp_path / "change.yaml"
    path.write_text(change + "\n", encoding="utf-8")
    load(ch)
    before_scores, before_months = score_all(ch, BASE)
    untouched = fingerprint_dq(ch)

    answer = what_if(ch, REGISTRY, path, FIRST, LAST)

    assert fingerprint_dq(ch) == untouched
    assert answer["dates_scored"] == [d.isoformat() for d in DATES[1:]]
    assert answer["months"] == ["2026-03", "2026-04"]
    assert answer["results"] == 3 * 8 * 4 + 2
    check_side(answer, "before", before_scores, before_months)
    assert {o["org_code"] for o in answer["organisations"] if o["moves"]} == movers
    assert [o["moves"] for o in answer["organisations"]] == sorted(
        (o["moves"] for o in answer["organisations"]), reverse=True
    )  # who moves comes first

    reset_warehouse(ch)  # the same results made with the changed rules, scored for real
    load(ch, rules)
    after_scores, after_months = score_all(ch, config)
    check_side(answer, "after", after_scores, after_months)
    assert after_scores != before_scores or after_months != before_months


def test_an_approved_appeal_counts_as_waived_on_both_sides(rt, tmp_path):
    ch = rt.ch
    load(ch)
    at = dt.datetime(2026, 4, 2, 10, tzinfo=_TZ)
    ch.insert(
        "dq.appeal_event",
        [
            [
                "ap-1",
                event,
                C,
                DATES[2],
                RX,
                "prescription.batch_received",
                0,
                "run-0331",
                actor,
                "系统故障",
                at + dt.timedelta(minutes=i),
            ]
            for i, (event, actor) in enumerate((("submitted", C), ("approved", "qc")))
        ],
        column_names=list(APPEAL_COLUMNS),
    )
    path = tmp_path / "change.yaml"
    path.write_text("acceptance: {bar: 85}\n", encoding="utf-8")
    answer = what_if(ch, REGISTRY, path, FIRST, LAST)
    days = scored_days(ch, REGISTRY, DATES, BASE, load_exemptions(ch))
    c = next(o for o in answer["organisations"] if o["org_code"] == C)
    march = c["acceptance"][0]
    assert c["days"][1]["composite_before"] == float(days[DATES[2]].orgs[C].composite)
    # the waived batch_received no longer makes the prescription batch missing (75): only its
    # failed batch_on_time counts (timeliness 50, composite 90), and March has no blocking
    # failure left
    assert c["days"][1]["composite_before"] == 90.0
    assert march["before"]["blocking_failures"] == march["after"]["blocking_failures"] == 0
    assert march["before"]["passed"] and march["after"]["passed"]
    before_appeal = what_if(ch, REGISTRY, path, FIRST, LAST, as_of=at)
    c = next(o for o in before_appeal["organisations"] if o["org_code"] == C)
    assert c["days"][1]["composite_before"] == 75.0
    assert c["acceptance"][0]["before"]["blocking_failures"] == 1


# ---- the change file -----------------------------------------------------------------------

BAD_CHANGES = {
    "weights: {icd10_valid: 4}": "weights: Extra inputs are not permitted",
    "types: {icd10_invalid: {weight: 4}}": "types.icd10_invalid: not a rule type of",
    "types: {icd10_valid: {dimension: logic}}": (
        "types.icd10_valid: a what-if changes only weight, threshold, severity, not dimension"
    ),
    "types: {icd10_valid: {weight: -1}}": (
        "types.icd10_valid.weight: Input should be greater than or equal to 0"
    ),
    "types: {record_not_late: {threshold: 101}}": (
        "types.record_not_late.threshold: Input should be less than or equal to 100"
    ),
    "types: {icd10_valid: {severity: fatal}}": "types.icd10_valid.severity: Input should be",
    "overrides: [{rule: '*.max', weight: 2}]": "overrides.0.notes: Field required",
    "overrides: [{rule: 'nothing.*', weight: 2, notes: x}]": (
        "overrides.0: 'nothing.*' matches no rule"
    ),
    "overrides: [{rule: '*.max', org_code: NOPE, weight: 2, notes: x}]": (
        "overrides.0: organisation 'NOPE' is not in the registry"
    ),
    "overrides: [{rule: '*.max', peer_group: tertary, weight: 2, notes: x}]": (
        "overrides.0: peer group 'tertary' is not one of tertiary, secondary, primary, county"
    ),
    "dimension_weights: {completness: 40}": (
        "dimension_weights.completness: Extra inputs are not permitted"
    ),
    "acceptance: {bar: 120}": "acceptance.bar: Input should be less than or equal to 100",
    "ranking: {decimals: 2}": "changes nothing",
    "types: [icd10_valid]": "types: Input should be a valid dictionary",
    "": "changes nothing",
    "[1, 2]": "<top>: Input should be a valid dictionary",
    "types: {icd10_valid: {weight: 4}": (
        "not valid YAML at line 2, column 1: did not find expected ',' or '}'"
    ),
    # hostile: an infinite or NaN weight would make every score infinite, NaN or a traceback
    "types: {icd10_valid: {weight: .inf}}": "types.icd10_valid.weight: Input should be a finite",
    "types: {icd10_valid: {weight: .nan}}": "types.icd10_valid.weight: Input should be a finite",
    "overrides: [{rule: '*.max', weight: .inf, notes: x}]": (
        "overrides.0.weight: Input should be a finite number"
    ),
    "dimension_weights: {completeness: .inf}": (
        "dimension_weights.completeness: Input should be a finite number"
    ),
    "dimension_weights: {completeness: 0, timeliness: 0, correctness: 0, logic: 0}": (
        "dimension_weights: Value error, at least one dimension weight must be greater than 0"
    ),
    "weights: {required: 2}\ntypo: 1": "weights: Extra inputs are not permitted; typo: Extra",
    # a YAML bomb (aliases nesting 10^8 leaves) is refused at the first level, never expanded
    "ranking:\n  decimals:\n    - &a [x, x, x, x, x, x, x, x, x, x]\n"
    + "".join(
        f"    - &{chr(98 + i)} [{', '.join([f'*{chr(97 + i)}'] * 10)}]\n" for i in range(7)
    ): "ranking.decimals: Input should be a valid integer",
}


@pytest.mark.parametrize("text", list(BAD_CHANGES))
def test_a_bad_change_file_is_one_line_naming_file_and_entry(tmp_path, text):
    path = tmp_path / "change.yaml"
    path.write_text(text + "\n", encoding="utf-8")
    with pytest.raises(ContractError) as err:
        load_changes(path, rulebase(), BASE, REGISTRY)
    message = str(err.value)
    assert message.startswith(f"{path}: ") and BAD_CHANGES[text] in message, message


def test_the_example_change_file_is_valid_and_an_override_of_rule_overrides_still_wins():
    from contracts.loader import CONTRACTS_DIR
    from expectations.scoring.whatif import changed_attributes

    changes = load_changes(CONTRACTS_DIR / "examples" / "whatif.yaml", rulebase(), BASE, SAMPLE)
    assert changes.config.acceptance.bar == 92 and changes.config.ranking == BASE.ranking
    overrides = rulebase().overrides  # *.record_not_late: threshold 3 for primary
    late = ("outpatient_visit.visit_at.record_not_late", "record_not_late")
    assert changed_attributes(changes, overrides, *late, A, "tertiary") == {"threshold": 2}
    assert changed_attributes(changes, overrides, *late, "X", "primary") == {}
    resident = ("patient.id_no.resident_id", "resident_id")
    assert changed_attributes(changes, overrides, *resident, "X", "primary") == {
        "severity": "warning"
    }
    assert changed_attributes(changes, overrides, *resident, A, "tertiary") == {}


# ---- the command ---------------------------------------------------------------------------


def test_the_command_in_both_formats_and_html_writes_nothing(rt, tmp_path):
    from infra.cli import app

    ch = rt.ch
    load(ch)
    path = tmp_path / "change.yaml"
    path.write_text("types: {icd10_valid: {weight: 4}}\n", encoding="utf-8")
    untouched = fingerprint_dq(ch)
    period = ["whatif", "--changes", str(path), "--from", str(FIRST), "--to", str(LAST)]
    runner = CliRunner()
    page = tmp_path / "out" / "whatif.html"
    as_json = runner.invoke(app, [*period, "--format", "json", "--html", str(page)])
    assert as_json.exit_code == 0, as_json.output
    answer = json.loads(as_json.stdout)
    assert answer == what_if(ch, SAMPLE, path, FIRST, LAST)
    assert f"html: {page}" in as_json.stderr
    # every organisation of the registry is judged for acceptance; the three have scores
    assert [o["org_code"] for o in answer["organisations"] if o["moves"]] == [B, A]
    text = page.read_text(encoding="utf-8")
    assert text.startswith("<!DOCTYPE html>") and A in text and "icd10_valid" in text
    assert "<script" not in text

    table = runner.invoke(app, period)
    assert table.exit_code == 0, table.output
    lines = table.stdout.splitlines()
    assert "rule type icd10_valid: weight 4" in table.stdout
    moved = [x for x in lines if x.startswith("*")]
    assert [x.split()[1] for x in moved] == [B, A]
    assert "79.29 ->  84.29" in moved[0] and "3 -> 2/3" in moved[0]
    assert "85.00 ->  80.00" in moved[1] and "2 -> 3/3" in moved[1]
    assert fingerprint_dq(ch) == untouched


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--from", "2026-04-01", "--to", "2026-03-30"], "--from 2026-04-01 is after --to"),
        (["--from", "2025-01-01", "--to", "2025-01-31"], "has a complete validation run"),
        (["--changes-text", "types: {icd10_valid: {weight: -1}}"], "types.icd10_valid.weight"),
        (["--changes-text", "acceptance: {bar: 85"], "not valid YAML at line 2"),
        (["--no-changes-file"], "absent.yaml: cannot read: No such file or directory"),
    ],
)
def test_operator_mistakes_are_one_line_and_exit_2(rt, tmp_path, capsys, args, expected):
    from infra.cli import main

    load(rt.ch)
    path = tmp_path / "change.yaml"
    text = "acceptance: {bar: 85}"
    if args[0] == "--changes-text":
        text, args = args[1], ["--from", str(FIRST), "--to", str(LAST)]
    path.write_text(text + "\n", encoding="utf-8")
    if args == ["--no-changes-file"]:
        path, args = tmp_path / "absent.yaml", ["--from", str(FIRST), "--to", str(LAST)]
    with pytest.raises(SystemExit) as done:
        main(["whatif", "--changes", str(path), *args])
    err = capsys.readouterr().err
    assert done.value.code == 2, err
    assert expected in err and 1 <= len(err.strip().splitlines()) <= 2, err
    assert "Traceback" not in err
