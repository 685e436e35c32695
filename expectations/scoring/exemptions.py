"""Which rule results scoring counts as `waived` (upload standard section 8).

An approved appeal waives one failed result: the rule of one batch version of one
organisation's business date. A waiver waives every result, passed or failed, of a rule (by
rule_id) or of a rule type, for one organisation or a whole peer group, over a date range,
past and future. A waived result counts like `not_applicable` in every score, rank, delta and
acceptance, and is shown as waived; `error` results stay `error` (they count nowhere anyway).
The stored results (dq.rule_result) are never rewritten: scoring applies the exemptions to what
it reads, so a withdrawn waiver or a later decision changes the next scoring and nothing else.

This module is pure: the appeals and waivers in force are read from the warehouse by the
module that owns their tables and passed in as an `Exemptions`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field

from contracts.registry import Registry
from expectations.scoring.arithmetic import ResultCount

WAIVED = "waived"
# Statuses a waiver turns into `waived`; an appeal is only ever of a failed result.
WAIVABLE = ("passed", "failed")

# (business_date, org_code, dataset, rule_id, batch_version) of an appealed result.
ResultKey = tuple[dt.date, str, str, str, int]


@dataclass(frozen=True)
class Waiver:
    """One waiver in force. `rule` names a rule_id or a rule type; exactly one of `org_code`
    and `peer_group` says whom it covers; `end` is inclusive, None while open."""

    waiver_id: str
    rule: str
    start: dt.date
    end: dt.date | None = None
    org_code: str | None = None
    peer_group: str | None = None

    def covers(self, day: dt.date, org_code: str, peer_group: str, rule_id: str, rule_type: str):
        return (
            self.start <= day
            and (self.end is None or day <= self.end)
            and self.rule in (rule_id, rule_type)
            and (org_code == self.org_code if self.org_code else peer_group == self.peer_group)
        )


@dataclass(frozen=True)
class Exemptions:
    """The approved appeals (result key -> appeal_id) and the waivers in force."""

    appeals: Mapping[ResultKey, str] = field(default_factory=dict)
    waivers: tuple[Waiver, ...] = ()

    def reason(
        self, r: ResultCount, peer_group: str
    ) -> str | None:  # the appeal or waiver id that waives r, if any
        if r.status == "failed":
            key = (r.business_date, r.org_code, r.dataset, r.rule_id, r.batch_version)
            if key in self.appeals:
                return self.appeals[key]
        if r.status in WAIVABLE:
            for w in self.waivers:
                if w.covers(r.business_date, r.org_code, peer_group, r.rule_id, r.rule_type):
                    return w.waiver_id
        return None


NO_EXEMPTIONS = Exemptions()


def apply(
    rows: Iterable[ResultCount], exemptions: Exemptions, registry: Registry
) -> Iterator[ResultCount]:
    """The rows with status `waived` where an approved appeal or a waiver covers them."""
    for r in rows:
        if exemptions.appeals or exemptions.waivers:
            org = registry.get(r.org_code)
            if exemptions.reason(r, org.peer_group if org else "") is not None:
                r = r._replace(status=WAIVED)
        yield r
