"""``hlthz api``: serve, seed and work the demo e-commerce API (:mod:`hlthz.demo_api`)."""

from __future__ import annotations

from pathlib import Path

import click

from hlthz.demo_api.settings import (
    DEFAULT_DATA_DIR,
    DEFAULT_HOST,
    DEFAULT_PORT,
    OPTIMIZATIONS,
    PROFILES,
    Settings,
)
from hlthz.extras import require


def _require(what: str, db_url: str | None = None, cache_url: str | None = None) -> None:
    """The 'demo' extra, plus 'postgres' for a PostgreSQL --db and 'redis' for a --cache."""
    require("demo", what=what)
    if db_url and db_url.startswith("postgres"):
        require("postgres", what=f"{what} with a PostgreSQL --db")
    if cache_url:
        require("redis", what=f"{what} with --cache")


_OPT_HELP = (
    "\b\nOptimizations (--opt NAME=on|off; `before` has all off, `after` all on):\n"
    + "\n".join(f"  {name:<18} {text}" for name, text in OPTIMIZATIONS.items())
)

_db_option = click.option(
    "--db",
    "db_url",
    metavar="URL",
    envvar="HLTHZ_DEMO_DB",
    help="sqlite:///FILE or postgresql://USER@HOST:PORT/DB [default: DATA_DIR/demo.sqlite3].",
)
_data_dir_option = click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=DEFAULT_DATA_DIR,
    show_default=True,
    help="Where the default SQLite database lives.",
)
_cache_option = click.option(
    "--cache",
    "cache_url",
    metavar="URL",
    envvar="HLTHZ_DEMO_CACHE",
    help="redis://HOST:PORT/N for the Redis cache and the RQ job queue [default: in-process].",
)


@click.group()
def api() -> None:
    """Serve, seed and work the demo e-commerce API."""


@api.command(epilog=_OPT_HELP)
@click.option(
    "--profile", type=click.Choice(PROFILES), default="after", show_default=True,
    help="Starting point: every optimization off (before) or on (after).",
)  # fmt: skip
@click.option(
    "--opt", "opts", multiple=True, metavar="NAME=on|off",
    help="Turn one optimization on or off on top of the profile (repeatable; names below).",
)  # fmt: skip
@_db_option
@_cache_option
@click.option("--host", default=DEFAULT_HOST, show_default=True, help="Address to bind.")
@click.option(
    "--port", type=click.IntRange(0, 65535), default=DEFAULT_PORT, show_default=True,
    help="Port to bind.",
)  # fmt: skip
@click.option(
    "--workers", type=click.IntRange(min=1), default=1, show_default=True,
    help="Processes; above 1 runs gunicorn with uvicorn workers and multiprocess metrics.",
)  # fmt: skip
@click.option(
    "--enable-faults", is_flag=True, help="Allow the fault switches under /admin/faults (drills)."
)
@_data_dir_option
@click.option(
    "--record", type=click.Path(dir_okay=False, path_type=Path), metavar="FILE",
    help="Record every request to FILE (HLTHZ capture v1, .jsonl or .jsonl.gz).",
)  # fmt: skip
@click.option(
    "--log-level", type=click.Choice(["debug", "info", "warning", "error"]), default="warning",
    show_default=True, help="Server log level.",
)  # fmt: skip
def serve(
    profile: str,
    opts: tuple[str, ...],
    db_url: str | None,
    cache_url: str | None,
    host: str,
    port: int,
    workers: int,
    enable_faults: bool,
    data_dir: Path,
    record: Path | None,
    log_level: str,
) -> None:
    """Serve the demo API: /api/..., /health, /metrics and /openapi.json."""
    _require("hlthz api serve", db_url, cache_url)
    from hlthz.demo_api.server import serve as run

    settings = Settings.for_profile(
        profile,
        opts,
        db_url=db_url,
        cache_url=cache_url,
        data_dir=data_dir,
        enable_faults=enable_faults,
        record=record,
    )
    on = [name for name in OPTIMIZATIONS if settings.on(name)]

    def banner() -> None:
        click.echo(
            f"hlthz demo API ({profile}; on: {', '.join(on) or 'none'}) on http://{host}:{port}",
            err=True,
        )

    run(settings, host=host, port=port, workers=workers, log_level=log_level, on_ready=banner)


@api.command()
@_db_option
@_data_dir_option
@click.option("--products", type=click.IntRange(min=1), help="Products [default: 20000].")
@click.option("--reviews", type=click.IntRange(min=0), help="Reviews [default: 200000].")
@click.option(
    "--small", is_flag=True, help="A small data set for tests: 400 products, 2000 reviews."
)
@click.option("--seed", "random_seed", type=int, default=42, show_default=True, help="Random seed.")
@click.option(
    "--reuse", is_flag=True, help="Keep an existing data set made with the same arguments."
)
def seed(
    db_url: str | None,
    data_dir: Path,
    products: int | None,
    reviews: int | None,
    small: bool,
    random_seed: int,
    reuse: bool,
) -> None:
    """Create the demo schema and a deterministic data set (drops existing demo tables)."""
    _require("hlthz api seed", db_url)
    from hlthz.demo_api.seed import (
        DEFAULT_PRODUCTS,
        DEFAULT_REVIEWS,
        SMALL_PRODUCTS,
        SMALL_REVIEWS,
    )
    from hlthz.demo_api.seed import seed as seed_data
    from hlthz.demo_api.settings import mask_password

    url = Settings(db_url=db_url, data_dir=data_dir).database_url
    result = seed_data(
        url,
        products=products or (SMALL_PRODUCTS if small else DEFAULT_PRODUCTS),
        reviews=reviews if reviews is not None else (SMALL_REVIEWS if small else DEFAULT_REVIEWS),
        random_seed=random_seed,
        reuse=reuse,
    )
    verb = "reused" if result.reused else f"seeded in {result.seconds:.1f} s"
    click.echo(
        f"{verb}: {result.products} products, {result.reviews} reviews, {result.users} users, "
        f"{result.orders} orders in {result.categories} categories ({mask_password(url)})"
    )


@api.command()
@_db_option
@click.option("--cache", "cache_url", metavar="URL", envvar="HLTHZ_DEMO_CACHE", required=True,
              help="redis://HOST:PORT/N: the Redis the API queues order jobs in.")  # fmt: skip
@_data_dir_option
@click.option("--burst", is_flag=True, help="Exit once the queue is empty.")
@click.option(
    "--metrics-port", type=click.IntRange(1, 65535),
    help="Serve this worker's /metrics on 127.0.0.1:PORT.",
)  # fmt: skip
def worker(
    db_url: str | None, cache_url: str, data_dir: Path, burst: bool, metrics_port: int | None
) -> None:
    """Run queued order jobs (e-mail, inventory, analytics) from Redis with retries."""
    _require("hlthz api worker", db_url, cache_url)
    from hlthz.demo_api.server import run_worker

    settings = Settings.for_profile("after", db_url=db_url, cache_url=cache_url, data_dir=data_dir)
    run_worker(settings, burst=burst, metrics_port=metrics_port)
