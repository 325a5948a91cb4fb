"""Background job metrics for any queue: depth, duration and outcome of each job.

::

    emails = JobMetrics("emails")
    emails.set_depth(queue.qsize())
    with emails.track("send_receipt"):
        send_receipt(order)          # success, or failure if it raises (re-raised)
    emails.retry("send_receipt")     # when the job is scheduled again
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from time import perf_counter

from prometheus_client import CollectorRegistry

from hlthz.errors import ConfigError
from hlthz.exporter._metrics import Metrics


class JobMetrics:
    """Reports the jobs of the queue named ``queue`` (job names are label values: keep few)."""

    __slots__ = ("_depth", "_metrics", "queue")

    def __init__(self, queue: str, *, registry: CollectorRegistry | None = None) -> None:
        if not isinstance(queue, str) or not queue:
            raise ConfigError(f"JobMetrics needs a non-empty queue name, got {queue!r}")
        self.queue = queue
        self._metrics = Metrics.for_registry(registry)
        self._depth = self._metrics.job_queue_depth.get((queue,))

    def set_depth(self, depth: float) -> None:
        """Set ``job_queue_depth``: the jobs waiting now."""
        self._depth.set(depth)

    @contextlib.contextmanager
    def track(self, job: str) -> Iterator[None]:
        """Time the block as one run of ``job``: ``success``, or ``failure`` if it raises."""
        start = perf_counter()
        outcome = "failure"
        try:
            yield
            outcome = "success"
        finally:
            self._metrics.job_duration.get((self.queue, job)).observe(perf_counter() - start)
            self._metrics.jobs.get((self.queue, job, outcome)).inc()

    def retry(self, job: str) -> None:
        """Count one retry of ``job`` (outcome ``retry``)."""
        self._metrics.jobs.get((self.queue, job, "retry")).inc()

    def success(self, job: str, duration: float) -> None:
        """Record a job that succeeded in ``duration`` seconds (when ``track`` cannot wrap it)."""
        self._metrics.job_duration.get((self.queue, job)).observe(duration)
        self._metrics.jobs.get((self.queue, job, "success")).inc()

    def failure(self, job: str, duration: float) -> None:
        """Record a job that failed after ``duration`` seconds."""
        self._metrics.job_duration.get((self.queue, job)).observe(duration)
        self._metrics.jobs.get((self.queue, job, "failure")).inc()
