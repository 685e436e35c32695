"""The stages of the daily run as plain functions: the Airflow tasks and the CLI call these.

    plan_stage(day, inbox)              which organisations sent files for the day
    ingest_stage(day, inbox, org_codes) a group of organisations' batches (or all) -> raw
    late_stage(day, inbox)              late-arrivals pass over the previous business dates
    validate_stage(day)                 every rule on the current batches -> dq.rule_result
    score_stage(day)                    scores, ranks, failure deltas -> dq.score_*
    build_stage(dates)                  dbt build of the marts
    report_stage(day)                   city and organisation HTML pages
    feedback_stage(day, org_code)       e-mails (or reminders), once per content
    feedback_group_stage(dates, day, org_codes, expect_upload)
                                        one mapped feedback task: a group's e-mails of dates
    suggest_weights(first, last)        weight suggestions from a period's results (CLI only)

Every stage returns a small JSON-able summary (an Airflow XCom, the CLI's output) with the
wall time it took. Quality problems are data: they end up in dq tables, reports and e-mails
and never raise. What raises is infrastructure trouble (storage, warehouse, SMTP relay) or
a stage run out of order, so that the scheduler retries or the operator sees it.

Late files. A file that arrives after the run of its business date is picked up by the next
daily run: every run re-ingests the `HQLAKE_LATE_DAYS` (`Settings.late_days`, default 7,
longer than the Spring Festival or National Day break that delays county deadlines)
business dates before its own.
Ingestion is fingerprint-idempotent, so a date with nothing new costs one inbox listing; a
date with a new batch version is validated, scored, reported and fed back again in the same
run (and the e-mail goes out again only if the organisation's results changed).

The embedded runtime (SeaweedFS + chDB) is opened once per process with `session()` and
shared by the stages run in it (`hqlake run` runs the whole DAG in one process); without an
open session a stage opens its own. The session's warehouse client is the one handle every
stage passes to the libraries (`_warehouse()`; a warehouse-only stage does not start
SeaweedFS for it). The `hqlake` commands call these same functions. Heavy modules (Great
Expectations, dbt, polars) are imported inside the stages, never when this module is
imported (DAG files import it).
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from infra.schedule import interval_date
from infra.settings import settings

if TYPE_CHECKING:
    from clickhouse_connect.driver.client import Client

    from contracts.registry import Registry
    from expectations.programme.signoff import Signature
    from expectations.rules.rulebase import RuleBase
    from infra.runtime import Runtime
    from ingest.outcomes import FileResult
    from ingest.pipeline import Ingestor
    from ingest.readers import ReadLimits

log = logging.getLogger(__name__)

_ACTIVE: Runtime | None = None


@contextlib.contextmanager
def session(rt: Runtime | None = None) -> Iterator[Runtime]:
    """The runtime of this process: the open one, else `rt` (an already running runtime,
    e.g. a test's), else one opened here; stages inside share it, and it is closed (when
    opened here) on the way out."""
    global _ACTIVE
    if _ACTIVE is not None:
        yield _ACTIVE
        return
    with contextlib.ExitStack() as stack:
        if rt is None:
            from infra.runtime import runtime

            rt = stack.enter_context(runtime())
        _ACTIVE = rt
        try:
            yield rt
        finally:
            _ACTIVE = None


def _warehouse() -> Client:
    """The open session's warehouse client, else the settings' one (the same chDB client;
    a server connection when production)."""
    if _ACTIVE is not None:
        return _ACTIVE.ch
    from infra.runtime import warehouse

    return warehouse(settings())


def inbox_url(inbox: str | None = None) -> str:
    """The inbox given, else `HQLAKE_INBOX`, else the inbox bucket `s3://<HQLAKE_INBOX_BUCKET>`."""
    config = settings()
    return inbox or config.inbox or f"s3://{config.inbox_bucket}"


def business_date(
    value: str | dt.date | None, interval_start: dt.datetime | None = None
) -> dt.date:
    """The business date of a run: the one asked for, else the start of the run's data
    interval in the standard's time zone (infra.schedule: the run of D+1 covers date D)."""
    if isinstance(value, dt.date):
        return value
    if value:
        return dt.date.fromisoformat(value)
    if interval_start is None:
        raise ValueError("no business date: give a date or a data interval start")
    return interval_date(interval_start)


def org_registry() -> Registry:
    """The organisation registry of the settings (HQLAKE_ORG_REGISTRY, else the sample city's)."""
    from contracts.registry import load_registry

    return load_registry(settings().org_registry)


