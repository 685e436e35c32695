"""Appeals, their decisions and waivers (upload standard section 8): the writers of
dq.appeal_event and dq.waiver_event, and their listings. history.py reads the same events into
the exemptions scoring applies.

An organisation appeals a failed result of its own batch (for a cross-dataset result, the
organisation the result names) in the current validation run of a date, within the window of
contracts/appeals.yaml, with a reason; a quality officer named there approves or rejects it
with a comment. A quality officer waives a rule (by rule_id or rule type) for an organisation
or a peer group from a start date to an end date or open-ended, and may end it earlier. Each
of these is one event appended; nothing is updated in place or deleted, so who, when, what and
why stay as history. What a refusal says is the reason, in one line (`AppealRefused`).

Ids are random (uuid4: 12 hex digits after `ap-` or `wv-`), not content hashes: the same
organisation may appeal the same result again after a rejection, and two officers may add
identical waivers, and each must stay its own record. The clock (`now`) is an argument: the
window and the order of events follow it. Free text (reasons, comments) is stored with
identity and mobile numbers masked (contracts/pii.py): it comes from hospitals and is shown
on pages, e-mails and marts.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Collection
from dataclasses import dataclass
from typing import Any

from clickhouse_connect.driver.client import Client

from contracts.errors import OperatorError
from contracts.pii import mask_text
from contracts.registry import Registry
from contracts.timezone import TZ
from expectations.programme.config import AppealsConfig
from expectations.programme.history import load_exemptions
from expectations.scoring.arithmetic import ResultCount
from expectations.scoring.config import PEER_GROUPS

APPEAL_COLUMNS = (
    "appeal_id",
    "event",
    "org_code",
    "business_date",
    "dataset",
    "rule_id",
    "batch_version",
    "run_id",
    "actor",
    "text",
    "at",
)
WAIVER_COLUMNS = (
    "waiver_id",
    "event",
    "rule",
    "org_code",
    "peer_group",
    "start_date",
    "end_date",
    "actor",
    "text",
    "at",
)
DECISIONS = ("approved", "rejected")
APPEAL_STATUSES = ("open", *DECISIONS)


class AppealRefused(OperatorError):
    """An appeal, decision or waiver that the rules of section 8 refuse; the message says why."""


@dataclass(frozen=True)
class ResultRef:
    """The result an appeal is about: the rule of one organisation's batch of a date."""

    org_code: str
    business_date: dt.date
    dataset: str
    rule_id: str


def _text(value: str, what: str, config: AppealsConfig) -> str:
    text = (value or "").strip()
    if not text:
        raise AppealRefused(f"{what} is empty: say why, in a sentence")
    if len(text) > config.text.max_chars:
        raise AppealRefused(
            f"{what} is longer than {config.text.max_chars} characters ({len(text)}):"
            " say it shortly (contracts/appeals.yaml text.max_chars)"
        )
    return mask_text(text)


def _local(now: dt.datetime) -> dt.datetime:
    if now.tzinfo is None:
        raise ValueError("`now` must be a time-zone aware datetime")
    return now.astimezone(TZ)


def _officer(config: AppealsConfig, by: str, what: str) -> None:
    if not config.may_decide(by):
        raise AppealRefused(
            f"{by!r} may not {what}: that is the {config.decisions.role}'s role, held by"
            f" {', '.join(config.decisions.people)} (contracts/appeals.yaml)"
        )


def _insert(ch: Client, table: str, columns: tuple[str, ...], row: dict[str, Any]) -> None:
    ch.insert(table, [[row[c] for c in columns]], column_names=list(columns))


# ---- appeals ---------------------------------------------------------------------------------


