import datetime as dt
import gzip
import io
import json
import subprocess
import sys
import zipfile

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import xlsxwriter

from ingest.readers import (
    ReadLimits,
    UnreadableFile,
    decode_text,
    detect_format,
    read_upload,
    short_list,
)

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


# ---- bounded work per file (issue 11, class 5) ------------------------------------------

# Run in a fresh interpreter so that ru_maxrss (the peak RSS of the process) measures this
# read alone: 1 MB of gzip that inflates to 1 GiB of zeros.
_BOMB = """
import gzip, resource, sys
from ingest.readers import UnreadableFile, read_upload

# 1 GiB of zeros in 1 MB: 1,024 gzip members of 1 MiB each (a file may hold several members,
# and GzipFile reads them all); made in milliseconds, where deflating 1 GiB took 7 s
bomb = gzip.compress(bytes(1 << 20), 9) * 1024
assert len(bomb) < 1_100_000
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
try:
    read_upload(bomb, "csv.gz")
    reason = "accepted"
except UnreadableFile as exc:
    reason = str(exc)
grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
print(grown // 1024)
print(reason)
"""


def test_gzip_bomb_is_refused_with_bounded_memory():
    run = subprocess.run(
        [sys.executable, "-c", _BOMB], capture_output=True, text=True, check=True, timeout=600
    )
    grown_mib, reason = run.stdout.splitlines()
    assert "decompresses to more than 100 times its size" in reason
    assert "HQLAKE_MAX_COMPRESSION_RATIO" in reason
    assert int(grown_mib) < 256, f"peak RSS grew by {grown_mib} MiB"


def test_gzip_over_the_absolute_cap_is_refused():
    data = gzip.compress(b"a,b\n" + b"1,2\n" * 300_000)  # 1.2 MB of text
    limits = ReadLimits(max_decompressed_bytes=1 << 20)
    with pytest.raises(
        UnreadableFile, match=r"more than 1 MiB \(cap HQLAKE_MAX_DECOMPRESSED_BYTES"
    ):
        read_upload(data, "csv.gz", limits)
    assert read_upload(data, "csv.gz").table.num_rows == 300_000


def test_file_over_the_size_cap_is_refused():
    with pytest.raises(UnreadableFile, match="HQLAKE_MAX_FILE_BYTES = 1 KiB"):
        read_upload(b"a\n" + b"1\n" * 1000, "csv", ReadLimits(max_file_bytes=1024))


def test_wide_csv_is_refused_at_its_header_with_a_short_reason():
    width = 100_000
    data = (",".join(f"c{i}" for i in range(width)) + "\n" + "1," * (width - 1) + "1\n").encode()
    with pytest.raises(UnreadableFile) as refused:
        read_upload(data, "csv")
    reason = str(refused.value)
    assert reason == "has 100,000 columns in its header, more than the cap HQLAKE_MAX_COLUMNS = 500"
    assert len(reason) < 500


def test_wide_row_under_a_narrow_header_is_refused():
    data = ("a,b\n1,2\n" + ",".join(["x"] * 1000) + "\n").encode()
    with pytest.raises(UnreadableFile, match="has 1,000 columns at line 3"):
        read_upload(data, "csv")


def test_csv_rows_over_the_row_cap_are_refused():
    with pytest.raises(UnreadableFile, match="more than 10 rows"):
        read_upload(b"a\n" + b"1\n" * 11, "csv", ReadLimits(max_rows=10))
    assert read_upload(b"a\n" + b"1\n" * 10, "csv", ReadLimits(max_rows=10)).rows_read == 10


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_a_huge_field_is_refused_naming_line_and_column(fmt):
    huge = "x" * 70_000
    data = (
        f"a,b\n1,2\n3,{huge}\n" if fmt == "csv" else f'{{"a": 1}}\n{{"a": 3, "b": "{huge}"}}\n'
    ).encode()
    with pytest.raises(UnreadableFile) as refused:
        read_upload(data, fmt)
    line = 3 if fmt == "csv" else 2
    assert str(refused.value) == (
        f"has a value of 70,000 bytes in column 'b' at line {line} "
        "(cap HQLAKE_MAX_FIELD_BYTES = 64 KiB)"
    )


