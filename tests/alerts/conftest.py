"""Fixtures of the alerts tests: thresholds files written into the test's temp dir, and a real
Alertmanager's alert states (:func:`alert_states`)."""

from __future__ import annotations

import contextlib
import json
import urllib.request
from collections.abc import Callable
from pathlib import Path

import pytest

from hlthz.errors import ServiceError
from hlthz.procs import wait_until
from hlthz.tools.stack.services import start_alertmanager

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


LabelKey = tuple[tuple[str, str], ...]


def alert_states(
    config_file: Path,
    workdir: Path,
    firing: list[dict[str, str]],
    settled: Callable[[dict[LabelKey, str]], bool],
) -> dict[LabelKey, str]:
    """Send ``firing`` to a real Alertmanager running ``config_file`` and return each alert's
    state (``active``, ``suppressed``) by its sorted labels, once ``settled(states)`` holds or
    after 10 s: Alertmanager's inhibitor learns of an alert from a subscription that runs after
    the POST returns, so a read made at once can still see an alert unmuted (clean-clone CI
    did). The caller asserts on what is returned, so a wrong muting still fails."""
    states: dict[LabelKey, str] = {}
    with start_alertmanager(config_file, workdir) as am:
        body = json.dumps([{"labels": labels} for labels in firing]).encode()
        request = urllib.request.Request(
            f"{am.url}/api/v2/alerts", data=body, headers={"Content-Type": "application/json"}
        )
        urllib.request.urlopen(request, timeout=5).close()

        def read() -> bool:
            with urllib.request.urlopen(f"{am.url}/api/v2/alerts", timeout=5) as response:
                alerts = json.load(response)
            states.clear()
            states.update(
                {tuple(sorted(a["labels"].items())): a["status"]["state"] for a in alerts}
            )
            return settled(states)

        with contextlib.suppress(ServiceError):
            wait_until(read, timeout=10, interval=0.1, what="Alertmanager's inhibition")
    return states
