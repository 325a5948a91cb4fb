"""Fixtures of the demo API tests: small seeded databases and in-process apps.

Every app gets its own ``CollectorRegistry`` so metric assertions see only that app's traffic.
Each profile gets its own SQLite file, because the ``indexes`` switch changes the schema.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from prometheus_client import CollectorRegistry

from hlthz.demo_api import Settings, create_app, seed
from hlthz.demo_api.seed import SMALL_PRODUCTS, SMALL_REVIEWS

#: Test-sized side work: fast, but slow enough to tell inline from queued in the metrics.
FAST = {
    "smtp_delay": 0.01,
    "inventory_delay": 0.0,
    "analytics_delay": 0.0,
    "upstream_latency": {"profile": 0.005, "orders": 0.005, "preferences": 0.005},
    "job_retry_interval": 0.0,
    "pool_timeout": 0.5,
}


def seed_sqlite(directory: Path) -> Path:
    """Seed the small data set into ``directory/demo.sqlite3`` and return the directory."""
    directory.mkdir(parents=True, exist_ok=True)
    seed(f"sqlite:///{directory / 'demo.sqlite3'}", products=SMALL_PRODUCTS, reviews=SMALL_REVIEWS)
    return directory


@pytest.fixture(scope="module")
def sqlite_dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One freshly seeded SQLite data directory per profile, for the module."""
    return {p: seed_sqlite(tmp_path_factory.mktemp(f"sqlite-{p}")) for p in ("before", "after")}


class AppHandle:
    """A running app: its TestClient, registry and Shop, plus metric helpers."""

    def __init__(self, client: TestClient, registry: CollectorRegistry, app: Any) -> None:
        self.client = client
        self.registry = registry
        self.app = app
        self.shop = app.state.shop

    def value(self, name: str, **labels: str) -> float:
        """A sample's value, 0 when absent."""
        return self.registry.get_sample_value(name, labels) or 0.0


AppFactory = Callable[..., AppHandle]


@contextlib.contextmanager
def running_app(settings: Settings) -> Iterator[AppHandle]:
    registry = CollectorRegistry()
    app = create_app(settings, registry=registry)
    with TestClient(app) as client:
        yield AppHandle(client, registry, app)


@pytest.fixture
def make_app() -> Iterator[AppFactory]:
    """``make_app(profile, data_dir, **settings)`` starts an app closed after the test."""
    stack = contextlib.ExitStack()

    def start(
        profile: str, data_dir: Path | None = None, opts: Any = (), **overrides: Any
    ) -> AppHandle:
        options = {**FAST, **overrides}
        settings = Settings.for_profile(profile, opts, data_dir=data_dir, **options)
        return stack.enter_context(running_app(settings))

    with stack:
        yield start
