"""Turn a table of strings into the contract's types; rows with untypeable values go to quarantine.

Blank values become null (that is a completeness question for validation, not a typing
error). A value that is present but cannot be typed is never dropped or coerced: its row is
quarantined with the field and the reason. Columns the contract does not know are kept aside
(schema drift); contract columns the file lacks are reported and loaded as null. A header
name with control characters (a NUL makes polars panic) refuses the file.

Every value's shape is checked with a pattern before casting because polars' casts are
lenient in ways that would change data silently (12.345 -> 12.34 for decimal(12,2), 1e3 as
a number, 1.5 -> null for an integer), and a datetime the warehouse cannot store is
quarantined rather than clamped by the insert.
"""

from __future__ import annotations

import csv
import datetime as dt
import unicodedata
from dataclasses import dataclass

import polars as pl
import pyarrow as pa

from contracts.model import Dataset, FieldSpec
from contracts.timezone import TZ_NAME as _TZ
from ingest.inbox import printable
from ingest.readers import StringTable, UnreadableFile, short_list

LINE = "__source_line"
# ClickHouse DateTime (seconds since 1970 UTC in a UInt32) in Asia/Shanghai: outside it an
# insert clamps silently, so 1900-01-01 would be stored as 1970-01-01 08:00:00.
_DATETIME_RANGE = (dt.datetime(1970, 1, 1, 8), dt.datetime(2106, 2, 7, 14, 28, 15))


@dataclass
class Conformed:
    typed: pa.Table  # contract columns in contract order, plus LINE
    quarantine: pl.DataFrame  # LINE, record_key, fields, reasons, raw_record
    extra: pl.DataFrame | None  # LINE + unknown columns (schema drift), or None
    extra_columns: list[str]
    missing_required: list[str]
    missing_optional: list[str]


def _show(value: pl.Expr) -> pl.Expr:
    return pl.lit("'") + value.str.slice(0, 40) + pl.lit("'")


def _typed(field: FieldSpec, s: pl.Expr) -> tuple[pl.Expr, pl.Expr]:
    """(typed value, reason or null) for one field whose cleaned text is `s`."""
    name = field.name
    if field.type == "str":
        return s, pl.lit(None, pl.String)
    if field.type == "int":
        ok = s.str.contains(r"^[+-]?\d{1,18}(\.0+)?$")
        typed = pl.when(ok).then(s.str.replace(r"\.0+$", "").cast(pl.Int64, strict=False))
        reason = pl.when(s.is_not_null() & typed.is_null()).then(
            pl.lit(f"{name}: ") + _show(s) + pl.lit(" is not an integer")
        )
        return typed, reason
    if field.decimal:
        precision, scale = field.decimal
        shape = s.str.contains(r"^[+-]?\d+(\.\d*)?$")
        int_digits = s.str.extract(r"^[+-]?0*(\d*)", 1).str.len_chars()
        frac_digits = s.str.extract(r"\.(\d*?)0*$", 1).fill_null("").str.len_chars()
        fits = shape & (frac_digits <= scale) & (int_digits <= precision - scale)
        typed = pl.when(fits).then(s.cast(pl.Decimal(precision, scale), strict=False))
        reason = (
            pl.when(s.is_null())
            .then(None)
            .when(~shape)
            .then(pl.lit(f"{name}: ") + _show(s) + pl.lit(" is not a number"))
            .when(frac_digits > scale)
            .then(pl.lit(f"{name}: ") + _show(s) + pl.lit(f" has more than {scale} decimal places"))
            .when(int_digits > precision - scale)
            .then(pl.lit(f"{name}: ") + _show(s) + pl.lit(f" is too large for {field.type}"))
        )
        return typed, reason
    if field.type == "date":
        text = s.str.replace(r" 00:00:00$", "")  # spreadsheets store dates as midnight datetimes
        ok = text.str.contains(r"^\d{4}-\d{2}-\d{2}$")
        typed = pl.when(ok).then(text.str.to_date("%Y-%m-%d", strict=False))
        reason = pl.when(s.is_not_null() & typed.is_null()).then(
            pl.lit(f"{name}: ") + _show(s) + pl.lit(" is not a date (YYYY-MM-DD)")
        )
        return typed, reason
    if field.type == "datetime":
        text = s.str.replace("T", " ", literal=True, n=1)
        ok = text.str.contains(r"^\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}$")
        parsed = pl.when(ok).then(
            text.str.to_datetime(
                "%Y-%m-%d %H:%M:%S", strict=False, time_unit="us"
            ).dt.replace_time_zone(_TZ)
        )
        low, high = (pl.lit(t).dt.replace_time_zone(_TZ) for t in _DATETIME_RANGE)
        stored = parsed.is_between(low, high)
        reason = (
            pl.when(s.is_null())
            .then(None)
            .when(parsed.is_null())
            .then(
                pl.lit(f"{name}: ") + _show(s) + pl.lit(" is not a datetime (YYYY-MM-DD HH:MM:SS)")
            )
            .when(~stored)
            .then(
                pl.lit(f"{name}: ")
                + _show(s)
                + pl.lit(
                    " is outside the datetimes the warehouse stores"
                    f" ({_DATETIME_RANGE[0]} to {_DATETIME_RANGE[1]})"
                )
            )
        )
        return pl.when(stored).then(parsed), reason
    raise AssertionError(f"type {field.type} not handled")  # the contract model rejects others


