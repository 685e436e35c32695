"""Read any allowed upload format into a table of strings, one column per header field.

Typing happens later, against the contract (ingest.typing): here every value stays text so
that nothing is lost or silently converted, and rows that cannot even be split into fields
are returned with their line number and the reason.

Every read is bounded by ReadLimits: sizes, counts and ratios that can be known cheaply
(gzip output while it streams, zip member sizes, Parquet metadata, the CSV header) are
checked before the expensive parse, so a hostile file costs little and is refused with a
short reason naming the cap.
"""

from __future__ import annotations

import codecs
import csv
import datetime as dt
import decimal
import gzip
import io
import json
import re
import zipfile
import zlib
from array import array
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from contracts.timezone import TZ_NAME

FORMATS = {
    ".csv": "csv",
    ".csv.gz": "csv.gz",
    ".parquet": "parquet",
    ".jsonl": "jsonl",
    ".xlsx": "xlsx",
}


_KiB, _MiB = 1 << 10, 1 << 20
# Below this output a compression ratio says nothing: a tiny gzip of a few identical rows
# has a high ratio and costs nothing to read.
_RATIO_FLOOR_BYTES = 8 * _MiB


def _cap(default: int, env: str) -> int:
    return field(default=default, metadata={"env": env})


@dataclass(frozen=True)
class ReadLimits:
    """Caps on the work one upload may cause; the environment variable of each cap (read by
    infra.settings) is in its field's metadata and named in the reason of a refusal.

    Defaults fit the standard with room to spare: its widest dataset has 18 fields, its
    longest value (a list of diagnosis codes) a few hundred bytes, and a whole city uploads
    about a million rows a day, so one file of a day is far below 2 million rows. Exported
    CSV compresses 5 to 20 times; deflate's limit is about 1000, which only bombs reach.
    """

    max_file_bytes: int = _cap(256 * _MiB, "HQLAKE_MAX_FILE_BYTES")
    max_decompressed_bytes: int = _cap(256 * _MiB, "HQLAKE_MAX_DECOMPRESSED_BYTES")
    max_compression_ratio: int = _cap(100, "HQLAKE_MAX_COMPRESSION_RATIO")
    max_rows: int = _cap(2_000_000, "HQLAKE_MAX_ROWS")
    max_columns: int = _cap(500, "HQLAKE_MAX_COLUMNS")
    max_field_bytes: int = _cap(64 * _KiB, "HQLAKE_MAX_FIELD_BYTES")

    def cap(self, name: str) -> str:
        """'cap HQLAKE_X = value', for reasons."""
        spec = self.__dataclass_fields__[name]
        value = getattr(self, name)
        shown = _size(value) if name.endswith("_bytes") else f"{value:,}"
        return f"cap {spec.metadata['env']} = {shown}"


def _size(n: int) -> str:
    for unit, factor in (("GiB", 1 << 30), ("MiB", _MiB), ("KiB", _KiB)):
        if n >= factor:
            return f"{n // factor} {unit}" if n % factor == 0 else f"{n / factor:.1f} {unit}"
    return f"{n:,} bytes"


MAX_REASON_CHARS = 500


def brief(text: str, limit: int = 80) -> str:
    """`text` cut to `limit` characters; reasons quote values and library errors that a
    hostile file can make arbitrarily long."""
    return text if len(text) <= limit else text[: limit - 1] + "…"


def short_list(names: list[str], shown: int = 10) -> str:
    """'a, b, c ... and 99,990 more': column lists in reasons stay short however wide the file."""
    head = ", ".join(brief(n, 40) for n in names[:shown])
    return head if len(names) <= shown else f"{head} ... and {len(names) - shown:,} more"


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


def too_large(size: int, limits: ReadLimits) -> str | None:
    """The reason a file of `size` bytes is refused unread, or None: ingestion asks before
    it reads a file into memory."""
    if size > limits.max_file_bytes:
        return f"is {_size(size)} long, more than the {limits.cap('max_file_bytes')}"
    return None


