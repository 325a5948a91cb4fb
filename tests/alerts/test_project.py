"""The project file: found the same way by every command, written by `hlthz init`, generated
beside, never inside the package; services, routes, signals and receivers validated."""

from __future__ import annotations

import hashlib
import json
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from hlthz.alerts import (
    DEFAULT_CONFIG_PATH,
    ConfigError,
    check,
    find_project,
    generate,
    load_config,
    render_all,
)
from hlthz.alerts.generator import DEFAULT_OUT
from hlthz.alerts.rules import all_alerts
from hlthz.tools.cli import main
from tests.alerts.conftest import WriteConfig
from tests.conftest import need_binary

SERVICES = """\
signals: [database, pool]
buckets:
  request_duration_seconds: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.3, 0.5, 1, 2, 5, 10]
routes:
  '/healthz': {exclude: true}
services:
  shop:
    alerts:
      critical: {latency_p95: {threshold: 2, for: 5m}}
      warning: {latency_p95: {threshold: 1, for: 10m}}
    signals: [database, pool, cache]
    routes:
      'POST /api/orders':
        alerts:
          critical: {latency_p95: {threshold: 0.3}}
          warning: {latency_p95: {threshold: 0.25}}
  billing:
    signals: []
    routing: {critical: billing-pager}
receivers:
  - name: billing-pager
    webhook_configs:
      - url: http://127.0.0.1:9/billing
  - name: tickets
    webhook_configs:
      - url: ${TICKETS_URL}
routing:
  warning: tickets
"""


def _tree(folder: Path) -> dict[str, str]:
    return {
        p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.rglob("*"))
        if p.is_file() and "__pycache__" not in p.parts
    }


def test_the_project_file_is_found_by_flag_then_environment_then_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    here, elsewhere = tmp_path / "here", tmp_path / "elsewhere"
    here.mkdir()
    elsewhere.mkdir()
    (here / "hlthz.yaml").write_text("version: 1\n")
    (elsewhere / "other.yaml").write_text("version: 1\n")
    monkeypatch.delenv("HLTHZ_CONFIG", raising=False)
    found = find_project(cwd=here)
    assert found is not None and found.config == here / "hlthz.yaml"
    assert found.alerts_dir == here / "alerts" and found.dashboards_dir == here / "dashboards"
    monkeypatch.setenv("HLTHZ_CONFIG", str(elsewhere / "other.yaml"))
    found = find_project(cwd=here)
    assert found is not None and found.config == elsewhere / "other.yaml"
    found = find_project(here / "hlthz.yaml", cwd=tmp_path)
    assert found is not None and found.config == here / "hlthz.yaml"
    monkeypatch.setenv("HLTHZ_CONFIG", str(tmp_path / "gone.yaml"))
    with pytest.raises(ConfigError, match=r"HLTHZ_CONFIG .*gone\.yaml: no such file"):
        find_project(cwd=here)
    monkeypatch.delenv("HLTHZ_CONFIG")
    assert find_project(cwd=tmp_path, required=False) is None
    with pytest.raises(ConfigError, match=r"no hlthz\.yaml in .*; run `hlthz init`"):
        find_project(cwd=tmp_path)


def test_commands_write_beside_the_project_file_never_into_the_package(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("HLTHZ_CONFIG", raising=False)
    package = _tree(DEFAULT_OUT)
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(main, ["init"])
    assert result.exit_code == 0, result.output
    result = CliRunner().invoke(main, ["alerts", "generate"])
    assert result.exit_code == 0, result.output
    assert result.output == f"wrote 18 files under {tmp_path / 'alerts'}\n"
    assert (tmp_path / "alerts/generated/hlthz.rules.yml").is_file()
    assert (tmp_path / "alerts/runbooks/APITargetMissing.md").is_file()
    result = CliRunner().invoke(main, ["dashboards", "generate"])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "dashboards/provisioning/hlthz-api.json").is_file()
    # The package's own file as --config, without --out: refused rather than written into.
    result = CliRunner().invoke(main, ["alerts", "generate", "--config", str(DEFAULT_CONFIG_PATH)])
    assert result.exit_code == 2
    assert "inside the installed hlthz package" in result.output
    assert _tree(DEFAULT_OUT) == package


def test_init_writes_a_commented_file_that_loads_as_the_defaults_and_never_overwrites(
    tmp_path: Path,
) -> None:
    result = CliRunner().invoke(main, ["init", str(tmp_path / "new")])
    assert result.exit_code == 0, result.output
    path = tmp_path / "new" / "hlthz.yaml"
    text = path.read_text()
    assert text.count("\n#") > 40  # commented for whoever opens it
    for key in ("signals:", "links:", "routing:", "# services:", "# receivers:", "# routes:"):
        assert f"\n{key}" in text, key
    config = load_config(path)
    defaults = load_config()
    assert config.alerts == defaults.alerts and config.routing == defaults.routing
    assert config.signals == ("database", "pool", "cache", "jobs")
    result = CliRunner().invoke(main, ["init", str(tmp_path / "new")])
    assert result.exit_code == 2
    assert (
        result.output
        == f"hlthz: error: {path} exists; edit it, or move it away and run `hlthz init` again\n"
    )
    assert path.read_text() == text


