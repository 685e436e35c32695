"""The daily DAG end to end through Airflow (`dag.test()` in this process) on a tiny sample city.

One module-scoped scenario, three DAG runs (about 30 s each on 2 cores):

1. business date D, with one hospital's lab results replaced by a corrupt file;
2. D again: nothing new is loaded, results are the same, no e-mail is sent twice;
3. D+1, after one organisation corrected a file of D and another sent nothing for D+1: the
   late-arrivals pass re-processes D, only the corrected organisation hears about D again,
   and the silent one gets a reminder for D+1.

Every stage's output is checked: raw rows, validation results, scores, marts, reports and the
e-mails the real SMTP sink wrote to the outbox.
"""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import io
import shutil
from collections import Counter, defaultdict
from decimal import Decimal
from email import policy
from email.parser import BytesParser
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

D = dt.date(2026, 11, 9)
D1 = D + dt.timedelta(days=1)


def _messages(paths):
    out = []
    for path in sorted(paths):
        out.append(BytesParser(policy=policy.default).parsebytes(path.read_bytes()))
    return out


def _state(ch, day):
    """What a re-run must leave unchanged."""
    from expectations.scoring.read import read_scores

    def on_day(table: str, value: str = "count()") -> int:
        sql = f"SELECT {value} FROM {table} WHERE business_date = {{d:Date}}"
        return ch.query(sql, parameters={"d": day}).result_rows[0][0]

    return {
        "raw_rows": on_day("dq.batch FINAL", "sum(rows_loaded)"),
        "raw_table_rows": on_day("raw.outpatient_visit"),
        "batches": on_day("dq.batch FINAL"),
        "encounters": on_day("ehr.fct_encounter"),
        "scores": sorted((r["org_code"], r["composite"], r["rank"]) for r in read_scores(ch, day)),
        "failed_rules": ch.query(
            "SELECT count() FROM dq.rule_result WHERE business_date = {d:Date} AND status ="
            " 'failed' AND run_id = (SELECT run_id FROM dq.current_run WHERE business_date ="
            " {d:Date})",
            parameters={"d": day},
        ).result_rows[0][0],
    }


@pytest.fixture(scope="module")
def scenario(tmp_path_factory, config, seaweed):
    from contracts.registry import load_registry
    from infra import airflow_run
    from infra.runtime import Runtime, warehouse
    from infra.settings import settings
    from samplecity import generate

    inbox = tmp_path_factory.mktemp("daily") / "inbox"
    generate(inbox, D, 2, hospitals=4, counties=2, scale=0.003, seed=11)
    registry_path = inbox / "_registry.csv"
    registry = load_registry(registry_path)
    hospitals = sorted(o.org_code for o in registry.organisations.values() if o.kind == "hospital")
    counties = sorted(o.org_code for o in registry.organisations.values() if o.kind == "county")
    corrupt_org, silent_org = hospitals[0], counties[0]
    corrected_org = next(h for h in hospitals[1:] if list((inbox / h).glob(f"*/{D}/*.csv")))
    lab = inbox / corrupt_org / "lab_result" / D.isoformat()
    for part in lab.glob("part-*"):
        part.unlink()
    (lab / "part-00001.csv.gz").write_bytes(b"this is not gzip data \x00\x01\x02")

    from tests.conftest import reset_warehouse

    ch = warehouse(config)
    reset_warehouse(ch)
    rt = Runtime(config, seaweed.client(), ch)
    outbox = config.outbox
    outbox.mkdir(parents=True, exist_ok=True)
    seen: set[Path] = set(outbox.glob("*.eml"))

    def new_mail():
        now = set(outbox.glob("*.eml"))
        fresh = now - seen
        seen.update(fresh)
        return _messages(fresh)

    runs, mails, states = {}, {}, {}
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HQLAKE_ORG_REGISTRY", str(registry_path))
        mp.setenv("HQLAKE_PORTAL_URL", "http://127.0.0.1:8080")
        settings.cache_clear()
        try:
            runs["first"] = airflow_run.run([D], str(inbox), rt=rt)[0]
            mails["first"], states["first"] = new_mail(), _state(ch, D)
            runs["again"] = airflow_run.run([D], str(inbox), rt=rt)[0]
            mails["again"], states["again"] = new_mail(), _state(ch, D)

            upload = sorted((inbox / corrected_org).glob(f"*/{D}/*.csv"))[0]
            data = upload.read_bytes().rstrip(b"\r\n")
            upload.write_bytes(data[: data.rfind(b"\n") + 1])  # a corrected re-upload of D
            for dataset_dir in (inbox / silent_org).iterdir():  # sends nothing for D+1
                shutil.rmtree(dataset_dir / D1.isoformat(), ignore_errors=True)
            runs["next"] = airflow_run.run([D1], str(inbox), rt=rt)[0]
            mails["next"] = new_mail()
        finally:
            settings.cache_clear()
    return {
        "runs": runs,
        "mails": mails,
        "states": states,
        "registry": registry,
        "ch": ch,
        "corrupt": corrupt_org,
        "corrected": corrected_org,
        "silent": silent_org,
        "home": config.home,
    }


