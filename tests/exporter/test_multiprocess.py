"""Multiprocess mode: dead workers folded into archives with exact totals; real gunicorn."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import textwrap
import time
import urllib.request
from pathlib import Path

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.parser import text_string_to_metric_families

from hlthz.exporter.multiprocess import fold_dead_workers, scrape_registry
from hlthz.procs import ManagedProcess, free_port, http_ok, wait_until

ROOT = Path(__file__).resolve().parents[2]

_WRITER = textwrap.dedent(
    """
    import os, signal, sys
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = sys.argv[1]
    from prometheus_client import CollectorRegistry, Counter, Histogram
    registry = CollectorRegistry()
    hits = Counter("hits", "hits", ["route"], registry=registry)
    seconds = Histogram("work_seconds", "work", buckets=(0.25, 1.0), registry=registry)
    children = []
    for n in range(int(sys.argv[2])):
        pid = os.fork()
        if pid == 0:
            for i in range(n + 1):
                hits.labels("/a" if i % 2 else "/b").inc()
                seconds.observe(0.25 if i % 3 else 0.5)
            if n % 2:
                os.kill(os.getpid(), signal.SIGKILL)  # killed, not exited: files stay behind
            os._exit(0)
        children.append(pid)
    for pid in children:
        os.waitpid(pid, 0)
    """
)


def _totals(directory: Path) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=str(directory))
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in registry.collect()
        for sample in family.samples
    }


def test_fold_keeps_totals_exactly(tmp_path: Path) -> None:
    workers = 60
    subprocess.run(
        [sys.executable, "-c", _WRITER, str(tmp_path), str(workers)], check=True, timeout=60
    )
    # Each worker wrote a counter and a histogram file; the parent its (unlabelled) histogram.
    assert len(list(tmp_path.glob("*.db"))) == 2 * workers + 1
    before = _totals(tmp_path)

    folded = fold_dead_workers(str(tmp_path))

    assert len(folded) == workers + 1
    assert sorted(p.name for p in tmp_path.glob("*.db")) == [
        "counter_archive.db",
        "histogram_archive.db",
    ]
    assert _totals(tmp_path) == before
    expected_hits = sum(range(1, workers + 1))
    assert (
        before[("hits_total", (("route", "/a"),))] + before[("hits_total", (("route", "/b"),))]
        == expected_hits
    )
    # A second wave after the first fold adds on top of the archive.
    subprocess.run([sys.executable, "-c", _WRITER, str(tmp_path), "3"], check=True, timeout=60)
    body = generate_latest(scrape_registry(str(tmp_path))).decode()
    hits = sum(
        sample.value
        for family in text_string_to_metric_families(body)
        if family.name == "hits"
        for sample in family.samples
        if sample.name == "hits_total"
    )
    assert hits == expected_hits + 6
    assert len(list(tmp_path.glob("*.db"))) == 2


def _scrape(url: str) -> tuple[float, float, dict[str, float]]:
    """(sum of request counts, scrape seconds, unlabelled gauges) from the app's /metrics."""
    started = time.perf_counter()
    with urllib.request.urlopen(url, timeout=10) as response:
        body = response.read().decode()
    elapsed = time.perf_counter() - started
    families = list(text_string_to_metric_families(body))
    total = sum(
        sample.value
        for family in families
        if family.name == "http_request_duration_seconds"
        for sample in family.samples
        if sample.name.endswith("_count")
    )
    gauges = {
        sample.name: sample.value
        for family in families
        for sample in family.samples
        if not sample.labels
    }
    return total, elapsed, gauges


def _counted_in_files(directory: Path) -> float:
    """Requests counted in the directory, read by the test itself (under the shared lock)."""
    return sum(
        sample.value
        for family in scrape_registry(str(directory)).collect()
        if family.name == "http_request_duration_seconds"
        for sample in family.samples
        if sample.name.endswith("_count")
    )


def _workers_of(master: int) -> list[int]:
    children: list[int] = []
    for task in Path(f"/proc/{master}/task").iterdir():
        text = (task / "children").read_text().split()
        children.extend(int(pid) for pid in text)
    return children


