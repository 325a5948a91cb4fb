"""Apps nobody here wrote, installed from PyPI, scraped by a real Prometheus: ``hlthz init
--from-metrics`` finds what they emit, and ``dashboards check`` passes on what it generates.

httpbin (Flask) and httpbinx (FastAPI) have no database, pool, cache or job queue: the
dashboards for their detected signals have data in every panel, and the packaged defaults
(every family) skip those panels saying the app does not emit them, instead of failing them.
"""

from __future__ import annotations

import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from hlthz.alerts import load_config
from hlthz.dashboards import DashboardSettings, check_dashboards, generate, query_dashboards
from hlthz.dashboards.live import SKIPPED
from hlthz.procs import LOOPBACK, ManagedProcess, free_port, http_ok, wait_until
from hlthz.tools.cli import main
from tests.conftest import prom_query

pytestmark = [pytest.mark.integration, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
RUNNER = Path(__file__).with_name("pypi_apps.py")
RATE_INTERVAL = "10s"
# Installed from the package index into a venv of their own: their pins (httpbin wants
# greenlet < 3 on Python 3.11) must not touch the dev venv.
PACKAGES = ["httpbin==0.10.4", "httpbinx==1.13.1", "prometheus-client>=0.20,<1"]
PATHS = ["/get", "/status/200", "/status/201", "/status/404", "/status/503", "/anything/a"]


@pytest.fixture(scope="module")
def app_venv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, Path]]:
    """(python of a venv with both apps, a folder to put on PYTHONPATH for hlthz)."""
    root = tmp_path_factory.mktemp("pypi-apps")
    venv = root / "venv"
    subprocess.run([sys.executable, "-m", "venv", venv], check=True, timeout=120)
    python = venv / "bin" / "python"
    done = subprocess.run(
        [python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", *PACKAGES],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    # hlthz as the wheel lays it out (hlthz/ + hlthz/<part>), from this checkout's sources.
    src = root / "src" / "hlthz"
    src.mkdir(parents=True)
    for path in (REPO / "hlthz").glob("*.py"):
        (src / path.name).symlink_to(path)
    for part in ("exporter", "alerts", "replay"):
        (src / part).symlink_to(REPO / part)
    yield python, src.parent


def _send(base: str) -> None:
    for path in PATHS:
        try:
            with urllib.request.urlopen(base + path, timeout=10) as response:
                response.read()
        except urllib.error.HTTPError as exc:
            exc.read()


@pytest.mark.parametrize("app", ["flask-httpbin", "fastapi-httpbinx"])
def test_dashboards_check_passes_with_the_signals_init_detects(
    app: str, app_venv: tuple[Path, Path], prometheus, tmp_path: Path
) -> None:
    python, pythonpath = app_venv
    port = free_port()
    base = f"http://{LOOPBACK}:{port}"
    served = ManagedProcess(
        app,
        [str(python), str(RUNNER), app, str(port)],
        log_path=tmp_path / f"{app}.log",
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(pythonpath)},
        ready=lambda: http_ok(base + "/get"),
        ready_timeout=60,
    )
    with served.start():
        _send(base)
        project = tmp_path / "project"
        result = CliRunner().invoke(
            main, ["init", str(project), "--from-metrics", f"{base}/metrics"]
        )
        assert result.exit_code == 0, result.output
        assert f"signals detected from {base}/metrics: none" in result.output
        config = project / "hlthz.yaml"
        assert "\nsignals: []\n" in config.read_text()
        assert load_config(config).signals == ()

        result = CliRunner().invoke(main, ["dashboards", "generate", "--config", str(config)])
        assert result.exit_code == 0, result.output
        boards = sorted(p.name for p in (project / "dashboards").glob("*.json"))
        # No database dashboard: the app has no database or pool.
        assert boards == ["hlthz-api.json", "hlthz-cache-jobs.json", "hlthz-release.json"]

        prom = prometheus([f"{LOOPBACK}:{port}"], job=app)

        def scraped() -> bool:
            _send(base)  # keep traffic flowing while waiting for the scrapes
            expr = f"count_over_time(http_request_duration_seconds_count[{RATE_INTERVAL}])"
            return any(float(r["value"][1]) >= 2 for r in prom_query(prom.url, expr))

        wait_until(scraped, timeout=60, interval=0.3, what="two scrapes of the app")
        _send(base)
        time.sleep(1.2)  # one more scrape with the last traffic in it

        result = CliRunner().invoke(
            main,
            [
                "dashboards",
                "check",
                "--config",
                str(config),
                "--prometheus",
                prom.url,
                "--job",
                app,
                "--rate-interval",
                RATE_INTERVAL,
                "--verbose",
            ],
        )
        assert result.exit_code == 0, result.output + served.log_tail()
        lines = result.output.splitlines()
        assert lines[:2] == ["ok   lint", "ok   signals (every panel's metric family is emitted)"]
        assert lines[2].startswith("ok   queries (") and "empty (" not in lines[2]

        # The packaged defaults draw every family: what the app does not emit is skipped with
        # the reason, never reported as a broken query.
        everything = tmp_path / "every-signal"
        generate(None, everything)
        report = check_dashboards(
            everything,
            settings=DashboardSettings(),
            prometheus=prom.url,
            job=app,
            rate_interval=RATE_INTERVAL,
        )
        assert report.ok, "\n".join(report.lines(verbose=True))
        summary = report.step("signals").summary
        for signal in ("database", "pool", "cache", "jobs"):
            assert f"this app does not emit {signal} metrics" in summary, summary
        results = query_dashboards(
            everything, prometheus=prom.url, job=app, rate_interval=RATE_INTERVAL
        )
        skipped = {r.panel for r in results if r.status == SKIPPED}
        assert {
            "Query P95 by query type",
            "Pool utilisation",
            "Cache hit share",
            "Queue depth",
        } <= skipped
        # Requests are emitted: no panel reading them is skipped.
        assert not [r for r in results if r.dashboard == "hlthz-api" and r.status == SKIPPED]
