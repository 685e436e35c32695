"""Daily upload monitoring: batch- and file-level rules for every expected batch of a date.

Expected batches come from the registry (every organisation active on the date, every
dataset of its kind); what arrived comes from what ingestion committed (dq.batch,
dq.ingest_file). Everything is computed from stored receive times and row counts, never
from the clock, so a business date gets the same results whenever it is judged.

Two engines live here, each a table keyed by rule type: `BATCH_RULES` (engine `monitoring`,
one result per expected batch; a rule about what arrived is not_applicable when nothing did)
and `ORG_DAY_RULES` (engine `org_day`, one result per organisation and date).
"""

from __future__ import annotations

import datetime as dt
import statistics
from collections import defaultdict
from collections.abc import Callable, Collection
from dataclasses import dataclass
from functools import cached_property
from typing import NamedTuple

from clickhouse_connect.driver.client import Client

from contracts.calendar import Deadline, deadline, is_workday
from contracts.loader import contracts
from contracts.registry import Organisation, Registry
from contracts.timezone import TZ as _TZ
from contracts.upload import MANIFEST as _MANIFEST
from expectations.rules.results import RuleResult
from expectations.rules.rulebase import Rule, RuleBase


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


def _volume_against_history(
    rows: int,
    day: dt.date,
    history: dict[dt.date, int],
    params: dict,
    unusual: Callable[[float, float], bool],
) -> tuple[int, int, str]:
    """(checked, failed, note): `rows` against the same weekday type (working day or not) of
    `history`; `unusual(z, median)` says whether a modified z-score and median fail."""
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
    return 1, int(unusual(z, median)), note


def volume_check(
    rows: int, day: dt.date, history: dict[dt.date, int], params: dict
) -> tuple[int, int, str]:
    """(checked, failed, note) for volume_not_collapsed."""
    return _volume_against_history(
        rows,
        day,
        history,
        params,
        lambda z, median: (
            z < params["z_threshold"] and rows < median * (1 - params["min_drop_pct"] / 100)
        ),
    )


def spike_check(
    rows: int, day: dt.date, history: dict[dt.date, int], params: dict
) -> tuple[int, int, str]:
    """(checked, failed, note) for volume_not_spiked (upload standard 7.3): a modified
    z-score of at least z_threshold AND more than min_ratio times the median."""
    return _volume_against_history(
        rows,
        day,
        history,
        params,
        lambda z, median: z >= params["z_threshold"] and rows > params["min_ratio"] * median,
    )


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


class _Outcome(NamedTuple):
    """What a monitoring rule found; `keys` are the sample keys (files, folders)."""

    checked: int
    failed: int
    note: str = ""
    keys: list[str] | None = None
    applicable: bool = True


_NO_BATCH = _Outcome(0, 0, "no batch", applicable=False)


class _Day:
    """What monitoring reads of one business date, each read once, when a rule first needs it."""

    def __init__(self, ch: Client, registry: Registry, day: dt.date) -> None:
        self.ch, self.registry, self.day = ch, registry, day
        self._history: dict[int, dict[tuple[str, str], dict[dt.date, int]]] = {}

    @cached_property
    def batches(self) -> dict[tuple[str, str], _Batch]:
        return _batches(self.ch, self.day)

    @cached_property
    def uploads(self) -> dict[str, tuple[set[str], set[str], list[str]]]:
        kinds = {o.org_code: o.kind for o in self.registry.active(self.day)}
        return _unrecognised_uploads(self.ch, self.day, kinds)

    def history(self, window_days: int) -> dict[tuple[str, str], dict[dt.date, int]]:
        if window_days not in self._history:
            self._history[window_days] = _history(self.ch, self.day, window_days)
        return self._history[window_days]


@dataclass(frozen=True)
class _OrgDay:
    """One organisation active on the date."""

    read: _Day
    org: Organisation


