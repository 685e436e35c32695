"""The upload standard's time zone, one owner: `timezone:` in contracts/timeliness.yaml.

Every deadline, receive time, `*_at` column and the daily schedule are in this zone; Python
code imports `TZ` (or `TZ_NAME` where a library or ClickHouse wants the name) from here.
Read with yaml alone (contracts.yamltext), not through the contract loader, so that a DAG
file can import it at parse time without pydantic and pyarrow.
"""

from __future__ import annotations

from pathlib import Path
from zoneinfo import ZoneInfo

from contracts.yamltext import safe_load

_TIMELINESS = Path(__file__).with_name("timeliness.yaml")

TZ_NAME: str = safe_load(_TIMELINESS.read_text(encoding="utf-8"))["timezone"]
TZ = ZoneInfo(TZ_NAME)
