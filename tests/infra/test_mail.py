"""The SMTP sink is a real SMTP server: messages sent with smtplib land as .eml files."""

from __future__ import annotations

import csv
import io
from email import policy
from email.message import EmailMessage
from email.parser import BytesParser

import pytest

from infra.mail import SmtpConfig, SmtpSink, send, smtp_config


def _message(n: int) -> EmailMessage:
    msg = EmailMessage()
    msg["Subject"] = f"[hqlake] 信阳市中心医院 2026-11-09 数据质量 92.4 分 · 第 {n} 封"
    msg["To"] = "qc-01374k@hosp.xy.example.cn"
    msg["Message-ID"] = f"<test.{n}@hqlake.example>"
    msg.set_content("纯文本 plain text")
    msg.add_alternative("<p>质控 <b>HTML</b></p>", subtype="html")
    msg.add_attachment(
        "\ufeffdataset,rule_id,record_key\r\npatient,patient.id_card.valid,P0001\r\n",
        subtype="csv",
        charset="utf-8",
        filename="failing-keys.csv",
    )
    return msg


def _read(path):
    return BytesParser(policy=policy.default).parsebytes(path.read_bytes())


def test_sink_receives_messages_sent_over_smtp(tmp_path):
    outbox = tmp_path / "outbox"
    with SmtpSink(outbox) as sink:
        ids = send([_message(1), _message(2)], sink.config("hqlake <qc@wjw.example.cn>"))
        received = sink.received
    assert ids == ["<test.1@hqlake.example>", "<test.2@hqlake.example>"]
    files = sorted(outbox.glob("*.eml"))
    assert files == received and len(files) == 2
    assert not list(outbox.glob("*.part"))

    msg = _read(files[0])
    assert msg["Subject"] == "[hqlake] 信阳市中心医院 2026-11-09 数据质量 92.4 分 · 第 1 封"
    assert msg["From"] == "hqlake <qc@wjw.example.cn>"
    assert msg["X-Envelope-From"] == "qc@wjw.example.cn"
    assert msg["X-Envelope-To"] == "qc-01374k@hosp.xy.example.cn"
    assert msg.get_body(("plain",)).get_content().strip() == "纯文本 plain text"
    assert "<b>HTML</b>" in msg.get_body(("html",)).get_content()
    (attachment,) = list(msg.iter_attachments())
    assert attachment.get_filename() == "failing-keys.csv"
    rows = list(
        csv.DictReader(io.StringIO(attachment.get_payload(decode=True).decode("utf-8-sig")))
    )
    assert rows == [
        {"dataset": "patient", "rule_id": "patient.id_card.valid", "record_key": "P0001"}
    ]


def test_sink_stops_and_frees_its_port(tmp_path):
    with SmtpSink(tmp_path) as sink:
        config = sink.config()
    with pytest.raises(OSError):
        send([_message(3)], config)


def test_config_comes_from_the_environment():
    config = smtp_config(
        {
            "HQLAKE_SMTP_HOST": "relay.wjw.example.cn",
            "HQLAKE_SMTP_STARTTLS": "true",
            "HQLAKE_SMTP_USER": "hqlake",
            "HQLAKE_SMTP_PASSWORD": "s3cret",
            "HQLAKE_SMTP_FROM": "质控中心 <qc@wjw.example.cn>",
        }
    )
    assert config == SmtpConfig(
        "relay.wjw.example.cn", 587, "hqlake", "s3cret", True, "质控中心 <qc@wjw.example.cn>"
    )
    assert config.sender_domain == "wjw.example.cn"
    assert smtp_config({}).host is None and smtp_config({}).port == 25


def test_send_without_a_relay_says_so():
    with pytest.raises(RuntimeError, match="HQLAKE_SMTP_HOST"):
        send([_message(4)], smtp_config({}))
