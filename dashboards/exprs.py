"""PromQL building blocks shared by the dashboards.

Every ``rate()`` and ``increase()`` uses Grafana's ``$__rate_interval``: it is never shorter
than four scrape intervals, so a panel does not go blank when zoomed in, and it grows with the
step when zoomed out, so no sample falls between two points.
"""

from __future__ import annotations

RATE_INTERVAL = "$__rate_interval"


def rate(metric: str, m: str, fn: str = "rate") -> str:
    """``rate(metric{m}[$__rate_interval])`` (or ``increase`` with ``fn``)."""
    return f"{fn}({metric}{{{m}}}[{RATE_INTERVAL}])"


def sum_rate(metric: str, m: str, by: str = "", fn: str = "rate") -> str:
    """``sum by (by) (rate(...))``; no ``by`` sums everything."""
    group = f" by ({by})" if by else ""
    return f"sum{group} ({rate(metric, m, fn)})"


def quantile(q: float, histogram: str, m: str, by: str = "") -> str:
    """The ``q`` quantile of ``histogram`` (its name without ``_bucket``) kept per ``by``."""
    labels = ", ".join(p for p in ("le", by) if p)
    return f"histogram_quantile({q}, sum by ({labels}) ({rate(histogram + '_bucket', m)}))"


def share(metric: str, m: str, part: str, by: str = "") -> str:
    """Share of ``metric``'s rate whose labels also match ``part``.

    Where there was traffic but no matching part the result is 0, not "no data": an empty
    error panel would look the same as a broken one.
    """
    total = sum_rate(metric, m, by)
    matching = sum_rate(metric, f"{m}, {part}", by)
    return f"({matching} or {total} * 0) / {total}"
