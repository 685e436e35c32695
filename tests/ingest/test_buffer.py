"""The file log and the commit rows are inserted by their records' fields: those fields are
the tables' columns, so nothing restates the DDL."""

import dataclasses

import pytest

from infra.pipeline import ingestor
from ingest.outcomes import FileResult
from ingest.versions import BatchCommit
from tests.ingest.test_pipeline import REGISTRY

pytestmark = pytest.mark.integration


def columns(rt, table):
    return [row[0] for row in rt.ch.query(f"DESCRIBE TABLE {table}").result_rows]


def test_records_name_every_column_of_their_tables(rt):
    ingestor(rt, REGISTRY)  # creates the tables
    logged = [f.name for f in dataclasses.fields(FileResult)] + ["run_id", "ingested_at"]
    assert sorted(logged) == sorted(columns(rt, "dq.ingest_file"))
    assert [f.name for f in dataclasses.fields(BatchCommit)] == columns(rt, "dq.batch")
