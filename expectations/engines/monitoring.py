"""Daily upload monitoring: batch- and file-level rules for every expected batch of a date.

Expected batches come from the registry (every organisation active on the date, every
dataset of its kind); what arrived comes from what ingestion committed (dq.batch,
dq.ingest_file). Everything is computed from stored receive times and row counts, never
from the clock, so a business date gets the same results whenever it is judged.
"""

from __future__ import annotations

import datetime as dt
import statistics
from collections import defaultdict
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from clickhouse_connect.driver.client import Client

from contracts.calendar import deadline, is_workday
from contracts.loader import contracts
from contracts.registry import Registry
from expectations.rules.results import RuleResult
from expectations.rules.rulebase import BATCH_TYPES, Rule, RuleBase

_MANIFEST = "_manifest.json"
_TZ = ZoneInfo("Asia/Shanghai")


@dataclass
class _Batch:
    first_version_received: dt.datetime  # when the first complete delivery had arrived
    version: int
    rows_read: int
    rows_quarantined: int
    manifest_count: int | None
    manifest_problem: str | None
    files: list[tuple[str, str, list[str], list[str]]]  # file, status, missing, extra


def _batches(ch: Client, day: dt.date) -> dict[tuple[str, str], _Batch]:
    rows = ch.query(
        "SELECT org_code, dataset, batch_version, toUnixTimestamp(last_received_at), rows_read,"
        " rows_quarantined,"
        " manifest_row_count, manifest_problem FROM dq.batch FINAL"
        " WHERE business_date = {d:Date} ORDER BY batch_version",
        parameters={"d": day},
    ).result_rows
    out: dict[tuple[str, str], _Batch] = {}
    for org, ds, version, received, read, quarantined, m_count, m_problem in rows:
        # Epoch seconds: the driver returns this zoned column as a naive UTC datetime.
        received = dt.datetime.fromtimestamp(received, _TZ)
        first = out[(org, ds)].first_version_received if (org, ds) in out else received
        out[(org, ds)] = _Batch(first, version, read, quarantined, m_count, m_problem, [])
    for org, ds, version, file, status, missing, extra in ch.query(
        "SELECT org_code, dataset, batch_version, file, status, missing_columns, extra_columns"
        " FROM dq.ingest_file FINAL WHERE business_date = {d:Date} AND batch_version > 0",
        parameters={"d": day},
    ).result_rows:
        batch = out.get((org, ds))
        if batch and batch.version == version and not file.endswith(_MANIFEST):
            batch.files.append((file, status, list(missing), list(extra)))
    return out


def _history(ch: Client, day: dt.date, window: int) -> dict[tuple[str, str], dict[dt.date, int]]:
    rows = ch.query(
        "SELECT org_code, dataset, business_date, rows_read FROM dq.batch FINAL"
        " WHERE business_date >= {start:Date} AND business_date < {d:Date}"
        " AND (org_code, dataset, business_date, batch_version) IN"
        " (SELECT org_code, dataset, business_date, batch_version FROM raw.current_batch"
        " WHERE business_date >= {start:Date} AND business_date < {d:Date})",
        parameters={"start": day - dt.timedelta(days=window), "d": day},
    ).result_rows
    out: dict[tuple[str, str], dict[dt.date, int]] = defaultdict(dict)
    for org, ds, date, read in rows:
        out[(org, ds)][date] = int(read)
    return out


def modified_z(value: float, history: list[float]) -> float:
    """Iglewicz-Hoaglin modified z-score; falls back to the mean absolute deviation when the
    median absolute deviation is 0 (a perfectly regular history)."""
    median = statistics.median(history)
    mad = statistics.median(abs(x - median) for x in history)
    if mad:
        return 0.6745 * (value - median) / mad
    mean_ad = statistics.fmean(abs(x - median) for x in history)
    if mean_ad:
        return (value - median) / (1.253314 * mean_ad)
    return 0.0 if value == median else (float("-inf") if value < median else float("inf"))


def volume_check(
    rows: int, day: dt.date, history: dict[dt.date, int], params: dict
) -> tuple[int, int, str]:
    """(checked, failed, note) for volume_not_collapsed."""
    working = is_workday(day)[0]
    comparable = [n for d, n in sorted(history.items()) if is_workday(d)[0] == working]
    kind = "working days" if working else "rest days"
    if len(comparable) < params["min_history"]:
        return (
            0,
            0,
            (
                f"{len(comparable)} comparable {kind} in the last {params['window_days']} "
                f"days; {params['min_history']} needed"
            ),
        )
    z = modified_z(rows, comparable)
    median = statistics.median(comparable)
    note = f"{rows} rows vs median {median:g} of {len(comparable)} {kind} (modified z {z:.1f})"
    dropped = rows < median * (1 - params["min_drop_pct"] / 100)
    return 1, int(z < params["z_threshold"] and dropped), note


