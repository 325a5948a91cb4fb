"""Shared fixtures: real services on loopback, started per test session or per test.

A missing service binary skips the test on a developer's machine and fails it under ``CI=true``
(CI installs every service through ``scripts/install-system-deps.sh``).
"""

from __future__ import annotations

import json
import os
import signal
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from hlthz.errors import ServiceError
from hlthz.procs import ManagedProcess
from hlthz.tools.stack import services

# A suite started in the background by a non-interactive shell (`make test &`) inherits SIGINT
# ignored, and so would every CLI the Ctrl-C tests start: Python keeps an ignored SIGINT
# ignored, and the test's signal would be lost. Take Ctrl-C back, as a terminal would have it.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)

IN_CI = os.environ.get("CI") == "true"
#: ``make soak`` (``HLTHZ_SOAK=1``): the long proofs at full length (60 s of load at 2,000
#: requests/s, a 60 s timeline, 100,000 random paths). ``make test`` runs them shorter: the same
#: assertions, a quarter to a third of the time, so the suite stays well under 15 minutes.
SOAK = os.environ.get("HLTHZ_SOAK") == "1"


def need_binary(*names: str) -> str:
    """Path of the first binary of ``names``; skip (fail under CI) when none is installed."""
    try:
        return services.find_binary(*names)
    except ServiceError as exc:
        if IN_CI:
            pytest.fail(f"CI needs {names[0]}: {exc}")
        pytest.skip(str(exc))


@pytest.fixture(scope="session")
def postgres_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real PostgreSQL on loopback for the whole session: ``postgresql://postgres@127.0.0.1:P/postgres``."""
    need_binary("initdb")
    with services.start_postgres(tmp_path_factory.mktemp("postgres")) as proc:
        yield proc.url


@pytest.fixture(scope="session")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real Redis on loopback for the whole session: ``redis://127.0.0.1:P/0``."""
    need_binary("redis-server")
    with services.start_redis(tmp_path_factory.mktemp("redis")) as proc:
        yield proc.url


PrometheusFactory = Callable[..., ManagedProcess]


@pytest.fixture
def prometheus(tmp_path: Path) -> Iterator[PrometheusFactory]:
    """Start a real Prometheus: ``prometheus(targets=["127.0.0.1:8000"], rule_files=[...])``.

    Scrapes every second by default. Returns the started process; ``proc.url`` is its base URL.
    Everything started is stopped when the test ends.
    """
    need_binary("prometheus")
    started: list[ManagedProcess] = []

    def start(
        targets: list[str] | None = None,
        *,
        scrape_interval: str = "1s",
        evaluation_interval: str = "1s",
        rule_files: list[str] | None = None,
        alertmanagers: list[str] | None = None,
        scrape_configs: list[dict[str, Any]] | None = None,
        job: str = "api",
    ) -> ManagedProcess:
        workdir = tmp_path / f"prometheus-{len(started)}"
        workdir.mkdir()
        config: dict[str, Any] = {
            "global": {
                "scrape_interval": scrape_interval,
                "evaluation_interval": evaluation_interval,
            },
            "scrape_configs": scrape_configs
            or [{"job_name": job, "static_configs": [{"targets": targets or []}]}],
        }
        if rule_files:
            config["rule_files"] = [str(Path(f).resolve()) for f in rule_files]
        if alertmanagers:
            config["alerting"] = {
                "alertmanagers": [{"static_configs": [{"targets": alertmanagers}]}]
            }
        config_file = workdir / "prometheus.yml"
        config_file.write_text(yaml.safe_dump(config))
        proc = services.start_prometheus(config_file, workdir)
        started.append(proc)
        return proc

    yield start
    for proc in reversed(started):
        proc.stop()


def prom_query(base_url: str, expr: str) -> list[dict[str, Any]]:
    """Run an instant PromQL query and return ``data.result``."""
    url = f"{base_url}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    with urllib.request.urlopen(url, timeout=5) as response:
        body = json.load(response)
    assert body["status"] == "success", body
    return list(body["data"]["result"])
