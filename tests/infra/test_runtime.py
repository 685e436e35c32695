"""The embedded home belongs to one process; within it the runtime opens as often as needed."""

from __future__ import annotations

import os

from infra.runtime import hold_home, runtime, warehouse


def test_home_lock_is_reentrant_within_a_process(config):
    hold_home(config)
    hold_home(config)
    warehouse(config)
    with runtime(config) as rt:  # after the session's warehouse, as in the tests and dag.test()
        assert rt.ch is warehouse(config)
    assert (config.home / ".lock").read_text().strip() == str(os.getpid())
