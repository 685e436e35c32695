import datetime as dt
import gzip
import io

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import xlsxwriter

from ingest.readers import UnreadableFile, decode_text, detect_format, read_upload

CSV = "患者编号,姓名\np1,张三\np2,李四\n"


@pytest.mark.parametrize(
    ("data", "encoding"),
    [
        (CSV.encode("utf-8"), "utf-8"),
        (b"\xef\xbb\xbf" + CSV.encode("utf-8"), "utf-8-sig"),
        (CSV.encode("gbk"), "gb18030"),
        (CSV.encode("gb18030"), "gb18030"),
    ],
)
def test_csv_encodings_read_the_same_text(data, encoding):
    table = read_upload(data, "csv")
    assert table.encoding == encoding
    assert table.table.column_names == ["患者编号", "姓名"]
    assert table.table.column("姓名").to_pylist() == ["张三", "李四"]
    assert table.lines.to_pylist() == [2, 3]


def test_utf16_and_garbage_are_refused_with_a_reason():
    with pytest.raises(UnreadableFile, match="UTF-16"):
        decode_text(CSV.encode("utf-16"))
    with pytest.raises(UnreadableFile, match="neither UTF-8"):
        decode_text(b"a,b\n\x81\x20\xff\xfe\x00\n")


def test_csv_gz_and_corrupt_gzip():
    table = read_upload(gzip.compress(CSV.encode(), mtime=0), "csv.gz")
    assert table.table.num_rows == 2
    with pytest.raises(UnreadableFile, match="not a valid gzip"):
        read_upload(gzip.compress(CSV.encode())[:20], "csv.gz")


def test_empty_csv_is_refused_but_empty_jsonl_is_an_empty_batch():
    with pytest.raises(UnreadableFile, match="header-only file"):
        read_upload(b"", "csv")
    assert read_upload(b"", "jsonl").rows_read == 0


def test_ragged_csv_rows_are_returned_with_line_numbers():
    table = read_upload(b"a,b\n1,2\n3\n4,5,6\n7,8\n", "csv")
    assert table.table.column("a").to_pylist() == ["1", "7"]
    assert table.lines.to_pylist() == [2, 5]
    assert [(b.line, b.text) for b in table.bad_rows] == [(3, "3"), (4, "4,5,6")]
    assert "1 fields, the header has 2" in table.bad_rows[0].reason
    assert table.rows_read == 4


def test_jsonl_values_become_text_and_bad_lines_are_kept():
    table = read_upload(b'{"A": 1, "b": "x"}\nnot json\n{"a": 2.5, "b": null}\n[1]\n', "jsonl")
    assert table.table.column("a").to_pylist() == ["1", "2.5"]
    assert table.lines.to_pylist() == [1, 3]
    assert [b.line for b in table.bad_rows] == [2, 4]


def test_parquet_typed_columns_become_standard_text():
    sink = io.BytesIO()
    pq.write_table(
        pa.table(
            {
                "d": pa.array([dt.date(2026, 1, 2)]),
                "ts": pa.array([dt.datetime(2026, 1, 2, 8, 30)], pa.timestamp("ms")),
                "utc": pa.array(
                    [dt.datetime(2026, 1, 2, 0, 30, tzinfo=dt.UTC)], pa.timestamp("us", "UTC")
                ),
                "f": [12.5],
                "i": [3],
                "flag": [True],
            }
        ),
        sink,
    )
    row = read_upload(sink.getvalue(), "parquet").table.to_pylist()[0]
    assert row == {
        "d": "2026-01-02",
        "ts": "2026-01-02 08:30:00",
        "utc": "2026-01-02 08:30:00",
        "f": "12.5",
        "i": "3",
        "flag": "1",
    }
    with pytest.raises(UnreadableFile, match="Parquet"):
        read_upload(b"PAR1 not really", "parquet")


def test_xlsx_first_sheet_as_text():
    sink = io.BytesIO()
    book = xlsxwriter.Workbook(sink, {"in_memory": True})
    sheet = book.add_worksheet()
    sheet.write_row(0, 0, ["Visit_ID", "total_fee", "birth_date"])
    sheet.write_row(1, 0, ["v1", 12.5])
    sheet.write_datetime(
        1, 2, dt.datetime(2026, 1, 2), book.add_format({"num_format": "yyyy-mm-dd"})
    )
    book.close()
    table = read_upload(sink.getvalue(), "xlsx")
    assert table.table.column_names == ["visit_id", "total_fee", "birth_date"]
    assert table.table.to_pylist()[0]["total_fee"] == "12.5"
    assert table.lines.to_pylist() == [2]
    with pytest.raises(UnreadableFile, match="xlsx"):
        read_upload(b"PK\x03\x04 broken", "xlsx")


def test_format_from_extension():
    assert detect_format("a.CSV") == "csv"
    assert detect_format("a.csv.gz") == "csv.gz"
    assert detect_format("a.xls") is None