def _key_from_text(text: str, positions: list[int]) -> str | None:
    """The key of a CSV line that did not split into the header's fields, when it can be seen."""
    fields = next(csv.reader([text]), [])
    if not positions or any(p >= len(fields) for p in positions):
        return None
    return "|".join(fields[p].strip() for p in positions)


# The quarantine frame's columns after LINE (whose type is the reader's).
_QUARANTINE = {
    "record_key": pl.String,
    "fields": pl.List(pl.String),
    "reasons": pl.List(pl.String),
    "raw_record": pl.String,
}


@dataclass(frozen=True)
class _Plan:
    """The expressions that type a file of a dataset with a given set of columns: they do
    not depend on the rows, and building them costs about as much as running them on a
    small file (a day has hundreds of small files of a few datasets)."""

    typed: tuple[pl.Expr, ...]  # every contract field, typed or null, in contract order
    reasons: pl.Expr  # the list of a row's reasons (empty: the row is good)
    key: pl.Expr  # the record key of a row, from its cleaned text


# (id of the Dataset, present field names) -> (that Dataset, its plan). A contracts model is
# not hashable, so its id is the key; the entry holds the Dataset, so no other object can
# take that id while the entry lives.
_plans: dict[tuple[int, tuple[str, ...]], tuple[Dataset, _Plan]] = {}


def _plan(dataset: Dataset, present: tuple[str, ...]) -> _Plan:
    cached = _plans.get((id(dataset), present))
    if cached is not None:
        return cached[1]
    cleaned = {name: pl.col(name).str.strip_chars().replace("", None) for name in present}
    typed_exprs, reason_exprs = [], []
    for field in dataset.fields:
        if field.name in cleaned:
            value, reason = _typed(field, cleaned[field.name])
            typed_exprs.append(value.alias(field.name))
            reason_exprs.append(reason)
        else:
            typed_exprs.append(pl.lit(None).alias(field.name))
    reasons = pl.concat_list(reason_exprs).list.drop_nulls() if reason_exprs else pl.lit([])
    key = pl.concat_str(
        [cleaned.get(k, pl.lit(None, pl.String)).fill_null("") for k in dataset.key],
        separator="|",
    )
    plan = _Plan(tuple(typed_exprs), reasons, key)
    if len(_plans) >= 256:  # contract sets of tests come and go; a day has a few dozen
        _plans.clear()
    _plans[(id(dataset), present)] = (dataset, plan)
    return plan


