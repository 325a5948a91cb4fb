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

import zlib
from array import array
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
#: Latency samples kept per route (a uniform sample: every request equally likely to be
#: kept), for the gate's statistics. 2,000 pin a P95 to about 1 % of its value; memory is
#: bounded: 4 x 8 bytes a sample (latency, service time, seq, rank), 1.25 x the cap at most
#: while it trims, at most ``MAX_ROUTES`` routes.
ROUTE_SAMPLES = 2000
#: Samples kept over all routes (the ``overall`` scope of the gate).
OVERALL_SAMPLES = 5000
#: Example requests kept per route and per kind of answer (a failure kind or a status).
EXAMPLES = 3
#: Characters of an example's path kept (the capture's path, already redacted).
_EXAMPLE_CHARS = 200
#: Status transitions (captured -> replayed) kept apart per route; the rest are ``other``.
_TRANSITIONS = 20
#: How a transport failure is named (``failures`` in the report).
FAILURE_KINDS = (
    "refused",
    "reset",
    "timeout",
    "tls",
    "bad_response",
    "body_too_large",
    "deadline",
    "other",
)


_MASK64 = (1 << 64) - 1


def _rank(salt: int, seq: int) -> int:
    """A request's place in line for the sample: 64 well-mixed bits of (``salt``, ``seq``)
    (splitmix64's finaliser), so the lowest ``cap`` ranks are a uniform choice of requests."""
    z = (salt + (seq + 1) * 0x9E3779B97F4A7C15) & _MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
    return z ^ (z >> 31)


