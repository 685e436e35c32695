"""Feedback e-mails: what each organisation hears about its upload day, and when.

One e-mail per organisation per business date, to the addresses of the registry:

- an organisation with an upload that day (at least one file received, loaded or refused)
  gets its feedback: composite score and peer-group rank in the subject; in the body the
  dimension scores, rank change, new / persisting / resolved problems, refused files, the
  points of the composite each failed rule cost ("−3.2 分：… ×41"), the failed rules with counts, what they check and how to fix them, and a link to its page
  in the quality portal (`{portal_url}/org/{code}/{date}`; no link when no portal is set); attached, a CSV of every failing record key per rule of the current run;
- an active organisation with nothing received gets a reminder instead.

Re-runs. `dq.feedback_sent` is the ledger of e-mails sent. An e-mail is sent only when its
content hash differs from the last one sent for that organisation-day: the hash covers the
scores, rank and failing rules (and refused files), never run ids or timestamps, so
re-running a day sends nothing new unless its results changed (a late correction does).
The Message-ID is derived from the same hash, so a duplicate that slips through (the relay
accepted it but the ledger row was lost) threads as the same message in mail clients.

Personal data: record keys are key fields, never personal ones; every key part from a
field the contract tags `pii`, or that looks like an identity or mobile number, is masked
(`contracts.pii.mask_key`), and so are such numbers in refusal reasons and notes.

Hostile values (keys, names and reasons come from uploads and the registry): the HTML part is
autoescaped; the plain-text part is rendered without HTML escaping from its own templates,
every value on one line (`neutralise.one_line`), and so is every header value, so a newline
in an organisation name can neither add a header nor stop the e-mail; the CSV attachment is
neutralised against formula injection (`neutralise.spreadsheet_csv`).

`compose` and `compose_reminder` are pure (tested from hand-made rows); `collect` reads
the warehouse; `send_feedback` decides, sends and records.
"""

# The e-mail templates in this module are HTML and text whose lines are as long as they read.
# ruff: noqa: E501

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.utils import formatdate, parseaddr
from typing import Any
from urllib.parse import quote

from clickhouse_connect.driver.client import Client
from jinja2 import Environment, StrictUndefined

from contracts import labels
from contracts.loader import contracts
from contracts.pii import mask_key, mask_text
from contracts.registry import Organisation, Registry
from contracts.timezone import TZ
from expectations.publish.explanation import email_line, points_lost
from expectations.publish.neutralise import one_line, spreadsheet_cell, spreadsheet_csv
from expectations.publish.report import shown_keys

log = logging.getLogger(__name__)

TOP_RULES = 10  # failed rules described in the body; the CSV lists every failing key
SAMPLE_KEYS = 3
MAX_CSV_KEYS = 100_000  # an attachment stays small enough for any relay (a few MB)

DIMENSIONS = {d: label.both for d, label in labels.DIMENSIONS.items()}
SEVERITIES = {s: label.zh for s, label in labels.SEVERITIES.items()}
CHANGES = {c: label.zh for c, label in labels.CHANGES.items()}
APPEAL_STATUSES = {s: label.both for s, label in labels.APPEAL_STATUSES.items()}
WAIVED_BY = {k: label.both for k, label in labels.WAIVED_BY.items()}