def test_every_task_succeeds(scenario):
    for name, run in scenario["runs"].items():
        assert run["state"] == "success", (name, run["not_successful"])
        assert run["not_successful"] == []
        assert {"ingest", "validate", "score", "build", "report", "feedback"} <= set(run["tasks"])


def test_first_run_outputs_of_every_stage(scenario):
    ch, registry, state = scenario["ch"], scenario["registry"], scenario["states"]["first"]
    run = scenario["runs"]["first"]
    active = {o.org_code for o in registry.active(D)}
    # ingest: the organisations that sent files, in one mapped task on chDB; rows in raw
    assert run["tasks"]["ingest"]["instances"] == 1
    ingested = {code for o in run["outputs"]["ingest"] for code in o["org_codes"]}
    assert active <= ingested
    assert state["raw_rows"] > 0 and state["raw_table_rows"] > 0
    # validation: a complete run with failed rules (the sample city has defects)
    assert run["outputs"]["validate"][0]["rule_results"] > 0
    assert state["failed_rules"] > 0
    # scores: every active organisation scored
    assert {org for org, _, _ in state["scores"]} == active
    # marts
    assert state["encounters"] > 0
    orgs_in_mart = ch.query("SELECT count() FROM ehr.dim_organization").result_rows[0][0]
    assert orgs_in_mart == len(registry.organisations)
    # reports
    city = Path(run["outputs"]["report"][0]["city"])
    assert city.is_file() and (city.parent / "org" / f"{scenario['corrupt']}.html").is_file()


def test_one_feedback_mail_per_organisation(scenario):
    registry = scenario["registry"]
    mails = scenario["mails"]["first"]
    by_org = {m["X-Hqlake-Org"]: m for m in mails}
    assert len(mails) == len(by_org) == len(registry.active(D))
    for code, msg in by_org.items():
        org = registry.get(code)
        assert msg["To"] == ", ".join(org.emails)
        assert msg["Subject"].startswith(f"[hqlake] {org.name} {D} 数据质量 ")
        assert "同级第" in msg["Subject"]
        assert msg["X-Hqlake-Kind"] == "feedback"
        html = msg.get_body(("html",)).get_content()
        assert "完整性 Completeness" in html  # scores
        # the link is the organisation-day's portal page, never a file
        assert f'href="http://127.0.0.1:8080/org/{code}/{D}"' in html and "file:" not in html
    # the corrupt upload is named in its organisation's e-mail, with the failing keys attached
    corrupt = by_org[scenario["corrupt"]]
    text = corrupt.get_body(("plain",)).get_content()
    assert "part-00001.csv.gz" in text and "lab_result" in text
    with_keys = [m for m in mails if list(m.iter_attachments())]
    assert with_keys, "no e-mail has a CSV of failing record keys"
    csv_text = next(with_keys[0].iter_attachments()).get_payload(decode=True).decode("utf-8-sig")
    header = next(csv.reader(io.StringIO(csv_text)))
    assert header == ["dataset", "rule_id", "dimension", "severity", "record_key", "detail"]


def test_rerun_changes_nothing_and_sends_nothing(scenario):
    assert scenario["states"]["again"] == scenario["states"]["first"]
    assert scenario["mails"]["again"] == []
    outcomes = [
        o
        for task in scenario["runs"]["again"]["outputs"]["feedback"]
        for s in task
        for o in s["outcomes"]
    ]
    assert outcomes and {o["status"] for o in outcomes} == {"unchanged"}
    ingested = scenario["runs"]["again"]["outputs"]["ingest"]
    assert all(o["new_versions"] == [] for o in ingested)


def test_late_correction_and_reminder(scenario):
    run = scenario["runs"]["next"]
    assert run["outputs"]["late_arrivals"] == [[D.isoformat(), D1.isoformat()]]
    mails = scenario["mails"]["next"]
    about_d = [m for m in mails if m["X-Hqlake-Business-Date"] == D.isoformat()]
    assert [m["X-Hqlake-Org"] for m in about_d] == [scenario["corrected"]]
    about_d1 = {
        m["X-Hqlake-Org"]: m for m in mails if m["X-Hqlake-Business-Date"] == D1.isoformat()
    }
    assert set(about_d1) == {o.org_code for o in scenario["registry"].active(D1)}
    reminder = about_d1[scenario["silent"]]
    assert reminder["X-Hqlake-Kind"] == "reminder"
    assert "未收到上传数据" in reminder["Subject"]
    assert all(
        m["X-Hqlake-Kind"] == "feedback" for c, m in about_d1.items() if c != scenario["silent"]
    )


