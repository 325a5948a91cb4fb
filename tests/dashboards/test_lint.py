"""The offline lint catches each rule it claims to enforce."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from hlthz.dashboards import (
    DashboardError,
    build_dashboards,
    generate,
    lint_dashboard,
    lint_dir,
    load_settings,
    rate_window_problems,
)
from hlthz.dashboards.common import iter_panels

Board = dict[str, Any]


@pytest.fixture(scope="module")
def api_board() -> Board:
    return build_dashboards(load_settings())["hlthz-api"]


def _first(board: Board, kind: str) -> dict[str, Any]:
    return next(p for p in iter_panels(board) if p["type"] == kind)


def test_generated_dashboards_are_clean() -> None:
    for uid, board in build_dashboards(load_settings()).items():
        assert lint_dashboard(board, uid) == []


@pytest.mark.parametrize(
    ("expr", "problems"),
    [
        ("sum(rate(x_total[$__rate_interval]))", 0),
        ('increase(x_total{a="b"}[${__rate_interval}])', 0),
        ("sum(rate(x_total[5m]))", 1),
        ("irate(x_total[1m]) / increase(y_total[$__rate_interval])", 1),
        ("rate(x_total[5m]) + increase(y[10m])", 2),
        ("histogram_quantile(0.9, sum by (le) (rate(h_bucket[2m])))", 1),
        ("rate(x_total)", 1),
        ("avg_over_time(x[5m]) + sum_rate_total", 0),
    ],
)
def test_rate_windows(expr: str, problems: int) -> None:
    assert len(rate_window_problems(expr)) == problems


def _set_schema(b: Board) -> None:
    b["schemaVersion"] = 27


def _angular(b: Board) -> None:
    _first(b, "timeseries")["type"] = "graph"


def _angular_heatmap(b: Board) -> None:
    _first(b, "heatmap")["dataFormat"] = "tsbuckets"


def _hard_coded_uid(b: Board) -> None:
    _first(b, "stat")["datasource"] = {"type": "prometheus", "uid": "P1809F7CD0C75ACF3"}


def _datasource_name(b: Board) -> None:
    _first(b, "stat")["targets"][0]["datasource"] = "Prometheus"


def _string_variable(b: Board) -> None:
    _first(b, "timeseries")["datasource"] = "$datasource"


def _fixed_window(b: Board) -> None:
    target = _first(b, "stat")["targets"][0]
    target["expr"] = target["expr"].replace("$__rate_interval", "5m")


def _no_unit(b: Board) -> None:
    _first(b, "timeseries")["fieldConfig"]["defaults"]["unit"] = ""


def _no_description(b: Board) -> None:
    _first(b, "heatmap")["description"] = ""


def _no_job_variable(b: Board) -> None:
    b["templating"]["list"] = [v for v in b["templating"]["list"] if v["name"] != "job"]


def _no_datasource_variable(b: Board) -> None:
    b["templating"]["list"] = [v for v in b["templating"]["list"] if v["name"] != "datasource"]


@pytest.mark.parametrize(
    ("mutate", "expected"),
    [
        (_set_schema, "schemaVersion"),
        (_angular, "Angular panel type 'graph'"),
        (_angular_heatmap, "Angular heatmap options ['dataFormat']"),
        (_hard_coded_uid, "hard-coded datasource uid 'P1809F7CD0C75ACF3'"),
        (_datasource_name, "datasource given by name 'Prometheus'"),
        (_string_variable, "pre-schema-33 string form"),
        (_fixed_window, "use [$__rate_interval]"),
        (_no_unit, "no unit"),
        (_no_description, "no description"),
        (_no_job_variable, "no 'job' query variable"),
        (_no_datasource_variable, "no 'datasource' variable"),
    ],
)
def test_each_rule_fails_when_broken(
    api_board: Board, mutate: Callable[[Board], None], expected: str
) -> None:
    board = copy.deepcopy(api_board)
    mutate(board)
    messages = [str(f) for f in lint_dashboard(board, "api.json")]
    assert any(expected in m for m in messages), messages


def test_datasource_inputs_and_defaults_are_not_hard_coded(api_board: Board) -> None:
    board = copy.deepcopy(api_board)
    _first(board, "stat")["datasource"] = {"type": "prometheus", "uid": "${DS_PROMETHEUS}"}
    _first(board, "timeseries")["datasource"] = {"type": "prometheus"}
    assert lint_dashboard(board, "api.json") == []


def test_dir_reports_drift_and_threshold_changes(tmp_path: Path) -> None:
    generate(None, tmp_path)
    assert lint_dir(tmp_path, load_settings()) == []

    path = tmp_path / "provisioning" / "hlthz-api.json"
    board = json.loads(path.read_text())
    panel = next(p for p in board["panels"] if p["title"] == "P95 latency")
    panel["fieldConfig"]["defaults"]["thresholds"]["steps"][1]["value"] = 0.3
    path.write_text(json.dumps(board, indent=2))

    messages = [str(f) for f in lint_dir(tmp_path, load_settings())]
    expected = "threshold steps 0.3, 1, but the thresholds file gives 0.5, 1"
    assert any("'P95 latency'" in m and expected in m for m in messages), messages
    assert any("regenerate and commit" in m for m in messages), messages
    # Without the drift check only the threshold finding remains.
    assert len(lint_dir(tmp_path, load_settings(), drift=False)) == 1


def test_import_files_do_not_work_as_provisioning_files(tmp_path: Path) -> None:
    generate(None, tmp_path)
    imported = (tmp_path / "hlthz-api.json").read_text()
    (tmp_path / "provisioning" / "hlthz-api.json").write_text(imported)
    messages = [str(f) for f in lint_dir(tmp_path, load_settings(), drift=False)]
    assert any("never filled in by provisioning" in m for m in messages), messages


def test_unreadable_input_is_a_usage_error(tmp_path: Path) -> None:
    with pytest.raises(DashboardError, match="no such directory"):
        lint_dir(tmp_path / "missing")
    (tmp_path / "bad.json").write_text('{"panels": [\n')
    with pytest.raises(DashboardError, match=r"bad\.json:2: not valid JSON"):
        lint_dir(tmp_path)


@pytest.mark.parametrize(
    ("board", "problem"),
    [
        ({"panels": 3}, "panels: expected a list of objects"),
        ({"panels": [{"type": "row", "panels": [1]}]}, "panels[0].panels: expected a list"),
        ({"panels": [{"title": "A", "targets": {}}]}, "panel 'A': targets: expected a list"),
        ({"panels": [], "templating": []}, "templating.list: expected a list of objects"),
        ({"panels": [], "annotations": {"list": [1]}}, "annotations.list: expected a list"),
    ],
)
def test_a_dashboard_of_the_wrong_shape_is_a_usage_error(
    tmp_path: Path, board: Board, problem: str
) -> None:
    # Hand-edited JSON that parses but is not a dashboard: one line naming the field, exit 2.
    (tmp_path / "x.json").write_text(json.dumps(board))
    with pytest.raises(DashboardError) as caught:
        lint_dir(tmp_path, drift=False)
    assert caught.value.exit_code == 2
    assert str(caught.value).startswith(f"{tmp_path / 'x.json'}: {problem}")
