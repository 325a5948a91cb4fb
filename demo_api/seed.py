"""A deterministic shop data set, inserted in bulk.

The same arguments always give the same rows on SQLite and PostgreSQL (one seeded
:class:`random.Random`, no clock), so the ``before`` and ``after`` profiles can be compared row
for row. Defaults are sized so the slow path is clearly slow: 20,000 products with long
descriptions and large specification documents, 200,000 reviews.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from hlthz.demo_api import models
from hlthz.demo_api.db import create_db_engine, normalize_url
from hlthz.demo_api.settings import Settings, mask_password
from hlthz.errors import ConfigError, DatabaseError

log = logging.getLogger(__name__)

SEED_VERSION = "1"
DEFAULT_PRODUCTS = 20_000
DEFAULT_REVIEWS = 200_000
SMALL_PRODUCTS = 400
SMALL_REVIEWS = 2_000
WAREHOUSES = ("north", "south")
#: Every row's timestamps count back from here, so data never depends on today's date.
EPOCH = datetime(2026, 1, 1, 12, 0, 0)

CATEGORY_NAMES = (
    "Laptops", "Phones", "Tablets", "Cameras", "Headphones", "Speakers", "Monitors", "Keyboards",
    "Mice", "Printers", "Routers", "Storage", "Watches", "Drones", "Consoles", "Games",
    "Kitchen", "Garden", "Tools", "Lighting",
)  # fmt: skip
_WORD_TEXT = """
durable compact wireless premium ergonomic silent rugged portable smart modular efficient bright
precise fast quiet slim sturdy elegant reliable versatile waterproof lightweight battery display
sensor frame finish cable charger mount speaker lens panel motor chip design comfort value
warranty performance quality delivery support upgrade accessory
"""
_WORDS = tuple(_WORD_TEXT.split())


@dataclass(frozen=True)
class SeedResult:
    """What :func:`seed` did: row counts, whether an existing data set was reused, seconds."""

    products: int
    reviews: int
    users: int
    orders: int
    categories: int
    reused: bool
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def seed(
    db_url: str,
    *,
    products: int = DEFAULT_PRODUCTS,
    reviews: int = DEFAULT_REVIEWS,
    users: int | None = None,
    orders: int | None = None,
    categories: int | None = None,
    random_seed: int = 42,
    reuse: bool = False,
) -> SeedResult:
    """Create the schema in ``db_url`` and fill it with a deterministic data set.

    Existing demo tables are dropped first, unless ``reuse`` is true and they already hold the
    data set these arguments describe. ``users``, ``orders`` and ``categories`` default to sizes
    derived from ``products``. SQLite files and their directory are created as needed.
    """
    if products < 1 or reviews < 0:
        raise ConfigError("--products must be at least 1 and --reviews at least 0")
    users = users if users is not None else max(20, products // 4)
    orders = orders if orders is not None else max(20, products // 2)
    categories = (
        categories if categories is not None else min(len(CATEGORY_NAMES), max(2, products // 50))
    )
    if not 1 <= categories <= len(CATEGORY_NAMES):
        raise ConfigError(f"categories must be between 1 and {len(CATEGORY_NAMES)}")
    wanted = {
        "version": SEED_VERSION,
        "products": str(products),
        "reviews": str(reviews),
        "users": str(users),
        "orders": str(orders),
        "categories": str(categories),
        "random_seed": str(random_seed),
    }
    started = time.perf_counter()
    db_url = normalize_url(db_url)  # a bad URL is a one-line ConfigError, not a traceback
    _ensure_sqlite_dir(db_url)
    engine = create_db_engine(db_url, pool=(1, 0, False), settings=Settings())
    try:
        if reuse and _existing_meta(engine) == wanted:
            return SeedResult(products, reviews, users, orders, categories, True, 0.0)
        rng = random.Random(random_seed)
        with engine.begin() as conn:
            models.metadata.drop_all(conn)
            for index in models.OPTIONAL_INDEXES:
                index.drop(conn, checkfirst=True)
            models.metadata.create_all(conn)
            _insert_all(conn, rng, products, reviews, users, orders, categories)
            conn.execute(
                sa.insert(models.demo_meta), [{"key": k, "value": v} for k, v in wanted.items()]
            )
            if conn.dialect.name == "postgresql":
                _advance_sequences(conn)
        with engine.connect() as conn:
            conn.exec_driver_sql("ANALYZE")
    except sa.exc.OperationalError as error:
        raise DatabaseError(
            f"cannot seed {mask_password(db_url)}: {str(error.orig).strip().splitlines()[0]}"
        ) from error
    finally:
        engine.dispose()
    return SeedResult(
        products, reviews, users, orders, categories, False, time.perf_counter() - started
    )


def _ensure_sqlite_dir(db_url: str) -> None:
    url = sa.engine.make_url(db_url)
    if url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:":
        Path(url.database).parent.mkdir(parents=True, exist_ok=True)


def _existing_meta(engine: sa.Engine) -> dict[str, str] | None:
    try:
        with engine.connect() as conn:
            if not sa.inspect(conn).has_table("demo_meta"):
                return None
            rows = conn.execute(sa.select(models.demo_meta)).all()
    except sa.exc.DBAPIError:
        return None
    return {row.key: row.value for row in rows}


def _insert_all(
    conn: Connection,
    rng: random.Random,
    n_products: int,
    n_reviews: int,
    n_users: int,
    n_orders: int,
    n_categories: int,
) -> None:
    sentences = [_sentence(rng) for _ in range(300)]
    conn.execute(
        sa.insert(models.categories),
        [
            {
                "id": i + 1,
                "slug": CATEGORY_NAMES[i].lower(),
                "name": CATEGORY_NAMES[i],
                "updated_at": EPOCH - timedelta(days=i),
            }
            for i in range(n_categories)
        ],
    )
    conn.execute(
        sa.insert(models.users),
        [
            {
                "id": i,
                "email": f"user{i}@example.test",
                "name": f"User {i}",
                "created_at": EPOCH - timedelta(hours=i),
            }
            for i in range(1, n_users + 1)
        ],
    )
    prices: list[int] = [0]
    product_rows = []
    for i in range(1, n_products + 1):
        price = rng.randrange(199, 250_000)
        prices.append(price)
        product_rows.append(
            {
                "id": i,
                "category_id": rng.randrange(1, n_categories + 1),
                "sku": f"SKU-{i:07d}",
                "name": f"{rng.choice(_WORDS).title()} {rng.choice(_WORDS).title()} {i}",
                "price_cents": price,
                "description": " ".join(rng.sample(sentences, 8)),
                "specifications": _specifications(rng, i),
                "created_at": EPOCH - timedelta(minutes=7 * i),
                "updated_at": EPOCH - timedelta(minutes=7 * i),
            }
        )
    _bulk(conn, models.products, product_rows)
    del product_rows
    _bulk(
        conn,
        models.inventory,
        (
            {
                "id": 2 * (p - 1) + w + 1,
                "product_id": p,
                "warehouse": name,
                "stock": rng.randrange(0, 400),
            }
            for p in range(1, n_products + 1)
            for w, name in enumerate(WAREHOUSES)
        ),
    )
    ratings = (1, 2, 3, 4, 5)
    weights = (5, 7, 15, 33, 40)
    _bulk(
        conn,
        models.reviews,
        (
            {
                "id": i,
                "product_id": rng.randrange(1, n_products + 1),
                "user_id": rng.randrange(1, n_users + 1),
                "rating": rng.choices(ratings, weights)[0],
                "title": sentences[rng.randrange(len(sentences))][:60],
                "body": " ".join(rng.sample(sentences, 2)),
                "created_at": EPOCH - timedelta(minutes=i),
            }
            for i in range(1, n_reviews + 1)
        ),
    )
    order_rows: list[dict[str, Any]] = []
    item_rows: list[dict[str, Any]] = []
    for oid in range(1, n_orders + 1):
        total = 0
        for _ in range(rng.randrange(1, 4)):
            product = rng.randrange(1, n_products + 1)
            qty = rng.randrange(1, 4)
            total += qty * prices[product]
            item_rows.append(
                {
                    "id": len(item_rows) + 1,
                    "order_id": oid,
                    "product_id": product,
                    "quantity": qty,
                    "unit_price_cents": prices[product],
                }
            )
        order_rows.append(
            {
                "id": oid,
                "user_id": rng.randrange(1, n_users + 1),
                "status": rng.choices(models.ORDER_STATUSES, (10, 20, 20, 40, 10))[0],
                "total_cents": total,
                "created_at": EPOCH - timedelta(minutes=13 * oid),
            }
        )
    _bulk(conn, models.orders, order_rows)
    _bulk(conn, models.order_items, item_rows)


def _bulk(conn: Connection, table: sa.Table, rows: Any, batch: int = 20_000) -> None:
    """Insert ``rows`` (any iterable of dicts) in executemany batches of ``batch``."""
    for chunk in _chunks(rows, batch):
        conn.execute(sa.insert(table), chunk)


def _chunks(rows: Any, size: int) -> Iterator[Sequence[dict[str, Any]]]:
    chunk: list[dict[str, Any]] = []
    for row in rows:
        chunk.append(row)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _sentence(rng: random.Random) -> str:
    words = [rng.choice(_WORDS) for _ in range(rng.randrange(8, 16))]
    return " ".join(words).capitalize() + "."


def _specifications(rng: random.Random, product_id: int) -> dict[str, Any]:
    """A large, realistic specification document (about 1 KB of JSON)."""
    return {
        "model": f"M-{product_id:06d}",
        "dimensions_mm": [rng.randrange(50, 600), rng.randrange(50, 600), rng.randrange(5, 200)],
        "weight_g": rng.randrange(80, 9000),
        "colors": rng.sample(["black", "white", "silver", "blue", "red", "green", "gold"], 3),
        "warranty_months": rng.choice((12, 24, 36)),
        "features": [f"{rng.choice(_WORDS)} {rng.choice(_WORDS)}" for _ in range(12)],
        "ratings_by_lab": {f"lab_{k}": round(rng.random() * 10, 2) for k in range(10)},
        "compatibility": [f"standard-{rng.randrange(100, 999)}" for _ in range(8)],
        "energy": {"class": rng.choice("ABCDEFG"), "watts": rng.randrange(1, 900)},
    }


def _advance_sequences(conn: Connection) -> None:
    # Explicit ids do not move PostgreSQL's sequences; later inserts would collide.
    for table in ("orders", "order_items", "order_events", "reviews", "products", "users"):
        conn.exec_driver_sql(
            f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
            f"COALESCE((SELECT MAX(id) FROM {table}), 0) + 1, false)"
        )