def _seconds(started: float) -> float:
    return round(time.perf_counter() - started, 3)


# ---- ingestion --------------------------------------------------------------------------


def ingestor(
    rt: Runtime, registry: Registry | None = None, limits: ReadLimits | None = None
) -> Ingestor:
    """The Ingestor on the runtime's clients, lake bucket and read limits (or `limits`) with
    the registry (or `registry`) and the contracts: the stages, the CLI and the tests build
    it here."""
    from contracts.loader import contracts
    from ingest.pipeline import Ingestor

    return Ingestor(
        rt.s3,
        rt.ch,
        lake_bucket=rt.settings.lake_bucket,
        limits=limits or rt.settings.read_limits,
        registry=registry or org_registry(),
        contract_set=contracts(),
    )


def _ingest(
    rt: Runtime,
    inbox: str,
    day: dt.date,
    org_codes: Sequence[str] | None,
    registry: Registry | None = None,
) -> list[FileResult]:
    return ingestor(rt, registry).ingest(inbox, day, org_codes)


def ingest(
    day: dt.date,
    inbox: str | None = None,
    org_code: str | None = None,
    registry: Registry | None = None,
) -> list[FileResult]:
    """Every file's outcome of ingesting `day` (one organisation or all): `ingest_stage`'s
    work, which `hqlake ingest` prints file by file."""
    with session() as rt:
        codes = None if org_code is None else [org_code]
        return _ingest(rt, inbox_url(inbox), day, codes, registry)


def _ingest_summary(results: list[FileResult]) -> dict[str, Any]:
    return {
        "files": dict(Counter(r.status for r in results)),
        "rows_loaded": sum(r.rows_loaded for r in results),
        "rows_quarantined": sum(r.rows_quarantined for r in results),
        "new_versions": sorted(
            {
                f"{r.org_code}/{r.dataset}/v{r.batch_version}"
                for r in results
                if r.status == "loaded"
            }
        ),
        "refused": [
            {"org_code": r.org_code, "dataset": r.dataset, "file": r.file, "reason": r.reason}
            for r in results
            if r.status == "rejected"
        ],
    }


def _has_unseen_files(rt: Runtime, inbox: str, day: dt.date) -> bool:
    """Whether the inbox holds a file of `day` that ingestion has not recorded with the same
    path, size and receive time: only then is the date read and fingerprinted again, so a
    late-arrivals pass over quiet dates costs one listing each."""
    from ingest.inbox import list_inbox

    files = list_inbox(inbox, day, rt.s3)
    if not files:
        return False
    seen = set(
        rt.ch.query(
            "SELECT file, size, toUnixTimestamp(received_at) FROM dq.ingest_file FINAL"
            " WHERE business_date = {d:Date}",
            parameters={"d": day},
        ).result_rows
    )
    return any((f.path, f.size, int(f.received_at.timestamp())) not in seen for f in files)


def plan_stage(day: dt.date, inbox: str | None = None) -> dict[str, Any]:
    """The organisations with files in the inbox for `day`."""
    from ingest.inbox import list_inbox

    started = time.perf_counter()
    inbox = inbox_url(inbox)
    with session() as rt:
        files = list_inbox(inbox, day, rt.s3)
    uploaded = sorted({f.org_code for f in files})
    return {
        "business_date": day.isoformat(),
        "inbox": inbox,
        "uploaded": uploaded,
        "groups": org_groups(uploaded),
        "files": len(files),
        "seconds": _seconds(started),
    }


def org_groups(org_codes: Sequence[str]) -> list[list[str]]:
    """`org_codes` cut into the groups of one mapped ingest or feedback task each
    (`Settings.org_group_size`: one organisation a task on a ClickHouse server, all in one
    on chDB)."""
    size = settings().org_group_size or len(org_codes) or 1
    return [list(org_codes[i : i + size]) for i in range(0, len(org_codes), size)]


def feedback_targets(day: dt.date, uploaded: list[str]) -> list[dict[str, Any]]:
    """The feedback tasks of `day`: the organisations active on it in `org_groups`, each
    with those of them the inbox listing showed files of (`expect_upload`, see
    feedback_group_stage)."""
    active = sorted(o.org_code for o in org_registry().active(day))
    return [
        {"org_codes": group, "expect_upload": [c for c in group if c in uploaded]}
        for group in org_groups(active)
    ]


