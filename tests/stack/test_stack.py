"""``hlthz stack``: generated configs, and a real Prometheus + Alertmanager + sink on loopback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import urllib.request
from pathlib import Path
from typing import Any

import pytest
import yaml

from hlthz.errors import ServiceError, UsageError
from hlthz.procs import port_open, wait_until
from hlthz.tools.stack.control import (
    StackError,
    StackOptions,
    alertmanager_config,
    prometheus_config,
    read_state,
    scrape_target,
    stack_down,
    stack_status,
    stack_up,
)
from hlthz.tools.stack.webhook_sink import iter_alerts, read_notifications
from tests.conftest import need_binary, prom_query
from tests.procs import leftover_groups

# The shape `hlthz alerts generate` writes: severity routes, placeholder receivers, inhibition.
ROUTING: dict[str, Any] = {
    "global": {"resolve_timeout": "5m", "smtp_smarthost": "mail.example.com:25"},
    "templates": ["templates/*.tmpl"],
    "route": {
        "receiver": "default",
        "group_by": ["alertname", "job"],
        "group_wait": "30s",
        "group_interval": "5m",
        "repeat_interval": "4h",
        "routes": [
            {
                "matchers": ['severity="critical"'],
                "receiver": "critical",
                "group_wait": "10s",
                "routes": [
                    {"matchers": ['job="x"'], "receiver": "critical", "repeat_interval": "1h"}
                ],
            },
            {"matchers": ['severity="warning"'], "receiver": "warning"},
        ],
    },
    "receivers": [
        {"name": "default"},
        {"name": "critical", "email_configs": [{"to": "oncall@example.com"}]},
        {"name": "warning", "slack_configs": [{"channel": "#x", "api_url": "http://x"}]},
    ],
    "inhibit_rules": [
        {
            "source_matchers": ['severity="critical"'],
            "target_matchers": ['severity="warning"'],
            "equal": ["alertname", "job"],
        }
    ],
}

RULES = {
    "groups": [
        {
            "name": "test",
            "rules": [
                {
                    "alert": "APITargetMissing",
                    "expr": "up == 0",
                    "for": "1s",
                    "labels": {"severity": "critical"},
                    "annotations": {"summary": "target {{ $labels.instance }} is down"},
                }
            ],
        }
    ]
}


def _get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=5) as response:
        return json.load(response)


def test_alertmanager_config_sends_every_receiver_to_the_sink(tmp_path: Path) -> None:
    config = alertmanager_config(
        ROUTING, "http://127.0.0.1:9095", group_wait="1s", group_interval="2s", repeat_interval="3s"
    )
    assert [r["name"] for r in config["receivers"]] == ["default", "critical", "warning"]
    for receiver in config["receivers"]:
        assert receiver == {
            "name": receiver["name"],
            "webhook_configs": [
                {"url": f"http://127.0.0.1:9095/{receiver['name']}", "send_resolved": True}
            ],
        }
    # Routing and inhibition are kept; timings overridden wherever they were set.
    route = config["route"]
    assert route["group_by"] == ["alertname", "job"]
    assert (route["group_wait"], route["group_interval"], route["repeat_interval"]) == (
        "1s",
        "2s",
        "3s",
    )
    assert route["routes"][0]["group_wait"] == "1s"
    assert route["routes"][0]["routes"][0]["repeat_interval"] == "3s"
    assert "group_wait" not in route["routes"][1]
    assert config["inhibit_rules"] == ROUTING["inhibit_rules"]
    assert config["global"] == {"resolve_timeout": "5m"}
    assert "templates" not in config
    assert ROUTING["receivers"][1]["email_configs"]  # the input is left alone

    amtool = need_binary("amtool")
    path = tmp_path / "alertmanager.yml"
    path.write_text(yaml.safe_dump(config))
    result = subprocess.run([amtool, "check-config", str(path)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_prometheus_config_scrapes_the_target_and_loads_rules(tmp_path: Path) -> None:
    assert scrape_target("http://127.0.0.1:8000") == ("http", "127.0.0.1:8000", "/metrics")
    assert scrape_target("127.0.0.1:8000/custom/metrics") == (
        "http",
        "127.0.0.1:8000",
        "/custom/metrics",
    )
    assert scrape_target("https://localhost") == ("https", "localhost:443", "/metrics")
    with pytest.raises(UsageError, match="--target 'ftp://x'"):
        scrape_target("ftp://x")

    rules = tmp_path / "rules.yml"
    rules.write_text(yaml.safe_dump(RULES))
    config = prometheus_config(
        job="shop",
        target_url="http://127.0.0.1:8000/m",
        alertmanager="127.0.0.1:9093",
        rule_files=[rules],
        scrape_interval="1s",
        evaluation_interval="2s",
    )
    job = config["scrape_configs"][0]
    assert job == {
        "job_name": "shop",
        "scheme": "http",
        "metrics_path": "/m",
        "static_configs": [{"targets": ["127.0.0.1:8000"]}],
    }
    assert config["global"] == {"scrape_interval": "1s", "evaluation_interval": "2s"}
    promtool = need_binary("promtool")
    path = tmp_path / "prometheus.yml"
    path.write_text(yaml.safe_dump(config))
    result = subprocess.run(
        [promtool, "check", "config", str(path)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


def _options(tmp_path: Path, target: str) -> StackOptions:
    rules = tmp_path / "rules.yml"
    rules.write_text(yaml.safe_dump(RULES))
    routing = tmp_path / "alertmanager.yml"
    routing.write_text(yaml.safe_dump(ROUTING))
    return StackOptions(
        state_dir=tmp_path / "stack",
        target=target,
        rules_file=rules,
        alertmanager_file=routing,
        scrape_interval="1s",
        group_wait="1s",
        group_interval="1s",
        repeat_interval="1m",
        ports={"prometheus": 0, "alertmanager": 0, "sink": 0, "api": 0},
    )


def _hlthz(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", "from hlthz.tools.cli import main; main()", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.mark.slow
@pytest.mark.integration
def test_stack_up_detaches_pages_the_sink_and_stops_from_another_process(
    tmp_path: Path, metrics_target: Any
) -> None:
    need_binary("prometheus")
    need_binary("prometheus-alertmanager", "alertmanager")
    options = _options(tmp_path, metrics_target.url)
    state_dir = options.state_dir
    # `hlthz stack up` returns; what it started keeps running after it exited.
    up = _hlthz(
        "stack", "up", "--dir", str(state_dir), "--target", metrics_target.url,
        "--rules", str(options.rules_file), "--alertmanager-config", str(options.alertmanager_file),
        "--scrape-interval", "1s", "--group-wait", "1s", "--group-interval", "1s",
        "--prometheus-port", "0", "--alertmanager-port", "0", "--sink-port", "0",
    )  # fmt: skip
    state = read_state(state_dir)
    assert state is not None, up.stderr
    pids = [service["pid"] for service in state["services"].values()]
    try:
        assert up.returncode == 0, up.stderr
        services = state["services"]
        assert sorted(services) == ["alertmanager", "prometheus", "sink"]
        for name, service in services.items():
            assert f"{name:<13} {service['pid']:>7}  started   {service['url']}" in up.stdout
            assert (state_dir / f"{name}.pid").read_text().strip() == str(service["pid"])
        assert f"Alerts arrive at the sink: {services['sink']['url']}/" in up.stdout
        assert "Grafana datasource to provision: " in up.stdout
        prom = services["prometheus"]["url"]

        with pytest.raises(StackError, match="already running"):
            stack_up(options)

        wait_until(
            lambda: [r["value"][1] for r in prom_query(prom, 'up{job="api"}')] == ["1"],
            timeout=30,
            what="Prometheus to scrape the target",
        )
        rules = _get(f"{prom}/api/v1/rules")["data"]["groups"]
        assert [r["name"] for g in rules for r in g["rules"]] == ["APITargetMissing"]
        am_config = _get(f"{services['alertmanager']['url']}/api/v2/status")["config"]["original"]
        assert f"{services['sink']['url']}/critical" in am_config

        status = _hlthz("stack", "status", "--dir", str(state_dir))
        assert status.returncode == 0, status.stderr
        assert status.stdout.count("healthy") == 3

        # The app goes away: the alert must travel Prometheus -> Alertmanager -> sink.
        metrics_target.stop()
        sink_file = Path(state["files"]["alerts_received"])

        def paged() -> bool:
            return any(
                a["alertname"] == "APITargetMissing" and a["status"] == "firing"
                for a in iter_alerts(read_notifications(sink_file))
            )

        wait_until(paged, timeout=60, interval=0.5, what="APITargetMissing at the sink")
        alert = next(
            a for a in iter_alerts(read_notifications(sink_file)) if a["status"] == "firing"
        )
        assert (alert["receiver"], alert["severity"], alert["labels"]["job"]) == (
            "critical",
            "critical",
            "api",
        )
        assert alert["annotations"]["summary"].startswith("target 127.0.0.1:")
    finally:
        down = _hlthz("stack", "down", "--dir", str(state_dir))
    assert down.returncode == 0, down.stderr
    assert "stopped: prometheus, alertmanager, sink" in down.stdout
    assert leftover_groups(pids) == {}
    assert not (state_dir / "state.json").exists()
    assert (state_dir / "logs" / "prometheus.log").exists()
    assert stack_status(state_dir) is None
    again = _hlthz("stack", "status", "--dir", str(state_dir))
    assert (again.returncode, again.stdout.strip()) == (0, f"no stack started from {state_dir}")


def test_missing_prometheus_says_how_to_install_it(tmp_path: Path) -> None:
    env = {**os.environ, "PATH": str(tmp_path)}
    result = subprocess.run(
        [
            sys.executable,
            "-c",
            "from hlthz.tools.cli import main; main()",
            "stack",
            "up",
            "--dir",
            str(tmp_path / "stack"),
            "--target",
            "http://127.0.0.1:1",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "hlthz: error: prometheus not found on PATH; install it (Debian: apt-get install "
        "prometheus, or run scripts/install-system-deps.sh as root)"
    ]


def test_a_taken_port_is_a_clear_error(tmp_path: Path, metrics_target: Any) -> None:
    need_binary("prometheus")
    need_binary("prometheus-alertmanager", "alertmanager")
    port = int(metrics_target.url.rsplit(":", 1)[1])
    options = _options(tmp_path, metrics_target.url)
    options = StackOptions(**{**options.__dict__, "ports": {**options.ports, "sink": port}})
    with pytest.raises(StackError, match=f"port {port} for sink is already in use"):
        stack_up(options)
    assert not (options.state_dir / "state.json").exists()


@pytest.mark.integration
def test_a_target_on_the_api_port_is_not_a_taken_port(tmp_path: Path, metrics_target: Any) -> None:
    # `--target http://127.0.0.1:8000` with the user's app on 8000, the demo API's default port:
    # no demo API starts, so its port must not be checked.
    need_binary("prometheus")
    need_binary("prometheus-alertmanager", "alertmanager")
    port = int(metrics_target.url.rsplit(":", 1)[1])
    options = _options(tmp_path, metrics_target.url)
    options = StackOptions(**{**options.__dict__, "ports": {**options.ports, "api": port}})
    try:
        state = stack_up(options)
        assert sorted(state["services"]) == ["alertmanager", "prometheus", "sink"]
        assert state["target"] == metrics_target.url
    finally:
        stopped = stack_down(options.state_dir)
    assert stopped == ["prometheus", "alertmanager", "sink"]


def test_missing_rules_say_how_to_generate_them(tmp_path: Path) -> None:
    need_binary("prometheus")
    need_binary("prometheus-alertmanager", "alertmanager")
    options = StackOptions(
        state_dir=tmp_path / "stack",
        target="http://127.0.0.1:1",
        rules_file=tmp_path / "nope.yml",
        ports={"prometheus": 0, "alertmanager": 0, "sink": 0, "api": 0},
    )
    with pytest.raises(StackError) as info:
        stack_up(options)
    assert str(info.value) == (
        f"{tmp_path / 'nope.yml'}: alert rules file not found; run `hlthz alerts generate` or "
        "pass --rules/--alertmanager-config"
    )
    assert not (tmp_path / "stack").exists()


@pytest.mark.parametrize(
    ("routing", "problem"),
    [
        ({"route": {"receiver": "x"}}, "the Alertmanager config has no receivers"),
        ({"route": {}, "receivers": ["page"]}, "receivers.0: expected a mapping with a name"),
        ({"route": {}, "receivers": [{"name": "x"}], "global": "x"}, "global: expected a mapping"),
    ],
)
def test_a_malformed_routing_file_fails_before_anything_starts(
    tmp_path: Path, routing: dict[str, Any], problem: str
) -> None:
    need_binary("prometheus")
    need_binary("prometheus-alertmanager", "alertmanager")
    options = _options(tmp_path, "http://127.0.0.1:1")
    assert options.alertmanager_file is not None
    options.alertmanager_file.write_text(yaml.safe_dump(routing))
    with pytest.raises(StackError) as info:
        stack_up(options)
    assert str(info.value) == f"{options.alertmanager_file}: {problem}; regenerate it"
    assert not options.state_dir.exists()


@pytest.mark.parametrize(
    ("field", "flag"), [("scrape_interval", "--scrape-interval"), ("group_wait", "--group-wait")]
)
def test_a_bad_duration_fails_before_anything_starts(tmp_path: Path, field: str, flag: str) -> None:
    need_binary("prometheus")
    need_binary("prometheus-alertmanager", "alertmanager")
    options = _options(tmp_path, "http://127.0.0.1:1")
    options = StackOptions(**{**options.__dict__, field: "5 s"})
    with pytest.raises(StackError) as info:
        stack_up(options)
    assert str(info.value) == (
        f"{flag} '5 s': not a Prometheus duration; write it like 15s, 5m or 1h"
    )
    assert not options.state_dir.exists()


@pytest.mark.integration
def test_a_failed_start_stops_what_was_started(tmp_path: Path) -> None:
    need_binary("prometheus")
    need_binary("prometheus-alertmanager", "alertmanager")
    options = _options(tmp_path, "http://127.0.0.1:1")
    # The demo API refuses an unknown switch and exits: the sink, started first, must go too.
    options = StackOptions(
        **{**options.__dict__, "target": None, "api_args": ("--opt", "turbo=on")}
    )
    with pytest.raises(
        ServiceError, match=r"^api exited with code 2 during start-up; see .*api\.log"
    ):
        stack_up(options)
    assert read_state(options.state_dir) is None
    assert list(options.state_dir.glob("*.pid")) == []
    sink_log = (options.state_dir / "logs" / "sink.log").read_text()
    port = int(sink_log.split("listening on http://127.0.0.1:", 1)[1].split(",", 1)[0])
    assert not port_open(port)


def test_the_stack_reads_the_project_files_beside_hlthz_yaml(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    need_binary("prometheus")
    need_binary("prometheus-alertmanager", "alertmanager")
    from hlthz.alerts import init_project

    monkeypatch.delenv("HLTHZ_CONFIG", raising=False)
    config = init_project(tmp_path / "shop")
    monkeypatch.chdir(tmp_path / "shop")  # found as ./hlthz.yaml, like every command finds it
    options = StackOptions(
        state_dir=tmp_path / "stack",
        target="http://127.0.0.1:1",
        ports={"prometheus": 0, "alertmanager": 0, "sink": 0, "api": 0},
    )
    with pytest.raises(StackError) as info:
        stack_up(options)
    rules = config.parent / "alerts" / "generated" / "hlthz.rules.yml"
    assert str(info.value).startswith(f"{rules}: alert rules file not found")
    assert not (tmp_path / "stack").exists()


def test_the_grafana_datasource_carries_the_scrape_interval() -> None:
    from hlthz.tools.stack.config import grafana_datasource

    (source,) = grafana_datasource("http://127.0.0.1:9090", "5s")["datasources"]
    assert source["jsonData"] == {"timeInterval": "5s"}