@pytest.mark.slow
@pytest.mark.integration
def test_gunicorn_workers_restarted_200_times(tmp_path: Path) -> None:
    gunicorn = Path(sys.executable).with_name("gunicorn")
    metrics_dir = tmp_path / "metrics"
    port = free_port()
    config = tmp_path / "gunicorn.conf.py"
    config.write_text(
        textwrap.dedent(
            f"""
            from hlthz.exporter.gunicorn import child_exit, on_starting  # noqa: F401
            bind = "127.0.0.1:{port}"
            workers = 2
            max_requests = 1  # every worker exits after one request: a restart per request
            preload_app = True
            graceful_timeout = 5
            """
        )
    )
    env = dict(os.environ, PROMETHEUS_MULTIPROC_DIR=str(metrics_dir), PYTHONPATH=str(ROOT))
    base = f"http://127.0.0.1:{port}"
    server = ManagedProcess(
        "gunicorn",
        [str(gunicorn), "-c", str(config), "tests.exporter.gunicorn_app:app"],
        log_path=tmp_path / "gunicorn.log",
        env=env,
        cwd=ROOT,
        ready=lambda: http_ok(base + "/ready"),
        ready_timeout=60,
    )
    sent = 0
    killed = 0
    files: list[int] = []
    scrape_seconds: list[float] = []
    with server:
        sent += 1  # the readiness probe was one request
        for i in range(200):
            with urllib.request.urlopen(f"{base}/users/{i}", timeout=10) as response:
                assert response.read() == b"hello"
            sent += 1
            if i % 20 == 10:
                # SIGKILL a worker too (no graceful exit). Wait until every request so far
                # is in the files first: a worker killed between sending its response and
                # recording it would lose that one count, which is not what this tests.
                wait_until(
                    lambda expected=sent: _counted_in_files(metrics_dir) >= expected,
                    timeout=30,
                    what="the requests so far to be recorded",
                )
                workers = _workers_of(server.pid)
                if workers:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(workers[0], signal.SIGKILL)
                        killed += 1
            if i % 40 == 39:
                _, seconds, _ = _scrape(base + "/metrics")
                scrape_seconds.append(seconds)
                files.append(len(list(metrics_dir.glob("*.db"))))

        def all_counted() -> bool:
            return _scrape(base + "/metrics")[0] >= sent

        wait_until(all_counted, timeout=30, what="every request to be counted")
        total, _, gauges = _scrape(base + "/metrics")
    restarts = server.log_path.read_text().count("Booting worker")
    print(
        f"worker boots {restarts}, SIGKILLed {killed}, files per scrape {files}, "
        f"scrape seconds {scrape_seconds}"
    )
    assert restarts >= 200
    assert killed >= 5
    assert total == sent
    # One file per live worker and type plus the archives, however many workers died.
    assert max(files) <= 12
    # Process metrics survive multiprocess mode (summed over the live workers).
    assert gauges["process_resident_memory_bytes"] > 0
    assert gauges["process_memory_limit_bytes"] > 0
    assert gauges["hlthz_multiprocess_live_workers"] >= 1


def test_prepare_dir_cleans_and_reports_missing_env(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from hlthz.exporter import MultiprocessError
    from hlthz.exporter.multiprocess import prepare_dir

    monkeypatch.delenv("PROMETHEUS_MULTIPROC_DIR", raising=False)
    with pytest.raises(MultiprocessError, match="PROMETHEUS_MULTIPROC_DIR is not set"):
        prepare_dir()
    directory = tmp_path / "mp"
    directory.mkdir()
    (directory / "counter_123.db").write_bytes(b"stale")
    (directory / "gauge_livesum_123.db").write_bytes(b"stale")
    (directory / "histogram_archive.db").write_bytes(b"stale")
    (directory / "notes.txt").write_text("kept")
    (directory / "shop.db").write_text("an application's SQLite file: kept")
    monkeypatch.setenv("PROMETHEUS_MULTIPROC_DIR", str(directory))
    assert prepare_dir() == directory
    assert sorted(p.name for p in directory.iterdir()) == [".hlthz.lock", "notes.txt", "shop.db"]


_BURNER = textwrap.dedent(
    """
    import os, sys, time
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = sys.argv[1]
    from prometheus_client import CollectorRegistry, Counter
    Counter("hits", "hits", registry=CollectorRegistry()).inc()  # its counter_<pid>.db
    end = time.process_time() + 0.5
    while time.process_time() < end:  # CPU seconds the summed counter must keep
        pass
    print("ready", flush=True)
    sys.stdin.read()
    """
)


def _cpu_seconds(directory: Path) -> float:
    registry = scrape_registry(str(directory))
    found = registry.get_sample_value("process_cpu_seconds_total")
    assert found is not None
    return found


def test_summed_cpu_counter_never_goes_down_when_a_worker_exits(tmp_path: Path) -> None:
    directory = tmp_path / "mp"
    directory.mkdir()
    worker = subprocess.Popen(
        [sys.executable, "-c", _BURNER, str(directory)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert worker.stdout is not None and worker.stdout.readline() == "ready\n"
        with_worker = _cpu_seconds(directory)
    finally:
        worker.kill()
        worker.wait(timeout=10)
    # The worker's 0.5 CPU seconds leave the live sum; a counter that dropped would make
    # rate() read a reset and spike.
    assert _cpu_seconds(directory) >= with_worker