def conform(strings: StringTable, dataset: Dataset) -> Conformed:
    columns = strings.table.column_names
    known = set(dataset.field_names)
    if not columns and strings.rows_read == 0:  # an empty JSON Lines file: an empty batch
        strings = StringTable(
            pa.table({f.name: pa.array([], pa.string()) for f in dataset.fields}),
            strings.lines,
            strings.encoding,
            [],
        )
        columns = strings.table.column_names
    for position, name in enumerate(columns, start=1):
        # A NUL in a column name makes polars panic; no control character belongs in one.
        if any(unicodedata.category(c) == "Cc" for c in name):
            raise UnreadableFile(
                f"has control characters in header column {position} ('{printable(name)[:40]}')"
            )
    present = [f for f in dataset.fields if f.name in columns]
    if not present:
        raise UnreadableFile(
            f"has a header that matches no field of {dataset.dataset} "
            f"(got {short_list(columns, 8) or 'nothing'})"
        )
    duplicated = sorted({c for c in columns if columns.count(c) > 1})
    if duplicated:
        raise UnreadableFile(f"has duplicated header columns: {short_list(duplicated)}")
    extra_columns = [c for c in columns if c not in known]
    missing = [f for f in dataset.fields if f.name not in columns]

    frame = pl.from_arrow(strings.table.append_column(LINE, strings.lines))
    assert isinstance(frame, pl.DataFrame)
    plan = _plan(dataset, tuple(f.name for f in present))
    typed_frame = frame.select(pl.col(LINE), *plan.typed, plan.reasons.alias("__reasons"))
    is_bad = typed_frame["__reasons"].list.len() > 0
    any_bad = bool(is_bad.any())
    if any_bad:
        good = typed_frame.filter(~is_bad)
        # Keys and raw text only for the (few) quarantined rows: building them for every
        # row would cost more than the typing itself on a million-row day.
        quarantine = pl.concat(
            [
                frame.filter(is_bad).select(
                    pl.col(LINE),
                    plan.key.alias("record_key"),
                    pl.struct(pl.all().exclude(LINE)).struct.json_encode().alias("raw_record"),
                ),
                typed_frame.filter(is_bad).select(
                    pl.col("__reasons")
                    .list.eval(pl.element().str.extract(r"^([^:]+):", 1))
                    .alias("fields"),
                    pl.col("__reasons").alias("reasons"),
                ),
            ],
            how="horizontal",
        ).select(LINE, *_QUARANTINE)
    else:  # most files: nothing to filter or quarantine (four queries fewer per file)
        good = typed_frame
        quarantine = pl.DataFrame(schema={**_QUARANTINE, LINE: frame.schema[LINE]}).select(
            LINE, *_QUARANTINE
        )
    if strings.bad_rows:
        positions = [columns.index(k) for k in dataset.key if k in columns]
        quarantine = pl.concat(
            [
                quarantine,
                pl.DataFrame(
                    {
                        LINE: [b.line for b in strings.bad_rows],
                        "record_key": [_key_from_text(b.text, positions) for b in strings.bad_rows],
                        "fields": [[] for _ in strings.bad_rows],
                        "reasons": [[f"line {b.line}: {b.reason}"] for b in strings.bad_rows],
                        "raw_record": [b.text for b in strings.bad_rows],
                    },
                    schema=quarantine.schema,
                ),
            ]
        )

    schema = dataset.arrow_schema().append(pa.field(LINE, pa.uint32()))
    typed = good.select(LINE, *dataset.field_names).to_arrow()
    typed = pa.table(
        [typed.column(name).cast(schema.field(name).type) for name in schema.names], schema=schema
    )
    kept = frame.filter(~is_bad) if any_bad else frame
    extra = kept.select(LINE, *extra_columns) if extra_columns else None
    return Conformed(
        typed=typed,
        quarantine=quarantine,
        extra=extra,
        extra_columns=extra_columns,
        missing_required=[f.name for f in missing if f.required],
        missing_optional=[f.name for f in missing if not f.required],
    )