def _explanations_are_exact(ch, registry, day) -> Counter:
    """Every organisation-day and batch of `day`'s current scoring: its stored points sum
    exactly to its stored lost total, which is 100 - its exact composite rounded half up to 12
    decimals (the scoring's Fractions, from the current run's results), within 10^-12 of
    100 - the stored Float64 composite; nothing not scored is explained. Returns what the
    explanations held (causes, statuses, lines)."""
    from expectations.scoring.arithmetic import composite
    from expectations.scoring.config import load_scoring_config
    from expectations.scoring.explain import round_half_up
    from expectations.scoring.inputs import scored_days

    config = load_scoring_config()
    exact = scored_days(ch, registry, [day], config)[day]
    params = {"d": day}
    groups = defaultdict(list)
    seen = Counter()
    for level, org, ds, points, lost, cause, status in ch.query(
        "SELECT level, org_code, dataset, points, lost_total, cause, status"
        " FROM dq.current_score_explanation WHERE business_date = {d:Date}",
        parameters=params,
    ).result_rows:
        groups[(level, org, ds if level == "batch" else "")].append((points, lost))
        seen.update([cause, status, "lines"])
    floats = dict(
        ch.query(
            "SELECT org_code, composite FROM dq.current_score_org_day WHERE business_date ="
            " {d:Date}",
            parameters=params,
        ).result_rows
    )
    floats |= {
        (org, ds): c
        for org, ds, c in ch.query(
            "SELECT org_code, dataset, composite FROM dq.current_score_batch"
            " WHERE business_date = {d:Date}",
            parameters=params,
        ).result_rows
    }
    for code, o in exact.orgs.items():
        expected = [(("org_day", code, ""), o.composite, floats[code])]
        expected += [
            (("batch", code, ds), composite(b.dimensions(), config), floats[(code, ds)])
            for ds, b in o.batches.items()
        ]
        seen["missing_batches"] += sum(b.is_missing for b in o.batches.values())
        for key, value, stored in expected:
            lines = groups.pop(key, [])
            seen["explained"] += 1
            if value is None:
                assert not lines and stored is None, key
                continue
            lost = 100 - round_half_up(value)
            assert abs(Decimal(repr(stored)) - round_half_up(value)) <= Decimal("1e-12"), key
            assert sum((p for p, _ in lines), Decimal(0)) == lost, key
            assert all(total == lost for _, total in lines), key
    assert not groups, f"explanations of nothing scored: {sorted(groups)[:3]}"
    return seen


