"""`hqlake explain`: the points of the composite each failed rule cost an organisation on a
date, as stored with its latest scoring (dq.current_score_explanation), for the organisation-day
and each of its batches. Registered in infra/cli.py."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from enum import StrEnum
from typing import Annotated, Any

import typer


class ExplainFormat(StrEnum):
    table = "table"
    json = "json"


LINE_FIELDS = (
    "dataset",
    "rule_id",
    "rule_type",
    "dimension",
    "status",
    "cause",
    "failed_rows",
    "points",
    "description_zh",
    "description_en",
)


def _json_value(value: Any) -> Any:
    # Decimals as their exact text: points and lost totals have 12 decimals
    return str(value) if isinstance(value, Decimal) else value


def explained(ch, org_code: str, day: dt.date) -> dict[str, Any]:
    """The explanation of `org_code` on `day`: the organisation-day's lines and each batch's,
    with the composites they explain; OperatorError when the date or organisation has no
    score."""
    from contracts.errors import OperatorError
    from expectations.scoring.read import read_batch_scores, read_explanation, read_scores

    scores = {r["org_code"]: r for r in read_scores(ch, day)}
    if not scores:
        raise OperatorError(
            f"{day} has no scores (no scored validation run); run `hqlake score --date {day}`"
        )
    if org_code not in scores:
        raise OperatorError(
            f"organisation {org_code!r} has no score on {day}; scored that day:"
            f" {', '.join(sorted(scores)[:8])}{' …' if len(scores) > 8 else ''}"
        )
    row = scores[org_code]

    def part(rows: list[dict], composite: float | None) -> dict[str, Any]:
        lost = rows[0]["lost_total"] if rows else (None if composite is None else Decimal(0))
        return {
            "composite": composite,
            "lost_total": lost,
            "lines": [{k: r[k] for k in LINE_FIELDS} for r in rows],
        }

    batch_lines = read_explanation(ch, org_code, day, level="batch")
    return {
        "org_code": org_code,
        "org_name": row["org_name"],
        "business_date": day.isoformat(),
        "run_id": row["run_id"],
        **part(read_explanation(ch, org_code, day), row["composite"]),
        "batches": [
            {"dataset": b["dataset"]}
            | part([r for r in batch_lines if r["dataset"] == b["dataset"]], b["composite"])
            for b in read_batch_scores(ch, day, org_code)
        ],
    }


def explanation_table(answer: dict[str, Any]) -> str:
    def num(value) -> str:
        return "-" if value is None else f"{value:.2f}"

    def lines(rows: list[dict], indent: str) -> list[str]:
        out = []
        for r in rows:
            points = "waived" if r["status"] == "waived" else f"-{r['points']:.2f}"
            what = "batch not received" if r["cause"] == "batch_not_received" else r["rule_id"]
            out.append(
                f"{indent}{points:>8}  {r['dimension']:<12} {r['failed_rows']:>8}  "
                f"{what:<48} {r['description_zh']}"
            )
        return out

    head = f"{'points':>8}  {'dimension':<12} {'failed':>8}  {'rule':<48} 说明"
    text = [
        f"{answer['org_name']} ({answer['org_code']}) {answer['business_date']}: composite"
        f" {num(answer['composite'])}, {num(answer['lost_total'])} points lost",
        head,
        *(lines(answer["lines"], "") or ["       -  nothing lost"]),
        "",
        "per batch (points of the batch's own composite):",
    ]
    for b in answer["batches"]:
        text.append(
            f"  {b['dataset']}: composite {num(b['composite'])}, {num(b['lost_total'])} points lost"
        )
        text += lines(b["lines"], "  ")
    return "\n".join(text)


def explain(
    org: Annotated[str, typer.Option(help="organisation code")],
    date: Annotated[str, typer.Option(help="business date YYYY-MM-DD (scored)")],
    format: Annotated[ExplainFormat, typer.Option("--format")] = ExplainFormat.table,
) -> None:
    """The points of the composite each failed rule cost an organisation on a date (largest
    first), for the organisation-day and each batch; they sum to 100 - composite."""
    from infra.cli import _date
    from infra.runtime import warehouse

    answer = explained(warehouse(), org, _date(date))
    if format is ExplainFormat.json:
        typer.echo(json.dumps(answer, ensure_ascii=False, default=_json_value))
    else:
        typer.echo(explanation_table(answer))