@dataclass(frozen=True)
class _ExpectedBatch:
    """One dataset an organisation owes on the date, and what arrived (None: nothing)."""

    read: _Day
    org: Organisation
    dataset: str
    batch: _Batch | None
    due: Deadline


BatchRule = Callable[[_ExpectedBatch, Rule], _Outcome]
OrgDayRule = Callable[[_OrgDay, Rule], _Outcome]


def _arrived(judge: Callable[[_ExpectedBatch, _Batch, Rule], _Outcome]) -> BatchRule:
    """A rule about what arrived: not applicable when no batch did."""

    def run(expected: _ExpectedBatch, rule: Rule) -> _Outcome:
        if expected.batch is None:
            return _NO_BATCH
        return judge(expected, expected.batch, rule)

    return run


def _batch_received(expected: _ExpectedBatch, _rule: Rule) -> _Outcome:
    if expected.batch is None:
        return _Outcome(1, 1, "no file received for this date")
    return _Outcome(1, 0)


def _batch_on_time(expected: _ExpectedBatch, _rule: Rule) -> _Outcome:
    due = expected.due
    if expected.batch is None:
        return _Outcome(1, 1, f"not received; deadline {due.at:%Y-%m-%d %H:%M}")
    received = expected.batch.first_version_received
    return _Outcome(
        1,
        int(received > due.at),
        f"received {received:%Y-%m-%d %H:%M}, deadline {due.at:%Y-%m-%d %H:%M}"
        + (f"; {due.calendar_note}" if due.calendar_note else ""),
    )


@_arrived
def _file_readable(_expected: _ExpectedBatch, batch: _Batch, _rule: Rule) -> _Outcome:
    refused = [f for f, status, _, _ in batch.files if status == "rejected"]
    return _Outcome(len(batch.files), len(refused), keys=refused)


@_arrived
def _manifest_row_count(_expected: _ExpectedBatch, batch: _Batch, _rule: Rule) -> _Outcome:
    if batch.manifest_count is None and batch.manifest_problem is None:
        return _Outcome(0, 0, "no manifest", applicable=False)
    return _Outcome(1, int(batch.manifest_problem is not None), batch.manifest_problem or "")


def _volume(check: Callable[[int, dt.date, dict[dt.date, int], dict], tuple[int, int, str]]):
    """A batch rule judging the rows received against the organisation's own history of
    the dataset (`volume_check`, `spike_check`); not_applicable without enough history."""

    @_arrived
    def judge(expected: _ExpectedBatch, batch: _Batch, rule: Rule) -> _Outcome:
        history = expected.read.history(rule.params["window_days"])
        checked, failed, note = check(
            batch.rows_read,
            expected.read.day,
            history.get((expected.org.org_code, expected.dataset), {}),
            rule.params,
        )
        return _Outcome(checked, failed, note, applicable=checked > 0)

    return judge


def _loaded(batch: _Batch) -> list[tuple[str, str, list[str], list[str]]]:
    return [f for f in batch.files if f[1] == "loaded"]


@_arrived
def _columns_present(expected: _ExpectedBatch, batch: _Batch, _rule: Rule) -> _Outcome:
    required = set(contracts().dataset(expected.dataset).required_fields)
    loaded = _loaded(batch)
    missing = [
        f"{f}: {', '.join(sorted(required & set(m)))}" for f, _, m, _ in loaded if required & set(m)
    ]
    return _Outcome(len(loaded), len(missing), keys=missing)


@_arrived
def _no_schema_drift(_expected: _ExpectedBatch, batch: _Batch, _rule: Rule) -> _Outcome:
    loaded = _loaded(batch)
    drift = [f"{f}: {', '.join(x)}" for f, _, _, x in loaded if x]
    return _Outcome(len(loaded), len(drift), keys=drift)


@_arrived
def _values_typed(_expected: _ExpectedBatch, batch: _Batch, _rule: Rule) -> _Outcome:
    return _Outcome(
        batch.rows_read,
        batch.rows_quarantined,
        "rows quarantined at ingest; reasons in dq.quarantine",
    )


