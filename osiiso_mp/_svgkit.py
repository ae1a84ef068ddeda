"""The pieces the summary's pictures share: the :class:`SVG` string, the palette, round axis
ticks, human durations, the ``<svg>`` root and the outcome legend.

Theme rule, for every picture: nothing assumes the page is white. Text, ticks and axes are
drawn in :func:`ink_colour`: :data:`INK`, a mid grey that reads at about 4:1 on white and on a dark
notebook (``#1e1e1e``), for an SVG shown on its own (JupyterLab shows those as an image, which
inherits no colour from the page); ``"currentColor"`` for one ``inline`` in the HTML summary,
where it takes the notebook's own text colour. Backgrounds are ink at a low opacity, never
white.
Bars keep the outcome colours of :data:`OUTCOME_COLOURS`, which read on both.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from html import escape

__all__ = [
    "INK",
    "LEGEND_ROW",
    "MIN_BAR",
    "OUTCOME_COLOURS",
    "OUTCOME_ORDER",
    "SVG",
    "duration_text",
    "ink_colour",
    "legend",
    "nice_step",
    "svg_open",
    "ticks",
]

INK = "#7e7e7e"
"""Text and axis colour of a stand-alone picture: about 4:1 contrast on white and on
``#1e1e1e`` alike."""

MIN_BAR = 3.0
"""The narrowest bar or failure mark drawn in a timeline, in pixels."""

OUTCOME_COLOURS = {
    "succeeded": "#2e9e44",
    "failed": "#d62728",
    "timed_out": "#ff8c00",
    "crashed": "#8e44ad",
    "cancelled": "#9e9e9e",
    "memory_exceeded": "#8b5a2b",
}
"""Fill colour of each attempt outcome, in the timeline, the plots and the HTML table."""

OUTCOME_ORDER = tuple(OUTCOME_COLOURS)
"""The outcomes in legend order (succeeded first, then the ways an attempt goes wrong)."""

FONT = 'font-family="system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif"'


class SVG(str):
    """SVG markup: a plain ``str`` that Jupyter displays as an image."""

    __slots__ = ()

    def _repr_svg_(self) -> str:
        """The markup, for Jupyter's SVG display."""
        return str(self)


def nice_step(span: float, most: int) -> float:
    """The smallest step of the form 1, 2 or 5 x 10^k that cuts ``span`` into at most
    ``most`` intervals."""
    if span <= 0 or not math.isfinite(span):
        return 1.0
    raw = span / max(most, 1)
    power = 10.0 ** math.floor(math.log10(raw))
    for mult in (1, 2, 5, 10):
        if mult * power >= raw * (1 - 1e-9):
            return mult * power
    return 10 * power  # pragma: no cover - the loop always returns


def ticks(span: float, most: int = 8, unit: str = "s") -> list[tuple[float, str]]:
    """Round ticks from 0 to ``span`` (inclusive): ``(value, label)`` pairs at multiples of a
    :func:`nice_step`. With ``unit="s"`` the labels read ``"0 s", "0.2 s"`` (``"ms"`` or
    ``"µs"`` when the step is below 10 ms or 10 µs); with ``unit="%"`` ``"0%", "25%"``
    for fractions; with ``unit=""`` plain counts."""
    step = nice_step(span, most)
    scale, suffix = 1.0, " s"
    if unit == "s" and step < 1e-5:
        scale, suffix = 1e6, " µs"
    elif unit == "s" and step < 1e-2:
        scale, suffix = 1e3, " ms"
    elif unit == "%":
        scale, suffix = 100.0, "%"
    elif unit != "s":
        scale, suffix = 1.0, unit
    decimals = max(0, -math.floor(math.log10(step * scale) + 1e-9))
    out = []
    for k in range(int(span / step * (1 + 1e-9)) + 1):
        value = k * step
        text = f"{value * scale:,.{decimals}f}"
        if "." in text:  # 0.5, 1, 1.5 rather than 0.5, 1.0, 1.5
            text = text.rstrip("0").rstrip(".")
        out.append((value, text + suffix))
    return out


def duration_text(seconds: float) -> str:
    """A duration with a unit that suits it: ``"1.23 s"``, ``"45.6 ms"``, ``"12 µs"``."""
    if seconds >= 100:
        return f"{seconds:,.0f} s"
    if seconds >= 1:
        return f"{seconds:.2f} s"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.3g} ms"
    return f"{seconds * 1e6:.3g} µs"


def ink_colour(inline: bool) -> str:
    """The text and axis colour: the page's own inside HTML, else :data:`INK`."""
    return "currentColor" if inline else INK


def svg_open(width: float, height: float, title: str, description: str, inline: bool) -> str:
    """The ``<svg>`` root, then its ``<title>`` and ``<desc>`` (plain text, escaped here).

    Inside HTML (``inline``) it is as wide as its container, up to ``width`` pixels. On its
    own it is ``width`` by ``height`` pixels, shrinking to fit a narrower container: shown as
    an image (as JupyterLab shows SVG output) a relative width would have no upper bound.
    """
    if inline:
        size = f'width="100%" style="max-width:{width:.0f}px;height:auto;display:block"'
    else:
        size = f'width="{width:.0f}" height="{height:.0f}" style="max-width:100%;height:auto"'
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" role="img" aria-label="{escape(description)}" '
        f'viewBox="0 0 {width:.0f} {height:.0f}" {size} preserveAspectRatio="xMinYMin meet" '
        f'{FONT} font-size="12" fill="{ink_colour(inline)}">'
        f"<title>{escape(title)}</title><desc>{escape(description)}</desc>"
    )


LEGEND_ROW = 18
"""Height of one row of :func:`legend`."""


def legend(
    left: float, right: float, y: float, counts: Iterable[tuple[str, int]], ink: str
) -> tuple[str, int]:
    """Swatches with ``"outcome count"`` labels from (``left``, ``y``), wrapped before
    ``right``; returns the markup and the number of rows it took."""
    out, x, rows = [], left, 1
    for outcome, n in counts:
        label = f"{outcome.replace('_', ' ')} {n:,}"
        room = 24 + 6.6 * len(label)
        if x > left and x + room > right:
            x, y, rows = left, y + LEGEND_ROW, rows + 1
        out.append(
            f'<rect x="{x:.1f}" y="{y:.1f}" width="10" height="10" rx="2" '
            f'fill="{OUTCOME_COLOURS.get(outcome, ink)}"/>'
            f'<text x="{x + 14:.1f}" y="{y + 9:.1f}" fill="{ink}">{escape(label)}</text>'
        )
        x += room
    return "".join(out), rows
