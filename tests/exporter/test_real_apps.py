"""Apps nobody here wrote, under real servers with 2 workers (multiprocess mode), scraped by a
real Prometheus: route labels are templates, Django's queries are counted and N+1 flagged,
non-ASCII paths are labelled right; and ``hlthz init --from-metrics`` on each app, then
``dashboards generate`` and ``dashboards check --prometheus`` pass (every panel has data or is
skipped for a signal the app does not emit).

- django-activity-stream (a Django app with its own URLs, views, feeds and a DRF router API),
  in the project tests/exporter/apps/django_site, under gunicorn;
- rq-dashboard (a Flask app) and Werkzeug's SharedDataMiddleware, under gunicorn;
- a FastAPI app with FastAPI's own docs routes, ``add_route`` and ``StaticFiles``, under
  ``uvicorn --workers 2``.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import textwrap
import time
import urllib.error
import urllib.parse
import urllib.request
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest

from hlthz.procs import ManagedProcess, free_port, http_ok, wait_until
from tests.conftest import PrometheusFactory, prom_query

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent

pytestmark = [pytest.mark.slow, pytest.mark.integration]


@contextlib.contextmanager
def serve(tmp_path: Path, name: str, argv: list[str], env: dict[str, str]) -> Iterator[str]:
    """Run a server with ``PROMETHEUS_MULTIPROC_DIR`` on a free port; yield ``127.0.0.1:P``."""
    port = free_port()
    metrics_dir = tmp_path / f"{name}-metrics"
    metrics_dir.mkdir()
    full_env = dict(
        os.environ, **env, PROMETHEUS_MULTIPROC_DIR=str(metrics_dir), PYTHONPATH=str(ROOT)
    )
    argv = [arg.replace("{port}", str(port)) for arg in argv]
    address = f"127.0.0.1:{port}"
    with ManagedProcess(
        name,
        argv,
        log_path=tmp_path / f"{name}.log",
        env=full_env,
        cwd=tmp_path,
        ready=lambda: http_ok(f"http://{address}/metrics"),
        ready_timeout=60,
    ):
        yield address


def gunicorn(tmp_path: Path, app: str) -> list[str]:
    config = tmp_path / "gunicorn.conf.py"
    config.write_text(
        textwrap.dedent(
            """
            from hlthz.exporter.gunicorn import child_exit, on_starting  # noqa: F401
            workers = 2
            """
        )
    )
    return [str(BIN / "gunicorn"), "-c", str(config), "-b", "127.0.0.1:{port}", app]


def get(address: str, path: str) -> tuple[int, dict[str, str]]:
    """GET ``path`` (percent-encoded on the way, as a browser does); status and headers."""
    url = f"http://{address}" + urllib.parse.quote(path)
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            response.read()
            return response.status, dict(response.headers)
    except urllib.error.HTTPError as error:
        error.read()
        return error.code, dict(error.headers)


def scraped(prometheus: PrometheusFactory, address: str, sent: int) -> str:
    """Start Prometheus on ``address``; return its URL once a scrape has every request and
    both workers (``hlthz_multiprocess_live_workers``: processes with metrics files).

    Query it while the server runs: after a failed scrape, Prometheus marks the series stale.
    """
    prom = prometheus(targets=[address], job="app")

    def complete() -> bool:
        rows = prom_query(
            prom.url,
            'sum(http_request_duration_seconds_count{job="app"})'
            ' and on() hlthz_multiprocess_live_workers{job="app"} == 2',
        )
        return bool(rows) and float(rows[0]["value"][1]) >= sent

    wait_until(
        complete, timeout=60, interval=0.5, what=f"a scrape with {sent} requests and 2 workers"
    )
    return prom.url


def dashboards_check(tmp_path: Path, address: str, prom_url: str, paths: list[str]) -> str:
    """What an SRE does next: ``hlthz init --from-metrics`` on the app, generate the
    dashboards for the signals found, check every panel on Prometheus while ``paths`` are
    requested again (rates need traffic inside their window); the check's output."""
    from click.testing import CliRunner

    from hlthz.tools.cli import main

    project = tmp_path / "project"
    runner = CliRunner()
    result = runner.invoke(
        main, ["init", str(project), "--from-metrics", f"http://{address}/metrics"]
    )
    assert result.exit_code == 0, result.output
    config = str(project / "hlthz.yaml")
    result = runner.invoke(main, ["dashboards", "generate", "--config", config])
    assert result.exit_code == 0, result.output
    for _ in range(3):  # three rounds a second apart: several scrapes see the counters grow
        for path in paths:
            get(address, path)
        time.sleep(1.0)
    check = ["dashboards", "check", "--config", config, "--prometheus", prom_url, "--job", "app"]
    result = runner.invoke(main, [*check, "--rate-interval", "10s"])
    assert result.exit_code == 0, result.output
    return result.output


