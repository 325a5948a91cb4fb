"""Load and validate the project file, ``hlthz.yaml`` (the thresholds file).

One file drives the alert rules, the Alertmanager routing, the runbooks, the promtool tests and
the dashboards, so every value is checked before anything is generated. Besides the thresholds
it says which services (Prometheus jobs) the app has, with their own thresholds and routes,
which metric families it emits (``signals``), and where alerts go (``receivers``,
``routing``). A key the user leaves out takes its value from the packaged default file; a
key the schema does not know, a value of the wrong type, a malformed or negative duration, a
latency threshold that is not a histogram bucket boundary, or a rate window shorter than four
scrape intervals is a :class:`ConfigError` whose message is one line:
``FILE:LINE: key.path: problem; what to do``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from hlthz.errors import ConfigError
from hlthz.inputs import excerpt, load_yaml

#: The thresholds file shipped with the package (also the source of every default).
DEFAULT_CONFIG_PATH = Path(__file__).resolve().parent / "thresholds.yaml"

_DURATION_RE = re.compile(
    r"^(?:(\d+)y)?(?:(\d+)w)?(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?(?:(\d+)ms)?$"
)
#: The longest duration a thresholds file may set: one year.
MAX_DURATION_SECONDS = 365 * 86400
_UNIT_SECONDS = (365 * 86400, 7 * 86400, 86400, 3600, 60, 1, 0.001)
_UNIT_NAMES = ("y", "w", "d", "h", "m", "s", "ms")


class Duration(str):
    """A Prometheus duration such as ``5m`` or ``1h30m``: the string itself, plus ``.seconds``."""

    __slots__ = ()

    @property
    def seconds(self) -> float:
        """The duration in seconds (``Duration("1m30s").seconds == 90``)."""
        return parse_duration(self)

    @classmethod
    def from_seconds(cls, seconds: float) -> Duration:
        """The shortest Prometheus spelling of ``seconds`` (``90`` -> ``1m30s``)."""
        return cls(format_duration(seconds))


def parse_duration(text: str) -> float:
    """Seconds in a Prometheus duration; :class:`ValueError` when it is not one."""
    match = _DURATION_RE.match(text)
    if not text or match is None:
        raise ValueError(f"{text[:40]!r} is not a Prometheus duration")
    return sum(int(n) * unit for n, unit in zip(match.groups(), _UNIT_SECONDS, strict=True) if n)


def format_duration(seconds: float) -> str:
    """Format ``seconds`` the way Prometheus does (``3600`` -> ``1h``, ``0`` -> ``0s``)."""
    millis = round(seconds * 1000)
    if millis < 0:
        raise ValueError(f"negative duration: {seconds}")
    if millis == 0:
        return "0s"
    parts = []
    for unit, name in zip(_UNIT_SECONDS, _UNIT_NAMES, strict=True):
        unit_ms = round(unit * 1000)
        if millis >= unit_ms:
            parts.append(f"{millis // unit_ms}{name}")
            millis %= unit_ms
    return "".join(parts)


@dataclass(frozen=True)
class Buckets:
    """Histogram bucket boundaries (seconds) the exporter is configured with."""

    request_duration_seconds: tuple[float, ...]
    query_duration_seconds: tuple[float, ...]


_LINK_TOKEN = re.compile(r"\{\{.*?\}\}|\{(\w*)\}|[{}]", re.S)
_LABEL_TEMPLATE = re.compile(r"\{\{-?\s*\$labels\.(\w+)\s*-?\}\}")


def expand_link(pattern: str, **values: str) -> str:
    """``pattern`` with ``{name}`` placeholders replaced by ``values``.

    Prometheus templates (``{{ $labels.job }}``) are kept as they are, so an alert's link can
    carry its labels; a placeholder not in ``values`` raises :class:`KeyError`. Alerts and
    dashboards both expand links here, so braces mean the same everywhere.
    """

    def replace(match: re.Match[str]) -> str:
        text = match.group(0)
        if text.startswith("{{"):
            return text
        name = match.group(1)
        if name is None or name not in values:
            raise KeyError(name or text)
        return values[name]

    return _LINK_TOKEN.sub(replace, pattern)


def grafana_link(url: str, variables: tuple[str, ...] = ("job", "instance")) -> str:
    """An expanded link for a Grafana dashboard: ``{{ $labels.job }}`` becomes ``${job}`` (the
    dashboard's variable); a label the dashboard has no variable for becomes empty."""
    return _LABEL_TEMPLATE.sub(
        lambda m: "${" + m.group(1) + "}" if m.group(1) in variables else "", url
    )


@dataclass(frozen=True)
class Links:
    """URL patterns put in every alert's annotations (``{{ $labels.x }}`` allowed)."""

    runbook_url: str
    dashboard_url: str

    def runbook(self, alert: str) -> str:
        """The runbook URL of ``alert``."""
        return expand_link(self.runbook_url, alert=alert)

    def dashboard(self, dashboard_uid: str) -> str:
        """The URL of the Grafana dashboard ``dashboard_uid``."""
        return expand_link(self.dashboard_url, dashboard_uid=dashboard_uid)


@dataclass(frozen=True)
class ThresholdAlert:
    """An alert on a value crossing ``threshold`` for ``for_`` (YAML key ``for``)."""

    threshold: float
    for_: Duration


@dataclass(frozen=True)
class StateAlert:
    """An alert on a state (no threshold) lasting ``for_``."""

    for_: Duration


@dataclass(frozen=True)
class TargetMissingAlert:
    """``up == 0``, or a job that had targets within ``lookback`` and has none now."""

    for_: Duration
    lookback: Duration


@dataclass(frozen=True)
class DegradedAlert:
    """P95 more than ``ratio`` times its value ``offset`` ago."""

    ratio: float
    offset: Duration
    for_: Duration


@dataclass(frozen=True)
class TrafficAlert:
    """Request rate more than ``zscore`` standard deviations from its mean over ``window``."""

    zscore: float
    window: Duration
    for_: Duration


@dataclass(frozen=True)
class CriticalAlerts:
    latency_p95: ThresholdAlert
    error_rate: ThresholdAlert
    pool_exhausted: StateAlert
    target_missing: TargetMissingAlert


@dataclass(frozen=True)
class WarningAlerts:
    latency_p95: ThresholdAlert
    memory: ThresholdAlert
    cache_hit_rate: ThresholdAlert


@dataclass(frozen=True)
class InfoAlerts:
    latency_degraded: DegradedAlert
    unusual_traffic: TrafficAlert


@dataclass(frozen=True)
class AlertTiers:
    critical: CriticalAlerts
    warning: WarningAlerts
    info: InfoAlerts


@dataclass(frozen=True)
class Slo:
    """An availability objective (``0.999``) over ``window``: adds burn-rate alerts."""

    availability: float
    window: Duration


#: The metric families an app may emit besides requests and process metrics.
SIGNALS = ("database", "pool", "cache", "jobs")
#: Methods a route key may start with (``POST /api/orders``).
METHODS = ("GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH")
SEVERITIES = ("critical", "warning", "info")


def promql_string(value: str) -> str:
    """``value`` as a double-quoted PromQL string literal."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


@dataclass(frozen=True)
class RouteRule:
    """A route with its own treatment: ``exclude`` takes it out of its job's request rate,
    error ratio and P95; ``latency`` (critical, warning) gives it its own P95 alerts."""

    key: str
    method: str | None
    route: str
    exclude: bool = False
    latency: tuple[ThresholdAlert, ThresholdAlert] | None = None

    @property
    def matchers(self) -> tuple[str, ...]:
        """``('method="POST"', 'route="/api/orders"')``; no method matcher for any method."""
        method = (f"method={promql_string(self.method)}",) if self.method else ()
        return (*method, f"route={promql_string(self.route)}")

    @property
    def by(self) -> str:
        """The labels route series keep: ``job, method, route`` or ``job, route``."""
        return "job, method, route" if self.method else "job, route"


@dataclass(frozen=True)
class SeverityRoute:
    """Where one severity goes, and Alertmanager's timings for it (``None``: inherited)."""

    receiver: str
    group_by: tuple[str, ...] | None = None
    group_wait: Duration | None = None
    group_interval: Duration | None = None
    repeat_interval: Duration | None = None


@dataclass(frozen=True)
class Routing:
    """Alertmanager routing: a receiver per severity, the fallback receiver, and the timings."""

    critical: SeverityRoute
    warning: SeverityRoute
    info: SeverityRoute
    default: str
    group_by: tuple[str, ...]
    group_wait: Duration
    group_interval: Duration
    repeat_interval: Duration

    def severity(self, name: str) -> SeverityRoute:
        """The route of severity ``name``."""
        route: SeverityRoute = getattr(self, name)
        return route


@dataclass(frozen=True)
class Scope:
    """The jobs one set of thresholds applies to: a service, or every job no service names.

    ``job_matchers`` select those jobs (``job="shop"``, or ``job!="shop"`` per service for the
    default scope); the rest is the scope's resolved settings.
    """

    service: str | None
    job_matchers: tuple[str, ...]
    alerts: AlertTiers
    min_request_rate: float
    slo: Slo | None
    signals: tuple[str, ...]
    routes: tuple[RouteRule, ...]
    links: Links
    routing: Routing | None = None

    @property
    def excluded(self) -> tuple[RouteRule, ...]:
        """Routes taken out of the job's aggregates."""
        return tuple(r for r in self.routes if r.exclude)

    @property
    def route_latency(self) -> tuple[RouteRule, ...]:
        """Routes with their own P95 thresholds."""
        return tuple(r for r in self.routes if r.latency is not None)

    @property
    def suffix(self) -> str:
        """``""`` for the default scope, ``"-shop"`` for service ``shop`` (dashboard UIDs)."""
        return f"-{self.service}" if self.service else ""


@dataclass(frozen=True)
class Service:
    """One entry of ``services``: a Prometheus job with its own resolved settings."""

    name: str
    alerts: AlertTiers
    min_request_rate: float
    slo: Slo | None
    signals: tuple[str, ...]
    routes: tuple[RouteRule, ...]
    links: Links
    routing: Routing | None


@dataclass(frozen=True)
class AlertsConfig:
    """The validated project file. ``source`` is the file it came from.

    The top-level thresholds are the defaults of every job; ``services`` override them per job.
    ``receivers`` and ``alertmanager`` (``global``, ``templates``, ``time_intervals``...) are
    Alertmanager configuration kept verbatim.
    """

    version: int
    selector: str
    scrape_interval: Duration
    rate_window: Duration
    min_request_rate: float
    buckets: Buckets
    links: Links
    alerts: AlertTiers
    slo: Slo | None
    source: Path
    signals: tuple[str, ...] = SIGNALS
    routes: tuple[RouteRule, ...] = ()
    services: tuple[Service, ...] = ()
    receivers: tuple[dict[str, Any], ...] = ()
    alertmanager: dict[str, Any] = field(default_factory=dict)
    routing: Routing | None = None

    @property
    def matchers(self) -> str:
        """The selector to append inside ``{...}``: ``''`` or ``, job=~"a"``."""
        return f", {self.selector}" if self.selector else ""

    @property
    def scopes(self) -> tuple[Scope, ...]:
        """The default scope (every job no service names), then one scope per service."""
        default = Scope(
            service=None,
            job_matchers=tuple(f"job!={promql_string(s.name)}" for s in self.services),
            alerts=self.alerts,
            min_request_rate=self.min_request_rate,
            slo=self.slo,
            signals=self.signals,
            routes=self.routes,
            links=self.links,
        )
        return (
            default,
            *(
                Scope(
                    service=s.name,
                    job_matchers=(f"job={promql_string(s.name)}",),
                    alerts=s.alerts,
                    min_request_rate=s.min_request_rate,
                    slo=s.slo,
                    signals=s.signals,
                    routes=s.routes,
                    links=s.links,
                    routing=s.routing,
                )
                for s in self.services
            ),
        )

    @property
    def all_signals(self) -> tuple[str, ...]:
        """Every signal some scope has, in :data:`SIGNALS` order."""
        found = {sig for scope in self.scopes for sig in scope.signals}
        return tuple(sig for sig in SIGNALS if sig in found)


# --------------------------------------------------------------------------------------------
# Loading


def load_config(path: str | Path | None = None) -> AlertsConfig:
    """Read and validate a project file (``None``: the packaged default thresholds file).

    Keys left out of ``path`` take the packaged default's values, so a small file that only
    changes a few thresholds is complete. Raises :class:`ConfigError` with a one-line message.
    """
    default_doc, _ = _read_yaml(DEFAULT_CONFIG_PATH)
    if path is None:
        return _Validator(DEFAULT_CONFIG_PATH, default_doc, {}).build()
    source = Path(path)
    doc, lines = _read_yaml(source)
    _shorthands(doc)
    merged = _merge(default_doc, doc)
    return _Validator(source, merged, lines).build()


def _shorthands(doc: dict[str, Any]) -> None:
    """``routing: {critical: pager}`` means ``{critical: {receiver: pager}}`` (so the default
    timings of the severity are kept when the user only names a receiver)."""
    routings = [doc.get("routing")]
    services = doc.get("services")
    if isinstance(services, dict):
        routings += [s.get("routing") for s in services.values() if isinstance(s, dict)]
    for routing in routings:
        if isinstance(routing, dict):
            for severity in SEVERITIES:
                if isinstance(routing.get(severity), str):
                    routing[severity] = {"receiver": routing[severity]}


def _read_yaml(
    path: Path, what: str = "thresholds file"
) -> tuple[dict[str, Any], dict[tuple[str, ...], int]]:
    # hlthz.inputs bounds the file's size, nesting and alias expansion and refuses duplicate
    # keys and non-finite or huge numbers, so nothing below meets them.
    document = load_yaml(path, what=what)
    doc = document.data
    if doc is None:
        doc = {}
    if not isinstance(doc, dict):
        raise ConfigError(f"{path}:1: the {what} must be a mapping of keys to values")
    return doc, dict(document.lines)


def _merge(default: Any, override: Any) -> Any:
    if isinstance(default, dict) and isinstance(override, dict):
        merged = dict(default)
        for key, value in override.items():
            merged[key] = _merge(default.get(key), value) if key in default else value
        return merged
    return override


# --------------------------------------------------------------------------------------------
# Validation


class _Validator:
    """Builds the dataclass tree while checking each value, naming the key path on error."""

    def __init__(
        self,
        source: Path,
        doc: dict[str, Any],
        lines: Mapping[tuple[str, ...], int],
        *,
        prefix: tuple[str, ...] = (),
        own: Any = None,
    ) -> None:
        self.source = source
        self.doc = doc
        self.lines = lines
        # A service's validator: its keys are named under ``prefix`` (services.NAME); ``own`` is
        # what the service itself wrote, to tell its values from inherited ones.
        self.prefix = prefix
        self.own = own

    def fail(self, path: tuple[str, ...], message: str) -> ConfigError:
        inherited = False
        if self.prefix:
            written = _has_path(self.own, path[:1])
            inherited = not _has_path(self.own, path)
            lookup = (*self.prefix, *path) if written else path
            path = (*self.prefix, *path)
        else:
            lookup = path
        line = None
        for depth in range(len(lookup), -1, -1):
            line = self.lines.get(lookup[:depth])
            if line is not None:
                break
        where = f"{self.source}:{line}" if line is not None else str(self.source)
        key = ".".join(path)
        if inherited and path:
            message += "; the value is inherited from the top level: set it for this service"
        return ConfigError(f"{where}: {key}: {message}" if key else f"{where}: {message}")

    def optional(self, path: tuple[str, ...], allowed: tuple[str, ...]) -> dict[str, Any]:
        """A mapping whose keys are all optional (each must be one of ``allowed``)."""
        value = self.get(path)
        if value is None:
            return {}
        if not isinstance(value, dict):
            raise self.fail(path, f"expected a mapping with keys among {', '.join(allowed)}")
        for key in value:
            if key not in allowed:
                raise self.fail(
                    (*path, str(key)), f"unknown key; expected one of {', '.join(allowed)}"
                )
        return value

    # -- typed getters ------------------------------------------------------------------

    def mapping(self, path: tuple[str, ...], allowed: tuple[str, ...]) -> dict[str, Any]:
        value = self.get(path)
        if not isinstance(value, dict):
            raise self.fail(path, f"expected a mapping with keys {', '.join(allowed)}")
        for key in value:
            if key not in allowed:
                raise self.fail(
                    (*path, str(key)),
                    f"unknown key; expected one of {', '.join(allowed)}",
                )
        for key in allowed:
            if key not in value:
                raise self.fail((*path, key), "missing key")
        return value

    def get(self, path: tuple[str, ...]) -> Any:
        value: Any = self.doc
        for key in path:
            value = value[key]
        return value

    def number(
        self,
        path: tuple[str, ...],
        *,
        low: float | None = None,
        high: float | None = None,
        low_open: bool = True,
        high_open: bool = True,
    ) -> float:
        value = self.get(path)
        if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
            raise self.fail(path, f"expected a number, got {_show(value)}")
        value = float(value)
        if low is not None and (value < low or (low_open and value == low)):
            bound = f"above {_num(low)}" if low_open else f"at least {_num(low)}"
            raise self.fail(path, f"{_num(value)} is out of range; it must be {bound}")
        if high is not None and (value > high or (high_open and value == high)):
            bound = f"below {_num(high)}" if high_open else f"at most {_num(high)}"
            raise self.fail(path, f"{_num(value)} is out of range; it must be {bound}")
        return value

    def duration(self, path: tuple[str, ...], *, allow_zero: bool = False) -> Duration:
        value = self.get(path)
        if isinstance(value, bool) or not isinstance(value, str | int):
            raise self.fail(path, f"expected a duration like 30s, 5m or 1d, got {_show(value)}")
        text = str(value).strip()
        if isinstance(value, int) and value == 0:
            text = "0s"
        if text.startswith("-"):
            raise self.fail(
                path, f"{excerpt(text)[1:-1]} is negative; durations must be positive, like 5m"
            )
        try:
            seconds = parse_duration(text)
        except ValueError:
            raise self.fail(
                path,
                f"{excerpt(text)} is not a Prometheus duration; write it like 30s, 5m, 1h30m or 1d",
            ) from None
        if seconds == 0 and not allow_zero:
            raise self.fail(path, f"{text} is zero; it must be positive, like 5m")
        if seconds > MAX_DURATION_SECONDS:
            # Prometheus stops at 292 years, and the promtool tests generated for a longer
            # 'for' would have to simulate every scrape of it.
            raise self.fail(
                path, f"{excerpt(text)[1:-1]} is longer than 1y; write at most 1y, like 30d"
            )
        return Duration(text)

    def boundaries(self, path: tuple[str, ...]) -> tuple[float, ...]:
        value = self.get(path)
        if not isinstance(value, list) or not value:
            raise self.fail(path, "expected a non-empty list of bucket boundaries in seconds")
        out: list[float] = []
        for index, item in enumerate(value):
            if isinstance(item, bool) or not isinstance(item, int | float) or not item > 0:
                raise self.fail(
                    (*path, str(index)), f"expected a positive number, got {excerpt(item)}"
                )
            if not math.isfinite(item):
                # The exporter adds +Inf itself; listed here it would pass for the largest
                # measurable boundary and let a threshold sit where P95 can never exceed it.
                raise self.fail(
                    (*path, str(index)), "+Inf is implicit; list only the finite boundaries"
                )
            if out and item <= out[-1]:
                raise self.fail(
                    (*path, str(index)), f"{_num(item)} is not above {_num(out[-1])}; sort them"
                )
            out.append(float(item))
        return tuple(out)

    # -- sections -----------------------------------------------------------------------

    def build(self) -> AlertsConfig:
        self.mapping(
            (),
            (
                "version",
                "selector",
                "scrape_interval",
                "rate_window",
                "min_request_rate",
                "buckets",
                "links",
                "alerts",
                "slo",
                "signals",
                "routes",
                "services",
                "receivers",
                "routing",
            ),
        )
        version = self.get(("version",))
        if version != 1 or isinstance(version, bool):
            raise self.fail(("version",), f"unsupported version {_show(version)}; write 1")
        selector = self.selector(("selector",))
        scrape = self.duration(("scrape_interval",))
        window = self.duration(("rate_window",))
        if window.seconds < 4 * scrape.seconds:
            raise self.fail(
                ("rate_window",),
                f"{window} is shorter than 4 x scrape_interval ({scrape}); rates over fewer "
                f"than four scrapes jump and miss data, use at least "
                f"{format_duration(4 * scrape.seconds)}",
            )
        min_rate = self.number(("min_request_rate",), low=0, low_open=False)
        self.mapping(("buckets",), ("request_duration_seconds", "query_duration_seconds"))
        buckets = Buckets(
            self.boundaries(("buckets", "request_duration_seconds")),
            self.boundaries(("buckets", "query_duration_seconds")),
        )
        links = self.links()
        tiers = self.tiers(buckets, window)
        slo = self.slo()
        signals = self.signals()
        routes = self.routes(tiers, buckets)
        receivers, extra = self.receivers()
        names = {r["name"] for r in receivers}
        routing = self.routing(names)
        config = AlertsConfig(
            version=1,
            selector=selector,
            scrape_interval=scrape,
            rate_window=window,
            min_request_rate=min_rate,
            buckets=buckets,
            links=links,
            alerts=tiers,
            slo=slo,
            source=self.source,
            signals=signals,
            routes=routes,
            receivers=receivers,
            alertmanager=extra,
            routing=routing,
        )
        return replace(config, services=self.services(config, names))

    def selector(self, path: tuple[str, ...]) -> str:
        value = self.get(path)
        if value is None:
            return ""
        if not isinstance(value, str):
            raise self.fail(path, f"expected PromQL label matchers as a string, got {_show(value)}")
        from hlthz.alerts.selector import parse_selector, sample_labels
        from hlthz.errors import SelectorError

        try:
            matchers = parse_selector(value)
            # The promtool tests need series the selector matches: checked here, so alerts
            # generate and dashboards generate refuse the same selectors with the same line.
            sample_labels(matchers, {"job": "api", "instance": "127.0.0.1:8000"})
        except SelectorError as exc:
            raise self.fail(path, f'{exc}; write matchers like job=~"shop|api"') from None
        return ", ".join(str(m) for m in matchers)

    def links(self) -> Links:
        self.mapping(("links",), ("runbook_url", "dashboard_url"))
        values = {}
        for key, placeholder in (("runbook_url", "alert"), ("dashboard_url", "dashboard_uid")):
            path = ("links", key)
            value = self.get(path)
            if not isinstance(value, str) or not value:
                raise self.fail(path, f"expected a URL pattern, got {_show(value)}")
            try:
                expand_link(value, **{placeholder: "X"})
            except KeyError:
                raise self.fail(
                    path,
                    f"only the placeholder {{{placeholder}}} and Prometheus templates like "
                    "{{ $labels.job }} may appear in braces",
                ) from None
            if f"{{{placeholder}}}" not in value:
                raise self.fail(path, f"the pattern must contain {{{placeholder}}}")
            values[key] = value
        return Links(**values)

    def signals(self) -> tuple[str, ...]:
        path = ("signals",)
        value = self.get(path)
        if value is None:
            return ()
        if not isinstance(value, list):
            raise self.fail(path, f"expected a list among {', '.join(SIGNALS)}, got {_show(value)}")
        for index, item in enumerate(value):
            if item not in SIGNALS:
                raise self.fail(
                    (*path, str(index)),
                    f"unknown signal {item!r}; the metric families are {', '.join(SIGNALS)}",
                )
        return tuple(sig for sig in SIGNALS if sig in value)

    def routes(self, tiers: AlertTiers, buckets: Buckets) -> tuple[RouteRule, ...]:
        path = ("routes",)
        value = self.get(path)
        if value is None:
            return ()
        if not isinstance(value, dict):
            raise self.fail(path, "expected a mapping of route ('POST /api/orders') to settings")
        rules = []
        for key in value:
            rules.append(self.route((*path, str(key)), str(key), tiers, buckets))
        return tuple(rules)

    def route(
        self, path: tuple[str, ...], key: str, tiers: AlertTiers, buckets: Buckets
    ) -> RouteRule:
        method, _, rest = key.partition(" ")
        if method in METHODS and rest.strip():
            route: str = rest.strip()
            verb: str | None = method
        else:
            route, verb = key.strip(), None
        if not route or " " in route:
            raise self.fail(
                path,
                "a route key is a route template as the exporter labels it, optionally after "
                "a method: '/api/orders/{order_id}' or 'POST /api/orders'",
            )
        entry = self.optional(path, ("exclude", "alerts"))
        exclude = entry.get("exclude", False)
        if not isinstance(exclude, bool):
            raise self.fail((*path, "exclude"), f"expected true or false, got {_show(exclude)}")
        if exclude and verb:
            raise self.fail(
                (*path, "exclude"),
                f"exclude applies to a route under every method; write {route!r} without {verb}",
            )
        latency = None
        if "alerts" in entry:
            latency = self.route_latency((*path, "alerts"), tiers, buckets)
        if not exclude and latency is None:
            raise self.fail(path, "nothing to do for this route; set exclude: true or alerts")
        return RouteRule(key=key, method=verb, route=route, exclude=exclude, latency=latency)

    def route_latency(
        self, path: tuple[str, ...], tiers: AlertTiers, buckets: Buckets
    ) -> tuple[ThresholdAlert, ThresholdAlert]:
        self.optional(path, ("critical", "warning"))
        found = []
        for severity, inherited in (
            ("critical", tiers.critical.latency_p95),
            ("warning", tiers.warning.latency_p95),
        ):
            tier = self.optional((*path, severity), ("latency_p95",))
            here = (*path, severity, "latency_p95")
            own = self.optional(here, ("threshold", "for")) if tier else {}
            alert = ThresholdAlert(
                threshold=self.number((*here, "threshold"), low=0)
                if "threshold" in own
                else inherited.threshold,
                for_=self.duration((*here, "for"), allow_zero=True)
                if "for" in own
                else inherited.for_,
            )
            if "threshold" in own:
                self.on_boundary(here, alert, buckets)
            found.append(alert)
        critical, warning = found
        if warning.threshold >= critical.threshold:
            raise self.fail(
                (*path, "warning", "latency_p95", "threshold"),
                f"{_num(warning.threshold)} must be below the route's critical threshold "
                f"({_num(critical.threshold)}); set both for this route",
            )
        return critical, warning

    def receivers(self) -> tuple[tuple[dict[str, Any], ...], dict[str, Any]]:
        path = ("receivers",)
        value = self.get(path)
        extra: dict[str, Any] = {}
        where = self
        if isinstance(value, str):
            fragment = (self.source.parent / value).resolve()
            doc, lines = _read_yaml(fragment, what="Alertmanager fragment")
            where = _Validator(fragment, doc, lines)
            where.optional((), _FRAGMENT_KEYS)
            extra = {k: v for k, v in doc.items() if k != "receivers"}
            value = doc.get("receivers") or []
            path = ("receivers",)
            for key in ("global",):
                if key in extra:
                    where.no_secrets((key,), extra[key])
        if value is None:
            return (), extra
        if not isinstance(value, list):
            raise where.fail(
                path,
                "expected a list of Alertmanager receivers (each with a name), or the name of "
                "a file holding them",
            )
        seen: set[str] = set()
        for index, receiver in enumerate(value):
            here = (*path, str(index))
            if not isinstance(receiver, dict) or not isinstance(receiver.get("name"), str):
                raise where.fail(here, "expected a receiver: a mapping with a name")
            if receiver["name"] in seen:
                raise where.fail((*here, "name"), f"receiver {receiver['name']!r} is defined twice")
            seen.add(receiver["name"])
            where.no_secrets(here, receiver)
        return tuple(value), extra

    def no_secrets(self, path: tuple[str, ...], node: Any) -> None:
        """Refuse a secret written in clear (never echoing it): point at ``*_file`` or
        ``${ENV}`` instead."""
        if isinstance(node, dict):
            for key, value in node.items():
                here = (*path, str(key))
                if (
                    str(key) in _SECRET_KEYS or (key == "api_url" and "slack_configs" in path)
                ) and not (isinstance(value, str) and _ENV_REF.fullmatch(value.strip())):
                    if value in (None, ""):
                        continue
                    raise self.fail(
                        here,
                        "a secret written here would be copied into the generated "
                        f"alertmanager.yml; use {key}_file: /path/to/secret (read by "
                        "Alertmanager), or '${ENV_VAR}' (expanded where you deploy)",
                    )
                self.no_secrets(here, value)
        elif isinstance(node, list):
            for index, item in enumerate(node):
                self.no_secrets((*path, str(index)), item)

    def routing(self, names: set[str], path: tuple[str, ...] = ("routing",)) -> Routing:
        self.mapping(path, (*SEVERITIES, "default", "group_by", *_TIMINGS))
        known = names | set(PLACEHOLDER_RECEIVERS)

        def receiver(where: tuple[str, ...]) -> str:
            value = self.get(where)
            if not isinstance(value, str) or not value:
                raise self.fail(where, f"expected a receiver name, got {_show(value)}")
            if value not in known:
                raise self.fail(
                    where,
                    f"no receiver {value!r}; define it under receivers (known: "
                    f"{', '.join(sorted(known))})",
                )
            return value

        severities = {}
        for severity in SEVERITIES:
            here = (*path, severity)
            entry = self.optional(here, _SEVERITY_KEYS)
            if "receiver" not in entry:
                raise self.fail(here, "expected a receiver name, or {receiver: NAME, ...}")
            severities[severity] = SeverityRoute(
                receiver=receiver((*here, "receiver")),
                group_by=self.label_list((*here, "group_by")) if "group_by" in entry else None,
                **{
                    k: self.duration((*here, k))
                    for k in ("group_wait", "group_interval", "repeat_interval")
                    if entry.get(k) is not None
                },
            )
        return Routing(
            critical=severities["critical"],
            warning=severities["warning"],
            info=severities["info"],
            default=receiver((*path, "default")),
            group_by=self.label_list((*path, "group_by")),
            group_wait=self.duration((*path, "group_wait")),
            group_interval=self.duration((*path, "group_interval")),
            repeat_interval=self.duration((*path, "repeat_interval")),
        )

    def label_list(self, path: tuple[str, ...]) -> tuple[str, ...]:
        value = self.get(path)
        if not isinstance(value, list) or not all(
            isinstance(v, str) and _LABEL_NAME.fullmatch(v) for v in value
        ):
            raise self.fail(path, f"expected a list of label names, got {_show(value)}")
        return tuple(value)

    def services(self, top: AlertsConfig, names: set[str]) -> tuple[Service, ...]:
        path = ("services",)
        value = self.get(path)
        if value is None:
            return ()
        if not isinstance(value, dict):
            raise self.fail(path, "expected a mapping of Prometheus job name to its settings")
        from hlthz.alerts.selector import parse_selector

        selector = parse_selector(top.selector)
        found = []
        for name, own in value.items():
            here = (*path, str(name))
            if not isinstance(name, str) or not _SERVICE_NAME.fullmatch(name):
                raise self.fail(
                    here,
                    "a service is named by its Prometheus job: letters, digits, '-' and '_', "
                    "at most 23 characters (it becomes part of dashboard UIDs)",
                )
            job = [m for m in selector if m.name == "job"]
            if not all(m.matches(name) for m in job):
                raise self.fail(here, f"job {name!r} does not match the selector {top.selector}")
            if own is None:
                own = {}
            self.optional(here, _SERVICE_KEYS)
            inherited = {k: self.doc[k] for k in _SERVICE_KEYS if k != "routing"}
            inherited["routing"] = self.doc["routing"]
            inherited["buckets"] = self.doc["buckets"]
            inherited["rate_window"] = self.doc["rate_window"]
            doc = _merge(inherited, own)
            sub = _Validator(self.source, doc, self.lines, prefix=here, own=own)
            tiers = sub.tiers(top.buckets, top.rate_window)
            if tiers.info.unusual_traffic.window != top.alerts.info.unusual_traffic.window:
                raise sub.fail(
                    ("alerts", "info", "unusual_traffic", "window"),
                    "the baseline window is recorded once for every job; set it at the top level",
                )
            found.append(
                Service(
                    name=name,
                    alerts=tiers,
                    min_request_rate=sub.number(("min_request_rate",), low=0, low_open=False),
                    slo=sub.slo(),
                    signals=sub.signals(),
                    routes=sub.routes(tiers, top.buckets),
                    links=sub.links(),
                    routing=sub.routing(names) if "routing" in own else None,
                )
            )
        return tuple(found)

    def threshold_alert(
        self, path: tuple[str, ...], *, low: float, high: float | None
    ) -> ThresholdAlert:
        self.mapping(path, ("threshold", "for"))
        return ThresholdAlert(
            threshold=self.number((*path, "threshold"), low=low, high=high),
            for_=self.duration((*path, "for"), allow_zero=True),
        )

    def latency(self, path: tuple[str, ...], buckets: Buckets) -> ThresholdAlert:
        alert = self.threshold_alert(path, low=0, high=None)
        self.on_boundary(path, alert, buckets)
        return alert

    def on_boundary(self, path: tuple[str, ...], alert: ThresholdAlert, buckets: Buckets) -> None:
        """A latency threshold must be a bucket boundary, and not the largest one."""
        bounds = buckets.request_duration_seconds
        shown = ", ".join(_num(b) for b in bounds)
        where = f"buckets.request_duration_seconds ({shown})"
        if not any(math.isclose(alert.threshold, b, rel_tol=1e-9) for b in bounds):
            lower = [b for b in bounds if b < alert.threshold]
            upper = [b for b in bounds if b > alert.threshold]
            near = [_num(b) for b in (lower[-1:] + upper[:1])]
            raise self.fail(
                (*path, "threshold"),
                f"{_num(alert.threshold)} is not a bucket boundary of {where}; "
                f"pick one of {' or '.join(near)}, or add it to the buckets",
            )
        if math.isclose(alert.threshold, bounds[-1], rel_tol=1e-9):
            raise self.fail(
                (*path, "threshold"),
                f"{_num(alert.threshold)} is the largest bucket boundary of {where}, so P95 "
                "can never be measured above it; add a larger bucket or lower the threshold",
            )

    def tiers(self, buckets: Buckets, rate_window: Duration) -> AlertTiers:
        self.mapping(("alerts",), ("critical", "warning", "info"))
        crit = ("alerts", "critical")
        self.mapping(crit, ("latency_p95", "error_rate", "pool_exhausted", "target_missing"))
        self.mapping((*crit, "pool_exhausted"), ("for",))
        self.mapping((*crit, "target_missing"), ("for", "lookback"))
        critical = CriticalAlerts(
            latency_p95=self.latency((*crit, "latency_p95"), buckets),
            error_rate=self.threshold_alert((*crit, "error_rate"), low=0, high=1),
            pool_exhausted=StateAlert(
                self.duration((*crit, "pool_exhausted", "for"), allow_zero=True)
            ),
            target_missing=TargetMissingAlert(
                for_=self.duration((*crit, "target_missing", "for"), allow_zero=True),
                lookback=self.duration((*crit, "target_missing", "lookback")),
            ),
        )
        warn = ("alerts", "warning")
        self.mapping(warn, ("latency_p95", "memory", "cache_hit_rate"))
        warning = WarningAlerts(
            latency_p95=self.latency((*warn, "latency_p95"), buckets),
            memory=self.threshold_alert((*warn, "memory"), low=0, high=1),
            cache_hit_rate=self.threshold_alert((*warn, "cache_hit_rate"), low=0, high=1),
        )
        if warning.latency_p95.threshold >= critical.latency_p95.threshold:
            raise self.fail(
                (*warn, "latency_p95", "threshold"),
                f"{_num(warning.latency_p95.threshold)} must be below "
                f"alerts.critical.latency_p95.threshold ({_num(critical.latency_p95.threshold)}) "
                "so that a warning comes before the page",
            )
        info = ("alerts", "info")
        self.mapping(info, ("latency_degraded", "unusual_traffic"))
        self.mapping((*info, "latency_degraded"), ("ratio", "offset", "for"))
        self.mapping((*info, "unusual_traffic"), ("zscore", "window", "for"))
        traffic = TrafficAlert(
            zscore=self.number((*info, "unusual_traffic", "zscore"), low=0),
            window=self.duration((*info, "unusual_traffic", "window")),
            for_=self.duration((*info, "unusual_traffic", "for"), allow_zero=True),
        )
        # A sustained shift lasting t inside a window w reaches at most sqrt((w - t) / t)
        # standard deviations, and it takes rate_window + for to fire: ask for twice that.
        needed = 2 * (traffic.zscore**2 + 1) * (traffic.for_.seconds + rate_window.seconds)
        if traffic.window.seconds <= needed:
            raise self.fail(
                (*info, "unusual_traffic", "window"),
                f"{traffic.window} is too short for zscore {_num(traffic.zscore)} and for "
                f"{traffic.for_}: a sustained change would become the new normal before the "
                f"alert fires; use more than {format_duration(math.ceil(needed))}",
            )
        return AlertTiers(
            critical=critical,
            warning=warning,
            info=InfoAlerts(
                latency_degraded=DegradedAlert(
                    ratio=self.number((*info, "latency_degraded", "ratio"), low=1),
                    offset=self.duration((*info, "latency_degraded", "offset")),
                    for_=self.duration((*info, "latency_degraded", "for"), allow_zero=True),
                ),
                unusual_traffic=traffic,
            ),
        )

    def slo(self) -> Slo | None:
        if self.get(("slo",)) is None:
            return None
        self.mapping(("slo",), ("availability", "window"))
        slo = Slo(
            availability=self.number(("slo", "availability"), low=0, high=1),
            window=self.duration(("slo", "window")),
        )
        if slo.window.seconds < 86400:
            raise self.fail(
                ("slo", "window"),
                f"{slo.window} is shorter than 1d; error budgets are counted over days "
                "(30d is usual)",
            )
        return slo


#: Receivers ``hlthz alerts generate`` writes (without integrations) when routing names them
#: and ``receivers`` does not define them.
PLACEHOLDER_RECEIVERS = ("hlthz-page", "hlthz-ticket", "hlthz-info")
_TIMINGS = ("group_wait", "group_interval", "repeat_interval")
_SEVERITY_KEYS = ("receiver", "group_by", *_TIMINGS)
_SERVICE_KEYS = ("alerts", "min_request_rate", "slo", "signals", "routes", "links", "routing")
_FRAGMENT_KEYS = (
    "global",
    "receivers",
    "templates",
    "time_intervals",
    "mute_time_intervals",
    "inhibit_rules",
)
_SERVICE_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,22}")
_LABEL_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*|\.\.\.")
_ENV_REF = re.compile(r"\$\{[A-Za-z_][A-Za-z0-9_]*\}")
# Alertmanager fields holding credentials; each has a ``<name>_file`` twin.
_SECRET_KEYS = frozenset(
    {
        "routing_key",
        "service_key",
        "api_key",
        "api_secret",
        "auth_password",
        "auth_secret",
        "password",
        "credentials",
        "bearer_token",
        "bot_token",
        "token",
        "user_key",
        "webhook_url",
        "smtp_auth_password",
        "smtp_auth_secret",
        "slack_api_url",
        "opsgenie_api_key",
        "victorops_api_key",
        "wechat_api_secret",
        "telegram_bot_token",
    }
)


def _has_path(doc: Any, path: tuple[str, ...]) -> bool:
    for key in path:
        if not isinstance(doc, dict) or key not in doc:
            return False
        doc = doc[key]
    return True


def _num(value: float) -> str:
    return f"{value:g}"


def _show(value: Any) -> str:
    if value is None:
        return "nothing"
    return f"{type(value).__name__} {excerpt(value)}"