@dataclass
class Feedback:
    """Everything one organisation-day e-mail says; `score` is a dq.current_score_org_day row
    (as expectations.scoring.read.read_scores returns it), `failures` rows of read.failures,
    `explanation` rows of read.read_explanation (the points each failed rule cost)."""

    day: dt.date
    org: Organisation
    uploaded: bool
    score: dict[str, Any] | None = None
    failures: list[dict[str, Any]] = field(default_factory=list)
    explanation: list[dict[str, Any]] = field(default_factory=list)
    resolved: list[dict[str, Any]] = field(default_factory=list)
    issues: list[dict[str, str]] = field(default_factory=list)
    issues_total: int = 0
    refused_files: list[dict[str, str]] = field(default_factory=list)
    expected_datasets: list[str] = field(default_factory=list)
    portal_link: str | None = None  # the organisation-day's page in the portal
    # section 8: the results waived (programme.read.Standing.waived) and the appeals shown
    waived: list[dict[str, Any]] = field(default_factory=list)
    appeals: list[dict[str, Any]] = field(default_factory=list)

    @property
    def kind(self) -> str:
        return "feedback" if self.uploaded else "reminder"

    def content_hash(self) -> str:
        """sha256 of what the organisation is told: scores, rank, failing rules and refused
        files (feedback) or the datasets expected (reminder); no run id, no clock."""
        if self.uploaded:
            score = self.score or {}
            payload: dict[str, Any] = {
                "scores": {
                    k: None if score.get(k) is None else round(float(score[k]), 2)
                    for k in (*DIMENSIONS, "composite")
                },
                "rank": [score.get("rank"), score.get("peer_size")],
                "failing": sorted(
                    [f["dataset"], f["rule_id"], int(f["failed"]), int(f["checked"])]
                    for f in self.failures
                ),
                "refused": sorted(
                    [f["dataset"], f["file"], f["reason"]] for f in self.refused_files
                ),
            }
            # only when there are any, so the hash of an e-mail without them is unchanged
            if self.waived:
                payload["waived"] = sorted(
                    [w["dataset"], w["rule_id"], w["waived_by"]] for w in self.waived
                )
            if self.appeals:
                payload["appeals"] = sorted([a["appeal_id"], a["status"]] for a in self.appeals)
        else:
            payload = {"expected": sorted(self.expected_datasets)}
        text = json.dumps(
            {"kind": self.kind, "org": self.org.org_code, "day": self.day.isoformat(), **payload},
            ensure_ascii=False,
            sort_keys=True,
        )
        return hashlib.sha256(text.encode()).hexdigest()


# ---- composing (pure) -----------------------------------------------------------------------


def _dataset_title(dataset: str) -> str:
    ds = contracts().datasets.get(dataset)
    return f"{ds.title.zh} {dataset}" if ds else dataset


def _score_text(value: float | None) -> str:
    return "—" if value is None else f"{float(value):.1f}"


def _rank_change(value: int | None) -> str:
    if value is None:
        return "—"
    return f"↑{value}" if value > 0 else f"↓{-value}" if value < 0 else "持平"


def _rank_text(score: dict[str, Any]) -> str:
    if score.get("rank") is None:
        return "未排名"
    return f"同级第 {score['rank']}/{score['peer_size']} 名"


def _failure_view(f: dict[str, Any]) -> dict[str, Any]:
    return {
        "dataset": _dataset_title(f["dataset"]),
        "rule_id": f["rule_id"],
        "dimension": DIMENSIONS.get(f["dimension"], f["dimension"]),
        "severity": SEVERITIES.get(f["severity"], f["severity"]),
        "change": CHANGES.get(f.get("change") or "", ""),
        "failed": int(f["failed"]),
        "checked": int(f["checked"]),
        "pct": f"{float(f['failed_pct']):.2f}%",
        "description": f.get("description_zh") or f["rule_id"],
        "description_en": f.get("description_en") or "",
        "fix_hint": f.get("fix_hint_zh") or "",
        "fix_hint_en": f.get("fix_hint_en") or "",
        "samples": list(
            dict.fromkeys(
                shown_keys(f["dataset"], f.get("sample_keys") or [], f.get("sample_details"))
            )
        )[:SAMPLE_KEYS],
    }


def _lost_view(rows: list[dict[str, Any]]) -> dict[str, Any]:
    lost = points_lost(rows)
    for line in (*lost["lines"], *lost["waived"]):
        line["text"] = email_line(line)
    return lost


# "detail": what of the row failed where the rule says, e.g. "other_dx_codes N40"
ATTACHMENT_COLUMNS = ("dataset", "rule_id", "dimension", "severity", "record_key", "detail")
_KEY = ATTACHMENT_COLUMNS.index("record_key")


