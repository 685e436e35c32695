"""Every test that starts a service carries its marker, so `make test-fast` (unit tests only:
`-m "not integration and not browser and not scheduler"`) never starts one.

Two checks, both failing the test that lacks its marker:
- before set-up, its fixtures: one of `SERVICE_FIXTURES` (or a fixture built on one) in a test
  without the fixture's marker;
- while it runs (set-up and call), what it starts in this process: a chDB client, a
  SeaweedFS, Chromium or an Airflow process, or Playwright's browser. The service still
  starts (the test is not changed), and the test fails after it with the service it used.
"""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

# A fixture that starts a service -> the marker a test requesting it (even indirectly) needs.
SERVICE_FIXTURES = {
    "seaweed": "integration",  # SeaweedFS; every warehouse fixture is built on it (`rt`)
    "chromium": "browser",  # Playwright's headless Chromium (tests/infra/portal)
    "scheduler_run": "scheduler",  # the real-scheduler stack (test_airflow_scheduler.py)
}
# A process started by these first words (the executable by its name) -> (service, marker).
SERVICE_PROCESSES = {
    ("weed",): ("SeaweedFS", "integration"),
    ("chromium",): ("Chromium", "browser"),
    # an Airflow process (even one that only refuses its options); the whole stack under a
    # real scheduler is the `scheduler_run` fixture's
    ("airflow",): ("an Airflow process", "integration"),
    ("python", "-m", "infra.airflow_local"): ("an Airflow process", "integration"),
    ("hqlake", "check"): ("hqlake check's throwaway chDB", "integration"),
    # the bench's city-day runs the embedded runtime (SeaweedFS, chDB) in a process of its own
    ("python", "-m", "bench.cityday"): ("the bench's city-day (SeaweedFS, chDB)", "integration"),
}
MARKERS = ("integration", "browser", "scheduler")


def _markers(item: pytest.Item) -> set[str]:
    return {m.name for m in item.iter_markers()} & set(MARKERS)


def _check_fixtures(item: pytest.Item) -> None:
    have = _markers(item)
    missing = sorted(
        f"{name} needs @pytest.mark.{marker}"
        for name, marker in SERVICE_FIXTURES.items()
        if name in getattr(item, "fixturenames", ()) and marker not in have
    )
    if missing:
        pytest.fail("a service fixture without its marker: " + "; ".join(missing), pytrace=False)


def _process_service(args: object) -> tuple[str, str] | None:
    argv = [str(args)] if isinstance(args, str | Path) else [str(a) for a in args or ()]
    if not argv:
        return None
    first = Path(argv[0]).name
    words = ("python" if first.startswith("python") else first, *argv[1:3])
    for start, found in SERVICE_PROCESSES.items():
        if words[: len(start)] == start:
            return found
    return None


@contextlib.contextmanager
def _watch(used: list[tuple[str, str]]) -> Iterator[None]:
    """Record the services started in this process meanwhile (each still starts)."""
    import clickhouse_connect

    real_client = clickhouse_connect.get_client
    real_popen = subprocess.Popen.__init__

    def get_client(*args, **kwargs):
        dsn = str(kwargs.get("dsn") or "")
        if dsn.startswith("chdb:") or kwargs.get("interface") == "chdb":
            used.append(("chDB", "integration"))
        return real_client(*args, **kwargs)

    def popen(self, args, *rest, **kwargs):
        found = _process_service(args)
        if found:
            used.append(found)
        return real_popen(self, args, *rest, **kwargs)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(clickhouse_connect, "get_client", get_client)
        mp.setattr(subprocess.Popen, "__init__", popen)
        yield


def _check(item: pytest.Item, used: list[tuple[str, str]]) -> None:
    have = _markers(item)
    lacking = sorted({f"{svc} needs @pytest.mark.{mark}" for svc, mark in used if mark not in have})
    if lacking:
        pytest.fail("started a service without its marker: " + "; ".join(lacking), pytrace=False)


def _watched(item: pytest.Item):
    used: list[tuple[str, str]] = []
    with _watch(used):
        result = yield
    _check(item, used)
    return result


@pytest.hookimpl(wrapper=True)
def pytest_runtest_call(item: pytest.Item):
    return (yield from _watched(item))


@pytest.hookimpl(wrapper=True)
def pytest_runtest_setup(item: pytest.Item):
    _check_fixtures(item)
    return (yield from _watched(item))