def read_upload(data: bytes, fmt: str, limits: ReadLimits | None = None) -> StringTable:
    limits = limits or ReadLimits()
    if not data:
        if fmt == "jsonl":  # zero lines is how JSON Lines says "no records today"
            return StringTable(pa.table({}), pa.array([], pa.uint32()), None)
        raise UnreadableFile("is empty (0 bytes); a day without records is a header-only file")
    if reason := too_large(len(data), limits):
        raise UnreadableFile(reason)
    if fmt == "csv.gz":
        return _check_fields(_read_csv(_gunzip(data, limits), limits), limits)
    if fmt == "csv":
        return _check_fields(_read_csv(data, limits), limits)
    if fmt == "jsonl":
        return _check_fields(_read_jsonl(data, limits), limits)
    if fmt == "parquet":
        return _check_fields(_read_parquet(data, limits), limits)
    if fmt == "xlsx":
        return _check_fields(_read_xlsx(data, limits), limits)
    raise UnreadableFile(f"has unsupported format {fmt!r}")


def _expansion_cap(compressed: int, limits: ReadLimits) -> tuple[int, str]:
    """How many bytes a compressed input of `compressed` bytes may expand to, and that limit
    in words: the absolute cap, or the ratio cap once past the floor."""
    by_ratio = max(compressed * limits.max_compression_ratio, _RATIO_FLOOR_BYTES)
    if by_ratio < limits.max_decompressed_bytes:
        return by_ratio, (
            f"{limits.max_compression_ratio} times its size ({limits.cap('max_compression_ratio')})"
        )
    return limits.max_decompressed_bytes, (
        f"{_size(limits.max_decompressed_bytes)} ({limits.cap('max_decompressed_bytes')})"
    )


def _gunzip(data: bytes, limits: ReadLimits) -> bytes:
    # GzipFile.read(n) decompresses incrementally and stops after n bytes of output, so a
    # bomb costs at most the cap (gzip.decompress would inflate all of it first).
    allowed, cap = _expansion_cap(len(data), limits)
    try:
        with gzip.GzipFile(fileobj=io.BytesIO(data)) as stream:
            out = stream.read(allowed + 1)
    except (OSError, EOFError, zlib.error) as exc:
        raise UnreadableFile(f"is not a valid gzip file ({brief(str(exc))})") from None
    if len(out) > allowed:
        raise UnreadableFile(f"decompresses to more than {cap}")
    return out


def _check_fields(strings: StringTable, limits: ReadLimits) -> StringTable:
    """Refuse a file with a column name or a value longer than the field cap (UTF-8 bytes)."""
    cap = limits.max_field_bytes
    for name in strings.table.column_names:
        if len(name.encode()) > cap:
            size = len(name.encode())
            raise UnreadableFile(
                f"has a column name of {size:,} bytes ({limits.cap('max_field_bytes')})"
            )
    for name, column in zip(strings.table.column_names, strings.table.columns, strict=True):
        lengths = pc.binary_length(column)
        longest = pc.max(lengths).as_py()
        if longest is not None and longest > cap:
            row = pc.index(pc.greater(lengths, cap), True).as_py()
            raise UnreadableFile(
                f"has a value of {longest:,} bytes in column {brief(name, 40)!r} at line "
                f"{strings.lines[row].as_py()} ({limits.cap('max_field_bytes')})"
            )
    return strings


def _too_many_columns(count: int, limits: ReadLimits, where: str = "") -> UnreadableFile:
    return UnreadableFile(
        f"has {count:,} columns{where}, more than the {limits.cap('max_columns')}"
    )


def _too_many_rows(limits: ReadLimits, what: str = "rows") -> UnreadableFile:
    return UnreadableFile(f"has more than {limits.max_rows:,} {what} ({limits.cap('max_rows')})")


def _physical_lines(text: str) -> Iterator[str]:
    """The lines of `text` with their ends, split where pyarrow's CSV parser splits (\\n, \\r\\n,
    lone \\r) and nowhere else; str.splitlines() would also split on U+2028, \\x0c, ..."""
    return (m.group() for m in re.finditer(r"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+\Z", text))


