"""Run every panel query of the dashboards against a real Prometheus.

Grafana variables are substituted the way Grafana would with "All" selected (``$job`` becomes
``.+``, or the ``--job`` given), ``$__rate_interval`` becomes four scrape intervals, and each
query runs as an instant query through ``/api/v1/query``. A panel fails when a query errors or
when every query of the panel returns no series, unless the panel is in
:data:`EXPECTED_EMPTY` (panels that stay empty in a healthy system, each with the reason) or
reads a metric family the app does not emit at all (skipped, saying which: see ``signals``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from hlthz.alerts import SIGNAL_SERIES, signal_of
from hlthz.dashboards.common import iter_panels
from hlthz.errors import QueryError as _QueryError
from hlthz.prometheus import PrometheusClient

# (dashboard uid, panel title) -> why that panel has no series in a healthy system.
EXPECTED_EMPTY: dict[tuple[str, str], str] = {
    ("hlthz-database", "N+1 detections"): (
        "database_n_plus_one_total gets a series only when a request repeats one query shape "
        "N times; a healthy app never does"
    ),
    ("hlthz-database", "Pool acquire timeouts"): (
        "db_pool_acquire_timeouts_total has no series until an acquisition times out"
    ),
    ("hlthz-cache-jobs", "Job failures and retries"): (
        "jobs_total has outcome=failure/retry series only after a job failed or was retried"
    ),
    ("hlthz-release", "Skipped requests by reason"): (
        "hlthz_replay_skipped_total has series only when the replay skipped requests"
    ),
}
# Dashboards whose data exists only while something runs: (metric that proves it, reason).
REQUIRES_SOURCE: dict[str, tuple[str, str]] = {
    "hlthz-release": (
        "hlthz_replay_requests_total",
        "replay metrics exist only while `hlthz replay run --metrics-port` is being scraped",
    ),
}

OK = "ok"
ERROR = "error"
EMPTY = "empty"
EXPECTED = "expected-empty"
SKIPPED = "skipped"

_BUILTINS = {"__range": "1h", "__range_s": "3600", "__range_ms": "3600000"}
_VARIABLE = re.compile(r"\$\{(\w+)(?::[^}]*)?\}|\$(\w+)|\[\[(\w+)(?::[^\]]*)?\]\]")
_LABEL_VALUES = re.compile(r"^\s*label_values\((.*),\s*(\w+)\s*\)\s*$", re.S)


@dataclass
class PanelResult:
    """What one panel's queries returned: ``status`` is ok, error, empty or expected-empty."""

    dashboard: str
    panel: str
    status: str
    detail: str = ""
    queries: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        if self.status == EXPECTED:
            return f"{self.dashboard} / {self.panel}: empty (expected: {self.detail})"
        if self.status == SKIPPED:
            return f"{self.dashboard} / {self.panel}: skipped ({self.detail})"
        detail = f": {self.detail}" if self.detail else ""
        return f"{self.dashboard} / {self.panel}: {self.status}{detail}"

    @property
    def failed(self) -> bool:
        return self.status in (ERROR, EMPTY)


def substitute(expr: str, values: Mapping[str, str]) -> str:
    """Replace Grafana variables (``$x``, ``${x}``, ``${x:fmt}``, ``[[x]]``) in ``expr``.

    A variable missing from ``values`` is left alone (and Prometheus will then say so).
    """

    def replace(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2) or match.group(3)
        return values.get(name, match.group(0))

    return _VARIABLE.sub(replace, expr)


def promql_regex_literal(value: str) -> str:
    """``value`` matched literally by ``=~"..."``: regex-escaped, then escaped for the string."""
    return re.escape(value).replace("\\", "\\\\")


