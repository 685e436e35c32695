"""The label sets that scores, pages and e-mails share: each key with its Chinese and English
name, in the order pages list them.

Keys are the standard's own: quality dimensions as rules.yaml and scoring.yaml name them,
peer groups as the registry's levels (`contracts.registry.LEVELS`, hospital levels first),
rule severities, and the change of a failing rule against the previous date (a resolved
failure is no longer failing, so it has no label here), an appeal's status and what waives a
result (section 8).
"""

from __future__ import annotations

from typing import NamedTuple


class Label(NamedTuple):
    zh: str
    en: str

    @property
    def both(self) -> str:
        """ "完整性 Completeness": the two names as one line shows them."""
        return f"{self.zh} {self.en}"


DIMENSIONS: dict[str, Label] = {
    "completeness": Label("完整性", "Completeness"),
    "timeliness": Label("及时性", "Timeliness"),
    "correctness": Label("准确性", "Correctness"),
    "logic": Label("逻辑性", "Logic"),
}
PEER_GROUPS: dict[str, Label] = {
    "tertiary": Label("三级医院", "Tertiary hospitals"),
    "secondary": Label("二级医院", "Secondary hospitals"),
    "primary": Label("一级医院", "Primary hospitals"),
    "county": Label("县区公共卫生平台", "County public-health platforms"),
}
SEVERITIES: dict[str, Label] = {
    "blocking": Label("阻断", "Blocking"),
    "warning": Label("警告", "Warning"),
}
CHANGES: dict[str, Label] = {
    "new": Label("新增", "New"),
    "persisting": Label("持续", "Persisting"),
}
# Section 8: the state of an appeal (its latest decision), and what waives a result.
APPEAL_STATUSES: dict[str, Label] = {
    "open": Label("待审核", "Open"),
    "approved": Label("已批准", "Approved"),
    "rejected": Label("已驳回", "Rejected"),
}
WAIVED_BY: dict[str, Label] = {
    "appeal": Label("申诉获批", "Approved appeal"),
    "waiver": Label("豁免", "Waiver"),
}
# A waived result's status as validated (a waiver covers passed results too).
RESULT_STATUSES: dict[str, Label] = {
    "passed": Label("通过", "Passed"),
    "failed": Label("未通过", "Failed"),
}
