"""Backtest the generated alerts on a Prometheus' real history before they page anyone.

Each alerting rule the project file generates is evaluated over ``[start, end]`` by Prometheus
itself: one range query (``/api/v1/query_range``, step = the rules' evaluation interval) of the
alert's expression with its recording rules inlined (:mod:`hlthz.alerts._inline`), so the rules
are judged as *this* file defines them, on raw data, whether or not Prometheus ever ran them.
Prometheus applies the lookback and staleness of every sample exactly as the rule manager's
instant queries do. Then ``for`` and ``keep_firing_for`` turn "the expression returned this
label set at these evaluations" into firing episodes, in Python, with the rule manager's state
machine (:mod:`hlthz.alerts._episodes`).

The evaluation grid is aligned with the one Prometheus uses for the ``hlthz-api`` group when it
runs it (read off the timestamps of a series that group records), so episodes start and end at
the evaluations Prometheus' own ``ALERTS`` show.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hlthz.alerts import _episodes
from hlthz.alerts._inhibition import inhibit, inhibit_rules
from hlthz.alerts.config import AlertsConfig, Duration, load_config, parse_duration
from hlthz.alerts.incidents import Incident, Quality, load_incidents, score
from hlthz.alerts.routing import alertmanager_config
from hlthz.alerts.rules import AlertRule, Names, all_alerts, rule_groups
from hlthz.errors import PrometheusError, QueryError, UsageError
from hlthz.net import parse_http_url
from hlthz.prometheus import PrometheusClient

__all__ = [
    "AlertBacktest",
    "AlertEpisode",
    "Backtest",
    "BacktestOptions",
    "BacktestResult",
    "run_backtest",
]

SEVERITY_ORDER = {"critical": 0, "warning": 1, "info": 2}
#: What a firing alert of each severity becomes under the generated routing.
NOTIFICATION = {"critical": "pages", "warning": "tickets", "info": "info"}
WEEK = 7 * 86400.0
#: The group whose evaluations the grid follows (rules.py puts the alerts there).
_GROUP = "hlthz-api"


@dataclass(frozen=True)
class BacktestOptions:
    """What ``hlthz alerts backtest`` was asked: validated by :meth:`validate`."""

    prometheus: str
    start: float
    end: float
    #: The project file (an :class:`AlertsConfig` or a path; None: the packaged example).
    config: AlertsConfig | str | Path | None = None
    #: A second project file to compare with (the what-if).
    against: AlertsConfig | str | Path | None = None
    #: Evaluation interval in seconds; None: the interval Prometheus evaluates the
    #: ``hlthz-api`` group at, else the config's ``scrape_interval``.
    interval: float | None = None
    incidents: str | Path | None = None
    #: An episode starting within this many seconds of the previous one's end is a flap.
    flap_window: float = 900.0
    #: Seconds after an incident's end in which an episode still counts as matching it.
    grace: float = 0.0
    timeout: float = 120.0
    #: Inline every recording rule, even those Prometheus runs unchanged (see ``_reusable``).
    inline: bool = False
    #: Range queries in flight at once.
    parallel: int = 4

    def validate(self) -> None:
        parse_http_url(self.prometheus, what="--prometheus")
        if not (math.isfinite(self.start) and math.isfinite(self.end)) or self.end <= self.start:
            raise UsageError("--end must be after --start")
        if self.interval is not None and not self.interval > 0:
            raise UsageError("--interval must be a positive duration, like 15s")
        if self.flap_window < 0 or self.grace < 0:
            raise UsageError("--flap-window and --grace must not be negative")
        if (self.end - self.start) > 400 * 86400:
            raise UsageError("--start/--end: at most 400 days at a time")


@dataclass(frozen=True)
class AlertEpisode:
    """One firing episode of one label set: Unix seconds; ``end`` None = still firing.
    ``inhibited``: the generated Alertmanager configuration mutes it for all of its time
    (:mod:`hlthz.alerts._inhibition`), so it notifies nobody."""

    labels: dict[str, str]
    start: float
    end: float | None
    inhibited: bool = False

    def until(self, range_end: float) -> float:
        """When it stopped firing: ``end``, or ``range_end`` while it still fires."""
        return self.end if self.end is not None else range_end

    def duration(self, range_end: float) -> float:
        return self.until(range_end) - self.start

    def to_json(self) -> dict[str, Any]:
        return {
            "labels": self.labels,
            "start": self.start,
            "end": self.end,
            "inhibited": self.inhibited,
        }


@dataclass
class AlertBacktest:
    """Every episode of one alert (name and severity, all its rules) and its numbers."""

    name: str
    severity: str
    episodes: list[AlertEpisode] = field(default_factory=list)
    flaps: int = 0
    exprs: list[str] = field(default_factory=list)
    quality: Quality | None = None

    def firing_seconds(self, range_end: float) -> float:
        return float(sum(e.duration(range_end) for e in self.episodes))

    @property
    def inhibited(self) -> int:
        """Episodes the Alertmanager configuration mutes for all of their time."""
        return sum(e.inhibited for e in self.episodes)

    def per_week(self, seconds: float) -> float:
        return _weekly(len(self.episodes), seconds)

    def notified_per_week(self, seconds: float) -> float:
        """Episodes per week that reach a receiver (the inhibited ones left out)."""
        return _weekly(len(self.episodes) - self.inhibited, seconds)


def _weekly(count: int, seconds: float) -> float:
    return count * WEEK / seconds if seconds > 0 else 0.0


@dataclass
class Backtest:
    """One project file's alerts over the range."""

    config: str
    alerts: list[AlertBacktest]
    notes: list[str] = field(default_factory=list)
    #: Wall seconds: ``inline``, ``query`` (all range queries), ``episodes``, and
    #: ``query <alert> <severity>`` (that alert's queries, overlapping the others').
    phases: dict[str, float] = field(default_factory=dict)

    def alert(self, name: str, severity: str) -> AlertBacktest | None:
        return next((a for a in self.alerts if (a.name, a.severity) == (name, severity)), None)

    def notifications_per_week(self, seconds: float) -> dict[str, float]:
        """Pages, tickets and info notifications per week: the episodes of each severity that
        inhibition does not mute."""
        out = dict.fromkeys(NOTIFICATION.values(), 0.0)
        for a in self.alerts:
            kind = NOTIFICATION.get(a.severity, a.severity)
            out[kind] = out.get(kind, 0.0) + a.notified_per_week(seconds)
        return out


