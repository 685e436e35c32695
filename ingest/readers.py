"""Read any allowed upload format into a table of strings, one column per header field.

Typing happens later, against the contract (ingest.typing): here every value stays text so
that nothing is lost or silently converted, and rows that cannot even be split into fields
are returned with their line number and the reason.
"""

from __future__ import annotations

import codecs
import csv
import datetime as dt
import decimal
import gzip
import io
import json
import zlib
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

FORMATS = {
    ".csv": "csv",
    ".csv.gz": "csv.gz",
    ".parquet": "parquet",
    ".jsonl": "jsonl",
    ".xlsx": "xlsx",
}


class UnreadableFile(Exception):
    """The file as a whole cannot be read; the message is the reason shown to people."""


@dataclass
class BadRow:
    line: int
    reason: str
    text: str


@dataclass
class StringTable:
    """Header-named string columns, the source line of each row, and rows that failed to split."""

    table: pa.Table
    lines: pa.Array
    encoding: str | None
    bad_rows: list[BadRow] = field(default_factory=list)

    @property
    def rows_read(self) -> int:
        return self.table.num_rows + len(self.bad_rows)


def detect_format(name: str) -> str | None:
    lower = name.lower()
    for suffix in sorted(FORMATS, key=len, reverse=True):
        if lower.endswith(suffix):
            return FORMATS[suffix]
    return None


def decode_text(data: bytes) -> tuple[str, str]:
    """Decode CSV/JSONL bytes; returns (text, encoding).

    The standard allows exactly UTF-8, UTF-8 with BOM and GB18030/GBK. A strict UTF-8
    decode settles the common case; GB18030 (a superset of GBK) is tried next. A statistical
    detector (charset-normalizer) would guess among dozens of encodings and can pick a wrong
    one for short Chinese text, which here would corrupt names silently.
    """
    if data.startswith(codecs.BOM_UTF8):
        try:
            return data[len(codecs.BOM_UTF8) :].decode("utf-8"), "utf-8-sig"
        except UnicodeDecodeError as exc:
            raise UnreadableFile(
                f"has a UTF-8 BOM but invalid UTF-8 at byte {exc.start + 3}"
            ) from None
    if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        raise UnreadableFile("is UTF-16 encoded; the standard allows UTF-8 or GB18030/GBK")
    try:
        return data.decode("utf-8"), "utf-8"
    except UnicodeDecodeError as utf8_error:
        try:
            return data.decode("gb18030"), "gb18030"
        except UnicodeDecodeError:
            raise UnreadableFile(
                f"is neither UTF-8 (invalid byte at {utf8_error.start}) nor GB18030/GBK"
            ) from None


def normalise_header(name: object) -> str:
    return str(name).strip().lstrip("\ufeff").strip().lower()


def read_upload(data: bytes, fmt: str) -> StringTable:
    if not data:
        if fmt == "jsonl":  # zero lines is how JSON Lines says "no records today"
            return StringTable(pa.table({}), pa.array([], pa.uint32()), None)
        raise UnreadableFile("is empty (0 bytes); a day without records is a header-only file")
    if fmt == "csv.gz":
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError, zlib.error) as exc:
            raise UnreadableFile(f"is not a valid gzip file ({exc})") from None
        return _read_csv(data)
    if fmt == "csv":
        return _read_csv(data)
    if fmt == "jsonl":
        return _read_jsonl(data)
    if fmt == "parquet":
        return _read_parquet(data)
    if fmt == "xlsx":
        return _read_xlsx(data)
    raise UnreadableFile(f"has unsupported format {fmt!r}")


def _read_csv(data: bytes) -> StringTable:
    text, encoding = decode_text(data)
    first_line, _, _ = text.partition("\n")
    header = [normalise_header(h) for h in next(csv.reader([first_line]))]
    if not any(header):
        raise UnreadableFile("has no header row")
    bad: list[BadRow] = []

    def on_invalid(row: pacsv.InvalidRow) -> str:
        bad.append(
            BadRow(
                line=row.number or 0,
                reason=(
                    f"row has {row.actual_columns} fields, the header has {row.expected_columns}"
                ),
                text=row.text,
            )
        )
        return "skip"

    try:
        table = pacsv.read_csv(
            io.BytesIO(text.encode("utf-8")),
            # Single-threaded so that the invalid-row handler gets physical line numbers.
            read_options=pacsv.ReadOptions(
                use_threads=False, column_names=header, skip_rows=1, block_size=1 << 24
            ),
            parse_options=pacsv.ParseOptions(invalid_row_handler=on_invalid),
            convert_options=pacsv.ConvertOptions(
                column_types={h: pa.string() for h in header},
                strings_can_be_null=False,
                quoted_strings_can_be_null=False,
            ),
        )
    except pa.ArrowInvalid as exc:
        raise UnreadableFile(f"is not a readable CSV file ({exc})") from None
    return StringTable(
        table, _line_numbers(table.num_rows, [b.line for b in bad], first=2), encoding, bad
    )


