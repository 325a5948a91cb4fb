"""Where an order's side work runs: inline, an in-process worker thread, or RQ on Redis.

``background_jobs`` off runs every task inside the request (the slow story: the customer waits
for the SMTP server). On, the request only enqueues. Without Redis the queue is a bounded
in-process queue drained by one worker thread; with ``--cache redis://...`` it is a durable RQ
queue drained by ``hlthz api worker``, so a crashed API process loses no order work.

A failing task is retried ``Settings.job_retries`` times with a growing pause, never dropped
silently. Metrics (``hlthz.exporter.JobMetrics``, queue ``demo_orders``): a failed attempt that
will be retried counts ``jobs_total{outcome="retry"}``; a job's last attempt counts ``success``
or ``failure`` and its duration in ``job_duration_seconds``. A job that fails its last attempt
is logged and kept in ``ThreadQueue.dead`` (RQ keeps it in its failed-job registry).
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import deque
from typing import Any, Protocol

from hlthz.demo_api.instrumentation import QUEUE_NAME, JobMetricsLike
from hlthz.demo_api.tasks import TASKS, WorkContext

log = logging.getLogger(__name__)


class JobRunner(Protocol):
    """Runs or queues an order's tasks."""

    #: ``inline`` or ``queued``: what an order response reports.
    mode: str

    def submit(self, task: str, order_id: int) -> None: ...

    def close(self) -> None: ...


def _attempt(
    ctx: WorkContext, metrics: JobMetricsLike, task: str, order_id: int, final: bool
) -> None:
    """Run one attempt of ``task``; count success, retry (more attempts follow) or failure."""
    started = time.perf_counter()
    try:
        TASKS[task](ctx, order_id)
    except Exception:
        if final:
            metrics.failure(task, time.perf_counter() - started)
        else:
            metrics.retry(task)
        raise
    metrics.success(task, time.perf_counter() - started)


class InlineRunner:
    """Runs tasks in the request thread (``background_jobs`` off); errors reach the client."""

    mode = "inline"

    def __init__(self, ctx: WorkContext) -> None:
        self.ctx = ctx

    def submit(self, task: str, order_id: int) -> None:
        TASKS[task](self.ctx, order_id)

    def close(self) -> None:
        pass


