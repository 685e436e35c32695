"""A batch's `_manifest.json`: the row count its uploader declares.

A manifest that is not valid JSON, has no `row_count`, or whose `row_count` is not a JSON
integer in range is a manifest problem recorded with the batch, never a refusal.
"""

from __future__ import annotations

import json

from ingest.inbox import printable
from ingest.policy import short_reason

# dq.batch.manifest_row_count is UInt64; the bound is Int64's so that arithmetic downstream
# (read minus declared) cannot overflow.
MAX_ROW_COUNT = 2**63 - 1


class _HugeInt(str):
    """A JSON integer too long to be any count, kept as its text: Python refuses to convert
    more than 4,300 digits, and nothing near that many is in range."""


def _json_int(text: str) -> int | _HugeInt:
    return int(text) if len(text) <= 40 else _HugeInt(text)


def read_manifest(data: bytes) -> tuple[int | None, str | None]:
    """(row_count, None), or (None, the manifest problem)."""
    try:
        manifest = json.loads(data.decode("utf-8-sig"), parse_int=_json_int)
    except (ValueError, RecursionError) as exc:  # bad UTF-8 or JSON, nesting too deep
        return None, f"manifest is not valid JSON ({short_reason(exc, 120)})"
    if not isinstance(manifest, dict) or "row_count" not in manifest:
        return None, "manifest has no row_count"
    count = manifest["row_count"]
    # bool is an int in Python; JSON's true is not a count. 3.0 and "3" are not integers.
    if type(count) is not int or not 0 <= count <= MAX_ROW_COUNT:
        shown = count if isinstance(count, _HugeInt) else json.dumps(count, ensure_ascii=False)
        shown = printable(shown)
        shown = shown if len(shown) <= 40 else shown[:40] + "..."
        return None, (
            f"manifest row_count must be a JSON integer from 0 to {MAX_ROW_COUNT}; got {shown}"
        )
    return count, None