def _unrecognised_uploads(
    ch: Client, day: dt.date, kinds: dict[str, str]
) -> dict[str, tuple[set[str], set[str], list[str]]]:
    """Per organisation: (dataset folders uploaded, folders that are not a dataset of its
    kind, the refused files with the reason ingestion gave)."""
    expected = {
        kind: {d.dataset for d in contracts().datasets_for(kind)} for kind in set(kinds.values())
    }
    out: dict[str, tuple[set[str], set[str], list[str]]] = defaultdict(lambda: (set(), set(), []))
    for org, dataset, file, reason in ch.query(
        "SELECT org_code, dataset, file, reason FROM dq.ingest_file FINAL"
        " WHERE business_date = {d:Date} ORDER BY org_code, dataset, file",
        parameters={"d": day},
    ).result_rows:
        if org not in kinds:
            continue  # unregistered: reported by ingestion, there is no one to score
        folders, unknown, refused = out[org]
        folders.add(dataset)
        if dataset not in expected[kinds[org]]:
            unknown.add(dataset)
            refused.append(f"{file}: {reason}")
    return out


def monitor_date(
    ch: Client, registry: Registry, rulebase: RuleBase, day: dt.date, run_id: str
) -> list[RuleResult]:
    """Batch- and file-level rule results of every expected batch of `day`."""
    batches = _batches(ch, day)
    volume_params = rulebase.types["volume_not_collapsed"].params
    history = _history(ch, day, volume_params["window_days"])
    results: list[RuleResult] = []
    uploads = _unrecognised_uploads(ch, day, {o.org_code: o.kind for o in registry.active(day)})
    for org in sorted(registry.active(day), key=lambda o: o.org_code):
        rules, fingerprint = rulebase.effective_rules(org.org_code, org.peer_group)
        by_id = {r.id: r for r in rules}
        folders, unknown, refused = uploads.get(org.org_code, (set(), set(), []))
        results.append(
            RuleResult.of(
                by_id["org.uploads_recognised"],
                run_id=run_id,
                org_code=org.org_code,
                dataset="",
                business_date=day,
                batch_version=0,
                checked=len(folders),
                failed=len(unknown),
                sample_keys=refused,
                notes=f"{len(folders)} dataset folders uploaded",
                query="hqlake monitoring: uploads_recognised",
                fingerprint=fingerprint,
            )
        )
        due = deadline(org.kind, day)
        for dataset in sorted(d.dataset for d in contracts().datasets_for(org.kind)):
            batch = batches.get((org.org_code, dataset))

            def add(
                rule_type: str,
                checked: int,
                failed: int,
                note: str = "",
                keys: list[str] | None = None,
                applicable: bool = True,
                dataset: str = dataset,
                batch: _Batch | None = batch,
                org=org,
                by_id=by_id,
                fingerprint=fingerprint,
            ) -> None:
                rule: Rule = by_id[f"{dataset}.{rule_type}"]
                results.append(
                    RuleResult.of(
                        rule,
                        run_id=run_id,
                        org_code=org.org_code,
                        dataset=dataset,
                        business_date=day,
                        batch_version=batch.version if batch else 0,
                        checked=checked,
                        failed=failed,
                        sample_keys=keys,
                        notes=note,
                        query=f"hqlake monitoring: {rule_type}",
                        fingerprint=fingerprint,
                        applicable=applicable,
                    )
                )

            if batch is None:
                add("batch_received", 1, 1, "no file received for this date")
                add("batch_on_time", 1, 1, f"not received; deadline {due.at:%Y-%m-%d %H:%M}")
                for rule_type in BATCH_TYPES:
                    if rule_type not in ("batch_received", "batch_on_time"):
                        add(rule_type, 0, 0, "no batch", applicable=False)
                continue
            add("batch_received", 1, 0)
            late = batch.first_version_received > due.at
            add(
                "batch_on_time",
                1,
                int(late),
                f"received {batch.first_version_received:%Y-%m-%d %H:%M}, deadline "
                f"{due.at:%Y-%m-%d %H:%M}"
                + (f"; {due.calendar_note}" if due.calendar_note else ""),
            )
            refused = [f for f, status, _, _ in batch.files if status == "rejected"]
            add("file_readable", len(batch.files), len(refused), keys=refused)
            if batch.manifest_count is None and batch.manifest_problem is None:
                add("manifest_row_count", 0, 0, "no manifest", applicable=False)
            else:
                add(
                    "manifest_row_count",
                    1,
                    int(batch.manifest_problem is not None),
                    batch.manifest_problem or "",
                )
            checked, failed, note = volume_check(
                batch.rows_read, day, history.get((org.org_code, dataset), {}), volume_params
            )
            add("volume_not_collapsed", checked, failed, note, applicable=checked > 0)
            required = set(contracts().dataset(dataset).required_fields)
            loaded = [f for f in batch.files if f[1] == "loaded"]
            missing = [
                f"{f}: {', '.join(sorted(required & set(m)))}"
                for f, _, m, _ in loaded
                if required & set(m)
            ]
            add("columns_present", len(loaded), len(missing), keys=missing)
            drift = [f"{f}: {', '.join(x)}" for f, _, _, x in loaded if x]
            add("no_schema_drift", len(loaded), len(drift), keys=drift)
            add(
                "values_typed",
                batch.rows_read,
                batch.rows_quarantined,
                "rows quarantined at ingest; reasons in dq.quarantine",
            )
    return results