def test_a_field_beyond_the_csv_module_limit_is_refused_with_a_reason():
    data = b"a,b\n1,2\n3," + b"x" * 200_000 + b"\n"
    with pytest.raises(
        UnreadableFile, match="has a value of more than 131,072 characters by line 3"
    ):
        read_upload(data, "csv")
    raised = ReadLimits(max_field_bytes=300_000)
    assert read_upload(data, "csv", raised).table.column("b").to_pylist()[1] == "x" * 200_000


def test_jsonl_with_too_many_keys_or_lines_is_refused():
    wide = json.dumps({f"k{i}": i for i in range(600)}) + "\n"
    with pytest.raises(UnreadableFile, match="has 600 columns by line 1"):
        read_upload(wide.encode(), "jsonl")
    with pytest.raises(UnreadableFile, match="more than 10 lines"):
        read_upload(b'{"a": 1}\n' * 11, "jsonl", ReadLimits(max_rows=10))
    assert read_upload(b'{"a": 1}\n' * 10, "jsonl", ReadLimits(max_rows=10)).rows_read == 10


def test_jsonl_of_empty_objects_is_refused_not_read_as_no_rows():
    with pytest.raises(UnreadableFile, match="has 3 JSON objects and none of them has a field"):
        read_upload(b"{}\n" * 3, "jsonl")
    assert read_upload(b'{}\n{"a": 1}\n', "jsonl").table.column("a").to_pylist() == [None, "1"]


def test_deeply_nested_json_is_a_bad_row_not_a_crash():
    table = read_upload(b'{"a": 1}\n' + b"[" * 100_000 + b"\n", "jsonl")
    assert table.table.column("a").to_pylist() == ["1"]
    assert [(b.line, b.reason) for b in table.bad_rows] == [
        (2, "is nested too deeply to be a record")
    ]


def _xlsx() -> bytes:
    sink = io.BytesIO()
    book = xlsxwriter.Workbook(sink, {"in_memory": True})
    book.add_worksheet().write_row(0, 0, ["visit_id"])
    book.close()
    return sink.getvalue()


def test_xlsx_zip_bomb_is_refused_before_fastexcel_opens_it():
    bomb = io.BytesIO()
    with (
        zipfile.ZipFile(io.BytesIO(_xlsx())) as workbook,
        zipfile.ZipFile(bomb, "w", zipfile.ZIP_DEFLATED) as archive,
    ):
        for info in workbook.infolist():
            archive.writestr(info, workbook.read(info))
        with archive.open("xl/media/padding.bin", "w") as member:
            for _ in range(64):
                member.write(bytes(1 << 20))
    assert len(bomb.getvalue()) < 200_000
    with pytest.raises(UnreadableFile, match=r"decompresses to 64\.0 MiB, more than 100 times"):
        read_upload(bomb.getvalue(), "xlsx")
    assert read_upload(_xlsx(), "xlsx").table.column_names == ["visit_id"]


def _parquet(table: pa.Table) -> bytes:
    sink = io.BytesIO()
    pq.write_table(table, sink)
    return sink.getvalue()


def test_parquet_caps_are_checked_on_its_metadata():
    wide = pa.table({f"c{i}": pa.array(["1"]) for i in range(600)})
    with pytest.raises(
        UnreadableFile, match="has 600 columns, more than the cap HQLAKE_MAX_COLUMNS"
    ):
        read_upload(_parquet(wide), "parquet")
    long = pa.table({"a": pa.array([str(i) for i in range(11)])})
    with pytest.raises(UnreadableFile, match="more than 10 rows"):
        read_upload(_parquet(long), "parquet", ReadLimits(max_rows=10))
    zeros = pa.table({"a": pa.array([0] * 2_000_000, pa.int64())})
    with pytest.raises(UnreadableFile, match=r"decompresses to .*MAX_DECOMPRESSED_BYTES = 1 MiB"):
        read_upload(_parquet(zeros), "parquet", ReadLimits(max_decompressed_bytes=1 << 20))


def test_column_lists_in_reasons_are_cut_short():
    names = [f"col{i}" for i in range(1000)]
    assert short_list(names) == (
        "col0, col1, col2, col3, col4, col5, col6, col7, col8, col9 ... and 990 more"
    )
    assert short_list(["x" * 1000]) == "x" * 39 + "…"


