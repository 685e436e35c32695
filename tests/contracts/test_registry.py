"""Every registry mistake stops the load with the file, the line, the field and the fix."""

from __future__ import annotations

import pytest

from contracts.codesystems import make_uscc
from contracts.errors import OperatorError
from contracts.registry import RegistryError, load_registry, parse_registry

HEADER = "org_code,name,kind,level,county_code,emails,active_from,active_to\n"
GOOD = make_uscc("411502", 9)
OTHER = make_uscc("411502", 10)
ROW = f"{GOOD},信阳市中心医院,hospital,tertiary,411502,qc@h.example.cn,2020-01-01,\n"
WRONG_CHECK = GOOD[:-1] + ("0" if GOOD[-1] != "0" else "1")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            HEADER + ROW + ROW.replace(GOOD, WRONG_CHECK),
            f"line 3: org_code '{WRONG_CHECK}' has a wrong check character",
        ),
        (HEADER + ROW.replace(GOOD, GOOD[:-1]), "has 17 characters"),
        (HEADER.replace(",emails", "") + ROW, "no column emails"),
        (HEADER.replace("\n", ",phone\n"), "unknown column phone"),
        (HEADER + ROW + ROW, f"line 3: org_code {GOOD} appears twice (first on line 2)"),
        (HEADER + ROW.replace(",2020-01-01,\n", "\n"), "line 2: the row has 6 fields"),
        (
            HEADER + ROW.replace("信阳市中心医院", '"信阳市\n中心医院"'),
            "line 2: name has a line break",
        ),
        (
            HEADER + ROW + ROW.replace(GOOD, OTHER).replace("qc@", "q\x07c@"),
            "line 3: emails has a control",
        ),
        (HEADER + ROW.replace("hospital", "clinic"), "kind 'clinic' must be hospital or county"),
        (
            HEADER + ROW.replace("2020-01-01", "2020-13-01"),
            "active_from '2020-13-01' is not a date",
        ),
        (
            HEADER + ROW.replace("2020-01-01,", "2020-01-01,2019-12-31"),
            "active_to 2019-12-31 is before",
        ),
        (
            HEADER + ROW.replace("qc@h.example.cn", "qc@h.example.cn b@c"),
            "is not an e-mail address",
        ),
        (HEADER, "no organisations in it"),
    ],
    ids=[
        "check-character",
        "length",
        "missing-column",
        "unknown-column",
        "duplicate",
        "short-row",
        "newline-in-name",
        "control-character",
        "unknown-kind",
        "bad-date",
        "dates-reversed",
        "bad-email",
        "empty",
    ],
)
def test_registry_mistake_names_line_field_and_fix(text, expected):
    with pytest.raises(RegistryError) as err:
        parse_registry(text, "/x/reg.csv")
    message = str(err.value)
    assert expected in message
    assert message.startswith("registry /x/reg.csv")
    assert "\n" not in message
    assert isinstance(err.value, OperatorError)


def test_record_line_is_where_it_starts_after_a_quoted_line_break():
    text = HEADER + ROW.replace("信阳市中心医院", '"a, b"') + ROW.replace(GOOD, WRONG_CHECK)
    with pytest.raises(RegistryError, match="line 3: org_code"):
        parse_registry(text, "reg.csv")


def test_missing_and_undecodable_registry_files(tmp_path):
    with pytest.raises(
        RegistryError,
        match=r"cannot read it \(No such file or directory\); set HQLAKE_ORG_REGISTRY",
    ):
        load_registry(tmp_path / "nope.csv")
    gbk = tmp_path / "gbk.csv"
    gbk.write_bytes((HEADER + ROW).encode("gb18030"))
    with pytest.raises(RegistryError, match=r"not UTF-8 .* save it as UTF-8"):
        load_registry(gbk)


def test_header_in_another_order_and_blank_lines_are_fine():
    text = "name,org_code,kind,level,county_code,emails,active_from,active_to\n\n"
    text += f"信阳市中心医院,{GOOD},hospital,tertiary,411502,qc@h.example.cn,2020-01-01,\n\n"
    assert parse_registry(text, "reg.csv").get(GOOD).name == "信阳市中心医院"
