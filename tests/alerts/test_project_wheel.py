"""The project workflow on the built wheel, installed (not editable) in a fresh venv.

`hlthz init` in an empty folder, a threshold edited, a service with its own thresholds and a
route of its own, a webhook receiver; then generate and check with the real promtool and
amtool. Everything is written beside hlthz.yaml: the installed package's files are
byte-identical before and after.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import need_binary
from tests.test_packaging import _build_wheel, _run

pytestmark = [pytest.mark.slow, pytest.mark.integration]

SERVICE = """
services:
  shop:
    alerts:
      critical: {latency_p95: {threshold: 5, for: 5m}}
      warning: {latency_p95: {threshold: 1, for: 10m}}
    routes:
      'POST /api/orders':
        alerts:
          critical: {latency_p95: {threshold: 0.5}}
          warning: {latency_p95: {threshold: 0.25}}

receivers:
  - name: team-webhook
    webhook_configs:
      - url: http://127.0.0.1:9/alerts
        send_resolved: true
"""


def _snapshot(folder: Path) -> dict[str, str]:
    return {
        path.relative_to(folder).as_posix(): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


def test_init_edit_generate_and_check_never_touch_the_installed_package(tmp_path: Path) -> None:
    need_binary("promtool")
    need_binary("amtool")
    wheel = _build_wheel(tmp_path)
    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", venv], cwd=tmp_path)
    python, hlthz = venv / "bin" / "python", venv / "bin" / "hlthz"
    pip = [sys.executable, "-m", "pip", "--python", python]
    _run(
        [*pip, "install", "--quiet", "--root-user-action=ignore", f"{wheel}[dashboards]"], tmp_path
    )
    where = _run(
        [python, "-c", "import hlthz, os; print(os.path.dirname(hlthz.__file__))"], tmp_path
    )
    package = Path(where.strip())
    assert package.is_relative_to(venv)
    before = _snapshot(package)

    # No bytecode written by the runs below either: the package folder must not change at all.
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    env.pop("HLTHZ_CONFIG", None)
    project = tmp_path / "shop"
    project.mkdir()

    missing = subprocess.run(
        [hlthz, "alerts", "generate"], cwd=project, env=env, capture_output=True, text=True
    )
    assert missing.returncode == 2
    assert missing.stderr.startswith(f"hlthz: error: no hlthz.yaml in {project}; run `hlthz init`")

    assert "wrote hlthz.yaml" in _run([hlthz, "init"], cwd=project, env=env)
    config = project / "hlthz.yaml"
    again = subprocess.run([hlthz, "init"], cwd=project, env=env, capture_output=True, text=True)
    assert again.returncode == 2 and "exists" in again.stderr

    text = config.read_text()
    edited = text.replace(
        "latency_p95: {threshold: 1, for: 5m}", "latency_p95: {threshold: 2, for: 5m}", 1
    )
    edited = edited.replace(
        "critical: {receiver: hlthz-page,", "critical: {receiver: team-webhook,", 1
    )
    assert yaml.safe_load(edited)["alerts"]["critical"]["latency_p95"]["threshold"] == 2
    assert "receiver: team-webhook" in edited
    config.write_text(edited + SERVICE)

    out = _run([hlthz, "alerts", "generate"], cwd=project, env=env)
    assert f"under {project / 'alerts'}" in out
    checked = _run([hlthz, "alerts", "check"], cwd=project, env=env)
    assert checked.splitlines() == [
        "ok   generated files match the thresholds file",
        "ok   promtool check rules",
        "ok   promtool test rules",
        "ok   amtool check-config",
        "ok   hlthz lint",
    ]
    rules = (project / "alerts/generated/hlthz.rules.yml").read_text()
    assert 'job:http_request_duration_seconds:p95_rate5m{job!="shop"} > 2\n' in rules
    assert 'job:http_request_duration_seconds:p95_rate5m{job="shop"} > 5\n' in rules
    assert (
        'job_route:http_request_duration_seconds:p95_rate5m{job="shop", method="POST", '
        'route="/api/orders"} > 0.5\n'
    ) in rules
    routing = yaml.safe_load((project / "alerts/generated/alertmanager.yml").read_text())
    assert {"name": "team-webhook", "webhook_configs": [
        {"url": "http://127.0.0.1:9/alerts", "send_resolved": True}
    ]} in routing["receivers"]  # fmt: skip
    critical = next(
        r for r in routing["route"]["routes"] if r["matchers"] == ['severity="critical"']
    )
    assert critical["receiver"] == "team-webhook"
    assert (project / "alerts/generated/tests/latency.shop.yml").is_file()
    assert (project / "alerts/runbooks/APIHighLatencyP95.md").is_file()

    _run([hlthz, "dashboards", "generate"], cwd=project, env=env)
    assert (project / "dashboards/hlthz-api-shop.json").is_file()
    assert (project / "dashboards/provisioning/hlthz-api.json").is_file()
    assert _run([hlthz, "dashboards", "check"], cwd=project, env=env).splitlines() == ["ok   lint"]

    assert _snapshot(package) == before