def ingest_stage(
    day: dt.date, inbox: str | None = None, org_codes: Sequence[str] | None = None
) -> dict[str, Any]:
    """Ingest the batches of `day` of the organisations `org_codes` (one mapped task's
    group, see `org_groups`), or of all."""
    started = time.perf_counter()
    with session() as rt:
        results = _ingest(rt, inbox_url(inbox), day, org_codes)
    return {
        "business_date": day.isoformat(),
        "org_codes": None if org_codes is None else list(org_codes),
        **_ingest_summary(results),
        "seconds": _seconds(started),
    }


def late_stage(day: dt.date, inbox: str | None = None, days: int | None = None) -> dict[str, Any]:
    """Re-ingest the `days` business dates before `day`; returns those that changed."""
    started = time.perf_counter()
    days = settings().late_days if days is None else days
    changed, per_date = [], {}
    with session() as rt:
        for back in range(days, 0, -1):
            earlier = day - dt.timedelta(days=back)
            if not _has_unseen_files(rt, inbox_url(inbox), earlier):
                continue
            results = _ingest(rt, inbox_url(inbox), earlier, None)
            summary = _ingest_summary(results)
            if summary["new_versions"]:
                changed.append(earlier.isoformat())
                per_date[earlier.isoformat()] = summary
    return {
        "business_date": day.isoformat(),
        "dates_checked": days,
        "changed": changed,
        "ingested": per_date,
        "seconds": _seconds(started),
    }


# ---- warehouse stages ----------------------------------------------------------------------


def validate_stage(
    day: dt.date, datadocs: bool = True, rb: RuleBase | None = None
) -> dict[str, Any]:
    """Validate `day` (one run over every current batch of the date); Data Docs optional;
    `rb` another rule base than the contracts' (the bench's comparison without v1.1's rules)."""
    from expectations.validate import validate_date

    started = time.perf_counter()
    config = settings()
    home = config.home
    summary = validate_date(
        _warehouse(),
        org_registry(),
        day,
        rb=rb,
        gx_dir=home / "gx" / day.isoformat() if datadocs else None,
        datadocs_dir=home / "reports" / day.isoformat() / "datadocs" if datadocs else None,
        # chDB is one session per process; a server keeps the one-query form (a session's
        # temporary tables need every query of a validation on the same server)
        temporary_tables=config.embedded_warehouse,
    )
    return summary.public() | {"seconds_total": _seconds(started)}


def score(day: dt.date, config_path: Path | None = None) -> list[dict[str, Any]]:
    """The scored and ranked rows of `day` (contracts/scoring.yaml, or `config_path`) with the
    approved appeals and waivers in force: `score_stage`'s work, which `hqlake score` prints
    as a league table."""
    from expectations.programme.history import load_exemptions
    from expectations.scoring.config import load_scoring_config
    from expectations.scoring.store import score_date

    ch = _warehouse()
    config = load_scoring_config(config_path)
    return score_date(ch, org_registry(), day, config, load_exemptions(ch))


def score_stage(day: dt.date) -> dict[str, Any]:
    """Apply the portal's pending actions (infra/actions.py: appeals, decisions, waivers and
    signatures made while the last run held the warehouse), then score and rank the current
    validation run of `day`."""
    from infra.actions import apply_pending

    started = time.perf_counter()
    actions = apply_pending(settings())
    rows = score(day)
    composites = [r["composite"] for r in rows if r["composite"] is not None]
    return {
        "business_date": day.isoformat(),
        "organisations": len(rows),
        "ranked": sum(r["rank"] is not None for r in rows),
        "mean_composite": round(sum(composites) / len(composites), 2) if composites else None,
        "new_failures": sum(r["new_failures"] for r in rows),
        "resolved_failures": sum(r["resolved_failures"] for r in rows),
        "actions": {
            k: len(actions[k]) if isinstance(actions[k], list) else actions[k]
            for k in ("applied", "refused", "recovered", "dates")
        },
        "seconds": _seconds(started),
    }


def build_stage(dates: list[dt.date] | None = None) -> dict[str, Any]:
    """dbt build of every mart. The models replace the business dates they find in the
    current batches (incremental by date), so one build covers `dates` and any late ones."""
    from infra.dbtrun import build

    started = time.perf_counter()
    result = build(exclude_resource_types=("unit_test",))
    if not result.success:
        failed = [f"{n.name}: {n.message}" for n in result.failures()]
        raise RuntimeError(f"dbt build failed: {result.error or ''} {failed}".strip())
    public = result.public()
    public.pop("nodes")
    return public | {
        "business_dates": [d.isoformat() for d in dates or []],
        "seconds": _seconds(started),
    }


