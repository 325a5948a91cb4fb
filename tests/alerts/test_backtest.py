"""``hlthz alerts backtest`` on a real Prometheus whose history was backfilled with promtool.

Three hours of exporter metrics at a 15 s scrape interval for two jobs are written as
OpenMetrics text with planted episodes (``shop``: slow requests, then 5xx errors; ``cart``:
healthy throughout), turned into TSDB blocks by ``promtool tsdb create-blocks-from
openmetrics``, and served by a real Prometheus. The backtest must find exactly the planted
episodes, at the evaluations the rule manager's semantics give.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from hlthz.alerts import BacktestOptions, BacktestResult, load_incidents, run_backtest
from hlthz.alerts._backtest_report import render_html, table_lines
from hlthz.procs import ManagedProcess
from hlthz.tools.cli import main as cli
from hlthz.tools.stack.services import backfill_openmetrics, start_prometheus
from tests.conftest import need_binary
from tests.replay.test_html import _dump_dom as dump_dom

pytestmark = pytest.mark.integration

STEP = 15
CONFIG = """\
version: 1
scrape_interval: 15s
rate_window: 1m
min_request_rate: 0.5
signals: []
alerts:
  critical:
    latency_p95: {threshold: 1, for: 2m}
    error_rate: {threshold: 0.05, for: 1m}
  warning:
    latency_p95: {threshold: 0.5, for: 3m}
