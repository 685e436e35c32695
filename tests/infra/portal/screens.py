"""Screenshots of portal pages checked for what a person would see: the size, several colours
(the CSS applied, scores coloured) and Chinese text drawn with a real CJK font (ink in the
text's box, and two different characters drawn differently: a missing font draws every
character as the same empty box)."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path
from typing import Any

from tests.expectations.publish.test_report import png_rows

CJK = re.compile(r"[\u4e00-\u9fff]")
MIN_WIDTH, MIN_HEIGHT = 1000, 600
MIN_COLOURS = 40  # a page of text and coloured scores, anti-aliased; a blank page has ~1

# Draws two distinct CJK characters of the element in its own font on a canvas and tells
# whether they differ; null when the element has fewer than two distinct CJK characters.
_GLYPHS_DIFFER = """(el) => {
  const chars = [...new Set([...el.innerText].filter(c => /[\\u4e00-\\u9fff]/.test(c)))];
  if (chars.length < 2) return null;
  const family = getComputedStyle(el).fontFamily;
  const draw = (c) => {
    const canvas = document.createElement("canvas");
    canvas.width = 48; canvas.height = 48;
    const g = canvas.getContext("2d");
    g.font = "40px " + family;
    g.fillText(c, 2, 40);
    return Array.from(g.getImageData(0, 0, 48, 48).data).join(",");
  };
  return draw(chars[0]) !== draw(chars[1]);
}"""


def _distance(a: bytes, b: bytes) -> int:
    return sum(abs(x - y) for x, y in zip(a[:3], b[:3], strict=True))


def _saturated(pixel: bytes) -> bool:
    return max(pixel[:3]) - min(pixel[:3]) > 60


def check_page(page: Any, folder: Path, name: str, cjk_selector: str = "h2") -> Path:
    """Screenshot the whole page into `folder/name.png` and check it; returns the path."""
    path = folder / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    width, height, pixels = png_rows(path, min(MIN_HEIGHT, 2000))
    assert width >= MIN_WIDTH and height >= MIN_HEIGHT, f"{path} is {width}x{height}"
    colours = set(pixels)
    assert len(colours) >= MIN_COLOURS, f"{path} looks blank: {len(colours)} colours"
    assert sum(map(_saturated, pixels)) > 50, f"{path} has no coloured pixels (CSS missing?)"
    heading = page.locator(cjk_selector).first
    text = heading.inner_text()
    assert CJK.search(text), f"{name}: {cjk_selector} has no Chinese text: {text!r}"
    assert heading.evaluate(_GLYPHS_DIFFER) is True, f"{name}: CJK drawn as boxes: {text!r}"
    box = folder / f"{name}.{cjk_selector.strip('.#')}.png"
    heading.screenshot(path=str(box))
    _, _, text_pixels = png_rows(box, 200)
    background = Counter(text_pixels).most_common(1)[0][0]
    ink = sum(1 for p in text_pixels if _distance(p, background) > 120)
    assert ink > 0.01 * len(text_pixels), f"{box}: the heading has no ink ({ink} pixels)"
    print(f"screenshot {path} ({width}x{height}, {len(colours)} colours)")
    return path
