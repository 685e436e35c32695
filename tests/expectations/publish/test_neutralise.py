"""Spreadsheet cells, header values and plain-text values as they leave hqlake."""

from __future__ import annotations

import csv
import io

import pytest

from expectations.publish.neutralise import one_line, spreadsheet_cell, spreadsheet_csv


@pytest.mark.parametrize(
    "text",
    [
        '=HYPERLINK("http://x")',
        "+1",
        "-2+3",
        "@SUM(A1)",
        "\t=1",
        "\r=1",
        "\n=1",
        "|cmd",
        "＝1+1",
        "＠SUM(A1)",
        "  =1+1",
        "\u3000=1",
    ],
)
def test_text_that_could_start_a_formula_gets_a_quote(text):
    assert spreadsheet_cell(text) == "'" + text


@pytest.mark.parametrize("text", ["P0001", "110*************19", "a=b", "患者-1", "'=1", ""])
def test_other_text_is_unchanged(text):
    assert spreadsheet_cell(text) == text


def test_numbers_stay_numbers_and_none_is_empty():
    assert spreadsheet_cell(-12.5) == -12.5 and spreadsheet_cell(-3) == -3
    assert spreadsheet_cell(True) == "True"  # a bool is text, not a number
    assert spreadsheet_cell(None) == ""


def test_csv_quotes_every_cell_and_opens_as_utf8():
    text = spreadsheet_csv(["key", "amount"], [["=1+1", -2], ['say "hi"', 3]])
    assert text.startswith("\ufeff")
    assert text[1:].split("\r\n") == [
        '"key","amount"',
        '"\'=1+1","-2"',
        '"say ""hi""","3"',
        "",
    ]
    rows = list(csv.reader(io.StringIO(text[1:])))
    assert rows[1] == ["'=1+1", "-2"]


def test_one_line_removes_line_breaks_and_controls():
    assert one_line("甲医院\r\nBcc: x@evil.example") == "甲医院 Bcc: x@evil.example"
    assert one_line("a\u2028b\u2029c\x85d\x00e\x1bf\x7fg") == "a b c d e f g"
    assert one_line("abc\u202edcba") == "abc dcba"  # no right-to-left override
    assert one_line(" O'Brien & <Sons> ") == "O'Brien & <Sons>"  # text is not escaped
    assert one_line(92.4) == "92.4"