def _scan_csv(text: str, limits: ReadLimits) -> tuple[list[str], int, array]:
    """(header fields, physical lines the header spans, start line of every later record).

    pyarrow reports neither where a record starts nor, for a bad row, more than its record
    ordinal; the csv module splits records the same way (quoted line breaks, doubled quotes,
    a quote inside an unquoted field taken literally, blank lines yielding []) and counts
    the lines it consumed (`line_num`), so one pass of it gives every record's first line.
    The same pass enforces the column and row caps before pyarrow builds any column.
    """
    # The module's own field cap (131072 characters by default) must not be the tighter one.
    # It is process-wide: raised for this scan and put back (ingest is single-threaded).
    previous = csv.field_size_limit()
    csv.field_size_limit(max(previous, limits.max_field_bytes))
    reader = csv.reader(_physical_lines(text))
    starts = array("I")
    try:
        header = next(reader, [])
        header_lines = reader.line_num
        if len(header) > limits.max_columns:
            raise _too_many_columns(len(header), limits, " in its header")
        consumed = header_lines
        for record in reader:
            if record:  # [] is a blank line, which pyarrow skips too
                if len(record) > limits.max_columns:
                    raise _too_many_columns(len(record), limits, f" at line {consumed + 1}")
                if len(starts) >= limits.max_rows:
                    raise _too_many_rows(limits)
                starts.append(consumed + 1)
            consumed = reader.line_num
    except csv.Error:  # only the field size limit: this dialect accepts any text
        raise UnreadableFile(
            f"has a value of more than {csv.field_size_limit():,} characters by line "
            f"{reader.line_num} ({limits.cap('max_field_bytes')})"
        ) from None
    finally:
        csv.field_size_limit(previous)
    return header, header_lines, starts


def _read_csv(data: bytes, limits: ReadLimits) -> StringTable:
    text, encoding = decode_text(data)
    fields, header_lines, starts = _scan_csv(text, limits)
    header = [normalise_header(h) for h in fields]
    if not any(header):
        raise UnreadableFile("has no header row")
    invalid: list[pacsv.InvalidRow] = []

    def on_invalid(row: pacsv.InvalidRow) -> str:
        invalid.append(row)
        return "skip"

    try:
        table = pacsv.read_csv(
            io.BytesIO(text.encode("utf-8")),
            # Single-threaded so that the invalid-row handler gets record numbers.
            read_options=pacsv.ReadOptions(
                use_threads=False, column_names=header, skip_rows=header_lines, block_size=1 << 24
            ),
            parse_options=pacsv.ParseOptions(invalid_row_handler=on_invalid),
            convert_options=pacsv.ConvertOptions(
                column_types={h: pa.string() for h in header},
                strings_can_be_null=False,
                quoted_strings_can_be_null=False,
            ),
        )
    except pa.ArrowInvalid as exc:
        raise UnreadableFile(f"is not a readable CSV file ({brief(str(exc), 200)})") from None
    # InvalidRow.number is skip_rows plus the record's ordinal after them (blank lines not
    # counted), i.e. an index into `starts`, not a physical line (checked in the tests).
    bad_index = [(row.number or 0) - header_lines - 1 for row in invalid]
    if len(starts) != table.num_rows + len(invalid) or not all(
        0 <= i < len(starts) for i in bad_index
    ):
        raise UnreadableFile(  # never seen: the two parsers disagree on where records end
            f"splits into {table.num_rows + len(invalid):,} records by one CSV parser and "
            f"{len(starts):,} by another; check its quoting"
        )
    lines = np.frombuffer(starts, dtype=np.uint32)
    good = np.ones(len(lines), dtype=bool)
    good[bad_index] = False
    bad = [
        BadRow(
            line=int(lines[i]),
            reason=f"row has {row.actual_columns} fields, the header has {row.expected_columns}",
            text=row.text,
        )
        for i, row in zip(bad_index, invalid, strict=True)
    ]
    for b in bad:
        if len(b.text.encode()) > limits.max_field_bytes:
            raise UnreadableFile(
                f"has a row of {len(b.text.encode()):,} bytes at line {b.line} that does not "
                f"split into the header's fields ({limits.cap('max_field_bytes')})"
            )
    return StringTable(table, pa.array(lines[good], pa.uint32()), encoding, bad)


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


