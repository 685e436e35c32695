import datetime as dt
from decimal import Decimal

import pytest

from contracts.loader import contracts
from ingest.conform import LINE, conform
from ingest.readers import UnreadableFile, read_upload

HEADER = (
    "visit_id,patient_id,visit_time,visit_type,dept_code,dept_name,doctor_id,diagnosis_code,"
    "diagnosis_name,total_fee,drug_fee,exam_fee,lab_fee,treatment_fee,material_fee,other_fee"
)


def _conform(body: str, header: str = HEADER, dataset: str = "outpatient_visit"):
    return conform(read_upload(f"{header}\n{body}".encode(), "csv"), contracts().dataset(dataset))


def test_values_typed_per_contract():
    c = _conform("v1,p1,2026-11-09 08:00:00,1,D1,内科,d1,I10,高血压,100.50,50,10,10,10,10,10.500\n")
    row = c.typed.to_pylist()[0]
    assert row["total_fee"] == Decimal("100.50") and row["other_fee"] == Decimal("10.50")
    assert row["visit_time"].replace(tzinfo=None) == dt.datetime(2026, 11, 9, 8)
    assert str(row["visit_time"].tzinfo) == "Asia/Shanghai"
    assert row[LINE] == 2
    assert c.quarantine.height == 0


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("12.345", "total_fee: '12.345' has more than 2 decimal places"),
        ("abc", "total_fee: 'abc' is not a number"),
        ("12,5", "total_fee: '12,5' is not a number"),
        ("1e3", "total_fee: '1e3' is not a number"),
        ("12345678901.00", "total_fee: '12345678901.00' is too large for decimal(12,2)"),
    ],
)
def test_untypeable_decimals_are_quarantined_with_reason(value, reason):
    c = _conform(f'v1,p1,2026-11-09 08:00:00,1,D1,内科,d1,I10,高血压,"{value}",1,,,,,\n')
    assert c.typed.num_rows == 0
    q = c.quarantine.to_dicts()[0]
    assert q["reasons"] == [reason] and q["fields"] == ["total_fee"] and q["record_key"] == "v1"
    assert value in q["raw_record"]


def test_dates_datetimes_and_integers():
    header = "admission_id,admit_time,discharge_time,los_days"
    body = (
        "a1,2026-11-01 08:00:00,2026-11-09T10:00:00,8\n"
        "a2,2026-02-30 08:00:00,2026-11-09 10:00,x\n"
        "a3,2026-11-01 08:00:00,2026-11-09 10:00:00,3.0\n"
    )
    c = _conform(body, header, "inpatient_discharge")
    assert c.typed.column("admission_id").to_pylist() == ["a1", "a3"]
    assert c.typed.column("los_days").to_pylist() == [8, 3]
    reasons = c.quarantine.to_dicts()[0]["reasons"]
    assert reasons == [
        "admit_time: '2026-02-30 08:00:00' is not a datetime (YYYY-MM-DD HH:MM:SS)",
        "discharge_time: '2026-11-09 10:00' is not a datetime (YYYY-MM-DD HH:MM:SS)",
        "los_days: 'x' is not an integer",
    ]
    assert set(c.missing_required) >= {"patient_id", "principal_dx_code"}
    assert "other_dx_codes" in c.missing_optional
    assert c.typed.column("patient_id").null_count == 2  # missing columns load as null


def test_blank_is_null_not_an_error():
    c = _conform("v1,  ,2026-11-09 08:00:00,1,D1,内科,d1,I10,高血压,,1,,,,,\n")
    row = c.typed.to_pylist()[0]
    assert row["patient_id"] is None and row["total_fee"] is None
    assert c.quarantine.height == 0


def test_extra_columns_are_kept_aside():
    c = _conform(
        "v1,p1,2026-11-09 08:00:00,1,D1,内科,d1,I10,高血压,1,1,,,,,,HIS-7\n", HEADER + ",his_flag"
    )
    assert c.extra_columns == ["his_flag"]
    assert c.extra.to_dicts() == [{LINE: 2, "his_flag": "HIS-7"}]
    assert "his_flag" not in c.typed.column_names


def test_header_of_another_dataset_is_refused():
    with pytest.raises(UnreadableFile, match="matches no field of outpatient_visit"):
        _conform("1,2\n", "foo,bar")


