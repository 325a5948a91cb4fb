"""HLTHZ's own lint of generated (or hand-edited) rule files.

promtool proves the rules parse and behave; the lint catches rules that are valid PromQL but bad
alerts: a latency threshold between two histogram buckets (P95 is interpolated there, so the
alert fires on a guess), a rate window over too few scrapes, an alert an on-call engineer cannot
act on (no severity, summary, value in the description, runbook or dashboard link), ``$value``
in labels (every new value makes a new alert), a ratio alert without a traffic floor, an alert
with no promtool test.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from hlthz.alerts.config import AlertsConfig, parse_duration
from hlthz.errors import HlthzError
from hlthz.inputs import load_yaml

SEVERITIES = ("critical", "warning", "info")
_RANGE = re.compile(r"\b(rate|irate|increase|delta|deriv)\s*\(\s*([^\[\)]*)\[(\w+)\]")
# A comparison with a literal (not `> 1.5 * (... offset 1d)`, which is a baseline ratio).
_P95_CMP = re.compile(
    r"http_request_duration_seconds:p\d+_rate\w*(?:\{[^}]*\})?\s*>\s*([0-9][0-9.eE+-]*)"
    r"(?![0-9.eE+-])(?!\s*[*/])"
)
_RATIO = re.compile(r"[a-z_]+:[a-z_]+:ratio_rate\w+")
_FLOOR = re.compile(r"and on \([^)]*\)\s*\(?\s*[a-z_:]+:rate\w+\s*>=\s*[0-9.eE+-]+")


def lint_rules(
    rules_file: Path,
    config: AlertsConfig,
    *,
    runbooks_dir: Path,
    tests_dir: Path | None = None,
) -> list[str]:
    """Findings (one line each, naming the rule) for ``rules_file``; empty when clean."""
    try:
        doc = load_yaml(rules_file, what="rule file", max_bytes=64 << 20).data or {}
    except HlthzError as exc:
        return [f"cannot read rules: {exc}"]
    if not _is_rule_file(doc):
        # promtool reports the details; the lint only needs to not crash on it.
        return [f"{rules_file}: not a Prometheus rule file (expected groups: [{{name, rules}}])"]
    findings: list[str] = []
    tested = _tested_alerts(tests_dir) if tests_dir is not None else None
    scrape = config.scrape_interval.seconds
    bounds = config.buckets.request_duration_seconds
    for group in doc.get("groups") or []:
        for rule in group.get("rules") or []:
            name = rule.get("alert") or rule.get("record") or "?"
            where = f"{rules_file.name}: {group.get('name')}/{name}"
            expr = str(rule.get("expr", ""))
            for func, _, window in _RANGE.findall(expr):
                try:
                    seconds = parse_duration(window)
                except ValueError:
                    continue
                if seconds < 4 * scrape:
                    findings.append(
                        f"{where}: {func}(...[{window}]) covers fewer than 4 scrapes of "
                        f"{config.scrape_interval}; widen the window"
                    )
            if "alert" not in rule:
                continue
            findings += [f"{where}: {problem}" for problem in _lint_alert(rule, runbooks_dir)]
            for threshold in _P95_CMP.findall(expr):
                value = float(threshold)
                if not any(math.isclose(value, b, rel_tol=1e-9) for b in bounds):
                    findings.append(
                        f"{where}: latency threshold {threshold} is not a bucket boundary of "
                        "buckets.request_duration_seconds; P95 there is an interpolated guess"
                    )
            if _RATIO.search(expr) and not _FLOOR.search(expr):
                findings.append(
                    f"{where}: ratio alert without a traffic floor "
                    "(`and on (job) <requests rate> >= min_request_rate`)"
                )
            if tested is not None and name not in tested:
                findings.append(f"{where}: no promtool test in {tests_dir} checks this alert")
    return findings


def _is_rule_file(doc: Any) -> bool:
    if not isinstance(doc, dict) or not isinstance(doc.get("groups") or [], list):
        return False
    for group in doc.get("groups") or []:
        if not isinstance(group, dict) or not isinstance(group.get("rules") or [], list):
            return False
        if not all(isinstance(rule, dict) for rule in group.get("rules") or []):
            return False
    return True


def _lint_alert(rule: dict[str, Any], runbooks_dir: Path) -> Iterable[str]:
    labels = rule.get("labels") or {}
    annotations = rule.get("annotations") or {}
    severity = labels.get("severity")
    if severity not in SEVERITIES:
        yield f"label severity is {severity!r}; use one of {', '.join(SEVERITIES)}"
    for key, value in labels.items():
        if "$value" in str(value) or ".Value" in str(value):
            yield f"label {key} uses $value; every new value would start a new alert"
    if not annotations.get("summary"):
        yield "annotation summary is missing"
    description = str(annotations.get("description", ""))
    if not description:
        yield "annotation description is missing"
    elif "$value" not in description:
        yield "annotation description does not show the measured value ({{ $value }})"
    runbook = str(annotations.get("runbook_url", ""))
    if not runbook:
        yield "annotation runbook_url is missing"
    else:
        page = Path(urlparse(runbook).path).name
        if not page.endswith(".md"):
            # `links.runbook_url` may point at a wiki (`.../OPS/{alert}`, `?alert={alert}`):
            # what must exist is the runbook generated for this alert, to publish there.
            page = f"{rule.get('alert')}.md"
        if not (runbooks_dir / page).is_file():
            yield f"runbook_url {runbook} has no runbook file {runbooks_dir / page}"
    dashboard = str(annotations.get("dashboard_url", ""))
    if not dashboard:
        yield "annotation dashboard_url is missing"
    elif urlparse(dashboard).scheme not in ("http", "https"):
        yield f"dashboard_url {dashboard} is not an http(s) URL"


def _tested_alerts(tests_dir: Path) -> set[str]:
    names: set[str] = set()
    for path in sorted(tests_dir.glob("*.yml")):
        try:
            doc = load_yaml(path, what="promtool test file", max_bytes=64 << 20).data or {}
        except HlthzError:
            continue
        if not isinstance(doc, dict) or not isinstance(doc.get("tests"), list):
            continue
        for test in doc.get("tests") or []:
            for check in test.get("alert_rule_test") or []:
                if check.get("exp_alerts"):
                    names.add(str(check.get("alertname")))
    return names
