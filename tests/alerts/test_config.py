"""The thresholds file: defaults, partial overrides, and one-line errors that name the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from hlthz.alerts import (
    DEFAULT_CONFIG_PATH,
    ConfigError,
    Duration,
    format_duration,
    load_config,
    parse_duration,
)
from hlthz.exporter import DEFAULT_QUERY_BUCKETS, DEFAULT_REQUEST_BUCKETS
from tests.alerts.conftest import WriteConfig


def test_default_buckets_equal_the_exporters() -> None:
    cfg = load_config()
    assert cfg.buckets.request_duration_seconds == tuple(DEFAULT_REQUEST_BUCKETS)
    assert cfg.buckets.query_duration_seconds == tuple(DEFAULT_QUERY_BUCKETS)


def test_default_file_matches_the_contract() -> None:
    cfg = load_config(None)
    assert cfg.source == DEFAULT_CONFIG_PATH
    a = cfg.alerts
    assert (a.critical.latency_p95.threshold, a.critical.latency_p95.for_) == (1.0, "5m")
    assert (a.critical.error_rate.threshold, a.critical.error_rate.for_) == (0.05, "2m")
    assert a.critical.pool_exhausted.for_.seconds == 60
    assert a.critical.target_missing.for_ == "1m"
    assert (a.warning.latency_p95.threshold, a.warning.latency_p95.for_.seconds) == (0.5, 600)
    assert (a.warning.memory.threshold, a.warning.cache_hit_rate.threshold) == (0.8, 0.7)
    assert (a.info.latency_degraded.ratio, a.info.latency_degraded.offset) == (1.5, "1d")
    assert (a.info.unusual_traffic.zscore, a.info.unusual_traffic.window) == (3.0, "1w")
    assert cfg.selector == "" and cfg.slo is None
    assert cfg.scrape_interval.seconds == 15 and cfg.rate_window == "5m"
    assert cfg.links.dashboard("hlthz-api") == (
        "http://localhost:3000/d/hlthz-api?var-job={{ $labels.job }}"
    )
    assert cfg.links.runbook("X").endswith("/alerts/runbooks/X.md")


def test_keys_left_out_take_the_defaults(write_config: WriteConfig) -> None:
    cfg = load_config(
        write_config(
            "alerts: {critical: {latency_p95: {threshold: 2, for: 1m}}}\n"
            "selector: 'job=~\"shop|api\"'\n"
            "slo: {availability: 0.999, window: 30d}\n"
        )
    )
    assert cfg.alerts.critical.latency_p95.threshold == 2.0
    assert cfg.alerts.critical.error_rate.threshold == 0.05  # default kept
    assert cfg.selector == 'job=~"shop|api"'
    assert cfg.matchers == ', job=~"shop|api"'
    assert cfg.slo is not None and cfg.slo.window.seconds == 30 * 86400


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "version: 1\nbogus: 1\n",
            "{path}:2: bogus: unknown key; expected one of version, selector, scrape_interval, "
            "rate_window, min_request_rate, buckets, links, alerts, slo, signals, routes, "
            "services, receivers, routing",
        ),
        (
            "alerts:\n  warning:\n    latency_p95: {threshold: 0.6, for: 10m}\n",
            "{path}:3: alerts.warning.latency_p95.threshold: 0.6 is not a bucket boundary of "
            "buckets.request_duration_seconds (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, "
            "5, 10); pick one of 0.5 or 1, or add it to the buckets",
        ),
        (
            "alerts:\n  critical:\n    error_rate:\n      threshold: 0.05\n      for: -2m\n",
            "{path}:5: alerts.critical.error_rate.for: -2m is negative; durations must be "
            "positive, like 5m",
        ),
        (
            "rate_window: 30s\n",
            "{path}:1: rate_window: 30s is shorter than 4 x scrape_interval (15s); rates over "
            "fewer than four scrapes jump and miss data, use at least 1m",
        ),
        (
            "scrape_interval: 15 seconds\n",
            "{path}:1: scrape_interval: '15 seconds' is not a Prometheus duration; write it like "
            "30s, 5m, 1h30m or 1d",
        ),
        (
            "alerts:\n  warning:\n    memory: {threshold: '80%', for: 15m}\n",
            "{path}:3: alerts.warning.memory.threshold: expected a number, got str '80%'",
        ),
        (
            "alerts:\n  critical:\n    error_rate: {threshold: 5, for: 2m}\n",
            "{path}:3: alerts.critical.error_rate.threshold: 5 is out of range; it must be below 1",
        ),
        (
            "alerts:\n  critical:\n    latency_p95: {threshold: 10, for: 5m}\n",
            "{path}:3: alerts.critical.latency_p95.threshold: 10 is the largest bucket boundary "
            "of buckets.request_duration_seconds (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, "
            "2, 5, 10), so P95 can never be measured above it; add a larger bucket or lower the "
            "threshold",
        ),
        (
            "alerts:\n  warning:\n    latency_p95: {threshold: 1, for: 10m}\n",
            "{path}:3: alerts.warning.latency_p95.threshold: 1 must be below "
            "alerts.critical.latency_p95.threshold (1) so that a warning comes before the page",
        ),
        (
            "selector: 'job=~\"a|b'\n",
            "{path}:1: selector: cannot parse matchers at 'job=~\"a|b'; write matchers like "
            'job=~"shop|api"',
        ),
        (
            "alerts:\n  info:\n    unusual_traffic: {zscore: 3, window: 4h, for: 30m}\n",
            "{path}:3: alerts.info.unusual_traffic.window: 4h is too short for zscore 3 and for "
            "30m: a sustained change would become the new normal before the alert fires; use "
            "more than 11h40m",
        ),
        (
            "links:\n  runbook_url: 'https://example.com/{name}.md'\n",
            "{path}:2: links.runbook_url: only the placeholder {{alert}} and Prometheus templates "
            "like {{{{ $labels.job }}}} may appear in braces",
        ),
        (
            "alerts: [1, 2]\n",
            "{path}:1: alerts: expected a mapping with keys critical, warning, info",
        ),
        (
            "buckets:\n  request_duration_seconds: [0.5, 1, .inf]\n",
            # hlthz.inputs refuses non-finite numbers in every file, before validation.
            "{path}:2: buckets.request_duration_seconds.2: inf is not a finite number; write a "
            "number",
        ),
        ("version: 2\n", "{path}:1: version: unsupported version int 2; write 1"),
        ("slo: {availability: 0.999, window: 1h}\n", None),
        (
            "key: [unclosed\n",
            "{path}:2: not valid YAML: expected ',' or ']', but got '<stream end>'",
        ),
    ],
)
def test_bad_config_fails_with_one_line_naming_the_key(
    write_config: WriteConfig, text: str, message: str | None
) -> None:
    path = write_config(text)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert caught.value.exit_code == 2
    text = str(caught.value)
    assert "\n" not in text
    if message is not None:
        assert text == message.format(path=path)
    else:
        assert text.startswith(f"{path}:1: slo.window: 1h is shorter than 1d")


def test_missing_file_is_a_one_line_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"no-such\.yaml: no such file"):
        load_config(tmp_path / "no-such.yaml")


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30s", 30), ("5m", 300), ("1h30m", 5400), ("1d", 86400), ("1w", 604800), ("250ms", 0.25)],
)
def test_durations_round_trip(text: str, seconds: float) -> None:
    assert parse_duration(text) == seconds
    assert format_duration(seconds) == text
    assert Duration(text).seconds == seconds
    assert Duration.from_seconds(seconds) == text


@pytest.mark.parametrize("text", ["", "5", "m5", "5m1h", "-1m", "1.5m"])
def test_malformed_durations_are_rejected(text: str) -> None:
    with pytest.raises(ValueError):
        parse_duration(text)