"""
# The what-if: the warning at 0.25 s (stricter), the critical error rate waits longer.
AGAINST = CONFIG.replace("threshold: 0.5, for: 3m", "threshold: 0.25, for: 3m").replace(
    "threshold: 0.05, for: 1m", "threshold: 0.05, for: 20m"
)
RPS = 4  # requests per second per job
BUCKETS = ("0.25", "0.5", "1", "+Inf")


class History:
    """The planted history: [t0, t1] and the fault windows (Unix seconds, multiples of 15)."""

    def __init__(self) -> None:
        now = int(time.time()) // 3600 * 3600
        self.t1 = now - 3600
        self.t0 = self.t1 - 3 * 3600
        self.slow = (self.t0 + 1800, self.t0 + 3600)  # shop: requests take 0.7 s
        self.errors = (self.t0 + 5400, self.t0 + 6300)  # shop: half of them fail
        self.flap = (self.t0 + 7200, self.t0 + 7215)  # shop errors too short for `for`

    def openmetrics(self) -> str:
        lines = []
        # "unknown": an OpenMetrics counter family would add a _total suffix to the names.
        for family in (
            "http_request_duration_seconds_bucket",
            "http_request_duration_seconds_count",
            "up",
        ):
            lines.append(f"# TYPE {family} unknown")
        totals: dict[str, float] = {}
        series: dict[str, list[str]] = {}

        def add(key: str, t: int, value: float) -> None:
            series.setdefault(key, []).append(f"{key} {value:g} {t}")

        for t in range(self.t0, self.t1 + 1, STEP):
            for job in ("shop", "cart"):
                slow = job == "shop" and self.slow[0] < t <= self.slow[1]
                failing = job == "shop" and any(a < t <= b for a, b in (self.errors, self.flap))
                n = RPS * STEP if t > self.t0 else 0
                for le in BUCKETS:
                    k = f'http_request_duration_seconds_bucket{{job="{job}",le="{le}"}}'
                    # 0.1 s requests fall in every bucket, 0.7 s ones only from le="1" up.
                    inside = n if not slow or le in ("1", "+Inf") else 0
                    totals[k] = totals.get(k, 0) + inside
                    add(k, t, totals[k])
                errors = n // 2 if failing else 0
                for code, count in (("200", n - errors), ("500", errors)):
                    k = f'http_request_duration_seconds_count{{job="{job}",status_code="{code}"}}'
                    totals[k] = totals.get(k, 0) + count
                    add(k, t, totals[k])
                add(f'up{{job="{job}",instance="{job}:8000"}}', t, 1)
        # OpenMetrics wants each series' samples together.
        for samples in series.values():
            lines += samples
        lines.append("# EOF")
        return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def history() -> History:
    return History()


@pytest.fixture(scope="module")
def backfilled(tmp_path_factory: pytest.TempPathFactory, history: History) -> Iterator[str]:
    need_binary("promtool")
    need_binary("prometheus")
    work = tmp_path_factory.mktemp("backfilled")
    source = work / "history.om"
    source.write_text(history.openmetrics())
    backfill_openmetrics(source, work / "prometheus-data", timeout=300)
    config = work / "prometheus.yml"
    config.write_text(yaml.safe_dump({"global": {"scrape_interval": "15s"}}))
    proc: ManagedProcess = start_prometheus(config, work)
    try:
        yield str(proc.url)
    finally:
        proc.stop()


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    root = tmp_path_factory.mktemp("project")
    (root / "hlthz.yaml").write_text(CONFIG)
    (root / "what-if.yaml").write_text(AGAINST)
    return root / "hlthz.yaml", root / "what-if.yaml"


def _episodes(doc: dict, name: str, severity: str) -> list[tuple[str, float, float | None]]:
    for alert in doc["alerts"]:
        if (alert["name"], alert["severity"]) == (name, severity):
            return [(e["labels"]["job"], e["start"], e["end"]) for e in alert["episodes"]]
    return []


def test_backtest_finds_exactly_the_planted_episodes(
    backfilled: str, history: History, project: tuple[Path, Path], tmp_path: Path
) -> None:
    incidents = tmp_path / "incidents.yaml"
    incidents.write_text(
        yaml.safe_dump(
            {
                "hlthz_incidents": 1,
                "incidents": [
                    {
                        "name": "slow shop",
                        "start": history.slow[0],
                        "end": history.slow[1],
                        "alerts": ["APIHighLatencyP95:warning"],
                    },
                    {
                        "name": "failing shop",
                        "start": history.errors[0],
                        "end": history.errors[1],
                        "alerts": ["APIHighErrorRate"],
                    },
                ],
            }
        )
    )
    out, page = tmp_path / "backtest.json", tmp_path / "backtest.html"
    result = CliRunner().invoke(
        cli,
        [
            "alerts",
            "backtest",
            "--prometheus",
            backfilled,
            "--start",
            str(history.t0),
            "--end",
            str(history.t1),
            "--config",
            str(project[0]),
            "--incidents",
            str(incidents),
            "--json",
            str(out),
            "--html",
            str(page),
        ],
    )
    assert result.exit_code == 0, result.output
    doc = json.loads(out.read_text())
    assert doc["hlthz_backtest"] == 1 and doc["interval"] == STEP
    fired = {(a["name"], a["severity"]) for a in doc["alerts"] if a["episodes"]}
    assert fired == {("APIHighLatencyP95", "warning"), ("APIHighErrorRate", "critical")}
    # The condition holds from the first evaluation after the fault began (the 1m rate
    # window then holds one slow scrape interval of four) to 45 s after it ended (the last
    # window still holding one); the alert fires `for` after the first, resolves at the next.
    slow_from, slow_to = history.slow
    assert _episodes(doc, "APIHighLatencyP95", "warning") == [
        ("shop", slow_from + STEP + 180, slow_to + 60)
    ]
    err_from, err_to = history.errors
    assert _episodes(doc, "APIHighErrorRate", "critical") == [
        ("shop", err_from + STEP + 60, err_to + 60)
    ]
    # The 15 s error burst at history.flap holds the condition 45 s, under `for`: no episode.
    latency = next(
        a for a in doc["alerts"] if a["severity"] == "warning" and a["name"] == "APIHighLatencyP95"
    )
    assert latency["count"] == 1 and latency["firing_seconds"] == slow_to + 60 - (
        slow_from + STEP + 180
    )
    assert latency["quality"]["precision"] == 1.0 and latency["quality"]["recall"] == 1.0
    assert latency["quality"]["detection_delay"] == STEP + 180
    assert latency["quality"]["reset_time"] == 60
    assert "APIHighLatencyP95" in result.output and "tickets/week" in result.output
    html = page.read_text()
    assert not re.search(r"""(src|href)\s*=""", html), "the page must not reference resources"
    _formats_doc_matches(doc, tmp_path)


def _example(name: str) -> dict:
    text = (Path(__file__).resolve().parents[2] / "docs" / "formats.md").read_text()
    match = re.search(rf"<!-- example: {name} -->\n```json\n(.*?)\n```", text, re.S)
    assert match, f"docs/formats.md has no {name!r} example"
    return dict(json.loads(match.group(1)))


def _formats_doc_matches(doc: dict, tmp_path: Path) -> None:
    """docs/formats.md's examples have the keys the backtest writes and load as documented."""
    example = _example("backtest")
    assert set(example) == set(doc)
    written = doc["alerts"][0]
    for alert in example["alerts"]:
        assert set(alert) | {"quality"} == set(written) | {"quality"}
        for episode in alert["episodes"]:
            assert set(episode) == set(written["episodes"][0])
    assert set(example["alerts"][0]["quality"]) == set(written["quality"])
    incidents = tmp_path / "example.json"
    incidents.write_text(json.dumps(_example("incidents")))
    loaded = load_incidents(incidents)
    assert loaded[0].alerts == (
        "APIHighLatencyP95:warning",
        "APIHighLatencyP95:critical",
    )


