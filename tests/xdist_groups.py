"""How `make test` shares the tests between pytest-xdist workers (`-n 2 --dist loadscope`).

Each worker is a process of its own with its own home (tests/conftest.py makes one per
process), so its own chDB folder and SeaweedFS on free ports: chDB opens a data path from
one process only. A fixture of a module or a package is built once per worker that runs one
of its tests, so a worker takes whole modules, and whole packages for `PACKAGE_GROUPS`
(tests/infra/portal scores one city for the package and runs its browser scenario last): a
scheduler of xdist's `loadscope` kind whose scope is that. The longest groups are handed out
first, so the last minutes do not wait on one worker (`HEAVY`, longest first). Modules that
share a session fixture (a generated city of tests/conftest.py) form one group
(`SHARED_GROUPS`), so the fixture is built on one worker only.

Without xdist (`pytest` alone, `make test-fast`) nothing changes.
"""

from __future__ import annotations

import pytest

PACKAGE_GROUPS = ("tests/infra/portal/",)
# group name -> the modules sharing a session fixture built once per worker (or an import
# as costly: Airflow in the test process, ~4 s of CPU)
SHARED_GROUPS = {
    "airflow_in_process": (
        "tests/dags/test_run_gate.py",
        "tests/infra/test_schedule.py",
        "tests/infra/test_airflow_local.py",
    ),
    "faulty_week": (  # tests/conftest.py's faulty_week and clean_city
        "tests/ingest/test_ground_truth.py",
        "tests/expectations/test_validate.py",
        "tests/expectations/engines/test_sqlrules.py",
    ),
}
_SHARED = {module: name for name, modules in SHARED_GROUPS.items() for module in modules}
# The groups that take longest (measured on main before this change), longest first.
HEAVY = (
    "tests/infra/portal/",
    "tests/infra/test_airflow_scheduler.py",
    "tests/test_daily_run.py",
)


def group_of(nodeid: str) -> str:
    """The module of a test (its path before `::`), its package in `PACKAGE_GROUPS` or its
    group in `SHARED_GROUPS`."""
    path = nodeid.split("::", 1)[0]
    if path in _SHARED:
        return _SHARED[path]
    return next((p for p in PACKAGE_GROUPS if path.startswith(p)), path)


def _rank(nodeid: str) -> int:
    group = group_of(nodeid)
    return next((i for i, heavy in enumerate(HEAVY) if group == heavy), len(HEAVY))


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """On a worker, the longest groups first (a stable sort: the order inside a group, the
    portal's browser scenario last, is kept); the scheduler hands groups out in this order."""
    if hasattr(config, "workerinput"):
        items.sort(key=lambda item: _rank(item.nodeid))


@pytest.hookimpl(tryfirst=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log):
    if config.getvalue("dist") != "loadscope":
        return None
    from xdist.scheduler import LoadScopeScheduling

    # xdist would hand out the groups with most tests first; ours are the longest first
    config.option.loadscopereorder = False

    class GroupScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return group_of(nodeid)

    return GroupScheduling(config, log)
