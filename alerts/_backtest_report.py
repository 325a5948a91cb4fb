"""The backtest for people: a terminal table and a self-contained HTML timeline."""

from __future__ import annotations

import datetime as _dt
import html
import json
from pathlib import Path
from typing import TYPE_CHECKING

from hlthz.alerts.humanize import humanize_duration
from hlthz.files import atomic_write

if TYPE_CHECKING:
    from hlthz.alerts.backtest import AlertBacktest, Backtest, BacktestResult


def _utc(t: float) -> str:
    return _dt.datetime.fromtimestamp(t, _dt.UTC).strftime("%Y-%m-%d %H:%M:%S")


def _dur(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    sign = "-" if seconds < 0 else ""
    return sign + humanize_duration(abs(seconds)) if seconds else "0s"


def _share(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f}"


def _cells(a: AlertBacktest | None, result: BacktestResult, quality: bool) -> list[str]:
    if a is None:
        return ["-"] * (9 if quality else 5)
    cells = [
        str(len(a.episodes)),
        str(a.inhibited),
        _dur(a.firing_seconds(result.end)),
        str(a.flaps),
        f"{a.per_week(result.seconds):.1f}",
    ]
    if quality:
        q = a.quality
        cells += [
            _share(q.precision if q else None),
            _share(q.recall if q else None),
            _dur(q.detection_delay if q else None),
            _dur(q.reset_time if q else None),
        ]
    return cells


def table_lines(result: BacktestResult) -> list[str]:
    """The table ``hlthz alerts backtest`` prints: one row per alert and severity, the
    what-if's columns beside the project file's."""
    quality = bool(result.incidents)
    runs = result.runs
    head = ["episodes", "inhibited", "firing", "flaps", "/week"]
    if quality:
        head += ["precision", "recall", "delay", "reset"]
    keys: list[tuple[str, str]] = []
    for run in runs:
        keys += [(a.name, a.severity) for a in run.alerts if (a.name, a.severity) not in keys]
    rows = [["alert", "severity", *head, *(head if len(runs) > 1 else [])]]
    for name, severity in keys:
        row = [name, severity]
        for run in runs:
            row += _cells(run.alert(name, severity), result, quality)
        rows.append(row)
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = [
        f"backtest of {result.prometheus}: {_utc(result.start)} to {_utc(result.end)} UTC "
        f"({_dur(result.seconds)}), evaluated every {_dur(result.interval)}",
    ]
    if len(runs) > 1:
        lines.append(f"left: {runs[0].config}   right (what-if): {runs[1].config}")
    sep = " | " if len(runs) > 1 else "  "
    split = 2 + len(head)
    for r in rows:
        left = "  ".join(
            c.ljust(widths[i]) if i < 2 else c.rjust(widths[i]) for i, c in enumerate(r[:split])
        )
        right = "  ".join(c.rjust(widths[split + i]) for i, c in enumerate(r[split:]))
        lines.append((left + (sep + right if right else "")).rstrip())
    for run in runs:
        per = run.notifications_per_week(result.seconds)
        label = f"{run.config}: " if len(runs) > 1 else ""
        lines.append(
            f"{label}pages/week {per['pages']:.1f}, tickets/week {per['tickets']:.1f}, "
            f"info/week {per['info']:.1f}"
        )
        lines += [f"note: {n}" for n in run.notes]
    return lines


_STYLE = """
body{font:14px system-ui,sans-serif;margin:24px;color:#222}
pre{overflow-x:auto}
h1{font-size:20px}h2{font-size:16px;margin:24px 0 4px}
svg{display:block;border:1px solid #ddd;background:#fafafa}
.critical{fill:#d62728}.warning{fill:#ff9f1a}.info{fill:#1f77b4}
.incident{fill:#2ca02c;opacity:.15}.inhibited{opacity:.35}
table{border-collapse:collapse}td,th{padding:2px 8px;text-align:right}
td:first-child,th:first-child{text-align:left}
"""
# Checks its own drawing once laid out: every episode bar must have a width on screen.
_SCRIPT = """
(function(){
  var bars=document.querySelectorAll('rect.episode'), ok=0;
  bars.forEach(function(b){ if (b.getBBox().width > 0) ok++; });
  document.body.setAttribute('data-timeline-drawn', ok + '/' + bars.length);
})();
"""


def _timeline(run: Backtest, result: BacktestResult, width: int = 960) -> str:
    rows: list[tuple[str, str, list[tuple[float, float, bool]]]] = []
    for a in run.alerts:
        per: dict[str, list[tuple[float, float, bool]]] = {}
        for e in a.episodes:
            key = ",".join(f"{k}={v}" for k, v in sorted(e.labels.items()) if k != "alertname")
            per.setdefault(key, []).append((e.start, e.until(result.end), e.inhibited))
        for key, spans in sorted(per.items()):
            rows.append((f"{a.name} {key}", a.severity, spans))
    label_w, row_h, top = 360, 18, 20
    plot = width - label_w - 10
    height = top + row_h * max(1, len(rows)) + 10

    def x(t: float) -> float:
        return label_w + plot * (min(max(t, result.start), result.end) - result.start) / max(
            result.seconds, 1e-9
        )

    parts = [f'<svg width="{width}" height="{height}" role="img">']
    for inc in result.incidents:
        parts.append(
            f'<rect class="incident" x="{x(inc.start):.1f}" y="{top}" '
            f'width="{max(1.0, x(inc.end) - x(inc.start)):.1f}" height="{height - top}">'
            f"<title>{html.escape(inc.name)}</title></rect>"
        )
    for i, (label, severity, spans) in enumerate(rows):
        y = top + i * row_h
        parts.append(f'<text x="4" y="{y + 13}" font-size="11">{html.escape(label[:60])}</text>')
        for s, stop, muted in spans:
            tip = f"{label}: {_utc(s)} to {_utc(stop)} UTC ({_dur(stop - s)})"
            tip += ", inhibited: notifies nobody" if muted else ""
            kind = f"{severity} inhibited" if muted else severity
            parts.append(
                f'<rect class="episode {kind}" x="{x(s):.1f}" y="{y + 3}" '
                f'width="{max(1.5, x(stop) - x(s)):.1f}" height="{row_h - 6}">'
                f"<title>{html.escape(tip)}</title></rect>"
            )
    parts.append(
        f'<text x="{label_w}" y="14" font-size="11">{_utc(result.start)}</text>'
        f'<text x="{width - 10}" y="14" font-size="11" text-anchor="end">'
        f"{_utc(result.end)} UTC</text></svg>"
    )
    return "".join(parts)


def render_html(result: BacktestResult) -> str:
    """One HTML page, no external resources: the table and, per project file, a timeline of
    every episode per alert and label set (incidents shaded green, inhibited episodes pale)."""
    body = [f"<h1>Alert backtest: {html.escape(result.prometheus)}</h1>"]
    body.append("<pre>" + html.escape("\n".join(table_lines(result))) + "</pre>")
    for run in result.runs:
        body.append(f"<h2>{html.escape(run.config)}</h2>")
        body.append(_timeline(run, result))
    data = json.dumps(result.to_json()).replace("</", "<\\/")
    return (
        "<!doctype html><html><head><meta charset='utf-8'><title>hlthz alert backtest</title>"
        f"<style>{_STYLE}</style></head><body>{''.join(body)}"
        f'<script type="application/json" id="backtest-data">{data}</script>'
        f"<script>{_SCRIPT}</script></body></html>\n"
    )


def write_html(result: BacktestResult, path: str | Path) -> None:
    atomic_write(Path(path), render_html(result))


def write_json(result: BacktestResult, path: str | Path) -> None:
    atomic_write(Path(path), json.dumps(result.to_json(), indent=2) + "\n")