class _Metrics(BaseHTTPRequestHandler):
    body = b""

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; version=0.0.4")
        self.end_headers()
        self.wfile.write(self.body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def metrics_page() -> Iterator[tuple[str, type[_Metrics]]]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Metrics)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/metrics", _Metrics
    server.shutdown()
    server.server_close()


def test_init_from_metrics_keeps_the_families_that_have_samples(
    tmp_path: Path, metrics_page: tuple[str, type[_Metrics]]
) -> None:
    from prometheus_client import CollectorRegistry, generate_latest

    from hlthz.exporter import CacheMetrics, instrument, instrument_dbapi

    url, handler = metrics_page
    # The exporter registers every family up front: TYPE lines alone prove nothing.
    registry = CollectorRegistry()
    instrument(lambda environ, start: [], registry=registry)
    handler.body = generate_latest(registry)
    result = CliRunner().invoke(main, ["init", str(tmp_path / "a"), "--from-metrics", url])
    assert result.exit_code == 0, result.output
    assert f"signals detected from {url}: none" in result.output
    assert load_config(tmp_path / "a" / "hlthz.yaml").signals == ()

    import sqlite3

    CacheMetrics("products", registry=registry).hit()
    connection = instrument_dbapi(sqlite3.connect(":memory:"), registry=registry)
    connection.execute("SELECT 1")
    handler.body = generate_latest(registry)
    result = CliRunner().invoke(main, ["init", str(tmp_path / "b"), "--from-metrics", url])
    assert result.exit_code == 0, result.output
    assert load_config(tmp_path / "b" / "hlthz.yaml").signals == ("database", "cache")

    handler.body = b"# a page of something else\nup 1\n"
    result = CliRunner().invoke(main, ["init", str(tmp_path / "c"), "--from-metrics", url])
    assert result.exit_code == 2
    assert "no http_request_duration_seconds metric; is the app instrumented" in result.output
    assert not (tmp_path / "c" / "hlthz.yaml").exists()


def test_services_routes_and_signals_shape_the_rules(write_config: WriteConfig) -> None:
    config = load_config(write_config(SERVICES.replace("${TICKETS_URL}", "http://127.0.0.1:9/t")))
    assert [s.service for s in config.scopes] == [None, "shop", "billing"]
    rules = {
        (r.name, r.severity, r.service, r.route.key if r.route else None)
        for r in all_alerts(config)
    }
    assert ("DBPoolExhausted", "critical", None, None) in rules
    assert ("LowCacheHitRate", "warning", "shop", None) in rules
    assert ("LowCacheHitRate", "warning", None, None) not in rules  # no cache signal
    assert not {
        r for r in rules if r[2] == "billing" and r[0] in ("DBPoolExhausted", "LowCacheHitRate")
    }
    assert ("APIHighLatencyP95", "critical", "shop", "POST /api/orders") in rules
    text = render_all(config)["generated/hlthz.rules.yml"]
    assert 'job:http_request_duration_seconds:p95_rate5m{job!="shop", job!="billing"} > 1\n' in text
    assert 'job:http_request_duration_seconds:p95_rate5m{job="shop"} > 2\n' in text
    # /healthz is out of every job's request rate, error ratio and P95.
    assert 'rate(http_request_duration_seconds_count{route!="/healthz"}[5m])' in text
    assert 'rate(http_request_duration_seconds_bucket{route!="/healthz"}[5m])' in text
    assert (
        "summary: P95 latency of {{ $labels.method }} {{ $labels.route }} on {{ $labels.job }} "
        "is above 300ms (critical)"
    ) in text
    files = render_all(config)
    assert (
        "generated/tests/latency.shop.yml" in files
        and "generated/tests/pool.billing.yml" not in files
    )
    runbook = files["runbooks/APIHighLatencyP95.md"]
    assert "## Find the route first" in runbook
    assert (
        "- **critical** for route `POST /api/orders` of `shop`, for 5m: P95 request duration "
        "above 300ms"
    ) in runbook
    assert "hlthz api serve" not in runbook  # no demo-only switches in a user's runbook


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "services:\n  'my shop': {}\n",
            "{path}:2: services.my shop: a service is named by its Prometheus job",
        ),
        (
            "services:\n  shop:\n    alerts:\n"
            "      critical: {latency_p95: {threshold: 0.25, for: 5m}}\n",
            "{path}:3: services.shop.alerts.warning.latency_p95.threshold: 0.5 must be below "
            "alerts.critical.latency_p95.threshold (0.25) so that a warning comes before the page; "
            "the value is inherited from the top level: set it for this service",
        ),
        (
            "routes:\n  'POST /healthz': {exclude: true}\n",
            "{path}:2: routes.POST /healthz.exclude: exclude applies to a route under every method",
        ),
        (
            "routes:\n  '/api/x':\n    alerts: {critical: {latency_p95: {threshold: 0.3}}}\n",
            "{path}:3: routes./api/x.alerts.critical.latency_p95.threshold: 0.3 is not a bucket "
            "boundary",
        ),
        ("routes:\n  '/api/x': {}\n", "{path}:2: routes./api/x: nothing to do for this route"),
        ("signals: [database, redis]\n", "{path}:1: signals.1: unknown signal 'redis'"),
        (
            "services: {}\nselector: ''\nservices:\n  shop: {}\n",
            "{path}:3: services: defined twice (YAML keeps only the last one)",
        ),
        (
            "routing: {critical: pager}\n",
            "{path}:1: routing.critical.receiver: no receiver 'pager'",
        ),
        (
            "receivers:\n  - name: pager\n    pagerduty_configs:\n      - routing_key: "
            "s3cr3t-key-value\n",
            "{path}:4: receivers.0.pagerduty_configs.0.routing_key: a secret written here would "
            "be copied into the generated alertmanager.yml; use routing_key_file",
        ),
        (
            "receivers:\n  - name: a\n  - name: a\n",
            "{path}:3: receivers.1.name: receiver 'a' is defined twice",
        ),
        (
            "links:\n  dashboard_url: 'http://g/d/{dashboard_uid}?job={job}'\n",
            "{path}:2: links.dashboard_url: only the placeholder {{dashboard_uid}} and Prometheus "
            "templates",
        ),
    ],
)
def test_bad_services_routes_and_receivers_are_one_line_naming_the_key(
    write_config: WriteConfig, text: str, message: str
) -> None:
    path = write_config(text)
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    shown = str(caught.value)
    assert shown.startswith(message.format(path=path)), shown
    assert "\n" not in shown and "s3cr3t" not in shown


