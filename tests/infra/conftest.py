"""What the infra tests share: the installed `hqlake` run as an operator runs it (its own
HQLAKE_HOME, none of this session's other HQLAKE_ settings) and what an operator mistake
must look like (exit 2, one or two lines on stderr, no traceback)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

HQLAKE = Path(sys.executable).with_name("hqlake")


def operator_env(home: Path, **env: str) -> dict[str, str]:
    """This session's environment without its HQLAKE_ settings, with `home` and `env`."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("HQLAKE_")}
    return {**base, "HQLAKE_HOME": str(home), **env}


def run_hqlake(
    home: Path, *args: str, stdin: str | None = None, timeout: float = 120, **env: str
) -> subprocess.CompletedProcess:
    """`hqlake ARGS` in a subprocess on `home` (a command costs about a second of start-up);
    `env` adds or overrides variables (HQLAKE_HOME too)."""
    return subprocess.run(
        [str(HQLAKE), *args],
        env=operator_env(home, **env),
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def assert_operator_error(out: subprocess.CompletedProcess, *expected: str) -> None:
    """Exit 2 with one or two lines on stderr, no traceback, each of `expected` in them."""
    lines = out.stderr.strip().splitlines()
    assert out.returncode == 2, out.stdout + out.stderr[-3000:]
    assert "Traceback" not in out.stderr
    assert 1 <= len(lines) <= 2, out.stderr
    for text in expected:
        assert text in out.stderr, out.stderr