def _line_numbers(rows: int, skipped: list[int], first: int) -> pa.Array:
    """Physical line of each parsed row, given the lines of skipped rows (one line per row)."""
    candidates = np.arange(first, first + rows + len(skipped), dtype=np.uint32)
    if skipped:
        candidates = candidates[~np.isin(candidates, np.asarray(skipped, dtype=np.uint32))]
    return pa.array(candidates[:rows], pa.uint32())


def _stringify(value: object) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, dt.datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return format(value, "f")
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def _read_jsonl(data: bytes) -> StringTable:
    text, encoding = decode_text(data)
    rows: list[dict[str, str | None]] = []
    lines: list[int] = []
    bad: list[BadRow] = []
    columns: dict[str, None] = {}
    for number, raw in enumerate(text.splitlines(), start=1):
        if not raw.strip():
            continue
        try:
            obj = json.loads(raw)
        except json.JSONDecodeError as exc:
            bad.append(BadRow(number, f"is not valid JSON ({exc.msg} at column {exc.colno})", raw))
            continue
        if not isinstance(obj, dict):
            bad.append(BadRow(number, "is not a JSON object", raw))
            continue
        record = {normalise_header(k): _stringify(v) for k, v in obj.items()}
        columns.update(dict.fromkeys(record))
        rows.append(record)
        lines.append(number)
    names = list(columns)
    table = pa.table({n: pa.array([r.get(n) for r in rows], pa.string()) for n in names})
    return StringTable(table, pa.array(lines, pa.uint32()), encoding, bad)


def _to_string_column(column: pa.ChunkedArray) -> pa.ChunkedArray:
    kind = column.type
    if pa.types.is_timestamp(kind):
        if kind.tz:
            column = pc.local_timestamp(
                pc.cast(column, pa.timestamp(kind.unit, tz="Asia/Shanghai"))
            )
        # Whole seconds: the standard's datetime has none, and %S would print a fraction.
        column = pc.cast(column, pa.timestamp("s", tz=None), safe=False)
        return pc.strftime(column, format="%Y-%m-%d %H:%M:%S")
    if pa.types.is_date(kind):
        return pc.strftime(column, format="%Y-%m-%d")
    if pa.types.is_boolean(kind):
        return pc.cast(pc.cast(column, pa.int8()), pa.string())
    if pa.types.is_floating(kind):
        return pa.chunked_array(
            [pa.array([_stringify(v) for v in column.to_pylist()], pa.string())]
        )
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        return pc.cast(column, pa.string())
    return pc.cast(column, pa.string())


def _read_parquet(data: bytes) -> StringTable:
    try:
        table = pq.read_table(io.BytesIO(data))
    except (pa.ArrowException, OSError) as exc:
        raise UnreadableFile(f"is not a readable Parquet file ({exc})") from None
    names = [normalise_header(n) for n in table.column_names]
    try:
        columns = [_to_string_column(table.column(i)) for i in range(table.num_columns)]
    except pa.ArrowException as exc:
        raise UnreadableFile(f"has a Parquet column that cannot be read as text ({exc})") from None
    strings = pa.table(dict(zip(names, columns, strict=True))) if names else pa.table({})
    return StringTable(strings, pa.array(range(1, table.num_rows + 1), pa.uint32()), None)


def _read_xlsx(data: bytes) -> StringTable:
    import fastexcel

    try:
        reader = fastexcel.read_excel(data)
        sheet = reader.load_sheet(0, header_row=0, dtypes="string")
        table = sheet.to_arrow()
    except Exception as exc:  # fastexcel raises its own error family for corrupt workbooks
        raise UnreadableFile(f"is not a readable xlsx workbook ({exc})") from None
    names = [normalise_header(n) for n in table.column_names]
    columns = [pc.cast(table.column(i), pa.string()) for i in range(table.num_columns)]
    strings = pa.table(dict(zip(names, columns, strict=True)))
    # Header is sheet row 1, so the first data row is row 2.
    return StringTable(strings, pa.array(range(2, table.num_rows + 2), pa.uint32()), None)
