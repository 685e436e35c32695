"""Bytes of an upload file in each allowed format, written deterministically.

All values are text (the standard's forms); null is an empty cell in CSV/XLSX and JSON null
in JSONL. gzip uses mtime 0, XLSX fixed document properties, so two runs give equal bytes.
"""

from __future__ import annotations

import csv
import datetime as dt
import gzip
import io
import os
from pathlib import Path

import polars as pl
import xlsxwriter

CSV_FORMATS = ("csv", "csv_bom", "csv_gbk", "csv_gb18030", "csv_gz")
FORMATS = (*CSV_FORMATS, "jsonl", "parquet", "xlsx")
EXTENSION = {
    "csv": ".csv",
    "csv_bom": ".csv",
    "csv_gbk": ".csv",
    "csv_gb18030": ".csv",
    "csv_gz": ".csv.gz",
    "jsonl": ".jsonl",
    "parquet": ".parquet",
    "xlsx": ".xlsx",
}
XLSX_CREATED = dt.datetime(2026, 1, 1, 0, 0, 0)


def csv_text(frame: pl.DataFrame, bad_rows: dict[int, str] | None = None) -> str:
    """UTF-8 CSV text; `bad_rows` maps a row number to an extra field appended to that line."""
    text = frame.write_csv(line_terminator="\n")
    if not bad_rows:
        return text
    lines = text.split("\n")
    for row, extra in bad_rows.items():
        buf = io.StringIO()
        csv.writer(buf, lineterminator="").writerow([extra])
        lines[row + 1] = lines[row + 1] + "," + buf.getvalue()
    return "\n".join(lines)


def gzip_bytes(data: bytes) -> bytes:
    return gzip.compress(data, compresslevel=6, mtime=0)


def encode(frame: pl.DataFrame, fmt: str, bad_rows: dict[int, str] | None = None) -> bytes:
    if bad_rows and fmt not in CSV_FORMATS:
        raise ValueError(f"a malformed row needs a CSV format, not {fmt}")
    if fmt in CSV_FORMATS:
        text = csv_text(frame, bad_rows)
        if fmt == "csv_bom":
            return "\ufeff".encode() + text.encode("utf-8")
        if fmt == "csv_gbk":
            return text.encode("gbk")
        if fmt == "csv_gb18030":
            return text.encode("gb18030")
        data = text.encode("utf-8")
        return gzip_bytes(data) if fmt == "csv_gz" else data
    if fmt == "jsonl":
        return frame.write_ndjson().encode("utf-8")
    if fmt == "parquet":
        buf = io.BytesIO()
        frame.write_parquet(buf, compression="zstd", statistics=False)
        return buf.getvalue()
    if fmt == "xlsx":
        return xlsx_bytes(frame)
    raise ValueError(f"unknown format {fmt!r}")


def xlsx_bytes(frame: pl.DataFrame) -> bytes:
    buf = io.BytesIO()
    book = xlsxwriter.Workbook(
        buf,
        {
            "in_memory": True,
            "strings_to_numbers": False,
            "strings_to_formulas": False,
            "strings_to_urls": False,
        },
    )
    book.set_properties({"created": XLSX_CREATED, "author": "hqlake sample city"})
    sheet = book.add_worksheet("Sheet1")
    sheet.write_row(0, 0, frame.columns)
    for r, row in enumerate(frame.iter_rows(), start=1):
        for c, value in enumerate(row):
            if value is not None:
                sheet.write_string(r, c, value)
    book.close()
    return buf.getvalue()


def write_file(path: Path, data: bytes, mtime: int) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    os.utime(path, (mtime, mtime))
