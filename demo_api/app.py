"""The demo shop's HTTP API: ``create_app(settings)`` builds one FastAPI app per settings.

Routes only parse, call :class:`~hlthz.demo_api.service.Shop` and format. Database work runs in
sync route functions (FastAPI's thread pool), like most SQLAlchemy services. The exporter's
middleware is installed last so it is outermost: it measures compression, faults and all.
"""

from __future__ import annotations

import contextlib
import email.utils
import hashlib
import json
import logging
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, Depends, FastAPI, Path, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.gzip import GZipMiddleware
from fastapi.responses import JSONResponse
from prometheus_client import CollectorRegistry

from hlthz import __version__
from hlthz.demo_api.cache import last_lookup
from hlthz.demo_api.faults import FaultsUpdate
from hlthz.demo_api.instrumentation import instrument_app
from hlthz.demo_api.schemas import MAX_ID, OrderCreate, ProductUpdate
from hlthz.demo_api.service import Shop, _InvalidReference, _NotFound
from hlthz.demo_api.settings import Settings
from hlthz.errors import ServiceUnavailable

log = logging.getLogger(__name__)

#: Responses smaller than this are sent uncompressed (``compression`` switch).
GZIP_MINIMUM_BYTES = 1024
CATEGORIES_MAX_AGE = 60

ProductId = Annotated[int, Path(ge=1, le=MAX_ID, description="Product id.")]
UserId = Annotated[int, Path(ge=1, le=MAX_ID, description="User id.")]


def create_app(
    settings: Settings, *, registry: CollectorRegistry | None = None, prepare: bool = True
) -> FastAPI:
    """The demo API for ``settings``, instrumented into ``registry`` (default: the global one).

    At start-up the app warms its pool and, with ``prepare``, creates or drops the optional
    indexes per the switch (a server with several workers does that once before forking and
    passes False). A database that is down at start-up is not fatal: requests get 503s until
    it is back.
    """
    shop = Shop(settings, registry)

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        try:
            shop.prepare(indexes=prepare)
        except Exception as error:  # an unreachable database surfaces as many error types
            log.warning("database not ready at start-up (serving 503s until it is): %s", error)
        try:
            yield
        finally:
            shop.close()

    app = FastAPI(
        title="HLTHZ demo shop",
        version=__version__,
        description=(
            f"Demo e-commerce API, profile `{settings.profile}`. Optimizations: "
            + ", ".join(f"{k}={'on' if v else 'off'}" for k, v in settings.opts.items())
        ),
        lifespan=lifespan,
    )
    app.state.shop = shop
    _install_error_handlers(app)
    app.include_router(_shop_router(shop))
    app.include_router(_ops_router(shop))
    if settings.enable_faults:
        app.include_router(_faults_router(shop))
    if settings.on("compression"):
        app.add_middleware(GZipMiddleware, minimum_size=GZIP_MINIMUM_BYTES)
    instrumented = instrument_app(app, registry, settings.n_plus_one_threshold)
    assert instrumented is app, "hlthz.exporter.instrument returns framework apps unchanged"
    return app


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ServiceUnavailable)
    async def _unavailable(_request: Request, error: ServiceUnavailable) -> JSONResponse:
        return JSONResponse({"detail": str(error)}, status_code=503, headers={"Retry-After": "1"})

    @app.exception_handler(_NotFound)
    async def _not_found(_request: Request, error: _NotFound) -> JSONResponse:
        return JSONResponse({"detail": str(error)}, status_code=404)

    @app.exception_handler(_InvalidReference)
    async def _invalid(_request: Request, error: _InvalidReference) -> JSONResponse:
        detail = [{"type": "value_error", "loc": list(error.loc), "msg": str(error)}]
        return JSONResponse({"detail": detail}, status_code=422)

    @app.exception_handler(RequestValidationError)
    async def _validation(_request: Request, error: RequestValidationError) -> JSONResponse:
        # FastAPI's default body, minus echoed input (which may be large or binary).
        detail = [
            {"type": e.get("type"), "loc": list(e.get("loc", ())), "msg": e.get("msg")}
            for e in error.errors()
        ]
        return JSONResponse({"detail": detail}, status_code=422)


