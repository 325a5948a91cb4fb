"""Running the demo API: ``serve`` (uvicorn, or gunicorn with uvicorn workers) and ``worker``.

``serve`` checks the database first (a missing or empty one is a one-line error naming the URL
and ``hlthz api seed``), applies the index switch once, then starts the server. With
``workers > 1`` it runs gunicorn in multiprocess metrics mode: each worker writes its metrics
under ``PROMETHEUS_MULTIPROC_DIR`` (a fresh temporary directory unless set) and any worker's
``/metrics`` reports all of them.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hlthz.demo_api.db import Database
from hlthz.demo_api.settings import DEFAULT_HOST, DEFAULT_PORT, Settings, mask_password
from hlthz.errors import ConfigError

log = logging.getLogger(__name__)


def build_asgi_app(settings: Settings, *, prepare: bool = True) -> Any:
    """``create_app(settings)`` on the default registry, wrapped for ``--record`` if asked."""
    from hlthz.demo_api.app import create_app

    app: Any = create_app(settings, prepare=prepare)
    if settings.record is not None:
        app = _recording(app, settings.record)
    return app


def _recording(app: Any, out: Path) -> Any:
    # Imported here: only --record needs the capture machinery.
    from hlthz.replay import recording

    Path(out).parent.mkdir(parents=True, exist_ok=True)
    return recording(app, out, kind="asgi", source="hlthz-demo-api")


def check_database(settings: Settings) -> None:
    """Fail fast (one-line error) unless the database is reachable and seeded; apply indexes."""
    db = Database(settings)
    try:
        db.check_seeded()
        changed = db.apply_indexes(settings.on("indexes"))
        if changed:
            log.info("indexes changed: %s", ", ".join(changed))
    finally:
        db.dispose()


def serve(
    settings: Settings,
    *,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    workers: int = 1,
    log_level: str = "warning",
    on_ready: Callable[[], None] | None = None,
) -> None:
    """Serve the demo API until interrupted.

    The database is checked (and the index switch applied) first; ``on_ready`` is called after
    that, just before the server starts (the CLI prints its banner there).
    """
    if workers < 1:
        raise ConfigError(f"--workers must be at least 1, not {workers}")
    if workers > 1 and settings.record is not None:
        raise ConfigError("--record needs --workers 1 (one process writes one capture file)")
    check_database(settings)
    if on_ready is not None:
        on_ready()
    if workers == 1:
        import uvicorn

        uvicorn.run(
            build_asgi_app(settings, prepare=False),
            host=host,
            port=port,
            log_level=log_level,
            access_log=False,
            timeout_graceful_shutdown=5,
        )
        return
    _serve_gunicorn(settings, host=host, port=port, workers=workers, log_level=log_level)


def _serve_gunicorn(
    settings: Settings, *, host: str, port: int, workers: int, log_level: str
) -> None:
    from gunicorn.app.base import BaseApplication
    from prometheus_client import values

    from hlthz.exporter.gunicorn import child_exit, on_starting

    created: str | None = None
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        # Ours to remove at exit: each worker leaves megabytes of mmap files in it.
        created = os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(
            prefix="hlthz-demo-metrics-"
        )
    # prometheus-client chooses its value class when first imported, which the CLI did before
    # the directory was known. The app's metrics are created after the fork, in each worker, so
    # choosing again here puts every one of them in the shared directory.
    values.ValueClass = values.get_value_class()

    class _Gunicorn(BaseApplication):
        def load_config(self) -> None:
            options = {
                "bind": f"{host}:{port}",
                "workers": workers,
                "worker_class": "uvicorn.workers.UvicornWorker",
                "loglevel": log_level,
                "graceful_timeout": 10,
                "timeout": 60,
                "on_starting": on_starting,
                "child_exit": child_exit,
            }
            for key, value in options.items():
                self.cfg.set(key, value)

        def load(self) -> Any:
            # Runs in each worker after the fork: its own engine, pool and cache.
            return build_asgi_app(settings, prepare=False)

    try:
        _Gunicorn().run()  # exits with SystemExit when the master stops
    finally:
        if created is not None:
            shutil.rmtree(created, ignore_errors=True)


def run_worker(settings: Settings, *, burst: bool = False, metrics_port: int | None = None) -> None:
    """``hlthz api worker``: execute queued order jobs from Redis (RQ) until interrupted."""
    from hlthz.demo_api.cache import ResponseCache, make_backend
    from hlthz.demo_api.instrumentation import cache_metrics, instrument_engine, job_metrics
    from hlthz.demo_api.jobs import run_worker as rq_work
    from hlthz.demo_api.tasks import WorkContext

    if not settings.cache_url:
        raise ConfigError("hlthz api worker needs Redis: pass --cache redis://HOST:PORT/0")
    _check_redis(settings.cache_url)
    db = Database(settings)
    db.check_seeded()
    instrument_engine(db.engine, None)
    cache = ResponseCache(
        make_backend(settings.cache_url, settings.cache_ttl),
        cache_metrics(None),
        ttl=settings.cache_ttl,
    )
    if metrics_port is not None:
        from prometheus_client import start_http_server

        start_http_server(metrics_port, addr=DEFAULT_HOST)
    try:
        rq_work(WorkContext.build(settings, db, cache), job_metrics(None), burst=burst)
    finally:
        cache.close()
        db.dispose()


def _check_redis(url: str) -> None:
    """Fail fast, in one line, when the worker's Redis does not answer."""
    import redis

    client = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=2)
    try:
        client.ping()
    except redis.RedisError as error:
        raise ConfigError(
            f"--cache {mask_password(url)}: Redis does not answer ({error}); "
            "start it or fix the URL"
        ) from None
    finally:
        client.close()
