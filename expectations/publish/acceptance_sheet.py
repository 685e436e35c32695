"""The commission's spreadsheet of a signed acceptance month (`hqlake acceptance --export`).

Sheet 1 (验收结果): one row per organisation of the signed version, then a totals row (合计:
organisations, judged and good days, blocking failures, organisations passing, subsidy in
yuan). Sheet 2 (证据): the evidence, one row per organisation-day expected in the month (the
judged days with their run, composite and whether it is at the bar; the days expected but not
scored), with that day's blocking failures. Only frozen values are written: the sheet of a
version is the same whenever it is exported.

Organisation names come from the registry, run ids and dates from our tables: every text cell
goes through `neutralise.spreadsheet_cell` and `write_string`, in a workbook that turns no
string into a formula, a number or a link.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import xlsxwriter

from contracts.codesystems import division_name
from contracts.labels import PEER_GROUPS
from expectations.programme.signoff import Signature
from expectations.publish.neutralise import spreadsheet_cell

SUMMARY_SHEET = "验收结果"
EVIDENCE_SHEET = "证据"
SUMMARY_HEADER = (
    "机构编码",
    "机构名称",
    "机构类别",
    "县区",
    "评价天数",
    "达标天数",
    "阻断性失败数",
    "是否合格",
    "补助金额(元)",
    "签字人",
    "签字时间",
)
EVIDENCE_HEADER = (
    "机构编码",
    "机构名称",
    "业务日期",
    "校验运行",
    "综合得分",
    "是否达标",
    "阻断性失败数",
)
TOTAL = "合计"


def _county(code: str) -> str:
    name = division_name(code) if code else None
    return f"{name} ({code})" if name else code


def summary_rows(signature: Signature) -> list[list[object]]:
    """Sheet 1's rows after the header, the totals row last."""
    sig = signature.signature
    signed_at = f"{sig['signed_at']:%Y-%m-%d %H:%M:%S}"
    rows: list[list[object]] = []
    for r in signature.rows:
        label = PEER_GROUPS.get(r["peer_group"])
        rows.append(
            [
                r["org_code"],
                r["org_name"],
                label.zh if label else r["peer_group"],
                _county(r["county_code"]),
                r["days_judged"],
                r["days_at_bar"],
                r["blocking_failures"],
                "合格" if r["passed"] else "不合格",
                signature.subsidy_of(r["org_code"]),
                sig["signer"],
                signed_at,
            ]
        )
    rows.append(
        [
            TOTAL,
            f"{len(signature.rows)} 家机构，{sum(r['passed'] for r in signature.rows)} 家合格",
            "",
            "",
            sum(r["days_judged"] for r in signature.rows),
            sum(r["days_at_bar"] for r in signature.rows),
            sum(r["blocking_failures"] for r in signature.rows),
            sum(r["passed"] for r in signature.rows),
            sum(s["amount_yuan"] for s in signature.subsidies),
            sig["signer"],
            signed_at,
        ]
    )
    return rows


def evidence_rows(signature: Signature) -> list[list[object]]:
    """Sheet 2's rows after the header: every organisation-day expected, by date."""
    rows: list[list[object]] = []
    for r in signature.rows:
        evidence = r["evidence"]
        blocking = Counter(f["business_date"] for f in evidence["blocking_failures"])
        days = [(d["business_date"], d["run_id"], d) for d in evidence["days"]]
        days += [(d["business_date"], d["run_id"], None) for d in evidence["days_not_scored"]]
        for day, run_id, judged in sorted(days, key=lambda d: d[0]):
            rows.append(
                [
                    r["org_code"],
                    r["org_name"],
                    day,
                    run_id,
                    float(judged["composite_rounded"]) if judged else "",
                    ("是" if judged["at_bar"] else "否") if judged else "未评分",
                    blocking[day],
                ]
            )
    return rows


def write_acceptance_sheet(signature: Signature, path: Path) -> Path:
    """Write the signed version's workbook to `path` and return it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    book = xlsxwriter.Workbook(
        str(path),
        {"strings_to_formulas": False, "strings_to_numbers": False, "strings_to_urls": False},
    )
    sig = signature.signature
    book.set_properties(
        {"title": f"上传验收 {sig['month']:%Y-%m} 第{sig['version']}版", "author": sig["signer"]}
    )
    bold = book.add_format({"bold": True})
    money = book.add_format({"num_format": "#,##0"})
    for name, header, rows, widths in (
        (SUMMARY_SHEET, SUMMARY_HEADER, summary_rows(signature), (20, 28, 16, 18)),
        (EVIDENCE_SHEET, EVIDENCE_HEADER, evidence_rows(signature), (20, 28, 12, 36)),
    ):
        sheet = book.add_worksheet(name)
        sheet.freeze_panes(1, 0)
        for col, width in enumerate(widths):
            sheet.set_column(col, col, width)
        for col, title in enumerate(header):
            sheet.write_string(0, col, title, bold)
        for i, row in enumerate(rows, start=1):
            for col, value in enumerate(row):
                cell = spreadsheet_cell(value)
                if cell == "":
                    continue  # a blank cell, not an empty string
                if isinstance(cell, str):
                    totals = name == SUMMARY_SHEET and i == len(rows)
                    sheet.write_string(i, col, cell, bold if totals else None)
                else:
                    sheet.write_number(
                        i, col, cell, money if header[col] == "补助金额(元)" else None
                    )
    book.close()
    return path
