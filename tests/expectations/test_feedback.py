"""Feedback e-mails composed from hand-made scores and failures (no warehouse needed)."""

from __future__ import annotations

import csv
import datetime as dt
import io
from email import policy
from email.parser import BytesParser

from contracts.registry import Organisation
from expectations.feedback import Feedback, compose, compose_reminder

DAY = dt.date(2026, 11, 9)
ORG = Organisation(
    org_code="12411502000501374K",
    name="信阳市中心医院",
    kind="hospital",
    level="tertiary",
    county_code="411502",
    emails=("qc-01374k@hosp.xy.example.cn", "it-01374k@hosp.xy.example.cn"),
    active_from=dt.date(2020, 1, 1),
    active_to=None,
)
SCORE = {
    "org_code": ORG.org_code,
    "completeness": 95.0,
    "timeliness": 100.0,
    "correctness": 88.25,
    "logic": 90.0,
    "composite": 92.4,
    "rank": 3,
    "peer_size": 12,
    "rank_change_day": 2,
    "rank_change_month": -1,
}
IDENTITY = "110101199003074519"  # a valid resident identity number (check digit 9)


def _failure(rule_id, dataset, failed, change, severity="warning", keys=()):
    return {
        "dataset": dataset,
        "rule_id": rule_id,
        "dimension": "correctness",
        "severity": severity,
        "failed": failed,
        "checked": 1000,
        "failed_pct": failed / 10,
        "change": change,
        "sample_keys": list(keys),
        "description_zh": "身份证号校验位正确",
        "description_en": "Identity number check digit is valid",
        "fix_hint_zh": "请核对身份证号",
        "fix_hint_en": "Check the identity numbers",
    }


def _feedback(**changes) -> Feedback:
    fb = Feedback(
        DAY,
        ORG,
        uploaded=True,
        score=dict(SCORE),
        failures=[
            _failure("patient.id_no.valid", "patient", 12, "new", "blocking", ["P0001"]),
            _failure("outpatient_visit.dept.code", "outpatient_visit", 3, "persisting"),
        ],
        resolved=[{"dataset": "lab_result", "rule_id": "lab_result.unit.present"}],
        issues=[
            {
                "dataset": "patient",
                "rule_id": "patient.id_no.valid",
                "dimension": "correctness",
                "severity": "blocking",
                "record_key": "P0001",
            },
            {
                "dataset": "health_record",
                "rule_id": "health_record.x",
                "dimension": "logic",
                "severity": "warning",
                "record_key": IDENTITY,
            },
        ],
        issues_total=2,
        refused_files=[
            {"dataset": "prescription", "file": "p.csv", "reason": f"corrupt; {IDENTITY}"}
        ],
        report_link="https://qc.example.cn/reports/2026-11-09/org/12411502000501374K.html",
    )
    for key, value in changes.items():
        setattr(fb, key, value)
    return fb


def _parsed(msg):
    return BytesParser(policy=policy.default).parsebytes(msg.as_bytes())


def test_feedback_subject_headers_and_bodies():
    msg = _parsed(compose(_feedback(), "质控中心 <qc@wjw.example.cn>", "wjw.example.cn"))
    assert msg["Subject"] == (
        "[hqlake] 信阳市中心医院 2026-11-09 数据质量 92.4 分 · 同级第 3/12 名"
    )
    assert msg["To"] == "qc-01374k@hosp.xy.example.cn, it-01374k@hosp.xy.example.cn"
    assert msg["Message-ID"].strip().startswith("<20261109.12411502000501374K.")
    assert msg["Message-ID"].strip().endswith("@wjw.example.cn>")
    assert msg["X-Hqlake-Kind"] == "feedback"
    html = msg.get_body(("html",)).get_content()
    text = msg.get_body(("plain",)).get_content()
    for body in (html, text):
        assert "88.2" in body and "92.4" in body  # dimension and composite scores
        assert "↑2" in body and "↓1" in body  # rank change day, month
        assert "patient.id_no.valid" in body and "请核对身份证号" in body
        assert "lab_result.unit.present" in body  # resolved
        assert "p.csv" in body
        assert IDENTITY not in body  # masked in the refusal reason
        assert "qc.example.cn/reports/2026-11-09/org/12411502000501374K.html" in body
    assert "新增 new <b>1</b>" in html and "持续 persisting <b>1</b>" in html
    assert "已解决 resolved <b>1</b>" in html


