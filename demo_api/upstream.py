"""A simulated external customer service: profile, order history and preferences.

The user dashboard needs all three. Each call takes a realistic, slightly jittered time (a
remote service on the same continent: tens of milliseconds); the order history reads this shop's
database, as a real orders service would read its own. With ``parallel_upstream`` off the calls
run one after another (the dashboard costs the sum of the three), on they run concurrently on a
small thread pool (it costs the slowest one).
"""

from __future__ import annotations

import contextvars
import hashlib
import random
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from hlthz.demo_api import queries
from hlthz.demo_api.db import Database
from hlthz.demo_api.instrumentation import UpstreamMetricsLike

CALLS = ("profile", "orders", "preferences")
_TIERS = ("bronze", "silver", "gold", "platinum")
_LANGS = ("en", "de", "fr", "es", "it", "nl")
_CURRENCIES = ("EUR", "USD", "GBP")


class UpstreamService:
    """The three calls, each with its mean latency from ``latency`` (seconds, +-20 % jitter)."""

    def __init__(
        self,
        db: Database,
        latency: dict[str, float],
        *,
        parallel: bool,
        metrics: UpstreamMetricsLike | None = None,
    ) -> None:
        self.db = db
        self.metrics = metrics
        self.latency = latency
        self.parallel = parallel
        self._pool = ThreadPoolExecutor(max_workers=32, thread_name_prefix="hlthz-upstream")
        self._rng = random.Random()

    def _wait(self, call: str) -> None:
        mean = self.latency.get(call, 0.0)
        time.sleep(mean * self._rng.uniform(0.8, 1.2))

    def _timed(self, call: Callable[[int], dict[str, Any]], user_id: int) -> dict[str, Any]:
        # Each call is timed as one outbound call (upstream_request_duration_seconds and the
        # request's added-up upstream time), as a real HTTP client wrapper would be.
        if self.metrics is None:
            return call(user_id)
        with self.metrics.call():
            return call(user_id)

    def profile(self, user_id: int) -> dict[str, Any]:
        self._wait("profile")
        digest = _digest(user_id)
        return {
            "tier": _TIERS[digest[0] % len(_TIERS)],
            "member_since_year": 2015 + digest[1] % 11,
            "newsletter": bool(digest[2] % 2),
        }

    def orders(self, user_id: int) -> dict[str, Any]:
        self._wait("orders")
        with self.db.connect() as conn:
            recent = queries.open_orders(conn, user_id)
        return {"open": recent, "open_count": len(recent)}

    def preferences(self, user_id: int) -> dict[str, Any]:
        self._wait("preferences")
        digest = _digest(user_id)
        return {
            "language": _LANGS[digest[3] % len(_LANGS)],
            "currency": _CURRENCIES[digest[4] % len(_CURRENCIES)],
            "dark_mode": bool(digest[5] % 2),
        }

    def dashboard(self, user_id: int) -> dict[str, Any]:
        """The three answers keyed by call name, sequential or concurrent per the switch."""
        calls: dict[str, Callable[[int], dict[str, Any]]] = {
            "profile": self.profile,
            "orders": self.orders,
            "preferences": self.preferences,
        }
        if not self.parallel:
            return {name: self._timed(call, user_id) for name, call in calls.items()}
        # Each call runs in a copy of this request's context, so queries it issues are still
        # attributed to the request by the exporter.
        futures = {
            name: self._pool.submit(contextvars.copy_context().run, self._timed, call, user_id)
            for name, call in calls.items()
        }
        return {name: future.result(timeout=30) for name, future in futures.items()}

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


def _digest(user_id: int) -> bytes:
    return hashlib.sha256(f"user:{user_id}".encode()).digest()
