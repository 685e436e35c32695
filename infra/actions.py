"""The portal's action queue: what people do in the portal (appeal, decide, waive, sign,
reopen) reaches the warehouse without the portal opening it.

The portal process never opens chDB (one process per data path, and a daily run holds it):
it `enqueue`s an action as a file and `kick`s `hqlake apply --if-idle`, which exits at once
when a run holds the home; the action then waits for the next run, whose score stage applies
pending actions first (`apply_pending`), or for an explicit `hqlake apply`.

    <actions_dir>/pending/<id>.json   waiting (written atomically, 0600)
    <actions_dir>/applied/<id>.json   the record + state applied, applied_at, result
    <actions_dir>/refused/<id>.json   the record + state refused, refused_at, reason
    <actions_dir>/.apply.lock         one `apply` at a time (flock), on any runtime

An action records `submitted_at` (UTC, to the millisecond): the `now` its step is judged
at, so an appeal enqueued inside its window stays inside it however late it is applied; and
who (`by`, `role`, `scope`: the portal's principal).

Applied once. Each action's step writes its event with `at` = its `submitted_at` (a
signature or a reopening: by its person after it), so before applying, `_already` asks the
warehouse whether that event exists: an apply that crashed between the warehouse write and
the move of the file finds it and records the action applied (scoring its dates again,
which is idempotent) instead of writing it twice; a file left in pending/ while its
applied/ or refused/ twin exists (a crash between the two renames) is just removed.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import json
import logging
import os
import secrets
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from contracts.errors import OperatorError
from contracts.timezone import TZ

if TYPE_CHECKING:
    from clickhouse_connect.driver.client import Client

    from infra.settings import Settings

log = logging.getLogger(__name__)

STATES = ("pending", "applied", "refused")
ROLES = ("city", "county", "org")
MAX_TEXT = 4000  # characters; the steps refuse more than contracts/appeals.yaml allows
MAX_NAME = 200
MAX_ROUNDS = 20  # apply loops while actions keep arriving, at most this many times


class ActionRefused(OperatorError):
    """An action that cannot be enqueued as given (kind, payload, principal)."""


# ---- payloads -------------------------------------------------------------------------------


class _Payload(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


_Name = Field(min_length=1, max_length=MAX_NAME)
_Text = Field(min_length=1, max_length=MAX_TEXT)


def _iso_date(value: str) -> str:
    dt.date.fromisoformat(value)
    if len(value) != 10:
        raise ValueError("a date is YYYY-MM-DD")
    return value


class AppealSubmit(_Payload):
    org_code: str = _Name
    date: str
    dataset: str = Field(max_length=MAX_NAME)  # "" for an organisation-day rule's result
    rule_id: str = _Name
    reason: str = _Text
    _date = field_validator("date")(_iso_date)


class AppealDecide(_Payload):
    appeal_id: str = _Name
    decision: Literal["approved", "rejected"]
    comment: str = _Text


class WaiverAdd(_Payload):
    rule: str = _Name
    start: str
    end: str | None = None
    reason: str = _Text
    org_code: str | None = Field(default=None, max_length=MAX_NAME)
    peer_group: str | None = Field(default=None, max_length=MAX_NAME)
    _dates = field_validator("start", "end")(lambda v: None if v is None else _iso_date(v))


class WaiverEnd(_Payload):
    waiver_id: str = _Name
    end: str
    reason: str = _Text
    _date = field_validator("end")(_iso_date)


def _iso_month(value: str) -> str:
    if len(value) != 7:
        raise ValueError("a month is YYYY-MM")
    dt.date.fromisoformat(value + "-01")
    return value


class AcceptanceSign(_Payload):
    month: str
    _month = field_validator("month")(_iso_month)


class AcceptanceReopen(_Payload):
    month: str
    reason: str = _Text
    _month = field_validator("month")(_iso_month)


KINDS: dict[str, type[_Payload]] = {
    "appeal_submit": AppealSubmit,
    "appeal_decide": AppealDecide,
    "waiver_add": WaiverAdd,
    "waiver_end": WaiverEnd,
    "acceptance_sign": AcceptanceSign,
    "acceptance_reopen": AcceptanceReopen,
}
# who may ask for each kind (the portal checks first; apply checks again)
ALLOWED_ROLES = {
    "appeal_submit": ("org",),
    "appeal_decide": ("city",),
    "waiver_add": ("city",),
    "waiver_end": ("city",),
    "acceptance_sign": ("city",),
    "acceptance_reopen": ("city",),
}


_VERBS = {
    "appeal_submit": "submit an appeal",
    "appeal_decide": "decide appeals",
    "waiver_add": "add waivers",
    "waiver_end": "end waivers",
    "acceptance_sign": "sign a month's acceptance",
    "acceptance_reopen": "reopen a month's acceptance",
}


# ---- files ----------------------------------------------------------------------------------


def _folder(actions_dir: Path, state: str) -> Path:
    from infra.home import private_dir

    return private_dir(actions_dir / state)


def _write(path: Path, record: dict[str, Any]) -> None:
    """`record` as JSON at `path`, atomically (a temporary file renamed over it), 0600."""
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as out:
        json.dump(record, out, ensure_ascii=False, default=str, indent=1)
        out.flush()
        os.fsync(out.fileno())
    tmp.replace(path)


def _read(path: Path) -> dict[str, Any] | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def _action_id(now: dt.datetime) -> str:
    return f"a{now:%Y%m%dT%H%M%S%f}-{secrets.token_hex(4)}"


def _submitted(record: dict[str, Any]) -> dt.datetime:
    return dt.datetime.fromisoformat(record["submitted_at"])


def enqueue(
    actions_dir: Path,
    kind: str,
    payload: dict[str, Any],
    *,
    by: str,
    role: str,
    scope: str,
    now: dt.datetime | None = None,
) -> str:
    """Queue `kind` with `payload` asked by `by` (role city|county|org, scope "" | county
    code | organisation code) and return the action id. The payload's types and sizes are
    checked here (ActionRefused says what is wrong); the step checks the rest when applied.
    `now` is for tests and replays: the portal never passes it (an appeal would be
    backdated into its window)."""
    model = KINDS.get(kind)
    if model is None:
        raise ActionRefused(f"{kind!r} is not an action; one of {', '.join(KINDS)}")
    if role not in ROLES:
        raise ActionRefused(f"{role!r} is not a role; one of {', '.join(ROLES)}")
    if not isinstance(by, str) or not by.strip() or len(by) > MAX_NAME:
        raise ActionRefused("say who acts (a user name of at most 200 characters)")
    if not isinstance(scope, str) or len(scope) > MAX_NAME:
        raise ActionRefused("the scope is a county or organisation code")
    try:
        checked = model.model_validate(payload)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or kind
        raise ActionRefused(f"{kind} {where}: {first['msg']}") from None
    at = (now or dt.datetime.now(dt.UTC)).astimezone(dt.UTC)
    at = at.replace(microsecond=at.microsecond // 1000 * 1000)  # the warehouse keeps ms
    with _ENQUEUE_LOCK:
        at = _free_instant(actions_dir, at)
        action_id = _action_id(at)
        record = {
            "id": action_id,
            "kind": kind,
            "payload": checked.model_dump(),
            "by": by.strip(),
            "role": role,
            "scope": scope,
            "submitted_at": at.isoformat(),
        }
        _write(_folder(actions_dir, "pending") / f"{action_id}.json", record)
    return action_id


_ENQUEUE_LOCK = threading.Lock()


def _free_instant(actions_dir: Path, at: dt.datetime) -> dt.datetime:
    """The first millisecond from `at` on at which no action of the folder was submitted.
    Actions are applied in (submitted_at, id) order and the id ends in random hex, so two
    submitted in one millisecond (a double click, a script) would be applied in a random
    order, and `_already` tells events apart by that instant. Two processes enqueuing in
    the same millisecond can still tie: their order is then as arbitrary as their race."""

    def taken(instant: dt.datetime) -> bool:
        pattern = f"a{instant:%Y%m%dT%H%M%S%f}-*.json"
        return any(next((actions_dir / s).glob(pattern), None) for s in STATES)

    while taken(at):
        at += dt.timedelta(milliseconds=1)
    return at


def actions(actions_dir: Path, by: str | None = None) -> list[dict[str, Any]]:
    """Every action (of `by` when given), newest first: id, kind, payload, by, role, scope,
    submitted_at (a datetime), state pending|applied|refused, reason, result."""
    out: dict[str, dict[str, Any]] = {}
    for state in ("pending", "refused", "applied"):  # a finished twin wins over pending
        folder = actions_dir / state
        if not folder.is_dir():
            continue
        for path in folder.glob("a*.json"):
            record = _read(path)
            if record is None or (by is not None and record.get("by") != by):
                continue
            record.setdefault("state", state)
            record.setdefault("reason", "")
            record.setdefault("result", None)
            record["submitted_at"] = _submitted(record)
            out[record["id"]] = record
    return sorted(out.values(), key=lambda r: (r["submitted_at"], r["id"]), reverse=True)


def pending(actions_dir: Path) -> list[dict[str, Any]]:
    """The pending actions in submission order (those finished already left out)."""
    folder = actions_dir / "pending"
    if not folder.is_dir():
        return []
    done = {p.name for state in ("applied", "refused") for p in (actions_dir / state).glob("*")}
    out = []
    for path in folder.glob("a*.json"):
        if path.name in done:  # a crash between writing the outcome and removing this
            path.unlink(missing_ok=True)
            continue
        record = _read(path)
        if record is not None:
            out.append(record)
    return sorted(out, key=lambda r: (_submitted(r), r["id"]))


# ---- applying -------------------------------------------------------------------------------


def _ms(at: dt.datetime) -> int:
    return round(at.timestamp() * 1000)


def _already(ch: Client, record: dict[str, Any]) -> bool:
    """Whether the warehouse holds the event this action writes (see the module's doc)."""
    kind, p, at = record["kind"], record["payload"], _submitted(record)
    params = {"by": record["by"], "ms": _ms(at)}
    if kind == "appeal_submit":
        sql = (
            "SELECT count() FROM dq.appeal_event WHERE event = 'submitted' AND actor = {by:String}"
            " AND toUnixTimestamp64Milli(at) = {ms:Int64} AND org_code = {org:String}"
            " AND business_date = {d:Date} AND rule_id = {rule:String}"
        )
        params |= {
            "org": p["org_code"],
            "d": dt.date.fromisoformat(p["date"]),
            "rule": p["rule_id"],
        }
    elif kind == "appeal_decide":
        sql = (
            "SELECT count() FROM dq.appeal_event WHERE event IN ('approved', 'rejected')"
            " AND appeal_id = {id:String} AND actor = {by:String}"
            " AND toUnixTimestamp64Milli(at) = {ms:Int64}"
        )
        params["id"] = p["appeal_id"]
    elif kind == "waiver_add":
        sql = (
            "SELECT count() FROM dq.waiver_event WHERE event = 'added' AND actor = {by:String}"
            " AND toUnixTimestamp64Milli(at) = {ms:Int64} AND rule = {rule:String}"
        )
        params["rule"] = p["rule"]
    elif kind == "waiver_end":
        sql = (
            "SELECT count() FROM dq.waiver_event WHERE event = 'ended' AND waiver_id = {id:String}"
            " AND actor = {by:String} AND toUnixTimestamp64Milli(at) = {ms:Int64}"
        )
        params["id"] = p["waiver_id"]
    elif kind == "acceptance_sign":
        sql = (
            "SELECT count() FROM dq.acceptance_signature WHERE month = {m:Date}"
            " AND signer = {by:String} AND toUnixTimestamp64Milli(signed_at) >= {ms:Int64}"
        )
        params["m"] = dt.date.fromisoformat(p["month"] + "-01")
    else:  # acceptance_reopen
        sql = (
            "SELECT count() FROM dq.acceptance_reopening WHERE month = {m:Date}"
            " AND actor = {by:String} AND toUnixTimestamp64Milli(at) >= {ms:Int64}"
        )
        params["m"] = dt.date.fromisoformat(p["month"] + "-01")
    return bool(ch.query(sql, parameters=params).result_rows[0][0])


def _not_allowed(record: dict[str, Any]) -> str | None:
    kind, role = record["kind"], record.get("role")
    if kind not in KINDS:
        return f"{kind!r} is not an action"
    if role not in ALLOWED_ROLES[kind]:
        return f"{record['by']} ({role} user) may not {_VERBS[kind]}: a city officer's action"
    if kind == "appeal_submit" and record["payload"]["org_code"] != record.get("scope"):
        return (
            f"{record['by']} ({record.get('scope')}) may appeal only its own organisation's"
            f" results, not {record['payload']['org_code']}'s"
        )
    return None


def _jsonable(value: Any) -> Any:
    return json.loads(json.dumps(value, default=str))


def _dates(value: Any) -> list[dt.date]:
    return [v if isinstance(v, dt.date) else dt.date.fromisoformat(str(v)) for v in value or ()]


def _apply(record: dict[str, Any]) -> tuple[dict[str, Any], list[dt.date], list[dt.date]]:
    """Run the action's step at its submitted time: (result, dates scored again, months)."""
    from infra import appeals, pipeline

    kind, p, now = record["kind"], record["payload"], _submitted(record).astimezone(TZ)
    by = record["by"]
    if kind == "appeal_submit":
        day = dt.date.fromisoformat(p["date"])
        row = appeals.submit_appeal(
            p["org_code"], day, p["dataset"], p["rule_id"], p["reason"], by, now=now
        )
        return row, [day], []
    if kind == "appeal_decide":
        row = appeals.decide_appeal(p["appeal_id"], p["decision"], p["comment"], by, now=now)
        return row, [row["business_date"], *_dates(row.get("dates_scored_again"))], []
    if kind == "waiver_add":
        row = appeals.add_waiver(
            p["rule"],
            dt.date.fromisoformat(p["start"]),
            dt.date.fromisoformat(p["end"]) if p.get("end") else None,
            p["reason"],
            by,
            org_code=p.get("org_code"),
            peer_group=p.get("peer_group"),
            now=now,
        )
        return row, _dates(row.get("dates_scored_again")), []
    if kind == "waiver_end":
        end = dt.date.fromisoformat(p["end"])
        row = appeals.end_waiver(p["waiver_id"], end, p["reason"], by, now=now)
        return row, _dates(row.get("dates_scored_again")), []
    month = dt.date.fromisoformat(p["month"] + "-01")
    if kind == "acceptance_sign":
        signed = pipeline.sign_acceptance(month, by)
        result = {
            "month": p["month"],
            "version": signed.version,
            "organisations": len(signed.rows),
            "passed": sum(1 for r in signed.rows if r["passed"]),
            "subsidy_yuan": sum(s["amount_yuan"] for s in signed.subsidies),
        }
        return result, [], [month]
    row = pipeline.reopen_acceptance(month, by, p["reason"])
    return row, [], [month]


def _recover(ch: Client, record: dict[str, Any]) -> tuple[dict[str, Any], list[dt.date]]:
    """An action whose event is already in the warehouse: score its dates again (idempotent:
    the crash may have come before the re-scoring) and say so."""
    from expectations.programme.rescore import rescore
    from infra.pipeline import org_registry

    kind, p = record["kind"], record["payload"]
    if kind == "appeal_decide":
        day = ch.query(
            "SELECT any(business_date) FROM dq.appeal_event WHERE appeal_id = {id:String}",
            parameters={"id": p["appeal_id"]},
        ).result_rows[0][0]
        done = rescore(ch, org_registry(), day, day)
    elif kind == "waiver_add":
        end = dt.date.fromisoformat(p["end"]) if p.get("end") else None
        done = rescore(ch, org_registry(), dt.date.fromisoformat(p["start"]), end)
    elif kind == "waiver_end":
        start = dt.date.fromisoformat(p["end"]) + dt.timedelta(days=1)
        done = rescore(ch, org_registry(), start, None)
    else:
        return {"recovered": True}, []
    public = done.public()
    return {"recovered": True, **public}, _dates(public.get("dates_scored_again"))


@contextlib.contextmanager
def _apply_lock(actions_dir: Path, wait: bool) -> Iterator[bool]:
    """One `apply` at a time on a deployment (the home lock covers the embedded runtime
    only); yields False when another holds it and `wait` is False."""
    from infra.home import private_dir

    fd = os.open(private_dir(actions_dir) / ".apply.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        os.close(fd)


def _finish(actions_dir: Path, record: dict[str, Any], state: str, **extra: Any) -> None:
    record = record | {"state": state, f"{state}_at": dt.datetime.now(dt.UTC).isoformat()}
    record |= {k: _jsonable(v) for k, v in extra.items()}
    _write(_folder(actions_dir, state) / f"{record['id']}.json", record)
    (actions_dir / "pending" / f"{record['id']}.json").unlink(missing_ok=True)


def apply_pending(settings: Settings, *, publish: bool = True) -> dict[str, Any]:
    """Apply every pending action in submission order, each once, then re-publish the
    snapshot with the dates scored again; loops until none is pending (an action enqueued
    meanwhile is applied too). Opens the warehouse (the caller's session when there is one:
    the score stage and tests). Returns {applied, refused, recovered, dates, months,
    generation, seconds}."""
    from contracts.loader import ContractError
    from infra.pipeline import _warehouse
    from infra.runtime import HomeError, ServiceError

    started = time.perf_counter()
    actions_dir = settings.actions_dir
    summary: dict[str, Any] = {"applied": [], "refused": [], "recovered": []}
    dates: set[dt.date] = set()
    months: set[dt.date] = set()
    with _apply_lock(actions_dir, wait=True):
        for _ in range(MAX_ROUNDS):
            queue = pending(actions_dir)
            if not queue:
                break
            ch = _warehouse()
            for record in queue:
                why = _not_allowed(record)
                if why is not None:
                    _finish(actions_dir, record, "refused", reason=why)
                    summary["refused"].append(record["id"])
                    continue
                if _already(ch, record):
                    result, again = _recover(ch, record)
                    dates |= set(again)
                    _finish(actions_dir, record, "applied", result=result)
                    summary["recovered"].append(record["id"])
                    continue
                try:
                    result, again, touched = _apply(record)
                except (HomeError, ServiceError, ContractError):
                    raise  # the deployment's trouble, not the action's: it stays pending
                except OperatorError as exc:  # AppealRefused, SignoffRefused, month not over
                    _finish(actions_dir, record, "refused", reason=str(exc))
                    summary["refused"].append(record["id"])
                    continue
                dates |= set(again)
                months |= {d.replace(day=1) for d in again} | set(touched)
                _finish(actions_dir, record, "applied", result=result)
                summary["applied"].append(record["id"])
        generation = None
        if publish and (summary["applied"] or summary["recovered"]):  # a refusal changes nothing
            generation = publish_snapshot(settings, sorted(dates), months=sorted(months))
    return summary | {
        "dates": [d.isoformat() for d in sorted(dates)],
        "months": [f"{m:%Y-%m}" for m in sorted(months)],
        "generation": generation,
        "seconds": round(time.perf_counter() - started, 3),
    }


def publish_snapshot(
    settings: Settings,
    dates: list[dt.date] | None = None,
    *,
    months: list[dt.date] | tuple[dt.date, ...] = (),
) -> str:
    """Export the portal's snapshot of `dates` (None: every scored date) from the open
    warehouse into `settings.snapshot_dir`; returns the generation."""
    from expectations.publish.snapshot import export_snapshot
    from infra.home import private_dir
    from infra.pipeline import _warehouse, org_registry

    folder = private_dir(settings.snapshot_dir)
    return export_snapshot(_warehouse(), org_registry(), folder, dates, months=months)


def apply_if_idle(settings: Settings) -> dict[str, Any] | None:
    """`hqlake apply --if-idle`: apply now unless another process holds the home or another
    apply runs (then None at once: the actions wait for the next run or apply)."""
    from infra.runtime import HomeError, hold_home

    with _apply_lock(settings.actions_dir, wait=False) as got:
        if not got:
            return None
    try:
        hold_home(settings)
    except HomeError:
        return None
    return apply_pending(settings)


def kick(settings: Settings) -> subprocess.Popen | None:
    """Start `hqlake apply --if-idle` detached (its own session, output appended to
    actions_dir/apply.log) and return at once (a daemon thread reaps it); None when it could
    not be started (the actions wait for the next run)."""
    from infra.home import private_dir

    folder = private_dir(settings.actions_dir)
    env = os.environ | {"HQLAKE_HOME": str(settings.home)}
    try:
        with (folder / "apply.log").open("ab") as out:
            (folder / "apply.log").chmod(0o600)
            process = subprocess.Popen(  # our own interpreter and module, no shell
                [sys.executable, "-m", "infra.cli", "apply", "--if-idle"],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=out,
                env=env,
                start_new_session=True,
                close_fds=True,
            )
    except OSError as exc:
        log.warning("could not start hqlake apply: %s; the actions wait for the next run", exc)
        return None
    # reaped when it ends, so a long-running portal collects no zombie processes
    threading.Thread(target=process.wait, name="hqlake-apply-reaper", daemon=True).start()
    return process
