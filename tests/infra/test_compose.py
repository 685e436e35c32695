"""The production stack on paper: infra/compose.yaml against the Compose specification.

There is no Docker engine here, so the file is checked, not run: against the compose-spec
JSON schema (tests/infra/data/compose-spec.json, vendored from compose-spec/compose-spec at
commit 170098b, Apache-2.0) and for what hqlake needs from it.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import jsonschema
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "infra" / "compose.yaml"
SCHEMA = Path(__file__).parent / "data" / "compose-spec.json"
SECRET = re.compile(r"PASSWORD|SECRET|FERNET|SALT|JWT")


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def validator():
    return jsonschema.Draft7Validator(json.loads(SCHEMA.read_text(encoding="utf-8")))


def test_compose_file_follows_the_specification(compose, validator):
    errors = [f"{e.json_path}: {e.message}" for e in validator.iter_errors(compose)]
    assert errors == []


def test_the_schema_check_catches_mistakes(compose, validator):
    broken = json.loads(json.dumps(compose))
    broken["services"]["minio"]["helthcheck"] = broken["services"]["minio"].pop("healthcheck")
    broken["services"]["redis"]["ports"] = 6379
    assert len(list(validator.iter_errors(broken))) >= 2


def test_the_stack_has_every_service(compose):
    services = compose["services"]
    assert {
        "minio",
        "clickhouse",
        "postgres",
        "redis",
        "mailpit",
        "airflow-init",
        "airflow-apiserver",
        "airflow-scheduler",
        "airflow-dag-processor",
        "airflow-worker",
    } <= set(services)
    for name in ("minio", "clickhouse", "postgres", "redis", "mailpit"):
        assert "healthcheck" in services[name], name


def test_airflow_and_hqlake_point_at_the_services(compose):
    for name, service in compose["services"].items():
        if not name.startswith("airflow-"):
            continue
        env = service["environment"]
        assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
        assert "@postgres:5432/airflow" in env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"]
        assert env["AIRFLOW__CELERY__BROKER_URL"].startswith("redis://redis:")
        assert env["AIRFLOW__CORE__DAGS_FOLDER"] == "/opt/hqlake/dags"
        assert env["HQLAKE_S3_ENDPOINT"] == "http://minio:9000"
        assert "@clickhouse:8123" in env["HQLAKE_CLICKHOUSE_URL"]
        assert env["HQLAKE_SMTP_HOST"] == "mailpit"
        assert env["HQLAKE_WAREHOUSE_POOL"] == "hqlake_warehouse"


def test_no_secret_is_written_in_the_file(compose):
    def walk(node, path=""):
        if isinstance(node, dict):
            for key, value in node.items():
                yield from walk(value, f"{path}.{key}")
        elif isinstance(node, list):
            for i, value in enumerate(node):
                yield from walk(value, f"{path}[{i}]")
        else:
            yield path, node

    for path, value in walk(compose):
        key = path.rsplit(".", 1)[-1]
        if SECRET.search(key):
            assert str(value).startswith("${") and ":?" in str(value), path
        if isinstance(value, str) and "://" in value and "@" in value:
            assert "${" in value.split("@")[0], f"{path} has credentials in clear"


def test_the_portal_replaces_the_static_report_server(compose):
    services = compose["services"]
    assert not any("nginx" in str(s.get("image", "")) for s in services.values())
    portal = services["portal"]
    assert portal["entrypoint"] == ["hqlake"]
    assert portal["command"][0] == "serve"
    assert portal["ports"] == ["8081:8080"]
    env = portal["environment"]
    assert env["HQLAKE_HOME"] == "/opt/hqlake/home"  # the home the daily run publishes into
    assert env["HQLAKE_PORTAL_URL"].startswith("${HQLAKE_PORTAL_URL")
    assert "/healthz" in " ".join(portal["healthcheck"]["test"])
    assert "hqlake-home:/opt/hqlake/home" in portal["volumes"]