def submit(
    ch: Client,
    registry: Registry,
    config: AppealsConfig,
    org_code: str,
    result: ResultRef,
    reason: str,
    by: str,
    now: dt.datetime,
) -> dict[str, Any]:
    """Record `org_code`'s appeal of `result` and return the event written; refused (with the
    reason) unless the result is a failed, unwaived result of the date's current run, of
    `org_code`'s own, in the window, with no open appeal and a reason."""
    now = _local(now)
    if registry.get(org_code) is None:
        raise AppealRefused(f"{org_code} is not an organisation of the registry {registry.source}")
    if result.org_code != org_code:
        raise AppealRefused(
            f"{org_code} may appeal only its own results: this result is {result.org_code}'s"
            " (a cross-dataset result belongs to the organisation it names)"
        )
    text = _text(reason, "the reason", config)
    if not (by or "").strip():
        raise AppealRefused("say who appeals (--by)")
    last_day = config.last_day(result.business_date)
    if now.date() > last_day:
        raise AppealRefused(
            f"the window for appeals of {result.business_date} closed at the end of {last_day}"
            f" ({config.window.days_after_business_date} days after the business date)"
        )
    run_id, version = _failed_result(ch, registry, result)
    open_ = [
        a
        for a in list_appeals(ch, org_code=org_code, day=result.business_date, status="open")
        if (a["dataset"], a["rule_id"], a["batch_version"])
        == (result.dataset, result.rule_id, version)
    ]
    if open_:
        raise AppealRefused(
            f"appeal {open_[0]['appeal_id']} of this result, submitted at"
            f" {open_[0]['submitted_at']:%Y-%m-%d %H:%M}, is still open"
        )
    row = {
        "appeal_id": f"ap-{uuid.uuid4().hex[:12]}",
        "event": "submitted",
        "org_code": org_code,
        "business_date": result.business_date,
        "dataset": result.dataset,
        "rule_id": result.rule_id,
        "batch_version": version,
        "run_id": run_id,
        "actor": by.strip(),
        "text": text,
        "at": now,
    }
    _insert(ch, "dq.appeal_event", APPEAL_COLUMNS, row)
    return row


def _failed_result(ch: Client, registry: Registry, result: ResultRef) -> tuple[str, int]:
    """(run_id, batch_version) of the failed result `result` names in its date's current run;
    refused when there is no current run, no such result, or it passed, or it is waived."""
    runs = ch.query(
        "SELECT run_id FROM dq.current_run WHERE business_date = {d:Date}",
        parameters={"d": result.business_date},
    ).result_rows
    if not runs:
        raise AppealRefused(f"{result.business_date} has no complete validation run to appeal")
    run_id = runs[0][0]
    rows = ch.query(
        """
        SELECT business_date, org_code, dataset, rule_id, rule_type, dimension, status,
               severity, weight, batch_version, count(), sum(failed), sum(checked)
        FROM dq.rule_result
        WHERE business_date = {d:Date} AND run_id = {run:String} AND org_code = {org:String}
          AND dataset = {ds:String} AND rule_id = {rule:String}
        GROUP BY business_date, org_code, dataset, rule_id, rule_type, dimension, status,
                 severity, weight, batch_version
        """,
        parameters={
            "d": result.business_date,
            "run": run_id,
            "org": result.org_code,
            "ds": result.dataset,
            "rule": result.rule_id,
        },
    ).result_rows
    where = (
        f"{result.rule_id} of {result.org_code} {result.dataset} {result.business_date}"
        f" (current run {run_id})"
    )
    if not rows:
        raise AppealRefused(f"no result {where}: check the dataset and rule id")
    counted = [ResultCount._make(r) for r in rows]
    failed = [r for r in counted if r.status == "failed"]
    if not failed:
        statuses = "/".join(sorted({r.status for r in counted}))
        raise AppealRefused(f"result {where} is {statuses}, not failed: only a failure is appealed")
    org = registry.get(result.org_code)
    # what is recorded now, whatever `now` says: a decision is not undone by an earlier clock
    exemptions = load_exemptions(ch)
    waived_by = exemptions.reason(failed[0], org.peer_group if org else "")
    if waived_by is not None:
        raise AppealRefused(f"result {where} is already waived ({waived_by})")
    return run_id, failed[0].batch_version


def decide(
    ch: Client,
    config: AppealsConfig,
    appeal_id: str,
    decision: str,
    comment: str,
    by: str,
    now: dt.datetime,
) -> dict[str, Any]:
    """Record a quality officer's decision (approved or rejected) of an open appeal and return
    the event written; the caller scores the affected dates again (programme/rescore.py)."""
    now = _local(now)
    if decision not in DECISIONS:
        raise AppealRefused(f"a decision is one of {', '.join(DECISIONS)}, not {decision!r}")
    _officer(config, by, "decide appeals")
    text = _text(comment, "the comment", config)
    found = list_appeals(ch, appeal_id=appeal_id)
    if not found:
        raise AppealRefused(f"no appeal {appeal_id!r}: `hqlake appeal list` shows them")
    appeal = found[0]
    if appeal["status"] != "open":
        raise AppealRefused(
            f"appeal {appeal_id} was already {appeal['status']} by {appeal['decided_by']} at"
            f" {appeal['decided_at']:%Y-%m-%d %H:%M}; decisions are not changed"
        )
    if now <= appeal["submitted_at"]:
        raise AppealRefused(f"appeal {appeal_id} was submitted after {now:%Y-%m-%d %H:%M:%S}")
    row = {c: appeal[c] for c in APPEAL_COLUMNS if c in appeal} | {
        "event": decision,
        "actor": by,
        "text": text,
        "at": now,
    }
    _insert(ch, "dq.appeal_event", APPEAL_COLUMNS, row)
    return row