def by_labels(prom_url: str, expr: str, *labels: str) -> dict[tuple[str, ...], float]:
    return {
        tuple(row["metric"].get(label, "") for label in labels): float(row["value"][1])
        for row in prom_query(prom_url, expr)
    }


# -- Django + DRF: django-activity-stream -------------------------------------------------------


def test_django_activity_stream_under_gunicorn(
    tmp_path: Path, prometheus: PrometheusFactory
) -> None:
    database = tmp_path / "site.sqlite3"
    env = {"HLTHZ_TEST_DB": str(database)}
    subprocess.run(
        [sys.executable, "-m", "tests.exporter.apps.django_site.seed"],
        env=dict(os.environ, **env, PYTHONPATH=str(ROOT)),
        cwd=ROOT,
        check=True,
        timeout=120,
    )
    user_type = _content_type_of_users(database)
    prefix = "/activité"
    requests = [
        # DRF router (ReadOnlyModelViewSet + @action routes with regex url_path)
        (f"{prefix}/api/", f"{prefix}/api/"),
        (f"{prefix}/api/actions/", f"{prefix}/api/actions/"),
        (f"{prefix}/api/actions/3/", f"{prefix}/api/actions/{{pk}}/"),
        (f"{prefix}/api/actions/5/", f"{prefix}/api/actions/{{pk}}/"),
        (f"{prefix}/api/actions.json", f"{prefix}/api/actions.{{format}}"),
        (
            f"{prefix}/api/actions/streams/model/{user_type}/",
            f"{prefix}/api/actions/streams/model/{{content_type_id}}/",
        ),
        (f"{prefix}/api/users/2/", f"{prefix}/api/users/{{pk}}/"),
        # the app's own re_path views and feeds, one with an optional group
        (f"{prefix}/feed/{user_type}/json/", f"{prefix}/feed/{{content_type_id}}/json/"),
        (
            f"{prefix}/followers/{user_type}/1/",
            f"{prefix}/followers/{{content_type_id}}/{{object_id}}/",
        ),
        (
            f"{prefix}/followers/{user_type}/1/liked/",
            f"{prefix}/followers/{{content_type_id}}/{{object_id}}/{{flag}}/",
        ),
        (f"{prefix}/detail/2/", f"{prefix}/detail/{{action_id}}/"),
        (f"{prefix}/josé/", f"{prefix}/{{username}}/"),
    ] * 3
    expected_counts: Counter[tuple[str, str]] = Counter()
    django_queries: Counter[str] = Counter()
    with serve(
        tmp_path,
        "django",
        gunicorn(tmp_path, "tests.exporter.apps.django_site.wsgi:application"),
        env,
    ) as address:
        for path, route in requests:
            status, headers = get(address, path)
            assert status == 200, (path, status)
            expected_counts[(route, "200")] += 1
            django_queries[route] += int(headers["X-Django-Queries"])
        assert get(address, "/nowhere/é")[0] == 404
        expected_counts[("_unmatched", "404")] += 1
        prom = scraped(prometheus, address, sent=len(requests) + 1)

        counts = by_labels(
            prom,
            'sum by (route, status_code) (http_request_duration_seconds_count{job="app"})',
            "route",
            "status_code",
        )
        assert counts == dict(expected_counts)
        # Queries per request: what Django itself counted for each request, route by route.
        queries = by_labels(
            prom, 'sum by (route) (http_request_database_queries_sum{job="app"})', "route"
        )
        assert {route: queries[(route,)] for route in django_queries} == dict(django_queries)
        assert queries[(f"{prefix}/api/actions/",)] >= 3 * 7  # the 6 actions' actors: N+1
        # The action list loads each action's actor on its own (N+1); the model stream prefetches
        # them (one IN query): only the first is flagged.
        n_plus_one = by_labels(
            prom,
            'sum by (route, query_type) (database_n_plus_one_total{job="app"})',
            "route",
            "query_type",
        )
        assert n_plus_one == {
            (f"{prefix}/api/actions/", "select_auth_user"): 3,
            (f"{prefix}/api/actions.{{format}}", "select_auth_user"): 3,
        }
        query_types = by_labels(
            prom,
            'sum by (query_type) (database_query_duration_seconds_count{job="app"})',
            "query_type",
        )
        assert query_types[("select_actstream_action",)] > 0
        output = dashboards_check(tmp_path, address, prom, [path for path, _ in requests])
        assert output.startswith("ok   lint\nok   signals"), output


def _content_type_of_users(database: Path) -> int:
    import sqlite3

    with contextlib.closing(sqlite3.connect(database)) as connection:
        row = connection.execute(
            "SELECT id FROM django_content_type WHERE app_label = 'auth' AND model = 'user'"
        ).fetchone()
    return int(row[0])


