"""Offline checks of dashboard JSON: the rules a dashboard must follow to work on first import.

:func:`lint_dashboard` checks one dashboard's JSON; :func:`lint_dir` checks a directory of them
and, for HLTHZ's own dashboards, that their thresholds (and, with ``drift``, every byte) still
match what the generator writes for the given thresholds file.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hlthz.dashboards.common import SCHEMA_VERSION, iter_panels
from hlthz.dashboards.generate import PROVISIONING_DIR, build_dashboards, expected_files
from hlthz.dashboards.panels import DATASOURCE_VARIABLE
from hlthz.dashboards.settings import DashboardSettings
from hlthz.errors import DashboardError
from hlthz.inputs import parse_json, read_limited

# Panel types implemented in React; everything else built in is Angular (gone in Grafana 11).
CURRENT_PANEL_TYPES = frozenset(
    {
        "alertlist",
        "annolist",
        "barchart",
        "bargauge",
        "candlestick",
        "canvas",
        "dashlist",
        "flamegraph",
        "gauge",
        "geomap",
        "heatmap",
        "histogram",
        "logs",
        "news",
        "nodeGraph",
        "piechart",
        "row",
        "stat",
        "state-timeline",
        "status-history",
        "table",
        "text",
        "timeseries",
        "traces",
        "trend",
        "xychart",
    }
)
# Angular panels and what replaces each.
ANGULAR_PANEL_TYPES = {
    "graph": "timeseries",
    "singlestat": "stat",
    "table-old": "table",
    "grafana-piechart-panel": "piechart",
    "grafana-worldmap-panel": "geomap",
    "natel-discrete-panel": "state-timeline",
    "flant-statusmap-panel": "status-history",
    "grafana-singlestat-panel": "stat",
}
# Keys only the Angular versions of a panel type wrote: Grafana 11 migrates them on load (or not).
_ANGULAR_KEYS = {"heatmap": ("cards", "dataFormat", "yBucketBound"), "table": ("styles",)}
_PANELS_WITH_UNITS = frozenset({"timeseries", "stat", "gauge", "bargauge", "table", "barchart"})
_VARIABLE_REF = re.compile(r"\$\{\w+\}|\$\w+")
_GRAFANA_BUILTIN = "-- Grafana --"
_RATE_CALL = re.compile(r"(?<![\w:])(rate|irate|increase)\s*\(")
_RANGE = re.compile(r"\[([^\]]*)\]")
_RATE_INTERVALS = frozenset({"$__rate_interval", "${__rate_interval}"})


@dataclass(frozen=True)
class Finding:
    """One problem: the file, where in it (panel, variable...), and what to do."""

    file: str
    where: str
    message: str

    def __str__(self) -> str:
        where = f" {self.where}:" if self.where else ""
        return f"{self.file}:{where} {self.message}"


def rate_window_problems(expr: str) -> list[str]:
    """Why ``expr`` breaks the ``$__rate_interval`` rule (empty when it does not).

    Every ``rate``/``irate``/``increase`` must take ``[$__rate_interval]``: a fixed window goes
    blank when it is shorter than two scrapes and skips samples when longer than the step.
    """
    problems = []
    for match in _RATE_CALL.finditer(expr):
        argument = _call_argument(expr, match.end())
        windows = _RANGE.findall(argument)
        if not windows:
            problems.append(f"{match.group(1)}() has no range selector")
        for window in windows:
            if window.strip() not in _RATE_INTERVALS:
                problems.append(
                    f"{match.group(1)}() over [{window}]: use [$__rate_interval] so the panel "
                    "works at every zoom level"
                )
    return problems


def _call_argument(expr: str, start: int) -> str:
    depth = 1
    for i in range(start, len(expr)):
        if expr[i] == "(":
            depth += 1
        elif expr[i] == ")":
            depth -= 1
            if depth == 0:
                return expr[start:i]
    return expr[start:]


def _where(panel: dict[str, Any]) -> str:
    return f"panel {panel.get('title', '')!r} (id {panel.get('id')})"


def _datasource_problems(node: Any, path: str = "") -> Iterator[tuple[str, str]]:
    """Every ``datasource`` reference that is not the ``$datasource`` variable."""
    if isinstance(node, dict):
        for key, value in node.items():
            here = f"{path}.{key}" if path else key
            if key == "datasource" and value is not None:
                problem = _bad_datasource(value)
                if problem:
                    yield here, problem
            else:
                yield from _datasource_problems(value, here)
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from _datasource_problems(value, f"{path}[{i}]")


def _bad_datasource(value: Any) -> str | None:
    if isinstance(value, str):
        what = "a variable in the pre-schema-33 string form" if value.startswith("$") else "name"
        return (
            f"datasource given by {what} {value!r}: use "
            '{"type": "prometheus", "uid": "${datasource}"}'
        )
    if isinstance(value, dict):
        uid = value.get("uid")
        # No uid means the default datasource of the type; a $variable is chosen by the user.
        if uid is None or uid == _GRAFANA_BUILTIN or _VARIABLE_REF.fullmatch(str(uid)):
            return None
        return f"hard-coded datasource uid {uid!r}: use the ${{{DATASOURCE_VARIABLE}}} variable"
    return f"datasource {value!r} is neither a reference nor the ${DATASOURCE_VARIABLE} variable"


def lint_dashboard(board: dict[str, Any], file: str = "<dashboard>") -> list[Finding]:
    """Check one dashboard's JSON against the rules; return the findings (none: all good)."""
    findings: list[Finding] = []

    def add(where: str, message: str) -> None:
        findings.append(Finding(file, where, message))

    if board.get("schemaVersion") != SCHEMA_VERSION:
        add(
            "schemaVersion",
            f"is {board.get('schemaVersion')!r}, expected {SCHEMA_VERSION}: regenerate, or "
            "save the dashboard from Grafana 11",
        )
    if not board.get("uid"):
        add("uid", "missing: set a stable uid so links and provisioning find the dashboard")
    if board.get("rows"):
        add("rows", "legacy rows layout: use panels with gridPos and row panels")
    _lint_variables(board, add)
    for where, problem in _datasource_problems(board):
        add(where, problem)

    for panel in iter_panels(board):
        kind = panel.get("type", "")
        where = _where(panel)
        if kind in ANGULAR_PANEL_TYPES:
            add(
                where,
                f"Angular panel type {kind!r} does not load in Grafana 11: use "
                f"{ANGULAR_PANEL_TYPES[kind]!r}",
            )
        elif kind not in CURRENT_PANEL_TYPES:
            add(where, f"panel type {kind!r} is not a built-in non-Angular panel")
        legacy = [key for key in _ANGULAR_KEYS.get(kind, ()) if key in panel]
        if legacy:
            add(
                where,
                f"Angular {kind} options {legacy}: rebuild it as the current {kind} panel "
                "(field config and options)",
            )
        if kind == "row":
            continue
        if not str(panel.get("description", "")).strip():
            add(where, "no description: say what the panel shows and what good looks like")
        if "gridPos" not in panel:
            add(where, "no gridPos")
        unit = _unit(panel)
        if kind in _PANELS_WITH_UNITS | {"heatmap"} and not unit:
            add(where, "no unit: set fieldConfig.defaults.unit (s, reqps, percentunit...)")
        for target in panel.get("targets", []):
            for problem in rate_window_problems(str(target.get("expr", ""))):
                add(f"{where} query {target.get('refId', '?')}", problem)

    for annotation in board.get("annotations", {}).get("list", []):
        for problem in rate_window_problems(str(annotation.get("expr", ""))):
            add(f"annotation {annotation.get('name')!r}", problem)
    return findings