def list_appeals(
    ch: Client,
    *,
    org_code: str | None = None,
    day: dt.date | None = None,
    status: str | None = None,
    appeal_id: str | None = None,
) -> list[dict[str, Any]]:
    """Every appeal as its current state (open, approved or rejected: its latest decision),
    with who submitted and decided it, when and why; filtered by organisation, business
    date, status and id; newest submission first."""
    if status is not None and status not in APPEAL_STATUSES:
        raise AppealRefused(f"an appeal's status is one of {', '.join(APPEAL_STATUSES)}")
    result = ch.query(
        """
        SELECT appeal_id, org_code, business_date, dataset, rule_id, batch_version, run_id,
               status, submitted_by, submitted_at, reason, decided_by, decided_at, comment
        FROM (
          SELECT appeal_id,
                 anyIf(org_code, event = 'submitted') AS org_code,
                 anyIf(business_date, event = 'submitted') AS business_date,
                 anyIf(dataset, event = 'submitted') AS dataset,
                 anyIf(rule_id, event = 'submitted') AS rule_id,
                 anyIf(batch_version, event = 'submitted') AS batch_version,
                 anyIf(run_id, event = 'submitted') AS run_id,
                 if(countIf(event IN ('approved', 'rejected')) = 0, 'open',
                    argMaxIf(event, at, event IN ('approved', 'rejected'))) AS status,
                 anyIf(actor, event = 'submitted') AS submitted_by,
                 toUnixTimestamp64Milli(minIf(at, event = 'submitted')) AS submitted_at,
                 anyIf(text, event = 'submitted') AS reason,
                 argMaxIf(actor, at, event IN ('approved', 'rejected')) AS decided_by,
                 toUnixTimestamp64Milli(maxIf(at, event IN ('approved', 'rejected')))
                   AS decided_at,
                 argMaxIf(text, at, event IN ('approved', 'rejected')) AS comment
          FROM dq.appeal_event
          GROUP BY appeal_id
          HAVING countIf(event = 'submitted') > 0
        )
        WHERE ({org:String} = '' OR org_code = {org:String})
          AND ({any_day:Bool} OR business_date = {d:Date})
          AND ({status:String} = '' OR status = {status:String})
          AND ({id:String} = '' OR appeal_id = {id:String})
        ORDER BY submitted_at DESC, appeal_id
        """,
        parameters={
            "org": org_code or "",
            "any_day": day is None,
            "d": day or dt.date(1970, 1, 1),
            "status": status or "",
            "id": appeal_id or "",
        },
    )
    rows = [dict(zip(result.column_names, r, strict=True)) for r in result.result_rows]
    for row in rows:
        row["submitted_at"] = _from_millis(row["submitted_at"])
        decided = row.pop("decided_at")
        row["decided_at"] = _from_millis(decided) if row["status"] != "open" else None
        if row["status"] == "open":
            row["decided_by"] = row["comment"] = ""
    return rows


