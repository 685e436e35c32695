"""hqlake's own static HTML reports for quality officers and hospitals.

Two pages per business date, under `<out_dir>/<YYYY-MM-DD>/`:

- `index.html`, the city page: summary, mean dimension scores per peer group (chart and
  table), the biggest rank gains and losses, and one league table per peer group with
  score colours, rank arrows, ties, failures and a 30-day sparkline per organisation;
- `org/<org_code>.html`, one page per organisation-day: composite and dimension scores,
  rank and rank change, a 30-day trend chart of composite and rank, and every failed rule
  with counts, %, description, how to fix it and sample record keys.

Both link to the Great Expectations Data Docs of the day (`datadocs/index.html`, written by
another step) only when they exist. The body of each page (`city_body.html`, `org_body.html`)
is shared with the portal (infra/portal/pages), which renders it with `render_city_body` /
`render_org_body` and a `Links` of its own routes, so a page says the same in a file and
served; the bodies carry no `style` attribute (the portal's CSP refuses inline style).
Pages are self-contained (inline CSS and SVG, no script, font or URL to fetch) so they open
from a file share or an e-mail link on a closed network. Rendering takes plain rows (lists of
dicts as `expectations.scoring.read` returns them), so it is tested without a warehouse;
`write_reports` is the thin I/O entry point.

Personal data: the rows carry record keys, never personal fields. As a safety net, a key
part from a field the contract tags `pii`, a valid resident identity number or a mainland
mobile number is masked before it is shown, and so is any such number in rule notes
(`contracts.pii`).
Reports show the scoring run id, not the time they were written, so re-rendering a date
gives the same pages.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import shutil
import signal
import statistics
import subprocess
import tempfile
from collections.abc import Callable, Mapping, Sequence
from decimal import Decimal
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import quote

from clickhouse_connect.driver.client import Client
from jinja2 import Environment, FileSystemLoader, StrictUndefined
from markupsafe import Markup

from contracts.codesystems import division_name
from contracts.labels import (
    APPEAL_STATUSES,
    CHANGES,
    DIMENSIONS,
    PEER_GROUPS,
    RESULT_STATUSES,
    SEVERITIES,
    WAIVED_BY,
)
from contracts.loader import contracts
from contracts.model import Dataset
from contracts.pii import mask_key, mask_text
from contracts.registry import Organisation, Registry
from expectations.programme.read import NO_STANDING, Programme, Standing
from expectations.programme.signoff import Signature, read_signature
from expectations.publish import svg
from expectations.publish.explanation import points_lost
from expectations.scoring import read
from expectations.scoring.arithmetic import round_score
from expectations.scoring.config import load_scoring_config
from expectations.scoring.tables import COUNT_COLUMNS

CHROMIUM = "/usr/bin/chromium"
DEFAULT_BAR = 90.0  # render defaults; write_reports passes contracts/scoring.yaml's values
FAIR_BELOW_BAR = 10.0  # scores within this many points under the bar are amber, lower red
TREND_DAYS = 30
MOVERS = 5
SAMPLE_KEYS_SHOWN = 5

_TEMPLATES = Path(__file__).parent / "templates"
STATIC = Path(__file__).parent / "static"  # report.css: the reports' look, also the portal's
_ORG_CODE = re.compile(r"^[0-9A-Za-z_-]{1,64}$")  # an org code is also a file name


# ---- record keys ---------------------------------------------------------------------------


def shown_keys(dataset: str | Dataset | None, keys: list, details: list | None = None) -> list:
    """Masked record keys as pages and e-mails show them, each followed by what of the row
    failed where the rule says (e.g. "ZY001 (other_dx_codes N40.X00)"). A detail may quote
    uploaded identifiers (another stay's key, a doctor id, a code), so identity and mobile
    numbers in it are masked as in notes."""
    details = list(details or [])
    return [
        mask_key(dataset, str(k))
        + (f" ({mask_text(str(details[i]))})" if i < len(details) and details[i] else "")
        for i, k in enumerate(keys)
    ]


# ---- formatting ----------------------------------------------------------------------------


def band(score: float | None, bar: float = DEFAULT_BAR, decimals: int = 2) -> str:
    """CSS class of a score as shown with `decimals`: good (at or above the bar), fair (less
    than FAIR_BELOW_BAR under it), poor, or none. Rounded as scoring ranks and judges
    acceptance (half up), so a page never colours 90.00 as below a bar of 90."""
    shown = round_score(score, decimals)
    if shown is None:
        return "none"
    if shown >= Decimal(repr(bar)):
        return "good"
    return "fair" if shown >= Decimal(repr(bar)) - Decimal(repr(FAIR_BELOW_BAR)) else "poor"


def _score(value: float | None, digits: int = 1) -> str:
    shown = round_score(value, digits)
    return "—" if shown is None else str(shown)


def _rank_change(value: int | None) -> dict[str, str]:
    if value is None:
        return {"symbol": "·", "cls": "flat", "text": "", "title": "无可比排名 no earlier rank"}
    if value > 0:
        return {"symbol": "▲", "cls": "up", "text": str(value), "title": f"上升 up {value}"}
    if value < 0:
        return {"symbol": "▼", "cls": "down", "text": str(-value), "title": f"下降 down {-value}"}
    return {"symbol": "=", "cls": "flat", "text": "", "title": "持平 unchanged"}


def _pct(value: float | None) -> str:
    if value is None:
        return "—"
    return f"{value:.2f}".rstrip("0").rstrip(".") + "%"


def _count(value: int | None) -> str:
    return "—" if value is None else f"{int(value):,}"


def _as_date(value: dt.date | str) -> dt.date:
    return value if isinstance(value, dt.date) else dt.date.fromisoformat(str(value)[:10])


def _county(code: str | None) -> str:
    """The county's name from GB/T 2260, else its code."""
    return (division_name(code) or code) if code else ""


def _peer_order(group: str) -> int:
    return list(PEER_GROUPS).index(group) if group in PEER_GROUPS else len(PEER_GROUPS)


def _org_href(org_code: str) -> str:
    if not _ORG_CODE.match(org_code):
        raise ValueError(f"org_code {org_code!r} cannot name a report file")
    return f"{quote(org_code)}.html"


class Links:
    """Where the links of a page body point. This one: the static report's files of one date
    (the city page at `<date>/index.html`, each organisation at `<date>/org/<code>.html`),
    with no page of failing keys (the e-mail attaches them). The portal passes its routes."""

    def org(self, org_code: str, day: dt.date) -> str:
        """An organisation-day, linked from the city page."""
        return "org/" + _org_href(org_code)

    def city(self, day: dt.date) -> str:
        """The city page of `day`, linked from an organisation's page."""
        return "../index.html"

    def keys(self, org_code: str, day: dt.date, rule_id: str | None = None) -> str | None:
        """Every failing key of an organisation-day (of one rule), or None: not linked."""
        return None


STATIC_LINKS = Links()


# ---- view models ---------------------------------------------------------------------------


@cache
def environment() -> Environment:
    """The Jinja environment of the reports' templates (autoescape on), shared with the
    what-if page; `base.html` includes `static/report.css` from it."""
    env = Environment(
        loader=FileSystemLoader([_TEMPLATES, STATIC]),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.globals.update(PEER_GROUPS=PEER_GROUPS, DIMENSIONS=DIMENSIONS)
    return env


def _league_row(
    row: Mapping[str, Any], tied: bool, bar: float, decimals: int, spark: Markup | None, href: str
) -> dict[str, Any]:
    composite = row.get("composite")
    return {
        "org_code": row["org_code"],
        "org_name": row.get("org_name") or row["org_code"],
        "href": href,
        "county": _county(row.get("county_code")),
        "peer_group": row.get("peer_group"),
        "rank": row.get("rank"),
        "peer_size": row.get("peer_size"),
        "tied": tied,
        "composite": _score(composite, decimals),
        "composite_band": band(composite, bar, decimals),
        "composite_width": f"{max(0.0, min(float(composite or 0), 100.0)):.1f}",
        "dims": [(_score(row.get(d)), band(row.get(d), bar, 1)) for d in DIMENSIONS],
        "change_day": _rank_change(row.get("rank_change_day")),
        "change_month": _rank_change(row.get("rank_change_month")),
        "rank_change_day": row.get("rank_change_day"),
        "rank_change_month": row.get("rank_change_month"),
        "rules_failed": row.get("rules_failed") or 0,
        "blocking_failed": row.get("blocking_failed") or 0,
        "rules_error": row.get("rules_error") or 0,
        "new_failures": row.get("new_failures") or 0,
        "resolved_failures": row.get("resolved_failures") or 0,
        "spark": spark,
    }


def _mean(values: Sequence[float | None]) -> float | None:
    present = [float(v) for v in values if v is not None]
    return statistics.fmean(present) if present else None


def _movers(rows: list[dict[str, Any]], key: str) -> dict[str, list[dict[str, Any]]]:
    moved = [r for r in rows if r[key]]
    gains = sorted(
        (r for r in moved if r[key] > 0),
        key=lambda r: (-r[key], _peer_order(r["peer_group"]), r["rank"] or 0, r["org_code"]),
    )
    losses = sorted(
        (r for r in moved if r[key] < 0),
        key=lambda r: (r[key], _peer_order(r["peer_group"]), r["rank"] or 0, r["org_code"]),
    )
    return {"gains": gains[:MOVERS], "losses": losses[:MOVERS]}


def render_city(
    day: dt.date,
    scores: list[dict],
    registry: Registry,
    datadocs: bool,
    **options: Any,
) -> str:
    """The city page of `day` from the org-day score rows (`read.read_scores`); the
    options as for `city_context`."""
    context = city_context(day, scores, registry, datadocs, **options)
    return environment().get_template("city.html").render(**context)


def render_city_body(
    day: dt.date, scores: list[dict], registry: Registry, **options: Any
) -> Markup:
    """The city page's body (no frame, no Data Docs) for a page of the portal's own."""
    context = city_context(day, scores, registry, None, **options)
    return Markup(environment().get_template("city_body.html").render(**context))  # noqa: S704 -- autoescaped


def city_context(
    day: dt.date,
    scores: list[dict],
    registry: Registry,
    datadocs: bool | None,
    *,
    trends: Mapping[str, Sequence[Mapping]] | None = None,
    bar: float = DEFAULT_BAR,
    decimals: int = 2,
    city: str = "",
    signed: Signature | None = None,
    links: Links = STATIC_LINKS,
) -> dict[str, Any]:
    """What the city page of `day` shows, from the org-day score rows (`read.read_scores`).

    `datadocs`: whether the day's Data Docs exist (None: not a page that links them);
    `trends` (org_code -> `read.trend` rows) adds a 30-day sparkline per organisation;
    `bar` is the acceptance bar the colours are measured against and `decimals` those of a
    published composite (contracts/scoring.yaml); `city` names the city in the title
    (default: the prefecture of the registry's counties, e.g. 信阳市); `signed` (the month's
    latest signed version, `signoff.read_signature`) adds its signature and subsidies;
    `links` where the organisations link to."""

    def at_bar(rows: Sequence[Mapping[str, Any]]) -> int:
        return sum(1 for r in rows if band(r.get("composite"), bar, decimals) == "good")

    groups: dict[str, list[Mapping[str, Any]]] = {}
    for row in scores:
        groups.setdefault(row.get("peer_group") or "", []).append(row)
    tables, all_rows, chart_groups = [], [], []
    for group in sorted(groups, key=lambda g: (_peer_order(g), g)):
        members = sorted(
            groups[group],
            key=lambda r: (r.get("rank") is None, r.get("rank") or 0, r["org_code"]),
        )
        ranks = [r.get("rank") for r in members]
        rows = [
            _league_row(
                r,
                tied=r.get("rank") is not None and ranks.count(r.get("rank")) > 1,
                bar=bar,
                decimals=decimals,
                spark=(
                    svg.sparkline(trends[r["org_code"]], day, TREND_DAYS, bar)
                    if trends and r["org_code"] in trends
                    else None
                ),
                href=links.org(r["org_code"], day),
            )
            for r in members
        ]
        all_rows += rows
        zh, en = PEER_GROUPS.get(group, (group, group))
        means = {d: _mean([r.get(d) for r in members]) for d in (*DIMENSIONS, "composite")}
        chart_groups.append((f"{zh} {en} ({len(members)})", means))
        tables.append(
            {
                "key": group,
                "zh": zh,
                "en": en,
                "rows": rows,
                "mean": _score(means["composite"], decimals),
                "at_bar": at_bar(members),
            }
        )
    dimension_table = []
    for dim, (zh, en) in DIMENSIONS.items():
        present = [r for r in scores if r.get(dim) is not None]
        lowest = min(present, key=lambda r: (r[dim], r["org_code"])) if present else None
        if lowest and lowest[dim] >= 100:  # nobody lost a point: no organisation to single out
            lowest = None
        mean = _mean([r[dim] for r in present])
        dimension_table.append(
            {
                "zh": zh,
                "en": en,
                "mean": _score(mean),
                "band": band(mean, bar, 1),
                "below": sum(1 for r in present if band(r[dim], bar, 1) != "good"),
                "scored": len(present),
                "lowest": lowest and (lowest.get("org_name") or lowest["org_code"]),
                "lowest_score": _score(lowest[dim]) if lowest else "—",
                "lowest_href": lowest and links.org(lowest["org_code"], day),
            }
        )
    scored = {r["org_code"] for r in scores}
    not_scored = sorted(
        (o for o in registry.active(day) if o.org_code not in scored),
        key=lambda o: (_peer_order(o.peer_group), o.org_code),
    )
    city_mean = _mean([r.get("composite") for r in scores])
    prefectures = {o.county_code[:4] for o in registry.organisations.values()}
    if not city and len(prefectures) == 1:
        city = division_name(next(iter(prefectures)) + "00") or ""
    run_ids = sorted({str(r["run_id"]) for r in scores if r.get("run_id")})
    return dict(
        day=day,
        city=city,
        bar=f"{bar:g}",
        tables=tables,
        chart=svg.dimension_bars(chart_groups, bar) if scores else None,
        dimension_table=dimension_table,
        movers_day=_movers(all_rows, "rank_change_day"),
        movers_month=_movers(all_rows, "rank_change_month"),
        summary={
            "orgs": len(scores),
            "mean": _score(city_mean, decimals),
            "mean_band": band(city_mean, bar, decimals),
            "at_bar": at_bar(scores),
            "blocking_orgs": sum(1 for r in scores if (r.get("blocking_failed") or 0) > 0),
            "rules_failed": sum(int(r.get("rules_failed") or 0) for r in scores),
            "rules_error": sum(int(r.get("rules_error") or 0) for r in scores),
        },
        not_scored=[
            (o.name, o.org_code, PEER_GROUPS.get(o.peer_group, (o.peer_group,))[0])
            for o in not_scored
        ],
        run_ids=run_ids,
        datadocs=None if datadocs is None else ("datadocs/index.html" if datadocs else ""),
        signoff=_signoff_view(signed) if signed else None,
    )


def _signoff_view(signed: Signature) -> dict[str, Any]:
    """The month's signature and its subsidy lines as the city page shows them."""
    sig, reopening = signed.signature, signed.reopening
    names = {r["org_code"]: r["org_name"] for r in signed.rows}
    return {
        "month": f"{sig['month']:%Y-%m}",
        "version": sig["version"],
        "signer": sig["signer"],
        "signed_at": f"{sig['signed_at']:%Y-%m-%d %H:%M}",
        "passed": sig["passed"],
        "organisations": sig["organisations"],
        "phase": sig["phase"],
        "total": f"{sig['subsidy_yuan']:,}",
        "reopening": reopening
        and {
            "actor": reopening["actor"],
            "at": f"{reopening['at']:%Y-%m-%d %H:%M}",
            "reason": reopening["reason"],
        },
        "lines": [
            {
                "name": names.get(s["org_code"], s["org_code"]),
                "code": s["org_code"],
                "amount": f"{s['amount_yuan']:,}",
                "paid_in": f"{s['paid_in']:%Y-%m}" if s["paid_in"] else "",
            }
            for s in signed.subsidies
        ],
    }


def _failure_row(
    f: Mapping[str, Any], keys_href: str | None = None, actions: Markup | None = None
) -> dict[str, Any]:
    dataset = f.get("dataset") or ""
    ds = contracts().datasets.get(dataset)
    keys = shown_keys(dataset, f.get("sample_keys") or [], f.get("sample_details"))
    severity = f.get("severity") or "warning"
    change = f.get("change") or ""
    return {
        "dataset": dataset,
        "dataset_zh": ds.title.zh if ds else "",
        "dataset_en": ds.title.en if ds else "",
        "rule_id": f.get("rule_id") or "",
        "dimension": DIMENSIONS.get(f.get("dimension") or "", (f.get("dimension"), ""))[0],
        "dimension_key": f.get("dimension") or "",
        "severity": severity,
        "severity_zh": SEVERITIES.get(severity, (severity, ""))[0],
        "weight": f"{float(f.get('weight') or 0):g}",
        "threshold": _pct(f.get("threshold")),
        "checked": _count(f.get("checked")),
        "failed": _count(f.get("failed")),
        "failed_pct": _pct(f.get("failed_pct")),
        "description_zh": f.get("description_zh") or "",
        "description_en": f.get("description_en") or "",
        "fix_hint_zh": f.get("fix_hint_zh") or "",
        "fix_hint_en": f.get("fix_hint_en") or "",
        "notes": mask_text(f.get("notes") or ""),
        "change": change,
        "change_label": CHANGES.get(change, (change, ""))[0],
        "keys_shown": keys[:SAMPLE_KEYS_SHOWN],
        "keys_more": keys[SAMPLE_KEYS_SHOWN:],
        "keys_total": f.get("failed") or len(keys),
        "keys_href": keys_href,
        "actions": actions,
    }


def _failure_order(f: Mapping[str, Any]) -> tuple:
    return (
        f.get("severity") != "blocking",
        f.get("change") != "new",
        -float(f.get("weight") or 0),
        -float(f.get("failed_pct") or 0),
        f.get("dataset") or "",
        f.get("rule_id") or "",
    )


def render_org(
    day: dt.date,
    score: dict,
    trend: list[dict],
    failures: list[dict],
    org: Organisation | None,
    datadocs: bool,
    **options: Any,
) -> str:
    """The page of one organisation-day; the arguments as for `org_context`."""
    context = org_context(day, score, trend, failures, org, datadocs, **options)
    return environment().get_template("org.html").render(**context)


def render_org_body(
    day: dt.date,
    score: dict,
    trend: list[dict],
    failures: list[dict],
    org: Organisation | None,
    **options: Any,
) -> Markup:
    """The organisation page's body (no frame, no Data Docs) for a page of the portal's."""
    context = org_context(day, score, trend, failures, org, None, **options)
    return Markup(environment().get_template("org_body.html").render(**context))  # noqa: S704 -- autoescaped


def org_context(
    day: dt.date,
    score: dict,
    trend: list[dict],
    failures: list[dict],
    org: Organisation | None,
    datadocs: bool | None,
    *,
    bar: float = DEFAULT_BAR,
    decimals: int = 2,
    explanation: Sequence[Mapping[str, Any]] = (),
    standing: Standing = NO_STANDING,
    links: Links = STATIC_LINKS,
    failure_actions: Callable[[Mapping[str, Any]], Markup | None] | None = None,
) -> dict[str, Any]:
    """What the page of one organisation-day shows: `score` is its `read.read_scores` row,
    `trend` its `read.trend` rows, `failures` its `read.failures` rows and `explanation` its
    `read.read_explanation` rows (the points lost per failed rule); `datadocs`, `bar` and
    `decimals` as for `city_context`; `standing` its waived results and appeals (a waived
    failure is listed as waived, not as failed); `links` where the city page and the failing
    keys are; `failure_actions` the markup (e.g. the portal's appeal form) shown with a failed
    rule, given its row."""
    group = score.get("peer_group") or (org.peer_group if org else "")
    failures = standing.without_waived(failures)
    code = score["org_code"]
    failed = [
        _failure_row(
            f,
            keys_href=links.keys(code, day, f.get("rule_id")),
            actions=failure_actions(f) if failure_actions else None,
        )
        for f in sorted(failures, key=_failure_order)
    ]
    by_dimension = [
        (zh, en, sum(1 for f in failed if f["dimension_key"] == dim))
        for dim, (zh, en) in DIMENSIONS.items()
    ]
    composite = score.get("composite")
    return dict(
        day=day,
        bar=f"{bar:g}",
        org_name=score.get("org_name") or (org.name if org else score["org_code"]),
        org_code=score["org_code"],
        peer=PEER_GROUPS.get(group, (group, group)),
        county=_county(score.get("county_code") or (org.county_code if org else "")),
        composite=_score(composite, decimals),
        composite_band=band(composite, bar, decimals),
        verdict=(
            "达标 At or above bar"
            if band(composite, bar, decimals) == "good"
            else "未达标 Below bar"
        ),
        dims=[
            {
                "zh": zh,
                "en": en,
                "value": _score(score.get(d)),
                "band": band(score.get(d), bar, 1),
                "width": f"{max(0.0, min(float(score.get(d) or 0), 100.0)):.1f}",
            }
            for d, (zh, en) in DIMENSIONS.items()
        ],
        rank=score.get("rank"),
        peer_size=score.get("peer_size"),
        change_day=_rank_change(score.get("rank_change_day")),
        change_month=_rank_change(score.get("rank_change_month")),
        counts={k: int(score.get(k) or 0) for k in COUNT_COLUMNS},
        by_dimension=by_dimension,
        chart=svg.trend_chart(trend, day, TREND_DAYS, bar),
        failures=failed,
        lost=points_lost(explanation),
        waived=[
            w
            | {
                "status_label": RESULT_STATUSES[w["status"]],
                "kind_label": WAIVED_BY[w["kind"]],
                "why": mask_text(w["why"]),
            }
            for w in standing.waived
        ],
        appeals=[
            a
            | {
                "status_label": APPEAL_STATUSES[a["status"]],
                "reason": mask_text(a["reason"]),
                "comment": mask_text(a["comment"]),
            }
            for a in standing.appeals
        ],
        run_id=score.get("run_id") or "",
        datadocs=None if datadocs is None else ("../datadocs/index.html" if datadocs else ""),
        city_href=links.city(day),
        keys_href=links.keys(code, day),
    )


# ---- files and screenshots -----------------------------------------------------------------


def report_dir(day: dt.date, out_dir: Path | str) -> Path:
    """Where the pages of `day` are written: `<out_dir>/<YYYY-MM-DD>/` (the caller's folder;
    the daily run's is HQLAKE_HOME/reports)."""
    return Path(out_dir) / day.isoformat()


def org_page(day: dt.date, org_code: str, out_dir: Path | str) -> Path:
    """The page of one organisation-day (the feedback e-mail links to it)."""
    return report_dir(day, out_dir) / "org" / _org_href(org_code)


def _published_scale() -> tuple[float, int]:
    """(acceptance bar, decimals of a published composite) from contracts/scoring.yaml."""
    config = load_scoring_config()
    return config.acceptance.bar, config.ranking.decimals


def write_reports(
    ch: Client, registry: Registry, day: dt.date, out_dir: Path | str
) -> dict[str, Any]:
    """Write the city page and one page per scored organisation of `day` from the scores of
    its current run; returns {"city": Path, "orgs": {org_code: Path}}.

    Pages of organisations no longer scored for `day` are removed, so a re-run leaves
    exactly the pages the city page links to."""
    folder = report_dir(day, out_dir)
    org_folder = folder / "org"
    org_folder.mkdir(parents=True, exist_ok=True)
    datadocs = (folder / "datadocs" / "index.html").is_file()
    bar, decimals = _published_scale()
    scores = read.read_scores(ch, day)
    signed = read_signature(ch, day)
    day_trends = read.day_trends(ch, day, TREND_DAYS)
    trends = {r["org_code"]: day_trends.get(r["org_code"], []) for r in scores}
    failures = read.day_failures(ch, day)
    explanations = read.day_explanations(ch, day)
    standings = Programme(ch, registry).standings(day)
    orgs: dict[str, Path] = {}
    for row in scores:
        code = row["org_code"]
        html = render_org(
            day,
            row,
            trends[code],
            failures.get(code, []),
            registry.get(code),
            datadocs,
            bar=bar,
            decimals=decimals,
            explanation=explanations.get(code, []),
            standing=standings.get(code, NO_STANDING),
        )
        orgs[code] = org_page(day, code, out_dir)
        orgs[code].write_text(html, encoding="utf-8")
    for stale in org_folder.glob("*.html"):
        if stale not in orgs.values():
            stale.unlink()
    city = folder / "index.html"
    city.write_text(
        render_city(
            day,
            scores,
            registry,
            datadocs,
            trends=trends,
            bar=bar,
            decimals=decimals,
            signed=signed,
        ),
        encoding="utf-8",
    )
    return {"city": city, "orgs": orgs}


def screenshot(
    html_path: Path | str,
    png_path: Path | str,
    width: int = 1280,
    height: int = 2000,
    *,
    chromium: str = CHROMIUM,
    timeout: float = 60.0,
) -> Path:
    """A PNG of the page's first `width` × `height` CSS pixels, rendered by headless
    Chromium with every network feature off (the pages need none)."""
    html_path, png_path = Path(html_path).resolve(), Path(png_path).resolve()
    if not html_path.is_file():
        raise FileNotFoundError(html_path)
    if shutil.which(chromium) is None:
        raise FileNotFoundError(f"{chromium} not found: apt-get install chromium")
    png_path.parent.mkdir(parents=True, exist_ok=True)
    png_path.unlink(missing_ok=True)
    with tempfile.TemporaryDirectory(prefix="hqlake-chromium-") as profile:
        command = [
            chromium,
            "--headless",
            "--no-sandbox",  # Chromium refuses to start as root with its sandbox
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            # Without these Chromium waits on services it cannot reach on a closed network.
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
            "--force-device-scale-factor=1",
            f"--user-data-dir={profile}",
            f"--screenshot={png_path}",
            f"--window-size={width},{height}",
            html_path.as_uri(),
        ]
        # A session of its own, so a timeout ends Chromium's renderer and GPU children too.
        with subprocess.Popen(
            command,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            start_new_session=True,
        ) as proc:
            try:
                _, stderr = proc.communicate(timeout=timeout)
            except subprocess.TimeoutExpired as exc:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.communicate()
                raise RuntimeError(f"chromium did not finish within {timeout:g} s") from exc
    if proc.returncode != 0 or not png_path.is_file():
        tail = "\n".join(stderr.splitlines()[-5:])
        raise RuntimeError(f"chromium exited {proc.returncode} without {png_path}:\n{tail}")
    return png_path


def render_suggestions(answer: Mapping[str, Any]) -> str:
    """The weight suggestions of a period (`expectations.tuning.suggest.suggest`'s answer) as
    one self-contained page; every value is escaped."""
    rules = answer["rules"]
    return (
        environment()
        .get_template("suggestions.html")
        .render(
            **answer,
            failed=[r for r in rules if r["organisations_failed"]],
            kept=[r for r in rules if not r["organisations_failed"]],
        )
    )
