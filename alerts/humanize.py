"""Python twins of Prometheus' template functions ``humanize``, ``humanizeDuration`` and
``humanizePercentage``.

The generator uses them twice: to write thresholds into annotation text the way the measured
value next to them will read, and to predict the exact annotation text promtool must see in the
generated unit tests. They follow Prometheus' ``template.go`` (Go's ``%.4g``).
"""

from __future__ import annotations

import math


def _g4(value: float) -> str:
    # Go's %.4g and Python's agree except for the exponent's sign padding (both print e+06).
    return f"{value:.4g}"


def humanize(value: float) -> str:
    """``1234`` -> ``1.234k``, ``0.05`` -> ``50m`` (SI prefixes, four significant digits)."""
    if value == 0 or math.isnan(value) or math.isinf(value):
        return _g4(value)
    if abs(value) >= 1:
        prefix = ""
        for p in ("k", "M", "G", "T", "P", "E", "Z", "Y"):
            if abs(value) < 1000:
                break
            prefix = p
            value /= 1000
        return f"{_g4(value)}{prefix}"
    prefix = ""
    for p in ("m", "u", "n", "p", "f", "a", "z", "y"):
        if abs(value) >= 1:
            break
        prefix = p
        value *= 1000
    return f"{_g4(value)}{prefix}"


def humanize_duration(value: float) -> str:
    """Seconds as Prometheus prints them: ``0.5`` -> ``500ms``, ``90`` -> ``1m 30s``."""
    if math.isnan(value) or math.isinf(value):
        return _g4(value)
    if value == 0:
        return f"{_g4(value)}s"
    if abs(value) >= 1:
        sign = "-" if value < 0 else ""
        value = abs(value)
        whole = int(value)
        seconds = whole % 60
        minutes = (whole // 60) % 60
        hours = (whole // 3600) % 24
        days = whole // 86400
        if days:
            return f"{sign}{days}d {hours}h {minutes}m {seconds}s"
        if hours:
            return f"{sign}{hours}h {minutes}m {seconds}s"
        if minutes:
            return f"{sign}{minutes}m {seconds}s"
        return f"{sign}{_g4(value)}s"
    prefix = ""
    for p in ("m", "u", "n", "p", "f", "a", "z", "y"):
        if abs(value) >= 1:
            break
        prefix = p
        value *= 1000
    return f"{_g4(value)}{prefix}s"


def humanize_percentage(value: float) -> str:
    """A ratio as a percentage: ``0.055`` -> ``5.5%``."""
    return f"{_g4(value * 100)}%"