@dataclass
class BacktestResult:
    """The backtest of the project file and, with ``against``, of the what-if file."""

    prometheus: str
    start: float
    end: float
    interval: float
    runs: list[Backtest]
    incidents: list[Incident] = field(default_factory=list)
    #: Evaluations were at ``phase + k * interval`` (Unix seconds).
    phase: float = 0.0

    @property
    def seconds(self) -> float:
        return self.end - self.start

    def table_lines(self) -> list[str]:
        """The table ``hlthz alerts backtest`` prints (the what-if's columns on the right)."""
        from hlthz.alerts._backtest_report import table_lines

        return table_lines(self)

    def write_json(self, path: str | Path) -> None:
        """Write :meth:`to_json` to ``path``, atomically."""
        from hlthz.alerts._backtest_report import write_json

        write_json(self, path)

    def write_html(self, path: str | Path) -> None:
        """Write the self-contained HTML page: the table and a timeline per project file."""
        from hlthz.alerts._backtest_report import write_html

        write_html(self, path)

    def to_json(self) -> dict[str, Any]:
        """The ``hlthz_backtest`` v1 document (docs/formats.md)."""

        def run_json(run: Backtest) -> dict[str, Any]:
            return {
                "config": run.config,
                "notifications_per_week": run.notifications_per_week(self.seconds),
                "notes": run.notes,
                "alerts": [
                    {
                        "name": a.name,
                        "severity": a.severity,
                        "count": len(a.episodes),
                        "inhibited": a.inhibited,
                        "firing_seconds": a.firing_seconds(self.end),
                        "flaps": a.flaps,
                        "per_week": a.per_week(self.seconds),
                        **({"quality": a.quality.to_json()} if a.quality else {}),
                        "episodes": [e.to_json() for e in a.episodes],
                    }
                    for a in run.alerts
                ],
            }

        main = run_json(self.runs[0])
        doc: dict[str, Any] = {
            "hlthz_backtest": 1,
            "prometheus": self.prometheus,
            "start": self.start,
            "end": self.end,
            "interval": self.interval,
            **main,
        }
        if len(self.runs) > 1:
            doc["against"] = run_json(self.runs[1])
        if self.incidents:
            doc["incidents"] = [i.to_json() for i in self.incidents]
        return doc


