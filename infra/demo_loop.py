"""The quality loop of section 8 in `make demo`: after the week's runs, one hospital appeals a
failed result of one day, a quality officer approves it, the affected dates are scored again and
the hospital's rank moves; then the month is signed and the commission's subsidy sheet written.

Every step goes through the same functions as `hqlake appeal`, `hqlake acceptance --sign` and
`--export` (infra/appeals.py, infra/pipeline.py). The demo replays a week of November on any
day, so the appeal and the decision are recorded as on the day after the business date and the
day after that (the `now` those steps take; the commands themselves always record the clock):
otherwise the 10-day window of contracts/appeals.yaml would have closed long ago.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path
from typing import Any

from contracts.timezone import TZ

OFFICER = "qc.wang"  # a quality officer of contracts/appeals.yaml


def _candidate(
    ch: Any, day: dt.date, groups: tuple[str, ...]
) -> tuple[dict[str, Any], dict[str, Any]] | None:
    """An organisation of `groups` and a failed result of its own to appeal: one whose
    waiver would lift it past the organisation just above it (by the points it cost) when
    there is one, else the failed result that cost any of them the most points."""
    from expectations.scoring.read import read_explanation, read_scores

    scores = [s for s in read_scores(ch, day) if s["peer_group"] in groups]
    by_rank = {(s["peer_group"], s["rank"]): s for s in scores if s["rank"]}
    moving, largest = None, None
    for s in scores:
        if s["composite"] is None:
            continue
        above = by_rank.get((s["peer_group"], (s["rank"] or 1) - 1))
        gap = (
            Decimal(repr(above["composite"])) - Decimal(repr(s["composite"]))
            if above is not None and above["composite"] is not None
            else None
        )
        for line in read_explanation(ch, s["org_code"], day):
            if line["status"] != "failed" or line["cause"] != "failed" or not line["points"]:
                continue
            if largest is None or line["points"] > largest[0]:
                largest = (line["points"], s, line)
            if gap is not None and line["points"] > gap:
                margin = line["points"] - gap
                if moving is None or margin > moving[0]:
                    moving = (margin, s, line)
    best = moving or largest
    return None if best is None else (best[1], best[2])


def _standing(ch: Any, day: dt.date, org_code: str) -> dict[str, Any]:
    from expectations.scoring.read import read_scores

    return next(s for s in read_scores(ch, day) if s["org_code"] == org_code)


def run(
    days: list[dt.date],
    month: dt.date,
    exports: Path,
    groups: tuple[str, ...] = ("tertiary", "secondary", "primary"),
) -> dict[str, Any]:
    """Appeal on the first of `days` with a result of an organisation of `groups` (the
    hospitals' peer groups) that would move a rank, approve, sign and export; prints each
    step and returns what it made (empty when no day had one)."""
    from expectations.scoring.read import read_scores
    from infra import appeals, pipeline
    from infra.runtime import warehouse

    ch = warehouse()
    found = next(((d, c) for d in days if (c := _candidate(ch, d, groups)) is not None), None)
    if found is None:
        print("\nthe quality loop: no failed result would move a rank; no appeal made")
        return {}
    day, (score, line) = found
    print(f"\nthe quality loop (upload standard section 8) on {day}:")
    code, group = score["org_code"], score["peer_group"]
    rivals_before = {
        s["org_code"]: s["rank"]
        for s in read_scores(ch, day)
        if s["peer_group"] == group and s["rank"]
    }
    print(
        f"  {code} ({score['org_name']}) is {score['rank']} of {score['peer_size']} {group}"
        f" organisations, composite {score['composite']:.2f}; the failed result it appeals:"
        f" −{line['points']:.1f} 分 {line['description_zh']} ×{line['failed_rows']}"
        f" ({line['rule_id']})"
    )
    submitted_at = dt.datetime.combine(day + dt.timedelta(days=1), dt.time(10), TZ)
    appeal = appeals.submit_appeal(
        code,
        day,
        line["dataset"],
        line["rule_id"],
        "系统升级期间编码映射表未同步，已补传对照表"
        " (the code map was not synchronised during the HIS upgrade)",
        f"{code}-数据管理员",
        now=submitted_at,
    )
    print(f"  1. {code} appeals it: {appeal['appeal_id']} submitted {submitted_at:%Y-%m-%d %H:%M}")
    decided_at = submitted_at + dt.timedelta(days=1)
    decided = appeals.decide_appeal(
        appeal["appeal_id"],
        "approved",
        "对照表核实无误，同意 (map checked)",
        OFFICER,
        now=decided_at,
    )
    print(
        f"  2. quality officer {OFFICER} approves it {decided_at:%Y-%m-%d %H:%M};"
        f" scored again: {', '.join(str(d) for d in decided['dates_scored_again'])}"
    )
    after = _standing(ch, day, code)
    rivals_after = {
        s["org_code"]: s["rank"]
        for s in read_scores(ch, day)
        if s["peer_group"] == group and s["rank"]
    }
    moved = sorted(c for c in rivals_after if c != code and rivals_after[c] != rivals_before.get(c))
    print(
        f"  3. {code} is now {after['rank']} of {after['peer_size']}, composite"
        f" {after['composite']:.2f} (was {score['rank']}, {score['composite']:.2f});"
        f" {len(moved)} rivals moved: "
        + ", ".join(f"{c} {rivals_before.get(c)}→{rivals_after[c]}" for c in moved)
    )
    pages = pipeline.report(day)
    sent = pipeline.feedback_stage(day, code)
    print(f"     its page shows the waived result: {pages['orgs'][code]}")
    print(f"     its e-mail, sent again with the waived result and the appeal: {sent['sent']} sent")
    signed = pipeline.sign_acceptance(month, OFFICER)
    paid = sum(s["amount_yuan"] for s in signed.subsidies)
    passed = sum(1 for r in signed.rows if r["passed"])
    print(
        f"  4. {OFFICER} signs {month:%Y-%m} (version {signed.version}): {passed} of"
        f" {len(signed.rows)} organisations pass; subsidies due {paid:,} CNY to"
        f" {sum(1 for s in signed.subsidies if s['amount_yuan'])} organisations"
    )
    sheet = exports / f"acceptance-{month:%Y-%m}-v{signed.version}.xlsx"
    pipeline.export_acceptance(month, sheet)
    print(f"  5. the commission's sheet: {sheet}")
    return {
        "day": day,
        "appeal": appeal,
        "decided": decided,
        "signed": signed,
        "sheet": sheet,
    }
