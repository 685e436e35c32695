"""What pages and e-mails show of the programme for one organisation-day: its results that an
approved appeal or a waiver waives (with the id and the reason), and its appeals with their
status. The appeals shown are those of business dates still in the window on that day, and
any older one still open; the same events always give the same lists (no clock)."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from clickhouse_connect.driver.client import Client

from contracts.registry import Registry
from expectations.programme.appeals import list_appeals, list_waivers
from expectations.programme.config import AppealsConfig, load_appeals_config
from expectations.programme.history import load_exemptions
from expectations.scoring.arithmetic import ResultCount
from expectations.scoring.exemptions import Exemptions


@dataclass(frozen=True)
class Standing:
    """`waived`: one row per waived result (dataset, rule_id, rule_type, dimension, weight,
    status as validated, failed, checked, batch_version, waived_by, kind appeal|waiver, why);
    `appeals`: list_appeals rows."""

    waived: list[dict[str, Any]] = field(default_factory=list)
    appeals: list[dict[str, Any]] = field(default_factory=list)

    def without_waived(self, failures: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """`failures` (read.failures rows) but those waived: they count like not_applicable."""
        waived = {(w["dataset"], w["rule_id"], w["batch_version"]) for w in self.waived}
        return [
            f
            for f in failures
            if (f["dataset"], f["rule_id"], f.get("batch_version", 0)) not in waived
        ]


NO_STANDING = Standing()


class Programme:
    """The exemptions, waivers and appeals read once, for the standings of many
    organisations of one date."""

    def __init__(self, ch: Client, registry: Registry, config: AppealsConfig | None = None) -> None:
        self.ch, self.registry = ch, registry
        self.config = config or load_appeals_config()
        self.exemptions: Exemptions = load_exemptions(ch)
        self.appeal_ids = set(self.exemptions.appeals.values())
        self.why = {a["appeal_id"]: a["reason"] for a in list_appeals(ch, status="approved")}
        self.why |= {w["waiver_id"]: w["reason"] for w in list_waivers(ch)}

    def standing(self, org_code: str, day: dt.date) -> Standing:
        return self.standings(day, org_code).get(org_code, NO_STANDING)

    def standings(self, day: dt.date, org_code: str = "") -> dict[str, Standing]:
        """`standing` of every organisation of `day` with waived results or appeals shown
        (or of `org_code`) in one query, by organisation; the others have NO_STANDING."""
        rows = self.ch.query(
            """
            SELECT business_date, org_code, dataset, rule_id, rule_type, dimension, status,
                   severity, weight, batch_version, count(), sum(failed), sum(checked)
            FROM dq.rule_result
            WHERE business_date = {d:Date} AND ({org:String} = '' OR org_code = {org:String})
              AND status IN ('passed', 'failed')
              AND (business_date, run_id) IN (SELECT business_date, run_id FROM dq.current_run)
            GROUP BY business_date, org_code, dataset, rule_id, rule_type, dimension, status,
                     severity, weight, batch_version
            ORDER BY org_code, dataset, rule_id
            """,
            parameters={"d": day, "org": org_code},
        ).result_rows
        waived: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for r in map(ResultCount._make, rows):
            org = self.registry.get(r.org_code)
            by = self.exemptions.reason(r, org.peer_group if org else "")
            if by is not None:
                waived[r.org_code].append(
                    {
                        "dataset": r.dataset,
                        "rule_id": r.rule_id,
                        "rule_type": r.rule_type,
                        "dimension": r.dimension,
                        "weight": r.weight,
                        "status": r.status,
                        "failed": r.failed_rows,
                        "checked": r.checked_rows,
                        "batch_version": r.batch_version,
                        "waived_by": by,
                        "kind": "appeal" if by in self.appeal_ids else "waiver",
                        "why": self.why.get(by, ""),
                    }
                )
        first = day - dt.timedelta(days=self.config.window.days_after_business_date)
        appeals: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for a in list_appeals(self.ch, org_code=org_code or None):
            if first <= a["business_date"] <= day or (
                a["status"] == "open" and a["business_date"] <= day
            ):
                appeals[a["org_code"]].append(a)
        return {
            code: Standing(waived.get(code, []), appeals.get(code, []))
            for code in sorted(set(waived) | set(appeals))
        }
