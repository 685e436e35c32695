"""Feedback e-mails composed from hand-made scores and failures (no warehouse needed)."""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import io
from email import policy
from email.parser import BytesParser

from contracts.registry import Organisation
from expectations.publish.feedback import Feedback, compose, compose_reminder, portal_link
from infra.mail import SmtpSink, send

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
        portal_link="https://qc.example.cn/org/12411502000501374K/2026-11-09",
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
        assert "https://qc.example.cn/org/12411502000501374K/2026-11-09" in body
        assert "file:" not in body
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


# ---- hostile values -------------------------------------------------------------------------

FORMULA_KEYS = ['=HYPERLINK("http://x")', "+1", "-2+3", "@SUM(A1)", "\t=1"]
SCRIPT = "<script>alert(1)</script>"
# an organisation name as a careless or hostile registry edit may leave it
HOSTILE_NAME = f"O'Brien {SCRIPT} 医院\r\nBcc: x@evil.example"
TEMPLATE_TAGS = ("<b>", "<br>", "<p", "<td", "<tr", "<span", "<code", "<h2", "<h3", "<ul", "<li")


def _hostile_feedback(name: str = HOSTILE_NAME) -> Feedback:
    issue = {"dataset": "outpatient_visit", "rule_id": "outpatient_visit.total_fee.min"}
    failure = _failure("outpatient_visit.total_fee.min", "outpatient_visit", 5, "new")
    return _feedback(
        org=dataclasses.replace(ORG, name=name),
        failures=[failure | {"fix_hint_zh": "Don't upload negative fees", "sample_keys": [SCRIPT]}],
        issues=[
            issue | {"dimension": "correctness", "severity": "warning", "record_key": key}
            for key in [*FORMULA_KEYS, "V0001"]
        ],
        issues_total=len(FORMULA_KEYS) + 1,
        refused_files=[
            {"dataset": "prescription", "file": "p.csv", "reason": '"><img src=x onerror=alert(1)>'}
        ],
    )


def _csv_rows(msg) -> tuple[str, list[dict[str, str]]]:
    (attachment,) = list(msg.iter_attachments())
    text = attachment.get_payload(decode=True).decode("utf-8").lstrip("\ufeff")
    return text, list(csv.DictReader(io.StringIO(text)))


def test_attachment_cells_cannot_start_a_formula():
    text, rows = _csv_rows(_parsed(compose(_hostile_feedback("甲医院"), "qc@wjw.example.cn")))
    assert [r["record_key"] for r in rows] == [*("'" + k for k in FORMULA_KEYS), "V0001"]
    for line in csv.reader(io.StringIO(text)):
        assert not any(cell.startswith(("=", "+", "-", "@", "\t", "\r")) for cell in line)
    assert all(line.startswith('"') and line.endswith('"') for line in text.splitlines())


def test_plain_text_part_is_plain_text():
    msg = _parsed(compose(_hostile_feedback(f"O'Brien {SCRIPT} 医院"), "qc@wjw.example.cn"))
    text = msg.get_body(("plain",)).get_content()
    assert "O'Brien" in text and "Don't upload negative fees" in text
    assert f"示例 samples: {SCRIPT}" in text  # plain text shows a key as it is
    for entity in ("&#39;", "&lt;", "&gt;", "&quot;", "&amp;"):
        assert entity not in text, entity
    for tag in TEMPLATE_TAGS:
        assert tag not in text, tag
    assert "A key shown with a leading ' has it only" in text
    reminder = Feedback(
        DAY, dataclasses.replace(ORG, name="O'Brien 医院"), uploaded=False, expected_datasets=["x"]
    )
    body = _parsed(compose(reminder, "qc@wjw.example.cn")).get_body(("plain",)).get_content()
    assert body.startswith("O'Brien 医院（") and "&#39;" not in body


