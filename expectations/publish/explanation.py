"""The points lost, as the organisation page and the e-mail show them: one line per failed
rule (from `expectations.scoring.read.read_explanation`), largest first, points to one
decimal ("−3.2 分：… ×41"), and the waived results at 0 apart. Pure: rows in, view rows out;
the templates escape (HTML) or keep every value on one line (text)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from contracts.loader import contracts

MINUS = "\u2212"
NOT_RECEIVED = ("批次未收到", "batch not received")


def points_text(points: Decimal | float | int) -> str:
    """'−3.2': points lost to one decimal, half up; '−<0.1' for a loss that rounds to 0."""
    value = Decimal(str(points)).quantize(Decimal("0.1"), rounding=ROUND_HALF_UP)
    if value == 0:
        return f"{MINUS}<0.1" if Decimal(str(points)) > 0 else "0"
    return f"{MINUS}{value}"


def _view(row: Mapping[str, Any]) -> dict[str, Any]:
    dataset = row.get("dataset") or ""
    ds = contracts().datasets.get(dataset)
    missing = row.get("cause") == "batch_not_received"
    zh, en = (
        NOT_RECEIVED
        if missing
        else (row.get("description_zh") or row["rule_id"], row.get("description_en") or "")
    )
    return {
        "dataset": dataset,
        "dataset_zh": ds.title.zh if ds else dataset,
        "rule_id": row["rule_id"],
        "description_zh": zh,
        "description_en": en,
        "failed_rows": int(row.get("failed_rows") or 0),
        "points": points_text(row["points"]),
        "is_missing": missing,
        "is_waived": row.get("status") == "waived",
    }


def points_lost(rows: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """{lines: the failed rules by points lost, largest first; waived: the waived results;
    total: the points lost, to one decimal} of an organisation-day's explanation rows."""
    rows = sorted(rows, key=lambda r: -Decimal(str(r["points"])))  # stable for equal points
    views = [_view(r) for r in rows]
    total = rows[0]["lost_total"] if rows else Decimal(0)
    return {
        "lines": [v for v in views if not v["is_waived"]],
        "waived": [v for v in views if v["is_waived"]],
        "total": points_text(total),
    }


def email_line(view: Mapping[str, Any]) -> str:
    """'−3.2 分：<what the rule checks> ×41（<rule id>）'; a missing batch names its dataset."""
    what, points = view["description_zh"], view["points"]
    if view["is_missing"]:
        return f"{points} 分：{what}（{view['dataset_zh']} {view['dataset']}）"
    if view["is_waived"]:
        return f"0 分：{what} ×{view['failed_rows']}（{view['rule_id']}，已豁免 waived）"
    return f"{points} 分：{what} ×{view['failed_rows']}（{view['rule_id']}）"
