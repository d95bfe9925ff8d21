"""Inline SVG charts drawn in Python: no chart library, no script, nothing fetched.

Every chart is a ``<svg>`` string with a ``viewBox`` (it scales with the page), a
``role="img"`` and an ``aria-label``, and ``<title>`` tooltips on its marks. Colours come
from CSS classes (``sev-high``, ``line-open`` ...) defined in the report's stylesheet, so
the page's light, dark and print themes apply to the charts too.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from html import escape

SeverityCounts = Mapping[str, int]


def _e(text: object) -> str:
    return escape(str(text), quote=True)


def _svg(width: int, height: int, label: str, body: str, cls: str) -> str:
    return (
        f'<svg class="chart {cls}" viewBox="0 0 {width} {height}" width="{width}" height="{height}" '
        f'role="img" aria-label="{_e(label)}">'
        f"<title>{_e(label)}</title>{body}</svg>"
    )


def _nice_max(value: float) -> float:
    """A round axis maximum at or above ``value`` (1, 2, 5 x 10^n)."""
    if value <= 0:
        return 1
    magnitude = 1.0
    while magnitude * 10 <= value:
        magnitude *= 10
    for step in (1, 2, 5, 10):
        if step * magnitude >= value:
            return step * magnitude
    return 10 * magnitude  # pragma: no cover


def _short(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def severity_columns(counts: SeverityCounts, label: str) -> str:
    """Vertical bars, one per severity (critical first), with the count above each."""
    width, height, top, bottom = 360, 190, 22, 30
    names = list(counts)
    peak = _nice_max(max(counts.values(), default=0))
    slot = width / max(len(names), 1)
    bars = []
    for i, sev in enumerate(names):
        n = counts[sev]
        h = (height - top - bottom) * n / peak
        x = i * slot + slot * 0.2
        y = height - bottom - h
        bars.append(
            f'<g><rect class="sev-{_e(sev)}" x="{x:.1f}" y="{y:.1f}" width="{slot * 0.6:.1f}" '
            f'height="{max(h, 0.5):.1f}" rx="3"><title>{_e(sev)}: {n}</title></rect>'
            f'<text class="value" x="{x + slot * 0.3:.1f}" y="{y - 6:.1f}" text-anchor="middle">{n}</text>'
            f'<text class="axis" x="{x + slot * 0.3:.1f}" y="{height - 10}" text-anchor="middle">{_e(sev)}</text></g>'
        )
    baseline = (
        f'<line class="grid" x1="0" y1="{height - bottom}" x2="{width}" y2="{height - bottom}"/>'
    )
    return _svg(width, height, label, baseline + "".join(bars), "columns")


TOP = 12
"""Rows shown by :func:`stacked_bars`."""


def stacked_bars(
    rows: Sequence[tuple[str, SeverityCounts]], label: str, *, limit: int = TOP
) -> str:
    """Horizontal bars stacked by severity, largest first (the first ``limit`` rows)."""
    rows = list(rows)[:limit]
    width, row_h, left, right = 560, 26, 190, 40
    height = max(len(rows), 1) * row_h + 8
    peak = _nice_max(max((sum(c.values()) for _, c in rows), default=0))
    scale = (width - left - right) / peak
    parts = []
    for i, (name, counts) in enumerate(rows):
        y = 4 + i * row_h
        parts.append(
            f'<text class="axis" x="{left - 8}" y="{y + row_h / 2 + 4:.1f}" text-anchor="end">'
            f"<title>{_e(name)}</title>{_e(_short(name, 26))}</text>"
        )
        x = float(left)
        for sev, n in counts.items():
            if not n:
                continue
            w = n * scale
            parts.append(
                f'<rect class="sev-{_e(sev)}" x="{x:.1f}" y="{y + 4}" width="{w:.1f}" '
                f'height="{row_h - 8}"><title>{_e(name)}: {n} {_e(sev)}</title></rect>'
            )
            x += w
        total = sum(counts.values())
        parts.append(
            f'<text class="value" x="{x + 6:.1f}" y="{y + row_h / 2 + 4:.1f}">{total}</text>'
        )
    if not rows:
        parts.append(
            f'<text class="axis" x="{width / 2}" y="18" text-anchor="middle">nothing open</text>'
        )
    return _svg(width, height, label, "".join(parts), "bars")


def rate_bars(rows: Sequence[tuple[str, float | None, str]], label: str) -> str:
    """Horizontal 0-100 % bars (conformity); ``None`` = nothing checked, drawn as a dash.
    Each row is (label, rate, tooltip)."""
    width, row_h, left, right = 560, 26, 190, 56
    height = max(len(rows), 1) * row_h + 8
    span = width - left - right
    parts = []
    for i, (name, rate, tip) in enumerate(rows):
        y = 4 + i * row_h
        parts.append(
            f'<text class="axis" x="{left - 8}" y="{y + row_h / 2 + 4:.1f}" text-anchor="end">'
            f"<title>{_e(name)}</title>{_e(_short(name, 26))}</text>"
        )
        parts.append(
            f'<rect class="track" x="{left}" y="{y + 5}" width="{span}" height="{row_h - 10}" rx="3"/>'
        )
        if rate is None:
            parts.append(
                f'<text class="value" x="{left + span + 6}" y="{y + row_h / 2 + 4:.1f}">–</text>'
            )
            continue
        band = "good" if rate >= 0.95 else "fair" if rate >= 0.8 else "poor"
        parts.append(
            f'<rect class="rate-{band}" x="{left}" y="{y + 5}" width="{max(rate * span, 0.5):.1f}" '
            f'height="{row_h - 10}" rx="3"><title>{_e(tip)}</title></rect>'
        )
        parts.append(
            f'<text class="value" x="{left + span + 6}" y="{y + row_h / 2 + 4:.1f}">{rate * 100:.1f}%</text>'
        )
    if not rows:
        parts.append(
            f'<text class="axis" x="{width / 2}" y="18" text-anchor="middle">no run in the period</text>'
        )
    return _svg(width, height, label, "".join(parts), "rates")


ExposureBar = tuple[str, float, float, float, str]
"""(label, now, pessimistic, after the suggested fixes, side note), probabilities 0-1."""


def exposure_bars(rows: Sequence[ExposureBar], label: str) -> str:
    """Three thin 0-100 % bars per process (now, pessimistic, after the fixes) with the
    population, k and n beside them."""
    width, bar_h, gap, left, right = 620, 9, 10, 150, 150
    row_h = 3 * bar_h + gap
    height = max(len(rows), 1) * row_h + 8
    span = width - left - right
    parts = []
    for i, (name, now, pessimistic, after, note) in enumerate(rows):
        y = 4 + i * row_h
        parts.append(
            f'<text class="axis" x="{left - 8}" y="{y + 1.5 * bar_h + 4:.1f}" text-anchor="end">'
            f"<title>{_e(name)}</title>{_e(_short(name, 22))}</text>"
        )
        for j, (cls, what, p) in enumerate(
            (
                ("exp-now", "now", now),
                ("exp-pess", "pessimistic", pessimistic),
                ("exp-after", "after the fixes", after),
            )
        ):
            top = y + j * bar_h
            parts.append(
                f'<rect class="track" x="{left}" y="{top + 1}" width="{span}" height="{bar_h - 2}"/>'
                f'<rect class="{cls}" x="{left}" y="{top + 1}" width="{max(p * span, 0.5):.1f}" '
                f'height="{bar_h - 2}"><title>{_e(name)} {_e(what)}: {p * 100:.1f}%</title></rect>'
            )
        parts.append(
            f'<text class="value" x="{left + span + 6}" y="{y + 1.5 * bar_h + 4:.1f}">'
            f"{_e(_short(note, 24))}</text>"
        )
    if not rows:
        parts.append(
            f'<text class="axis" x="{width / 2}" y="18" text-anchor="middle">no records in the period</text>'
        )
    return _svg(width, height, label, "".join(parts), "exposure")


def line_chart(
    points: Sequence[tuple[str, float | None]],
    label: str,
    *,
    percent: bool = False,
    css: str = "line-open",
) -> str:
    """A line over the runs (x: run order, labelled by date); ``None`` values are gaps."""
    width, height, left, right, top, bottom = 560, 200, 48, 34, 14, 34
    values = [v for _, v in points if v is not None]
    lo, hi = (0.0, 1.0) if percent else (0.0, _nice_max(max(values, default=0)))
    if percent and values and min(values) > 0.5:
        lo = 0.5  # conformity lives near the top: zoom in, the axis says so
    plot_w, plot_h = width - left - right, height - top - bottom

    def xy(i: int, v: float) -> tuple[float, float]:
        x = left + (plot_w * i / (len(points) - 1) if len(points) > 1 else plot_w / 2)
        return x, top + plot_h * (1 - (v - lo) / ((hi - lo) or 1))

    parts = []
    for k in range(5):  # horizontal grid with axis values
        tick = lo + (hi - lo) * k / 4
        _, y = xy(0, tick)
        text = f"{tick * 100:g}%" if percent else f"{tick:g}"
        parts.append(
            f'<line class="grid" x1="{left}" y1="{y:.1f}" x2="{width - right}" y2="{y:.1f}"/>'
            f'<text class="axis" x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">{text}</text>'
        )
    segments: list[list[tuple[float, float]]] = [[]]
    for i, (name, v) in enumerate(points):
        if v is None:
            segments.append([])
            continue
        x, y = xy(i, v)
        segments[-1].append((x, y))
        shown = f"{v * 100:.1f}%" if percent else f"{v:g}"
        parts.append(
            f'<circle class="{css}" cx="{x:.1f}" cy="{y:.1f}" r="3.5"><title>{_e(name)}: {shown}</title></circle>'
        )
    for seg in segments:
        if len(seg) > 1:
            coords = " ".join(f"{x:.1f},{y:.1f}" for x, y in seg)
            parts.insert(0, f'<polyline class="{css}" fill="none" points="{coords}"/>')
    step = max(1, len(points) // 6)  # at most ~7 date labels
    for i, (name, _) in enumerate(points):
        if i % step == 0 or i == len(points) - 1:
            x, _y = xy(i, lo)
            parts.append(
                f'<text class="axis" x="{x:.1f}" y="{height - 12}" text-anchor="middle">{_e(name)}</text>'
            )
    if not points:
        parts.append(
            f'<text class="axis" x="{width / 2}" y="{height / 2}" text-anchor="middle">no run in the period</text>'
        )
    return _svg(width, height, label, "".join(parts), "line")
