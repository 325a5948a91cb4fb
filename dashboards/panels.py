"""Typed panel builders on top of grafanalib, emitting current (schema 39) panel JSON.

grafanalib 0.7.1 still writes several panels the way Grafana 7 did: the heatmap is the
Angular one, the bar gauge uses ``options.fieldOptions``, tables put mappings at panel level and
Prometheus targets carry Graphite-era keys. The classes here subclass grafanalib's own
:class:`~grafanalib.core.Panel` and :class:`~grafanalib.core.Target` to emit the JSON Grafana 10
and 11 write themselves; the functions wrap the grafanalib panels that are already current
(time series, stat) with the defaults every HLTHZ panel shares.

Every query goes to the ``$datasource`` template variable, never to a datasource UID, so the
same file works in any Grafana whatever its Prometheus is called.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import attr
from attr.validators import in_, instance_of
from grafanalib.core import (
    DataLink,
    GridPos,
    Panel,
    RowPanel,
    Stat,
    Target,
    TimeSeries,
)

DATASOURCE_VARIABLE = "datasource"
# How every panel, target and variable names its datasource.
PROMETHEUS = {"type": "prometheus", "uid": "${" + DATASOURCE_VARIABLE + "}"}

GREEN = "green"
ORANGE = "orange"
RED = "red"


@attr.s(frozen=True)
class ThresholdStep:
    """One step of a field's thresholds: from ``value`` upwards the field is ``color``.

    The first step of a list has ``value=None`` (minus infinity), as Grafana writes it.
    """

    color: str = attr.ib(validator=instance_of(str))
    value: float | None = attr.ib(default=None)

    def to_json_data(self) -> dict[str, Any]:
        return {"color": self.color, "value": self.value}


def steps(base: str, *rest: tuple[float, str]) -> list[ThresholdStep]:
    """Threshold steps: ``steps(GREEN, (0.5, ORANGE), (1.0, RED))``."""
    return [ThresholdStep(base), *(ThresholdStep(color, float(v)) for v, color in rest)]


@attr.s
class PromTarget(Target):
    """A Prometheus query as Grafana 10+ stores it (code editor, explicit range/instant)."""

    def to_json_data(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "datasource": PROMETHEUS,
            "editorMode": "code",
            "expr": self.expr,
            "format": self.format,
            "instant": self.instant,
            "legendFormat": self.legendFormat,
            "range": not self.instant,
            "refId": self.refId,
        }
        if self.hide:
            data["hide"] = True
        return data


def query(
    expr: str, legend: str = "", *, ref: str = "A", instant: bool = False, fmt: str = "time_series"
) -> PromTarget:
    """A Prometheus target; ``fmt`` is ``time_series``, ``table`` or ``heatmap``."""
    # grafanalib is untyped: its attrs fields are invisible to mypy, hence the Any mapping.
    fields: dict[str, Any] = {
        "expr": expr,
        "legendFormat": legend,
        "refId": ref,
        "instant": instant,
        "format": fmt,
    }
    return PromTarget(**fields)


def targets(*exprs: tuple[str, str]) -> list[PromTarget]:
    """Range targets A, B, C... from ``(expr, legend)`` pairs."""
    return [query(e, legend, ref=chr(ord("A") + i)) for i, (e, legend) in enumerate(exprs)]


def _links(links: Sequence[tuple[str, str]]) -> list[DataLink]:
    return [DataLink(title=title, linkUrl=url, isNewTab=True) for title, url in links]


def timeseries(
    title: str,
    description: str,
    queries: list[PromTarget],
    *,
    unit: str,
    thresholds: list[ThresholdStep] | None = None,
    links: Sequence[tuple[str, str]] = (),
    stack: bool = False,
    min_zero: bool = True,
    max_value: int | None = None,
    fill: int = 10,
) -> TimeSeries:
    """A time series panel; thresholds, when given, are drawn as dashed lines."""
    return TimeSeries(
        title=title,
        description=description,
        dataSource=PROMETHEUS,
        targets=list(queries),
        unit=unit,
        thresholds=thresholds or steps(GREEN),
        thresholdsStyleMode="dashed" if thresholds else "off",
        links=_links(links),
        fillOpacity=fill,
        showPoints="never",
        legendDisplayMode="table"
        if len(queries) > 1 or "{{" in queries[0].legendFormat
        else "list",
        legendCalcs=["mean", "max", "lastNotNull"],
        tooltipMode="multi",
        tooltipSort="desc",
        stacking={"mode": "normal", "group": "A"} if stack else {"mode": "none", "group": "A"},
        valueMin=0 if min_zero else None,
        valueMax=max_value,
        # Schema 37 made the legend's visibility its own flag; grafanalib predates it.
        extraJson={"options": {"legend": {"showLegend": True}}},
    )


def stat(
    title: str,
    description: str,
    expr: str,
    *,
    unit: str,
    thresholds: list[ThresholdStep] | None = None,
    links: Sequence[tuple[str, str]] = (),
    decimals: int | None = None,
    no_value: str = "No data",
) -> Stat:
    """A single-value stat panel of the last value, coloured by its thresholds."""
    return Stat(
        title=title,
        description=description,
        dataSource=PROMETHEUS,
        targets=[query(expr)],
        format=unit,
        decimals=decimals,
        thresholds=thresholds or steps(GREEN),
        color={"mode": "thresholds"},
        colorMode="background",
        graphMode="area",
        reduceCalc="lastNotNull",
        noValue=no_value,
        links=_links(links),
    )


@attr.s
class HeatmapPanel(Panel):
    """The current (non-Angular) heatmap, fed with pre-bucketed Prometheus histograms.

    ``calculate`` stays off: the ``le`` buckets are already the heatmap's rows.
    """

    unit: str = attr.ib(default="s", validator=instance_of(str))
    scheme: str = attr.ib(default="Oranges", validator=instance_of(str))

    def to_json_data(self) -> dict[str, Any]:
        return self.panel_json(
            {
                "type": "heatmap",
                "fieldConfig": {
                    "defaults": {
                        "custom": {
                            "hideFrom": {"legend": False, "tooltip": False, "viz": False},
                            "scaleDistribution": {"type": "linear"},
                        },
                        "unit": self.unit,
                    },
                    "overrides": [],
                },
                "options": {
                    "calculate": False,
                    "cellGap": 1,
                    "cellValues": {"unit": "short"},
                    "color": {
                        "exponent": 0.5,
                        "fill": "dark-orange",
                        "mode": "scheme",
                        "reverse": False,
                        "scale": "exponential",
                        "scheme": self.scheme,
                        "steps": 64,
                    },
                    "exemplars": {"color": "rgba(255,0,255,0.7)"},
                    "filterValues": {"le": 1e-9},
                    "legend": {"show": True},
                    "rowsFrame": {"layout": "auto"},
                    "tooltip": {"mode": "single", "showColorScale": False, "yHistogram": True},
                    "yAxis": {"axisPlacement": "left", "reverse": False, "unit": self.unit},
                },
            }
        )


@attr.s
class BarGaugePanel(Panel):
    """A bar gauge in the current ``reduceOptions`` form, one bar per series."""

    unit: str = attr.ib(default="short", validator=instance_of(str))
    min_value: float | None = attr.ib(default=0.0)
    max_value: float | None = attr.ib(default=None)
    display_mode: str = attr.ib(default="gradient", validator=in_(["gradient", "lcd", "basic"]))

    def to_json_data(self) -> dict[str, Any]:
        return self.panel_json(
            {
                "type": "bargauge",
                "fieldConfig": {
                    "defaults": {
                        "color": {"mode": "thresholds"},
                        "mappings": [],
                        "max": self.max_value,
                        "min": self.min_value,
                        "unit": self.unit,
                    },
                    "overrides": [],
                },
                "options": {
                    "displayMode": self.display_mode,
                    "minVizHeight": 16,
                    "minVizWidth": 8,
                    "namePlacement": "auto",
                    "orientation": "horizontal",
                    "reduceOptions": {"calcs": ["lastNotNull"], "fields": "", "values": False},
                    "showUnfilled": True,
                    "sizing": "auto",
                    "valueMode": "color",
                },
            }
        )


@attr.s
class TablePanel(Panel):
    """A table with per-column overrides (Grafana 10+ ``cellOptions`` form)."""

    unit: str = attr.ib(default="short", validator=instance_of(str))
    overrides: list[dict[str, Any]] = attr.ib(factory=list)
    sort_by: str | None = attr.ib(default=None)

    def to_json_data(self) -> dict[str, Any]:
        return self.panel_json(
            {
                "type": "table",
                "fieldConfig": {
                    "defaults": {
                        "color": {"mode": "thresholds"},
                        "custom": {
                            "align": "auto",
                            "cellOptions": {"type": "auto"},
                            "inspect": False,
                        },
                        "mappings": [],
                        "unit": self.unit,
                    },
                    "overrides": self.overrides,
                },
                "options": {
                    "cellHeight": "sm",
                    "footer": {"countRows": False, "fields": "", "reducer": ["sum"], "show": False},
                    "showHeader": True,
                    "sortBy": [{"desc": True, "displayName": self.sort_by}] if self.sort_by else [],
                },
            }
        )


def heatmap(title: str, description: str, target: PromTarget, *, unit: str) -> HeatmapPanel:
    """A heatmap of one bucketed query (``fmt="heatmap"``, legend ``{{le}}``)."""
    fields: dict[str, Any] = {
        "title": title,
        "description": description,
        "dataSource": PROMETHEUS,
        "targets": [target],
        "thresholds": steps(GREEN),
        "unit": unit,
    }
    return HeatmapPanel(**fields)


def table(
    title: str,
    description: str,
    queries: list[PromTarget],
    *,
    transformations: list[dict[str, Any]],
    overrides: list[dict[str, Any]],
    sort_by: str | None = None,
    unit: str = "short",
) -> TablePanel:
    """A table of instant queries joined by ``transformations``, columns set by ``overrides``."""
    fields: dict[str, Any] = {
        "title": title,
        "description": description,
        "dataSource": PROMETHEUS,
        "targets": queries,
        "transformations": transformations,
        "overrides": overrides,
        "sort_by": sort_by,
        "thresholds": steps(GREEN),
        "unit": unit,
    }
    return TablePanel(**fields)


def column(
    name: str, *, unit: str, thresholds: list[ThresholdStep] | None = None, colored: bool = False
) -> dict[str, Any]:
    """A table override giving the column ``name`` a unit (and coloured cells by thresholds)."""
    properties: list[dict[str, Any]] = [{"id": "unit", "value": unit}]
    if thresholds:
        properties.append(
            {
                "id": "thresholds",
                "value": {
                    "mode": "absolute",
                    "steps": [s.to_json_data() for s in thresholds],
                },
            }
        )
    if colored:
        properties.append({"id": "custom.cellOptions", "value": {"type": "color-text"}})
    return {"matcher": {"id": "byName", "options": name}, "properties": properties}


def layout(sections: Sequence[tuple[str, Sequence[tuple[Panel, int, int]]]]) -> list[Panel]:
    """Place ``(title, [(panel, width, height), ...])`` sections on the 24-column grid.

    Each section starts with a row header; its panels flow left to right and wrap. Panel ids
    are assigned in reading order, so they are stable from one generation to the next.
    """
    placed: list[Panel] = []
    y = 0
    next_id = 1
    for title, panels in sections:
        placed.append(
            RowPanel(title=title, gridPos=GridPos(h=1, w=24, x=0, y=y), id=next_id, collapsed=False)
        )
        next_id += 1
        y += 1
        x = 0
        row_height = 0
        for panel, width, height in panels:
            if x + width > 24:
                y += row_height
                x, row_height = 0, 0
            placed.append(
                attr.evolve(panel, gridPos=GridPos(h=height, w=width, x=x, y=y), id=next_id)
            )
            next_id += 1
            x += width
            row_height = max(row_height, height)
        y += row_height
    return placed
