"""What ingestion refuses, and which failures are a file's or a batch's rather than the run's.

Refusals. A batch is refused whole (every file kept under `rejected/`, batch version 0) when
the registry does not accept its organisation that day, the dataset is not in the standard,
or the dataset is of the other kind (hospital or county) than the organisation. A file is
refused alone when its extension is not an allowed format, it is over the size cap, or it
cannot be read or typed.

Failure isolation. Everything a file's bytes decide runs before anything is written for it,
and any failure there, a native library's panic included (polars raises `PanicException`, a
`BaseException`), is that file's rejection (`DATA_FAILURES`); a failure inside one batch
outside its files is that batch's, recorded for each of its files, and the batch is not
committed. Errors of the lake, the warehouse or the inbox storage themselves
(`INFRASTRUCTURE`) propagate, so the scheduler retries the task instead of recording
infrastructure trouble as bad data; KeyboardInterrupt and SystemExit are never caught.
"""

from __future__ import annotations

import datetime as dt

import urllib3.exceptions
from clickhouse_connect.driver.exceptions import ClickHouseError
from polars.exceptions import PanicException

from contracts.loader import Contracts
from contracts.registry import Registry
from ingest.inbox import printable

# What a file's or a batch's content can raise: every Exception, and the panics of native
# libraries, which are BaseExceptions. KeyboardInterrupt and SystemExit are not in it.
DATA_FAILURES = (Exception, PanicException)
# Trouble of the lake, the warehouse or the inbox storage: never a batch's recorded failure.
INFRASTRUCTURE: tuple[type[BaseException], ...] = (
    OSError,
    urllib3.exceptions.HTTPError,
    ClickHouseError,
)
try:
    from minio.error import MinioException
except ImportError:  # installed without hqlake[platform] (the pre-flight check): no object store
    pass
else:
    INFRASTRUCTURE += (MinioException,)


def batch_refusal(
    registry: Registry, contract_set: Contracts, org: str, dataset: str, day: dt.date
) -> str | None:
    """Why the batch of `org`'s `dataset` for `day` is not accepted, or None."""
    reason = registry.why_not_accepted(org, day)
    if reason:
        return reason
    contract = contract_set.datasets.get(dataset)
    if contract is None:
        known = ", ".join(contract_set.datasets)
        return f"unknown dataset {dataset!r}; the standard defines {known}"
    kind = registry.get(org).kind  # type: ignore[union-attr]
    if contract.kind != kind:
        return f"dataset {dataset} is a {contract.kind} dataset; {org} is registered as a {kind}"
    return None


def format_refusal(name: str) -> str:
    """The reason of a file whose extension is not an allowed format."""
    return (
        f"{name} has an extension the standard does not allow (csv, csv.gz, parquet, jsonl, xlsx)"
    )


def short_reason(exc: BaseException, limit: int = 200) -> str:
    """An exception as a short one-line reason: type, message escaped and cut."""
    text = printable(str(exc))
    return f"{type(exc).__name__}: {text[:limit]}{'...' if len(text) > limit else ''}"
