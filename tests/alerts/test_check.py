"""``hlthz alerts check`` with the real promtool and amtool, and HLTHZ's lint."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner

from hlthz.alerts import DEFAULT_CONFIG_PATH, load_config
from hlthz.alerts.checker import check
from hlthz.alerts.generator import DEFAULT_OUT
from hlthz.alerts.lint import lint_rules
from hlthz.tools.cli import main
from tests.alerts.conftest import WriteConfig
from tests.conftest import need_binary

pytestmark = pytest.mark.integration


@pytest.fixture(autouse=True)
def _tools() -> None:
    need_binary("promtool")
    need_binary("amtool")


@pytest.mark.slow
def test_check_passes_on_the_committed_files() -> None:
    result = CliRunner().invoke(
        main, ["alerts", "check", "--config", str(DEFAULT_CONFIG_PATH), "--dir", str(DEFAULT_OUT)]
    )
    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == [
        "ok   generated files match the thresholds file",
        "ok   promtool check rules",
        "ok   promtool test rules",
        "ok   amtool check-config",
        "ok   hlthz lint",
    ]


def test_check_finds_hand_edits_and_exits_1(
    fast_config: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    out = Path("alerts")  # relative paths work too
    result = CliRunner().invoke(
        main, ["alerts", "generate", "--config", str(fast_config), "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert check(fast_config, out).ok

    rules = out / "generated/hlthz.rules.yml"
    text = rules.read_text()
    # Move the warning threshold off a bucket boundary and drop a runbook, by hand.
    rules.write_text(text.replace("p95_rate4s > 0.1\n", "p95_rate4s > 0.2\n"))
    (out / "runbooks/DBPoolExhausted.md").unlink()

    result = CliRunner().invoke(
        main, ["alerts", "check", "--config", str(fast_config), "--dir", str(out)]
    )
    assert result.exit_code == 1
    lines = result.output.splitlines()
    assert "FAIL generated files match the thresholds file" in lines
    assert "ok   promtool check rules" in lines
    assert "FAIL promtool test rules" in lines
    assert "ok   amtool check-config" in lines
    assert "FAIL hlthz lint" in lines
    assert (
        "       hlthz.rules.yml: hlthz-api/APIHighLatencyP95: latency threshold 0.2 is not a "
        "bucket boundary of buckets.request_duration_seconds; P95 there is an interpolated guess"
    ) in lines
    assert any("has no runbook file" in line and "DBPoolExhausted.md" in line for line in lines)
    assert "alertname: APIHighLatencyP95" in result.output  # promtool's failing test
    assert result.output.rstrip().endswith("more)")  # the one-line error after the report


def test_missing_tool_exits_2_saying_how_to_install(tmp_path: Path) -> None:
    result = CliRunner().invoke(
        main, ["alerts", "check", "--dir", str(DEFAULT_OUT)], env={"PATH": str(tmp_path)}
    )
    assert result.exit_code == 2
    assert result.output.strip() == (
        "hlthz: error: promtool not found on PATH; install it (Debian/Ubuntu: apt-get install "
        "prometheus; or download Prometheus/Alertmanager release binaries)"
    )


def test_bad_config_exits_2_naming_the_key(write_config: WriteConfig) -> None:
    path = write_config("alerts:\n  warning:\n    latency_p95: {threshold: 0.3, for: 10m}\n")
    result = CliRunner().invoke(main, ["alerts", "generate", "--config", str(path)])
    assert result.exit_code == 2
    assert result.output.startswith(
        f"hlthz: error: {path}:3: alerts.warning.latency_p95.threshold: 0.3 is not a bucket "
        "boundary"
    )


def test_lint_flags_alerts_an_on_call_engineer_cannot_act_on(tmp_path: Path) -> None:
    rules = tmp_path / "rules.yml"
    rules.write_text(
        """\
groups:
  - name: hand-written
    rules:
      - record: job:x:rate30s
        expr: sum by (job) (rate(x_total[30s]))
      - alert: NoSeverity
        expr: job:http_request_errors:ratio_rate5m > 0.1
        labels:
          value: '{{ $value }}'
        annotations:
          summary: errors
          description: too many errors
          runbook_url: https://example.com/runbooks/NoSeverity.md
"""
    )
    findings = lint_rules(rules, load_config(), runbooks_dir=tmp_path, tests_dir=tmp_path)
    where = "rules.yml: hand-written"
    assert findings == [
        f"{where}/job:x:rate30s: rate(...[30s]) covers fewer than 4 scrapes of 15s; widen the "
        "window",
        f"{where}/NoSeverity: label severity is None; use one of critical, warning, info",
        f"{where}/NoSeverity: label value uses $value; every new value would start a new alert",
        f"{where}/NoSeverity: annotation description does not show the measured value "
        "({{ $value }})",
        f"{where}/NoSeverity: runbook_url https://example.com/runbooks/NoSeverity.md has no "
        f"runbook file {tmp_path}/NoSeverity.md",
        f"{where}/NoSeverity: annotation dashboard_url is missing",
        f"{where}/NoSeverity: ratio alert without a traffic floor (`and on (job) <requests "
        "rate> >= min_request_rate`)",
        f"{where}/NoSeverity: no promtool test in {tmp_path} checks this alert",
    ]


@pytest.mark.parametrize(
    "text", ["- just a list\n", "groups: [name]\n", "groups:\n  - rules: [x]\n"]
)
def test_lint_reports_a_file_that_is_not_a_rule_file(tmp_path: Path, text: str) -> None:
    # A hand-broken rules file is a finding (promtool explains it), never a traceback.
    rules = tmp_path / "rules.yml"
    rules.write_text(text)
    findings = lint_rules(rules, load_config(), runbooks_dir=tmp_path, tests_dir=tmp_path)
    assert findings == [f"{rules}: not a Prometheus rule file (expected groups: [{{name, rules}}])"]


@pytest.mark.parametrize(
    "url", ["https://wiki.example.com/OPS/Wiki", "https://wiki.example.com/rb?alert=Wiki"]
)
def test_a_wiki_runbook_url_needs_the_alerts_runbook(tmp_path: Path, url: str) -> None:
    # links.runbook_url may point anywhere; the runbook generated for the alert must exist.
    rules = tmp_path / "rules.yml"
    rule = {
        "alert": "Wiki",
        "expr": "up == 0",
        "labels": {"severity": "critical"},
        "annotations": {
            "summary": "s",
            "description": "{{ $value }}",
            "runbook_url": url,
            "dashboard_url": "http://localhost:3000/d/x",
        },
    }
    rules.write_text(yaml.safe_dump({"groups": [{"name": "g", "rules": [rule]}]}))

    def lint() -> list[str]:
        return lint_rules(rules, load_config(), runbooks_dir=tmp_path)

    assert lint() == [
        f"rules.yml: g/Wiki: runbook_url {url} has no runbook file {tmp_path}/Wiki.md"
    ]
    (tmp_path / "Wiki.md").write_text("# Wiki\n")
    assert lint() == []