def _recording_rules(config: AlertsConfig) -> tuple[dict[str, list[str]], frozenset[str]]:
    """Record name -> its expressions, and the records read as Prometheus recorded them: those
    that read another record over a range (the baselines)."""
    from hlthz.alerts._inline import inline

    rules: dict[str, list[str]] = {}
    for group in rule_groups(config)["groups"]:
        for rule in group["rules"]:
            if "record" in rule:
                rules.setdefault(rule["record"], []).append(str(rule["expr"]))
    keep: frozenset[str] = frozenset()
    while True:
        ranged = {
            name
            for name, bodies in rules.items()
            if name not in keep and any(inline(b, rules, keep=keep).recorded for b in bodies)
        }
        if not ranged:
            return rules, keep
        keep |= ranged


def _squeeze(expr: str) -> str:
    return "".join(expr.split())


def _loaded_records(client: PrometheusClient) -> dict[str, set[str]]:
    """Recording rules Prometheus runs: name -> expressions (whitespace removed)."""
    try:
        groups = client.api("/api/v1/rules", type="record").get("groups", [])
    except QueryError:
        return {}
    out: dict[str, set[str]] = {}
    for group in groups:
        for rule in group.get("rules", []):
            out.setdefault(str(rule.get("name")), set()).add(_squeeze(str(rule.get("query"))))
    return out


def _reusable(
    client: PrometheusClient,
    records: dict[str, list[str]],
    loaded: dict[str, set[str]],
    options: BacktestOptions,
) -> frozenset[str]:
    """Records Prometheus has been running unchanged over the range: reading their series is
    what the rule manager did, and costs one sample a step instead of a window of raw ones.

    Unchanged: the same name with the same expressions. Over the range: samples near its start
    and its end (a rule loaded mid-range falls back to inlining)."""
    if options.inline:
        return frozenset()
    same = [
        name
        for name, bodies in records.items()
        if loaded.get(name) and loaded[name] == {_squeeze(b) for b in bodies}
    ]
    found = []
    for name in same:
        near = [
            client.query(f"count(count_over_time({name}[1200s]))", at=t + 600)
            for t in (options.start, options.end - 600)
        ]
        if all(near):
            found.append(name)
    return frozenset(found)


def _interval(client: PrometheusClient, config: AlertsConfig) -> float:
    """The evaluation interval of the ``hlthz-api`` group in Prometheus, else the config's
    scrape interval (what ``hlthz stack`` evaluates at)."""
    try:
        groups = client.api("/api/v1/rules", type="alert").get("groups", [])
    except QueryError:
        groups = []
    for group in groups:
        if group.get("name") == _GROUP and float(group.get("interval") or 0) > 0:
            return float(group["interval"])
    return float(config.scrape_interval.seconds)


def _phase(client: PrometheusClient, config: AlertsConfig, interval: float, at: float) -> float:
    """Seconds after a multiple of ``interval`` at which Prometheus evaluates the alerts' group
    (0 when it does not run it): the timestamps of a series that group records tell. Raw
    samples, not ``timestamp()``: an instant query finds nothing once the series went stale
    (a target restarted), while its earlier samples still carry the phase."""
    record = Names(config).requests
    window = f"{max(60, math.ceil(interval * 20))}s"
    try:
        found = client.query(f"{record}[{window}]", at=at)
    except QueryError:
        return 0.0
    stamps = [float(t) for series in found for t, _ in series.get("values", [])]
    if not stamps:
        return 0.0
    return round(max(stamps) % interval, 3)