def test_explanations_sum_exactly_on_the_sample_city(scenario):
    """The city's two dates as the DAG scored them (missing batches of the silent county on
    D+1, the unreadable lab file on D), then D+1 validated again with a weight override of a
    failing rule for one organisation, and a copy of that run in which one failing result of
    another organisation is an error (the platform could not evaluate it: a GX disagreement
    in production; no injectable cause in the city) scored again."""
    import time

    from expectations.rules.rulebase import Override, rulebase
    from expectations.scoring.read import read_explanation
    from expectations.scoring.store import score_date
    from expectations.validate import validate_date
    from tests.conftest import record_run

    ch, registry = scenario["ch"], scenario["registry"]
    seen = {day: _explanations_are_exact(ch, registry, day) for day in (D, D1)}
    print(f"\nexplanations: { ({str(day): dict(c) for day, c in seen.items()}) }")
    assert seen[D1]["missing_batches"] > 0 and seen[D1]["batch_not_received"] > 0
    assert seen[D]["failed"] > 0 and seen[D1]["failed"] > 0
    # the dq mart holds the current explanations, as the DAG's last build left them
    in_mart = ch.query("SELECT count() FROM dq_marts.dq_score_explanation").result_rows[0][0]
    stored = ch.query("SELECT count() FROM dq.current_score_explanation").result_rows[0][0]
    assert in_mart == stored == seen[D]["lines"] + seen[D1]["lines"]

    current = "(business_date, run_id) IN (SELECT business_date, run_id FROM dq.current_run)"
    failing = ch.query(
        "SELECT org_code, dataset, rule_id, weight FROM dq.rule_result"
        " WHERE business_date = {d:Date} AND status = 'failed' AND rule_type != 'batch_received'"
        f" AND weight > 0 AND {current} AND (org_code, dataset) NOT IN ("
        "   SELECT org_code, dataset FROM dq.current_score_batch"
        "   WHERE business_date = {d:Date} AND is_missing)"
        " ORDER BY org_code, rule_id",
        parameters={"d": D1},
    ).result_rows
    org, dataset, rule_id, weight = failing[0]
    base = rulebase()
    tuned = dataclasses.replace(
        base,
        overrides=(
            *base.overrides,
            Override(rule=rule_id, org_code=org, weight=weight * 4, notes="explain test"),
        ),
    )
    validate_date(ch, registry, D1, rb=tuned)
    other, other_rule = next((o, r) for o, _, r, _ in failing if o != org)
    run = "explain-error"
    copied = ch.query(
        f"SELECT * FROM dq.rule_result WHERE business_date = {{d:Date}} AND {current}",
        parameters={"d": D1},
    )
    columns = list(copied.column_names)
    rows = []
    for values in copied.result_rows:
        row = dict(zip(columns, values, strict=True)) | {"run_id": run}
        if (row["org_code"], row["rule_id"]) == (other, other_rule):
            row["status"] = "error"
        rows.append([row[c] for c in columns])
    ch.insert("dq.rule_result", rows, column_names=columns)
    record_run(ch, run, D1, dt.datetime.now(dt.UTC) + dt.timedelta(minutes=1))
    started = time.perf_counter()
    scores = score_date(ch, registry, D1)
    print(f"\nscored {D1} with its explanation in {time.perf_counter() - started:.2f} s")
    assert sum(r["rules_error"] for r in scores) >= 1
    again = _explanations_are_exact(ch, registry, D1)
    assert again["missing_batches"] == seen[D1]["missing_batches"]
    lines = {r["rule_id"]: r for r in read_explanation(ch, org, D1) if r["dataset"] == dataset}
    assert lines[rule_id]["run_id"] == run and lines[rule_id]["points"] > 0
    stored_weight = ch.query(
        "SELECT weight FROM dq.rule_result WHERE run_id = {run:String} AND org_code = {org:String}"
        " AND rule_id = {rule:String}",
        parameters={"run": run, "org": org, "rule": rule_id},
    ).result_rows
    assert {w for (w,) in stored_weight} == {weight * 4}  # the override's, as results carry it
    assert other_rule not in {r["rule_id"] for r in read_explanation(ch, other, D1)}


def test_the_demos_quality_loop_moves_a_rank_and_signs_the_month(scenario, tmp_path, capsys):
    """`make demo`'s last part on the city the DAG scored: an approved appeal raises the
    organisation's composite (and its rank where one result can: the exact rank moves of an
    appeal are tests/expectations/programme/test_appeals.py's), the month is signed and its
    sheet reads back."""
    import openpyxl

    from expectations.scoring.read import read_explanation, read_scores
    from infra import demo_loop
    from infra.settings import settings

    ch = scenario["ch"]
    before = {day: {s["org_code"]: s for s in read_scores(ch, day)} for day in (D, D1)}
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("HQLAKE_ORG_REGISTRY", str(scenario["registry"].source))
        settings.cache_clear()
        try:
            # a city of 4 hospitals in 3 peer groups: its 2 counties may be the only rivals
            groups = ("tertiary", "secondary", "primary", "county")
            made = demo_loop.run([D, D1], D.replace(day=1), tmp_path, groups)
        finally:
            settings.cache_clear()
    printed = capsys.readouterr().out
    explained = {
        (str(day), s["org_code"], s["peer_group"], s["rank"], s["composite"]): [
            (e["rule_id"], e["status"], e["cause"], str(e["points"]))
            for e in read_explanation(ch, s["org_code"], day)
        ]
        for day in (D, D1)
        for s in read_scores(ch, day)
    }
    assert made, (printed, explained)
    code, day = made["appeal"]["org_code"], made["day"]
    before = before[day]
    after = {s["org_code"]: s for s in read_scores(ch, day)}
    assert after[code]["rank"] <= before[code]["rank"]
    assert after[code]["composite"] > before[code]["composite"]
    assert after[code]["rules_waived"] == before[code]["rules_waived"] + 1
    assert made["decided"]["event"] == "approved" and made["signed"].version == 1
    sheet = openpyxl.load_workbook(made["sheet"], read_only=True)
    rows = list(sheet.worksheets[0].iter_rows(values_only=True))
    assert len(rows) == 1 + len(made["signed"].rows) + 1  # headers, organisations, totals
    assert f"is now {after[code]['rank']} of" in printed and str(made["sheet"]) in printed
