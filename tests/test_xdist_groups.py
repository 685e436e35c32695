"""How `make test` groups tests on xdist workers (tests/xdist_groups.py)."""

from __future__ import annotations

from pathlib import Path

from tests.xdist_groups import SHARED_GROUPS, group_of

ROOT = Path(__file__).resolve().parents[1]


def test_a_module_its_package_or_its_shared_group():
    assert group_of("tests/ingest/test_readers.py::test_x[a]") == "tests/ingest/test_readers.py"
    assert group_of("tests/infra/portal/test_auth.py::test_x") == "tests/infra/portal/"
    for name, modules in SHARED_GROUPS.items():
        for module in modules:
            assert (ROOT / module).is_file(), module  # a moved module would leave its group
            assert group_of(f"{module}::test_x") == name
