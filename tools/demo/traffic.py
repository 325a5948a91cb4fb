"""Scripted shoppers for ``hlthz demo``: the "production traffic" the demo records and replays.

Each session is one shopper: look at the categories, open a listing page or two, view a few
products, sometimes place an order or open the account dashboard, with think time between
steps. Sessions start spread over ``duration`` seconds and run concurrently, so the recorded
traffic has the shape of real use (bursts, overlaps, idle gaps) rather than a uniform loop.
Everything is drawn from one seeded :class:`random.Random`, so a run is reproducible.
"""

from __future__ import annotations

import contextlib
import http.client
import random
import threading
import time
import urllib.parse
import urllib.request
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any

import httpx

__all__ = ["TrafficPlan", "TrafficStats", "burst", "drive_traffic", "response_bytes"]

#: The share of sessions that end in an order, and that open the account dashboard. Browsing
#: dominates real shop traffic; orders and dashboards are the expensive minority.
ORDER_SHARE = 0.15
DASHBOARD_SHARE = 0.12
#: Users 1..20 exist in every seeded data set (the seed makes at least 20).
USER_IDS = range(1, 21)


@dataclass(frozen=True)
class TrafficPlan:
    """How much traffic: ``sessions`` shoppers starting over ``duration`` seconds."""

    sessions: int
    duration: float
    concurrency: int = 16
    think_time: tuple[float, float] = (0.1, 0.5)
    seed: int = 8
    #: Hard stop: sessions still running this long after ``duration`` are abandoned.
    grace: float = 60.0


@dataclass
class TrafficStats:
    """What the shoppers did: requests by kind, status classes, transport errors."""

    requests: Counter[str] = field(default_factory=Counter)
    statuses: Counter[str] = field(default_factory=Counter)
    errors: int = 0
    sessions: int = 0
    seconds: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def total(self) -> int:
        return sum(self.requests.values())

    def to_dict(self) -> dict[str, Any]:
        return {
            "sessions": self.sessions,
            "requests": self.total,
            "by_kind": dict(self.requests),
            "statuses": dict(self.statuses),
            "transport_errors": self.errors,
            "seconds": round(self.seconds, 2),
        }


def _items(body: Any, *keys: str) -> list[dict[str, Any]]:
    """The list of objects in a JSON body, whether bare or wrapped (``{"items": [...]}``)."""
    if isinstance(body, list):
        return [x for x in body if isinstance(x, dict)]
    if isinstance(body, dict):
        for key in (*keys, "items", "data", "results"):
            value = body.get(key)
            if isinstance(value, list):
                return [x for x in value if isinstance(x, dict)]
    return []


class _Stopped(Exception):
    """The run was interrupted: the shopper leaves at once."""


class _Shopper:
    def __init__(
        self,
        client: httpx.Client,
        rng: random.Random,
        plan: TrafficPlan,
        stats: TrafficStats,
        stop: threading.Event,
    ) -> None:
        self.client = client
        self.rng = rng
        self.plan = plan
        self.stats = stats
        self.stop = stop

    def _call(self, kind: str, method: str, url: str, **kwargs: Any) -> Any:
        try:
            response = self.client.request(method, url, **kwargs)
        except httpx.HTTPError:
            with self.stats._lock:
                self.stats.requests[kind] += 1
                self.stats.errors += 1
            return None
        with self.stats._lock:
            self.stats.requests[kind] += 1
            self.stats.statuses[f"{response.status_code // 100}xx"] += 1
        if response.status_code >= 400:
            return None
        try:
            return response.json()
        except ValueError:
            return None

    def _think(self) -> None:
        if self.stop.wait(self.rng.uniform(*self.plan.think_time)):
            raise _Stopped

    def run(self, session: str, deadline: float) -> None:
        with contextlib.suppress(_Stopped):
            self._session(session, deadline)

    def _session(self, session: str, deadline: float) -> None:
        headers = {"X-Session-Id": session}
        rng = self.rng
        categories = _items(
            self._call("categories", "GET", "/api/categories", headers=headers), "categories"
        )
        seen: list[int] = []
        for _ in range(rng.choice((1, 1, 2, 2, 3))):
            if time.monotonic() > deadline:
                return
            self._think()
            params: dict[str, Any] = {"page": rng.choice((1, 1, 1, 2, 3)), "per_page": 20}
            if categories:
                category = rng.choice(categories)
                params["category"] = category.get("slug") or category.get("id")
            listing = _items(
                self._call("listing", "GET", "/api/products", params=params, headers=headers),
                "products",
            )
            seen.extend(int(p["id"]) for p in listing if isinstance(p.get("id"), int))
        for _ in range(rng.choice((1, 2, 2, 3))):
            if time.monotonic() > deadline:
                return
            self._think()
            product = rng.choice(seen) if seen else rng.randint(1, 200)
            self._call("product", "GET", f"/api/products/{product}", headers=headers)
        user = rng.choice(USER_IDS)
        if rng.random() < DASHBOARD_SHARE and time.monotonic() < deadline:
            self._think()
            self._call("dashboard", "GET", f"/api/users/{user}/dashboard", headers=headers)
        if rng.random() < ORDER_SHARE and time.monotonic() < deadline:
            self._think()
            basket = rng.sample(seen, k=min(len(seen), rng.choice((1, 1, 2)))) or [1]
            order = {
                "user_id": user,
                "items": [{"product_id": p, "quantity": rng.choice((1, 1, 2))} for p in basket],
            }
            self._call("order", "POST", "/api/orders", json=order, headers=headers)