def _attachment_rows(issues: list[dict[str, str]]) -> list[list[str]]:
    """The rows of the CSV of failing keys, keys and details masked (the CSV itself is
    neutralised by `neutralise.spreadsheet_csv`)."""
    return [
        [
            *(i[c] for c in ATTACHMENT_COLUMNS[:_KEY]),
            mask_key(i["dataset"], i["record_key"]),
            mask_text(i.get("detail") or ""),  # a detail may quote an uploaded identifier
        ]
        for i in issues
    ]


def message_id(fb: Feedback, domain: str) -> str:
    return f"<{fb.day:%Y%m%d}.{fb.org.org_code}.{fb.content_hash()[:12]}@{domain}>"


def _envelope(fb: Feedback, subject: str, sender: str, domain: str) -> EmailMessage:
    """The headers of an e-mail, every value on one line: the email package refuses a header
    value with CR or LF, and a value from the registry must not end the message."""
    headers = {
        "Subject": subject,
        "From": sender,
        "To": ", ".join(fb.org.emails),
        "Date": formatdate(localtime=True),
        "Message-ID": message_id(fb, domain),
        "Auto-Submitted": "auto-generated",  # RFC 3834: no auto-replies to a robot
        "X-Hqlake-Org": fb.org.org_code,
        "X-Hqlake-Business-Date": fb.day.isoformat(),
        "X-Hqlake-Kind": fb.kind,
        "X-Hqlake-Content-Hash": fb.content_hash(),
    }
    msg = EmailMessage()
    for name, value in headers.items():
        msg[name] = one_line(value)
    return msg


_ENV = Environment(autoescape=True, undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)
# Plain text is not HTML, so no entities: `one_line` keeps every value on its template line.
_TEXT_ENV = Environment(
    autoescape=False,  # noqa: S701 - renders text/plain only, never HTML
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
    finalize=one_line,
)

