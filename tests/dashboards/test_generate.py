"""Golden tests: the committed dashboards are what the generator writes, and follow the config."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from hlthz.dashboards import (
    SCHEMA_VERSION,
    UIDS,
    build_dashboards,
    expected_files,
    generate,
    lint_dir,
    load_settings,
)
from hlthz.dashboards.common import iter_panels

COMMITTED = Path(__file__).resolve().parents[2] / "dashboards" / "generated"


def _panel(board: dict[str, Any], title: str) -> dict[str, Any]:
    matches = [p for p in iter_panels(board) if p.get("title") == title]
    assert len(matches) == 1, f"{title!r} in {board['uid']}"
    return matches[0]


def _steps(panel: dict[str, Any]) -> list[float | None]:
    return [s["value"] for s in panel["fieldConfig"]["defaults"]["thresholds"]["steps"]]


def test_committed_files_are_current() -> None:
    expected = expected_files(load_settings())
    on_disk = {
        p.relative_to(COMMITTED).as_posix(): p.read_text(encoding="utf-8")
        for p in COMMITTED.rglob("*")
        if p.is_file()
    }
    assert sorted(on_disk) == sorted(expected), "run `hlthz dashboards generate` and commit"
    for name, content in expected.items():
        assert on_disk[name] == content, f"{name} is stale: run `hlthz dashboards generate`"
    assert lint_dir(COMMITTED, load_settings()) == []


def test_generation_is_byte_stable(tmp_path: Path) -> None:
    first = generate(None, tmp_path / "a")
    second = generate(None, tmp_path / "b")
    assert [p.name for p in first] == [p.name for p in second]
    for a, b in zip(first, second, strict=True):
        assert a.read_bytes() == b.read_bytes()


def test_thresholds_in_the_config_move_the_threshold_steps(tmp_path: Path) -> None:
    config = tmp_path / "thresholds.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "alerts": {
                    "critical": {
                        "latency_p95": {"threshold": 2, "for": "5m"},
                        "error_rate": {"threshold": 0.01, "for": "2m"},
                    },
                    "warning": {
                        "latency_p95": {"threshold": 0.25, "for": "10m"},
                        "memory": {"threshold": 0.6, "for": "15m"},
                        "cache_hit_rate": {"threshold": 0.9, "for": "30m"},
                    },
                }
            }
        )
    )
    out = tmp_path / "out"
    generate(config, out)
    boards = {uid: json.loads((out / "provisioning" / f"{uid}.json").read_text()) for uid in UIDS}
    api, cache, release = boards["hlthz-api"], boards["hlthz-cache-jobs"], boards["hlthz-release"]

    assert _steps(_panel(api, "P95 latency")) == [None, 0.25, 2.0]
    assert _steps(_panel(api, "Latency P50 / P95 / P99 by route")) == [None, 0.25, 2.0]
    assert _steps(_panel(api, "5xx share")) == [None, 0.01]
    assert _steps(_panel(cache, "Cache hit share")) == [None, 0.9]
    assert _steps(_panel(cache, "Memory share of limit")) == [None, 0.6, 1.0]
    assert _steps(_panel(release, "P95 latency")) == [None, 0.25, 2.0]
    slowest = _panel(api, "Slowest routes")["fieldConfig"]["overrides"][0]["properties"]
    assert [s["value"] for s in slowest[1]["value"]["steps"]] == [None, 0.25, 2.0]
    # The descriptions quote the same numbers.
    assert "0.25 s" in _panel(api, "P95 latency")["description"]

    # The committed (default) dashboards no longer match this config: check says which panel.
    findings = lint_dir(COMMITTED, load_settings(config), drift=False)
    messages = [str(f) for f in findings]
    assert any("'P95 latency'" in m and "threshold steps" in m for m in messages), messages
    assert any("'Cache hit share'" in m for m in messages), messages


@pytest.mark.parametrize("uid", UIDS)
def test_dashboard_json_is_current_grafana(uid: str) -> None:
    board = build_dashboards(load_settings())[uid]
    assert board["uid"] == uid
    assert board["schemaVersion"] == SCHEMA_VERSION
    assert "rows" not in board and "__inputs" not in board
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    assert {"job", "instance"} <= set(variables)
    for panel in iter_panels(board):
        assert panel["type"] in {"row", "timeseries", "stat", "heatmap", "table", "bargauge"}
        if panel["type"] == "row":
            continue
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        assert panel["description"]
        for target in panel["targets"]:
            assert target["datasource"] == panel["datasource"]
    alerts = [a for a in board["annotations"]["list"] if a.get("expr")]
    assert alerts and 'ALERTS{alertstate="firing"' in alerts[0]["expr"]
    assert any(link["title"].startswith("Runbook: ") for link in board["links"])


def test_panels_do_not_overlap() -> None:
    for uid, board in build_dashboards(load_settings()).items():
        taken: set[tuple[int, int]] = set()
        for panel in board["panels"]:
            g = panel["gridPos"]
            assert g["x"] + g["w"] <= 24, f"{uid} {panel['title']}"
            cells = {
                (x, y)
                for x in range(g["x"], g["x"] + g["w"])
                for y in range(g["y"], g["y"] + g["h"])
            }
            assert not cells & taken, f"{uid} {panel['title']} overlaps"
            taken |= cells


def test_import_and_provisioning_forms(tmp_path: Path) -> None:
    generate(None, tmp_path)
    for uid in UIDS:
        imported = json.loads((tmp_path / f"{uid}.json").read_text())
        provisioned = json.loads((tmp_path / "provisioning" / f"{uid}.json").read_text())
        assert imported["__inputs"][0]["name"] == "DS_PROMETHEUS"
        assert imported["__inputs"][0]["pluginId"] == "prometheus"
        requires = {r["id"] for r in imported["__requires"]}
        assert {"grafana", "prometheus", "timeseries"} <= requires
        ds_import = imported["templating"]["list"][0]
        assert ds_import["current"]["value"] == "${DS_PROMETHEUS}"
        assert provisioned["templating"]["list"][0]["current"] == {}
        assert imported["panels"] == provisioned["panels"]

    provider = yaml.safe_load((tmp_path / "provisioning" / "hlthz-dashboards.yaml").read_text())
    assert provider["apiVersion"] == 1
    (entry,) = provider["providers"]
    assert entry["type"] == "file"
    assert entry["options"]["path"] == "/var/lib/grafana/dashboards/hlthz"


def test_every_alert_links_to_a_dashboard_that_shows_it() -> None:
    from hlthz.alerts import load_config
    from hlthz.alerts.rules import alert_rules

    boards = build_dashboards(load_settings())
    rules = alert_rules(load_config())
    assert rules
    for rule in rules:
        assert rule.dashboard_uid in boards, rule.name
        board = boards[rule.dashboard_uid]
        annotation = next(a for a in board["annotations"]["list"] if a.get("expr"))
        assert rule.name in annotation["expr"], f"{rule.name} not annotated on {board['uid']}"
        assert f"Runbook: {rule.name}" in [link["title"] for link in board["links"]]


def test_the_config_selector_narrows_every_service_query(tmp_path: Path) -> None:
    config = tmp_path / "thresholds.yaml"
    config.write_text("selector: 'job=~\"shop|api\"'\n")
    boards = build_dashboards(load_settings(config))
    for uid, board in boards.items():
        exprs = [t["expr"] for p in iter_panels(board) for t in p.get("targets", [])]
        exprs += [v["definition"] for v in board["templating"]["list"] if "definition" in v]
        assert exprs
        for expr in exprs:
            # The replayer is its own job: the API selector does not apply to it.
            assert ('job=~"shop|api"' in expr) == (uid != "hlthz-release"), (uid, expr)