def _unit(panel: dict[str, Any]) -> str:
    if panel.get("type") == "heatmap":
        return str(panel.get("options", {}).get("yAxis", {}).get("unit") or "")
    return str(panel.get("fieldConfig", {}).get("defaults", {}).get("unit") or "")


def _lint_variables(board: dict[str, Any], add: Callable[[str, str], None]) -> None:
    variables = {v.get("name"): v for v in board.get("templating", {}).get("list", [])}
    datasource = variables.get(DATASOURCE_VARIABLE)
    if datasource is None or datasource.get("type") != "datasource":
        add(
            "templating",
            f"no {DATASOURCE_VARIABLE!r} variable of type datasource: add one (query "
            "'prometheus') so users pick their Prometheus",
        )
    elif datasource.get("query") != "prometheus":
        add(f"variable {DATASOURCE_VARIABLE!r}", "must list Prometheus datasources")
    for name in ("job", "instance"):
        variable = variables.get(name)
        if variable is None or variable.get("type") != "query":
            add("templating", f"no {name!r} query variable: add label_values(..., {name})")


def _steps(panel: dict[str, Any]) -> list[list[float | None]]:
    """Threshold values of a panel: its defaults, then each override that sets thresholds."""
    config = panel.get("fieldConfig", {})
    found = [config.get("defaults", {}).get("thresholds", {}).get("steps", [])]
    for override in config.get("overrides", []):
        for prop in override.get("properties", []):
            if prop.get("id") == "thresholds":
                found.append(prop.get("value", {}).get("steps", []))
    return [[step.get("value") for step in group] for group in found]


def _format_steps(groups: list[list[float | None]]) -> str:
    """``[[None, 0.5, 1.0]]`` -> ``0.5, 1``; override groups follow, separated by ``;``."""
    return "; ".join(", ".join(f"{v:g}" for v in g if v is not None) or "none" for g in groups)


