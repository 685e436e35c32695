"""Everything one file's bytes decide, computed before anything of it is written: its rows
typed by the contract with their lineage, its quarantined rows, and their Parquet.

The lineage and quarantine tables carry exactly the columns of `raw.<dataset>` and
`dq.quarantine`: they are inserted by their own column names (ingest.buffer).
"""

from __future__ import annotations

import datetime as dt
import io
from dataclasses import dataclass

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from contracts.model import Dataset
from ingest.conform import LINE, Conformed, conform
from ingest.outcomes import Upload
from ingest.readers import ReadLimits, read_upload


@dataclass
class Prepared:
    rows_read: int
    encoding: str
    conformed: Conformed
    lineage: pa.Table
    typed_parquet: bytes
    quarantine: pa.Table | None
    quarantine_parquet: bytes | None
    drift_parquet: bytes | None


def prepare(
    u: Upload,
    contract: Dataset,
    day: dt.date,
    version: int,
    limits: ReadLimits,
    run_id: str,
    tz: str,
) -> Prepared:
    """Parse, type and encode one file of batch version `version`; writes nothing. `tz` is
    the standard's time zone, that of the receive time."""
    strings = read_upload(u.data, u.fmt or "", limits)
    conformed = conform(strings, contract)
    lineage = _lineage(conformed, u, day, version, tz)
    quarantine = (
        _quarantine_rows(conformed, u, contract.dataset, day, version, run_id)
        if conformed.quarantine.height
        else None
    )
    rows_read, quarantined = strings.rows_read, conformed.quarantine.height
    if rows_read != lineage.num_rows + quarantined:  # the accounting promise; never expected
        raise AssertionError(f"{rows_read} read != {lineage.num_rows} + {quarantined}")
    return Prepared(
        rows_read=rows_read,
        encoding=strings.encoding or "",
        conformed=conformed,
        lineage=lineage,
        typed_parquet=_parquet_bytes(lineage),
        quarantine=quarantine,
        quarantine_parquet=_parquet_bytes(quarantine) if quarantine is not None else None,
        drift_parquet=(
            _parquet_bytes(conformed.extra.to_arrow()) if conformed.extra is not None else None
        ),
    )


def _lineage(conformed: Conformed, u: Upload, day: dt.date, version: int, tz: str) -> pa.Table:
    typed = conformed.typed
    n = typed.num_rows
    lines = typed.column(LINE)
    table = typed.drop_columns([LINE])
    received = u.source.received_at
    return (
        table.append_column("org_code", pa.array([u.source.org_code] * n, pa.string()))
        .append_column("business_date", pa.array([day] * n, pa.date32()))
        .append_column("batch_version", pa.array([version] * n, pa.uint32()))
        .append_column("source_file", pa.array([u.source.path] * n, pa.string()))
        .append_column("source_line", lines)
        .append_column("received_at", pa.array([received] * n, pa.timestamp("s", tz=tz)))
    )


def _quarantine_rows(
    conformed: Conformed, u: Upload, dataset: str, day: dt.date, version: int, run_id: str
) -> pa.Table:
    return conformed.quarantine.select(
        pl.lit(u.source.org_code).alias("org_code"),
        pl.lit(dataset).alias("dataset"),
        pl.lit(day).alias("business_date"),
        pl.lit(version, pl.UInt32).alias("batch_version"),
        pl.lit(u.source.path).alias("source_file"),
        pl.col(LINE).cast(pl.UInt32).alias("source_line"),
        "record_key",
        "fields",
        "reasons",
        "raw_record",
        pl.lit(run_id).alias("run_id"),
    ).to_arrow()


def _parquet_bytes(table: pa.Table) -> bytes:
    sink = io.BytesIO()
    pq.write_table(table, sink, compression="zstd")
    return sink.getvalue()