# Mail clients drop <style> blocks and never run scripts: inline styles, plain tables.
_HTML = _ENV.from_string(
    """<!doctype html>
<html lang="zh-CN"><head><meta charset="utf-8"><title>{{ subject }}</title></head>
<body style="font-family:'PingFang SC','Microsoft YaHei',Arial,sans-serif;color:#222;max-width:760px">
<h2 style="margin-bottom:4px">{{ org.name }} · {{ day }} 上传数据质量反馈</h2>
<p style="color:#666;margin-top:0">Upload quality feedback · {{ org.org_code }}</p>
<p style="font-size:18px">综合得分 <b>{{ composite }}</b> 分 · {{ rank }}
 · 较前日 {{ change_day }} · 较上月同日 {{ change_month }}</p>
<table style="border-collapse:collapse" cellpadding="6">
<tr>{% for label, _ in dimensions %}<th style="border:1px solid #ccc;background:#f4f4f4">{{ label }}</th>{% endfor %}</tr>
<tr>{% for _, value in dimensions %}<td style="border:1px solid #ccc;text-align:center">{{ value }}</td>{% endfor %}</tr>
</table>
<p>问题变化 Problems: 新增 new <b>{{ counts.new }}</b> · 持续 persisting <b>{{ counts.persisting }}</b>
 · 已解决 resolved <b>{{ counts.resolved }}</b></p>
{% if lost.lines or lost.waived %}
<h3>失分明细 Points lost（共 {{ lost.total }} 分）</h3>
<ul>{% for line in lost.lines[:top] %}<li>{{ line.text }}</li>{% endfor %}
{% for line in lost.waived %}<li style="color:#888">{{ line.text }}</li>{% endfor %}</ul>
{% if lost.lines|length > top %}<p style="color:#888">另 {{ lost.lines|length - top }} 条见门户页面 More on the portal page.</p>{% endif %}
{% endif %}
{% if refused %}
<h3>被拒收的文件 Refused files</h3>
<ul>{% for f in refused %}<li>{{ f.dataset }} · {{ f.file }}：{{ f.reason }}</li>{% endfor %}</ul>
{% endif %}
{% if failures %}
<h3>未通过的规则 Failed rules{% if more %}（前 {{ failures|length }} 条，共 {{ total_failed }} 条）{% endif %}</h3>
<table style="border-collapse:collapse;font-size:13px;width:100%;table-layout:fixed" cellpadding="5">
<tr style="background:#f4f4f4"><th>数据集</th><th>规则</th><th>维度</th><th>级别</th><th>未通过/检查</th><th>变化</th><th>如何修正</th></tr>
{% for f in failures %}
<tr style="border-top:1px solid #ddd;vertical-align:top">
<td>{{ f.dataset }}</td>
<td>{{ f.description }}<br><code style="color:#888;word-break:break-all">{{ f.rule_id }}</code></td>
<td>{{ f.dimension }}</td><td style="white-space:nowrap">{{ f.severity }}</td>
<td>{{ "{:,}".format(f.failed) }} / {{ "{:,}".format(f.checked) }}<br>{{ f.pct }}</td>
<td style="white-space:nowrap">{{ f.change }}</td>
<td>{{ f.fix_hint }}{% if f.fix_hint_en %}<br><span style="color:#888">{{ f.fix_hint_en }}</span>{% endif %}
{% if f.samples %}<br><span style="color:#888">示例 {{ f.samples|join("、") }}</span>{% endif %}</td>
</tr>
{% endfor %}
</table>
{% else %}
<p>所有规则均已通过。All rules passed.</p>
{% endif %}
{% if resolved %}
<h3>已解决 Resolved</h3>
<ul>{% for r in resolved %}<li>{{ r.dataset }} · <code>{{ r.rule_id }}</code></li>{% endfor %}</ul>
{% endif %}
{% if waived %}
<h3>已豁免的结果（不计分）Waived results (not scored)</h3>
<ul>{% for w in waived %}<li>{{ w.dataset }} · <code>{{ w.rule_id }}</code>（{{ w.status }}）：{{ w.kind }} {{ w.waived_by }}{% if w.why %} — {{ w.why }}{% endif %}</li>{% endfor %}</ul>
{% endif %}
{% if appeals %}
<h3>申诉 Appeals</h3>
<ul>{% for a in appeals %}<li><b>{{ a.status }}</b> · {{ a.appeal_id }} · {{ a.business_date }} {{ a.dataset }} · <code>{{ a.rule_id }}</code>：{{ a.reason }}{% if a.comment %}<br><span style="color:#666">质控意见 Decision: {{ a.comment }}</span>{% endif %}</li>{% endfor %}</ul>
{% endif %}
{% if issues_total %}
<p>附件 <b>{{ attachment }}</b> 列出未通过规则的全部记录主键（{{ "{:,}".format(issues_shown) }}{% if issues_shown < issues_total %} / {{ "{:,}".format(issues_total) }}{% endif %} 条，个人信息已脱敏）。
The attachment lists the failing record keys per rule (personal data masked).</p>
{% if keys_prefixed %}<p>以 ' 开头的主键：' 是为防止表格软件把主键当作公式执行而加，原主键不含该 '。
A key shown with a leading ' has it only so that spreadsheets do not run it as a formula.</p>{% endif %}
{% endif %}
{% if link %}<p>质控门户 Quality portal: <a href="{{ link }}">{{ link }}</a></p>{% endif %}
<p style="color:#888;font-size:12px">本邮件由 hqlake 自动发送，请勿回复。This message was sent automatically.</p>
</body></html>
"""
)