# -- Flask: rq-dashboard, and a bare WSGI app -----------------------------------------------


def test_rq_dashboard_and_wsgi_files_under_gunicorn(
    tmp_path: Path, prometheus: PrometheusFactory, redis_url: str
) -> None:
    files = tmp_path / "files"
    files.mkdir()
    (files / "café.txt").write_text("crème brûlée")
    (files / "日本.txt").write_text("こんにちは")
    (files / "plain.txt").write_text("plain")
    env = {"HLTHZ_TEST_REDIS": redis_url, "HLTHZ_TEST_FILES": str(files)}
    job = _enqueue(redis_url, "café")
    requests = [
        ("/", "/", 200),
        (f"/0/view/job/{job}", "/<int:instance_number>/view/job/<job_id>", 200),
        (f"/0/data/job/{job}.json", "/<int:instance_number>/data/job/<job_id>.json", 200),
        ("/0/view/workers", "/<int:instance_number>/view/workers", 200),
        ("/0/data/queues.json", "/<int:instance_number>/data/queues.json", 200),
        ("/0/data/workers.json", "/<int:instance_number>/data/workers.json", 200),
        (
            "/0/view/jobs/café/queued/8/asc/1",
            "/<int:instance_number>/view/jobs/<queue_name>/<registry_name>/<int:per_page>"
            "/<order>/<int:page>",
            200,
        ),
        ("/files/café.txt", "/café.txt", 200),
        ("/files/日本.txt", "/日本.txt", 200),
        ("/files/plain.txt", "/plain.txt", 200),
        ("/no/such/page", "_unmatched", 404),
    ] * 2
    expected: Counter[tuple[str, str]] = Counter()
    with serve(
        tmp_path, "flask", gunicorn(tmp_path, "tests.exporter.apps.flask_site:application"), env
    ) as address:
        for path, route, want in requests:
            status, _ = get(address, path)
            assert status == want, (path, status)
            expected[(route, str(want))] += 1
        prom = scraped(prometheus, address, sent=len(requests))
        counts = by_labels(
            prom,
            'sum by (route, status_code) (http_request_duration_seconds_count{job="app"})',
            "route",
            "status_code",
        )
        assert counts == dict(expected)
        output = dashboards_check(tmp_path, address, prom, [path for path, _, _ in requests])
        assert output.startswith("ok   lint\n"), output


def _enqueue(redis_url: str, queue: str) -> str:
    """Put one job in ``queue`` (no worker runs it): the dashboard has something to show."""
    from redis import Redis
    from rq import Queue

    with Redis.from_url(redis_url) as connection:
        job = Queue(queue, connection=connection).enqueue("os.getcwd")
        return str(job.id)


# -- FastAPI: own routes, add_route, StaticFiles ------------------------------------------------


def test_fastapi_app_under_uvicorn_workers(tmp_path: Path, prometheus: PrometheusFactory) -> None:
    static = tmp_path / "static"
    static.mkdir()
    (static / "app.css").write_text("body {}")
    (static / "café.txt").write_text("crème")
    env = {"HLTHZ_TEST_FILES": str(static)}
    argv = [
        str(BIN / "uvicorn"),
        "tests.exporter.apps.fastapi_site:app",
        "--host",
        "127.0.0.1",
        "--port",
        "{port}",
        "--workers",
        "2",
        "--no-access-log",
    ]
    requests = [
        ("/api/items/1", "/api/items/{item_id}", 200),
        ("/api/items/2", "/api/items/{item_id}", 200),
        ("/docs", "/docs", 200),
        ("/redoc", "/redoc", 200),
        ("/openapi.json", "/openapi.json", 200),
        ("/legacy/café", "/legacy/{name}", 200),
        ("/static/app.css", "/static/{path}", 200),
        ("/static/café.txt", "/static/{path}", 200),
        ("/static/missing.css", "/static/{path}", 404),
        ("/nowhere", "_unmatched", 404),
    ] * 2
    expected: Counter[tuple[str, str]] = Counter()
    with serve(tmp_path, "fastapi", argv, env) as address:
        for path, route, want in requests:
            status, _ = get(address, path)
            assert status == want, (path, status)
            expected[(route, str(want))] += 1
        prom = scraped(prometheus, address, sent=len(requests))
        counts = by_labels(
            prom,
            'sum by (route, status_code) (http_request_duration_seconds_count{job="app"})',
            "route",
            "status_code",
        )
        assert counts == dict(expected)
        output = dashboards_check(tmp_path, address, prom, [path for path, _, _ in requests])
        assert output.startswith("ok   lint\n"), output
