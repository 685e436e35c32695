"""`hqlake apply` and `hqlake snapshot`: the portal's actions applied to the warehouse, and
the portal's snapshot published again (infra/actions.py, expectations/publish/snapshot.py).
Registered in infra/cli.py."""

from __future__ import annotations

import datetime as dt
from typing import Annotated

import typer


def _line(summary: dict) -> str:
    parts = [
        f"{len(summary['applied'])} applied",
        f"{len(summary['refused'])} refused",
    ]
    if summary["recovered"]:
        parts.append(f"{len(summary['recovered'])} found already applied")
    text = "actions: " + ", ".join(parts)
    if summary["dates"]:
        text += f"; scored again: {', '.join(summary['dates'])}"
    if summary["generation"]:
        text += f"; snapshot {summary['generation']}"
    return text + f" ({summary['seconds']:.1f}s)"


def apply(
    if_idle: Annotated[
        bool,
        typer.Option(
            "--if-idle",
            help="exit 0 at once when a run (or another apply) holds the home: the actions"
            " wait for the next run",
        ),
    ] = False,
) -> None:
    """Apply the portal's pending actions (appeals, decisions, waivers, signatures) in the
    order they were submitted, each once, then publish the portal's snapshot again."""
    from infra.actions import apply_if_idle, apply_pending, pending
    from infra.settings import settings

    config = settings()
    if if_idle:
        summary = apply_if_idle(config)
        if summary is None:
            waiting = len(pending(config.actions_dir))
            typer.echo(f"the home is busy: {waiting} actions wait for the next run or apply")
            return
    else:
        summary = apply_pending(config)
    typer.echo(_line(summary))
    from infra.actions import actions

    done = {a["id"]: a for a in actions(config.actions_dir)}
    for action_id in summary["refused"]:
        reason = " ".join(str(done.get(action_id, {}).get("reason", "")).split())[:300]
        typer.echo(f"  refused {action_id}: {reason}")


def snapshot(
    date: Annotated[
        str | None,
        typer.Option("--date", help="publish this business date again (default: every one)"),
    ] = None,
) -> None:
    """Publish the portal's snapshot again from the warehouse (a new generation)."""
    import time

    from infra.actions import publish_snapshot
    from infra.settings import settings

    day = None
    if date is not None:
        try:
            day = dt.date.fromisoformat(date)
        except ValueError:
            raise typer.BadParameter(f"{date!r} is not a date YYYY-MM-DD") from None
    started = time.perf_counter()
    config = settings()
    generation = publish_snapshot(config, None if day is None else [day])
    typer.echo(
        f"snapshot {generation} published in {config.snapshot_dir}"
        f" ({time.perf_counter() - started:.1f}s)"
    )
