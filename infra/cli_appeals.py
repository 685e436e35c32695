"""`hqlake appeal submit|decide|list` and `hqlake waiver add|list|end` (upload standard
section 8): each command is one step of infra/appeals.py (one event recorded; after a
decision or a waiver change, every affected date scored again) printed for a person. A
refusal is one line on stderr and exit 2 (AppealRefused is an OperatorError).

Every event is recorded at the real clock: no option sets the time, since whoever runs a
command could otherwise backdate an appeal into its closed window or falsify when a decision
was taken in the append-only history. Tests and replays pass `now=` to infra/appeals.py."""

from __future__ import annotations

import datetime as dt
import json
from enum import StrEnum
from typing import Annotated, Any

import typer


class OutputFormat(StrEnum):
    table = "table"
    json = "json"


class ListFormat(StrEnum):
    table = "table"
    json = "json"
    csv = "csv"


FormatOption = Annotated[OutputFormat, typer.Option("--format")]
ListFormatOption = Annotated[
    ListFormat, typer.Option("--format", help="csv: a spreadsheet-safe file (formulas neutralised)")
]
appeal_app = typer.Typer(
    no_args_is_help=True,
    help="Appeals of failed results (申诉) and the quality officer's decisions.",
)
waiver_app = typer.Typer(
    no_args_is_help=True,
    help="Waivers of a rule for an organisation or a peer group over dates (豁免).",
)


class Decision(StrEnum):
    approve = "approve"
    reject = "reject"


class AppealStatus(StrEnum):
    open = "open"
    approved = "approved"
    rejected = "rejected"


def _date(value: str, option: str) -> dt.date:
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(f"{value!r} is not a date YYYY-MM-DD", param_hint=option) from None


def _line(value: object) -> str:
    from expectations.publish.neutralise import one_line

    return one_line("" if value is None else value)


def _echo_json(value: Any) -> None:
    typer.echo(json.dumps(value, ensure_ascii=False, default=str))


def _echo_csv(rows: list[dict[str, Any]], columns: tuple[str, ...]) -> None:
    """Every value of free text (a hospital's reason) neutralised: a spreadsheet never runs it."""
    from expectations.publish.neutralise import spreadsheet_csv

    text = spreadsheet_csv(columns, ([r[c] for c in columns] for r in rows))
    typer.echo(text, nl=False)


APPEAL_LIST_COLUMNS = (
    "appeal_id",
    "org_code",
    "business_date",
    "dataset",
    "rule_id",
    "batch_version",
    "run_id",
    "status",
    "submitted_by",
    "submitted_at",
    "reason",
    "decided_by",
    "decided_at",
    "comment",
)
WAIVER_LIST_COLUMNS = (
    "waiver_id",
    "rule",
    "org_code",
    "peer_group",
    "start_date",
    "end_date",
    "added_by",
    "added_at",
    "reason",
    "ended_by",
    "ended_at",
    "end_reason",
)


def _echo_listed(rows: list[dict[str, Any]], format: ListFormat, columns: tuple[str, ...]) -> bool:
    """Print `rows` as JSON lines or CSV when `format` asks for one; False for the table,
    which each list command draws its own way."""
    if format is ListFormat.json:
        for r in rows:
            _echo_json(r)
        return True
    if format is ListFormat.csv:
        _echo_csv(rows, columns)
        return True
    return False


def _rescored_lines(row: dict[str, Any]) -> list[str]:
    dates = row["dates_scored_again"]
    months = row["months_accepted_again"]
    return [
        "scored again: " + (", ".join(dates) if dates else "no date (nothing scored is affected)"),
        *(["acceptance computed again: " + ", ".join(months)] if months else []),
    ]


# ---- appeals ---------------------------------------------------------------------------------


@appeal_app.command("submit")
def appeal_submit(
    org: Annotated[str, typer.Option("--org", help="the appealing organisation")],
    date: Annotated[str, typer.Option(help="business date of the result YYYY-MM-DD")],
    dataset: Annotated[str, typer.Option(help="dataset of the result")],
    rule: Annotated[str, typer.Option(help="rule id of the failed result")],
    reason: Annotated[str, typer.Option(help="why the result is wrong")],
    by: Annotated[str, typer.Option(help="who appeals")],
    of: Annotated[
        str | None,
        typer.Option(help="the organisation the result names, when not --org (refused)"),
    ] = None,
    format: FormatOption = OutputFormat.table,
) -> None:
    """Appeal a failed result of the organisation's own batch, within the window."""
    from infra.appeals import submit_appeal

    day = _date(date, "--date")
    row = submit_appeal(org, day, dataset, rule, reason, by, result_org=of)
    if format is OutputFormat.json:
        _echo_json(row)
        return
    typer.echo(
        f"appeal {row['appeal_id']} submitted by {_line(row['actor'])} for {row['org_code']}:"
        f" {row['rule_id']} of {row['dataset']} {row['business_date']} (batch version"
        f" {row['batch_version']}, run {row['run_id']})"
    )
    typer.echo("scored again: no date (an appeal counts once approved)")


@appeal_app.command("decide")
def appeal_decide(
    appeal_id: Annotated[str, typer.Argument(help="the appeal's id (hqlake appeal list)")],
    decision: Annotated[Decision, typer.Option(help="approve or reject")],
    comment: Annotated[str, typer.Option(help="why")],
    by: Annotated[str, typer.Option(help="the quality officer deciding")],
    format: FormatOption = OutputFormat.table,
) -> None:
    """Approve or reject an open appeal; an approval scores every affected date again."""
    from infra.appeals import decide_appeal

    event = "approved" if decision is Decision.approve else "rejected"
    row = decide_appeal(appeal_id, event, comment, by)
    if format is OutputFormat.json:
        _echo_json(row)
        return
    typer.echo(
        f"appeal {appeal_id} {event} by {_line(row['actor'])}: {row['rule_id']} of"
        f" {row['org_code']} {row['dataset']} {row['business_date']}"
        + (" is waived" if event == "approved" else " stays failed")
    )
    if event == "approved":
        for line in _rescored_lines(row):
            typer.echo(line)
    else:
        typer.echo("scored again: no date (a rejected appeal changes no score)")