_TEXT = _TEXT_ENV.from_string(
    """{{ org.name }} · {{ day }} 上传数据质量反馈 (upload quality feedback, {{ org.org_code }})

综合得分 Composite: {{ composite }} · {{ rank }} · 较前日 {{ change_day }} · 较上月同日 {{ change_month }}
{% for label, value in dimensions %}
  {{ label }}: {{ value }}
{% endfor %}
问题变化 Problems: 新增 new {{ counts.new }} · 持续 persisting {{ counts.persisting }} · 已解决 resolved {{ counts.resolved }}
{% if lost.lines or lost.waived %}

失分明细 Points lost (共 {{ lost.total }} 分):
{% for line in lost.lines[:top] %}
  {{ line.text }}
{% endfor %}
{% for line in lost.waived %}
  {{ line.text }}
{% endfor %}
{% if lost.lines|length > top %}
  另 {{ lost.lines|length - top }} 条见门户页面 (more on the portal page)
{% endif %}
{% endif %}
{% if refused %}

被拒收的文件 Refused files:
{% for f in refused %}
  - {{ f.dataset }} · {{ f.file }}: {{ f.reason }}
{% endfor %}
{% endif %}
{% if failures %}

未通过的规则 Failed rules{% if more %} (top {{ failures|length }} of {{ total_failed }}){% endif %}:
{% for f in failures %}
  - [{{ f.severity }}|{{ f.change }}] {{ f.dataset }} {{ f.rule_id }}: {{ f.description }}
    未通过 {{ f.failed }} / 检查 {{ f.checked }} ({{ f.pct }}); 如何修正: {{ f.fix_hint }}
{% if f.samples %}
    示例 samples: {{ f.samples|join(", ") }}
{% endif %}
{% endfor %}
{% else %}

所有规则均已通过。All rules passed.
{% endif %}
{% if resolved %}

已解决 Resolved:
{% for r in resolved %}
  - {{ r.dataset }} {{ r.rule_id }}
{% endfor %}
{% endif %}
{% if waived %}

已豁免的结果（不计分）Waived results (not scored):
{% for w in waived %}
  - {{ w.dataset }} {{ w.rule_id }} ({{ w.status }}): {{ w.kind }} {{ w.waived_by }}{{ w.why_text }}
{% endfor %}
{% endif %}
{% if appeals %}

申诉 Appeals:
{% for a in appeals %}
  - [{{ a.status }}] {{ a.appeal_id }} {{ a.business_date }} {{ a.dataset }} {{ a.rule_id }}: {{ a.reason }}
{% if a.comment %}
    质控意见 Decision: {{ a.comment }}
{% endif %}
{% endfor %}
{% endif %}
{% if issues_total %}

附件 Attachment {{ attachment }}: failing record keys ({{ issues_shown }}{% if issues_shown < issues_total %} of {{ issues_total }}{% endif %}), personal data masked.
{% if keys_prefixed %}
以 ' 开头的主键：' 是为防止表格软件把主键当作公式执行而加，原主键不含该 '。
A key shown with a leading ' has it only so that spreadsheets do not run it as a formula.
{% endif %}
{% endif %}
{% if link %}

质控门户 Quality portal: {{ link }}
{% endif %}
"""
)


