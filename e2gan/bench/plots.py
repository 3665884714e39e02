"""Small PNG charts drawn with PIL (no plotting library is a dependency): grouped bars and lines.

A missing value (None, e.g. FID where the Inception network is not installed) leaves a gap.
"""

from __future__ import annotations

import math
from pathlib import Path

from PIL import Image, ImageDraw, ImageFont

from e2gan.files import atomic_save_image

COLOURS = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189),
           (140, 86, 75), (227, 119, 194), (127, 127, 127)]
WIDTH, HEIGHT = 720, 400
LEFT, RIGHT, TOP, BOTTOM = 70, 20, 40, 90


def _font(size: int = 13) -> ImageFont.ImageFont:
    return ImageFont.load_default(size=size)


def _axes(title: str, y_label: str, low: float, high: float) -> tuple[Image.Image, ImageDraw.ImageDraw]:
    image = Image.new("RGB", (WIDTH, HEIGHT), "white")
    draw = ImageDraw.Draw(image)
    draw.text((LEFT, 10), title, fill="black", font=_font(15))
    draw.line([(LEFT, TOP), (LEFT, HEIGHT - BOTTOM), (WIDTH - RIGHT, HEIGHT - BOTTOM)], fill="black")
    for tick in range(5):
        value = low + (high - low) * tick / 4
        y = _y(value, low, high)
        draw.line([(LEFT - 4, y), (WIDTH - RIGHT, y)], fill=(225, 225, 225))
        draw.text((4, y - 7), f"{value:.3g}", fill="black", font=_font(11))
    draw.text((4, TOP - 18), y_label, fill="black", font=_font(11))
    return image, draw


def _y(value: float, low: float, high: float) -> float:
    span = (high - low) or 1.0
    return HEIGHT - BOTTOM - (value - low) / span * (HEIGHT - TOP - BOTTOM)


def _range(values: list[float]) -> tuple[float, float]:
    finite = [v for v in values if v is not None and math.isfinite(v)]
    if not finite:
        return 0.0, 1.0
    low, high = min(0.0, min(finite)), max(finite)
    return low, high * 1.1 if high > 0 else high + 1.0


def _legend(draw: ImageDraw.ImageDraw, names: list[str]) -> None:
    x = LEFT
    for index, name in enumerate(names):
        colour = COLOURS[index % len(COLOURS)]
        draw.rectangle([x, HEIGHT - 22, x + 12, HEIGHT - 10], fill=colour)
        draw.text((x + 16, HEIGHT - 24), name, fill="black", font=_font(11))
        x += 24 + int(draw.textlength(name, font=_font(11)))


def bar_chart(path: Path, title: str, y_label: str, groups: list[str],
              series: dict[str, list[float | None]]) -> Path:
    """Bars grouped by `groups` (x axis), one colour per series."""
    low, high = _range([v for values in series.values() for v in values])
    image, draw = _axes(title, y_label, low, high)
    slot = (WIDTH - LEFT - RIGHT) / max(1, len(groups))
    bar = slot * 0.8 / max(1, len(series))
    for g, group in enumerate(groups):
        for s, values in enumerate(series.values()):
            value = values[g]
            if value is None or not math.isfinite(value):
                continue
            x0 = LEFT + g * slot + slot * 0.1 + s * bar
            draw.rectangle([x0, _y(value, low, high), x0 + bar - 2, _y(0.0, low, high)],
                           fill=COLOURS[s % len(COLOURS)])
        label = group if len(group) <= 22 else group[:21] + "…"
        draw.text((LEFT + g * slot + 4, HEIGHT - BOTTOM + 6), label, fill="black", font=_font(11))
    _legend(draw, list(series))
    return atomic_save_image(path, image)


def line_chart(path: Path, title: str, x_label: str, y_label: str, xs: list[float],
               series: dict[str, list[float | None]]) -> Path:
    """One line per series over the same x values (spaced evenly, labelled with their value)."""
    low, high = _range([v for values in series.values() for v in values])
    image, draw = _axes(title, y_label, low, high)
    step = (WIDTH - LEFT - RIGHT) / max(1, len(xs))
    positions = [LEFT + step * (i + 0.5) for i in range(len(xs))]
    for x, value in zip(positions, xs):
        draw.text((x - 8, HEIGHT - BOTTOM + 6), f"{value:g}", fill="black", font=_font(11))
    draw.text((WIDTH // 2 - 30, HEIGHT - BOTTOM + 26), x_label, fill="black", font=_font(11))
    for s, values in enumerate(series.values()):
        colour = COLOURS[s % len(COLOURS)]
        points = [(x, _y(v, low, high)) for x, v in zip(positions, values)
                  if v is not None and math.isfinite(v)]
        if len(points) > 1:
            draw.line(points, fill=colour, width=3)
        for x, y in points:
            draw.ellipse([x - 4, y - 4, x + 4, y + 4], fill=colour)
    _legend(draw, list(series))
    return atomic_save_image(path, image)