class ThreadQueue:
    """A bounded in-process queue and one worker thread (the default ``background_jobs``)."""

    mode = "queued"

    def __init__(self, ctx: WorkContext, metrics: JobMetricsLike, *, maxsize: int = 10_000) -> None:
        self.ctx = ctx
        self.metrics = metrics
        self.retries = ctx.settings.job_retries
        self.interval = ctx.settings.job_retry_interval
        self.maxsize = maxsize
        self._items: deque[tuple[str, int, int]] = deque()
        self._cond = threading.Condition()
        self._paused = False
        self._closed = False
        self._unfinished = 0
        #: Jobs that failed every attempt: (task, order id, last error).
        self.dead: list[tuple[str, int, str]] = []
        self._thread = threading.Thread(target=self._work, name="hlthz-demo-jobs", daemon=True)
        self._thread.start()

    def submit(self, task: str, order_id: int) -> None:
        with self._cond:
            # Back-pressure rather than dropping work when the queue is full.
            while len(self._items) >= self.maxsize and not self._closed:
                self._cond.wait()
            self._items.append((task, order_id, 0))
            self._unfinished += 1
            self.metrics.set_depth(len(self._items))
            self._cond.notify_all()

    def pause(self) -> None:
        """Stop starting jobs (one in progress finishes); for drills and tests."""
        with self._cond:
            self._paused = True

    def resume(self) -> None:
        with self._cond:
            self._paused = False
            self._cond.notify_all()

    @property
    def depth(self) -> int:
        """Jobs waiting."""
        with self._cond:
            return len(self._items)

    def join(self, timeout: float) -> bool:
        """Wait until every submitted job finished (or died); False after ``timeout`` s."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._unfinished:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(left)
        return True

    def _next(self) -> tuple[str, int, int] | None:
        with self._cond:
            while not self._closed and (self._paused or not self._items):
                self._cond.wait()
            if self._closed:
                return None
            item = self._items.popleft()
            self.metrics.set_depth(len(self._items))
            self._cond.notify_all()
            return item

    def _work(self) -> None:
        while (item := self._next()) is not None:
            task, order_id, attempt = item
            final = attempt >= self.retries
            try:
                _attempt(self.ctx, self.metrics, task, order_id, final)
            except Exception as error:
                if not final:
                    log.warning("job %s(order %s) failed, retrying: %s", task, order_id, error)
                    time.sleep(self.interval * 2**attempt)
                    with self._cond:
                        self._items.append((task, order_id, attempt + 1))
                        self.metrics.set_depth(len(self._items))
                    continue
                log.error("job %s(order %s) failed for good: %s", task, order_id, error)
                self.dead.append((task, order_id, str(error)))
            with self._cond:
                self._unfinished -= 1
                self._cond.notify_all()

    def close(self) -> None:
        """Stop the worker; jobs still queued are logged (the in-process queue is not durable)."""
        with self._cond:
            self._closed = True
            left = len(self._items)
            self._cond.notify_all()
        if left:
            log.warning("%d queued order jobs not run at shutdown (use Redis for durability)", left)
        self._thread.join(timeout=5)


class RqQueue:
    """A durable RQ queue on Redis; ``hlthz api worker`` (:func:`run_worker`) drains it.

    When Redis refuses the job, the order's work runs on an in-process :class:`ThreadQueue`
    instead (logged): the customer still gets the order and its e-mail, only not durably.
    """

    mode = "queued"

    def __init__(self, url: str, ctx: WorkContext, metrics: JobMetricsLike) -> None:
        import redis
        import rq

        self._redis = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=1)
        self._redis_error = redis.RedisError
        self._queue = rq.Queue(QUEUE_NAME, connection=self._redis)
        self._retry = _rq_retry(ctx)
        self.ctx = ctx
        self.metrics = metrics
        self._local: ThreadQueue | None = None
        self._local_lock = threading.Lock()

    def submit(self, task: str, order_id: int) -> None:
        try:
            self._queue.enqueue(
                run_rq_job, task, order_id, retry=self._retry, job_timeout=60, failure_ttl=7 * 86400
            )
            self.metrics.set_depth(self._queue.count)
        except self._redis_error as error:
            log.warning(
                "Redis refused job %s(order %s), running it in-process: %s", task, order_id, error
            )
            self._fallback().submit(task, order_id)

    def _fallback(self) -> ThreadQueue:
        with self._local_lock:
            if self._local is None:
                self._local = ThreadQueue(self.ctx, self.metrics)
            return self._local

    @property
    def depth(self) -> int:
        return int(self._queue.count)

    def close(self) -> None:
        if self._local is not None:
            self._local.close()
        self._redis.close()


def _rq_retry(ctx: WorkContext) -> Any:
    from rq import Retry

    base = ctx.settings.job_retry_interval
    intervals = [round(base * 2**i, 3) for i in range(ctx.settings.job_retries)]
    # A zero interval re-queues immediately; others need the worker's scheduler.
    if not any(intervals):
        return Retry(max=ctx.settings.job_retries)
    return Retry(max=ctx.settings.job_retries, interval=[max(1, round(i)) for i in intervals])


# Set by run_worker in the worker process; RQ calls run_rq_job by its import path.
_WORKER: tuple[WorkContext, JobMetricsLike] | None = None


def run_rq_job(task: str, order_id: int) -> None:
    """The function RQ executes: one attempt of ``task`` for ``order_id``."""
    from rq import get_current_job

    if _WORKER is None:
        raise RuntimeError("run_rq_job needs a worker started by `hlthz api worker`")
    ctx, metrics = _WORKER
    job = get_current_job()
    final = job is None or not job.retries_left
    _attempt(ctx, metrics, task, order_id, final)


def run_worker(ctx: WorkContext, metrics: JobMetricsLike, *, burst: bool = False) -> bool:
    """Drain the RQ queue in this process (``hlthz api worker``); ``burst`` stops when empty."""
    import redis
    import rq

    global _WORKER
    if not ctx.settings.cache_url:
        raise RuntimeError("the RQ worker needs Redis: pass --cache redis://...")
    _WORKER = (ctx, metrics)
    connection = redis.Redis.from_url(ctx.settings.cache_url)
    rq_queue = rq.Queue(QUEUE_NAME, connection=connection)
    # SimpleWorker runs jobs in this process: one engine and one metrics registry, no fork.
    worker = rq.SimpleWorker([rq_queue], connection=connection, name=f"hlthz-demo-{os.getpid()}")
    return bool(worker.work(burst=burst, with_scheduler=True, logging_level="WARNING"))
