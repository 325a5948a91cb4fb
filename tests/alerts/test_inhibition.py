"""The backtest's model of Alertmanager's inhibition: against a real Alertmanager given the same
alerts, and end to end on a real Prometheus whose history makes a critical alert cover its
warning."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from hlthz.alerts import BacktestOptions, load_config, run_backtest
from hlthz.alerts._backtest_report import table_lines
from hlthz.alerts._inhibition import inhibit, inhibit_rules
from hlthz.alerts.backtest import AlertBacktest, AlertEpisode
from hlthz.alerts.routing import alertmanager_config
from hlthz.tools.stack.services import backfill_openmetrics, start_prometheus
from tests.alerts.conftest import alert_states
from tests.conftest import need_binary

pytestmark = pytest.mark.integration

#: A project rule in each older form Alertmanager still reads: unquoted matchers, and
#: ``source_match`` / ``target_match_re`` maps.
EXTRA_RULES = """\
inhibit_rules:
  - source_matchers: [alertname=APIHighErrorRate, severity=critical]
    target_matchers: ['alertname=~"APIHighLatency.*"']
    equal: [job]
  - source_match: {alertname: APIPoolExhausted}
    target_match_re: {alertname: "DB.*|APIDatabase.*"}
    equal: [job, instance]
"""
CONFIG = "version: 1\nscrape_interval: 15s\nrate_window: 1m\nsignals: []\n"

#: Label sets firing at once, chosen so that every rule mutes something and spares something.
FIRING = [
    {"alertname": "APIHighLatencyP95", "severity": "critical", "job": "api"},
    {"alertname": "APIHighLatencyP95", "severity": "warning", "job": "api"},
    {"alertname": "APIHighLatencyP95", "severity": "warning", "job": "other"},
    {"alertname": "APIHighLatencyP95", "severity": "warning", "job": "api", "route": "/a"},
    {"alertname": "APILatencyDegraded", "severity": "info", "job": "api"},
    {"alertname": "APILatencyDegraded", "severity": "info", "job": "other"},
    {"alertname": "APITargetMissing", "severity": "critical", "job": "gone"},
    {"alertname": "UnusualTrafficPattern", "severity": "info", "job": "gone"},
    {"alertname": "APIHighErrorRate", "severity": "critical", "job": "other"},
    {"alertname": "APIHighLatencyP99", "severity": "warning", "job": "other"},
    {"alertname": "APIPoolExhausted", "severity": "warning", "job": "db", "instance": "a"},
    {"alertname": "DBSlowQueries", "severity": "warning", "job": "db", "instance": "a"},
    {"alertname": "DBSlowQueries", "severity": "warning", "job": "db", "instance": "b"},
]


def _project(tmp_path: Path) -> Any:
    # Extra inhibit rules live in the receivers file, copied verbatim (docs/alerts.md).
    (tmp_path / "alertmanager-receivers.yml").write_text("receivers: []\n" + EXTRA_RULES)
    path = tmp_path / "hlthz.yaml"
    path.write_text(CONFIG + "receivers: alertmanager-receivers.yml\n")
    return load_config(path)


def _key(labels: dict[str, str]) -> tuple[tuple[str, str], ...]:
    return tuple(sorted(labels.items()))


def test_the_model_mutes_what_a_real_alertmanager_mutes(tmp_path: Path) -> None:
    need_binary("prometheus-alertmanager", "alertmanager")
    config = _project(tmp_path)
    document = alertmanager_config(config)
    rules, notes = inhibit_rules(document)
    assert notes == [] and len(rules) == 5
    # The model: every label set fires over the same minute.
    alerts = [
        AlertBacktest(labels["alertname"], labels["severity"], [AlertEpisode(labels, 0.0, 60.0)])
        for labels in FIRING
    ]
    inhibit(alerts, rules, range_end=60.0)
    modelled = {_key(e.labels) for a in alerts for e in a.episodes if e.inhibited}

    config_file = tmp_path / "alertmanager.yml"
    config_file.write_text(yaml.safe_dump(document))
    state = alert_states(
        config_file,
        tmp_path / "am",
        FIRING,
        lambda now: sum(s == "suppressed" for s in now.values()) >= len(modelled),
    )
    real = {key for key, value in state.items() if value == "suppressed"}
    assert len(state) == len(FIRING)
    assert modelled == real
    # Every rule mutes something and the set is not everything.
    assert 5 <= len(real) < len(FIRING)


def test_only_an_episode_muted_for_all_of_its_time_is_inhibited() -> None:
    rules, _ = inhibit_rules(alertmanager_config(load_config(None)))
    critical = {"alertname": "APIHighLatencyP95", "severity": "critical", "job": "api"}
    warning = {**critical, "severity": "warning"}
    page = AlertBacktest("APIHighLatencyP95", "critical")
    page.episodes = [AlertEpisode(critical, 100.0, 200.0), AlertEpisode(critical, 190.0, None)]
    ticket = AlertBacktest("APIHighLatencyP95", "warning")
    ticket.episodes = [
        AlertEpisode(warning, 120.0, 180.0),  # inside the first page
        AlertEpisode(warning, 150.0, 260.0),  # covered by the two pages together
        AlertEpisode(warning, 50.0, 150.0),  # starts before any page: it notifies
        AlertEpisode({**warning, "job": "shop"}, 120.0, 180.0),  # another job
    ]
    inhibit([page, ticket], rules, range_end=300.0)
    assert [e.inhibited for e in ticket.episodes] == [True, True, False, False]
    assert [e.inhibited for e in page.episodes] == [False, False]
    assert ticket.inhibited == 2 and ticket.notified_per_week(7 * 86400) == 2


def test_two_rules_muting_one_after_the_other_mute_together() -> None:
    rules, _ = inhibit_rules(
        {
            "inhibit_rules": [
                {"source_matchers": ["alertname=A"], "target_matchers": ["alertname=T"]},
                {"source_match": {"alertname": "B"}, "target_match": {"alertname": "T"}},
            ]
        }
    )
    first = AlertBacktest("A", "critical", [AlertEpisode({"alertname": "A"}, 0.0, 50.0)])
    then = AlertBacktest("B", "critical", [AlertEpisode({"alertname": "B"}, 40.0, 100.0)])
    target = AlertBacktest("T", "warning", [AlertEpisode({"alertname": "T"}, 10.0, 90.0)])
    inhibit([first, then, target], rules, range_end=100.0)
    assert target.episodes[0].inhibited and target.inhibited == 1


def test_a_rule_the_backtest_cannot_read_is_named_not_fatal() -> None:
    unreadable: list[object] = [
        {"source_matchers": ['job=~"("'], "target_matchers": ["a=b"]},
        "severity=critical",
        {"source_matchers": "severity=critical"},
        {"source_match": ["severity", "critical"]},
        {"source_matchers": ["a=b"], "equal": "job"},
    ]
    rules, notes = inhibit_rules({"inhibit_rules": unreadable})
    assert rules == [] and len(notes) == len(unreadable)
    for i, note in enumerate(notes):
        assert note.startswith(f"inhibit_rules[{i}] is not modelled by the backtest: "), note


def _history(t0: int, t1: int, slow: tuple[int, int]) -> str:
    """Requests of job ``pay`` take 0.1 s, and 1.5 s inside ``slow``: the latency P95 passes
    both the warning (0.5 s) and the critical (1 s) threshold there."""
    lines = [
        "# TYPE http_request_duration_seconds_bucket unknown",
        "# TYPE http_request_duration_seconds_count unknown",
        "# TYPE up unknown",
    ]
    totals: dict[str, float] = {}
    series: dict[str, list[str]] = {}
    for t in range(t0, t1 + 1, 15):
        n = 60 if t > t0 else 0
        late = slow[0] < t <= slow[1]
        for le in ("0.25", "0.5", "1", "2.5", "+Inf"):
            key = f'http_request_duration_seconds_bucket{{job="pay",le="{le}"}}'
            totals[key] = totals.get(key, 0) + (n if not late or le in ("2.5", "+Inf") else 0)
            series.setdefault(key, []).append(f"{key} {totals[key]:g} {t}")
        key = 'http_request_duration_seconds_count{job="pay",status_code="200"}'
        totals[key] = totals.get(key, 0) + n
        series.setdefault(key, []).append(f"{key} {totals[key]:g} {t}")
        series.setdefault("up", []).append(f'up{{job="pay",instance="pay:8000"}} 1 {t}')
    for samples in series.values():
        lines += samples
    return "\n".join([*lines, "# EOF"]) + "\n"


def test_backtest_counts_a_warning_its_page_covers_as_inhibited(tmp_path: Path) -> None:
    need_binary("promtool")
    need_binary("prometheus")
    t1 = int(time.time()) // 3600 * 3600 - 3600
    t0 = t1 - 3600
    slow = (t0 + 900, t0 + 1800)
    source = tmp_path / "history.om"
    source.write_text(_history(t0, t1, slow))
    backfill_openmetrics(source, tmp_path / "prometheus-data", timeout=300)
    prometheus_yml = tmp_path / "prometheus.yml"
    prometheus_yml.write_text(yaml.safe_dump({"global": {"scrape_interval": "15s"}}))
    project = tmp_path / "hlthz.yaml"
    project.write_text(
        CONFIG
        + "min_request_rate: 0.5\nalerts:\n  critical:\n    latency_p95: {threshold: 1, for: 2m}\n"
        + "  warning:\n    latency_p95: {threshold: 0.5, for: 3m}\n"
    )
    with start_prometheus(prometheus_yml, tmp_path) as prom:
        result = run_backtest(
            BacktestOptions(prometheus=str(prom.url), start=t0, end=t1, config=project)
        )
    run = result.runs[0]
    page = run.alert("APIHighLatencyP95", "critical")
    ticket = run.alert("APIHighLatencyP95", "warning")
    assert page is not None and ticket is not None
    # Both fire for the slow quarter hour; the page's shorter `for` starts it a minute earlier
    # and both resolve together, so Alertmanager would never send the warning.
    assert [(e.start, e.end, e.inhibited) for e in page.episodes] == [
        (slow[0] + 15 + 120, slow[1] + 60, False)
    ]
    assert [(e.start, e.end, e.inhibited) for e in ticket.episodes] == [
        (slow[0] + 15 + 180, slow[1] + 60, True)
    ]
    per_week = run.notifications_per_week(result.seconds)
    assert per_week["pages"] == 7 * 24 and per_week["tickets"] == 0
    doc = result.to_json()
    warning = next(a for a in doc["alerts"] if a["severity"] == "warning" and a["count"])
    assert warning["inhibited"] == 1 and warning["episodes"][0]["inhibited"] is True
    table = "\n".join(table_lines(result))
    assert "inhibited" in table and "tickets/week 0.0" in table
