"""Values on their way out to people: spreadsheet cells, mail headers, lines of plain text.

Record keys, organisation names and refusal reasons come from uploads and the registry, so
whatever they hold must reach a reader as text, never as a formula, a header or a fake line.
HTML pages escape with Jinja2's autoescape (expectations.publish.report, the HTML e-mail) and
GX Data Docs get escaped keys (expectations.engines.gxrun); this module owns the other outputs.

Spreadsheet cells follow OWASP's CSV-injection advice: a text cell whose first character (or
first after leading blanks) is a formula trigger — `=` `+` `-` `@`, tab, CR, LF, NUL, `|`, or
the full-width `＝` `＋` `－` `＠` that CJK spreadsheets also accept — gets a leading `'`, and
every cell is quoted. Only text cells are neutralised: a number we write ourselves (an int or
a float, such as a negative amount) stays a number, while a key that looks like one (`-2+3`)
is text and gets the prefix. There is no spreadsheet export other than CSV today (xlsxwriter
only writes the sample city's uploads); an xlsx export would write text cells with
`write_string(spreadsheet_cell(v))` and open its workbook with `strings_to_formulas: False`.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Sequence

FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r", "\n", "\0", "|", "＝", "＋", "－", "＠")
_BLANKS = " \u3000"  # spaces a spreadsheet may skip before reading a formula

# C0 and C1 controls (tab, CR and LF included), DEL, the Unicode line and paragraph
# separators, and bidirectional embeddings, overrides and isolates (text that displays
# reversed, as in "Trojan Source").
_CONTROLS = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]+")


def spreadsheet_cell(value: object) -> object:
    """`value` as a spreadsheet reads it safely: text that could start a formula gets a
    leading `'`; numbers (not bools) are returned as they are, None as ''."""
    if value is None:
        return ""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return value
    text = str(value)
    if text.startswith(FORMULA_TRIGGERS) or text.lstrip(_BLANKS).startswith(FORMULA_TRIGGERS):
        return "'" + text
    return text


def spreadsheet_csv(header: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    """A CSV that Excel and WPS open as UTF-8 text: BOM, CRLF, every cell quoted and
    neutralised with `spreadsheet_cell`."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\r\n", quoting=csv.QUOTE_ALL)
    for row in (header, *rows):
        writer.writerow([spreadsheet_cell(v) for v in row])
    return "\ufeff" + out.getvalue()


def one_line(value: object) -> str:
    """`value` as one line of text: every run of control characters (CR and LF included)
    becomes one space, so a value can neither add a mail header nor start a line of its own
    in a plain-text message. For header values and for values put into plain-text templates."""
    return _CONTROLS.sub(" ", str(value)).strip()