def report(day: dt.date, out_dir: Path | None = None) -> dict[str, Any]:
    """The pages of `day` under `out_dir` (default HQLAKE_HOME/reports): `report_stage`'s
    work, whose paths `hqlake report` prints."""
    from expectations.publish.report import write_reports

    return write_reports(_warehouse(), org_registry(), day, out_dir or settings().reports_dir)


def report_stage(day: dt.date) -> dict[str, Any]:
    """The city page and one page per organisation of `day` (kept on disk for officers),
    then the portal's snapshot of `day` and the dates scored again since the last
    publication (a late correction's, an action's), published as a new generation."""
    from infra.actions import publish_snapshot

    started = time.perf_counter()
    written = report(day)
    exported = time.perf_counter()
    generation = publish_snapshot(settings(), _unpublished(day))
    return {
        "business_date": day.isoformat(),
        "city": str(written["city"]),
        "organisations": len(written["orgs"]),
        "snapshot": generation,
        "snapshot_seconds": _seconds(exported),
        "seconds": _seconds(started),
    }


def _unpublished(day: dt.date) -> list[dt.date] | None:
    """`day` and every date whose latest scoring is newer than the current snapshot's
    publication (None, every date, when nothing is published yet)."""
    from expectations.publish.snapshot import Snapshot

    snap = Snapshot.open(settings().snapshot_dir)
    if snap is None:
        return None
    rows = (
        _warehouse()
        .query(
            "SELECT DISTINCT business_date FROM dq.score_run"
            " WHERE toUnixTimestamp64Milli(computed_at) >= {ms:Int64}",
            parameters={"ms": int(snap.published_at.timestamp() * 1000)},
        )
        .result_rows
    )
    return sorted({day, *(r[0] for r in rows)})


class FeedbackFailed(RuntimeError):
    """Some organisations' feedback could not be sent; the others' was (`failures`: one
    line per organisation, `summaries`: what each date's stage did)."""

    def __init__(self, failures: list[str], summaries: list[dict[str, Any]]) -> None:
        super().__init__("feedback not sent: " + "; ".join(failures))
        self.failures, self.summaries = failures, summaries


def feedback_stage(
    day: dt.date, org_code: str | None = None, expect_upload: bool = False
) -> dict[str, Any]:
    """Send the feedback e-mails of `day` whose content changed (one organisation or all).

    Without `HQLAKE_SMTP_HOST` the messages go to a local SMTP sink started for the stage
    (the outbox under HQLAKE_HOME). `expect_upload`: the inbox listing of the run showed files
    of `org_code`; when none of them was ingested (its ingest task failed) this raises rather
    than send a reminder that nothing was received."""
    codes = None if org_code is None else [org_code]
    expected = codes if expect_upload and codes else []
    return feedback_group_stage([day], day, codes, expected)[0]


def feedback_group_stage(
    dates: Sequence[dt.date],
    day: dt.date,
    org_codes: Sequence[str] | None,
    expect_upload: Sequence[str] = (),
) -> list[dict[str, Any]]:
    """`feedback_stage` of each of `dates` for the organisations `org_codes` (one mapped
    feedback task's group, see `org_groups`; None: every active one), one summary per date.
    `expect_upload`: those the inbox listing of the run showed files of for `day`.

    One organisation's failure stops no other's e-mail: the others are sent (and recorded
    in the ledger), then FeedbackFailed names the ones that failed, so the task fails and its
    retry sends only what is still unsent."""
    from expectations.publish.feedback import send_feedback
    from infra import mail

    ch = _warehouse()
    config = settings()
    registry = org_registry()
    summaries, failures = [], []
    with contextlib.ExitStack() as stack:
        smtp = mail.smtp_config()
        if not smtp.host:
            sink = stack.enter_context(mail.SmtpSink(config.outbox))
            smtp = sink.config()
        for d in dates:
            started = time.perf_counter()
            codes = None if org_codes is None else list(org_codes)
            missing = _not_ingested(ch, d, list(expect_upload)) if d == day else []
            for code in missing:
                failures.append(
                    f"{code} sent files for {d} but none was ingested: re-run its ingest task"
                )
            if missing:
                codes = [c for c in codes or [] if c not in missing]
            outcomes = (
                send_feedback(
                    ch,
                    registry,
                    d,
                    codes,
                    transport=lambda messages: mail.send(messages, smtp),
                    sender=smtp.sender,
                    portal_url=config.portal_url,
                )
                if codes is None or codes
                else []
            )
            failures += [
                f"{o['org_code']} {d}: {o['error']}" for o in outcomes if o["status"] == "failed"
            ]
            summaries.append(
                {
                    "business_date": d.isoformat(),
                    "org_codes": None if org_codes is None else list(org_codes),
                    "outcomes": outcomes,
                    "sent": sum(o["status"] == "sent" for o in outcomes),
                    "seconds": _seconds(started),
                }
            )
    if failures:
        raise FeedbackFailed(failures, summaries)
    return summaries


