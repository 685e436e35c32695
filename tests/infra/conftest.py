"""What the infra tests share: the installed `hqlake` run as an operator runs it (its own
HQLAKE_HOME, none of this session's other HQLAKE_ settings), in a subprocess or in this
process (`infra.cli.main(argv)`, no Python start-up), and what an operator mistake must look
like (exit 2, one or two lines on stderr, no traceback)."""

from __future__ import annotations

import contextlib
import io
import logging
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


def run_hqlake_here(home: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    """`hqlake ARGS` as `run_hqlake` runs it, but in this process: `infra.cli.main(args)` with
    the operator's environment, its stdout and stderr captured and its exit code, and the
    logging it configures sent to that stderr (a stray log line counts as a line). A few
    tests keep the subprocess: the real entry point's exit codes and tracebacks."""
    from infra import runtime
    from infra.cli import main
    from infra.settings import settings

    root = logging.getLogger()
    saved_handlers, saved_level = root.handlers[:], root.level
    held = set(runtime._HELD)
    out, err = io.StringIO(), io.StringIO()
    code: int | str | None = 0
    with contextlib.ExitStack() as stack:
        stack.enter_context(_environment(operator_env(home, **env)))
        settings.cache_clear()
        stack.callback(settings.cache_clear)
        stack.enter_context(contextlib.redirect_stdout(out))
        stack.enter_context(contextlib.redirect_stderr(err))
        root.handlers = []  # main() configures logging as in a new process
        try:
            main(list(args))
        except SystemExit as exc:
            code = exc.code
        finally:
            for handler in root.handlers:
                handler.close()
            root.handlers, root.level = saved_handlers, saved_level
            for home_held in set(runtime._HELD) - held:  # the home lock goes with the "process"
                os.close(runtime._HELD.pop(home_held))
    returncode = code if isinstance(code, int) else (0 if code is None else 1)
    return subprocess.CompletedProcess(
        ["hqlake", *args], returncode, out.getvalue(), err.getvalue()
    )


@contextlib.contextmanager
def _environment(values: dict[str, str]):
    """os.environ is exactly `values` inside the block, as it was before after it."""
    saved = dict(os.environ)
    os.environ.clear()
    os.environ.update(values)
    try:
        yield None
    finally:
        os.environ.clear()
        os.environ.update(saved)


def assert_operator_error(out: subprocess.CompletedProcess, *expected: str) -> None:
    """Exit 2 with one or two lines on stderr, no traceback, each of `expected` in them."""
    lines = out.stderr.strip().splitlines()
    assert out.returncode == 2, out.stdout + out.stderr[-3000:]
    assert "Traceback" not in out.stderr
    assert 1 <= len(lines) <= 2, out.stderr
    for text in expected:
        assert text in out.stderr, out.stderr