def _unique_header(raw_names: list, names: list[str]) -> None:
    """Refuse a header in which two columns mean one field after normalising (`visit_id` and
    `VISIT_ID`): keeping either would drop the other's values without a word."""
    seen: dict[str, list[str]] = {}
    for raw, name in zip(raw_names, names, strict=True):
        seen.setdefault(name, []).append(str(raw))
    twins = {name: spelt for name, spelt in seen.items() if len(spelt) > 1}
    if twins:
        shown = [f"{n} ({', '.join(map(repr, spelt))})" for n, spelt in twins.items()]
        raise UnreadableFile(f"has duplicated header columns: {short_list(shown)}")


class _JsonObject(dict):
    """A JSON object that remembers its keys as sent, repeats included (json keeps the last)."""

    def __init__(self, pairs: list[tuple[str, object]]):
        super().__init__(pairs)
        self.keys_sent = [k for k, _ in pairs]


def _read_jsonl(data: bytes, limits: ReadLimits) -> StringTable:
    text, encoding = decode_text(data)
    # JSON Lines separates records by \n only (a trailing \r is part of the separator);
    # str.splitlines() would also split on U+2028/U+2029, which are legal inside strings.
    if text.count("\n") + (not text.endswith("\n")) > limits.max_rows:
        raise _too_many_rows(limits, "lines")
    rows: list[dict[str, str | None]] = []
    lines: list[int] = []
    bad: list[BadRow] = []
    columns: dict[str, None] = {}
    for number, raw in enumerate(text.split("\n"), start=1):
        raw = raw.removesuffix("\r")
        if not raw.strip():
            continue
        try:
            obj = json.loads(raw, object_pairs_hook=_JsonObject)
        except json.JSONDecodeError as exc:
            bad.append(BadRow(number, f"is not valid JSON ({exc.msg} at column {exc.colno})", raw))
            continue
        except RecursionError:
            bad.append(BadRow(number, "is nested too deeply to be a record", brief(raw, 200)))
            continue
        if not isinstance(obj, dict):
            bad.append(BadRow(number, "is not a JSON object", brief(raw, 200)))
            continue
        record = {normalise_header(k): _stringify(v) for k, v in obj.items()}
        if len(record) < len(obj.keys_sent):
            sent = [normalise_header(k) for k in obj.keys_sent]
            twice = sorted({k for k in sent if sent.count(k) > 1})
            bad.append(BadRow(number, f"has two values for {short_list(twice)}", brief(raw, 200)))
            continue
        columns.update(dict.fromkeys(record))
        if len(columns) > limits.max_columns:
            raise _too_many_columns(len(columns), limits, f" by line {number}")
        rows.append(record)
        lines.append(number)
    for b in bad:
        if len(b.text.encode()) > limits.max_field_bytes:
            raise UnreadableFile(
                f"has a line of {len(b.text.encode()):,} bytes at line {b.line} that is not a "
                f"JSON object ({limits.cap('max_field_bytes')})"
            )
    names = list(columns)
    if rows and not names:  # a table without columns has no rows: they would vanish
        raise UnreadableFile(f"has {len(rows):,} JSON objects and none of them has a field")
    table = pa.table({n: pa.array([r.get(n) for r in rows], pa.string()) for n in names})
    return StringTable(table, pa.array(lines, pa.uint32()), encoding, bad)


def _to_string_column(column: pa.ChunkedArray) -> pa.ChunkedArray:
    kind = column.type
    if pa.types.is_timestamp(kind):
        if kind.tz:
            column = pc.local_timestamp(pc.cast(column, pa.timestamp(kind.unit, tz=TZ_NAME)))
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