@pytest.fixture(scope="module")
def what_if(backfilled: str, history: History, project: tuple[Path, Path]) -> BacktestResult:
    return run_backtest(
        BacktestOptions(
            prometheus=backfilled,
            start=history.t0,
            end=history.t1,
            config=project[0],
            against=project[1],
        )
    )


def test_what_if_shows_both_files_side_by_side(
    what_if: BacktestResult, project: tuple[Path, Path]
) -> None:
    result = what_if
    base, what_if = result.runs
    # A warning at 0.25 s: the slow shop's 0.7 s requests still fire it, as before.
    assert [e.labels["job"] for e in what_if.alert("APIHighLatencyP95", "warning").episodes] == [
        "shop"
    ]
    # A 20m `for` on a 15 min error burst: the page is gone.
    assert base.alert("APIHighErrorRate", "critical").episodes
    assert what_if.alert("APIHighErrorRate", "critical").episodes == []
    lines = "\n".join(table_lines(result))
    assert "what-if" in lines and str(project[1]) in lines


def test_html_timeline_draws_every_episode_in_chromium(
    what_if: BacktestResult, tmp_path: Path
) -> None:
    chromium = need_binary("chromium", "chromium-browser", "google-chrome")
    result = what_if
    page = tmp_path / "timeline.html"
    page.write_text(render_html(result))
    dom = dump_dom(chromium, page, tmp_path / "profile")
    bars = sum(len(a.episodes) for run in result.runs for a in run.alerts)
    assert bars == 3
    assert f'data-timeline-drawn="{bars}/{bars}"' in dom
    assert "APIHighErrorRate job=shop" in dom


def test_bad_input_is_one_line_exit_2(project: tuple[Path, Path], tmp_path: Path) -> None:
    runner = CliRunner()
    backwards = tmp_path / "backwards.yaml"
    backwards.write_text("hlthz_incidents: 1\nincidents: [{start: 5, end: 1}]\n")
    other = tmp_path / "other.json"
    other.write_text('{"hlthz_incidents": 2, "incidents": []}')
    base = ["alerts", "backtest", "--config", str(project[0])]
    for args, expected in (
        (["--prometheus", "http://127.0.0.1:9", "--start", "yesterday"], "--start: 'yesterday'"),
        (
            ["--prometheus", "http://127.0.0.1:9", "--start", "now-1h", "--interval", "5x"],
            "--interval '5x': not a Prometheus duration",
        ),
        (
            ["--prometheus", "http://127.0.0.1:9", "--start", "now", "--end", "now-1h"],
            "--end must be after --start",
        ),
        (
            [
                "--prometheus",
                "http://127.0.0.1:9",
                "--start",
                "now-1h",
                "--incidents",
                str(backwards),
            ],
            f"{backwards}: incidents[0]: end is before start",
        ),
        (
            ["--prometheus", "http://127.0.0.1:9", "--start", "now-1h", "--incidents", str(other)],
            f'{other}: not an incident file v1 (no "hlthz_incidents": 1)',
        ),
        (["--prometheus", "http://[::1", "--start", "now-1h"], "--prometheus 'http://[::1'"),
    ):
        result = runner.invoke(cli, [*base, *args])
        assert result.exit_code == 2, (args, result.output)
        lines = result.output.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("hlthz: error: "), result.output
        assert expected in lines[0], lines[0]


def test_unreachable_prometheus_and_bad_url_are_one_line_exit_2(project: tuple[Path, Path]) -> None:
    runner = CliRunner()
    for url, expected in (
        ("http://127.0.0.1:9", "cannot reach Prometheus at http://127.0.0.1:9"),
        ("ftp://x", "--prometheus 'ftp://x'"),
    ):
        result = runner.invoke(
            cli,
            [
                "alerts",
                "backtest",
                "--prometheus",
                url,
                "--start",
                "now-1h",
                "--config",
                str(project[0]),
            ],
        )
        assert result.exit_code == 2, result.output
        lines = result.output.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("hlthz: error: ") and expected in lines[0]
