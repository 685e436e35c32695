"""The points lost on the organisation page and in the e-mail: from hand-made rows (escaping,
one decimal, waived apart), then end to end from a scored day through the pages written and
an e-mail sent through the SMTP sink."""

import dataclasses
from decimal import Decimal
from email import policy
from email.parser import BytesParser

import pytest

from contracts.registry import Registry
from expectations.publish.explanation import email_line, points_lost, points_text
from expectations.publish.report import render_org
from tests.expectations.publish.test_report import DAY, ORGS, TREND, score

HOSTILE = "<script>alert(1)</script>编码无效"


def line(rule_id, points, failed_rows, *, status="failed", cause="failed", dataset="patient"):
    return {
        "dataset": dataset,
        "rule_id": rule_id,
        "status": status,
        "cause": cause,
        "failed_rows": failed_rows,
        "points": Decimal(points),
        "lost_total": Decimal("19.3"),
        "description_zh": "主要诊断编码无效",
        "description_en": "Main diagnosis code is invalid",
    }


ROWS = [
    line("patient.dx.icd10_valid", "3.25", 41),
    line(
        "prescription.batch_received",
        "16.02",
        1,
        cause="batch_not_received",
        dataset="prescription",
    ),
    line("patient.x.required", "0.03", 2),
    line("patient.y.required", "0", 7, status="waived", cause="waived"),
]


def test_points_to_one_decimal_half_up():
    assert [points_text(Decimal(p)) for p in ("3.25", "3.24", "0.05", "0.04", "0")] == [
        "−3.3",
        "−3.2",
        "−0.1",
        "−<0.1",
        "0",
    ]
    lost = points_lost(ROWS)
    assert lost["total"] == "−19.3" and len(lost["lines"]) == 3 and len(lost["waived"]) == 1
    assert [email_line(v) for v in (*lost["lines"], *lost["waived"])] == [
        "−16.0 分：批次未收到（处方明细 prescription）",
        "−3.3 分：主要诊断编码无效 ×41（patient.dx.icd10_valid）",
        "−<0.1 分：主要诊断编码无效 ×2（patient.x.required）",
        "0 分：主要诊断编码无效 ×7（patient.y.required，已豁免 waived）",
    ]


def test_org_page_shows_the_points_lost_escaped():
    rows = [dict(ROWS[0], description_zh=HOSTILE), *ROWS[1:]]
    html = render_org(
        DAY, score(ORGS["A"], 80.7, 1, 4), TREND, [], ORGS["A"], False, explanation=rows
    )
    table = html[html.index('id="points-lost"') :]
    table = table[: table.index("</section>")]
    assert "−19.3 of the composite" in table
    assert HOSTILE not in html and "&lt;script&gt;alert(1)&lt;/script&gt;编码无效" in table
    order = [table.index(x) for x in ("批次未收到", "−3.3", "−&lt;0.1", "已豁免 waived")]
    assert order == sorted(order)
    assert 'id="points-lost"' not in render_org(
        DAY, score(ORGS["A"], 100.0, 1, 4), TREND, [], ORGS["A"], False
    )


@pytest.mark.integration
def test_page_and_email_from_a_scored_day(rt, tmp_path):
    from expectations.publish import report
    from expectations.publish.feedback import send_feedback
    from expectations.scoring.store import score_date
    from infra.mail import SmtpSink, send
    from tests.expectations.scoring.test_scoring import D, _hand_made_day, org

    _hand_made_day(rt.ch)
    t1 = dataclasses.replace(org("T1"), emails=("qc@t1.example.cn",))
    registry = Registry({"T1": t1}, "one hospital")
    score_date(rt.ch, registry, D)
    page = report.write_reports(rt.ch, registry, D, tmp_path)["orgs"]["T1"].read_text("utf-8")
    table = page[page.index('id="points-lost"') :]
    table = table[: table.index("</section>")]
    assert "−52.5 of the composite" in table
    cells = [table.index(f"<b>{p}</b>") for p in ("−22.5", "−16.7", "−10.0", "−2.2", "−1.1")]
    assert cells == sorted(cells)
    assert "诊断编码为有效的 ICD-10 编码" in table and "批次未收到" in table

    rt.ch.insert(
        "dq.ingest_file",
        [["T1", "outpatient_visit", D, "a.csv", "loaded", 1]],
        column_names=["org_code", "dataset", "business_date", "file", "status", "batch_version"],
    )
    with SmtpSink(tmp_path / "outbox") as sink:
        config = sink.config("qc@wjw.example.cn")
        [sent] = send_feedback(
            rt.ch,
            registry,
            D,
            transport=lambda messages: send(messages, config),
            sender=config.sender,
        )
        (path,) = sink.received
    assert sent["status"] == "sent"
    msg = BytesParser(policy=policy.default).parsebytes(path.read_bytes())
    expected = [
        "−22.5 分：诊断编码为有效的 ICD-10 编码 ×5（outpatient_visit.d.icd10_valid）",
        "−16.7 分：批次未收到（处方明细 prescription）",
        "−10.0 分：",
        "−2.2 分：必填字段不为空 ×5（outpatient_visit.a.required）",
        "−1.1 分：",
    ]
    text = msg.get_body(("plain",)).get_content()
    assert "失分明细 Points lost (共 −52.5 分):" in text
    found = [text.index(x) for x in expected]
    assert found == sorted(found)
    html = msg.get_body(("html",)).get_content()
    assert "失分明细 Points lost（共 −52.5 分）" in html
    assert all(x in html for x in expected)


@pytest.mark.integration
def test_one_organisations_failed_message_stops_no_other(rt, tmp_path):
    """A group of organisations in one feedback task (the DAG on chDB): the relay refusing one
    organisation's message leaves it `failed` and unrecorded, and the next one is still sent."""
    from expectations.publish.feedback import last_sent, send_feedback
    from expectations.scoring.store import score_date
    from infra.mail import SmtpSink, send
    from tests.expectations.scoring.test_scoring import D, _hand_made_day, org

    _hand_made_day(rt.ch)
    t1 = dataclasses.replace(org("T1"), emails=("qc@t1.example.cn",))
    t2 = dataclasses.replace(org("T2"), emails=("qc@t2.example.cn",))  # nothing received
    registry = Registry({"T1": t1, "T2": t2}, "two hospitals")
    score_date(rt.ch, registry, D)

    with SmtpSink(tmp_path / "outbox") as sink:
        config = sink.config("qc@wjw.example.cn")

        def transport(messages):
            if "qc@t1.example.cn" in messages[0]["To"]:
                raise ConnectionError("relay refused qc@t1.example.cn")
            return send(messages, config)

        outcomes = send_feedback(rt.ch, registry, D, transport=transport, sender=config.sender)
        received = list(sink.received)
    by_org = {o["org_code"]: o for o in outcomes}
    assert by_org["T1"]["status"] == "failed"
    assert by_org["T1"]["error"] == "ConnectionError: relay refused qc@t1.example.cn"
    assert by_org["T2"]["status"] == "sent" and by_org["T2"]["kind"] == "reminder"
    assert len(received) == 1
    assert set(last_sent(rt.ch, D)) == {"T2"}  # T1's retry sends it; T2's is not sent twice