class Reservoir:
    """A uniform sample of at most ``cap`` requests' (latency, service time) in ms.

    The sample is chosen by request, not by arrival: each request's ``seq`` (its place in the
    timeline) gets a pseudo-random rank from ``key``, and the ``cap`` lowest ranks are kept
    (bottom-k sampling). So two recorders that saw the same requests keep the same ones,
    whatever order they finished in: the two sides of an interleaved replay pair up request by
    request. Workers' samples merge exactly (the union, cut to the ``cap`` lowest ranks), and
    :meth:`ordered` gives the kept requests in send order."""

    __slots__ = ("_limit", "_salt", "cap", "latency", "ranks", "seen", "seqs", "service")

    def __init__(self, cap: int, key: str = "") -> None:
        self.cap = cap
        self.seen = 0
        self.seqs = array("q")
        self.ranks = array("Q")
        self.latency = array("d")
        self.service = array("d")
        self._salt = zlib.crc32(key.encode("utf-8", "surrogatepass")) << 32
        # A rank at or above this cannot be among the lowest ``cap`` any more.
        self._limit = _MASK64 + 1

    def add(self, latency_ms: float, service_ms: float, seq: int | None = None) -> None:
        """Offer one request; ``seq`` None numbers it by arrival (a recorder used alone)."""
        seq = self.seen if seq is None else seq
        self.seen += 1
        self._offer(seq, latency_ms, service_ms)

    def _offer(self, seq: int, latency_ms: float, service_ms: float) -> None:
        rank = _rank(self._salt, seq)
        if rank >= self._limit:
            return
        self.seqs.append(seq)
        self.ranks.append(rank)
        self.latency.append(latency_ms)
        self.service.append(service_ms)
        # Trimmed a quarter of ``cap`` at a time: a few sorts over a run, not a scan a request.
        if len(self.seqs) >= self.cap + max(1, self.cap // 4):
            self._trim()

    def _trim(self) -> None:
        """Keep the ``cap`` lowest ranks; the highest kept becomes the limit."""
        if len(self.seqs) <= self.cap:
            return
        keep = sorted(range(len(self.ranks)), key=self.ranks.__getitem__)[: self.cap]
        self.seqs = array("q", [self.seqs[i] for i in keep])
        self.ranks = array("Q", [self.ranks[i] for i in keep])
        self.latency = array("d", [self.latency[i] for i in keep])
        self.service = array("d", [self.service[i] for i in keep])
        self._limit = self.ranks[-1]

    def ordered(self) -> tuple[list[float], list[float], list[int]]:
        """The kept latencies, service times and seqs, in send (``seq``) order."""
        self._trim()
        order = sorted(range(len(self.seqs)), key=self.seqs.__getitem__)
        return (
            [self.latency[i] for i in order],
            [self.service[i] for i in order],
            [self.seqs[i] for i in order],
        )

    def to_wire(self) -> dict[str, Any]:
        self._trim()
        return {
            "seen": self.seen,
            "seq": list(self.seqs),
            "latency_ms": [round(v, 3) for v in self.latency],
            "service_time_ms": [round(v, 3) for v in self.service],
        }

    def merge_wire(self, data: dict[str, Any]) -> None:
        """Add another reservoir's sample (same ``key``): exactly the sample one reservoir that
        saw both sides' requests would hold."""
        for seq, latency_ms, service_ms in zip(
            data["seq"], data["latency_ms"], data["service_time_ms"], strict=True
        ):
            self._offer(int(seq), float(latency_ms), float(service_ms))
        self._trim()
        self.seen += int(data["seen"])


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
    """Counts, histograms, a latency sample and example requests of one route."""

    __slots__ = (
        "captured",
        "errors",
        "examples",
        "failures",
        "latency",
        "requests",
        "samples",
        "service",
        "statuses",
        "transitions",
    )

    def __init__(self, key: str = "") -> None:
        self.requests = 0
        self.errors = 0
        self.latency = new_histogram()
        self.service = new_histogram()
        # status code as text ("200"), or "error" for a transport failure
        self.statuses: Counter[str] = Counter()
        # transport failures by kind (FAILURE_KINDS)
        self.failures: Counter[str] = Counter()
        # against the captured status: "same", "changed" (unknown ones are not counted)
        self.captured: Counter[str] = Counter()
        # "200->401": requests whose captured status was 200 and replayed one 401
        self.transitions: Counter[str] = Counter()
        # a few request paths per failure kind or non-2xx status
        self.examples: dict[str, list[str]] = {}
        self.samples = Reservoir(ROUTE_SAMPLES, key)

    def example(self, kind: str, path: str) -> None:
        kept = self.examples.setdefault(kind, [])
        if len(kept) < EXAMPLES and path not in kept:
            kept.append(path[:_EXAMPLE_CHARS])


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
        #: Things about the capture worth a warning (``out_of_order``; writes sent with a body
        #: the capture marked ``body_truncated``, ``body_unknown`` or ``body_dropped``).
        self.notes: Counter[str] = Counter()
        self.cap_hits = 0
        self.in_flight = 0
        self.samples = Reservoir(OVERALL_SAMPLES, "overall")
        #: A digest of the requests the timeline went through (``run.capture_fingerprint``).
        self.fingerprint: str | None = None
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
                stats = self.routes[key] = RouteStats(key)
        return stats

    def record(
        self,
        route: str,
        due_s: float,
        lag_s: float,
        service_s: float,
        latency_s: float,
        status: int | None,
        *,
        failure: str | None = None,
        captured: int | None = None,
        path: str | None = None,
        seq: int | None = None,
    ) -> None:
        """One finished request. ``status`` None means a transport failure (an error) of kind
        ``failure``; ``captured`` is the status the capture recorded (None: unknown); ``path``
        (the captured, redacted path) is kept as an example of failures and non-2xx answers;
        ``seq`` is the request's place in the timeline (:class:`Reservoir`; None: by arrival)."""
        error = status is None or status >= 500
        latency_us = max(1, min(_HIGHEST_US, int(latency_s * 1e6)))
        service_us = max(1, min(_HIGHEST_US, int(service_s * 1e6)))
        lag_us = max(1, min(_HIGHEST_US, int(lag_s * 1e6)))
        stats = self._route(route)
        stats.requests += 1
        stats.errors += error
        stats.latency.record_value(latency_us)
        stats.service.record_value(service_us)
        if status is None:
            kind = failure or "other"
            stats.statuses["error"] += 1
            stats.failures[kind] += 1
            if path is not None:
                stats.example(kind, path)
        else:
            code = str(status)
            stats.statuses[code] += 1
            if path is not None and not 200 <= status < 400:
                stats.example(code, path)
        if captured is not None:
            same = status == captured
            stats.captured["same" if same else "changed"] += 1
            if not same:
                change = f"{captured}->{'error' if status is None else status}"
                if change in stats.transitions or len(stats.transitions) < _TRANSITIONS:
                    stats.transitions[change] += 1
                else:
                    stats.transitions["other"] += 1
        stats.samples.add(latency_us / 1000.0, service_us / 1000.0, seq)
        self.samples.add(latency_us / 1000.0, service_us / 1000.0, seq)
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
        """Count requests left out, by reason: not sent (``method``: a write without
        --allow-writes; ``filtered``, ``sampled``: run-time filters), or sent but not measured
        (``warmup``)."""
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
                    "failures": dict(s.failures),
                    "captured": dict(s.captured),
                    "transitions": dict(s.transitions),
                    "examples": s.examples,
                    "samples": s.samples.to_wire(),
                }
                for key, s in self.routes.items()
            },
            "samples": self.samples.to_wire(),
            "fingerprint": self.fingerprint,
            "latency": encode(self.latency),
            "lag": encode(self.lag),
            "skipped": dict(self.skipped),
            "notes": dict(self.notes),
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
            stats.failures.update({str(k): int(v) for k, v in data.get("failures", {}).items()})
            stats.captured.update({str(k): int(v) for k, v in data.get("captured", {}).items()})
            stats.transitions.update(
                {str(k): int(v) for k, v in data.get("transitions", {}).items()}
            )
            for kind, paths in data.get("examples", {}).items():
                for one in paths:
                    stats.example(str(kind), str(one))
            if "samples" in data:
                stats.samples.merge_wire(data["samples"])
        if "samples" in wire:
            self.samples.merge_wire(wire["samples"])
        self.fingerprint = self.fingerprint or wire.get("fingerprint")
        self.latency.decode_and_add(wire["latency"].encode("ascii"))
        self.lag.decode_and_add(wire["lag"].encode("ascii"))
        self.skipped.update({str(k): int(v) for k, v in wire["skipped"].items()})
        self.notes.update({str(k): int(v) for k, v in wire.get("notes", {}).items()})
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
