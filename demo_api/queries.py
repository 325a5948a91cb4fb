"""The shop's reads and writes, in both shapes the story compares.

``join_queries`` off is the classic ORM-style N+1: one query for a page of products, then one
query for each product's reviews and one for its inventory (1 + 2N). On, one statement joins
the page to its reviews grouped per product, with the stock as a correlated sub-select. Both shapes
return the same numbers: ratings are computed from the same integer sums in Python.

Documents come out as plain dicts ready for JSON. ``full`` documents (the ``before`` shape) carry
every column plus all reviews and, for a detail, related products; lean ones drop those fields.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Row

from hlthz.demo_api import models as m
from hlthz.demo_api.instrumentation import named_query

#: Fields a full product document has on top of the lean one (documented in docs/demo_api.md).
LISTING_FULL_ONLY = ("description", "specifications", "created_at", "updated_at", "reviews")
DETAIL_FULL_ONLY = ("reviews", "related")
RELATED_LIMIT = 5

_PRODUCT_COLUMNS = (
    m.products.c.id,
    m.products.c.sku,
    m.products.c.name,
    m.products.c.price_cents,
    m.products.c.category_id,
    m.products.c.created_at,
)
_PRODUCT_FULL_COLUMNS = (
    m.products.c.description,
    m.products.c.specifications,
    m.products.c.updated_at,
)
_NEWEST_FIRST = (m.products.c.created_at.desc(), m.products.c.id.desc())


def _rating(total: int | None, count: int) -> float | None:
    return round(int(total or 0) / count, 2) if count else None


def _iso(value: datetime | str) -> str:
    return value.isoformat() if isinstance(value, datetime) else str(value)


def _lean(row: Row[Any], slug: str, count: int, total: int | None, stock: int) -> dict[str, Any]:
    return {
        "id": row.id,
        "sku": row.sku,
        "name": row.name,
        "category": slug,
        "price_cents": row.price_cents,
        "rating_avg": _rating(total, count),
        "review_count": count,
        "stock": int(stock or 0),
    }


def _full_fields(row: Row[Any]) -> dict[str, Any]:
    return {
        "description": row.description,
        "specifications": row.specifications,
        "created_at": _iso(row.created_at),
        "updated_at": _iso(row.updated_at),
    }


def _review_doc(row: Row[Any]) -> dict[str, Any]:
    return {
        "id": row.id,
        "user_id": row.user_id,
        "rating": row.rating,
        "title": row.title,
        "body": row.body,
        "created_at": _iso(row.created_at),
    }


def category_ids(conn: Connection) -> dict[str, int]:
    """Slug -> id of every category."""
    with named_query("category_ids"):
        rows = conn.execute(sa.select(m.categories.c.slug, m.categories.c.id)).all()
    return {row.slug: row.id for row in rows}


def category_slugs(conn: Connection) -> dict[int, str]:
    """Id -> slug of every category."""
    return {cid: slug for slug, cid in category_ids(conn).items()}


def list_categories(conn: Connection) -> tuple[list[dict[str, Any]], datetime | None]:
    """Every category with its product count, and the newest category change."""
    counts = (
        sa.select(m.products.c.category_id, sa.func.count().label("n"))
        .group_by(m.products.c.category_id)
        .subquery()
    )
    stmt = (
        sa.select(m.categories, sa.func.coalesce(counts.c.n, 0).label("product_count"))
        .outerjoin(counts, counts.c.category_id == m.categories.c.id)
        .order_by(m.categories.c.id)
    )
    with named_query("list_categories"):
        rows = conn.execute(stmt).all()
    docs = [
        {"id": r.id, "slug": r.slug, "name": r.name, "product_count": int(r.product_count)}
        for r in rows
    ]
    newest = max((r.updated_at for r in rows), default=None)
    return docs, newest


def _page_filter(stmt: sa.Select[Any], category_id: int | None) -> sa.Select[Any]:
    return stmt if category_id is None else stmt.where(m.products.c.category_id == category_id)


def list_products_n_plus_one(
    conn: Connection,
    slugs: dict[int, str],
    category_id: int | None,
    page: int,
    per_page: int,
    *,
    full: bool,
) -> list[dict[str, Any]]:
    """One query for the page, then reviews and inventory per product: 1 + 2N queries."""
    columns = (*_PRODUCT_COLUMNS, *_PRODUCT_FULL_COLUMNS)
    stmt = _page_filter(sa.select(*columns), category_id).order_by(*_NEWEST_FIRST)
    with named_query("list_products"):
        rows = conn.execute(stmt.limit(per_page).offset((page - 1) * per_page)).all()
    items = []
    for row in rows:
        reviews = _reviews_of(conn, row.id)
        stock = _stock_of(conn, row.id)
        doc = _lean(
            row, slugs[row.category_id], len(reviews), sum(r.rating for r in reviews), stock
        )
        if full:
            doc.update(_full_fields(row))
            doc["reviews"] = [_review_doc(r) for r in reviews]
        items.append(doc)
    return items


def _reviews_of(conn: Connection, product_id: int) -> Sequence[Row[Any]]:
    # Without the reviews(product_id, rating) index this is a scan of the whole table.
    stmt = sa.select(m.reviews).where(m.reviews.c.product_id == product_id).order_by(m.reviews.c.id)
    with named_query("product_reviews"):
        return conn.execute(stmt).all()


def _stock_of(conn: Connection, product_id: int) -> int:
    stmt = sa.select(m.inventory.c.stock).where(m.inventory.c.product_id == product_id)
    with named_query("product_inventory"):
        return sum(int(r.stock) for r in conn.execute(stmt))


def _aggregated(page: sa.CTE) -> sa.Select[Any]:
    """``page`` joined to its reviews' counts (grouped per product), with the stock sub-select.

    The reviews are grouped in a derived table restricted to the page's ids, so the statement
    never groups the large product columns (PostgreSQL cannot group JSON).
    """
    ratings = (
        sa.select(
            m.reviews.c.product_id,
            sa.func.count(m.reviews.c.id).label("review_count"),
            sa.func.sum(m.reviews.c.rating).label("rating_total"),
        )
        .where(m.reviews.c.product_id.in_(sa.select(page.c.id)))
        .group_by(m.reviews.c.product_id)
        .subquery("ratings")
    )
    stock = (
        sa.select(sa.func.coalesce(sa.func.sum(m.inventory.c.stock), 0))
        .where(m.inventory.c.product_id == page.c.id)
        .scalar_subquery()
    )
    return (
        sa.select(
            page,
            sa.func.coalesce(ratings.c.review_count, 0).label("review_count"),
            ratings.c.rating_total,
            stock.label("stock"),
        )
        .select_from(page.outerjoin(ratings, ratings.c.product_id == page.c.id))
        .order_by(page.c.created_at.desc(), page.c.id.desc())
    )


def list_products_joined(
    conn: Connection,
    slugs: dict[int, str],
    category_id: int | None,
    page: int,
    per_page: int,
    *,
    full: bool,
) -> tuple[list[dict[str, Any]], int]:
    """The page with ratings, stock and the filter's total in one statement: ``(items, total)``.

    Full documents need the reviews themselves: one more query for the whole page.
    """
    columns = (*_PRODUCT_COLUMNS, *(_PRODUCT_FULL_COLUMNS if full else ()))
    page_cte = (
        _page_filter(sa.select(*columns), category_id)
        .order_by(*_NEWEST_FIRST)
        .limit(per_page)
        .offset((page - 1) * per_page)
        .cte("page")
    )
    # The total rides along as a scalar sub-select: an index-only count, still one statement.
    total_of = _page_filter(sa.select(sa.func.count()).select_from(m.products), category_id)
    stmt = _aggregated(page_cte).add_columns(total_of.scalar_subquery().label("total"))
    with named_query("list_products_joined"):
        rows = conn.execute(stmt).all()
    total = int(rows[0].total) if rows else count_products(conn, category_id)
    items = []
    for row in rows:
        doc = _lean(row, slugs[row.category_id], int(row.review_count), row.rating_total, row.stock)
        if full:
            doc.update(_full_fields(row))
        items.append(doc)
    if full and items:
        by_product = _reviews_of_many(conn, [doc["id"] for doc in items])
        for doc in items:
            doc["reviews"] = by_product.get(doc["id"], [])
    return items, total


def count_products(conn: Connection, category_id: int | None) -> int:
    """How many products the listing filter matches (for ``meta`` on the N+1 path)."""
    count = sa.select(sa.func.count()).select_from(m.products)
    with named_query("count_products"):
        return int(conn.execute(_page_filter(count, category_id)).scalar_one())


def _reviews_of_many(
    conn: Connection, product_ids: Iterable[int]
) -> dict[int, list[dict[str, Any]]]:
    stmt = (
        sa.select(m.reviews)
        .where(m.reviews.c.product_id.in_(list(product_ids)))
        .order_by(m.reviews.c.product_id, m.reviews.c.id)
    )
    out: dict[int, list[dict[str, Any]]] = {}
    with named_query("page_reviews"):
        for row in conn.execute(stmt):
            out.setdefault(row.product_id, []).append(_review_doc(row))
    return out


def product_detail(
    conn: Connection, slugs: dict[int, str], product_id: int, *, joined: bool, full: bool
) -> dict[str, Any] | None:
    """One product (lean detail: every column, rating, stock), ``None`` when unknown.

    ``full`` adds all reviews and the newest related products of the same category.
    """
    columns = (*_PRODUCT_COLUMNS, *_PRODUCT_FULL_COLUMNS)
    base = sa.select(*columns).where(m.products.c.id == product_id)
    reviews: Sequence[Row[Any]] = ()
    if joined:
        with named_query("product_detail_joined"):
            row = conn.execute(_aggregated(base.cte("page"))).first()
        if row is None:
            return None
        doc = _lean(row, slugs[row.category_id], int(row.review_count), row.rating_total, row.stock)
        if full:
            reviews = _reviews_of(conn, product_id)
    else:
        with named_query("product_detail"):
            row = conn.execute(base).first()
        if row is None:
            return None
        reviews = _reviews_of(conn, product_id)
        count, total = len(reviews), sum(r.rating for r in reviews)
        doc = _lean(row, slugs[row.category_id], count, total, _stock_of(conn, product_id))
    doc.update(_full_fields(row))
    if full:
        doc["reviews"] = [_review_doc(r) for r in reviews]
        doc["related"] = _related(conn, row.category_id, product_id)
    return doc


def _related(conn: Connection, category_id: int, product_id: int) -> list[dict[str, Any]]:
    stmt = (
        sa.select(m.products.c.id, m.products.c.sku, m.products.c.name, m.products.c.price_cents)
        .where(m.products.c.category_id == category_id, m.products.c.id != product_id)
        .order_by(*_NEWEST_FIRST)
        .limit(RELATED_LIMIT)
    )
    with named_query("related_products"):
        return [dict(row._mapping) for row in conn.execute(stmt)]


def product_category(conn: Connection, product_id: int) -> int | None:
    """The category id of a product, ``None`` when unknown."""
    stmt = sa.select(m.products.c.category_id).where(m.products.c.id == product_id)
    with named_query("product_category"):
        return conn.execute(stmt).scalar_one_or_none()


def update_product(
    conn: Connection, product_id: int, changes: dict[str, Any], now: datetime
) -> int | None:
    """Apply ``changes`` (name, price_cents, description); return the category id or None."""
    stmt = (
        sa.update(m.products)
        .where(m.products.c.id == product_id)
        .values(**changes, updated_at=now)
        .returning(m.products.c.category_id)
    )
    with named_query("update_product"):
        return conn.execute(stmt).scalar_one_or_none()


def product_prices(conn: Connection, product_ids: Iterable[int]) -> dict[int, tuple[int, int]]:
    """Product id -> (price in cents, category id) for the ids that exist."""
    stmt = sa.select(m.products.c.id, m.products.c.price_cents, m.products.c.category_id).where(
        m.products.c.id.in_(list(product_ids))
    )
    with named_query("order_prices"):
        return {row.id: (row.price_cents, row.category_id) for row in conn.execute(stmt)}


def user_exists(conn: Connection, user_id: int) -> dict[str, Any] | None:
    """The user's public fields, ``None`` when unknown."""
    stmt = sa.select(m.users.c.id, m.users.c.name, m.users.c.email).where(m.users.c.id == user_id)
    with named_query("user"):
        row = conn.execute(stmt).first()
    return dict(row._mapping) if row else None