def test_a_line_break_in_a_registry_value_adds_no_header_or_line():
    msg = _parsed(compose(_hostile_feedback(), "qc@wjw.example.cn"))
    assert msg["Bcc"] is None
    assert msg["Subject"] == (
        f"[hqlake] O'Brien {SCRIPT} 医院 Bcc: x@evil.example 2026-11-09 数据质量 92.4 分"
        " · 同级第 3/12 名"
    )
    text = msg.get_body(("plain",)).get_content()
    assert text.splitlines()[0].startswith(f"O'Brien {SCRIPT} 医院 Bcc: x@evil.example · ")
    assert not any(line.startswith("Bcc") for line in text.splitlines())
    reminder = Feedback(DAY, _hostile_feedback().org, uploaded=False, expected_datasets=["x"])
    assert "\n" not in _parsed(compose(reminder, "qc@wjw.example.cn"))["Subject"]


def test_hostile_values_reach_the_outbox_neutralised(tmp_path):
    """Through a real SMTP server (the embedded sink), as a hospital's mail client gets it."""
    with SmtpSink(tmp_path / "outbox") as sink:
        config = sink.config("质控中心 <qc@wjw.example.cn>")
        send([compose(_hostile_feedback(), config.sender, "wjw.example.cn")], config)
        (path,) = sink.received
    msg = _parsed_bytes(path.read_bytes())
    assert msg["X-Envelope-To"] == ", ".join(ORG.emails) and msg["Bcc"] is None
    assert "\n" not in msg["Subject"] and "Bcc: x@evil.example" in msg["Subject"]

    html = msg.get_body(("html",)).get_content()
    assert SCRIPT not in html and "<img" not in html
    assert "O&#39;Brien &lt;script&gt;alert(1)&lt;/script&gt; 医院" in html
    assert "&#34;&gt;&lt;img src=x onerror=alert(1)&gt;" in html  # the refusal reason

    text = msg.get_body(("plain",)).get_content()
    assert "O'Brien" in text and "&#39;" not in text
    assert not any(tag in text for tag in TEMPLATE_TAGS)

    _, rows = _csv_rows(msg)
    assert [r["record_key"] for r in rows] == [*("'" + k for k in FORMULA_KEYS), "V0001"]


def _parsed_bytes(data: bytes):
    return BytesParser(policy=policy.default).parsebytes(data)


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


def test_the_link_is_the_organisation_day_page_of_the_portal_or_none():
    assert portal_link(None, ORG.org_code, DAY) is None  # no portal: no link, never a file
    assert portal_link("", ORG.org_code, DAY) is None
    assert portal_link("https://qc.example.cn/", ORG.org_code, DAY) == (
        f"https://qc.example.cn/org/{ORG.org_code}/{DAY.isoformat()}"
    )
    assert portal_link("http://127.0.0.1:8080", "a/b?c", DAY) == (
        f"http://127.0.0.1:8080/org/a%2Fb%3Fc/{DAY.isoformat()}"
    )
    text = compose(_feedback(portal_link=None), "qc@example.cn").as_string()
    assert "Quality portal" not in text and "file:" not in text


def test_waived_results_and_appeals_are_listed_escaped_masked_and_hashed():
    from tests.expectations.publish.test_report import _standing

    standing = _standing()
    fb = _feedback(waived=standing.waived, appeals=standing.appeals)
    msg = _parsed(compose(fb, "qc@example.cn"))
    html = msg.get_body(("html",)).get_content()
    text = msg.get_body(("plain",)).get_content()
    for body in (html, text):
        assert "已豁免的结果（不计分）" in body and "ap-0123456789ab" in body
        assert "已批准 Approved" in body and "待审核 Open" in body
        assert IDENTITY not in body and "13812345678" not in body
    assert "<img" not in html and "&lt;img src=x onerror=alert(1)&gt;" in html
    assert "<script>x" not in html
    lines = text.splitlines()
    heading = lines.index("已豁免的结果（不计分）Waived results (not scored):")
    assert lines[heading + 1].startswith("  - ") and lines[heading + 2] == ""
    # one appeal per line in the text part, its reason on it
    line = next(x for x in text.splitlines() if "ap-ffffffffffff" in x)
    assert line.startswith("  - [待审核 Open] ap-ffffffffffff") and "onerror" in line
    # a decision changes what the organisation is told: the e-mail is sent again
    base = _feedback().content_hash()
    assert fb.content_hash() != base
    decided = [a | {"status": "rejected"} if a["status"] == "open" else a for a in fb.appeals]
    assert _feedback(waived=fb.waived, appeals=decided).content_hash() != fb.content_hash()
    assert _feedback(waived=[], appeals=[]).content_hash() == base