def test_every_row_is_accounted_for():
    body = (
        "v1,p1,2026-11-09 08:00:00,1,D1,内科,d1,I10,高血压,1,1,,,,,\n"
        "v2,p1\n"
        "v3,p1,bad,1,D1,内科,d1,I10,高血压,1,1,,,,,\n"
    )
    strings = read_upload(f"{HEADER}\n{body}".encode(), "csv")
    c = conform(strings, contracts().dataset("outpatient_visit"))
    assert strings.rows_read == 3 == c.typed.num_rows + c.quarantine.height
    assert sorted(c.quarantine[LINE].to_list()) == [3, 4]
    assert sorted(c.quarantine["record_key"].to_list()) == ["v2", "v3"]  # key seen in a short row


def test_empty_jsonl_loads_as_an_empty_batch_without_schema_notes():
    c = conform(read_upload(b"", "jsonl"), contracts().dataset("outpatient_visit"))
    assert c.typed.num_rows == 0 and c.quarantine.height == 0
    assert not c.missing_required and not c.extra_columns


@pytest.mark.parametrize(
    ("value", "stored"),
    [
        ("1970-01-01 07:59:59", False),
        ("1970-01-01 08:00:00", True),
        ("2106-02-07 14:28:15", True),
        ("2106-02-07 14:28:16", False),
        ("1900-01-01 00:00:00", False),
    ],
)
def test_a_datetime_the_warehouse_cannot_store_is_quarantined_not_clamped(value, stored):
    c = _conform(f"v1,p1,{value},1,D1,内科,d1,I10,高血压,1,1,,,,,\n")
    assert c.typed.num_rows == int(stored)
    if not stored:
        assert c.quarantine.to_dicts()[0]["reasons"] == [
            f"visit_time: '{value}' is outside the datetimes the warehouse stores"
            " (1970-01-01 08:00:00 to 2106-02-07 14:28:15)"
        ]


def test_a_clean_file_has_the_quarantine_columns_of_a_file_with_bad_rows():
    """Clean files skip building the quarantine (ingest.conform._plan): their empty frame has
    the same columns and types, so batches of both kinds concatenate."""
    row = "v1,p1,2026-11-09 08:00:00,1,D1,内科,d1,I10,高血压,1,1,,,,,\n"
    clean = _conform(row)
    bad = _conform(row.replace("2026-11-09 08:00:00", "bad") + "v2,p1\n")
    short_only = _conform(row + "v2,p1\n")  # a line that does not split, no untypeable value
    assert (clean.quarantine.height, bad.quarantine.height, short_only.quarantine.height) == (
        0,
        2,
        1,
    )
    assert clean.quarantine.schema == bad.quarantine.schema == short_only.quarantine.schema
    assert short_only.quarantine["record_key"].to_list() == ["v2"]


def test_typing_follows_the_dataset_it_is_given_not_a_cached_one_of_the_same_name():
    """The typing expressions are kept per Dataset object and its columns: another contract
    of the same dataset (a changed type) is typed by its own fields, and a file lacking a
    column by a plan of its own."""
    base = contracts().dataset("outpatient_visit")
    as_text = base.model_copy(
        update={
            "fields": tuple(
                f.model_copy(update={"type": "str", "decimal": None, "checks": ()})
                if f.name == "total_fee"
                else f
                for f in base.fields
            )
        }
    )
    strings = read_upload(
        f"{HEADER}\nv1,p1,2026-11-09 08:00:00,1,D1,内科,d1,I10,高血压,abc,1,,,,,\n".encode(), "csv"
    )
    assert conform(strings, base).quarantine.height == 1  # abc is not a number
    typed = conform(strings, as_text)
    assert typed.quarantine.height == 0 and typed.typed.column("total_fee").to_pylist() == ["abc"]
    assert conform(strings, base).quarantine["reasons"].to_list() == [
        ["total_fee: 'abc' is not a number"]
    ]
    short = HEADER.replace(",other_fee", "")
    lacking = read_upload(
        f"{short}\nv1,p1,2026-11-09 08:00:00,1,D1,内科,d1,I10,高血压,1,1,,,,\n".encode(), "csv"
    )
    c = conform(lacking, base)
    assert c.missing_optional == ["other_fee"] and c.typed.column("other_fee").to_pylist() == [None]