def test_attachment_lists_failing_keys_masked():
    msg = _parsed(compose(_feedback(), "qc@wjw.example.cn"))
    (attachment,) = list(msg.iter_attachments())
    assert attachment.get_filename() == "failing-keys-12411502000501374K-2026-11-09.csv"
    text = attachment.get_payload(decode=True).decode("utf-8")
    assert text.startswith("\ufeff")  # Excel opens UTF-8 with a BOM
    rows = list(csv.DictReader(io.StringIO(text.lstrip("\ufeff"))))
    assert [r["record_key"] for r in rows] == ["P0001", "110*************19"]
    assert rows[0]["rule_id"] == "patient.id_no.valid" and rows[0]["severity"] == "blocking"


def test_no_attachment_without_failing_keys_and_unranked():
    fb = _feedback(issues=[], issues_total=0, failures=[], resolved=[], refused_files=[])
    fb.score = dict(SCORE, rank=None, composite=None)
    msg = _parsed(compose(fb, "qc@wjw.example.cn"))
    assert not list(msg.iter_attachments())
    assert msg["Subject"].endswith("数据质量 — 分 · 未排名")
    assert "All rules passed" in msg.get_body(("plain",)).get_content()


def test_reminder_for_an_organisation_without_upload():
    fb = Feedback(DAY, ORG, uploaded=False, expected_datasets=["outpatient_visit", "patient"])
    msg = _parsed(compose(fb, "qc@wjw.example.cn"))
    assert msg["Subject"] == "[hqlake] 信阳市中心医院 2026-11-09 未收到上传数据 · 请尽快补传"
    assert msg["X-Hqlake-Kind"] == "reminder"
    body = msg.get_body(("plain",)).get_content()
    assert "outpatient_visit" in body and "12411502000501374K/outpatient_visit/2026-11-09" in body
    assert compose_reminder(fb, "qc@wjw.example.cn")["Message-ID"] == msg["Message-ID"]


def test_content_hash_covers_results_not_run_or_clock():
    base = _feedback().content_hash()
    assert _feedback().content_hash() == base
    rerun = _feedback(score=dict(SCORE, run_id="another-run", computed_at="later"))
    assert rerun.content_hash() == base
    assert _feedback(score=dict(SCORE, composite=91.0)).content_hash() != base
    changed = _feedback()
    changed.failures[0]["failed"] = 13
    assert changed.content_hash() != base
    assert _feedback(refused_files=[]).content_hash() != base
    reminder = Feedback(DAY, ORG, uploaded=False, expected_datasets=["patient"])
    assert reminder.content_hash() != base


def test_failing_keys_name_the_field_that_held_the_code():
    failure = _failure(
        "cross.sex_specific_diagnoses", "inpatient_discharge", 1, "new", keys=["ZY0001"]
    )
    failure["sample_details"] = ["other_dx_codes N40"]
    issue = {
        "dataset": "inpatient_discharge",
        "rule_id": "cross.sex_specific_diagnoses",
        "dimension": "logic",
        "severity": "warning",
        "record_key": "ZY0001",
        "detail": "other_dx_codes N40",
    }
    msg = _parsed(compose(_feedback(failures=[failure], issues=[issue], issues_total=1), "qc@x"))
    for kind in ("html", "plain"):
        assert "ZY0001 (other_dx_codes N40)" in msg.get_body((kind,)).get_content()
    (attachment,) = list(msg.iter_attachments())
    text = attachment.get_payload(decode=True).decode("utf-8").lstrip("\ufeff")
    (row,) = list(csv.DictReader(io.StringIO(text)))
    assert row["record_key"] == "ZY0001" and row["detail"] == "other_dx_codes N40"
