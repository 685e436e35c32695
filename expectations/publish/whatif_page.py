"""The what-if page (`hqlake whatif --html`): expectations/scoring/whatif.py's answer as one
self-contained HTML page, every value escaped (Jinja autoescape). Its body
(`templates/whatif_body.html`, `render_whatif_body`) is also the portal's what-if result."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from markupsafe import Markup

from expectations.publish.report import environment


def _direction(before: Any, after: Any, higher_is_better: bool = True) -> str:
    if before is None or after is None or before == after:
        return "flat"
    return "up" if (after > before) == higher_is_better else "down"


def _context(answer: Mapping[str, Any]) -> dict[str, Any]:
    rows = []
    for o in answer["organisations"]:
        accepted = {a["month"]: a for a in o["acceptance"]}
        rows.append(
            {
                **o,
                "composite_direction": _direction(
                    o["composite"]["before"], o["composite"]["after"]
                ),
                "rank_direction": _direction(o["rank"]["before"], o["rank"]["after"], False),
                "months": [accepted.get(m) for m in answer["months"]],
            }
        )
    return {
        **answer,
        "movers": [r for r in rows if r["moves"]],
        "others": [r for r in rows if not r["moves"]],
    }


def render_whatif(answer: Mapping[str, Any]) -> str:
    """The what-if of a period: who moves first, then every organisation's composite, rank and
    acceptance before and after."""
    return environment().get_template("whatif.html").render(**_context(answer))


def render_whatif_body(answer: Mapping[str, Any]) -> Markup:
    """The what-if page's body, for a page of the portal's own."""
    body = environment().get_template("whatif_body.html").render(**_context(answer))
    return Markup(body)  # noqa: S704 -- rendered with autoescape