def _from_millis(millis: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(millis / 1000, TZ)


# ---- waivers ---------------------------------------------------------------------------------


def add_waiver(
    ch: Client,
    registry: Registry,
    config: AppealsConfig,
    rules: Collection[str],
    rule: str,
    start: dt.date,
    end: dt.date | None,
    reason: str,
    by: str,
    now: dt.datetime,
    *,
    org_code: str | None = None,
    peer_group: str | None = None,
) -> dict[str, Any]:
    """Record a waiver of `rule` (a rule_id or a rule type of `rules`, the rule base's) for one
    organisation or one peer group from `start` to `end` (inclusive; None: open) and return
    the event written; the caller scores the affected dates again."""
    now = _local(now)
    _officer(config, by, "waive rules")
    if rule not in rules:
        raise AppealRefused(
            f"{rule!r} is neither a rule id nor a rule type of the rule base (contracts/rules.yaml"
            " and the dataset contracts)"
        )
    if (org_code is None) == (peer_group is None):
        raise AppealRefused(
            "a waiver covers one organisation (--org) or one peer group (--peer-group)"
        )
    if org_code is not None and registry.get(org_code) is None:
        raise AppealRefused(f"{org_code} is not an organisation of the registry {registry.source}")
    if peer_group is not None and peer_group not in PEER_GROUPS:
        raise AppealRefused(f"{peer_group!r} is not a peer group; one of {', '.join(PEER_GROUPS)}")
    if end is not None and end < start:
        raise AppealRefused(f"the waiver would end ({end}) before it starts ({start})")
    row = {
        "waiver_id": f"wv-{uuid.uuid4().hex[:12]}",
        "event": "added",
        "rule": rule,
        "org_code": org_code or "",
        "peer_group": peer_group or "",
        "start_date": start,
        "end_date": end,
        "actor": by,
        "text": _text(reason, "the reason", config),
        "at": now,
    }
    _insert(ch, "dq.waiver_event", WAIVER_COLUMNS, row)
    return row


def end_waiver(
    ch: Client,
    config: AppealsConfig,
    waiver_id: str,
    end: dt.date,
    reason: str,
    by: str,
    now: dt.datetime,
) -> dict[str, Any]:
    """Record that waiver `waiver_id` ends on `end` (inclusive; the day before its start
    withdraws it entirely) and return the event written, with `was_end` (its end before, None
    when it was open); a waiver is shortened, never extended (add a new one)."""
    now = _local(now)
    _officer(config, by, "end waivers")
    text = _text(reason, "the reason", config)
    found = list_waivers(ch, waiver_id=waiver_id)
    if not found:
        raise AppealRefused(f"no waiver {waiver_id!r}: `hqlake waiver list` shows them")
    waiver = found[0]
    if end < waiver["start_date"] - dt.timedelta(days=1):
        raise AppealRefused(
            f"waiver {waiver_id} starts on {waiver['start_date']}: end it on that day, or the day"
            " before to withdraw it entirely"
        )
    if waiver["end_date"] is not None and end >= waiver["end_date"]:
        raise AppealRefused(
            f"waiver {waiver_id} already ends on {waiver['end_date']}; a waiver is shortened,"
            " never extended: add a new one"
        )
    if now <= waiver["added_at"]:
        raise AppealRefused(f"waiver {waiver_id} was added after {now:%Y-%m-%d %H:%M:%S}")
    row = {c: waiver[c] for c in ("waiver_id", "rule", "org_code", "peer_group", "start_date")} | {
        "event": "ended",
        "end_date": end,
        "actor": by,
        "text": text,
        "at": now,
    }
    _insert(ch, "dq.waiver_event", WAIVER_COLUMNS, row)
    return row | {"was_end": waiver["end_date"]}


def list_waivers(
    ch: Client,
    *,
    waiver_id: str | None = None,
    org_code: str | None = None,
    peer_group: str | None = None,
    on: dt.date | None = None,
) -> list[dict[str, Any]]:
    """Every waiver as it stands (its end the earliest of its own and any ending), with who
    added and last ended it, when and why; filtered by id, organisation, peer group and a
    date it covers; by start date."""
    result = ch.query(
        """
        SELECT waiver_id, rule, org_code, peer_group, start_date, end_date, added_by, added_at,
               reason, ended_by, ended_at, end_reason
        FROM (
          SELECT waiver_id,
                 anyIf(rule, event = 'added') AS rule,
                 anyIf(org_code, event = 'added') AS org_code,
                 anyIf(peer_group, event = 'added') AS peer_group,
                 minIf(start_date, event = 'added') AS start_date,
                 min(end_date) AS end_date,
                 anyIf(actor, event = 'added') AS added_by,
                 toUnixTimestamp64Milli(minIf(at, event = 'added')) AS added_at,
                 anyIf(text, event = 'added') AS reason,
                 countIf(event = 'ended') AS endings,
                 argMaxIf(actor, at, event = 'ended') AS ended_by,
                 toUnixTimestamp64Milli(maxIf(at, event = 'ended')) AS ended_at,
                 argMaxIf(text, at, event = 'ended') AS end_reason
          FROM dq.waiver_event
          GROUP BY waiver_id
          HAVING countIf(event = 'added') > 0
        )
        WHERE ({id:String} = '' OR waiver_id = {id:String})
          AND ({org:String} = '' OR org_code = {org:String})
          AND ({peer:String} = '' OR peer_group = {peer:String})
          AND ({any_day:Bool} OR (start_date <= {d:Date}
               AND (end_date IS NULL OR {d:Date} <= end_date)))
        ORDER BY start_date, waiver_id
        """,
        parameters={
            "id": waiver_id or "",
            "org": org_code or "",
            "peer": peer_group or "",
            "any_day": on is None,
            "d": on or dt.date(1970, 1, 1),
        },
    )
    rows = [dict(zip(result.column_names, r, strict=True)) for r in result.result_rows]
    for row in rows:
        row["added_at"] = _from_millis(row["added_at"])
        ended = row.pop("ended_at")
        row["ended_at"] = _from_millis(ended) if row["ended_by"] else None
    return rows
