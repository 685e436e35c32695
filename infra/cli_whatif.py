"""`hqlake whatif`: what a change of weights, thresholds, severities or scoring configuration
would do over a period, from the stored rule results (expectations/scoring/whatif.py). Reads
only: nothing is validated again and nothing is written to the warehouse."""

from __future__ import annotations

import datetime as dt
import json
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:  # the command imports what it needs when it runs: `hqlake` starts fast
    from clickhouse_connect.driver.client import Client

    from contracts.registry import Registry


class WhatIfFormat(StrEnum):
    table = "table"
    json = "json"


def what_if(
    ch: Client,
    registry: Registry,
    changes_path: Path | str,
    first: dt.date,
    last: dt.date,
    as_of: dt.datetime | None = None,
) -> dict[str, Any]:
    """The what-if answer of the change file over [first, last]: the current runs of every date
    of the months the period touches, their results with the exemptions in force (as of
    `as_of`, default now), before and after the change."""
    from expectations.programme.history import load_exemptions
    from expectations.rules.rulebase import rulebase
    from expectations.scoring.acceptance import month_dates
    from expectations.scoring.config import load_scoring_config
    from expectations.scoring.inputs import current_runs, result_counts
    from expectations.scoring.whatif import compare, load_changes

    rule_base, base = rulebase(), load_scoring_config()
    changes = load_changes(changes_path, rule_base, base, registry)
    dates, month = [], first.replace(day=1)
    while month <= last:
        dates += month_dates(month)
        month = dates[-1] + dt.timedelta(days=1)
    runs = current_runs(ch, dates)
    rows = result_counts(ch, registry, sorted(runs), load_exemptions(ch, as_of)) if runs else []
    return compare(runs, rows, registry, base, changes, rule_base.overrides, first, last)


def _number(value: float | None, width: int = 6) -> str:
    return f"{'-':>{width}}" if value is None else f"{value:{width}.2f}"


def _verdict(side: dict[str, Any] | None) -> str:
    return "-" if side is None else ("PASS" if side["passed"] else "fail")


def whatif_table(answer: dict[str, Any]) -> str:
    """Who moves first, then everyone: composite, rank and acceptance before -> after."""
    from infra.cli import _pad, _printable

    period, changes = answer["period"], answer["changes"]
    lines = [
        f"whatif {period['from']} .. {period['to']}: {len(answer['dates_scored'])} dates with a"
        f" current run, changes from {_printable(changes['file'])}"
    ]
    for name, spec in changes["types"].items():
        values = ", ".join(f"{k} {v}" for k, v in spec.items())
        lines.append(f"  rule type {_printable(name)}: {_printable(values)}")
    for o in changes["overrides"]:
        scope = o.get("org_code") or o.get("peer_group") or "everyone"
        values = ", ".join(f"{k} {o[k]}" for k in ("weight", "threshold", "severity") if k in o)
        lines.append(f"  override {_printable(o['rule'])} for {_printable(scope)}: {values}")
    for key, values in changes["scoring"].items():
        lines.append(f"  scoring {key}: {values['before']} -> {values['after']}")
    lines += [
        f"{answer['results']} rule results read, {answer['results_changed']} counted"
        f" differently; {answer['moves']} organisations move (rank or acceptance)",
        "composite: mean of the daily composites of the period; rank: the period's rank of"
        " that mean in the peer group; acceptance: each month touched, judged on all its dates",
        "",
    ]
    months = answer["months"]
    lines.append(
        f"{'move':<4} {_pad('organisation', 40)} {'peer':<9} {'composite before -> after':>26}"
        f" {'rank':>12} " + " ".join(f"{m:>14}" for m in months)
    )
    for o in answer["organisations"]:
        c, r = o["composite"], o["rank"]
        delta = "" if c["delta"] is None else f"({c['delta']:+.2f})"
        rank = f"{r['before'] or '-'} -> {r['after'] or '-'}/{r['peer_size']}"
        accepted = {a["month"]: a for a in o["acceptance"]}
        verdicts = [
            f"{_verdict(accepted[m]['before'])} -> {_verdict(accepted[m]['after'])}"
            if m in accepted
            else "-"
            for m in months
        ]
        name = _printable(f"{o['org_code']} {o['org_name']}")
        lines.append(
            f"{'*' if o['moves'] else '':<4} {_pad(name, 40)} {o['peer_group']:<9}"
            f" {_number(c['before'])} -> {_number(c['after'])} {delta:>9}"
            f" {rank:>12} " + " ".join(f"{v:>14}" for v in verdicts)
        )
    if not answer["organisations"]:
        lines.append("(no organisation has a score in the period)")
    lines.append("nothing was written: adopt a change by editing contracts/ (see README, What-if)")
    return "\n".join(lines)


def whatif(
    changes: Annotated[
        Path, typer.Option(help="change file (rules.yaml, rule_overrides.yaml, scoring.yaml keys)")
    ],
    first: Annotated[str, typer.Option("--from", help="first business date YYYY-MM-DD")],
    last: Annotated[str, typer.Option("--to", help="last business date YYYY-MM-DD")],
    format: Annotated[WhatIfFormat, typer.Option("--format")] = WhatIfFormat.table,
    html: Annotated[Path | None, typer.Option(help="also write the HTML page here")] = None,
) -> None:
    """What a change of weights, thresholds, severities or scoring would do over a period:
    every organisation's composite, rank and acceptance before and after. Writes nothing."""
    from contracts.errors import OperatorError
    from infra.cli import _date
    from infra.pipeline import org_registry
    from infra.runtime import warehouse

    day_from, day_to = _date(first), _date(last)
    if day_from > day_to:
        raise OperatorError(f"--from {day_from} is after --to {day_to}; give the earlier first")
    answer = what_if(warehouse(), org_registry(), changes, day_from, day_to)
    if not answer["dates_scored"]:
        raise OperatorError(
            f"no business date of {day_from} .. {day_to} has a complete validation run:"
            " validate the period first"
        )
    if format is WhatIfFormat.json:
        typer.echo(json.dumps(answer, ensure_ascii=False, indent=2))
    else:
        typer.echo(whatif_table(answer))
    if html is not None:
        from expectations.publish.whatif_page import render_whatif

        html.parent.mkdir(parents=True, exist_ok=True)
        html.write_text(render_whatif(answer), encoding="utf-8")
        typer.echo(f"html: {html}", err=format is WhatIfFormat.json)
