"""`hqlake acceptance`: a month's acceptance, its sign-off, reopening and the commission's sheet.

Without a flag the command shows the month: the latest signed version when the month is
signed (frozen: it never changes), else the acceptance computed now (written to
dq.acceptance, as before sign-off existed). `--sign --by NAME` freezes the month as its next
version; `--reopen --reason TEXT --by NAME` records the decision that lets it be signed again;
`--export FILE.xlsx` writes the latest signed version. Registered in infra/cli.py; the work is
in infra/pipeline.py's stages.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from contracts.errors import OperatorError

if TYPE_CHECKING:
    from expectations.programme.signoff import Signature


class AcceptanceFormat(StrEnum):
    table = "table"
    json = "json"


_MONTH = re.compile(r"\d{4}-(0[1-9]|1[0-2])")


def _month(value: str) -> dt.date:
    if not _MONTH.fullmatch(value):
        raise typer.BadParameter(f"{value!r} is not a month YYYY-MM")
    return dt.date.fromisoformat(f"{value}-01")


def _when(at: dt.datetime) -> str:
    return f"{at:%Y-%m-%d %H:%M:%S}"


def _check_flags(
    sign: bool, reopen: bool, export: Path | None, by: str | None, reason: str | None
) -> None:
    """Refuse flags that do not go together, before any service starts."""
    if sum((sign, reopen, export is not None)) > 1:
        raise OperatorError("give one of --sign, --reopen and --export at a time")
    if (sign or reopen) and not (by or "").strip():
        raise OperatorError(f"--{'sign' if sign else 'reopen'} needs --by NAME: who decides")
    if reopen and not (reason or "").strip():
        raise OperatorError("--reopen needs --reason TEXT: a reopening is a recorded decision")
    if reason is not None and not reopen:
        raise OperatorError("--reason goes with --reopen only")
    if by is not None and not (sign or reopen):
        raise OperatorError("--by goes with --sign or --reopen only")
    if export is not None and export.suffix.lower() != ".xlsx":
        raise OperatorError(f"--export {export}: the file name must end in .xlsx")


def _signature_line(signed: Signature) -> str:
    sig = signed.signature
    line = (
        f"{sig['month']:%Y-%m} signed, version {sig['version']}: by {sig['signer']} at"
        f" {_when(sig['signed_at'])}; {sig['organisations']} organisations, {sig['passed']}"
        f" passed; subsidy {sig['subsidy_yuan']:,} yuan"
        + (f" ({sig['phase']})" if sig["phase"] else " (no programme phase)")
    )
    if signed.reopening:
        r = signed.reopening
        line += f"\nreopened by {r['actor']} at {_when(r['at'])}: {r['reason']}"
    return line


def _print_rows(rows: list[dict[str, Any]], format: AcceptanceFormat, signed=None) -> None:
    for r in rows:
        subsidy = signed.subsidy_of(r["org_code"]) if signed else None
        if format is AcceptanceFormat.json:
            extra = {}
            if signed:
                sig = signed.signature
                extra = {k: sig[k] for k in ("version", "signer", "signed_at")}
                extra["subsidy_yuan"] = subsidy
            typer.echo(json.dumps(r | extra, ensure_ascii=False, default=str))
        else:
            verdict = "PASS" if r["passed"] else "fail"
            typer.echo(
                f"{r['org_code']:<20} {verdict:<5} {r['days_at_bar']}/{r['days_judged']} days at"
                f" bar, {r['blocking_failures']} blocking failures"
                + (f", subsidy {subsidy:,} yuan" if subsidy else "")
            )


def acceptance(
    month: Annotated[str, typer.Option(help="month YYYY-MM")],
    sign: Annotated[
        bool, typer.Option("--sign", help="freeze the month as its next signed version")
    ] = False,
    reopen: Annotated[
        bool, typer.Option("--reopen", help="record the decision to reopen the signed month")
    ] = False,
    export: Annotated[
        Path | None, typer.Option(help="write the latest signed version to FILE.xlsx")
    ] = None,
    by: Annotated[str | None, typer.Option(help="who signs or reopens")] = None,
    reason: Annotated[str | None, typer.Option(help="why the month is reopened")] = None,
    config: Annotated[Path | None, typer.Option(help="scoring config (default: bundled)")] = None,
    format: Annotated[AcceptanceFormat, typer.Option("--format")] = AcceptanceFormat.table,
) -> None:
    """Monthly acceptance per organisation with the evidence; sign, reopen or export it."""
    from infra import pipeline

    first = _month(month)
    _check_flags(sign, reopen, export, by, reason)
    if sign:
        signed = pipeline.sign_acceptance(first, by or "", config)
        typer.echo(_signature_line(signed), err=format is AcceptanceFormat.json)
        _print_rows(signed.rows, format, signed)
    elif reopen:
        decision = pipeline.reopen_acceptance(first, by or "", reason or "")
        typer.echo(
            f"{first:%Y-%m} version {decision['version']} reopened by {decision['actor']} at"
            f" {_when(decision['at'])}; the next --sign is version {decision['version'] + 1}"
        )
    elif export is not None:
        signed = pipeline.export_acceptance(first, export)
        typer.echo(_signature_line(signed))
        typer.echo(f"sheet: {export}")
    else:
        signed = pipeline.acceptance_signature(first)
        if signed is not None and signed.reopening is None:
            typer.echo(_signature_line(signed), err=format is AcceptanceFormat.json)
            _print_rows(signed.rows, format, signed)
            return
        if signed is not None:
            typer.echo(_signature_line(signed), err=format is AcceptanceFormat.json)
        _print_rows(pipeline.acceptance(first, config), format)
