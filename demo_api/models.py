"""The shop's schema (SQLAlchemy Core), and the optional indexes behind the ``indexes`` switch.

Tables carry only primary keys and foreign keys; every secondary index is in
:data:`OPTIONAL_INDEXES` so the slow profile can drop them and the fast profile create them,
on the same data. Prices are integer cents so SQLite and PostgreSQL return identical values.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    text,
)

metadata = MetaData()

categories = Table(
    "categories",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("slug", String(64), nullable=False, unique=True),
    Column("name", String(128), nullable=False),
    Column("updated_at", DateTime(timezone=False), nullable=False),
)

products = Table(
    "products",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("category_id", Integer, ForeignKey("categories.id"), nullable=False),
    Column("sku", String(32), nullable=False),
    Column("name", String(200), nullable=False),
    Column("price_cents", Integer, nullable=False),
    Column("description", Text, nullable=False),
    Column("specifications", JSON, nullable=False),
    Column("created_at", DateTime(timezone=False), nullable=False),
    Column("updated_at", DateTime(timezone=False), nullable=False),
)

users = Table(
    "users",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("email", String(200), nullable=False),
    Column("name", String(200), nullable=False),
    Column("created_at", DateTime(timezone=False), nullable=False),
)

reviews = Table(
    "reviews",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("product_id", Integer, ForeignKey("products.id"), nullable=False),
    Column("user_id", Integer, ForeignKey("users.id"), nullable=False),
    Column("rating", Integer, nullable=False),
    Column("title", String(200), nullable=False),
    Column("body", Text, nullable=False),
    Column("created_at", DateTime(timezone=False), nullable=False),
)

#: Stock per product and warehouse; a product's stock is the sum over warehouses.
inventory = Table(
    "inventory",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("product_id", Integer, ForeignKey("products.id"), nullable=False),
    Column("warehouse", String(16), nullable=False),
    Column("stock", Integer, nullable=False),
)

orders = Table(
    "orders",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True),
    Column("user_id", Integer, ForeignKey("users.id"), nullable=False),
    Column("status", String(16), nullable=False),
    Column("total_cents", Integer, nullable=False),
    Column("created_at", DateTime(timezone=False), nullable=False),
)

order_items = Table(
    "order_items",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True),
    Column("order_id", BigInteger().with_variant(Integer, "sqlite"), ForeignKey("orders.id")),
    Column("product_id", Integer, ForeignKey("products.id"), nullable=False),
    Column("quantity", Integer, nullable=False),
    Column("unit_price_cents", Integer, nullable=False),
)

#: One row per finished side effect of an order (``email_sent``, ``inventory_reserved``,
#: ``analytics_recorded``): proof that background work ran, and its idempotency key.
order_events = Table(
    "order_events",
    metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True),
    Column("order_id", BigInteger().with_variant(Integer, "sqlite"), nullable=False),
    Column("kind", String(32), nullable=False),
    Column("created_at", DateTime(timezone=False), nullable=False),
)

#: What ``hlthz api seed`` wrote (sizes, seed, version), so a matching data set can be reused.
demo_meta = Table(
    "demo_meta",
    metadata,
    Column("key", String(64), primary_key=True),
    Column("value", String(200), nullable=False),
)

#: Statuses of orders; the partial index covers the ones a dashboard shows (not cancelled).
ORDER_STATUSES = ("pending", "paid", "shipped", "delivered", "cancelled")
OPEN_ORDERS = text("status <> 'cancelled'")

# Detached from their tables below so ``metadata.create_all`` never builds them:
# :meth:`hlthz.demo_api.db.Database.apply_indexes` creates or drops them per the switch.
OPTIONAL_INDEXES: tuple[Index, ...] = (
    Index("ix_products_category_created", products.c.category_id, products.c.created_at.desc()),
    Index("ix_products_created", products.c.created_at.desc()),
    Index("ix_reviews_product_rating", reviews.c.product_id, reviews.c.rating),
    Index("ix_inventory_product", inventory.c.product_id),
    Index(
        "ix_orders_user_open",
        orders.c.user_id,
        orders.c.status,
        sqlite_where=OPEN_ORDERS,
        postgresql_where=OPEN_ORDERS,
    ),
    Index("ix_order_items_order", order_items.c.order_id),
    Index("ix_order_events_order", order_events.c.order_id, order_events.c.kind),
)
for _index in OPTIONAL_INDEXES:
    assert _index.table is not None
    _index.table.indexes.discard(_index)
