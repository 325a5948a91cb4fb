"""Fault switches for alert drills: added latency, an error ratio, pool starvation, cache bypass.

They exist only when the app runs with ``--enable-faults`` (otherwise ``/admin/faults`` is a 404
and nothing here is installed). ``PUT /admin/faults`` merges the given fields into the current
state; ``DELETE`` turns everything off. Latency and errors apply to the shop's ``/api`` endpoints,
never to ``/metrics``, ``/health`` or ``/admin``, so Prometheus keeps scraping through a drill.
"""

from __future__ import annotations

import asyncio
import random
import threading
from dataclasses import asdict, dataclass
from typing import Any

from fastapi import HTTPException
from pydantic import BaseModel, ConfigDict, Field

from hlthz.demo_api.db import Database


class FaultsUpdate(BaseModel):
    """Body of ``PUT /admin/faults``: each field optional, merged into the current state."""

    model_config = ConfigDict(extra="forbid")

    latency_ms: int | None = Field(None, ge=0, le=60_000, description="Added to every request.")
    error_ratio: float | None = Field(None, ge=0, le=1, description="Share answered with a 500.")
    pool_starvation: bool | None = Field(None, description="Hold every pooled DB connection.")
    cache_bypass: bool | None = Field(None, description="Every cache look-up is a miss.")


@dataclass
class FaultState:
    latency_ms: int = 0
    error_ratio: float = 0.0
    pool_starvation: bool = False
    cache_bypass: bool = False


class Faults:
    """The live fault state of one app, and the actions that make it real."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.state = FaultState()
        self._lock = threading.Lock()
        self._rng = random.Random()

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return asdict(self.state)

    def update(self, change: FaultsUpdate) -> dict[str, Any]:
        """Merge ``change``; starting or ending pool starvation takes or returns connections."""
        with self._lock:
            fields = change.model_dump(exclude_none=True)
            starve_before = self.state.pool_starvation
            for name, value in fields.items():
                setattr(self.state, name, value)
            starve_after = self.state.pool_starvation
        if starve_after and not starve_before:
            self.db.hold_all_connections()
        elif starve_before and not starve_after:
            self.db.release_held()
        return self.snapshot()

    def clear(self) -> dict[str, Any]:
        return self.update(
            FaultsUpdate(latency_ms=0, error_ratio=0.0, pool_starvation=False, cache_bypass=False)
        )

    def cache_bypassed(self) -> bool:
        return self.state.cache_bypass

    async def apply(self) -> None:
        """Sleep the added latency, then maybe fail: a dependency of every shop route.

        As a route dependency (not a middleware) it runs after routing, so the exporter still
        labels the injected errors with their real ``route``.
        """
        delay = self.state.latency_ms
        if delay:
            await asyncio.sleep(delay / 1000)
        ratio = self.state.error_ratio
        if ratio > 0 and self._rng.random() < ratio:
            raise HTTPException(500, "injected fault (error_ratio)")
