"""Inline SVG charts for the quality reports: they render offline, in any browser, in e-mail
previews and in headless Chromium, with no script or font to fetch.

Hand-written rather than drawn by a plotting library: the charts are a few lines and bars,
the venv has no plotting package, and the output must be small self-contained markup whose
every text node is escaped. No `xmlns`: the HTML parser puts inline `<svg>` in the SVG
namespace, and the pages then name no URL at all. Every function returns
`markupsafe.Markup`, so Jinja2 inserts it unescaped while all data inside it has already
been escaped here.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence

from markupsafe import Markup, escape

from contracts.labels import DIMENSIONS

DIMENSION_COLOURS = {
    "completeness": "#2563eb",
    "timeliness": "#0d9488",
    "correctness": "#7c3aed",
    "logic": "#d97706",
}
COMPOSITE_COLOUR = "#0f2a4a"
BAR_COLOUR = "#15803d"
GRID_COLOUR = "#e5e7eb"
AXIS_TEXT = "#6b7280"
_FONT = (
    "font-family=\"'Microsoft YaHei','PingFang SC','Noto Sans CJK SC',"
    "'WenQuanYi Micro Hei',sans-serif\""
)


def _num(value: float) -> str:
    return f"{value:.1f}".rstrip("0").rstrip(".")


def _text(x: float, y: float, text: object, **attrs: object) -> str:
    extra = "".join(f' {k.replace("_", "-")}="{escape(v)}"' for k, v in attrs.items())
    return f'<text x="{_num(x)}" y="{_num(y)}"{extra}>{escape(text)}</text>'


def _text_width(text: str, size: float = 11) -> float:
    """Rough rendered width: CJK characters are square, Latin ones about 0.56 em."""
    return sum(size if ord(ch) > 0x2E80 else 0.56 * size for ch in text)


def _svg(width: int, height: int, label: str, body: list[str]) -> Markup:
    # Full-width charts scale down with the page (class "chart" in the pages' CSS: no style
    # attribute, which the portal's CSP refuses); their design width is the largest size.
    # Safe markup: `body` holds only numbers, constants and text escaped by _text/escape.
    return Markup(  # noqa: S704
        f'<svg class="chart" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" role="img" aria-label="{escape(label)}" {_FONT} '
        f'font-size="11"><title>{escape(label)}</title>{"".join(body)}</svg>'
    )


def _as_date(value: dt.date | str) -> dt.date:
    return value if isinstance(value, dt.date) else dt.date.fromisoformat(str(value)[:10])


def _segments(points: list[tuple[int, float]]) -> list[list[tuple[int, float]]]:
    """Split (day index, value) points where a day is missing, so a gap is not drawn over."""
    runs: list[list[tuple[int, float]]] = []
    for point in points:
        if runs and point[0] == runs[-1][-1][0] + 1:
            runs[-1].append(point)
        else:
            runs.append([point])
    return runs


def _path(points: list[tuple[float, float]]) -> str:
    return " ".join(
        ("M" if i == 0 else "L") + f"{_num(x)},{_num(y)}" for i, (x, y) in enumerate(points)
    )


def _floor_of(values: Sequence[float], bar: float) -> float:
    """Lowest y-axis value: a multiple of 10 below the data and the bar, so changes show."""
    low = min([*values, bar - 10])
    return max(0.0, (low // 10) * 10)


def trend_chart(
    rows: Sequence[Mapping],
    day: dt.date,
    days: int = 30,
    bar: float = 90.0,
    width: int = 1140,
) -> Markup:
    """Composite and dimension scores (upper panel) and rank in peer group (lower panel) over
    the `days` business dates ending on `day`; a day without a score is a gap."""
    first = day - dt.timedelta(days=days - 1)
    by_index = {
        (_as_date(r["business_date"]) - first).days: r
        for r in rows
        if first <= _as_date(r["business_date"]) <= day
    }
    left, right, top = 44, 16, 26
    score_h, gap, rank_h, bottom = 170, 34, 70, 22
    height = top + score_h + gap + rank_h + bottom
    plot_w = width - left - right
    step = plot_w / max(days - 1, 1)

    def x(i: int) -> float:
        return left + i * step

    composites = [float(r["composite"]) for r in by_index.values() if r["composite"] is not None]
    dims = [float(r[d]) for r in by_index.values() for d in DIMENSIONS if r.get(d) is not None]
    low = _floor_of(composites + dims, bar)

    def y(v: float) -> float:
        return top + score_h * (100 - v) / (100 - low)

    body = [f'<rect x="0" y="0" width="{width}" height="{height}" fill="#ffffff"/>']
    for tick in range(int(low), 101, 10):
        body.append(
            f'<line x1="{left}" x2="{width - right}" y1="{_num(y(tick))}" y2="{_num(y(tick))}" '
            f'stroke="{GRID_COLOUR}"/>'
        )
        body.append(_text(left - 6, y(tick) + 4, tick, text_anchor="end", fill=AXIS_TEXT))
    body.append(
        f'<line x1="{left}" x2="{width - right}" y1="{_num(y(bar))}" y2="{_num(y(bar))}" '
        f'stroke="{BAR_COLOUR}" stroke-dasharray="5 4" stroke-width="1.2"/>'
    )
    body.append(
        _text(
            width - right, y(bar) - 4, f"达标线 Bar {_num(bar)}", text_anchor="end", fill=BAR_COLOUR
        )
    )
    for dim in DIMENSIONS:
        points = [(i, float(r[dim])) for i, r in sorted(by_index.items()) if r.get(dim) is not None]
        for run in _segments(points):
            body.append(
                f'<path d="{_path([(x(i), y(v)) for i, v in run])}" fill="none" '
                f'stroke="{DIMENSION_COLOURS[dim]}" stroke-width="1.2" stroke-opacity="0.55"/>'
            )
    points = [
        (i, float(r["composite"]))
        for i, r in sorted(by_index.items())
        if r["composite"] is not None
    ]
    for run in _segments(points):
        body.append(
            f'<path d="{_path([(x(i), y(v)) for i, v in run])}" fill="none" '
            f'stroke="{COMPOSITE_COLOUR}" stroke-width="2.4"/>'
        )
    for i, v in points:
        colour = BAR_COLOUR if v >= bar else "#b91c1c"
        body.append(
            f'<circle cx="{_num(x(i))}" cy="{_num(y(v))}" r="2.8" fill="{colour}" '
            f'stroke="#fff" stroke-width="0.8"/>'
        )
    body.append(_text(left, top - 10, "综合得分 Composite", font_weight="600", fill="#111827"))
    legend_x = left + 130
    for dim, label in DIMENSIONS.items():
        body.append(
            f'<line x1="{legend_x}" x2="{legend_x + 14}" y1="{top - 14}" y2="{top - 14}" '
            f'stroke="{DIMENSION_COLOURS[dim]}" stroke-width="2"/>'
        )
        body.append(_text(legend_x + 18, top - 10, label.zh, fill=AXIS_TEXT))
        legend_x += 66

    rank_top = top + score_h + gap
    ranks = [
        (i, int(r["rank"]), int(r["peer_size"] or 1))
        for i, r in sorted(by_index.items())
        if r.get("rank") is not None
    ]
    worst = max([size for _, _, size in ranks] + [2])

    def ry(rank: float) -> float:
        return rank_top + rank_h * (rank - 1) / (worst - 1)

    body.append(
        _text(
            left,
            rank_top - 10,
            "组内排名 Rank in peer group (1 = 最好 best)",
            font_weight="600",
            fill="#111827",
        )
    )
    for tick in sorted({1, (worst + 1) // 2, worst}):
        body.append(
            f'<line x1="{left}" x2="{width - right}" y1="{_num(ry(tick))}" y2="{_num(ry(tick))}" '
            f'stroke="{GRID_COLOUR}"/>'
        )
        body.append(_text(left - 6, ry(tick) + 4, tick, text_anchor="end", fill=AXIS_TEXT))
    for run in _segments([(i, float(rank)) for i, rank, _ in ranks]):
        stepped: list[tuple[float, float]] = []
        for j, (i, rank) in enumerate(run):
            if j:
                stepped.append((x(i) - step / 2, stepped[-1][1]))
                stepped.append((x(i) - step / 2, ry(rank)))
            stepped.append((x(i), ry(rank)))
        body.append(
            f'<path d="{_path(stepped)}" fill="none" stroke="{COMPOSITE_COLOUR}" '
            f'stroke-width="1.8"/>'
        )
    for i, rank, _ in ranks:
        body.append(
            f'<circle cx="{_num(x(i))}" cy="{_num(ry(rank))}" r="2.4" fill="{COMPOSITE_COLOUR}"/>'
        )

    axis_y = rank_top + rank_h + 16
    for i in range(days):
        if (days - 1 - i) % 5 == 0:
            label = (first + dt.timedelta(days=i)).strftime("%m-%d")
            weight = "600" if i == days - 1 else "400"
            body.append(
                _text(x(i), axis_y, label, text_anchor="middle", fill=AXIS_TEXT, font_weight=weight)
            )
    if not by_index:
        body.append(
            _text(
                width / 2,
                top + score_h / 2,
                "暂无历史得分 No scores in this period",
                text_anchor="middle",
                fill=AXIS_TEXT,
            )
        )
    label = f"{days}-day trend of composite score and rank ending {day.isoformat()}"
    return _svg(width, height, label, body)


def sparkline(
    rows: Sequence[Mapping],
    day: dt.date,
    days: int = 30,
    bar: float = 90.0,
    width: int = 110,
    height: int = 26,
) -> Markup:
    """A small composite line over `days` business dates ending on `day` (league tables)."""
    first = day - dt.timedelta(days=days - 1)
    points = sorted(
        ((_as_date(r["business_date"]) - first).days, float(r["composite"]))
        for r in rows
        if r.get("composite") is not None and first <= _as_date(r["business_date"]) <= day
    )
    pad = 3
    low = _floor_of([v for _, v in points], bar)

    def x(i: int) -> float:
        return pad + i * (width - 2 * pad) / max(days - 1, 1)

    def y(v: float) -> float:
        return pad + (height - 2 * pad) * (100 - v) / (100 - low)

    body = [
        f'<line x1="{pad}" x2="{width - pad}" y1="{_num(y(bar))}" y2="{_num(y(bar))}" '
        f'stroke="{BAR_COLOUR}" stroke-dasharray="2 2" stroke-width="0.8"/>'
    ]
    for run in _segments(points):
        body.append(
            f'<path d="{_path([(x(i), y(v)) for i, v in run])}" fill="none" '
            f'stroke="{COMPOSITE_COLOUR}" stroke-width="1.4"/>'
        )
    if points:
        i, v = points[-1]
        colour = BAR_COLOUR if v >= bar else "#b91c1c"
        body.append(f'<circle cx="{_num(x(i))}" cy="{_num(y(v))}" r="2.4" fill="{colour}"/>')
    return _svg(width, height, f"{days}-day composite trend", body)


def dimension_bars(
    groups: Sequence[tuple[str, Mapping[str, float | None]]],
    bar: float = 90.0,
    width: int = 1140,
) -> Markup:
    """Horizontal bars of the mean score of each dimension and the composite, one block per
    peer group: `groups` = [(label, {dimension or "composite": mean or None})]; a label's
    first word (Chinese) is drawn above the rest (English). The axis starts at a multiple of
    10 below every value and the bar (scores cluster near 100, where differences matter)."""
    series = (*DIMENSIONS, "composite")
    labels = {d: label.both for d, label in DIMENSIONS.items()} | {"composite": "综合 Composite"}
    colours = {**DIMENSION_COLOURS, "composite": COMPOSITE_COLOUR}
    label_w, value_w, top, bar_h, row_gap, group_gap = 230, 46, 30, 13, 3, 16
    plot_w = width - label_w - value_w
    block = len(series) * (bar_h + row_gap)
    height = top + len(groups) * (block + group_gap) + 18

    low = _floor_of([v for _, means in groups for v in means.values() if v is not None], bar)

    def x(v: float) -> float:
        return label_w + plot_w * (v - low) / (100 - low)

    body = [f'<rect x="0" y="0" width="{width}" height="{height}" fill="#ffffff"/>']
    legend_x = label_w
    for key in series:
        body.append(f'<rect x="{legend_x}" y="8" width="10" height="10" fill="{colours[key]}"/>')
        body.append(_text(legend_x + 14, 17, labels[key], fill="#374151"))
        legend_x += 14 + _text_width(labels[key]) + 18
    for tick in range(int(low), 101, 5 if low >= 70 else 10 if low >= 40 else 20):
        body.append(
            f'<line x1="{_num(x(tick))}" x2="{_num(x(tick))}" y1="{top - 4}" '
            f'y2="{height - 18}" stroke="{GRID_COLOUR}"/>'
        )
        body.append(_text(x(tick), height - 5, tick, text_anchor="middle", fill=AXIS_TEXT))
    body.append(
        f'<line x1="{_num(x(bar))}" x2="{_num(x(bar))}" y1="{top - 4}" y2="{height - 18}" '
        f'stroke="{BAR_COLOUR}" stroke-dasharray="4 3"/>'
    )
    body.append(_text(x(bar) + 4, top - 2, f"达标线 Bar {_num(bar)}", fill=BAR_COLOUR))
    y0 = top
    for label, means in groups:
        zh, _, en = label.partition(" ")
        body.append(
            _text(8, y0 + block / 2 - 2, zh, font_weight="600", fill="#111827", font_size="12")
        )
        body.append(_text(8, y0 + block / 2 + 13, en, fill=AXIS_TEXT))
        for k, key in enumerate(series):
            yy = y0 + k * (bar_h + row_gap)
            value = means.get(key)
            if value is None:
                body.append(_text(label_w + 4, yy + bar_h - 2, "无数据 n/a", fill=AXIS_TEXT))
                continue
            body.append(
                f'<rect x="{label_w}" y="{_num(yy)}" width="{_num(max(x(value) - label_w, 1))}" '
                f'height="{bar_h}" rx="2" fill="{colours[key]}"/>'
            )
            body.append(_text(x(value) + 4, yy + bar_h - 2, f"{value:.1f}", fill="#111827"))
        y0 += block + group_gap
    return _svg(width, height, "Mean dimension scores by peer group", body)