def _grid_start(start: float, interval: float, phase: float) -> float:
    k = math.ceil((start - phase) / interval - 1e-9)
    return round(k * interval + phase, 3)


def _evaluate(
    client: PrometheusClient,
    rule: AlertRule,
    config: AlertsConfig,
    expr: str,
    *,
    first: float,
    end: float,
    interval: float,
) -> list[AlertEpisode]:
    rendered = rule.to_rule(config)
    for_ms = round(Duration(rule.for_).seconds * 1000)
    keep = rendered.get("keep_firing_for")
    keep_ms = round(parse_duration(str(keep)) * 1000) if keep else 0
    step_ms = round(interval * 1000)
    series = client.query_range(expr, first, end, interval)
    grid_end = (
        round(first * 1000) + ((round(end * 1000) - round(first * 1000)) // step_ms) * step_ms
    )
    out = []
    for key, points in series.items():
        extra = {"alertname": rule.name, **rendered["labels"]}
        labels = dict(sorted({**{k: v for k, v in key if k != "__name__"}, **extra}.items()))
        times = [round(t * 1000) for t, _ in points]
        for ep in _episodes.episodes(
            times, interval=step_ms, for_=for_ms, keep_firing_for=keep_ms, range_end=grid_end
        ):
            stop = ep.end / 1000 if ep.end is not None else None
            out.append(AlertEpisode(labels, ep.start / 1000, stop))
    return out


def _run(
    client: PrometheusClient,
    config: AlertsConfig,
    label: str,
    options: BacktestOptions,
    interval: float,
    phase: float,
    incidents: Sequence[Incident],
    loaded: dict[str, set[str]],
) -> Backtest:
    from hlthz.alerts._inline import inline

    started = time.perf_counter()
    records, keep = _recording_rules(config)
    reused = _reusable(client, records, loaded, options)
    rules = all_alerts(config)
    # Warm-up: an alert pending or kept firing at `start` needs the evaluations before it.
    warmup = max(
        (Duration(r.for_).seconds for r in rules),
        default=0.0,
    )
    first = _grid_start(options.start - warmup, interval, phase)
    notes: list[str] = []
    exprs = []
    readers: dict[str, list[str]] = {}
    for rule in rules:
        inlined = inline(rule.expr, records, keep=keep | reused)
        exprs.append(inlined.expr)
        for name in inlined.recorded - reused:
            if rule.name not in readers.setdefault(name, []):
                readers[name].append(rule.name)
    phases = {"inline": time.perf_counter() - started}
    if reused:
        notes.append(
            f"read as Prometheus recorded them (it runs these rules unchanged): "
            f"{', '.join(sorted(reused))}; --inline recomputes them from raw data"
        )

    started = time.perf_counter()

    took = [0.0] * len(rules)

    def one(i: int) -> list[AlertEpisode]:
        began = time.perf_counter()
        try:
            return _evaluate(
                client, rules[i], config, exprs[i], first=first, end=options.end, interval=interval
            )
        except QueryError as exc:
            raise QueryError(
                f"{options.prometheus} rejected the query of {rules[i].name} "
                f"({rules[i].severity}): {exc}"
            ) from None
        finally:
            took[i] = time.perf_counter() - began

    with ThreadPoolExecutor(max_workers=max(1, options.parallel)) as pool:
        found = list(pool.map(one, range(len(rules))))
    phases["query"] = time.perf_counter() - started
    for rule, seconds in zip(rules, took, strict=True):
        key = f"query {rule.name} {rule.severity}"
        phases[key] = phases.get(key, 0.0) + seconds

    started = time.perf_counter()
    for name, names in sorted(readers.items()):
        if not client.query(f"count(count_over_time({name}[{_span(options)}]))", at=options.end):
            notes.append(
                f"{name} has no samples in the range: {', '.join(names)} reads it as "
                "Prometheus recorded it (a statistic over a long window is not inlined), so it "
                "cannot fire here; load the generated rules into this Prometheus"
            )
    by_alert: dict[tuple[str, str], AlertBacktest] = {}
    for rule, episodes, expr in zip(rules, found, exprs, strict=True):
        entry = by_alert.setdefault(
            (rule.name, rule.severity), AlertBacktest(rule.name, rule.severity)
        )
        entry.exprs.append(expr)
        # Episodes over before the range began are not part of it.
        entry.episodes += [e for e in episodes if e.end is None or e.end > options.start]
    window = round(options.flap_window * 1000)
    for entry in by_alert.values():
        entry.episodes.sort(key=lambda e: (e.start, sorted(e.labels.items())))
        per_labels: dict[tuple[tuple[str, str], ...], list[_episodes.Episode]] = {}
        for e in entry.episodes:
            per_labels.setdefault(tuple(sorted(e.labels.items())), []).append(
                _episodes.Episode(round(e.start * 1000), _ms(e.end))
            )
        entry.flaps = sum(_episodes.flaps(eps, window) for eps in per_labels.values())
        if incidents:
            entry.quality = score(
                entry.name,
                entry.severity,
                [(e.start, e.end) for e in entry.episodes],
                incidents,
                range_end=options.end,
                grace=options.grace,
            )
    alerts = sorted(by_alert.values(), key=lambda a: (SEVERITY_ORDER.get(a.severity, 9), a.name))
    inhibitions, unmodelled = inhibit_rules(alertmanager_config(config))
    inhibit(alerts, inhibitions, options.end)
    notes += unmodelled
    phases["episodes"] = time.perf_counter() - started
    return Backtest(label, alerts, notes, phases)


def _ms(value: float | None) -> int | None:
    return None if value is None else round(value * 1000)


def _span(options: BacktestOptions) -> str:
    return f"{max(1, math.ceil(options.end - options.start))}s"


def _load(config: AlertsConfig | str | Path | None) -> tuple[AlertsConfig, str]:
    if isinstance(config, AlertsConfig):
        return config, "(config)"
    return load_config(config), str(config) if config is not None else "(packaged example)"


def run_backtest(options: BacktestOptions) -> BacktestResult:
    """Evaluate every alert of ``options.config`` (and ``options.against``) over the range.

    Raises :class:`~hlthz.errors.UsageError` for bad options or files,
    :class:`~hlthz.errors.PrometheusError` when Prometheus cannot be reached.
    """
    options.validate()
    # Past the last scrape, lookback keeps samples visible 5 minutes, then every alert would
    # seem to resolve: the range ends now at the latest.
    if options.end > time.time():
        options = dataclasses.replace(options, end=round(time.time(), 3))
        options.validate()
    config, label = _load(options.config)
    other = _load(options.against) if options.against is not None else None
    incidents = load_incidents(options.incidents) if options.incidents is not None else []
    client = PrometheusClient(options.prometheus, timeout=options.timeout, what="--prometheus")
    try:
        client.api("/api/v1/status/buildinfo")
    except QueryError:
        raise PrometheusError(
            f"{options.prometheus} does not answer like Prometheus; check --prometheus"
        ) from None
    interval = options.interval or _interval(client, config)
    if (options.end - options.start) / interval > 2_000_000:
        raise UsageError(
            f"--start/--end: {options.end - options.start:.0f}s at a {interval:g}s interval is "
            "over 2,000,000 evaluations; shorten the range or pass a longer --interval"
        )
    phase = _phase(client, config, interval, options.end)
    loaded = _loaded_records(client)
    runs = [_run(client, config, label, options, interval, phase, incidents, loaded)]
    if other is not None:
        runs.append(_run(client, other[0], other[1], options, interval, phase, incidents, loaded))
    return BacktestResult(
        options.prometheus, options.start, options.end, interval, runs, incidents, phase
    )