def _shop_router(shop: Shop) -> APIRouter:
    router = APIRouter(prefix="/api", dependencies=[Depends(shop.faults.apply)])

    @router.get("/products", summary="List products, newest first")
    def list_products(
        response: Response,
        category: Annotated[
            str | None, Query(min_length=1, max_length=64, description="Category slug.")
        ] = None,
        page: Annotated[int, Query(ge=1, le=10_000)] = 1,
        per_page: Annotated[int, Query(ge=1, le=100)] = 20,
    ) -> dict[str, Any]:
        return _with_cache_header(response, lambda: shop.listing(category, page, per_page))

    @router.get("/products/{product_id}", summary="One product")
    def get_product(product_id: ProductId, response: Response) -> dict[str, Any]:
        return _with_cache_header(response, lambda: shop.product(product_id))

    @router.put("/products/{product_id}", summary="Update a product (invalidates caches)")
    def put_product(product_id: ProductId, change: ProductUpdate) -> dict[str, Any]:
        return shop.update_product(product_id, change)

    @router.get("/categories", summary="Categories with product counts (conditional GET)")
    def get_categories(request: Request) -> Response:
        doc, lookup = _with_lookup(shop.categories)
        body = json.dumps({"categories": doc["categories"]}, separators=(",", ":")).encode()
        etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
        headers = {"ETag": etag, "Cache-Control": f"public, max-age={CATEGORIES_MAX_AGE}"}
        if lookup:
            headers["X-Cache"] = lookup
        if doc["last_modified"]:
            # Stored times are naive UTC.
            modified = datetime.fromisoformat(doc["last_modified"]).replace(tzinfo=UTC)
            headers["Last-Modified"] = email.utils.format_datetime(modified, usegmt=True)
        if _not_modified(request, etag, headers.get("Last-Modified")):
            return Response(status_code=304, headers=headers)
        return Response(body, media_type="application/json", headers=headers)

    @router.post("/orders", status_code=201, summary="Place an order")
    def post_order(order: OrderCreate) -> dict[str, Any]:
        return shop.create_order(order)

    @router.get("/users/{user_id}/dashboard", summary="A user's dashboard (3 upstream calls)")
    def get_dashboard(user_id: UserId) -> dict[str, Any]:
        return shop.dashboard(user_id)

    return router


def _with_lookup(produce: Callable[[], dict[str, Any]]) -> tuple[dict[str, Any], str | None]:
    """Run ``produce``; return its document and its cache look-up (``hit``/``miss``/``error``)."""
    token = last_lookup.set(None)
    try:
        return produce(), last_lookup.get()
    finally:
        last_lookup.reset(token)


def _with_cache_header(response: Response, produce: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """Run ``produce`` and report its cache look-up in the ``X-Cache`` header."""
    doc, lookup = _with_lookup(produce)
    if lookup:
        response.headers["X-Cache"] = lookup
    return doc


def _not_modified(request: Request, etag: str, last_modified: str | None) -> bool:
    """RFC 9110 conditional GET: If-None-Match wins; else If-Modified-Since."""
    if_none_match = request.headers.get("if-none-match")
    if if_none_match is not None:
        tags = {t.strip().removeprefix("W/") for t in if_none_match.split(",")}
        return "*" in tags or etag in tags
    since = request.headers.get("if-modified-since")
    if since and last_modified:
        try:
            return email.utils.parsedate_to_datetime(since) >= email.utils.parsedate_to_datetime(
                last_modified
            )
        except (TypeError, ValueError):
            return False
    return False


def _ops_router(shop: Shop) -> APIRouter:
    router = APIRouter()

    @router.get("/health", summary="Liveness and the active switches")
    def health() -> JSONResponse:
        try:
            return JSONResponse(shop.health())
        except ServiceUnavailable as error:
            return JSONResponse(
                {"status": "unavailable", "detail": str(error)},
                status_code=503,
                headers={"Retry-After": "1"},
            )

    return router


def _faults_router(shop: Shop) -> APIRouter:
    router = APIRouter(prefix="/admin", tags=["faults"])

    @router.get("/faults", summary="Current fault switches")
    def get_faults() -> dict[str, Any]:
        return shop.faults.snapshot()

    @router.put("/faults", summary="Merge fault switches")
    def put_faults(change: FaultsUpdate) -> dict[str, Any]:
        return shop.faults.update(change)

    @router.delete("/faults", summary="Turn every fault off")
    def delete_faults() -> dict[str, Any]:
        return shop.faults.clear()

    return router
