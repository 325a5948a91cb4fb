"""The HTML report renders its charts in real headless Chromium with no network."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from hlthz.replay import Report, compare_reports, write_html
from hlthz.replay.build import build_report
from hlthz.replay.report import RunInfo
from hlthz.replay.timing import Recorder
from tests.conftest import need_binary


def _report(slow_second: int, scale: float) -> Report:
    recorder = Recorder()
    for i in range(600):
        second = i / 20
        latency = (0.02 + (1.0 if int(second) == slow_second else 0.0)) * scale
        status = 503 if i % 50 == 0 else 200
        recorder.record(
            f"GET /api/{'a' if i % 3 else 'b/{id}'}", second, 0.0004, latency * 0.9, latency, status
        )
    result = {
        "elapsed_s": 30.0,
        "interrupted": False,
        "cpu": 0.1,
        "series": list(recorder.series()),
    }
    return build_report(
        recorder,
        result,
        RunInfo(name="t", capture="c.jsonl", target="http://127.0.0.1:1", speed=1.0),
    )


def _dump_dom(chromium: str, page: Path, profile: Path) -> str:
    done = subprocess.run(
        [
            chromium,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            f"--user-data-dir={profile}",
            # Any fetch would go to a dead proxy: the page must need none.
            "--proxy-server=127.0.0.1:9",
            "--proxy-bypass-list=<-loopback>",
            "--virtual-time-budget=2000",
            "--dump-dom",
            page.as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=90,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


@pytest.mark.parametrize("with_baseline", [False, True])
def test_html_report_renders_charts_offline(tmp_path: Path, with_baseline: bool) -> None:
    chromium = need_binary("chromium", "chromium-browser", "google-chrome")
    candidate = _report(slow_second=12, scale=1.3)
    page = tmp_path / "report.html"
    if with_baseline:
        baseline = _report(slow_second=-1, scale=1.0)
        compare_reports(baseline, candidate, fail_on=["p50 > +10%"]).write_html(page)
    else:
        write_html(candidate, page)
    html = page.read_text()
    assert not re.search(r"""(src|href)\s*=""", html), "the report must not reference resources"
    dom = _dump_dom(chromium, page, tmp_path / "profile")
    assert 'data-charts-drawn="4/4"' in dom
    assert dom.count("<polyline") == (8 if with_baseline else 6)
    assert "GET /api/b/{id}" in dom
    if with_baseline:
        assert "baseline p95" in dom and "Release gate" in dom and "FAILED" in dom