def compose(fb: Feedback, sender: str, domain: str = "localhost") -> EmailMessage:
    """The feedback e-mail of an organisation-day with an upload (HTML, plain text, CSV)."""
    if not fb.uploaded:
        return compose_reminder(fb, sender, domain)
    score = fb.score or {}
    composite = _score_text(score.get("composite"))
    rank = _rank_text(score)
    subject = f"[hqlake] {fb.org.name} {fb.day} 数据质量 {composite} 分 · {rank}"
    msg = _envelope(fb, subject, sender, domain)
    counts = {
        "new": sum(f.get("change") == "new" for f in fb.failures),
        "persisting": sum(f.get("change") == "persisting" for f in fb.failures),
        "resolved": len(fb.resolved),
    }
    attachment = one_line(f"failing-keys-{fb.org.org_code}-{fb.day}.csv")
    rows = _attachment_rows(fb.issues)
    view = {
        "subject": subject,
        "org": fb.org,
        "day": fb.day.isoformat(),
        "composite": composite,
        "rank": rank,
        "change_day": _rank_change(score.get("rank_change_day")),
        "change_month": _rank_change(score.get("rank_change_month")),
        "dimensions": [(label, _score_text(score.get(d))) for d, label in DIMENSIONS.items()],
        "counts": counts,
        "refused": [
            {
                "dataset": _dataset_title(f["dataset"]),
                "file": f["file"],
                "reason": mask_text(f["reason"]),
            }
            for f in fb.refused_files
        ],
        "lost": _lost_view(fb.explanation),
        "top": TOP_RULES,
        "failures": [_failure_view(f) for f in fb.failures[:TOP_RULES]],
        "more": len(fb.failures) > TOP_RULES,
        "total_failed": len(fb.failures),
        "resolved": [
            {"dataset": _dataset_title(r["dataset"]), "rule_id": r["rule_id"]} for r in fb.resolved
        ],
        "waived": [
            {
                "dataset": _dataset_title(w["dataset"]),
                "rule_id": w["rule_id"],
                "status": labels.RESULT_STATUSES[w["status"]].both,
                "kind": WAIVED_BY[w["kind"]],
                "waived_by": w["waived_by"],
                "why": mask_text(w["why"]),
                "why_text": f" — {mask_text(w['why'])}" if w["why"] else "",
            }
            for w in fb.waived
        ],
        "appeals": [
            {
                "appeal_id": a["appeal_id"],
                "business_date": a["business_date"].isoformat(),
                "dataset": _dataset_title(a["dataset"]),
                "rule_id": a["rule_id"],
                "status": APPEAL_STATUSES[a["status"]],
                "reason": mask_text(a["reason"]),
                "comment": mask_text(a["comment"]),
            }
            for a in fb.appeals
        ],
        "issues_total": fb.issues_total,
        "issues_shown": len(fb.issues),
        "attachment": attachment,
        # a key shown with the ' that stops a spreadsheet reading it as a formula
        "keys_prefixed": any(spreadsheet_cell(row[_KEY]) != row[_KEY] for row in rows),
        "link": fb.portal_link,
    }
    msg.set_content(_TEXT.render(view))
    msg.add_alternative(_HTML.render(view), subtype="html")
    if rows:
        msg.add_attachment(
            spreadsheet_csv(ATTACHMENT_COLUMNS, rows),
            subtype="csv",
            charset="utf-8",
            filename=attachment,
        )
    return msg


_REMINDER = _TEXT_ENV.from_string(
    """{{ org.name }}（{{ org.org_code }}）：

截至本次质控运行，平台未收到贵单位 {{ day }} 的任何上传数据。请尽快按《上传数据标准》补传以下数据集，
逾期上传计入及时性扣分，未上传计入完整性扣分：
{% for d in expected %}
  - {{ d }}
{% endfor %}

上传路径：<机构编码>/<数据集>/{{ day }}/<文件名>（例如 {{ org.org_code }}/{{ example }}/{{ day }}/data.csv）。

No upload for {{ day }} has been received from {{ org.org_code }}. Please upload the datasets above;
late uploads lose timeliness points, missing ones completeness points.

本邮件由 hqlake 自动发送，请勿回复。
"""
)


def compose_reminder(fb: Feedback, sender: str, domain: str = "localhost") -> EmailMessage:
    """The reminder to an active organisation from which nothing was received for the day."""
    subject = f"[hqlake] {fb.org.name} {fb.day} 未收到上传数据 · 请尽快补传"
    msg = _envelope(fb, subject, sender, domain)
    msg.set_content(
        _REMINDER.render(
            org=fb.org,
            day=fb.day.isoformat(),
            expected=[_dataset_title(d) for d in fb.expected_datasets],
            example=(fb.expected_datasets or ["<dataset>"])[0],
        )
    )
    return msg


# ---- reading the warehouse --------------------------------------------------------------------


def _domain(sender: str) -> str:
    """The domain of a From address (Message-IDs are made in it)."""
    return parseaddr(sender)[1].rpartition("@")[2] or "localhost"


