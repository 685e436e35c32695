"""The one error type for mistakes an operator can fix: a registry row, a setting, a path.

Its message names the problem and the fix in a line or two; the CLI prints it without a
traceback and exits 2 (`hqlake --verbose` shows the traceback). It lives in the lowest layer
so that every layer can raise it and the CLI can catch it without importing upwards.
"""

from __future__ import annotations


class OperatorError(Exception):
    """Bad configuration or input that the operator fixes; the message says how."""
