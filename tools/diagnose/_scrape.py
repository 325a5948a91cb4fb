"""Source 1: the app's ``/metrics`` itself, scraped at both ends of a window.

Counters and histograms are the difference between the last and the first scrape (a series
that appears in between counts from zero; one that went down was reset and counts its last
value). Gauges are scraped every ``interval`` in between too, keeping each one's highest value,
so a pool that ran dry for a second is seen even though it is idle at both ends. No Prometheus
is needed; the text is parsed with prometheus-client's parser.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest

from hlthz.errors import ScrapeError
from hlthz.metrics_page import page_samples, read_metrics_page
from hlthz.net import parse_http_url
from hlthz.tools.diagnose.snapshot import COUNTER_SAMPLES, GAUGE_SAMPLES, Labels, Samples, labels_of

Fetch = Callable[[], str]
_Series = dict[tuple[str, Labels], float]


def url_fetch(url: str, *, timeout: float = 10.0) -> Fetch:
    """A fetch of ``url`` (checked now: a bad URL raises UsageError before anything starts)."""
    parse_http_url(url, what="--metrics")
    return lambda: read_metrics_page(url, what="--metrics", timeout=timeout)


def registry_fetch(registry: CollectorRegistry) -> Fetch:
    """A fetch of an in-process registry (the text ``/metrics`` would serve)."""
    return lambda: generate_latest(registry).decode("utf-8")


def _parse(text: str, what: str) -> tuple[_Series, _Series]:
    counters: _Series = {}
    gauges: _Series = {}
    for sample in page_samples(text, what=what):
        name = sample.name
        if name in COUNTER_SAMPLES:
            key = (name, labels_of(sample.labels, COUNTER_SAMPLES[name]))
            counters[key] = counters.get(key, 0.0) + float(sample.value)
        elif name in GAUGE_SAMPLES:
            key = (name, labels_of(sample.labels, GAUGE_SAMPLES[name]))
            gauges[key] = gauges.get(key, 0.0) + float(sample.value)
    return counters, gauges


class ScrapeWindow:
    """Scrapes at :meth:`start`, every ``interval`` for gauges, and at :meth:`stop`.

    ``stop()`` returns the window's :class:`Samples`. Usable as a context manager; the
    sampling thread never outlives it.
    """

    def __init__(self, fetch: Fetch, *, source: str, interval: float = 1.0) -> None:
        self.fetch = fetch
        self.source = source
        self.interval = interval
        self._first: _Series = {}
        self._peaks: _Series = {}
        self._started = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._error: ScrapeError | None = None
        self._lock = threading.Lock()

    def _gauges(self, gauges: _Series) -> None:
        with self._lock:
            for key, value in gauges.items():
                self._peaks[key] = max(self._peaks.get(key, value), value)

    def start(self) -> ScrapeWindow:
        counters, gauges = _parse(self.fetch(), self.source)
        self._first = counters
        self._gauges(gauges)
        self._started = time.monotonic()
        self._thread = threading.Thread(
            target=self._sample, name="hlthz-diagnose-scrape", daemon=True
        )
        self._thread.start()
        return self

    def _sample(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self._gauges(_parse(self.fetch(), self.source)[1])
            except ScrapeError as exc:  # reported by stop(): the window is incomplete
                self._error = exc
                return

    def stop(self) -> Samples:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
        counters, gauges = _parse(self.fetch(), self.source)
        self._gauges(gauges)
        if self._error is not None:
            raise self._error
        samples = Samples(window_seconds=time.monotonic() - self._started, source=self.source)
        for (name, labels), last in counters.items():
            first = self._first.get((name, labels), 0.0)
            samples.add_counter(name, dict(labels), last - first if last >= first else last)
        with self._lock:
            for (name, labels), peak in self._peaks.items():
                samples.add_gauge(name, dict(labels), peak)
        return samples

    def __enter__(self) -> ScrapeWindow:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()


def scrape_samples(fetch: Fetch, window: float, *, source: str, interval: float = 1.0) -> Samples:
    """Scrape now, wait ``window`` seconds (sampling gauges), scrape again."""
    scrape = ScrapeWindow(fetch, source=source, interval=min(interval, max(window, 0.05))).start()
    time.sleep(window)
    return scrape.stop()
