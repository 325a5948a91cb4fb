"""Configuration files of ``hlthz stack``: Prometheus scrape config, Alertmanager routing, Grafana.

Pure functions from inputs to dicts (written as YAML by :mod:`hlthz.tools.stack.control`), so
each can be checked with ``promtool check config`` and ``amtool check-config`` on its own.
"""

from __future__ import annotations

import copy
import urllib.parse
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from hlthz.errors import StackError
from hlthz.net import parse_http_url

__all__ = [
    "StackError",
    "alertmanager_config",
    "default_alertmanager_file",
    "default_rules_file",
    "grafana_datasource",
    "grafana_provisioning_dir",
    "load_yaml",
    "prometheus_config",
    "scrape_target",
    "thresholds_scrape_interval",
]


def _alerts_dir() -> Path:
    import hlthz.alerts

    return Path(hlthz.alerts.__file__).resolve().parent


def default_rules_file() -> Path:
    """The committed rules, ``alerts/generated/hlthz.rules.yml``."""
    return _alerts_dir() / "generated" / "hlthz.rules.yml"


def default_alertmanager_file() -> Path:
    """The committed routing, ``alerts/generated/alertmanager.yml``."""
    return _alerts_dir() / "generated" / "alertmanager.yml"


def grafana_provisioning_dir() -> Path:
    """Where ``hlthz dashboards generate`` puts the Grafana provisioning files."""
    # Located, not imported: importing hlthz.dashboards needs the 'dashboards' extra, and
    # `hlthz stack up --target URL` works without it. hlthz.tools and hlthz.dashboards are
    # siblings both installed and in a checkout (package-dir maps tools/ and dashboards/).
    return Path(__file__).resolve().parents[2] / "dashboards" / "generated" / "provisioning"


def scrape_target(url: str) -> tuple[str, str, str]:
    """``(scheme, host:port, metrics_path)`` of a target URL; the path defaults to /metrics."""
    parsed = parse_http_url(url if "://" in url else f"http://{url}", what="--target")
    return parsed.scheme, parsed.host_port, parsed.base or "/metrics"


def prometheus_config(
    *,
    job: str,
    target_url: str,
    alertmanager: str,
    rule_files: Sequence[str | Path],
    scrape_interval: str,
    evaluation_interval: str,
) -> dict[str, Any]:
    """The scrape config: one job for the API, alerts sent to the stack's Alertmanager."""
    scheme, address, path = scrape_target(target_url)
    return {
        "global": {
            "scrape_interval": scrape_interval,
            "evaluation_interval": evaluation_interval,
        },
        "rule_files": [str(f) for f in rule_files],
        "alerting": {"alertmanagers": [{"static_configs": [{"targets": [alertmanager]}]}]},
        "scrape_configs": [
            {
                "job_name": job,
                "scheme": scheme,
                "metrics_path": path,
                "static_configs": [{"targets": [address]}],
            }
        ],
    }


def _override_timings_child(route: dict[str, Any], timings: dict[str, str]) -> None:
    for key, value in timings.items():
        if key in route:
            route[key] = value
    for child in route.get("routes") or []:
        _override_timings_child(child, timings)


def alertmanager_config(
    base: dict[str, Any],
    sink_url: str,
    *,
    group_wait: str | None = None,
    group_interval: str | None = None,
    repeat_interval: str | None = None,
) -> dict[str, Any]:
    """The generated routing with every receiver replaced by a webhook to the sink.

    Routes, grouping and inhibition stay exactly as generated; only the receivers' integrations
    change (each posts to ``SINK/<receiver name>`` with resolved notifications on), and the
    timings are overridden when given. Global settings of the replaced integrations (SMTP,
    Slack...) and notification templates are dropped: nothing uses them any more.
    """
    config = copy.deepcopy(base)
    receivers = config.get("receivers")
    if not isinstance(receivers, list) or not receivers:
        raise StackError("the Alertmanager config has no receivers; regenerate it")
    for index, receiver in enumerate(receivers):
        if not isinstance(receiver, dict) or not isinstance(receiver.get("name"), str):
            raise StackError(f"receivers.{index}: expected a mapping with a name; regenerate it")
    if not isinstance(config.get("global") or {}, dict):
        raise StackError("global: expected a mapping; regenerate it")
    config["receivers"] = [
        {
            "name": r["name"],
            "webhook_configs": [
                {
                    "url": f"{sink_url}/{urllib.parse.quote(r['name'])}",
                    "send_resolved": True,
                }
            ],
        }
        for r in receivers
    ]
    resolve_timeout = (config.pop("global", None) or {}).get("resolve_timeout")
    if resolve_timeout:
        config = {"global": {"resolve_timeout": resolve_timeout}, **config}
    config.pop("templates", None)
    timings = {
        k: v
        for k, v in (
            ("group_wait", group_wait),
            ("group_interval", group_interval),
            ("repeat_interval", repeat_interval),
        )
        if v
    }
    if timings:
        route = config.get("route")
        if not isinstance(route, dict):
            raise StackError("the Alertmanager config has no route; regenerate it")
        for key, value in timings.items():
            route[key] = value
        for child in route.get("routes") or []:
            _override_timings_child(child, timings)
    return config


def load_yaml(path: Path, what: str, hint: str) -> dict[str, Any]:
    """A YAML mapping from ``path``; :class:`StackError` naming the file and ``hint`` if not."""
    from hlthz.inputs import load_yaml as _load

    def error(name: str, line: int, message: str) -> StackError:
        if message.startswith("no such file"):
            return StackError(f"{name}: {what} not found; {hint}")
        return StackError(f"{name}:{line}: {message}; {hint}" if line else f"{name}: {message}")

    data = _load(path, what=what, max_bytes=64 << 20, error=error).data
    if not isinstance(data, dict):
        raise StackError(f"{path}: expected a YAML mapping; {hint}")
    return data


def thresholds_scrape_interval(thresholds: Path | None) -> str:
    """The ``scrape_interval`` of a thresholds file (None: the packaged default)."""
    from hlthz.alerts import load_config

    config = load_config(thresholds)
    return str(config.scrape_interval)


def grafana_datasource(prometheus_url: str, scrape_interval: str = "15s") -> dict[str, Any]:
    """A Grafana data source provisioning file for the stack's Prometheus; its
    ``timeInterval`` is the scrape interval, which Grafana's ``$__rate_interval`` builds on."""
    return {
        "apiVersion": 1,
        "datasources": [
            {
                "name": "HLTHZ Prometheus",
                "type": "prometheus",
                "access": "proxy",
                "url": prometheus_url,
                "isDefault": True,
                "jsonData": {"timeInterval": scrape_interval},
            }
        ],
    }