def drive_traffic(
    base_url: str,
    plan: TrafficPlan,
    *,
    on_progress: Callable[[TrafficStats], None] | None = None,
) -> TrafficStats:
    """Run ``plan`` against ``base_url`` and return what was sent.

    Sessions start at seeded random times within ``plan.duration``; at most
    ``plan.concurrency`` run at once. Returns once every session ended or the hard stop
    (``duration + grace``) passed.
    """
    stats = TrafficStats(sessions=plan.sessions)
    master = random.Random(plan.seed)
    starts = sorted(master.uniform(0, plan.duration) for _ in range(plan.sessions))
    seeds = [master.getrandbits(32) for _ in range(plan.sessions)]
    t0 = time.monotonic()
    deadline = t0 + plan.duration + plan.grace
    limits = httpx.Limits(max_connections=plan.concurrency * 2)
    stop = threading.Event()
    pool = ThreadPoolExecutor(plan.concurrency, thread_name_prefix="shopper")
    client = httpx.Client(
        base_url=base_url,
        timeout=httpx.Timeout(30.0, connect=5.0),
        limits=limits,
        headers={"User-Agent": "hlthz-demo-shopper/1"},
    )
    futures = []
    try:
        for index, (start, seed) in enumerate(zip(starts, seeds, strict=True)):
            delay = t0 + start - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            if on_progress is not None:
                on_progress(stats)
            shopper = _Shopper(client, random.Random(seed), plan, stats, stop)
            futures.append(pool.submit(shopper.run, f"shopper-{index:04d}", deadline))
        pending = set(futures)
        while pending and time.monotonic() < deadline:
            _, pending = wait(pending, timeout=0.5)
            if on_progress is not None:
                on_progress(stats)
    finally:
        # On Ctrl-C or the hard stop, shoppers leave at their next step and queued ones never
        # start; requests in flight end within the client's timeout.
        stop.set()
        pool.shutdown(wait=True, cancel_futures=True)
        client.close()
    for future in futures:
        error = None if future.cancelled() else future.exception()
        if error is not None:
            raise error
    stats.seconds = time.monotonic() - t0
    return stats


def burst(
    base_url: str, *, size: int = 16, per_page: int = 40, first_page: int = 2
) -> Counter[str]:
    """``size`` listings of large pages, sent at the same instant; counts of each status.

    Every client connects first and waits at a barrier, so all requests arrive within a
    millisecond or two and each needs a database connection at once: more than the ``before``
    pool of 10 holds. Pages from ``first_page`` on, one per client, so no cache can answer.
    """
    parts = urllib.parse.urlsplit(base_url)
    barrier = threading.Barrier(size)
    statuses: Counter[str] = Counter()
    lock = threading.Lock()

    def one(page: int) -> None:
        conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=120)
        try:
            conn.connect()
            barrier.wait(timeout=60)
            target = f"{parts.path.rstrip('/')}/api/products?page={page}&per_page={per_page}"
            conn.request("GET", target, None, {"Accept-Encoding": "gzip"})
            response = conn.getresponse()
            response.read()
            status = str(response.status)
        except (OSError, threading.BrokenBarrierError, http.client.HTTPException):
            status = "error"
        finally:
            conn.close()
        with lock:
            statuses[status] += 1

    threads = [threading.Thread(target=one, args=(first_page + i,)) for i in range(size)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=180)
    return statuses


def response_bytes(url: str, *, gzip: bool) -> int:
    """The body bytes ``url`` answers with, asking for gzip or not (the bytes as sent)."""
    request = urllib.request.Request(
        url, headers={"Accept-Encoding": "gzip" if gzip else "identity"}
    )
    with urllib.request.urlopen(request, timeout=60) as response:
        return len(response.read())
