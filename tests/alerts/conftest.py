"""Fixtures of the alerts tests: thresholds files written into the test's temp dir."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

#: A config scaled down for a real Prometheus in a test: 1 s scrapes, 4 s rate windows, 2 s
#: ``for``. Its thresholds sit on the exporter's default bucket boundaries.
FAST_CONFIG = """\
scrape_interval: 1s
rate_window: 4s
min_request_rate: 0.5
alerts:
  critical:
    latency_p95: {threshold: 0.25, for: 2s}
    error_rate: {threshold: 0.2, for: 2s}
    pool_exhausted: {for: 2s}
    target_missing: {for: 2s, lookback: 30s}
  warning:
    latency_p95: {threshold: 0.1, for: 3s}
    memory: {threshold: 0.9, for: 2s}
    cache_hit_rate: {threshold: 0.5, for: 2s}
  info:
    latency_degraded: {ratio: 2, offset: 1m, for: 5s}
    unusual_traffic: {zscore: 3, window: 10m, for: 5s}
"""

WriteConfig = Callable[[str], Path]


@pytest.fixture
def write_config(tmp_path: Path) -> WriteConfig:
    """``write_config(yaml_text)`` -> path of a thresholds file holding it."""
    counter = iter(range(1000))

    def write(text: str) -> Path:
        path = tmp_path / f"thresholds-{next(counter)}.yaml"
        path.write_text(text, encoding="utf-8")
        return path

    return write


@pytest.fixture
def fast_config(write_config: WriteConfig) -> Path:
    """Path of :data:`FAST_CONFIG`."""
    return write_config(FAST_CONFIG)
