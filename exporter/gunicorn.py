"""gunicorn server hooks for multiprocess mode. In ``gunicorn.conf.py``::

    from hlthz.exporter.gunicorn import child_exit, on_starting  # noqa: F401

and start gunicorn with ``PROMETHEUS_MULTIPROC_DIR`` exported (it must be set before any
process imports prometheus-client). The directory is prepared (created, files of a previous run
removed) once in the master: when this module is imported by the config file, which is early
enough for ``preload_app = True``, or at the latest in ``on_starting``. ``child_exit`` folds each
exited worker's files into the archive at once, so the number of files, and the scrape cost,
stays flat however often workers restart.
"""

from __future__ import annotations

import os
import threading
from typing import Any

_prepared: str | None = None
_lock = threading.Lock()


def _prepare() -> None:
    global _prepared
    from hlthz.exporter.multiprocess import ENV, prepare_dir

    with _lock:
        if _prepared is not None and _prepared == os.environ.get(ENV):
            return  # already prepared in this master: cleaning again would drop live files
        _prepared = str(prepare_dir())


def on_starting(server: Any) -> None:
    """gunicorn hook (master, before forking): prepare ``PROMETHEUS_MULTIPROC_DIR``."""
    _prepare()


def child_exit(server: Any, worker: Any) -> None:
    """gunicorn hook (master, after a worker exited): fold the worker's metrics files."""
    from hlthz.exporter.multiprocess import active_dir, mark_dead

    if active_dir() is not None:
        mark_dead(worker.pid)


if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
    # Imported from gunicorn.conf.py: runs before a preloaded app creates its metrics files.
    _prepare()
