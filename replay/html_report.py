"""The self-contained HTML report: inline SVG charts, inline CSS, no network needed.

Charts are drawn here as SVG markup (polylines on a scaled grid), so the file opens anywhere,
offline, with nothing to fetch. With a baseline (from ``hlthz replay compare``) the baseline's
P95 is overlaid dashed and the per-route table shows both runs and the gate results.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from jinja2 import ChainableUndefined, Environment, PackageLoader, select_autoescape
from markupsafe import Markup, escape

from hlthz.files import atomic_write
from hlthz.replay.report import Report

_W, _H = 760, 220
_PAD_L, _PAD_R, _PAD_T, _PAD_B = 56, 12, 30, 28
STATUS_COLOURS = {
    "2xx": "#2e7d32",
    "3xx": "#1565c0",
    "4xx": "#ef6c00",
    "5xx": "#c62828",
    "error": "#6a1b9a",
}


@dataclass
class Line:
    """One series of a chart: ``points`` are (x, y); ``dashed`` for baselines."""

    label: str
    colour: str
    points: Sequence[tuple[float, float]]
    dashed: bool = False


def _nice_max(value: float) -> float:
    if value <= 0:
        return 1.0
    exponent = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 2.5, 5, 10):
        if value <= step * exponent:
            return step * exponent
    return 10 * exponent


def line_chart(title: str, lines: Sequence[Line], *, unit: str, chart_id: str) -> Markup:
    """An SVG line chart with axes, gridlines and a legend."""
    xs = [x for line in lines for x, _ in line.points]
    ys = [y for line in lines for _, y in line.points]
    x_max = max(xs, default=1.0) or 1.0
    y_max = _nice_max(max(ys, default=0.0))
    plot_w, plot_h = _W - _PAD_L - _PAD_R, _H - _PAD_T - _PAD_B

    def sx(x: float) -> float:
        return _PAD_L + plot_w * x / x_max

    def sy(y: float) -> float:
        return _PAD_T + plot_h * (1 - y / y_max)

    parts = [
        f'<svg class="chart" id="{escape(chart_id)}" viewBox="0 0 {_W} {_H}" role="img" '
        f'aria-label="{escape(title)}" xmlns="http://www.w3.org/2000/svg">'
    ]
    for i in range(5):
        value = y_max * i / 4
        y = sy(value)
        parts.append(
            f'<line class="grid" x1="{_PAD_L}" x2="{_W - _PAD_R}" y1="{y:.1f}" y2="{y:.1f}"/>'
        )
        parts.append(
            f'<text class="tick" x="{_PAD_L - 6}" y="{y + 4:.1f}" '
            f'text-anchor="end">{value:g}</text>'
        )
    for i in range(6):
        value = x_max * i / 5
        x = sx(value)
        parts.append(
            f'<text class="tick" x="{x:.1f}" y="{_H - 8}" text-anchor="middle">{value:.0f}s</text>'
        )
    # The legend row sits above the plot: unit first, then one swatch per series.
    parts.append(f'<text class="unit" x="4" y="14">{escape(unit)}</text>')
    for line in lines:
        if not line.points:
            continue
        points = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in line.points)
        dash = ' stroke-dasharray="6 4"' if line.dashed else ""
        parts.append(
            f'<polyline class="series" fill="none" stroke="{line.colour}" stroke-width="1.6"{dash} '
            f'points="{points}"><title>{escape(line.label)}</title></polyline>'
        )
    legend_x = 16 + 6 * len(unit)
    for line in lines:
        parts.append(
            f'<rect x="{legend_x}" y="5" width="10" height="10" fill="{line.colour}"/>'
            f'<text class="legend" x="{legend_x + 14}" y="14">{escape(line.label)}</text>'
        )
        legend_x += 24 + 7 * len(line.label)
    parts.append("</svg>")
    return Markup("".join(parts))


def status_bar(classes: Mapping[str, int], chart_id: str) -> Markup:
    """A horizontal stacked bar of status classes with counts."""
    total = sum(classes.values()) or 1
    parts = [
        f'<svg class="chart" id="{escape(chart_id)}" viewBox="0 0 {_W} 60" role="img" '
        f'aria-label="status mix" xmlns="http://www.w3.org/2000/svg">'
    ]
    x = 0.0
    for name in sorted(classes):
        width = _W * classes[name] / total
        colour = STATUS_COLOURS.get(name, "#555")
        parts.append(
            f'<rect class="series" x="{x:.1f}" y="4" width="{max(width, 1):.1f}" height="26" '
            f'fill="{colour}"><title>{escape(name)}: {classes[name]}</title></rect>'
        )
        parts.append(
            f'<text class="legend" x="{x + 4:.1f}" y="48">{escape(name)} {classes[name]:,}</text>'
        )
        x += width
    parts.append("</svg>")
    return Markup("".join(parts))


def render_html(
    report: Report,
    *,
    baseline: Report | None = None,
    comparison: Mapping[str, Any] | None = None,
) -> str:
    """The report as one HTML page (see the module doc); ``comparison`` is
    :meth:`~hlthz.replay.compare.Comparison.to_dict`."""
    series = report.series
    latency_lines = [
        Line("p50", "#90caf9", [(p.t, p.p50_ms) for p in series]),
        Line("p95", "#1565c0", [(p.t, p.p95_ms) for p in series]),
        Line("p99", "#0d47a1", [(p.t, p.p99_ms) for p in series]),
    ]
    if baseline is not None:
        latency_lines.append(
            Line("baseline p95", "#757575", [(p.t, p.p95_ms) for p in baseline.series], True)
        )
    rate_lines = [
        Line("requests/s", "#2e7d32", [(p.t, p.requests) for p in series]),
        Line("errors/s", "#c62828", [(p.t, p.errors) for p in series]),
    ]
    if baseline is not None:
        rate_lines.append(
            Line(
                "baseline requests/s", "#757575", [(p.t, p.requests) for p in baseline.series], True
            )
        )
    lag_lines = [Line("schedule lag max", "#6a1b9a", [(p.t, p.lag_max_ms) for p in series])]
    base_routes = {r.key: r for r in baseline.routes} if baseline is not None else {}
    env = Environment(
        loader=PackageLoader("hlthz.replay", "templates"),
        autoescape=select_autoescape(["html", "j2"]),
        # A report needs only the required keys of docs/formats.md: the extras (its run,
        # a route's service_time_ms ...) are None and render empty.
        undefined=ChainableUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    template = env.get_template("report.html.j2")
    return template.render(
        report=report,
        baseline=baseline,
        comparison=comparison,
        base_routes=base_routes,
        latency_chart=line_chart(
            "latency over time", latency_lines, unit="ms (from scheduled time)", chart_id="latency"
        ),
        rate_chart=line_chart("throughput", rate_lines, unit="per second", chart_id="rate"),
        lag_chart=line_chart("schedule lag", lag_lines, unit="ms", chart_id="lag"),
        status_chart=status_bar(report.summary.status_classes or {}, "status"),
    )


def write_html(
    report: Report,
    path: str | os.PathLike[str],
    *,
    baseline: Report | None = None,
    comparison: Mapping[str, Any] | None = None,
    what: str | None = None,
) -> None:
    """Write :func:`render_html` to ``path`` atomically; ``what`` (an option or parameter name)
    turns an OS error into one line naming it."""
    page = render_html(report, baseline=baseline, comparison=comparison)
    atomic_write(path, page, what=what)
