"""The generated Alertmanager config, run by the real amtool and Alertmanager."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from hlthz.alerts.generator import generate
from tests.alerts.conftest import alert_states
from tests.conftest import need_binary

pytestmark = pytest.mark.integration


@pytest.mark.parametrize(
    ("labels", "receiver"),
    [
        (["severity=critical", "alertname=APIHighErrorRate"], "hlthz-page"),
        (["severity=warning", "alertname=HighMemoryUsage"], "hlthz-ticket"),
        (["severity=info", "alertname=UnusualTrafficPattern"], "hlthz-info"),
        (["alertname=SomethingElse"], "hlthz-ticket"),
    ],
)
def test_alertmanager_routes_by_severity(tmp_path: Path, labels: list[str], receiver: str) -> None:
    generate(None, tmp_path)
    done = subprocess.run(
        [
            need_binary("amtool"),
            "config",
            "routes",
            "test",
            f"--config.file={tmp_path / 'generated/alertmanager.yml'}",
            *labels,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == receiver


def test_critical_inhibits_only_the_matching_warning(tmp_path: Path) -> None:
    need_binary("prometheus-alertmanager", "alertmanager")
    generate(None, tmp_path)
    sent = [
        {"alertname": "APIHighLatencyP95", "severity": "critical", "job": "api"},
        {"alertname": "APIHighLatencyP95", "severity": "warning", "job": "api"},
        {"alertname": "APIHighLatencyP95", "severity": "warning", "job": "other"},
        {"alertname": "HighMemoryUsage", "severity": "warning", "job": "api", "instance": "a"},
        {"alertname": "APILatencyDegraded", "severity": "info", "job": "api"},
        {"alertname": "APILatencyDegraded", "severity": "info", "job": "other"},
    ]
    expected = {
        ("APIHighLatencyP95", "critical", "api"): "active",
        ("APIHighLatencyP95", "warning", "api"): "suppressed",
        ("APIHighLatencyP95", "warning", "other"): "active",
        ("HighMemoryUsage", "warning", "api"): "active",
        ("APILatencyDegraded", "info", "api"): "suppressed",
        ("APILatencyDegraded", "info", "other"): "active",
    }

    def by_name(states: dict) -> dict[tuple[str, str, str], str]:
        return {
            (labels["alertname"], labels["severity"], labels["job"]): state
            for labels, state in ((dict(key), state) for key, state in states.items())
        }

    states = alert_states(
        tmp_path / "generated/alertmanager.yml",
        tmp_path / "am",
        sent,
        lambda now: by_name(now) == expected,
    )
    assert by_name(states) == expected