# ---- records are records (issue 11, class 9) --------------------------------------------


def test_jsonl_splits_on_newline_only():
    values = ["line\u2028separator", "para\u2029graph", "next\x85line"]
    data = "".join(json.dumps({"a": v}, ensure_ascii=False) + "\r\n" for v in values).encode()
    table = read_upload(data, "jsonl")
    assert table.table.column("a").to_pylist() == values
    assert table.lines.to_pylist() == [1, 2, 3]
    assert not table.bad_rows


def test_csv_source_line_is_where_the_record_starts_after_quoted_line_breaks():
    data = b'a,b\n1,"two\nline note"\n\n2,x\r\n3,"a ""quoted""\r\nword"\n4,y'
    table = read_upload(data, "csv")
    assert table.table.column("a").to_pylist() == ["1", "2", "3", "4"]
    assert table.table.column("b").to_pylist()[2] == 'a "quoted"\r\nword'
    assert table.lines.to_pylist() == [2, 5, 6, 8]


def test_bad_row_after_a_multi_line_record_has_its_own_line():
    data = b'a,b\n1,"x\ny\nz"\n3\n4,w\n5,"p\nq",extra\n6,v\n'
    table = read_upload(data, "csv")
    assert table.lines.to_pylist() == [2, 6, 9]
    assert [(b.line, b.text) for b in table.bad_rows] == [(5, "3"), (7, '5,"p\nq",extra')]
    assert table.rows_read == 5


def test_csv_header_with_a_quoted_line_break():
    table = read_upload(b'a,"b\nc"\n1,2\n3,4\n', "csv")
    assert table.table.column_names == ["a", "b\nc"]
    assert table.lines.to_pylist() == [3, 4]


def _book(sheets: dict[str, list[list[str]]]) -> bytes:
    sink = io.BytesIO()
    book = xlsxwriter.Workbook(sink, {"in_memory": True})
    for name, rows in sheets.items():
        sheet = book.add_worksheet(name)
        for i, row in enumerate(rows):
            sheet.write_row(i, 0, row)
    book.close()
    return sink.getvalue()


def test_twin_columns_are_refused_in_every_format():
    """visit_id and VISIT_ID are one field: keeping either would drop the other's values
    silently (a CSV is refused for it already, by conform)."""
    twins = pa.table({"visit_id": ["MZREAL"], "VISIT_ID": ["MZFAKE"]})
    sink = io.BytesIO()
    pq.write_table(twins, sink)
    with pytest.raises(UnreadableFile, match=r"duplicated header columns: visit_id \('visit_id'"):
        read_upload(sink.getvalue(), "parquet")
    with pytest.raises(UnreadableFile, match="duplicated header columns: visit_id"):
        read_upload(_book({"a": [["visit_id", "VISIT_ID"], ["MZREAL", "MZFAKE"]]}), "xlsx")
    lines = (
        '{"visit_id": "V1", "visit_id": "V1DUP"}\n'
        '{"visit_id": "V2", "Visit_ID": "V2CASE"}\n'
        '{"visit_id": "V3", "nested": {"a": 1, "a": 2}}\n'
    )
    table = read_upload(lines.encode(), "jsonl")
    assert [(b.line, b.reason) for b in table.bad_rows] == [
        (1, "has two values for visit_id"),
        (2, "has two values for visit_id"),
    ]
    assert table.table.to_pylist() == [{"visit_id": "V3", "nested": '{"a": 2}'}]
    assert table.rows_read == 3  # nothing lost: two bad rows and one loaded


def test_a_workbook_with_data_on_another_sheet_is_refused():
    book = _book({"a": [["visit_id"], ["v1"]], "b": [["visit_id"], *[["v"]] * 49], "c": []})
    with pytest.raises(UnreadableFile, match=r"sheets other than the first \(b\)"):
        read_upload(book, "xlsx")
    one_and_empty = _book({"a": [["visit_id"], ["v1"]], "notes": []})
    assert read_upload(one_and_empty, "xlsx").table.to_pylist() == [{"visit_id": "v1"}]