def portal_link(portal_url: str | None, org_code: str, day: dt.date) -> str | None:
    """The organisation-day's page in the served portal (HQLAKE_PORTAL_URL, `hqlake serve`),
    None without a portal: an e-mail never links to a file (a path on the server
    reaches nobody, and a static folder would show every organisation's page to anyone)."""
    if not portal_url:
        return None
    return f"{portal_url.rstrip('/')}/org/{quote(org_code, safe='')}/{day.isoformat()}"


def _expected_datasets(org: Organisation) -> list[str]:
    return sorted(name for name, ds in contracts().datasets.items() if ds.kind == org.kind)


def _current_run(ch: Client, day: dt.date) -> str | None:
    rows = ch.query(
        "SELECT run_id FROM dq.current_run WHERE business_date = {d:Date}", parameters={"d": day}
    ).result_rows
    return rows[0][0] if rows else None


def collect(
    ch: Client,
    registry: Registry,
    day: dt.date,
    org_codes: Iterable[str] | None = None,
    *,
    portal_url: str | None = None,
) -> list[Feedback]:
    """The feedback of every active organisation of `day` (or of `org_codes`) from the
    current validation run and its scoring, linking to their pages in the portal at
    `portal_url` (none when None).
    Raises LookupError when `day` has not been scored: feedback on numbers that do not
    exist yet would be wrong."""
    from expectations.programme.read import NO_STANDING, Programme
    from expectations.scoring import read

    scores = {r["org_code"]: r for r in read.read_scores(ch, day)}
    run_id = _current_run(ch, day)
    if not scores or run_id is None:
        raise LookupError(f"{day} has no scored validation run: validate and score it first")
    wanted = set(org_codes) if org_codes is not None else None
    orgs = [o for o in registry.active(day) if wanted is None or o.org_code in wanted]
    codes = [o.org_code for o in orgs]
    files = ch.query(
        "SELECT org_code, dataset, file, status, reason FROM dq.ingest_file FINAL"
        " WHERE business_date = {d:Date} AND org_code IN {orgs:Array(String)}"
        " ORDER BY org_code, dataset, file",
        parameters={"d": day, "orgs": codes},
    ).result_rows
    uploaded = {org for org, *_ in files}
    resolved = ch.query(
        "SELECT org_code, dataset, rule_id FROM dq.current_failure_change"
        " WHERE business_date = {d:Date} AND change = 'resolved'"
        " AND org_code IN {orgs:Array(String)} ORDER BY org_code, dataset, rule_id",
        parameters={"d": day, "orgs": codes},
    ).result_rows
    # one organisation's e-mail (a mapped task of one) reads its rows, several the whole day's
    only = codes[0] if len(codes) == 1 else ""
    standings = Programme(ch, registry).standings(day, only)
    failures = read.day_failures(ch, day, only)
    explanations = read.day_explanations(ch, day, org_code=only)
    out = []
    for org in orgs:
        code = org.org_code
        fb = Feedback(
            day, org, uploaded=code in uploaded, expected_datasets=_expected_datasets(org)
        )
        if fb.uploaded:
            fb.score = scores.get(code)
            standing = standings.get(code, NO_STANDING)
            fb.failures = standing.without_waived(failures.get(code, []))
            fb.waived, fb.appeals = standing.waived, standing.appeals
            fb.explanation = explanations.get(code, [])
            fb.resolved = [{"dataset": d, "rule_id": r} for o, d, r in resolved if o == code]
            fb.refused_files = [
                {"dataset": d, "file": f, "reason": reason}
                for o, d, f, status, reason in files
                if o == code and status == "rejected"
            ]
            waived = sorted(f"{w['dataset']}|{w['rule_id']}" for w in fb.waived)
            fb.issues, fb.issues_total = _record_issues(ch, day, run_id, code, waived)
            fb.portal_link = portal_link(portal_url, code, day)
        out.append(fb)
    return out


