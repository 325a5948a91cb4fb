"""The demo API served on loopback and a bounded, repeatable load for diagnosis tests.

``served(settings)`` runs one app with its own registry under uvicorn in a thread;
``drive(url)`` sends a fixed request mix from a few keep-alive clients, then a burst of
concurrent listings (more than the ``before`` pool of 10), and returns what it sent.
"""

from __future__ import annotations

import contextlib
import shutil
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry

from hlthz.procs import free_port, http_ok, wait_until

#: Test-sized side work: an inline order still takes ~0.4 s, upstream calls ~30 ms each.
SETTINGS: dict[str, Any] = {
    "smtp_delay": 0.3,
    "inventory_delay": 0.05,
    "analytics_delay": 0.05,
    "upstream_latency": {"profile": 0.03, "orders": 0.04, "preferences": 0.03},
    "job_retry_interval": 0.0,
    # Callers wait for a pooled connection rather than fail: the burst shows as waits.
    "pool_timeout": 10.0,
}
#: Enough products that the unindexed listing queries take a median of about 4 ms on a fast
#: CPU, well above ``slow_queries``' 2.5 ms (with 1,000 they took 1.9 ms on an AMD EPYC and
#: the finding came and went); ten reviews a product keep the listing's responses large.
PRODUCTS = 3000
REVIEWS = 30000


def seed_once(directory: Path) -> Path:
    from hlthz.demo_api import seed

    directory.mkdir(parents=True, exist_ok=True)
    seed(f"sqlite:///{directory / 'demo.sqlite3'}", products=PRODUCTS, reviews=REVIEWS)
    return directory


@dataclass
class Served:
    url: str
    registry: CollectorRegistry
    app: Any


@contextlib.contextmanager
def served(
    profile: str, opts: Any, seeded: Path, workdir: Path, **overrides: Any
) -> Iterator[Served]:
    """The demo API on its own copy of ``seeded``, served by uvicorn in a thread."""
    import uvicorn

    from hlthz.demo_api import Settings, create_app

    workdir.mkdir(parents=True, exist_ok=True)
    shutil.copy(seeded / "demo.sqlite3", workdir / "demo.sqlite3")
    settings = Settings.for_profile(profile, opts, data_dir=workdir, **{**SETTINGS, **overrides})
    registry = CollectorRegistry()
    app = create_app(settings, registry=registry)
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until(lambda: http_ok(f"{url}/health"), timeout=60, what="demo API")
        yield Served(url, registry, app)
    finally:
        server.should_exit = True
        thread.join(timeout=15)


def send(url: str, method: str = "GET", body: bytes | None = None) -> int:
    request = urllib.request.Request(url, data=body, method=method)
    request.add_header("Accept-Encoding", "gzip")
    if body is not None:
        request.add_header("Content-Type", "application/json")
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            response.read()
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


def mix(base: str) -> list[tuple[str, str, bytes | None]]:
    """The request mix: listings, hot details, categories, dashboards, then a few orders.

    Keys repeat (2 listing pages, 4 products, 4 users), so a cache can serve most reads. The
    orders come last: each one invalidates the listing pages it touched.
    """
    requests: list[tuple[str, str, bytes | None]] = []
    for i in range(30):
        requests.append(("GET", f"{base}/api/products?page={1 + i % 2}&per_page=10", None))
        requests.append(("GET", f"{base}/api/products/{1 + i % 4}", None))
        if i % 3 == 0:
            requests.append(("GET", f"{base}/api/categories", None))
        if i % 5 == 0:
            requests.append(("GET", f"{base}/api/users/{1 + i % 4}/dashboard", None))
    for i in range(6):
        order = b'{"user_id": %d, "items": [{"product_id": %d, "quantity": 1}]}' % (
            1 + i % 5,
            1 + i * 3,
        )
        requests.append(("POST", f"{base}/api/orders", order))
    return requests


def burst(base: str, size: int = 14, per_page: int = 20) -> dict[str, int]:
    """The demo's burst (:func:`hlthz.tools.demo.traffic.burst`): concurrent large listings."""
    from hlthz.tools.demo.traffic import burst as demo_burst

    return dict(demo_burst(base, size=size, per_page=per_page))


def drive(base: str, *, clients: int = 3) -> dict[str, int]:
    """Send the mix from ``clients`` keep-alive-less threads; counts of each status."""
    statuses: dict[str, int] = {}
    lock = threading.Lock()

    def one(item: tuple[str, str, bytes | None]) -> None:
        status = send(item[1], item[0], item[2])
        with lock:
            statuses[str(status)] = statuses.get(str(status), 0) + 1

    with ThreadPoolExecutor(max_workers=clients) as pool:
        list(pool.map(one, mix(base)))
    return statuses