def create_order(
    conn: Connection, user_id: int, lines: list[tuple[int, int, int]], now: datetime
) -> dict[str, Any]:
    """Insert a pending order with ``lines`` of (product id, quantity, unit price)."""
    total = sum(qty * price for _, qty, price in lines)
    with named_query("create_order"):
        order_id = conn.execute(
            sa.insert(m.orders)
            .values(user_id=user_id, status="pending", total_cents=total, created_at=now)
            .returning(m.orders.c.id)
        ).scalar_one()
        conn.execute(
            sa.insert(m.order_items),
            [
                {"order_id": order_id, "product_id": p, "quantity": q, "unit_price_cents": price}
                for p, q, price in lines
            ],
        )
    return {
        "id": order_id,
        "user_id": user_id,
        "status": "pending",
        "total_cents": total,
        "created_at": _iso(now),
        "items": [{"product_id": p, "quantity": q, "unit_price_cents": pr} for p, q, pr in lines],
    }


def open_orders(conn: Connection, user_id: int, limit: int = 10) -> list[dict[str, Any]]:
    """A user's newest orders that are not cancelled (served by the partial index)."""
    stmt = (
        sa.select(m.orders.c.id, m.orders.c.status, m.orders.c.total_cents, m.orders.c.created_at)
        .where(m.orders.c.user_id == user_id, m.OPEN_ORDERS)
        .order_by(m.orders.c.created_at.desc(), m.orders.c.id.desc())
        .limit(limit)
    )
    with named_query("open_orders"):
        return [
            {
                "id": r.id,
                "status": r.status,
                "total_cents": r.total_cents,
                "created_at": _iso(r.created_at),
            }
            for r in conn.execute(stmt)
        ]


def order_events(conn: Connection, order_id: int) -> set[str]:
    """The side effects already done for an order (``email_sent``, ...)."""
    stmt = sa.select(m.order_events.c.kind).where(m.order_events.c.order_id == order_id)
    with named_query("order_events"):
        return {row.kind for row in conn.execute(stmt)}