def variable_values(
    rate_interval: str, job: str | None = None, extra: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The substitutions for a check: every template variable matches all values (``.+``)."""
    values = {
        "__rate_interval": rate_interval,
        "__interval": rate_interval,
        **_BUILTINS,
        "job": promql_regex_literal(job) if job else ".+",
        "instance": ".+",
        "route": ".+",
        "run": ".+",
    }
    values.update(extra or {})
    return values


class SignalProbe:
    """Whether the scraped app emits each signal's metrics (asked once per signal and scope).

    ``absent`` collects what was found missing: ``{signal: series names}``.
    """

    def __init__(self, client: PrometheusClient, job: str) -> None:
        self.client = client
        self.job = job
        self.absent: dict[str, str] = {}
        self._seen: dict[tuple[str, tuple[str, ...]], bool] = {}

    def emits(self, signal: str, scope: tuple[str, ...] = ()) -> bool:
        key = (signal, scope)
        if key not in self._seen:
            names = "|".join(SIGNAL_SERIES[signal])
            matchers = ", ".join([f'__name__=~"{names}"', f'job=~"{self.job}"', *scope])
            found = bool(self.client.query(f"count({{{matchers}}})"))
            self._seen[key] = found
            if not found:
                self.absent[signal] = ", ".join(SIGNAL_SERIES[signal])
        return self._seen[key]


def _base_uid(uid: str) -> str:
    for base in ("hlthz-cache-jobs", "hlthz-database", "hlthz-release", "hlthz-api"):
        if uid == base or uid.startswith(base + "-"):
            return base
    return uid


def check_dashboard(
    board: dict[str, Any],
    client: PrometheusClient,
    values: Mapping[str, str],
    *,
    scope: tuple[str, ...] = (),
    scope_reason: str = "",
    probe: SignalProbe | None = None,
) -> list[PanelResult]:
    """Run the panel, variable and annotation queries of one dashboard.

    ``scope`` are the matchers of the jobs the dashboard is for (a service's): when no such job
    is scraped every query is skipped with ``scope_reason``. With a ``probe``, a query of a
    metric family the app does not emit (``signals``) is skipped, saying so, instead of
    failing as empty.
    """
    uid = str(board.get("uid", board.get("title", "?")))
    base = _base_uid(uid)
    results: list[PanelResult] = []
    source_reason = None
    if base in REQUIRES_SOURCE:
        metric, reason = REQUIRES_SOURCE[base]
        if not client.query(f"count({metric})"):
            source_reason = reason
    skip_all = None
    if scope and base != "hlthz-release":
        anchor = ", ".join(['job=~"' + values.get("job", ".+") + '"', *scope])
        if not client.query(f"count(http_request_duration_seconds_count{{{anchor}}})"):
            skip_all = scope_reason or "no job of this dashboard's scope is scraped"

    def judge(result: PanelResult, reason: str | None) -> PanelResult:
        if skip_all and result.status in (EMPTY, OK):
            result.status, result.detail = SKIPPED, skip_all
            return result
        signal = signal_of(" ".join(result.queries))
        absent = (
            result.status == EMPTY
            and probe is not None
            and signal is not None
            and not probe.emits(signal, scope)
        )
        if absent and signal is not None:
            result.status = SKIPPED
            result.detail = (
                f"this app does not emit {signal} metrics: no {SIGNAL_SERIES[signal][0]} "
                "series; drop it from signals in hlthz.yaml (`hlthz init --from-metrics` "
                "detects them)"
            )
            return result
        return _expected(result, reason)

    for variable in board.get("templating", {}).get("list", []):
        if variable.get("type") != "query":
            continue
        raw = variable.get("query")
        text = raw.get("query", "") if isinstance(raw, dict) else str(raw or "")
        expr = _variable_expr(text)
        if expr is None:
            continue
        result = _run(uid, f"variable ${variable['name']}", [substitute(expr, values)], client)
        results.append(judge(result, source_reason))

    for panel in iter_panels(board):
        if panel.get("type") == "row":
            continue
        exprs = [
            substitute(str(t["expr"]), values)
            for t in panel.get("targets", [])
            if t.get("expr") and not t.get("hide")
        ]
        if not exprs:
            continue
        result = _run(uid, str(panel.get("title", "")), exprs, client)
        results.append(judge(result, EXPECTED_EMPTY.get((base, result.panel), source_reason)))

    for annotation in board.get("annotations", {}).get("list", []):
        if not annotation.get("expr"):
            continue
        result = _run(
            uid,
            f"annotation {annotation.get('name')!r}",
            [substitute(str(annotation["expr"]), values)],
            client,
        )
        # Alerts fire only when something is wrong: no series is the healthy answer.
        results.append(judge(result, "no alert is firing"))
    return results


def _variable_expr(query: str) -> str | None:
    """PromQL equivalent to a ``label_values(series, label)`` variable query, if it is one."""
    match = _LABEL_VALUES.match(query)
    if not match:
        return None
    return f"count by ({match.group(2)}) ({match.group(1)})"


def _run(uid: str, name: str, exprs: list[str], client: PrometheusClient) -> PanelResult:
    empty = 0
    for expr in exprs:
        try:
            if not client.query(expr):
                empty += 1
        except _QueryError as exc:
            return PanelResult(uid, name, ERROR, f"{exc} in: {expr}", exprs)
    if empty == len(exprs):
        return PanelResult(uid, name, EMPTY, "no series", exprs)
    return PanelResult(uid, name, OK, "", exprs)


def _expected(result: PanelResult, reason: str | None) -> PanelResult:
    if result.status == EMPTY and reason:
        result.status = EXPECTED
        result.detail = reason
    return result