@appeal_app.command("list")
def appeal_list(
    org: Annotated[str | None, typer.Option("--org", help="one organisation")] = None,
    date: Annotated[str | None, typer.Option(help="one business date YYYY-MM-DD")] = None,
    status: Annotated[AppealStatus | None, typer.Option(help="open, approved or rejected")] = None,
    format: ListFormatOption = ListFormat.table,
) -> None:
    """Appeals with their status, who submitted and decided them, when and why."""
    from infra.appeals import list_appeals

    rows = list_appeals(
        org_code=org,
        day=_date(date, "--date") if date else None,
        status=status.value if status else None,
    )
    if _echo_listed(rows, format, APPEAL_LIST_COLUMNS):
        return
    if not rows:
        typer.echo("no appeals")
    for r in rows:
        decided = (
            f" · {r['status']} by {_line(r['decided_by'])} {r['decided_at']:%Y-%m-%d %H:%M}:"
            f" {_line(r['comment'])}"
            if r["status"] != "open"
            else " · open"
        )
        typer.echo(
            f"{r['appeal_id']}  {r['org_code']} {r['business_date']} {r['dataset']}"
            f" {r['rule_id']} v{r['batch_version']} · submitted by {_line(r['submitted_by'])}"
            f" {r['submitted_at']:%Y-%m-%d %H:%M}: {_line(r['reason'])}{decided}"
        )


# ---- waivers ---------------------------------------------------------------------------------


@waiver_app.command("add")
def waiver_add(
    rule: Annotated[str, typer.Option(help="a rule id or a rule type")],
    start: Annotated[str, typer.Option("--from", help="first business date YYYY-MM-DD")],
    reason: Annotated[str, typer.Option(help="why (an outpatient-only hospital, an outage)")],
    by: Annotated[str, typer.Option(help="the quality officer waiving")],
    end: Annotated[
        str | None, typer.Option("--to", help="last business date YYYY-MM-DD (default open)")
    ] = None,
    org: Annotated[str | None, typer.Option("--org", help="one organisation")] = None,
    peer_group: Annotated[str | None, typer.Option(help="or one peer group")] = None,
    format: FormatOption = OutputFormat.table,
) -> None:
    """Waive a rule for an organisation or a peer group over dates, past and future; every
    affected scored date is scored again."""
    from infra.appeals import add_waiver

    first = _date(start, "--from")
    last = _date(end, "--to") if end else None
    row = add_waiver(rule, first, last, reason, by, org_code=org, peer_group=peer_group)
    if format is OutputFormat.json:
        _echo_json(row)
        return
    whom = row["org_code"] or f"peer group {row['peer_group']}"
    typer.echo(
        f"waiver {row['waiver_id']} added by {_line(row['actor'])}: {row['rule']} for {whom}"
        f" from {first} to {last or 'open'}"
    )
    for line in _rescored_lines(row):
        typer.echo(line)


@waiver_app.command("end")
def waiver_end(
    waiver_id: Annotated[str, typer.Argument(help="the waiver's id (hqlake waiver list)")],
    on: Annotated[str, typer.Option("--on", help="its last business date YYYY-MM-DD")],
    reason: Annotated[str, typer.Option(help="why it ends")],
    by: Annotated[str, typer.Option(help="the quality officer ending it")],
    format: FormatOption = OutputFormat.table,
) -> None:
    """End a waiver on a date (the day before its start withdraws it); the dates it no longer
    covers are scored again."""
    from infra.appeals import end_waiver

    last = _date(on, "--on")
    row = end_waiver(waiver_id, last, reason, by)
    if format is OutputFormat.json:
        _echo_json(row)
        return
    typer.echo(
        f"waiver {waiver_id} ends on {last} (was {row['was_end'] or 'open'}),"
        f" by {_line(row['actor'])}"
    )
    for line in _rescored_lines(row):
        typer.echo(line)


@waiver_app.command("list")
def waiver_list(
    org: Annotated[str | None, typer.Option("--org", help="one organisation")] = None,
    peer_group: Annotated[str | None, typer.Option(help="one peer group")] = None,
    on: Annotated[str | None, typer.Option("--on", help="in force on YYYY-MM-DD")] = None,
    format: ListFormatOption = ListFormat.table,
) -> None:
    """Waivers as they stand: rule, whom, dates, who added or ended them and why."""
    from infra.appeals import list_waivers

    rows = list_waivers(org_code=org, peer_group=peer_group, on=_date(on, "--on") if on else None)
    if _echo_listed(rows, format, WAIVER_LIST_COLUMNS):
        return
    if not rows:
        typer.echo("no waivers")
    for r in rows:
        whom = r["org_code"] or f"peer group {r['peer_group']}"
        ended = (
            f" · ended by {_line(r['ended_by'])} {r['ended_at']:%Y-%m-%d %H:%M}:"
            f" {_line(r['end_reason'])}"
            if r["ended_at"]
            else ""
        )
        typer.echo(
            f"{r['waiver_id']}  {r['rule']} for {whom} {r['start_date']}..{r['end_date'] or 'open'}"
            f" · added by {_line(r['added_by'])} {r['added_at']:%Y-%m-%d %H:%M}:"
            f" {_line(r['reason'])}{ended}"
        )
