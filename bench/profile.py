"""Summarise a py-spy profile of a bench worker: where each stage spends its time.

`bench.run --profile` records every scale's worker with
`py-spy record --idle --format raw` (idle samples included, so time spent waiting on chDB's
own threads counts). Raw output is one line per distinct stack, `frame;frame;... count`,
each frame `function (file:line)`, outermost first. Here every sample of the main thread is
attributed

* to a stage, by the bench function on its stack (`DailyRun.ingest`, `_sql_lower_bound`,
  ...: history days and the measured day together, the code is the same), and
* to what it was doing, by the innermost frame that belongs to a known library (chDB's
  engine, clickhouse-connect's decoding, polars, GX, ...) or else to hqlake's own code.

Threads other than the main one are summarised apart, in seconds per category without
the idle stdlib waits (dbt runs its models in a thread pool, SeaweedFS's log readers idle);
the bench's own RSS sampler is left out.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from pathlib import Path

_FRAME = re.compile(r"^(?P<func>.*) \((?P<file>[^()]*?)(?::(?P<line>\d+))?\)$")

STAGES = (
    ("plan", "DailyRun.plan", "cityday.py"),
    ("ingest", "DailyRun.ingest", "cityday.py"),
    ("late", "DailyRun.late", "cityday.py"),
    ("validate", "DailyRun.validate", "cityday.py"),
    ("validate", "DailyRun.validate_rules", "cityday.py"),
    ("score", "DailyRun.score", "cityday.py"),
    ("build", "DailyRun.build", "cityday.py"),
    ("report", "DailyRun.report", "cityday.py"),
    ("feedback", "DailyRun.feedback", "cityday.py"),
    ("sql_lower_bound", "_sql_lower_bound", "cityday.py"),
    ("gx_pandas", "validate_date", "gx_pandas.py"),
)
# innermost matching frame wins; checked in this order for each frame
CATEGORIES = (
    ("chDB engine (query execution)", ("chdb/", "chdb_backend.py")),
    ("clickhouse-connect (encode/decode)", ("clickhouse_connect/",)),
    ("Great Expectations", ("great_expectations/",)),
    ("dbt", ("dbt/", "dbt_common/", "dbt_clickhouse")),
    ("jinja2", ("jinja2/",)),
    ("polars", ("polars/",)),
    ("pyarrow", ("pyarrow/",)),
    ("pandas", ("pandas/",)),
    ("numpy", ("numpy/",)),
    ("S3 client (minio, urllib3)", ("minio/", "urllib3/")),
    ("imports", ("<frozen importlib",)),
)
IDLE = "Python (stdlib and other)"
OWN = ("contracts/", "expectations/", "ingest/", "infra/", "bench/")


def _frames(stack: str) -> list[tuple[str, str]]:
    out = []
    for text in stack.split(";"):
        m = _FRAME.match(text)
        out.append((m["func"], m["file"]) if m else (text, ""))
    return out


def _stage(frames: list[tuple[str, str]]) -> str:
    for func, file in frames:
        for name, marker, where in STAGES:
            if func == marker and file.endswith(where):
                return name
    return "other"


def _category(frames: list[tuple[str, str]]) -> str:
    for _func, file in reversed(frames):
        for name, needles in CATEGORIES:
            if any(n in file for n in needles):
                return name
        if file.startswith(OWN):
            return "hqlake Python"
    return IDLE


def _own(frames: list[tuple[str, str]]) -> str | None:
    """The innermost frame of hqlake's own code (not bench/): where our code called out."""
    for func, file in reversed(frames):
        if file.startswith(OWN[:-1]):
            return f"{func} ({file})"
    return None


def summarise(raw: Path, rate: int, top: int = 8) -> dict:
    """Per stage: seconds sampled, shares by category, the hqlake functions and the
    innermost frames that took most samples."""
    stages: dict[str, Counter] = defaultdict(Counter)
    own: dict[str, Counter] = defaultdict(Counter)
    leaves: dict[str, Counter] = defaultdict(Counter)
    threads: Counter = Counter()
    for line in Path(raw).read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        frames = _frames(stack)
        if any(f == "Meter._sample" for f, _ in frames):
            continue
        if frames and frames[0][0] == "Thread._bootstrap":
            threads[_category(frames)] += n
            continue
        stage = _stage(frames)
        stages[stage][_category(frames)] += n
        where = _own(frames)
        if where:
            own[stage][where] += n
        func, file = frames[-1]
        leaves[stage][f"{func} ({file})"] += n

    def shares(counter: Counter) -> dict[str, float]:
        total = sum(counter.values()) or 1
        return {k: round(100 * v / total, 1) for k, v in counter.most_common()}

    out = {}
    for stage, counter in sorted(stages.items(), key=lambda kv: -sum(kv[1].values())):
        total = sum(counter.values())
        out[stage] = {
            "seconds": round(total / rate, 1),
            "by_category_pct": shares(counter),
            "top_hqlake_frames_pct": {
                k: round(100 * v / total, 1) for k, v in own[stage].most_common(top)
            },
            "top_leaf_frames_pct": {
                k: round(100 * v / total, 1) for k, v in leaves[stage].most_common(top)
            },
        }
    busy = {k: round(v / rate, 1) for k, v in threads.most_common() if k != IDLE}
    if busy:
        out["other_threads"] = {"seconds_by_category": busy}
    return out


def markdown(summary: dict, stages: tuple[str, ...] = ()) -> str:
    """A short text of the summary: per stage the categories over 5% and the top frames."""
    lines = []
    for stage, s in summary.items():
        if stages and stage not in stages:
            continue
        if stage == "other_threads":
            cats = ", ".join(f"{k} {v:g}s" for k, v in s["seconds_by_category"].items())
            lines.append(f"- other threads (dbt's model runner among them): {cats}")
            continue
        cats = ", ".join(f"{k} {v:g}%" for k, v in s["by_category_pct"].items() if v >= 5)
        lines.append(f"- **{stage}** ({s['seconds']:g}s sampled): {cats}")
        for frame, pct in list(s.get("top_hqlake_frames_pct", {}).items())[:4]:
            lines.append(f"  - {pct:g}% under `{frame}`")
        if not s.get("top_hqlake_frames_pct"):
            for frame, pct in list(s.get("top_leaf_frames_pct", {}).items())[:4]:
                lines.append(f"  - {pct:g}% in `{frame}`")
    return "\n".join(lines)
