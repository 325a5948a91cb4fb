"""The release gate on crafted reports: expressions, exit codes, too-few samples, JUnit."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from xml.etree import ElementTree as ET

import pytest

from hlthz.errors import InputError, ReplayError
from hlthz.replay import Gate, Report, compare_reports
from hlthz.replay.compare import Allow, GateOptions
from tests.replay.conftest import hlthz


def _lat(p95: float) -> dict[str, float]:
    return {"p50": p95 / 2, "p90": p95 * 0.9, "p95": p95, "p99": p95 * 1.5, "max": p95 * 3}


def _typed(data: dict[str, Any]) -> Report:
    return Report.from_dict(data)


#: These reports hold the required keys only (no latency samples): judged on their figures.
FIGURES = GateOptions(allow=Allow(no_samples=True))


def _report(
    p95: float = 100, errors: int = 0, requests: int = 1000, rare_p95: float = 50
) -> dict[str, Any]:
    return {
        "hlthz_report": 1,
        "summary": {
            "requests": requests,
            "errors": errors,
            "error_rate": errors / requests,
            "skipped": 0,
            "duration_s": 100.0,
            "rps": requests / 100,
            "latency_ms": _lat(p95),
            "service_time_ms": _lat(p95 * 0.8),
            "schedule_lag_ms": {"p50": 0.5, "p99": 1.0, "max": 2.0},
        },
        "routes": [
            {
                "route": "GET /api/products",
                "requests": requests - 5,
                "errors": errors,
                "latency_ms": _lat(p95),
            },
            {"route": "GET /api/rare", "requests": 5, "errors": 0, "latency_ms": _lat(rare_p95)},
        ],
    }


@pytest.mark.parametrize(
    ("text", "metric", "op", "limit", "relative"),
    [
        ("p95 > +10%", "p95", ">", 0.10, True),
        ("p99 > 800ms", "p99", ">", 800.0, False),
        ("p99>1.5s", "p99", ">", 1500.0, False),
        ("error_rate > 1%", "error_rate", ">", 0.01, False),
        ("rps < -5%", "rps", "<", -0.05, True),
    ],
)
def test_gate_expressions_parse(
    text: str, metric: str, op: str, limit: float, relative: bool
) -> None:
    gate = Gate.parse(text)
    assert (gate.metric, gate.op, gate.relative) == (metric, op, relative)
    assert gate.limit == pytest.approx(limit)


@pytest.mark.parametrize("text", ["p95 >> 10%", "latency > 1s", "rps > 10ms", "p95 > 5%"])
def test_bad_gate_expressions_say_how_to_write_them(text: str) -> None:
    with pytest.raises(ReplayError, match="--fail-on"):
        Gate.parse(text)


def test_regressions_fail_and_small_routes_are_reported_not_judged() -> None:
    base = _typed(_report())
    cand = _typed(_report(p95=125, rare_p95=5000))  # +25 % overall; the rare route is 100x slower
    result = compare_reports(base, cand, fail_on=["p95 > +10%"], options=FIGURES)
    assert result.failed
    failed = {c.scope for c in result.failures}
    assert failed == {"overall", "GET /api/products"}
    rare = [c for c in result.checks if c.scope == "GET /api/rare"]
    assert [c.status for c in rare] == ["insufficient"]
    assert not compare_reports(
        base, _typed(_report(p95=105)), fail_on=["p95 > +10%"], options=FIGURES
    ).failed
    assert compare_reports(
        base, _typed(_report(errors=20)), fail_on=["error_rate > 1%"], options=FIGURES
    ).failed
    slower = _report()
    slower["summary"]["rps"] = 9.0
    assert compare_reports(base, _typed(slower), fail_on=["rps < -5%"], options=FIGURES).failed


def test_cli_exit_codes_and_junit(tmp_path: Path) -> None:
    base, good, bad = tmp_path / "base.json", tmp_path / "good.json", tmp_path / "bad.json"
    base.write_text(json.dumps(_report()))
    good.write_text(json.dumps(_report(p95=102)))
    bad.write_text(json.dumps(_report(p95=100, errors=50)))
    ok = hlthz(
        "replay",
        "compare",
        "--allow-no-samples",
        str(base),
        str(good),
        "--fail-on",
        "p95 > +10%",
        "--fail-on",
        "p99 > 800ms",
    )
    assert ok.returncode == 0, ok.stderr
    junit = tmp_path / "gate.xml"
    failed = hlthz(
        "replay",
        "compare",
        "--allow-no-samples",
        str(base),
        str(bad),
        "--fail-on",
        "error_rate > 1%",
        "--junit",
        str(junit),
    )
    assert failed.returncode == 1
    assert "FAIL overall: error_rate > 1%" in failed.stdout
    suite = ET.parse(junit).getroot()
    assert suite.get("failures") == "2" and suite.get("skipped") == "1"
    usage = hlthz(
        "replay", "compare", "--allow-no-samples", str(base), str(good), "--fail-on", "p95 >>> 1"
    )
    assert usage.returncode == 2 and "--fail-on" in usage.stderr
    notreport = tmp_path / "x.json"
    notreport.write_text("{}")
    assert hlthz("replay", "compare", str(notreport), str(good)).returncode == 2


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda r: r["summary"].pop("duration_s"), "summary.duration_s: missing"),
        (lambda r: r["summary"].pop("latency_ms"), "summary.latency_ms: missing"),
        (
            lambda r: r["routes"][0]["latency_ms"].__setitem__("p95", "slow"),
            "routes[0].latency_ms.p95: must be a number, got 'slow'",
        ),
        (lambda r: r["routes"].append({"requests": 30}), "routes[2].route: missing"),
        (
            lambda r: r["summary"].__setitem__("requests", "many"),
            "summary.requests: must be an integer, got 'many'",
        ),
    ],
)
def test_damaged_report_is_one_line_naming_the_field(damage: Any, message: str) -> None:
    broken = _report()
    damage(broken)
    with pytest.raises(InputError) as raised:
        Report.from_dict(broken, source="candidate report")
    assert str(raised.value).startswith(f"candidate report: {message}")


def test_a_gate_on_a_figure_a_report_left_out_names_it() -> None:
    # Routes may leave out service_time_ms (docs/formats.md): a gate on it cannot be judged.
    with pytest.raises(ReplayError) as raised:
        compare_reports(
            _typed(_report()), _typed(_report()), fail_on=["service_p95 > +10%"], options=FIGURES
        )
    assert str(raised.value).startswith(
        "baseline report: GET /api/products: no service_time_ms.p95;"
    )


def test_cli_damaged_report_exits_2_without_traceback(tmp_path: Path) -> None:
    base, cand = tmp_path / "base.json", tmp_path / "cand.json"
    base.write_text(json.dumps(_report()))
    broken = _report()
    del broken["summary"]["latency_ms"]
    cand.write_text(json.dumps(broken))
    out = hlthz("replay", "compare", str(base), str(cand))
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert (
        out.stderr
        == f"hlthz: error: {cand}: summary.latency_ms: missing (a report v1 always has it)\n"
    )


@pytest.mark.parametrize("option", ["--junit", "--json", "--html"])
def test_cli_unwritable_output_is_one_line(tmp_path: Path, option: str) -> None:
    report = tmp_path / "r.json"
    report.write_text(json.dumps(_report()))
    blocker = tmp_path / "file"
    blocker.write_text("")
    out = hlthz(
        "replay",
        "compare",
        "--allow-no-samples",
        str(report),
        str(report),
        option,
        str(blocker / "x"),
    )
    assert out.returncode == 2
    assert out.stderr.startswith(f"hlthz: error: {option} ") and "Traceback" not in out.stderr


def test_html_of_contract_only_reports(tmp_path: Path) -> None:
    # _report() holds a report's required keys only (docs/formats.md): no "run", no per-route
    # service time.
    base, cand = tmp_path / "base.json", tmp_path / "cand.json"
    base.write_text(json.dumps(_report()))
    cand.write_text(json.dumps(_report(p95=300)))
    html = tmp_path / "gate.html"
    out = hlthz(
        "replay", "compare", "--allow-no-samples", str(base), str(cand), "--html", str(html)
    )
    assert out.returncode == 1, out.stderr  # the P95 gate fails; the page is still written
    page = html.read_text()
    assert "Release gate" in page and "GET /api/products" in page
