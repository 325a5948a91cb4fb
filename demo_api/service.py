"""The shop's behaviour per switch, independent of HTTP: :class:`Shop`.

One :class:`Shop` per app instance owns the database, the cache, the job runner and the
upstream client, and decides per request which shape of each operation runs. The HTTP layer
(:mod:`hlthz.demo_api.app`) only parses and formats.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from datetime import datetime
from typing import Any

from prometheus_client import CollectorRegistry

from hlthz.demo_api import queries
from hlthz.demo_api.cache import ResponseCache, Tags, make_backend
from hlthz.demo_api.db import Database
from hlthz.demo_api.faults import Faults
from hlthz.demo_api.instrumentation import (
    cache_metrics,
    instrument_engine,
    job_metrics,
    upstream_metrics,
)
from hlthz.demo_api.jobs import InlineRunner, JobRunner, RqQueue, ThreadQueue
from hlthz.demo_api.schemas import OrderCreate, ProductUpdate
from hlthz.demo_api.settings import Settings
from hlthz.demo_api.tasks import TASK_NAMES, WorkContext, product_tags
from hlthz.demo_api.upstream import UpstreamService

log = logging.getLogger(__name__)


class _NotFound(LookupError):
    """The product, category or user does not exist (HTTP 404)."""


class _InvalidReference(ValueError):
    """A body refers to a row that does not exist (HTTP 422); ``loc`` names the field."""

    def __init__(self, loc: tuple[str | int, ...], message: str) -> None:
        super().__init__(message)
        self.loc = loc


class Shop:
    """Everything one app instance serves, wired per :class:`Settings`."""

    def __init__(self, settings: Settings, registry: CollectorRegistry | None = None) -> None:
        self.settings = settings
        self.db = Database(settings)
        instrument_engine(self.db.engine, registry)
        self.faults = Faults(self.db)
        self.cache: ResponseCache | None = None
        if settings.on("cache"):
            self.cache = ResponseCache(
                make_backend(settings.cache_url, settings.cache_ttl),
                cache_metrics(registry),
                ttl=settings.cache_ttl,
                bypass=self.faults.cache_bypassed,
            )
        self.work = WorkContext.build(settings, self.db, self.cache)
        self.jobs: JobRunner
        if not settings.on("background_jobs"):
            self.jobs = InlineRunner(self.work)
        elif settings.cache_url:
            self.jobs = RqQueue(settings.cache_url, self.work, job_metrics(registry))
        else:
            self.jobs = ThreadQueue(self.work, job_metrics(registry))
        self.upstream = UpstreamService(
            self.db,
            dict(settings.upstream_latency),
            parallel=settings.on("parallel_upstream"),
            metrics=upstream_metrics(registry),
        )
        self._slugs: dict[int, str] | None = None
        self._slugs_lock = threading.Lock()

    # -- life cycle -------------------------------------------------------------------------

    def prepare(self, *, indexes: bool = True) -> None:
        """Apply the index switch (unless ``indexes`` is False), warm the pool, load categories."""
        if indexes:
            changed = self.db.apply_indexes(self.settings.on("indexes"))
            if changed:
                state = "created" if self.settings.on("indexes") else "dropped"
                log.info("indexes %s: %s", state, changed)
        self.db.warm_up()
        self.slugs()

    def close(self) -> None:
        self.jobs.close()
        self.upstream.close()
        if self.cache is not None:
            self.cache.close()
        self.db.dispose()

    # -- reads ------------------------------------------------------------------------------

    @property
    def full(self) -> bool:
        return not self.settings.on("lean_responses")

    def slugs(self) -> dict[int, str]:
        """Category id -> slug, loaded once: categories are reference data that never change."""
        if self._slugs is None:
            with self._slugs_lock:
                if self._slugs is None:
                    with self.db.connect() as conn:
                        self._slugs = queries.category_slugs(conn)
        return self._slugs

    def _cached(self, key: str, tags: Tags, loader: Callable[[], Any]) -> Any:
        if self.cache is None:
            return loader()
        return self.cache.get_or_load(key, tags, loader)

    def listing(self, category: str | None, page: int, per_page: int) -> dict[str, Any]:
        """A page of products, newest first: ``{"items": [...]}`` plus ``meta`` when lean."""
        slugs = self.slugs()
        category_id: int | None = None
        if category is not None:
            ids = {slug: cid for cid, slug in slugs.items()}
            if category not in ids:
                raise _NotFound(f"unknown category {category!r}; see GET /api/categories")
            category_id = ids[category]
        full = self.full
        joined = self.settings.on("join_queries")

        def load() -> dict[str, Any]:
            with self.db.connect() as conn:
                if joined:
                    items, total = queries.list_products_joined(
                        conn, slugs, category_id, page, per_page, full=full
                    )
                else:
                    items = queries.list_products_n_plus_one(
                        conn, slugs, category_id, page, per_page, full=full
                    )
                    total = 0 if full else queries.count_products(conn, category_id)
            doc: dict[str, Any] = {"items": items}
            if not full:
                doc["meta"] = {"total": total, "page": page, "per_page": per_page}
            return doc

        scope = f"category:{category_id}" if category_id is not None else "featured"
        key = f"products:{scope}:{page}:{per_page}:{'full' if full else 'lean'}"
        doc: dict[str, Any] = self._cached(key, [scope], load)
        return doc

    def product(self, product_id: int) -> dict[str, Any]:
        """One product's detail document; :class:`_NotFound` when it does not exist."""
        slugs = self.slugs()
        full = self.full

        def load() -> dict[str, Any]:
            return self._load_product(product_id, slugs, full)

        def tags(doc: dict[str, Any]) -> list[str]:
            if not full:
                return [f"product:{product_id}"]
            # A full detail lists related products of its category: their changes count too.
            category_id = next(cid for cid, slug in slugs.items() if slug == doc["category"])
            return [f"product:{product_id}", f"category:{category_id}"]

        key = f"product:{product_id}:{'full' if full else 'lean'}"
        doc: dict[str, Any] = self._cached(key, tags, load)
        return doc

    def _load_product(self, product_id: int, slugs: dict[int, str], full: bool) -> dict[str, Any]:
        with self.db.connect() as conn:
            doc = queries.product_detail(
                conn, slugs, product_id, joined=self.settings.on("join_queries"), full=full
            )
        if doc is None:
            raise _NotFound(f"product {product_id} does not exist")
        return doc

    def categories(self) -> dict[str, Any]:
        """``{"categories": [...], "last_modified": ISO time}`` (cached when the cache is on)."""

        def load() -> dict[str, Any]:
            with self.db.connect() as conn:
                docs, newest = queries.list_categories(conn)
            return {"categories": docs, "last_modified": newest.isoformat() if newest else None}

        doc: dict[str, Any] = self._cached("categories", ["categories"], load)
        return doc

    def dashboard(self, user_id: int) -> dict[str, Any]:
        """The user plus the upstream service's profile, orders and preferences."""
        with self.db.connect() as conn:
            user = queries.user_exists(conn, user_id)
        if user is None:
            raise _NotFound(f"user {user_id} does not exist")
        return {"user": user, **self.upstream.dashboard(user_id)}

    # -- writes -----------------------------------------------------------------------------

    def update_product(self, product_id: int, change: ProductUpdate) -> dict[str, Any]:
        """Apply ``change``, invalidate every cache entry that showed the product, return it."""
        fields = change.model_dump(exclude_none=True)
        with self.db.begin() as conn:
            category_id = queries.update_product(conn, product_id, fields, datetime.now())
        if category_id is None:
            raise _NotFound(f"product {product_id} does not exist")
        if self.cache is not None:
            self.cache.invalidate(product_tags({(product_id, category_id)}))
        return self._load_product(product_id, self.slugs(), self.full)

    def create_order(self, order: OrderCreate) -> dict[str, Any]:
        """Insert the order, then run or queue its side work per ``background_jobs``."""
        quantities: dict[int, int] = {}
        for line in order.items:
            quantities[line.product_id] = quantities.get(line.product_id, 0) + line.quantity
        with self.db.begin() as conn:
            if queries.user_exists(conn, order.user_id) is None:
                raise _InvalidReference(("body", "user_id"), f"user {order.user_id} does not exist")
            prices = queries.product_prices(conn, quantities)
            for index, line in enumerate(order.items):
                if line.product_id not in prices:
                    raise _InvalidReference(
                        ("body", "items", index, "product_id"),
                        f"product {line.product_id} does not exist",
                    )
            lines = [(p, q, prices[p][0]) for p, q in quantities.items()]
            doc = queries.create_order(conn, order.user_id, lines, datetime.now())
        for task in TASK_NAMES:
            self.jobs.submit(task, int(doc["id"]))
        return {"order": doc, "side_work": self.jobs.mode}

    def health(self) -> dict[str, Any]:
        """Liveness of the database (raises ServiceUnavailable when down) and the switches."""
        with self.db.connect() as conn:
            conn.exec_driver_sql("SELECT 1")
        return {
            "status": "ok",
            "profile": self.settings.profile,
            "optimizations": dict(self.settings.opts),
            "database": self.db.backend,
            "cache": "off"
            if self.cache is None
            else ("redis" if self.settings.cache_url else "memory"),
            "jobs": self.jobs.mode,
        }
