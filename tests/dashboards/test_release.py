"""The release-validation dashboard against a real ``hlthz replay run`` scraped by Prometheus."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from hlthz.dashboards import generate, query_dashboards
from hlthz.dashboards.live import OK
from hlthz.procs import LOOPBACK, free_port, wait_until
from tests.conftest import prom_query
from tests.dashboards.conftest import ShopApp

pytestmark = [pytest.mark.integration, pytest.mark.slow]

# The replayer answers scrapes between sends: on a busy machine one takes seconds, so its job
# is scraped every 3 s and the rate window covers four of those scrapes.
REPLAY_SCRAPE = "3s"
RATE_INTERVAL = "12s"
REPLAY_SECONDS = 120  # an upper bound: the test stops the replay as soon as it has checked


def _write_capture(path: Path) -> None:
    from hlthz.replay import CaptureRecord, CaptureWriter

    start = time.time_ns()
    paths = ["/api/products", "/api/products/1", "/api/products/99", "/api/broken", "/api/reviews"]
    with CaptureWriter(path, source="test") as writer:
        for i, p in enumerate(paths):
            writer.write(
                CaptureRecord(
                    id=str(i), ts_ns=start + i * 50_000_000, method="GET", path=p, headers=[]
                )
            )


def _two_scrapes(prom_url: str) -> bool:
    expr = f"count_over_time(hlthz_replay_requests_total[{RATE_INTERVAL}])"
    return any(float(r["value"][1]) >= 2 for r in prom_query(prom_url, expr))


def test_release_dashboard_has_data_while_a_replay_runs(
    shop_app: ShopApp, prometheus, tmp_path: Path
) -> None:
    out = tmp_path / "dashboards"
    generate(None, out)
    capture = tmp_path / "capture.jsonl"
    _write_capture(capture)
    port = free_port()
    log = (tmp_path / "replay.log").open("w")
    replay = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "hlthz",
            "replay",
            "run",
            str(capture),
            "--target",
            shop_app.url,
            "--rate",
            "30",
            "--loop",
            "--duration",
            str(REPLAY_SECONDS),
            "--name",
            "rc1",
            "--metrics-port",
            str(port),
            "--no-progress",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        prom = prometheus(
            scrape_configs=[
                {"job_name": "shop", "static_configs": [{"targets": [shop_app.target]}]},
                {
                    "job_name": "replay",
                    "scrape_interval": REPLAY_SCRAPE,
                    "scrape_timeout": REPLAY_SCRAPE,
                    "static_configs": [{"targets": [f"{LOOPBACK}:{port}"]}],
                },
            ]
        )
        wait_until(lambda: _two_scrapes(prom.url), timeout=90, interval=0.5, what="replay scrapes")
        assert replay.poll() is None, (tmp_path / "replay.log").read_text()

        panels = query_dashboards(out, prometheus=prom.url, rate_interval=RATE_INTERVAL)
    finally:
        replay.terminate()
        replay.wait(timeout=15)
        log.close()

    release = {r.panel: r.status for r in panels if r.dashboard == "hlthz-release"}
    assert release, [str(r) for r in panels]
    not_ok = {
        panel: status
        for panel, status in release.items()
        if status != OK and not panel.startswith("annotation")
    }
    assert not_ok == {}, "\n".join(str(r) for r in panels)
