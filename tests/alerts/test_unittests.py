"""The promtool test generator: its Go-template twins, its series notation, and the tests it
writes for selectors and SLOs passing under the real promtool."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from hlthz.alerts._promtool import counter, gauge, render
from hlthz.alerts.generator import generate
from hlthz.alerts.humanize import humanize, humanize_duration, humanize_percentage
from hlthz.alerts.selector import absent_labels, parse_selector, sample_labels
from tests.alerts.conftest import WriteConfig
from tests.conftest import need_binary


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (0, "0s"),
        (0.5, "500ms"),
        (0.0005, "500us"),
        (1.1666666666666667, "1.167s"),
        (90, "1m 30s"),
        (3 * 3600 + 4 * 60 + 5, "3h 4m 5s"),
        (2 * 86400 + 3 * 3600 + 4 * 60 + 5, "2d 3h 4m 5s"),
    ],
)
def test_humanize_duration_matches_prometheus(value: float, text: str) -> None:
    assert humanize_duration(value) == text


def test_humanize_and_percentage_match_prometheus() -> None:
    assert humanize(1234567) == "1.235M"
    assert humanize(0.05) == "50m"
    assert humanize(20) == "20"
    assert humanize_percentage(0.055) == "5.5%"
    assert humanize_percentage(0.84999999) == "85%"


def test_render_expands_the_template_subset_the_rules_use() -> None:
    template = (
        "{{ if $labels.instance }}Target {{ $labels.instance }}{{ else if $labels.job }}Job "
        "{{ $labels.job }}{{ else }}Nothing{{ end }}: {{ $value | humanizePercentage }} "
        "(up = {{ $value }})"
    )
    assert render(template, {"job": "api", "instance": "a:1"}, 0.5) == "Target a:1: 50% (up = 0.5)"
    assert render(template, {"job": "api"}, 1.0) == "Job api: 100% (up = 1)"
    assert render(template, {}, 0.0) == "Nothing: 0% (up = 0)"


def test_series_notation_continues_without_a_counter_reset() -> None:
    # 56.4 added 42 times is not 2368.8 in floating point: the next segment starts from the sum.
    text = counter([(56.4, 42), (0.0, 42)])
    first, second = text.split()
    assert first == "0+56.4x42"
    start = float(second.split("+")[0])
    total = 0.0
    for _ in range(42):
        total += 56.4
    assert start == total
    assert gauge([(1, 3), ("stale", 1)]) == "1+0x2 stale"


def test_selector_labels() -> None:
    matchers = parse_selector('job=~"shop|api", env!="dev", team="core"')
    assert [str(m) for m in matchers] == ['job=~"shop|api"', 'env!="dev"', 'team="core"']
    labels = sample_labels(matchers, {"job": "web", "instance": "i"})
    assert labels == {"job": "shop", "instance": "i", "env": "api", "team": "core"}
    assert absent_labels(matchers) == {"team": "core"}


@pytest.mark.integration
def test_selector_and_slo_tests_pass_under_promtool(
    write_config: WriteConfig, tmp_path: Path
) -> None:
    promtool = need_binary("promtool")
    path = write_config(
        'selector: \'job=~"shop|api", env="prod"\'\nslo: {availability: 0.999, window: 30d}\n'
    )
    generate(path, tmp_path)
    target = yaml.safe_load((tmp_path / "generated/tests/target.yml").read_text())
    last = target["tests"][-1]["alert_rule_test"][-1]["exp_alerts"][0]["exp_labels"]
    assert last == {"env": "prod", "severity": "critical"}  # absent(up{...}) keeps env="prod"
    done = subprocess.run(
        [promtool, "test", "rules", "tests/slo.yml", "tests/target.yml", "tests/pool.yml"],
        cwd=tmp_path / "generated",
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


EDGE_CONFIG = """\
selector: 'job="shop"'
min_request_rate: 0
buckets:
  request_duration_seconds: [0.0025, 0.005, 0.01]
alerts:
  critical:
    latency_p95: {threshold: 0.005, for: 0s}
    error_rate: {threshold: 0.5, for: 0s}
    pool_exhausted: {for: 0s}
    target_missing: {for: 0s, lookback: 10m}
  warning:
    latency_p95: {threshold: 0.0025, for: 0s}
    memory: {threshold: 0.5, for: 0s}
    cache_hit_rate: {threshold: 0.95, for: 0s}
  info:
    latency_degraded: {ratio: 3, offset: 2h, for: 0s}
    unusual_traffic: {zscore: 2, window: 1d, for: 0s}
"""


@pytest.mark.integration
def test_edge_config_passes_its_own_tests(write_config: WriteConfig, tmp_path: Path) -> None:
    """No ``for``, no traffic floor, the smallest buckets as thresholds, one job selected."""
    promtool = need_binary("promtool")
    generate(write_config(EDGE_CONFIG), tmp_path)
    tests = sorted(p.name for p in (tmp_path / "generated/tests").glob("*.yml"))
    done = subprocess.run(
        [promtool, "test", "rules", *(f"tests/{t}" for t in tests)],
        cwd=tmp_path / "generated",
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count("SUCCESS") == len(tests) == 8