def _record_issues(
    ch: Client, day: dt.date, run_id: str, org_code: str, waived: Sequence[str] = ()
) -> tuple[list[dict[str, str]], int]:
    """The failing record keys of the run for the attachment, leaving out the rules whose
    result is waived ("dataset|rule_id"): a waived result counts like not_applicable, so its
    keys are not something to fix."""
    params = {"d": day, "run": run_id, "org": org_code, "cap": MAX_CSV_KEYS, "w": list(waived)}
    where = (
        " WHERE business_date = {d:Date} AND run_id = {run:String} AND org_code = {org:String}"
        " AND NOT has({w:Array(String)}, concat(dataset, '|', rule_id))"
    )
    # the SQL text is constants only; every value is a bound parameter
    total = ch.query("SELECT count() FROM dq.record_issue" + where, parameters=params)  # noqa: S608
    result = ch.query(
        "SELECT dataset, rule_id, dimension, severity, record_key, detail FROM dq.record_issue"  # noqa: S608
        + where
        + " ORDER BY dataset, rule_id, record_key LIMIT {cap:UInt64}",
        parameters=params,
    )
    return list(result.named_results()), int(total.result_rows[0][0])


def last_sent(ch: Client, day: dt.date) -> dict[str, str]:
    """Content hash of the last e-mail sent per organisation for `day`."""
    return dict(
        ch.query(
            "SELECT org_code, argMax(content_hash, sent_at) FROM dq.feedback_sent"
            " WHERE business_date = {d:Date} GROUP BY org_code",
            parameters={"d": day},
        ).result_rows
    )


# ---- sending ------------------------------------------------------------------------------


def send_feedback(
    ch: Client,
    registry: Registry,
    day: dt.date,
    org_codes: Iterable[str] | None = None,
    *,
    transport: Callable[[list[EmailMessage]], list[str]],
    sender: str,
    portal_url: str | None = None,
) -> list[dict[str, Any]]:
    """Send the e-mails of `day` whose content changed since the last one sent (all active
    organisations, or `org_codes`) through `transport` (the caller's SMTP session, which
    returns the Message-IDs), from `sender`, recording each in dq.feedback_sent right after
    the relay accepted it. Returns one outcome per organisation: sent | unchanged |
    no_recipients | failed (composing or sending its message raised: `error` says what; the
    others are still sent, and the caller decides what a failure means)."""
    previous = last_sent(ch, day)
    outcomes = []
    found = collect(ch, registry, day, org_codes, portal_url=portal_url)
    for fb in found:
        digest = fb.content_hash()
        outcome = {
            "org_code": fb.org.org_code,
            "business_date": day.isoformat(),
            "kind": fb.kind,
            "content_hash": digest,
            "recipients": list(fb.org.emails),
        }
        if not fb.org.emails:
            log.warning("%s has no e-mail address in the registry: no feedback", fb.org.org_code)
            outcomes.append(outcome | {"status": "no_recipients"})
            continue
        if previous.get(fb.org.org_code) == digest:
            outcomes.append(outcome | {"status": "unchanged"})
            continue
        try:
            message = compose(fb, sender, _domain(sender))
            (mid,) = transport([message])
        except Exception as exc:  # one organisation's message (an address refused) stops no other
            log.exception("feedback of %s for %s not sent", fb.org.org_code, day)
            outcomes.append(outcome | {"status": "failed", "error": f"{type(exc).__name__}: {exc}"})
            continue
        ch.insert(
            "dq.feedback_sent",
            [
                [
                    fb.org.org_code,
                    day,
                    fb.kind,
                    digest,
                    mid,
                    list(fb.org.emails),
                    dt.datetime.now(TZ),
                ]
            ],
            column_names=[
                "org_code",
                "business_date",
                "kind",
                "content_hash",
                "message_id",
                "recipients",
                "sent_at",
            ],
        )
        outcomes.append(outcome | {"status": "sent", "message_id": mid})
    return outcomes
