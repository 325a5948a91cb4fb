"""Generation: committed files are current, output is deterministic, and follows thresholds."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml

from hlthz.alerts import AlertsCheckFailed, load_config
from hlthz.alerts.generator import DEFAULT_OUT, check_drift, drift, generate, render_all
from hlthz.alerts.rules import all_alerts
from tests.alerts.conftest import WriteConfig
from tests.conftest import need_binary

DOCUMENTED_ALERTS = {  # docs/alerts.md
    ("APIHighLatencyP95", "critical"),
    ("APIHighErrorRate", "critical"),
    ("DBPoolExhausted", "critical"),
    ("APIHighLatencyP95", "warning"),
    ("HighMemoryUsage", "warning"),
    ("LowCacheHitRate", "warning"),
    ("APILatencyDegraded", "info"),
    ("UnusualTrafficPattern", "info"),
    ("APITargetMissing", "critical"),
}


def test_committed_files_are_what_generate_writes() -> None:
    changed = drift(None, DEFAULT_OUT)
    assert not changed, (
        f"alerts/{', alerts/'.join(changed)} out of date: run `hlthz alerts generate` to regenerate"
    )


def test_drift_is_reported_with_the_command_to_fix_it(tmp_path: Path) -> None:
    generate(None, tmp_path)
    check_drift(None, tmp_path)  # fresh output: no drift
    rules = tmp_path / "generated/hlthz.rules.yml"
    rules.write_text(rules.read_text().replace("> 0.05", "> 0.5"))
    # A runbook an earlier config generated (e.g. with `slo:`), and one a user wrote by hand.
    generated = (tmp_path / "runbooks/APIHighErrorRate.md").read_text()
    (tmp_path / "runbooks/Stale.md").write_text(generated)
    (tmp_path / "runbooks/Ours.md").write_text("# Our own runbook\n")
    (tmp_path / "generated/tests/ours.yml").write_text("rule_files: [../hlthz.rules.yml]\n")
    expected = "run `hlthz alerts generate` to regenerate"
    with pytest.raises(AlertsCheckFailed, match=expected) as caught:
        check_drift(None, tmp_path)
    assert caught.value.exit_code == 1
    assert drift(None, tmp_path) == ["generated/hlthz.rules.yml", "runbooks/Stale.md"]
    generate(None, tmp_path)  # regenerating removes the stale runbook too
    assert drift(None, tmp_path) == []
    assert not (tmp_path / "runbooks/Stale.md").exists()
    # Files without the generator's header are not its to delete.
    assert (tmp_path / "runbooks/Ours.md").read_text() == "# Our own runbook\n"
    assert (tmp_path / "generated/tests/ours.yml").exists()


def test_generation_is_deterministic() -> None:
    assert render_all(load_config()) == render_all(load_config())


def test_every_contract_alert_has_labels_annotations_runbook_and_test() -> None:
    cfg = load_config()
    files = render_all(cfg)
    rules = yaml.safe_load(files["generated/hlthz.rules.yml"])
    alerts = [r for g in rules["groups"] for r in g["rules"] if "alert" in r]
    assert {(r["alert"], r["labels"]["severity"]) for r in alerts} == DOCUMENTED_ALERTS
    tested = set()
    for name, text in files.items():
        if name.startswith("generated/tests/"):
            for test in yaml.safe_load(text)["tests"]:
                for check in test["alert_rule_test"]:
                    tested |= {
                        (check["alertname"], e["exp_labels"]["severity"])
                        for e in check["exp_alerts"]
                    }
    assert tested == DOCUMENTED_ALERTS
    for rule in alerts:
        annotations = rule["annotations"]
        assert set(annotations) == {"summary", "description", "runbook_url", "dashboard_url"}
        assert "$value" in annotations["description"]
        runbook = f"runbooks/{rule['alert']}.md"
        assert annotations["runbook_url"].endswith(runbook) and runbook in files
        assert annotations["dashboard_url"].startswith("http://localhost:3000/d/hlthz-")
        assert annotations["dashboard_url"].endswith("?var-job={{ $labels.job }}")


def test_rules_aggregate_per_job_with_a_traffic_floor() -> None:
    text = render_all(load_config())["generated/hlthz.rules.yml"]
    groups = yaml.safe_load(text)["groups"]
    records = {r["record"]: r["expr"] for g in groups for r in g["rules"] if "record" in r}
    assert records["job:http_request_duration_seconds:p95_rate5m"] == (
        "histogram_quantile(\n  0.95,\n  sum by (job, le) "
        "(rate(http_request_duration_seconds_bucket[5m]))\n)"
    )
    assert "http_request_duration_seconds_count" in records["job:http_request_errors:rate5m"]
    assert "job:http_request_errors:ratio_rate5m" in records
    by_name = {
        (r["alert"], r["labels"]["severity"]): r for g in groups for r in g["rules"] if "alert" in r
    }
    assert by_name[("APIHighErrorRate", "critical")]["expr"].endswith(
        "and on (job)\njob:http_requests:rate5m >= 0.1"
    )
    assert by_name[("APIHighLatencyP95", "warning")]["for"] == "10m"


def test_selector_reaches_every_raw_series(write_config: WriteConfig, tmp_path: Path) -> None:
    cfg = load_config(write_config("selector: 'job=~\"shop|api\"'\n"))
    text = render_all(cfg)["generated/hlthz.rules.yml"]
    for metric in (
        "http_request_duration_seconds_count",
        "http_request_duration_seconds_bucket",
        "cache_requests_total",
        "db_pool_connections_in_use",
        "process_resident_memory_bytes",
        "up",
    ):
        assert (
            f'{metric}{{job=~"shop|api"}}' in text
            or f'{metric}{{status_code=~"5..", job=~"shop|api"}}' in text
        )


@pytest.mark.integration
def test_changed_thresholds_move_rules_and_tests(write_config: WriteConfig, tmp_path: Path) -> None:
    promtool = need_binary("promtool")
    path = write_config(
        "alerts:\n"
        "  critical:\n"
        "    latency_p95: {threshold: 2, for: 3m}\n"
        "    error_rate: {threshold: 0.1, for: 1m}\n"
        "  warning:\n"
        "    latency_p95: {threshold: 0.25, for: 4m}\n"
    )
    generate(path, tmp_path)
    rules = (tmp_path / "generated/hlthz.rules.yml").read_text()
    assert "job:http_request_duration_seconds:p95_rate5m > 2\n" in rules
    assert "job:http_request_duration_seconds:p95_rate5m > 0.25\n" in rules
    assert "job:http_request_errors:ratio_rate5m > 0.1\n" in rules
    latency_tests = (tmp_path / "generated/tests/latency.yml").read_text()
    assert "above the critical threshold of 2s for more than 3m" in latency_tests
    assert "95 % of the requests to job api took at most 2.5s" in latency_tests
    errors_tests = (tmp_path / "generated/tests/errors.yml").read_text()
    assert "5xx share 12% above 10%" in errors_tests

    def promtool_test(directory: Path, *files: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [promtool, "test", "rules", *files],
            cwd=directory / "generated",
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    # The regenerated tests pass against the regenerated rules...
    done = promtool_test(tmp_path, "tests/latency.yml", "tests/errors.yml")
    assert done.returncode == 0, done.stdout + done.stderr
    # ...and the default config's tests fail against them: the tests pin the thresholds.
    (tmp_path / "generated/tests/default-latency.yml").write_text(
        (DEFAULT_OUT / "generated/tests/latency.yml").read_text()
    )
    done = promtool_test(tmp_path, "tests/default-latency.yml")
    assert done.returncode == 1 and "FAILED" in done.stdout + done.stderr


def test_slo_section_adds_multiwindow_burn_rate_alerts(write_config: WriteConfig) -> None:
    cfg = load_config(write_config("slo: {availability: 0.999, window: 30d}\n"))
    rules = {(r.name, r.severity): r for r in all_alerts(cfg)}
    page = rules[("APIErrorBudgetBurn", "critical")].expr
    ticket = rules[("APIErrorBudgetBurn", "warning")].expr
    assert "job:slo_errors:ratio_rate1h > 0.0144" in page
    assert "job:slo_errors:ratio_rate5m > 0.0144" in page
    assert "job:slo_errors:ratio_rate6h > 0.006" in page
    assert "job:slo_errors:ratio_rate30m > 0.006" in page
    assert "job:slo_errors:ratio_rate1d > 0.003" in ticket
    assert "job:slo_errors:ratio_rate2h > 0.003" in ticket
    assert "job:slo_errors:ratio_rate3d > 0.001" in ticket
    assert "job:slo_errors:ratio_rate6h > 0.001" in ticket
    files = render_all(cfg)
    assert "generated/tests/slo.yml" in files and "runbooks/APIErrorBudgetBurn.md" in files


def test_runbooks_tell_the_story_in_order() -> None:
    files = render_all(load_config())
    text = files["runbooks/APIHighLatencyP95.md"]
    headings = [line for line in text.splitlines() if line.startswith("### ")]
    assert [h.split(". ", 1)[1] for h in headings] == [
        "Slow queries and N+1 query patterns",
        "Missing indexes",
        "Connection pool exhaustion",
        "Cache misses",
        "Synchronous side work",
        "A release or a configuration change",
    ]
    assert "[hlthz-database](http://localhost:3000/d/hlthz-database)" in text
    assert "database_n_plus_one_total" in text
    assert "**critical**, for 5m: P95 request duration above 1s (pages on-call)." in text