def test_a_label_template_in_a_link_survives_in_alerts_and_becomes_a_variable_in_dashboards(
    write_config: WriteConfig,
) -> None:
    from hlthz.dashboards import DashboardSettings, build_dashboards

    config = load_config(
        write_config(
            "links:\n  runbook_url: 'https://wiki.example.com/{alert}?job={{ $labels.job }}'\n"
        )
    )
    rules = yaml.safe_load(render_all(config)["generated/hlthz.rules.yml"])
    alert = next(
        r for g in rules["groups"] for r in g["rules"] if r.get("alert") == "APIHighErrorRate"
    )
    assert alert["annotations"]["runbook_url"] == (
        "https://wiki.example.com/APIHighErrorRate?job={{ $labels.job }}"
    )
    board = build_dashboards(DashboardSettings.from_config(config))["hlthz-api"]
    urls = [
        link.get("url") for link in board["links"] if link.get("title", "").startswith("Runbook")
    ]
    assert "https://wiki.example.com/APIHighErrorRate?job=${job}" in urls


@pytest.mark.integration
@pytest.mark.slow  # three promtool runs
def test_receivers_routing_and_environment_secrets_pass_amtool(
    write_config: WriteConfig, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    amtool = need_binary("amtool")
    need_binary("promtool")
    config = write_config(SERVICES)
    out = tmp_path / "out"
    generate(config, out)
    generated = out / "generated/alertmanager.yml"
    routing = generated.read_text()
    assert "url: ${TICKETS_URL}" in routing  # kept as written: no secret in the generated file
    secret = "http://127.0.0.1:9/tickets?token=hunter2-do-not-print"
    routing_file = tmp_path / "expanded.yml"  # what a deploy step (envsubst) makes of it
    routing_file.write_text(routing.replace("${TICKETS_URL}", secret))

    def route(*labels: str) -> str:
        done = subprocess.run(
            [amtool, "config", "routes", "test", f"--config.file={routing_file}", *labels],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        return done.stdout.strip() or done.stderr

    monkeypatch.setenv("TICKETS_URL", secret)
    assert route("severity=critical", "job=billing") == "billing-pager"
    assert route("severity=critical", "job=shop") == "hlthz-page"
    assert route("severity=warning", "job=shop") == "tickets"

    # `alerts check` expands the reference from its environment for amtool (one scope here, to
    # keep promtool's share short), and never prints the value.
    config = write_config(
        "receivers:\n  - name: tickets\n    webhook_configs:\n      - url: ${TICKETS_URL}\n"
        "routing: {warning: tickets}\n"
    )
    out = tmp_path / "secret"
    generate(config, out)
    report = check(config, out)
    assert report.ok, "\n".join(report.lines())
    monkeypatch.setenv("TICKETS_URL", "not a url at all hunter2-do-not-print")
    report = check(config, out)
    shown = "\n".join(report.lines())
    assert not report.step("amtool check-config").ok
    assert "unsupported scheme" in shown and "hunter2" not in shown
    monkeypatch.delenv("TICKETS_URL")
    report = check(config, out)
    assert report.step("amtool check-config").findings == [
        "alertmanager.yml: ${TICKETS_URL} is not set in the environment; set it (or use a "
        "*_file field) so that amtool can check the receiver using it"
    ]
    assert not list((out / "generated").glob(".alertmanager.*"))  # the expanded copy is gone
    assert json.dumps(yaml.safe_load(routing)).count("hunter2") == 0