def threshold_findings(board: dict[str, Any], expected: dict[str, Any], file: str) -> list[Finding]:
    """Panels of ``board`` whose threshold steps differ from the generator's (``expected``)."""
    want = {p.get("title"): _steps(p) for p in iter_panels(expected)}
    findings = []
    for panel in iter_panels(board):
        title = panel.get("title")
        if title in want and _steps(panel) != want[title]:
            findings.append(
                Finding(
                    file,
                    _where(panel),
                    f"threshold steps {_format_steps(_steps(panel))}, but the thresholds file "
                    f"gives {_format_steps(want[title])}: run `hlthz dashboards generate`",
                )
            )
    return findings


def load_dashboard(path: Path) -> dict[str, Any]:
    """Parse a dashboard file; a malformed one is a :class:`DashboardError` naming the line."""

    def error(name: str, line: int, message: str) -> DashboardError:
        return DashboardError(f"{name}:{line}: {message}" if line else f"{name}: {message}")

    data = parse_json(
        read_limited(path, max_bytes=64 << 20, what="dashboard", error=error),
        source=str(path),
        max_depth=100,
        error=error,
    )
    if not isinstance(data, dict):
        raise DashboardError(f"{path}: a dashboard is a JSON object, found {type(data).__name__}")
    # An exported "dashboard" API response wraps the model.
    inner = data.get("dashboard")
    board = inner if isinstance(inner, dict) and "panels" in inner else data
    problem = _shape_problem(board)
    if problem is not None:
        raise DashboardError(f"{path}: {problem}; is this a Grafana dashboard?")
    return board


def _list_of_objects(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(item, dict) for item in value)


def _shape_problem(board: dict[str, Any]) -> str | None:
    """The first field whose JSON type the lint and the live check cannot walk, if any."""
    panels = board.get("panels", [])
    if not _list_of_objects(panels):
        return "panels: expected a list of objects"
    for index, panel in enumerate(panels):
        if not _list_of_objects(panel.get("panels", [])):
            return f"panels[{index}].panels: expected a list of objects"
    for index, panel in enumerate(iter_panels(board)):
        if not _list_of_objects(panel.get("targets", [])):
            return f"panel {panel.get('title', index)!r}: targets: expected a list of objects"
    for section in ("templating", "annotations"):
        value = board.get(section, {})
        if not isinstance(value, dict) or not _list_of_objects(value.get("list", [])):
            return f"{section}.list: expected a list of objects"
    return None


def dashboard_files(directory: Path) -> list[Path]:
    """The dashboard JSON files of ``directory`` and of its ``provisioning/`` subdirectory."""
    if not directory.is_dir():
        raise DashboardError(
            f"{directory}: no such directory; run `hlthz dashboards generate` or pass --dir"
        )
    files = sorted(directory.glob("*.json")) + sorted((directory / PROVISIONING_DIR).glob("*.json"))
    if not files:
        raise DashboardError(f"{directory}: no *.json dashboards; run `hlthz dashboards generate`")
    return files


def _provisioning_findings(board: dict[str, Any], text: str, file: str) -> list[Finding]:
    """What breaks a dashboard loaded by file provisioning (nothing answers import inputs)."""
    findings = []
    if board.get("__inputs") or "${DS_" in text:
        findings.append(
            Finding(
                file,
                "__inputs",
                "import inputs (${DS_...}) are never filled in by provisioning: use the "
                "provisioning form without __inputs",
            )
        )
    if board.get("id") is not None:
        findings.append(
            Finding(file, "id", "a fixed id clashes between Grafana instances: set it to null")
        )
    return findings


def lint_dir(
    directory: str | Path, settings: DashboardSettings | None = None, *, drift: bool = True
) -> list[Finding]:
    """Lint every dashboard under ``directory``.

    HLTHZ's own dashboards (known UIDs) must also carry the thresholds of ``settings``, and,
    with ``drift``, be byte-identical to what ``hlthz dashboards generate`` writes.
    """
    root = Path(directory)
    settings = settings or DashboardSettings()
    expected_boards = build_dashboards(settings)
    expected = expected_files(settings) if drift else {}
    findings: list[Finding] = []
    for path in dashboard_files(root):
        board = load_dashboard(path)
        name = str(path)
        findings.extend(lint_dashboard(board, name))
        if path.parent.name == PROVISIONING_DIR:
            findings.extend(_provisioning_findings(board, path.read_text(encoding="utf-8"), name))
        uid = board.get("uid")
        if uid in expected_boards:
            findings.extend(threshold_findings(board, expected_boards[uid], name))
        relative = path.relative_to(root).as_posix()
        if (
            drift
            and relative in expected
            and path.read_text(encoding="utf-8") != expected[relative]
        ):
            findings.append(
                Finding(
                    name,
                    "",
                    "differs from what `hlthz dashboards generate` writes for this thresholds "
                    "file: regenerate and commit",
                )
            )
    return findings
