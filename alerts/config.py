"""Load and validate the thresholds file, ``alerts/thresholds.yaml``.

One file drives the alert rules, the Alertmanager routing, the runbooks, the promtool tests and
the dashboards, so every value is checked before anything is generated. A key the user leaves
out takes its value from the packaged default file; a key the schema does not know, a value of
the wrong type, a malformed or negative duration, a latency threshold that is not a histogram
bucket boundary, or a rate window shorter than four scrape intervals is a :class:`ConfigError`
whose message is one line: ``FILE:LINE: key.path: problem; what to do``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from hlthz.errors import ConfigError

#: The thresholds file shipped with the package (also the source of every default).
DEFAULT_CONFIG_PATH = Path(__file__).resolve().parent / "thresholds.yaml"

_DURATION_RE = re.compile(
    r"^(?:(\d+)y)?(?:(\d+)w)?(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?(?:(\d+)ms)?$"
)
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
        raise ValueError(f"{text!r} is not a Prometheus duration")
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


@dataclass(frozen=True)
class Links:
    """URL patterns put in every alert's annotations."""

    runbook_url: str
    dashboard_url: str

    def runbook(self, alert: str) -> str:
        """The runbook URL of ``alert``."""
        return self.runbook_url.format(alert=alert)

    def dashboard(self, dashboard_uid: str) -> str:
        """The URL of the Grafana dashboard ``dashboard_uid``."""
        return self.dashboard_url.format(dashboard_uid=dashboard_uid)


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


@dataclass(frozen=True)
class AlertsConfig:
    """The validated thresholds file. ``source`` is the file it came from."""

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

    @property
    def matchers(self) -> str:
        """The selector to append inside ``{...}``: ``''`` or ``, job=~"a"``."""
        return f", {self.selector}" if self.selector else ""


# --------------------------------------------------------------------------------------------
# Loading


def load_config(path: str | Path | None = None) -> AlertsConfig:
    """Read and validate a thresholds file (``None``: the packaged default).

    Keys left out of ``path`` take the packaged default's values, so a small file that only
    changes a few thresholds is complete. Raises :class:`ConfigError` with a one-line message.
    """
    default_doc, _ = _read_yaml(DEFAULT_CONFIG_PATH)
    if path is None:
        return _Validator(DEFAULT_CONFIG_PATH, default_doc, {}).build()
    source = Path(path)
    doc, lines = _read_yaml(source)
    merged = _merge(default_doc, doc)
    return _Validator(source, merged, lines).build()


def _read_yaml(path: Path) -> tuple[dict[str, Any], dict[tuple[str, ...], int]]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file; pass an existing thresholds file") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        doc = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f":{mark.line + 1}" if mark is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise ConfigError(f"{path}{where}: not valid YAML: {problem}") from None
    if doc is None:
        doc = {}
    if not isinstance(doc, dict):
        raise ConfigError(f"{path}:1: the thresholds file must be a mapping of keys to values")
    lines: dict[tuple[str, ...], int] = {}
    if node is not None:
        _index_lines(node, (), lines)
    return doc, lines


def _index_lines(node: yaml.Node, path: tuple[str, ...], out: dict[tuple[str, ...], int]) -> None:
    # The composed node tree keeps line numbers that the loaded dicts lose.
    out[path] = node.start_mark.line + 1
    if isinstance(node, yaml.MappingNode):
        for key_node, value_node in node.value:
            key = (*path, str(key_node.value))
            _index_lines(value_node, key, out)
            out[key] = key_node.start_mark.line + 1


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
        self, source: Path, doc: dict[str, Any], lines: Mapping[tuple[str, ...], int]
    ) -> None:
        self.source = source
        self.doc = doc
        self.lines = lines

    def fail(self, path: tuple[str, ...], message: str) -> ConfigError:
        line = None
        for depth in range(len(path), -1, -1):
            line = self.lines.get(path[:depth])
            if line is not None:
                break
        where = f"{self.source}:{line}" if line is not None else str(self.source)
        key = ".".join(path)
        return ConfigError(f"{where}: {key}: {message}" if key else f"{where}: {message}")

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
            raise self.fail(path, f"{text} is negative; durations must be positive, like 5m")
        try:
            seconds = parse_duration(text)
        except ValueError:
            raise self.fail(
                path,
                f"{text!r} is not a Prometheus duration; write it like 30s, 5m, 1h30m or 1d",
            ) from None
        if seconds == 0 and not allow_zero:
            raise self.fail(path, f"{text} is zero; it must be positive, like 5m")
        return Duration(text)

    def boundaries(self, path: tuple[str, ...]) -> tuple[float, ...]:
        value = self.get(path)
        if not isinstance(value, list) or not value:
            raise self.fail(path, "expected a non-empty list of bucket boundaries in seconds")
        out: list[float] = []
        for index, item in enumerate(value):
            if isinstance(item, bool) or not isinstance(item, int | float) or not item > 0:
                raise self.fail((*path, str(index)), f"expected a positive number, got {item!r}")
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
        return AlertsConfig(
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
        )

    def selector(self, path: tuple[str, ...]) -> str:
        value = self.get(path)
        if value is None:
            return ""
        if not isinstance(value, str):
            raise self.fail(path, f"expected PromQL label matchers as a string, got {_show(value)}")
        from hlthz.alerts.selector import parse_selector
        from hlthz.errors import SelectorError

        try:
            matchers = parse_selector(value)
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
                value.format(**{placeholder: "X"})
            except (KeyError, IndexError, ValueError):
                raise self.fail(
                    path, f"only the placeholder {{{placeholder}}} may appear in braces"
                ) from None
            if f"{{{placeholder}}}" not in value:
                raise self.fail(path, f"the pattern must contain {{{placeholder}}}")
            values[key] = value
        return Links(**values)

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
        return alert

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


def _num(value: float) -> str:
    return f"{value:g}"


def _show(value: Any) -> str:
    if value is None:
        return "nothing"
    return f"{type(value).__name__} {value!r}"
