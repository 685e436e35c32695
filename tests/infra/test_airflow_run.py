"""infra.airflow_run: the embedded DAG runs' Airflow set-up."""

from __future__ import annotations

from types import SimpleNamespace

from infra import airflow_run


def test_metadata_is_migrated_and_the_dag_parsed_once_per_database(tmp_path, monkeypatch):
    """`make demo` runs the DAG twice in one process: the second run reuses the migrated
    database and the parsed DAG; a new database file (a fresh home at the same path) is
    migrated and parsed again."""
    home = tmp_path / "airflow"
    home.mkdir()
    config = SimpleNamespace(airflow_home=home)
    prepared, parsed = [], []

    def prepare(cfg, slots=1):  # what migrating does to the home: the database file exists
        prepared.append(cfg)
        (cfg.airflow_home / "airflow.db").touch()

    def load():
        parsed.append(object())
        return parsed[-1]

    monkeypatch.setattr(airflow_run, "_prepare_airflow", prepare)
    monkeypatch.setattr(airflow_run, "load_dag", load)
    monkeypatch.setattr(airflow_run, "_READY", {})

    first = airflow_run._ready_dag(config)
    assert airflow_run._ready_dag(config) is first
    assert len(prepared) == 1 and len(parsed) == 1

    (home / "airflow.db").unlink()  # a new home at the same path
    (home / "other").touch()  # the new database file must not reuse the old inode
    again = airflow_run._ready_dag(config)
    assert again is not first and len(prepared) == 2 and len(parsed) == 2
    assert airflow_run._ready_dag(config) is again
