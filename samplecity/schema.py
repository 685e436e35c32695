"""Contract-driven columns: which datasets and fields exist, and how values are written as text.

Generators build frames whose columns are named after contract fields (plus helper columns
starting with `_`). `to_text` turns them into the standard's text forms, field by field, from
the field's contract type: dates YYYY-MM-DD, datetimes YYYY-MM-DD HH:MM:SS, decimals with
their scale, null as empty. A contract field no generator knows comes out empty.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from contracts.loader import contracts
from contracts.model import Dataset

HELPER = "_"


def dataset(name: str) -> Dataset:
    return contracts().dataset(name)


def datasets_for(kind: str) -> list[str]:
    return [d.dataset for d in contracts().datasets_for(kind)]


def fields(name: str) -> list[str]:
    return dataset(name).field_names


def key_field(name: str) -> str:
    return dataset(name).key[0]


def event_field(name: str) -> str:
    return dataset(name).event


def has_field(name: str, field: str) -> bool:
    return field in dataset(name).by_name


def scale(name: str, field: str) -> int:
    spec = dataset(name).by_name.get(field)
    return spec.decimal[1] if spec is not None and spec.decimal else 0


def scaled(values: np.ndarray, from_scale: int, name: str, field: str) -> np.ndarray:
    """Integers in units of 10**-from_scale, re-expressed at the field's contract scale."""
    to = scale(name, field)
    v = np.asarray(values, dtype=np.int64)
    if to >= from_scale:
        return v * 10 ** (to - from_scale)
    step = 10 ** (from_scale - to)
    return (v + step // 2) // step


def decimal_text(col: pl.Expr, digits: int) -> pl.Expr:
    """Text of a scaled integer with `digits` decimals (123456, 2 -> '1234.56')."""
    if digits == 0:
        return col.cast(pl.String)
    a = col.abs()
    body = (
        (a // 10**digits).cast(pl.String) + "." + (a % 10**digits).cast(pl.String).str.zfill(digits)
    )
    return pl.when(col < 0).then("-" + body).otherwise(body)


def _text_expr(df: pl.DataFrame, name: str, spec) -> pl.Expr:
    if spec.name not in df.columns:
        return pl.lit(None, pl.String).alias(spec.name)
    col = pl.col(spec.name)
    dtype = df.schema[spec.name]
    if dtype == pl.String:
        expr = col
    elif spec.type == "date":
        expr = (col.cast(pl.Date) if dtype != pl.Date else col).dt.strftime("%Y-%m-%d")
    elif spec.type == "datetime":
        if dtype.is_integer():
            col = pl.from_epoch(col, time_unit="s")
        expr = col.dt.strftime("%Y-%m-%d %H:%M:%S")
    elif spec.decimal:
        digits = spec.decimal[1]
        if dtype.is_float():
            col = (col * 10**digits).round(0).cast(pl.Int64)
        expr = decimal_text(col, digits)
    else:
        expr = col.cast(pl.String)
    return pl.when(expr == "").then(None).otherwise(expr).alias(spec.name)


def to_text(df: pl.DataFrame, name: str) -> pl.DataFrame:
    """Contract fields as text (in contract order), then the helper columns unchanged."""
    spec = dataset(name)
    exprs = [_text_expr(df, name, f) for f in spec.fields]
    helpers = [c for c in df.columns if c.startswith(HELPER)]
    return df.select([*exprs, *[pl.col(c) for c in helpers]])


def empty_text(name: str, helpers: dict[str, pl.DataType] | None = None) -> pl.DataFrame:
    schema = dict.fromkeys(fields(name), pl.String)
    schema.update(helpers or {})
    return pl.DataFrame(schema=schema)


def public(df: pl.DataFrame) -> pl.DataFrame:
    """Without the helper columns."""
    return df.select([c for c in df.columns if not c.startswith(HELPER)])
