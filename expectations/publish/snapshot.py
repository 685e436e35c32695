"""The portal's snapshot: what the served portal reads, published by the pipeline as files so
that the portal process never opens the embedded warehouse (chDB opens a data path from one
process only, and a run holds it).

One owner of the format. `export_snapshot` reads the warehouse with the same readers the
reports and e-mails use and writes a new **generation** under the snapshot folder:

    <folder>/CURRENT                              the name of the generation to read
    <folder>/<generation>/meta.json               generation, published_at, dates, months, window
    <folder>/<generation>/registry.json           the organisations
    <folder>/<generation>/programme.json          appeals and waivers (`hqlake appeal|waiver list`)
    <folder>/<generation>/rules.json              the knowledge base with recent failures
    <folder>/<generation>/day/<date>/scores.json  read.read_scores
    <folder>/<generation>/day/<date>/org/<code>.json
                                                  failures, explanation, waived results,
                                                  problem changes, upload calendar cells
    <folder>/<generation>/day/<date>/keys/<code>.json.gz
                                                  masked failing keys (as the e-mail attachment)
    <folder>/<generation>/month/<YYYY-MM>/month.json
                                                  acceptance, latest signature, what-if inputs
    <folder>/<generation>/month/<YYYY-MM>/v<n>.xlsx
                                                  the commission's sheet of signed version n

The per-date and per-month folders of dates not exported again are carried over from the
previous generation by hard link (no copy, no rewrite), then CURRENT is replaced atomically
(a temporary file and an atomic rename), and all but the newest `KEEP` generations are removed:
a reader holds the generation it opened (`Snapshot` keeps its folder), so a request in
flight keeps reading a complete generation while a new one is published; a reader that
outlives `KEEP` publications sees its files vanish and must open again.

Values are JSON with tagged dates, datetimes and Decimals, so each reader returns exactly
what the warehouse reader returns (dates as `date`, `computed_at` as a zoned `datetime`,
points as `Decimal`), except that personal data is never written: sample keys and details
of failures, failing keys and every free text (notes, reasons, comments) are masked as the
pages and e-mails show them (`contracts.pii`; masking is idempotent, so pages masking them
again show the same). The snapshot never holds a raw identity number, name or phone.

The reader opens no service and imports nothing heavy at module level (the standard library
and contracts; `standing`, `signature` and `whatif_inputs` import their result types when
called): the portal opens it per request.
"""

# SQL text here is formatted from module constants only; every value is a bound parameter.

from __future__ import annotations

import datetime as dt
import functools
import gzip
import json
import os
import secrets
import shutil
from collections.abc import Iterable, Sequence
from dataclasses import asdict
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any

from contracts.registry import Organisation, Registry
from contracts.timezone import TZ

if TYPE_CHECKING:
    from clickhouse_connect.driver.client import Client

    from expectations.programme.read import Standing
    from expectations.scoring.arithmetic import ResultCount

CURRENT = "CURRENT"
KEEP = 3  # generations kept: the current one and two before it, for readers in flight
TREND_DAYS = 30  # as the organisation page (publish/report.py) draws it
RECENT_DATES = 30  # the rules page's "recently": the last 30 scored dates
FORMAT = 1
CACHE_FILES = 256  # files of a generation a reader keeps parsed by default (least recent go)
_ABSENT = object()  # a file the generation does not have (cached like one it has)

# ---- the JSON codec -------------------------------------------------------------------------