def _not_ingested(ch: Client, day: dt.date, org_codes: list[str]) -> list[str]:
    """Those of `org_codes` without a file recorded by ingestion for `day`."""
    if not org_codes:
        return []
    seen = {
        code
        for (code,) in ch.query(
            "SELECT DISTINCT org_code FROM dq.ingest_file WHERE business_date = {d:Date}"
            " AND org_code IN {orgs:Array(String)}",
            parameters={"d": day, "orgs": org_codes},
        ).result_rows
    }
    return [c for c in org_codes if c not in seen]


def acceptance(month: dt.date, config_path: Path | None = None) -> list[dict[str, Any]]:
    """Monthly acceptance of every organisation for the month of `month`, with the evidence,
    the approved appeals and waivers in force (`hqlake acceptance`; not a task of the daily
    DAG)."""
    from expectations.programme.history import load_exemptions
    from expectations.scoring.acceptance import acceptance as judge
    from expectations.scoring.config import load_scoring_config

    ch = _warehouse()
    config = load_scoring_config(config_path)
    return judge(ch, org_registry(), month, config, load_exemptions(ch))


def sign_acceptance(month: dt.date, signer: str, config_path: Path | None = None) -> Signature:
    """Judge the month of `month` with the exemptions in force and freeze it as its next
    signed version with the subsidies due (`hqlake acceptance --sign`). A month is signed
    once it is over in the standard's time zone: a signature freezes the month, and days
    not yet uploaded would be frozen as not scored."""
    import calendar

    from contracts.errors import OperatorError
    from contracts.timezone import TZ
    from expectations.programme.config import load_appeals_config
    from expectations.programme.history import load_exemptions
    from expectations.programme.signoff import sign_month
    from expectations.programme.subsidies import load_subsidy_config
    from expectations.scoring.config import load_scoring_config

    last = month.replace(day=calendar.monthrange(month.year, month.month)[1])
    today = dt.datetime.now(TZ).date()
    if last >= today:
        raise OperatorError(
            f"{month:%Y-%m} is not over (today is {today} in {TZ.key}): a month is signed"
            f" from {last + dt.timedelta(days=1)} on"
        )
    ch = _warehouse()
    return sign_month(
        ch,
        org_registry(),
        month,
        signer,
        load_scoring_config(config_path),
        load_subsidy_config(),
        load_exemptions(ch),
        officers=load_appeals_config(),
    )


def reopen_acceptance(month: dt.date, actor: str, reason: str) -> dict[str, Any]:
    """Record the decision to reopen the month's latest signed version (`--reopen`)."""
    from expectations.programme.config import load_appeals_config
    from expectations.programme.signoff import reopen_month

    return reopen_month(_warehouse(), month, actor, reason, officers=load_appeals_config())


def acceptance_signature(month: dt.date) -> Signature | None:
    """The latest signed version of the month of `month`, None when never signed."""
    from expectations.programme.signoff import read_signature

    return read_signature(_warehouse(), month)


def export_acceptance(month: dt.date, path: Path) -> Signature:
    """Write the commission's xlsx of the month's latest signed version (`--export`)."""
    from contracts.errors import OperatorError
    from expectations.publish.acceptance_sheet import write_acceptance_sheet

    signed = acceptance_signature(month)
    if signed is None:
        raise OperatorError(
            f"{month:%Y-%m} is not signed: only a signed month is exported; sign it first"
            " (hqlake acceptance --month M --sign --by NAME)"
        )
    write_acceptance_sheet(signed, path)
    return signed


def suggest_weights(first: dt.date, last: dt.date) -> dict[str, Any]:
    """Per rule over the business dates `first`..`last`: organisations and days failed, rows
    kept out of the marts, the indicators it reaches and a suggested weight with its reason
    (`hqlake rules suggest`; not a task of the daily DAG). Reads only."""
    from expectations.rules.rulebase import rulebase
    from expectations.tuning.config import load_suggestion_config
    from expectations.tuning.suggest import suggest
    from infra.dbtrun import indicator_sources

    return suggest(
        _warehouse(),
        first,
        last,
        rule_base=rulebase(),
        config=load_suggestion_config(),
        indicators=indicator_sources(),
    )
