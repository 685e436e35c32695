"""The embedded home belongs to one process; within it the runtime opens as often as needed
(the test session, `dag.test()`); tests/infra/test_cli_errors.py tries a second process."""

from __future__ import annotations

import os

import pytest

from infra.runtime import hold_home, warehouse


@pytest.mark.integration
def test_home_lock_is_reentrant_within_a_process(config):
    hold_home(config)
    hold_home(config)
    assert warehouse(config) is warehouse(config)
    assert (config.home / ".lock").read_text().strip() == str(os.getpid())