def _uploads_recognised(org_day: _OrgDay, _rule: Rule) -> _Outcome:
    folders, unknown, refused = org_day.read.uploads.get(org_day.org.org_code, (set(), set(), []))
    return _Outcome(
        len(folders), len(unknown), f"{len(folders)} dataset folders uploaded", keys=refused
    )


# The `monitoring` engine: rule type -> its result for one expected batch.
BATCH_RULES: dict[str, BatchRule] = {
    "batch_received": _batch_received,
    "batch_on_time": _batch_on_time,
    "file_readable": _file_readable,
    "manifest_row_count": _manifest_row_count,
    "volume_not_collapsed": _volume(volume_check),
    "volume_not_spiked": _volume(spike_check),
    "columns_present": _columns_present,
    "no_schema_drift": _no_schema_drift,
    "values_typed": _values_typed,
}
# The batch rules judged from the batch's own files (what ingestion recorded of them), not
# from receive times, deadlines or earlier dates: the pre-flight check runs these on a
# hospital's machine (expectations.preflight); the platform checks the others.
LOCAL_BATCH_RULES = frozenset(
    {"file_readable", "manifest_row_count", "columns_present", "no_schema_drift", "values_typed"}
)
# The `org_day` engine: rule type -> its result for one organisation and date.
ORG_DAY_RULES: dict[str, OrgDayRule] = {
    "uploads_recognised": _uploads_recognised,
}


def monitor_date(
    ch: Client,
    registry: Registry,
    rulebase: RuleBase,
    day: dt.date,
    run_id: str,
    *,
    org_code: str | None = None,
    batch_types: Collection[str] | None = None,
) -> list[RuleResult]:
    """Results of every rule of the `org_day` engine for every organisation active on `day`,
    and of the `monitoring` engine for every batch they owe that day; with `org_code` and
    `batch_types` (the pre-flight check), only that organisation's batch rules of those
    types."""
    read = _Day(ch, registry, day)
    org_day_types = rulebase.types_of("org_day") if batch_types is None else []
    types = [t for t in rulebase.types_of("monitoring") if batch_types is None or t in batch_types]
    results: list[RuleResult] = []

    def add(
        rule: Rule,
        outcome: _Outcome,
        org: Organisation,
        dataset: str,
        batch: _Batch | None,
        fp: str,
    ) -> None:
        results.append(
            RuleResult.of(
                rule,
                run_id=run_id,
                org_code=org.org_code,
                dataset=dataset,
                business_date=day,
                batch_version=batch.version if batch else 0,
                checked=outcome.checked,
                failed=outcome.failed,
                sample_keys=outcome.keys,
                notes=outcome.note,
                query=f"hqlake monitoring: {rule.type}",
                fingerprint=fp,
                applicable=outcome.applicable,
            )
        )

    for org in sorted(registry.active(day), key=lambda o: o.org_code):
        if org_code is not None and org.org_code != org_code:
            continue
        rules, fingerprint = rulebase.effective_rules(org.org_code, org.peer_group)
        by_id = {r.id: r for r in rules}
        for rule_type in org_day_types:
            rule = by_id[f"org.{rule_type}"]
            add(
                rule, ORG_DAY_RULES[rule_type](_OrgDay(read, org), rule), org, "", None, fingerprint
            )
        due = deadline(org.kind, day)
        for dataset in sorted(d.dataset for d in contracts().datasets_for(org.kind)):
            expected = _ExpectedBatch(
                read, org, dataset, read.batches.get((org.org_code, dataset)), due
            )
            for rule_type in types:
                rule = by_id[f"{dataset}.{rule_type}"]
                outcome = BATCH_RULES[rule_type](expected, rule)
                add(rule, outcome, org, dataset, expected.batch, fingerprint)
    return results
