"""An order's side work: confirmation e-mail, inventory reservation, analytics.

Each task is idempotent (it records an ``order_events`` row in the same transaction as its
effect and skips when the row exists), so a retried or re-delivered job does its work once.
The e-mail goes through :class:`SimulatedSmtp`, which takes as long as a real SMTP hand-off
(~700 ms by default) and can be told to fail, so retries are testable.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

import sqlalchemy as sa

from hlthz.demo_api import models as m
from hlthz.demo_api import queries
from hlthz.demo_api.cache import ResponseCache
from hlthz.demo_api.db import Database
from hlthz.demo_api.instrumentation import named_query
from hlthz.demo_api.settings import Settings

log = logging.getLogger(__name__)

#: Task names, in the order an inline order runs them.
TASK_NAMES = ("send_confirmation_email", "reserve_inventory", "record_analytics")


class _SmtpError(Exception):
    """The simulated mail server refused the message."""


@dataclass
class SimulatedSmtp:
    """A mail server that takes ``delay`` seconds per message and fails on request."""

    delay: float
    _fail_next: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)
    #: The latest messages sent (bounded: a long drill sends one per order).
    sent: deque[tuple[str, str]] = field(default_factory=lambda: deque(maxlen=1000))

    def fail_next(self, n: int = 1) -> None:
        """Make the next ``n`` sends raise :class:`_SmtpError` (a drill for retries)."""
        with self._lock:
            self._fail_next = n

    def send(self, to: str, subject: str) -> None:
        time.sleep(self.delay)
        with self._lock:
            if self._fail_next > 0:
                self._fail_next -= 1
                raise _SmtpError(f"451 temporary failure sending to {to}")
            self.sent.append((to, subject))


@dataclass
class WorkContext:
    """What tasks need: the database, the cache to invalidate, the mail server, delays."""

    settings: Settings
    db: Database
    cache: ResponseCache | None
    smtp: SimulatedSmtp

    @classmethod
    def build(cls, settings: Settings, db: Database, cache: ResponseCache | None) -> WorkContext:
        return cls(settings, db, cache, SimulatedSmtp(settings.smtp_delay))


def _done(ctx: WorkContext, order_id: int, kind: str) -> bool:
    with ctx.db.connect() as conn:
        return kind in queries.order_events(conn, order_id)


def _record(conn: sa.Connection, order_id: int, kind: str) -> None:
    with named_query("record_order_event"):
        conn.execute(
            sa.insert(m.order_events).values(
                order_id=order_id, kind=kind, created_at=datetime.now()
            )
        )


def send_confirmation_email(ctx: WorkContext, order_id: int) -> None:
    """Mail the customer their order confirmation."""
    if _done(ctx, order_id, "email_sent"):
        return
    with ctx.db.connect() as conn, named_query("order_customer"):
        email = conn.execute(
            sa.select(m.users.c.email)
            .join(m.orders, m.orders.c.user_id == m.users.c.id)
            .where(m.orders.c.id == order_id)
        ).scalar_one()
    ctx.smtp.send(email, f"Your order #{order_id}")
    with ctx.db.begin() as conn:
        _record(conn, order_id, "email_sent")


def reserve_inventory(ctx: WorkContext, order_id: int) -> None:
    """Take the ordered quantities out of stock (the fullest warehouse first, never below 0)."""
    time.sleep(ctx.settings.inventory_delay)  # the warehouse system's round trip
    touched: set[tuple[int, int]] = set()
    with ctx.db.begin() as conn:
        if "inventory_reserved" in queries.order_events(conn, order_id):
            return
        with named_query("order_lines"):
            lines = conn.execute(
                sa.select(
                    m.order_items.c.product_id, m.order_items.c.quantity, m.products.c.category_id
                )
                .join(m.products, m.products.c.id == m.order_items.c.product_id)
                .where(m.order_items.c.order_id == order_id)
            ).all()
        for line in lines:
            with named_query("reserve_stock"):
                row = conn.execute(
                    sa.select(m.inventory.c.id, m.inventory.c.stock)
                    .where(m.inventory.c.product_id == line.product_id)
                    .order_by(m.inventory.c.stock.desc(), m.inventory.c.id)
                    .limit(1)
                ).first()
                if row is not None:
                    conn.execute(
                        sa.update(m.inventory)
                        .where(m.inventory.c.id == row.id)
                        .values(stock=max(0, row.stock - line.quantity))
                    )
            touched.add((line.product_id, line.category_id))
        _record(conn, order_id, "inventory_reserved")
    if ctx.cache is not None and touched:
        ctx.cache.invalidate(product_tags(touched))


def record_analytics(ctx: WorkContext, order_id: int) -> None:
    """Send the order to the analytics pipeline (simulated latency) and mark it recorded."""
    time.sleep(ctx.settings.analytics_delay)
    with ctx.db.begin() as conn:
        if "analytics_recorded" not in queries.order_events(conn, order_id):
            _record(conn, order_id, "analytics_recorded")


def product_tags(products: set[tuple[int, int]]) -> list[str]:
    """Cache tags to invalidate when ``(product id, category id)`` pairs change."""
    tags = {"featured"}
    for product_id, category_id in products:
        tags.add(f"product:{product_id}")
        tags.add(f"category:{category_id}")
    return sorted(tags)


TASKS: dict[str, Callable[[WorkContext, int], None]] = {
    "send_confirmation_email": send_confirmation_email,
    "reserve_inventory": reserve_inventory,
    "record_analytics": record_analytics,
}
