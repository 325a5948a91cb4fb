"""Honest latency recording: HDR histograms per route, exactly mergeable across workers.

For every request the engine knows three instants: when it was *due* on the timeline, when it
was actually *sent*, and when the response *ended*. :class:`Recorder` keeps

- latency = end - due: what a user arriving on schedule waited (free of coordinated omission:
  a stalled target delays every request due meanwhile, and each one counts its full wait);
- service time = end - sent: what a closed-model tool reports, kept for contrast;
- schedule lag = sent - due: how late the generator itself was.

Values are recorded in microseconds in :mod:`hdrh` histograms (1 µs to 1 h, 3 significant
digits). A worker ships its histograms as HDR's compressed encoding (:meth:`Recorder.to_wire`)
and the master adds them up (:meth:`Recorder.merge_wire`): merged percentiles are exact, never
averages of percentiles. A per-second time series (coarser, 2 digits) feeds the HTML charts.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any

from hdrh.histogram import HdrHistogram

_LOWEST_US = 1
_HIGHEST_US = 3_600_000_000  # one hour
_DIGITS = 3
_SERIES_DIGITS = 2
#: Routes kept apart; more distinct routes than this share ``METHOD {other}``.
MAX_ROUTES = 500
#: Per-second bins older than this (seconds) are kept compressed.
_SERIES_HOT = 10


def new_histogram(digits: int = _DIGITS) -> HdrHistogram:
    """An empty histogram for microsecond values from 1 µs to one hour."""
    return HdrHistogram(_LOWEST_US, _HIGHEST_US, digits)


def decode(encoded: str) -> HdrHistogram:
    """A histogram back from :func:`encode`'s text."""
    return HdrHistogram.decode(encoded.encode("ascii"))


def encode(hist: HdrHistogram) -> str:
    """HDR's compressed, base64 encoding as text (JSON and msgpack friendly)."""
    return bytes(hist.encode()).decode("ascii")


def percentiles_ms(hist: HdrHistogram, points: tuple[float, ...]) -> dict[str, float]:
    """``{"p50": ms, ..., "max": ms}`` from a microsecond histogram (zeros when empty)."""
    out: dict[str, float] = {}
    empty = hist.get_total_count() == 0
    for point in points:
        value = 0 if empty else hist.get_value_at_percentile(point)
        out[f"p{point:g}"] = round(value / 1000.0, 3)
    out["max"] = round((0 if empty else hist.get_max_value()) / 1000.0, 3)
    return out


class RouteStats:
    """Counts and histograms of one route."""

    __slots__ = ("errors", "latency", "requests", "service", "statuses")

    def __init__(self) -> None:
        self.requests = 0
        self.errors = 0
        self.latency = new_histogram()
        self.service = new_histogram()
        # status code as text ("200"), or "error" for a transport failure
        self.statuses: Counter[str] = Counter()


class _Bin:
    __slots__ = ("errors", "lag_max_us", "latency", "requests")

    def __init__(self) -> None:
        self.requests = 0
        self.errors = 0
        self.lag_max_us = 0
        self.latency: HdrHistogram | str = new_histogram(_SERIES_DIGITS)

    def hot(self) -> HdrHistogram:
        if isinstance(self.latency, str):
            self.latency = decode(self.latency)
        return self.latency

    def freeze(self) -> None:
        if not isinstance(self.latency, str):
            self.latency = encode(self.latency)