def _encode(value: Any) -> Any:
    if isinstance(value, dt.datetime):
        return {"$dt": value.isoformat()}
    if isinstance(value, dt.date):
        return {"$date": value.isoformat()}
    if isinstance(value, Decimal):
        return {"$dec": str(value)}
    if isinstance(value, dict):
        return {str(k): _encode(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_encode(v) for v in value]
    if isinstance(value, float | int | str | bool) or value is None:
        return value
    raise TypeError(f"snapshot cannot hold a {type(value).__name__}: {value!r}")


def _decode(obj: dict[str, Any]) -> Any:
    if len(obj) == 1:
        ((tag, text),) = obj.items()
        if tag == "$dt":
            return dt.datetime.fromisoformat(text)
        if tag == "$date":
            return dt.date.fromisoformat(text)
        if tag == "$dec":
            return Decimal(text)
    return obj


def _dump(path: Path, value: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    data = json.dumps(_encode(value), ensure_ascii=False, separators=(",", ":")).encode()
    if path.suffix == ".gz":
        data = gzip.compress(data, compresslevel=5, mtime=0)
    path.write_bytes(data)


def _load(path: Path) -> Any:
    data = path.read_bytes()
    if path.suffix == ".gz":
        data = gzip.decompress(data)
    return json.loads(data, object_hook=_decode)


# ---- reading the warehouse (the export side) --------------------------------------------------


def scored_dates(ch: Client) -> list[dt.date]:
    """Every business date with a scored current run, oldest first."""
    rows = ch.query(
        "SELECT DISTINCT business_date FROM dq.current_score_org_day ORDER BY business_date"
    ).result_rows
    return [r[0] for r in rows]


def read_failure_changes(ch: Client, org_code: str, day: dt.date) -> list[dict[str, Any]]:
    """The problem changes (new / resolved / persisting against the organisation's previous
    date with results) of the latest scoring of the current run of `day`."""
    result = ch.query(
        "SELECT dataset, rule_id, change FROM dq.current_failure_change"
        " WHERE business_date = {d:Date} AND org_code = {org:String}"
        " ORDER BY change, dataset, rule_id",
        parameters={"d": day, "org": org_code},
    )
    return [dict(zip(result.column_names, r, strict=True)) for r in result.result_rows]


def _day_failure_changes(ch: Client, day: dt.date) -> dict[str, list[dict[str, Any]]]:
    """read_failure_changes of every organisation of `day` in one query."""
    result = ch.query(
        "SELECT org_code, dataset, rule_id, change FROM dq.current_failure_change"
        " WHERE business_date = {d:Date} ORDER BY org_code, change, dataset, rule_id",
        parameters={"d": day},
    )
    out: dict[str, list[dict[str, Any]]] = {}
    for org, dataset, rule_id, change in result.result_rows:
        out.setdefault(org, []).append({"dataset": dataset, "rule_id": rule_id, "change": change})
    return out


def _day_failing_keys(
    ch: Client, day: dt.date, waived: dict[str, Sequence[str]]
) -> dict[str, list[dict[str, str]]]:
    """Every failing record key of the current run of `day` per organisation, masked as the
    e-mail attachment shows them, by dataset, rule, key; keys of waived results left out
    (`waived`: per organisation, the "dataset|rule_id" of its waived results), as the
    attachment leaves them out."""
    from contracts.pii import mask_key, mask_text

    result = ch.query(
        "SELECT org_code, dataset, rule_id, dimension, severity, record_key, detail"
        " FROM dq.record_issue WHERE business_date = {d:Date}"
        " AND run_id = (SELECT any(run_id) FROM dq.current_run WHERE business_date = {d:Date})"
        " ORDER BY org_code, dataset, rule_id, record_key",
        parameters={"d": day},
    )
    skip = {org: set(w) for org, w in waived.items()}
    out: dict[str, list[dict[str, str]]] = {}
    for org, dataset, rule_id, dimension, severity, key, detail in result.result_rows:
        if f"{dataset}|{rule_id}" in skip.get(org, ()):
            continue
        out.setdefault(org, []).append(
            {
                "dataset": dataset,
                "rule_id": rule_id,
                "dimension": dimension,
                "severity": severity,
                "record_key": mask_key(dataset, key),
                "detail": mask_text(detail or ""),
            }
        )
    return out


def _masked_failure(row: dict[str, Any]) -> dict[str, Any]:
    """A read.failures row as the snapshot holds it: sample keys, details and notes masked."""
    from contracts.pii import mask_key, mask_text

    return row | {
        "sample_keys": [mask_key(row["dataset"], str(k)) for k in row.get("sample_keys") or []],
        "sample_details": [mask_text(str(d)) for d in row.get("sample_details") or []],
        "notes": mask_text(row.get("notes") or ""),
    }


def masked_failures(rows: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """read.failures rows with what pages mask already masked (what `Snapshot.failures`
    returns)."""
    return [_masked_failure(r) for r in rows]


_APPEAL_TEXTS = ("reason", "comment")
_WAIVER_TEXTS = ("reason", "end_reason")


def masked_texts(rows: Iterable[dict[str, Any]], fields: Sequence[str]) -> list[dict[str, Any]]:
    """`rows` with identity and mobile numbers masked in the free-text `fields`."""
    from contracts.pii import mask_text

    return [r | {f: mask_text(r[f] or "") for f in fields if f in r} for r in rows]


def _standing_dict(standing: Standing) -> dict[str, Any]:
    return {
        "waived": masked_texts(standing.waived, ("why",)),
        "appeals": masked_texts(standing.appeals, _APPEAL_TEXTS),
    }


def read_upload_cells(ch: Client, registry: Registry, day: dt.date) -> dict[str, dict]:
    """Per organisation active on `day`, per dataset expected of its kind: received, late,
    missing, corrected and the batch versions (the upload calendar's cells of one day)."""
    from contracts.loader import contracts

    versions: dict[tuple[str, str], list[int]] = {}
    for org, dataset, version in ch.query(
        "SELECT org_code, dataset, batch_version FROM dq.batch FINAL"
        " WHERE business_date = {d:Date} ORDER BY org_code, dataset, batch_version",
        parameters={"d": day},
    ).result_rows:
        versions.setdefault((org, dataset), []).append(int(version))
    statuses = {
        (org, dataset, rule_type): status
        for org, dataset, rule_type, status in ch.query(
            "SELECT org_code, dataset, rule_type, argMax(status, batch_version)"
            " FROM dq.rule_result WHERE business_date = {d:Date}"
            " AND rule_type IN ('batch_received', 'batch_on_time')"
            " AND run_id = (SELECT any(run_id) FROM dq.current_run WHERE business_date = {d:Date})"
            " GROUP BY org_code, dataset, rule_type",
            parameters={"d": day},
        ).result_rows
    }
    datasets = contracts().datasets
    out: dict[str, dict] = {}
    for org in registry.active(day):
        cells = {}
        expected = sorted(n for n, ds in datasets.items() if ds.kind == org.kind)
        for dataset in sorted({*expected, *(d for o, d in versions if o == org.org_code)}):
            got = versions.get((org.org_code, dataset), [])
            cells[dataset] = {
                "received": bool(got),
                "late": statuses.get((org.org_code, dataset, "batch_on_time")) == "failed",
                "missing": not got
                and (
                    dataset in expected
                    or statuses.get((org.org_code, dataset, "batch_received")) == "failed"
                ),
                "corrected": len(got) > 1,
                "versions": got,
            }
        out[org.org_code] = cells
    return out


def read_rules(ch: Client, dates: Sequence[dt.date]) -> list[dict[str, Any]]:
    """Every rule of the knowledge base with dimension, level, severity, weight, threshold,
    notes, description and fix hint (zh, en) of its type, and its failures over `dates`
    (current runs): organisations and days failed."""
    from expectations.rules.rulebase import rulebase

    failed = {
        rule_id: (int(orgs), int(days), int(results))
        for rule_id, orgs, days, results in ch.query(
            "SELECT rule_id, uniqExact(org_code), uniqExact(business_date), count()"
            " FROM dq.rule_result WHERE status = 'failed'"
            " AND business_date IN {dates:Array(Date)}"
            " AND (business_date, run_id) IN (SELECT business_date, run_id FROM dq.current_run)"
            " GROUP BY rule_id",
            parameters={"dates": list(dates)},
        ).result_rows
    }
    rb = rulebase()
    out = []
    for rule in rb.rules:
        rule_type = rb.types.get(rule.type)
        orgs, days, results = failed.get(rule.id, (0, 0, 0))
        out.append(
            {
                "rule_id": rule.id,
                "rule_type": rule.type,
                "dataset": rule.dataset or "",
                "field": rule.field or "",
                "dimension": rule.dimension,
                "level": rule.level,
                "severity": rule.severity,
                "weight": rule.weight,
                "threshold": rule.threshold,
                "section": (rule_type.section if rule_type else None) or "",
                "notes": (rule_type.notes if rule_type else None) or "",
                "description_zh": rule.description_zh,
                "description_en": rule.description_en,
                "fix_hint_zh": rule.fix_hint_zh,
                "fix_hint_en": rule.fix_hint_en,
                "recent_orgs_failed": orgs,
                "recent_days_failed": days,
                "recent_results_failed": results,
                "recent_dates": len(dates),
            }
        )
    return out


def _signature_dict(signed: Any) -> dict[str, Any] | None:
    if signed is None:
        return None
    return {
        "signature": signed.signature,
        "rows": signed.rows,
        "subsidies": signed.subsidies,
        "reopening": signed.reopening,
    }


def _registry_rows(registry: Registry) -> dict[str, Any]:
    return {
        "source": registry.source,
        "organisations": [asdict(o) for o in registry.organisations.values()],
    }


# ---- writing a generation ---------------------------------------------------------------------


def _generation_name() -> str:
    now = dt.datetime.now(dt.UTC)
    return f"g{now:%Y%m%dT%H%M%S%f}-{secrets.token_hex(3)}"


def current_generation(folder: Path) -> str | None:
    """The name CURRENT holds, None when nothing is published (or it names nothing)."""
    try:
        name = (folder / CURRENT).read_text(encoding="utf-8").strip()
    except FileNotFoundError:
        return None
    return name if name and (folder / name / "meta.json").is_file() else None


def _link_tree(source: Path, target: Path) -> None:
    """`source` again as `target`, every file a hard link (nothing copied)."""
    shutil.copytree(source, target, copy_function=os.link)


def _export_day(ch: Client, registry: Registry, day: dt.date, target: Path) -> None:
    from expectations.programme.read import NO_STANDING, Programme
    from expectations.scoring import read

    scores = read.read_scores(ch, day)
    _dump(target / "scores.json", scores)
    standings = Programme(ch, registry).standings(day)
    cells = read_upload_cells(ch, registry, day)
    changes = _day_failure_changes(ch, day)
    failures = read.day_failures(ch, day)
    explanations = read.day_explanations(ch, day)
    waived: dict[str, list[str]] = {}
    for row in scores:
        code = row["org_code"]
        standing = standings.get(code, NO_STANDING)
        waived[code] = sorted(f"{w['dataset']}|{w['rule_id']}" for w in standing.waived)
        _dump(
            target / "org" / f"{code}.json",
            {
                "failures": masked_failures(failures.get(code, [])),
                "explanation": explanations.get(code, []),
                "waived": _standing_dict(standing)["waived"],
                "failure_changes": changes.get(code, []),
                "uploads": cells.get(code, {}),
            },
        )
    keys = _day_failing_keys(ch, day, waived)
    for code in waived:
        _dump(target / "keys" / f"{code}.json.gz", keys.get(code, []))
    # organisations active but not scored (nothing received) still have calendar cells
    _dump(target / "uploads.json", cells)


def _export_month(ch: Client, registry: Registry, month: dt.date, target: Path) -> None:
    from expectations.programme.history import load_exemptions
    from expectations.programme.signoff import read_signature
    from expectations.publish.acceptance_sheet import write_acceptance_sheet
    from expectations.scoring.acceptance import month_dates
    from expectations.scoring.inputs import current_runs, result_counts
    from expectations.scoring.read import read_acceptance

    signed = read_signature(ch, month)
    runs = current_runs(ch, month_dates(month))
    counts = result_counts(ch, registry, sorted(runs), load_exemptions(ch)) if runs else []
    _dump(
        target / "month.json",
        {
            "acceptance": read_acceptance(ch, month),
            "signature": _signature_dict(signed),
            "whatif_runs": sorted(runs.items()),
            "whatif_rows": [list(r) for r in counts],
        },
    )
    if signed is not None:
        sheet = target / f"v{signed.version}.xlsx"
        if not sheet.is_file():
            write_acceptance_sheet(signed, sheet)


def export_snapshot(
    ch: Client,
    registry: Registry,
    folder: Path,
    dates: Sequence[dt.date] | None = None,
    *,
    months: Sequence[dt.date] = (),
) -> str:
    """Publish a new generation under `folder` and return its name.

    `dates`: the business dates whose per-date files are written again (None: every scored
    date); the others are carried over from the current generation by hard link, or
    written when it has none. The months of those dates, and `months` (e.g. a month just
    signed or reopened), are written again likewise. The registry, appeals, waivers and the
    rules page are always written (they are small and any action changes them). Then CURRENT
    names the new generation (atomically) and old generations beyond `KEEP` are removed."""
    from expectations.programme.appeals import list_appeals, list_waivers
    from expectations.programme.config import load_appeals_config

    folder.mkdir(parents=True, exist_ok=True)
    all_dates = scored_dates(ch)
    previous = current_generation(folder)
    old = folder / previous if previous else None
    wanted = set(all_dates) if dates is None else set(dates) & set(all_dates)
    wanted_months = {d.replace(day=1) for d in wanted} | {m.replace(day=1) for m in months}
    all_months = sorted({d.replace(day=1) for d in all_dates} | wanted_months)

    name = _generation_name()
    staging = folder / f".{name}.tmp"
    staging.mkdir()
    try:
        for day in all_dates:
            target = staging / "day" / day.isoformat()
            carried = old / "day" / day.isoformat() if old else None
            if day not in wanted and carried is not None and carried.is_dir():
                _link_tree(carried, target)
            else:
                target.mkdir(parents=True)
                _export_day(ch, registry, day, target)
        for month in all_months:
            target = staging / "month" / f"{month:%Y-%m}"
            carried = old / "month" / f"{month:%Y-%m}" if old else None
            if carried is not None and carried.is_dir():
                _link_tree(carried, target)  # keeps the sheets of earlier versions
                if month not in wanted_months:
                    continue
                (target / "month.json").unlink()  # a link: the old generation keeps its copy
            target.mkdir(parents=True, exist_ok=True)
            _export_month(ch, registry, month, target)
        config = load_appeals_config()
        _dump(staging / "registry.json", _registry_rows(registry))
        _dump(
            staging / "programme.json",
            {
                "appeals": masked_texts(list_appeals(ch), _APPEAL_TEXTS),
                "waivers": masked_texts(list_waivers(ch), _WAIVER_TEXTS),
            },
        )
        _dump(staging / "rules.json", read_rules(ch, all_dates[-RECENT_DATES:]))
        _dump(
            staging / "meta.json",
            {
                "format": FORMAT,
                "generation": name,
                "published_at": dt.datetime.now(TZ),
                "dates": all_dates,
                "months": all_months,
                "window_days": config.window.days_after_business_date,
                "exported_dates": sorted(wanted),
            },
        )
        staging.rename(folder / name)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    tmp = folder / f".{CURRENT}.{name}.tmp"
    tmp.write_text(name + "\n", encoding="utf-8")
    tmp.replace(folder / CURRENT)  # atomic: a reader sees the old name or the new one
    _prune(folder, name)
    return name


def _prune(folder: Path, current: str) -> None:
    generations = sorted(p for p in folder.iterdir() if p.is_dir() and p.name.startswith("g"))
    keep = {p.name for p in generations[-KEEP:]} | {current}
    for path in generations:
        if path.name not in keep:
            shutil.rmtree(path, ignore_errors=True)
    for stale in folder.glob(".*.tmp"):  # a publication that crashed half-way
        if stale.is_dir():
            shutil.rmtree(stale, ignore_errors=True)


# ---- reading a generation (the portal side) ---------------------------------------------------


class Snapshot:
    """One published generation, read-only. Open with `Snapshot.open(folder)` per request
    (cheap: it reads meta.json); every reader returns plain Python values.

    What it has read stays parsed in a least-recently-used cache of at most `cache_files`
    files (thread-safe: the portal serves requests from a thread pool), so a process that
    keeps one generation open (the portal, until CURRENT names another) holds a bounded
    part of it, not every day it was ever asked; a new generation is a new Snapshot, and
    the old one goes with its cache."""

    def __init__(self, root: Path, meta: dict[str, Any], cache_files: int = CACHE_FILES) -> None:
        self.root = root
        self.meta = meta
        self._read = functools.lru_cache(maxsize=cache_files)(self._parse)
        self._registry: Registry | None = None

    @classmethod
    def open(cls, folder: Path | str, cache_files: int = CACHE_FILES) -> Snapshot | None:
        """The current generation under `folder`, None when nothing is published yet."""
        folder = Path(folder)
        for _ in range(3):  # CURRENT may move on between reading it and opening its folder
            name = current_generation(folder)
            if name is None:
                return None
            try:
                return cls(folder / name, _load(folder / name / "meta.json"), cache_files)
            except FileNotFoundError:
                continue
        return None

    def _parse(self, relative: str) -> Any:
        path = self.root / relative
        return _load(path) if path.is_file() else _ABSENT

    def _file(self, relative: str, default: Any = None) -> Any:
        value = self._read(relative)
        return default if value is _ABSENT else value

    def cache_info(self) -> functools._CacheInfo:
        """hits, misses, maxsize and currsize of the parsed-file cache."""
        return self._read.cache_info()

    # -- what is published

    @property
    def generation(self) -> str:
        return self.meta["generation"]

    @property
    def published_at(self) -> dt.datetime:
        return self.meta["published_at"]

    def dates(self) -> list[dt.date]:
        """Every scored business date, oldest first."""
        return list(self.meta["dates"])

    def latest_date(self) -> dt.date | None:
        return self.meta["dates"][-1] if self.meta["dates"] else None

    def months(self) -> list[dt.date]:
        """The first day of every month with a scored date (or a signature), oldest first."""
        return list(self.meta["months"])

    def registry(self) -> Registry:
        """The organisations (code, name, kind, level = peer group, county_code, …)."""
        if self._registry is None:
            data = self._file("registry.json")
            orgs = {}
            for o in data["organisations"]:
                o = dict(o)
                o["emails"] = tuple(o["emails"])
                orgs[o["org_code"]] = Organisation(**o)
            self._registry = Registry(orgs, data["source"])
        return self._registry

    # -- a date and an organisation-day

    def scores(self, day: dt.date) -> list[dict[str, Any]]:
        """read.read_scores(ch, day): organisation-day rows in display order; [] unscored."""
        return self._file(f"day/{day.isoformat()}/scores.json", [])

    def score(self, org_code: str, day: dt.date) -> dict[str, Any] | None:
        """The organisation's row of scores(day), None when it has none."""
        return next((r for r in self.scores(day) if r["org_code"] == org_code), None)

    def trend(self, org_code: str, day: dt.date, days: int = TREND_DAYS) -> list[dict[str, Any]]:
        """read.trend(ch, org, day, days): composite, rank, peer_size and dimension scores
        over the `days` dates ending with `day`, oldest first."""
        from expectations.scoring.config import DIMENSIONS

        first = day - dt.timedelta(days=days - 1)
        out = []
        for d in self.meta["dates"]:
            if first <= d <= day:
                row = self.score(org_code, d)
                if row is not None:
                    out.append(
                        {
                            "business_date": d,
                            "composite": row["composite"],
                            "rank": row["rank"],
                            "peer_size": row["peer_size"],
                            **{k: row[k] for k in DIMENSIONS},
                        }
                    )
        return out

    def _org_day(self, org_code: str, day: dt.date) -> dict[str, Any]:
        return self._file(f"day/{day.isoformat()}/org/{_safe(org_code)}.json", {})

    def failures(self, org_code: str, day: dt.date) -> list[dict[str, Any]]:
        """read.failures rows (description, fix hint, counts, new/persisting), sample keys,
        details and notes masked."""
        return self._org_day(org_code, day).get("failures", [])

    def explanation(self, org_code: str, day: dt.date) -> list[dict[str, Any]]:
        """read.read_explanation rows (org_day level): points lost per failed rule."""
        return self._org_day(org_code, day).get("explanation", [])

    def standing(self, org_code: str, day: dt.date) -> Standing:
        """programme.read.Programme.standing: the waived results of that day and the
        appeals shown on it (of dates still in the window, and older ones still open)."""
        from expectations.programme.read import Standing

        first = day - dt.timedelta(days=self.meta["window_days"])
        appeals = [
            a
            for a in self.appeals(org_code)
            if first <= a["business_date"] <= day
            or (a["status"] == "open" and a["business_date"] <= day)
        ]
        return Standing(list(self._org_day(org_code, day).get("waived", [])), appeals)

    def failure_changes(self, org_code: str, day: dt.date) -> list[dict[str, Any]]:
        """Problem changes of that day: dataset, rule_id, change (new|resolved|persisting)."""
        return self._org_day(org_code, day).get("failure_changes", [])

    def failing_keys(
        self,
        org_code: str,
        day: dt.date,
        rule_id: str | None = None,
        offset: int = 0,
        limit: int = 100,
    ) -> tuple[list[dict[str, str]], int]:
        """(rows, total) of the masked failing keys (dataset, rule_id, dimension, severity,
        record_key, detail) of one organisation-day, of one rule when given, paged."""
        rows = self._file(f"day/{day.isoformat()}/keys/{_safe(org_code)}.json.gz", [])
        if rule_id is not None:
            rows = [r for r in rows if r["rule_id"] == rule_id]
        offset, limit = max(offset, 0), max(limit, 0)
        return rows[offset : offset + limit], len(rows)

    def calendar(self, org_code: str, month: dt.date) -> dict[str, dict[dt.date, dict]]:
        """dataset -> date -> {received, late, missing, corrected, versions} over the
        scored dates of the month of `month`."""
        first = month.replace(day=1)
        out: dict[str, dict[dt.date, dict]] = {}
        for d in self.meta["dates"]:
            if d.replace(day=1) != first:
                continue
            cells = self._file(f"day/{d.isoformat()}/uploads.json", {}).get(org_code, {})
            for dataset, cell in cells.items():
                out.setdefault(dataset, {})[d] = cell
        return out

    # -- the programme

    def appeals(self, org_code: str | None = None) -> list[dict[str, Any]]:
        """list_appeals rows (newest submission first), of one organisation when given."""
        rows = self._file("programme.json")["appeals"]
        return [a for a in rows if org_code is None or a["org_code"] == org_code]

    def appeal(self, appeal_id: str) -> dict[str, Any] | None:
        return next((a for a in self.appeals() if a["appeal_id"] == appeal_id), None)

    def waivers(self) -> list[dict[str, Any]]:
        """list_waivers rows, by start date."""
        return self._file("programme.json")["waivers"]

    def window_days(self) -> int:
        """Days after a business date its results may be appealed (contracts/appeals.yaml)."""
        return self.meta["window_days"]

    # -- a month

    def _month(self, month: dt.date) -> dict[str, Any]:
        return self._file(f"month/{month:%Y-%m}/month.json", {})

    def acceptance(self, month: dt.date) -> list[dict[str, Any]]:
        """read.read_acceptance rows of the month (evidence as a dict)."""
        return self._month(month).get("acceptance", [])

    def signature(self, month: dt.date) -> Any:
        """signoff.read_signature: the latest signed version (a Signature) or None."""
        from expectations.programme.signoff import Signature

        data = self._month(month).get("signature")
        return None if data is None else Signature(**data)

    def acceptance_sheet(self, month: dt.date, version: int) -> Path | None:
        """The xlsx of signed version `version` of the month, None when there is none."""
        path = self.root / "month" / f"{month:%Y-%m}" / f"v{int(version)}.xlsx"
        return path if path.is_file() else None

    def whatif_inputs(self, month: dt.date) -> tuple[dict[dt.date, str], list[ResultCount]]:
        """(runs, rows) that `scoring.whatif.compare` takes for a period inside the month:
        the current runs of its dates and their result counts with the exemptions in force."""
        from expectations.scoring.arithmetic import ResultCount

        data = self._month(month)
        runs = {d: r for d, r in data.get("whatif_runs", [])}
        return runs, [ResultCount(*r) for r in data.get("whatif_rows", [])]

    # -- the knowledge base

    def rules(self) -> list[dict[str, Any]]:
        """Every rule with its attributes, texts and failures over the last 30 scored dates."""
        return self._file("rules.json", [])


def _safe(name: str) -> str:
    """A file name part from a caller's value (an organisation code from a URL): nothing
    that could leave the folder."""
    if not name or "/" in name or "\\" in name or name.startswith(".") or "\0" in name:
        return "_"
    return name
