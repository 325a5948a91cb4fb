"""What every HLTHZ dashboard shares: variables, alert annotations, links, the JSON form.

A dashboard is built as grafanalib objects and turned into plain JSON by :func:`to_json`, which
also drops the keys grafanalib still writes for Grafana 5-7 dashboards (``rows``, ``style``,
``span``...) so that the file is what Grafana itself saves at :data:`SCHEMA_VERSION`.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from grafanalib._gen import DashboardEncoder
from grafanalib.core import (
    SORT_ALPHA_ASC,
    Annotations,
    Dashboard,
    DashboardLink,
    Panel,
    Template,
    Templating,
    Time,
    TimePicker,
)

from hlthz.dashboards.panels import (
    DATASOURCE_VARIABLE,
    GREEN,
    ORANGE,
    PROMETHEUS,
    RED,
    ThresholdStep,
    steps,
)
from hlthz.dashboards.settings import DashboardSettings

# Grafana 11.0 saves dashboards at schema 39; 10.3+ reads it without migrating.
SCHEMA_VERSION = 39
TAG = "hlthz"
# Selects every value: Grafana would otherwise expand "All" into a long alternation.
ALL = ".+"

# Dashboard-level keys of grafanalib's output that Grafana dropped long before schema 39.
_LEGACY_DASHBOARD_KEYS = ("rows", "style", "sharedCrosshair", "hideControls", "gnetId")
# Panel keys from grafanalib's generic Panel that current panels do not have.
_LEGACY_PANEL_KEYS = (
    "cacheTimeout",
    "maxDataPoints",  # grafanalib's default of 100; Grafana derives it from the panel width
    "editable",
    "error",
    "height",
    "maxPerRow",
    "minSpan",
    "repeat",
    "repeatDirection",
    "span",
)
# Template keys of the pre-8 variable editor (tags) and of interval variables.
_LEGACY_TEMPLATE_KEYS = ("useTags", "tagsQuery", "tagValuesQuery", "auto", "auto_min", "auto_count")


def latency_steps(s: DashboardSettings) -> list[ThresholdStep]:
    """Green, orange from the warning P95 latency, red from the critical one."""
    return steps(GREEN, (s.latency_warning, ORANGE), (s.latency_critical, RED))


def error_steps(s: DashboardSettings) -> list[ThresholdStep]:
    """Green, red from the error share that pages (APIHighErrorRate)."""
    return steps(GREEN, (s.error_rate, RED))


def quoted(value: str) -> str:
    """``value`` as a double-quoted PromQL string."""
    return json.dumps(value, ensure_ascii=False)


def scope_matchers(s: DashboardSettings, *, exclusions: bool = True) -> list[str]:
    """The config's ``selector``, the scope's jobs, and (``exclusions``) the excluded routes."""
    parts = [s.selector.strip()] if s.selector.strip() else []
    parts += list(s.scope)
    if exclusions:
        parts += [f"route!={quoted(r)}" for r in s.excluded_routes]
    return parts


def matchers(
    s: DashboardSettings, *extra: str, route: bool = False, exclusions: bool = True
) -> str:
    """The label matchers of every query: the job and instance variables, the config's
    ``selector`` and scope (the service's job, routes it excludes), then ``extra``
    (``route=~"$route"`` too when ``route``)."""
    parts = ['job=~"$job"', 'instance=~"$instance"', *scope_matchers(s, exclusions=exclusions)]
    if route:
        parts.append('route=~"$route"')
    parts.extend(extra)
    return ", ".join(parts)


def datasource_variable() -> Template:
    """The ``datasource`` variable: any Prometheus datasource, chosen from a list."""
    return Template(
        name=DATASOURCE_VARIABLE,
        label="Data source",
        query="prometheus",
        type="datasource",
        refresh=1,
        regex="",
    )


def query_variable(
    name: str, label: str, metric: str, label_name: str, *, depends: str = ""
) -> QueryVariable:
    """A multi-value ``label_values()`` variable, "All" meaning any value (``.+``)."""
    series = f"{metric}{{{depends}}}" if depends else metric
    definition = f"label_values({series}, {label_name})"
    template = Template(
        name=name,
        label=label,
        query={"query": definition, "refId": "PrometheusVariableQueryEditor-VariableQuery"},
        dataSource=PROMETHEUS,
        includeAll=True,
        multi=True,
        allValue=ALL,
        default="$__all",
        refresh=2,  # on time range change: new jobs and routes show up by themselves
        sort=SORT_ALPHA_ASC,
        regex="",
    )
    return QueryVariable(template, definition)


class QueryVariable:
    """A grafanalib Template plus the ``definition`` string Grafana stores beside the query.

    grafanalib has no field for it; Grafana shows it in the variable list and editor.
    """

    def __init__(self, template: Template, definition: str) -> None:
        self.template = template
        self.definition = definition

    def to_json_data(self) -> dict[str, Any]:
        data: dict[str, Any] = self.template.to_json_data()
        data["definition"] = self.definition
        return data


def standard_variables(
    s: DashboardSettings, anchor: str, *, route: bool = False, extra: Sequence[Any] = ()
) -> list[Any]:
    """``datasource``, ``job``, ``instance`` (and ``route``) variables.

    ``anchor`` is the metric whose labels list the choices, so a job only appears on the
    dashboards it has data for.
    """
    selector = ", ".join(scope_matchers(s, exclusions=False))
    job_filter = selector
    instance_filter = ", ".join(p for p in ('job=~"$job"', selector) if p)
    variables: list[Any] = [
        datasource_variable(),
        query_variable("job", "Job", anchor, "job", depends=job_filter),
        query_variable("instance", "Instance", anchor, "instance", depends=instance_filter),
    ]
    if route:
        route_filter = ", ".join(
            p for p in ('job=~"$job"', 'instance=~"$instance"', *scope_matchers(s)) if p
        )
        variables.append(
            query_variable(
                "route",
                "Route",
                "http_request_duration_seconds_count",
                "route",
                depends=route_filter,
            )
        )
    variables.extend(extra)
    return variables


def alert_annotations(alertnames: Sequence[str]) -> Annotations:
    """Grafana's built-in annotations plus the named alerts while they fire."""
    names = "|".join(sorted(alertnames))
    return Annotations(
        list=[
            {
                "builtIn": 1,
                "datasource": {"type": "grafana", "uid": "-- Grafana --"},
                "enable": True,
                "hide": True,
                "iconColor": "rgba(0, 211, 255, 1)",
                "name": "Annotations & Alerts",
                "type": "dashboard",
            },
            {
                "datasource": PROMETHEUS,
                "enable": True,
                "expr": f'ALERTS{{alertstate="firing", alertname=~"{names}"}}',
                "hide": False,
                "iconColor": "red",
                "name": "Firing alerts",
                "step": "1m",
                "tagKeys": "alertname,severity",
                "textFormat": "{{alertname}} ({{severity}}) on {{job}}",
                "titleFormat": "{{alertname}}",
                "useValueForTime": False,
            },
        ]
    )


def links(s: DashboardSettings, alerts: Sequence[str]) -> list[DashboardLink]:
    """A drop-down of the other HLTHZ dashboards, then the runbooks of ``alerts``."""
    result = [
        DashboardLink(
            title="HLTHZ dashboards",
            type="dashboards",
            tags=[TAG],
            asDropdown=True,
            includeVars=True,
            keepTime=True,
        )
    ]
    result.extend(
        DashboardLink(
            title=f"Runbook: {alert}",
            type="link",
            uri=s.runbook(alert),
            icon="doc",
            tooltip=f"What to do when {alert} fires",
            targetBlank=True,
            keepTime=False,
        )
        for alert in alerts
    )
    return result


def dashboard(
    *,
    uid: str,
    title: str,
    description: str,
    panels: list[Panel],
    variables: list[Any],
    settings: DashboardSettings,
    alerts: Sequence[str],
) -> Dashboard:
    """A dashboard with the HLTHZ defaults: last hour, 30 s refresh, shared crosshair."""
    return Dashboard(
        title=title,
        uid=uid,
        description=description,
        tags=[TAG],
        panels=panels,
        templating=Templating(list=variables),
        annotations=alert_annotations(alerts),
        links=links(settings, alerts),
        time=Time("now-1h", "now"),
        timePicker=TimePicker(refreshIntervals=[], timeOptions=[]),
        timezone="browser",
        refresh="30s",
        graphTooltip=1,
        editable=True,
        version=1,
    )


def to_json(board: Dashboard) -> dict[str, Any]:
    """Plain JSON of ``board`` as Grafana stores a schema-39 dashboard."""
    data: dict[str, Any] = json.loads(json.dumps(board.to_json_data(), cls=DashboardEncoder))
    for key in _LEGACY_DASHBOARD_KEYS:
        data.pop(key, None)
    if not data.get("__inputs"):
        data.pop("__inputs", None)
    data["schemaVersion"] = SCHEMA_VERSION
    data["fiscalYearStartMonth"] = 0
    data["liveNow"] = False
    data["weekStart"] = ""
    data["timepicker"] = {}
    data["panels"] = [_clean_panel(p) for p in data["panels"]]
    data["templating"]["list"] = [_clean_variable(v) for v in data["templating"]["list"]]
    return data


def iter_panels(board: dict[str, Any]) -> list[dict[str, Any]]:
    """Every panel of a dashboard's JSON, row headers and the panels of collapsed rows too."""
    panels: list[dict[str, Any]] = []
    for panel in board.get("panels", []):
        panels.append(panel)
        panels.extend(panel.get("panels", []))
    return panels


def _clean_panel(panel: dict[str, Any]) -> dict[str, Any]:
    for key in _LEGACY_PANEL_KEYS:
        panel.pop(key, None)
    for key in [k for k, v in panel.items() if v is None]:
        panel.pop(key)
    defaults = panel.get("fieldConfig", {}).get("defaults", {})
    for mapping in (defaults, defaults.get("custom", {})):
        for key in [k for k, v in mapping.items() if v is None]:
            mapping.pop(key)
    if panel.get("hideTimeOverride") is False:
        panel.pop("hideTimeOverride")
    if panel.get("type") == "row":
        # A row header has no data: drop the field config the generic Panel gives it.
        for key in ("fieldConfig", "targets", "links", "transformations", "transparent"):
            panel.pop(key, None)
        panel["panels"] = [_clean_panel(p) for p in panel.get("panels", [])]
    return panel


def _clean_variable(variable: dict[str, Any]) -> dict[str, Any]:
    for key in _LEGACY_TEMPLATE_KEYS:
        variable.pop(key, None)
    variable["skipUrlSync"] = False
    current = variable.get("current") or {}
    if current.get("value") is None:
        variable["current"] = {}
    elif current.get("value") == "$__all":
        variable["current"] = {"selected": True, "text": ["All"], "value": ["$__all"]}
    if variable["type"] == "datasource":
        for key in ("allValue", "datasource", "tags"):
            variable.pop(key, None)
    else:
        variable["current"].pop("tags", None)
    return variable