class Recorder:
    """Everything measured in a run (or one worker's interval of it)."""

    def __init__(self) -> None:
        self.routes: dict[str, RouteStats] = {}
        self.latency = new_histogram()
        self.lag = new_histogram()
        self.skipped: Counter[str] = Counter()
        self.cap_hits = 0
        self.in_flight = 0
        self._series: dict[int, _Bin] = {}
        self._hot_from = 0

    # -- recording -------------------------------------------------------------------------

    def _route(self, key: str) -> RouteStats:
        stats = self.routes.get(key)
        if stats is None:
            if len(self.routes) >= MAX_ROUTES:
                key = key.split(" ", 1)[0] + " {other}"
                stats = self.routes.get(key)
            if stats is None:
                stats = self.routes[key] = RouteStats()
        return stats

    def record(
        self,
        route: str,
        due_s: float,
        lag_s: float,
        service_s: float,
        latency_s: float,
        status: int | None,
    ) -> None:
        """One finished request. ``status`` None means a transport failure (an error)."""
        error = status is None or status >= 500
        latency_us = max(1, min(_HIGHEST_US, int(latency_s * 1e6)))
        service_us = max(1, min(_HIGHEST_US, int(service_s * 1e6)))
        lag_us = max(1, min(_HIGHEST_US, int(lag_s * 1e6)))
        stats = self._route(route)
        stats.requests += 1
        stats.errors += error
        stats.latency.record_value(latency_us)
        stats.service.record_value(service_us)
        stats.statuses["error" if status is None else str(status)] += 1
        self.latency.record_value(latency_us)
        self.lag.record_value(lag_us)
        second = int(due_s) if due_s > 0 else 0
        bin_ = self._series.get(second)
        if bin_ is None:
            bin_ = self._series[second] = _Bin()
            self._freeze_before(second - _SERIES_HOT)
        bin_.requests += 1
        bin_.errors += error
        bin_.hot().record_value(latency_us)
        if lag_us > bin_.lag_max_us:
            bin_.lag_max_us = lag_us

    def skip(self, reason: str, count: int = 1) -> None:
        """Count requests not sent, by reason (``method``: a write without --allow-writes)."""
        self.skipped[reason] += count

    def _freeze_before(self, second: int) -> None:
        # Old bins are done: keep them compressed so a long run stays small.
        while self._hot_from < second:
            bin_ = self._series.get(self._hot_from)
            if bin_ is not None:
                bin_.freeze()
            self._hot_from += 1

    # -- reading ---------------------------------------------------------------------------

    @property
    def service(self) -> HdrHistogram:
        """Service time over all routes (summed on demand: one fewer record per request)."""
        total = new_histogram()
        for stats in self.routes.values():
            total.add(stats.service)
        return total

    @property
    def requests(self) -> int:
        return sum(stats.requests for stats in self.routes.values())

    @property
    def errors(self) -> int:
        return sum(stats.errors for stats in self.routes.values())

    def series(self) -> Iterator[dict[str, Any]]:
        """Per-second points by scheduled time: ``t``, ``requests``, ``errors``, ``p50_ms``,
        ``p95_ms``, ``p99_ms``, ``lag_max_ms``."""
        for second in sorted(self._series):
            bin_ = self._series[second]
            pct = percentiles_ms(bin_.hot(), (50, 95, 99))
            yield {
                "t": second,
                "requests": bin_.requests,
                "errors": bin_.errors,
                "p50_ms": pct["p50"],
                "p95_ms": pct["p95"],
                "p99_ms": pct["p99"],
                "lag_max_ms": round(bin_.lag_max_us / 1000.0, 3),
            }
            bin_.freeze()

    # -- shipping and merging --------------------------------------------------------------

    def to_wire(self) -> dict[str, Any]:
        """A JSON/msgpack-friendly snapshot (histograms HDR-encoded, all keys text)."""
        return {
            "routes": {
                key: {
                    "requests": s.requests,
                    "errors": s.errors,
                    "latency": encode(s.latency),
                    "service": encode(s.service),
                    "statuses": dict(s.statuses),
                }
                for key, s in self.routes.items()
            },
            "latency": encode(self.latency),
            "lag": encode(self.lag),
            "skipped": dict(self.skipped),
            "cap_hits": self.cap_hits,
            "series": {
                str(second): [
                    b.requests,
                    b.errors,
                    b.latency if isinstance(b.latency, str) else encode(b.latency),
                    b.lag_max_us,
                ]
                for second, b in self._series.items()
            },
        }

    def merge_wire(self, wire: dict[str, Any]) -> None:
        """Add a :meth:`to_wire` snapshot to this recorder: exact, histogram by histogram."""
        for key, data in wire["routes"].items():
            stats = self._route(key)
            stats.requests += int(data["requests"])
            stats.errors += int(data["errors"])
            stats.latency.decode_and_add(data["latency"].encode("ascii"))
            stats.service.decode_and_add(data["service"].encode("ascii"))
            stats.statuses.update({str(k): int(v) for k, v in data["statuses"].items()})
        self.latency.decode_and_add(wire["latency"].encode("ascii"))
        self.lag.decode_and_add(wire["lag"].encode("ascii"))
        self.skipped.update({str(k): int(v) for k, v in wire["skipped"].items()})
        self.cap_hits += int(wire["cap_hits"])
        for second_text, (requests, errors, lat, lag_max_us) in wire["series"].items():
            second = int(second_text)
            bin_ = self._series.get(second)
            if bin_ is None:
                bin_ = self._series[second] = _Bin()
            bin_.requests += int(requests)
            bin_.errors += int(errors)
            bin_.hot().decode_and_add(lat.encode("ascii"))
            bin_.lag_max_us = max(bin_.lag_max_us, int(lag_max_us))
        if self._series:
            self._freeze_before(max(self._series) - _SERIES_HOT)

    @classmethod
    def from_wire(cls, wire: dict[str, Any]) -> Recorder:
        recorder = cls()
        recorder.merge_wire(wire)
        return recorder