def _read_parquet(data: bytes, limits: ReadLimits) -> StringTable:
    try:
        parquet = pq.ParquetFile(io.BytesIO(data))
    except (pa.ArrowException, OSError) as exc:
        raise UnreadableFile(f"is not a readable Parquet file ({brief(str(exc), 200)})") from None
    # The footer states the shape and the encoded size: refuse before decoding a page.
    meta = parquet.metadata
    if meta.num_columns > limits.max_columns:
        raise _too_many_columns(meta.num_columns, limits)
    if meta.num_rows > limits.max_rows:
        raise _too_many_rows(limits)
    allowed, cap = _expansion_cap(len(data), limits)
    encoded = sum(meta.row_group(i).total_byte_size for i in range(meta.num_row_groups))
    if encoded > allowed:
        raise UnreadableFile(f"decompresses to {_size(encoded)}, more than {cap}")
    # Run-length and dictionary encodings make the encoded size a lower bound only (two
    # million zeros take a few bytes), so the decoded size is counted batch by batch.
    batches, decoded = [], 0
    try:
        for batch in parquet.iter_batches(batch_size=65_536):
            decoded += batch.nbytes
            if decoded > allowed:
                raise UnreadableFile(f"decompresses to more than {cap}")
            batches.append(batch)
        table = pa.Table.from_batches(batches, parquet.schema_arrow)
    except (pa.ArrowException, OSError) as exc:
        raise UnreadableFile(f"is not a readable Parquet file ({brief(str(exc), 200)})") from None
    names = [normalise_header(n) for n in table.column_names]
    _unique_header(table.column_names, names)
    try:
        columns = [_to_string_column(table.column(i)) for i in range(table.num_columns)]
    except pa.ArrowException as exc:
        raise UnreadableFile(
            f"has a Parquet column that cannot be read as text ({brief(str(exc), 200)})"
        ) from None
    strings = pa.table(dict(zip(names, columns, strict=True))) if names else pa.table({})
    return StringTable(strings, pa.array(range(1, table.num_rows + 1), pa.uint32()), None)


def _check_zip(data: bytes, limits: ReadLimits) -> None:
    """An xlsx workbook is a zip: refuse a zip bomb before fastexcel inflates it.

    The central directory's sizes are summed first (free). They can lie, so every member
    is then inflated once in 1 MiB chunks and dropped: zipfile stops a member at its
    declared size and fails its CRC when the data runs on, so an archive that passes holds
    no more than it declares.
    """
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, OSError) as exc:
        raise UnreadableFile(f"is not a readable xlsx workbook ({brief(str(exc))})") from None
    allowed, cap = _expansion_cap(len(data), limits)
    with archive:
        declared = sum(info.file_size for info in archive.infolist())
        if declared > allowed:
            raise UnreadableFile(f"decompresses to {_size(declared)}, more than {cap}")
        try:
            for info in archive.infolist():
                with archive.open(info) as member:
                    while member.read(_MiB):
                        pass
        except (zipfile.BadZipFile, OSError, EOFError, zlib.error, NotImplementedError) as exc:
            raise UnreadableFile(f"is not a readable xlsx workbook ({brief(str(exc))})") from None


def _read_xlsx(data: bytes, limits: ReadLimits) -> StringTable:
    import fastexcel

    _check_zip(data, limits)
    try:
        reader = fastexcel.read_excel(data)
        # The standard's workbook is one sheet; rows on another would be lost without a word.
        others = [
            name
            for i, name in enumerate(reader.sheet_names[1:], start=1)
            if reader.load_sheet(i, header_row=None, n_rows=1).total_height
        ]
        if others:
            raise UnreadableFile(
                f"has data on sheets other than the first ({short_list(others)}); "
                "upload one sheet per file"
            )
        sheet = reader.load_sheet(0, header_row=0, dtypes="string")
        if sheet.width > limits.max_columns:
            raise _too_many_columns(sheet.width, limits)
        if sheet.total_height > limits.max_rows:
            raise _too_many_rows(limits)
        table = sheet.to_arrow()
    except UnreadableFile:
        raise
    except Exception as exc:  # fastexcel raises its own error family for corrupt workbooks
        raise UnreadableFile(f"is not a readable xlsx workbook ({brief(str(exc), 200)})") from None
    names = [normalise_header(n) for n in table.column_names]
    _unique_header(table.column_names, names)
    columns = [pc.cast(table.column(i), pa.string()) for i in range(table.num_columns)]
    strings = pa.table(dict(zip(names, columns, strict=True)))
    # Header is sheet row 1, so the first data row is row 2.
    return StringTable(strings, pa.array(range(2, table.num_rows + 2), pa.uint32()), None)
