"""Every panel query of the generated dashboards, run on a real Prometheus scraping a real app."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from hlthz.dashboards import check_dashboards, generate, query_dashboards
from hlthz.dashboards.live import EXPECTED, OK
from hlthz.procs import wait_until
from hlthz.tools.cli import main
from tests.conftest import prom_query
from tests.dashboards.conftest import ShopApp, send_traffic

pytestmark = pytest.mark.integration

# Prometheus scrapes every second (the fixture's default): a 10 s window holds several samples
# even when a busy machine makes a scrape or two time out.
RATE_INTERVAL = "10s"


def _scraped(prom_url: str) -> bool:
    # Two samples of the request counter inside the window: rate() has a value.
    expr = f"count_over_time(http_request_duration_seconds_count[{RATE_INTERVAL}])"
    return any(float(r["value"][1]) >= 2 for r in prom_query(prom_url, expr))


def test_every_panel_has_data_on_a_real_prometheus(
    shop_app: ShopApp, prometheus, tmp_path: Path
) -> None:
    out = tmp_path / "dashboards"
    generate(None, out)
    prom = prometheus([shop_app.target], job="hlthz-shop")

    # Traffic across several scrapes, then wait (bounded) until rate() sees two samples.
    for _ in range(6):
        send_traffic(shop_app.url, rounds=2)
        time.sleep(0.4)
    wait_until(lambda: _scraped(prom.url), timeout=20, interval=0.25, what="two scrapes")
    send_traffic(shop_app.url, rounds=1)

    report = check_dashboards(out, prometheus=prom.url, rate_interval=RATE_INTERVAL)
    assert report.ok, "\n".join(report.lines())
    panels = query_dashboards(out, prometheus=prom.url, rate_interval=RATE_INTERVAL)
    statuses = {(r.dashboard, r.panel): r.status for r in panels}
    # Every panel of the three service dashboards has data: the allow-list was not needed.
    for (uid, panel), status in statuses.items():
        if uid != "hlthz-release" and not panel.startswith("annotation"):
            assert status == OK, f"{uid} / {panel}: {status}"
    # The app really did an N+1 and answered 503s, so those panels show it.
    assert statuses[("hlthz-database", "N+1 detections")] == OK
    assert statuses[("hlthz-api", "5xx share")] == OK
    # No replay ran: the release dashboard is empty, and says why.
    release = [r for r in panels if r.dashboard == "hlthz-release"]
    assert release and all(r.status == EXPECTED for r in release)
    assert "hlthz replay run" in release[0].detail

    # The CLI agrees: exit code 0 and a clean summary.
    result = CliRunner().invoke(
        main,
        [
            "dashboards",
            "check",
            "--dir",
            str(out),
            "--prometheus",
            prom.url,
            "--job",
            "hlthz-shop",  # a '-' must be escaped for the regex and again for PromQL
            "--rate-interval",
            RATE_INTERVAL,
        ],
    )
    assert result.exit_code == 0, result.output
    assert result.output.startswith(
        "ok   lint\nok   signals (every panel's metric family is emitted)\nok   queries ("
    ), result.output

    # A query with a typo'd metric is an unexpected empty panel; bad PromQL is an error.
    board_path = out / "provisioning" / "hlthz-api.json"
    board = json.loads(board_path.read_text())
    by_title = {p["title"]: p for p in board["panels"]}
    by_title["Request rate"]["targets"][0]["expr"] = (
        "sum(rate(http_requests_totl[$__rate_interval]))"
    )
    by_title["In-flight requests"]["targets"][0]["expr"] = "sum(http_requests_in_flight{"
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "hlthz-api.json").write_text(json.dumps(board))

    report = check_dashboards(broken, prometheus=prom.url, rate_interval=RATE_INTERVAL, drift=False)
    failing = report.step("queries").findings
    assert any(f.startswith("hlthz-api / Request rate: empty") for f in failing), failing
    assert any(f.startswith("hlthz-api / In-flight requests: error") for f in failing), failing
    assert not report.ok
    result = CliRunner().invoke(
        main,
        [
            "dashboards",
            "check",
            "--dir",
            str(broken),
            "--no-drift",
            "--prometheus",
            prom.url,
            "--rate-interval",
            RATE_INTERVAL,
        ],
    )
    assert result.exit_code == 1
    assert "FAIL queries (" in result.output
    assert "       hlthz-api / Request rate: empty" in result.output
    assert "       hlthz-api / In-flight requests: error" in result.output
    assert "hlthz: error: dashboards check failed: queries: hlthz-api / " in result.output
