"""Multiprocess mode (gunicorn, ``uvicorn --workers``): one metrics view over every worker.

prometheus-client keeps each worker's values in ``<type>_<pid>.db`` files under
``PROMETHEUS_MULTIPROC_DIR`` and reads them all at every scrape. A worker that dies leaves its
files behind, so a server whose workers restart (``max_requests``, crashes, deploys) makes every
scrape slower, forever. HLTHZ folds a dead worker's counter, histogram and summary files into one
``<type>_archive.db`` per type (values added key by key, so every total is kept exactly) and
removes its live-gauge files; the directory then holds one file per live worker and type plus
the archives, whatever the number of restarts.

Folding happens when gunicorn reports a worker's exit (:mod:`hlthz.exporter.gunicorn`) and, for
servers without hooks, at each scrape for every pid that is no longer running. Scrapes read
under a shared ``flock`` and folds write under an exclusive one, so a scrape never sees a worker
both in the archive and in its own file.
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import glob
import json
import os
import re
from collections import defaultdict
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.mmap_dict import MmapedDict
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector

from hlthz.errors import MultiprocessError
from hlthz.files import atomic_write
from hlthz.procs import pid_alive

ENV = "PROMETHEUS_MULTIPROC_DIR"
_ARCHIVED_TYPES = ("counter", "histogram", "summary")
_LOCK_FILE = ".hlthz.lock"
#: Names of the files prometheus-client (``<type>_<pid>.db``) and the archive write.
_METRICS_FILE = re.compile(r"(?:counter|histogram|summary|gauge_[a-z]+)_(?:\d+|archive)\.db")
#: CPU seconds of exited workers, and the last CPU seen per live worker (see _ProcessesCollector).
_CPU_FILE = ".hlthz.cpu.json"


def active_dir() -> str | None:
    """The multiprocess directory when multiprocess mode is on (``PROMETHEUS_MULTIPROC_DIR``)."""
    path = os.environ.get(ENV)
    return path if path and os.path.isdir(path) else None


def prepare_dir(path: str | os.PathLike[str] | None = None, *, clean: bool = True) -> Path:
    """Create the multiprocess directory and remove the files of a previous run.

    Call it once in the server's master before any worker starts (the gunicorn ``on_starting``
    hook does). ``path`` defaults to ``$PROMETHEUS_MULTIPROC_DIR``.
    """
    raw = path if path is not None else os.environ.get(ENV)
    if not raw:
        raise MultiprocessError(
            f"{ENV} is not set: export it (e.g. {ENV}=/tmp/hlthz-metrics) before starting the "
            "server, so every worker writes its metrics there"
        )
    directory = Path(raw)
    try:
        directory.mkdir(parents=True, exist_ok=True)
        if clean:
            for stale in directory.glob("*.db"):
                # Only prometheus-client's and HLTHZ's files: a directory shared by mistake
                # with an application's data (SQLite ``*.db``) must not lose it.
                if _METRICS_FILE.fullmatch(stale.name):
                    stale.unlink()
            (directory / _CPU_FILE).unlink(missing_ok=True)
        probe = directory / _LOCK_FILE
        probe.touch()
    except OSError as exc:
        raise MultiprocessError(f"{ENV}={raw}: cannot prepare the directory: {exc}") from exc
    return directory


@contextlib.contextmanager
def _locked(directory: str, exclusive: bool) -> Iterator[None]:
    with open(os.path.join(directory, _LOCK_FILE), "a+b") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _pid_of(filename: str) -> int | None:
    stem = os.path.basename(filename)[:-3]  # strip ".db"
    tail = stem.rsplit("_", 1)[-1]
    return int(tail) if tail.isdigit() else None


def worker_pids(directory: str) -> set[int]:
    """Pids that have files in ``directory`` (live or dead)."""
    pids = set()
    for name in glob.glob(os.path.join(directory, "*.db")):
        pid = _pid_of(name)
        if pid is not None:
            pids.add(pid)
    return pids


def mark_dead(pid: int, directory: str | None = None) -> None:
    """Fold the files of worker ``pid``, which has exited, into the archives.

    Live gauges of the worker are removed (their values die with it); its counters, histograms
    and summaries are added into ``<type>_archive.db``.
    """
    path = directory or active_dir()
    if path is None:
        raise MultiprocessError(f"{ENV} is not set or not a directory")
    with _locked(path, exclusive=True):
        _fold(pid, path)


def _fold(pid: int, path: str) -> None:
    mark_process_dead(pid, path)
    for typ in _ARCHIVED_TYPES:
        dead = os.path.join(path, f"{typ}_{pid}.db")
        if not os.path.exists(dead):
            continue
        archive = os.path.join(path, f"{typ}_archive.db")
        totals: dict[str, float] = defaultdict(float)
        for source in (archive, dead):
            if os.path.exists(source):
                for key, value, _timestamp, _pos in MmapedDict.read_all_values_from_file(source):
                    totals[key] += value
        temporary = os.path.join(path, f"{typ}_archive.tmp")
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        out = MmapedDict(temporary)
        try:
            for key, value in totals.items():
                out.write_value(key, value, 0.0)
        finally:
            out.close()
        # Replace, then delete: a crash in between double-counts one worker rather than lose it.
        os.replace(temporary, archive)
        os.unlink(dead)


def fold_dead_workers(directory: str | None = None) -> list[int]:
    """Fold every worker whose process is gone; return their pids."""
    path = directory or active_dir()
    if path is None:
        return []
    me = os.getpid()
    dead = sorted(pid for pid in worker_pids(path) if pid != me and not pid_alive(pid))
    if dead:
        with _locked(path, exclusive=True):
            for pid in dead:
                _fold(pid, path)
    return dead


class _LockedCollector(MultiProcessCollector):
    """prometheus-client's collector, reading under the shared lock."""

    def collect(self) -> Iterable[Any]:
        with _locked(self._path, exclusive=False):
            return list(super().collect())


class _ProcessesCollector(Collector):
    """``process_*`` summed over the live workers (plus this process): memory, CPU, fds.

    prometheus-client drops process metrics in multiprocess mode; alerts need them, and the
    cgroup limit applies to all workers together, so memory and CPU are sums. A counter must
    never go down (``rate()`` would read the drop as a reset and spike), so the CPU seconds of
    a worker last seen at an earlier scrape and gone now are kept in ``.hlthz.cpu.json`` and
    added to the live workers' sum.
    """

    def __init__(self, directory: str) -> None:
        self._directory = directory

    def collect(self) -> Iterator[Any]:
        pids = {pid for pid in worker_pids(self._directory) if pid_alive(pid)} | {os.getpid()}
        sums: dict[str, float] = defaultdict(float)
        mins: dict[str, float] = {}
        maxes: dict[str, float] = {}
        docs: dict[str, tuple[str, str]] = {}
        seen: dict[str, tuple[float, float]] = {}  # pid -> (start time, CPU seconds)
        for pid in sorted(pids):
            collector = ProcessCollector(pid=functools.partial(int, pid), registry=None)
            start = cpu = None
            for family in collector.collect():
                for sample in family.samples:
                    docs[sample.name] = (family.type, family.documentation)
                    if sample.name.endswith("start_time_seconds"):
                        start = sample.value
                        mins[sample.name] = min(mins.get(sample.name, sample.value), sample.value)
                    elif sample.name.endswith("max_fds"):
                        maxes[sample.name] = max(maxes.get(sample.name, 0.0), sample.value)
                    else:
                        if sample.name.endswith("cpu_seconds_total"):
                            cpu = sample.value
                        sums[sample.name] += sample.value
            if start is not None and cpu is not None:
                seen[str(pid)] = (start, cpu)
        cpu_name = next((name for name in sums if name.endswith("cpu_seconds_total")), None)
        if cpu_name is not None:
            sums[cpu_name] += self._exited_cpu(seen)
        for values in (sums, mins, maxes):
            for name, value in values.items():
                typ, doc = docs[name]
                if typ == "counter":
                    counter = CounterMetricFamily(name.removesuffix("_total"), doc)
                    counter.add_metric([], value)
                    yield counter
                else:
                    gauge = GaugeMetricFamily(name, doc)
                    gauge.add_metric([], value)
                    yield gauge
        workers = GaugeMetricFamily(
            "hlthz_multiprocess_live_workers", "Live processes with metrics files."
        )
        workers.add_metric([], float(len(pids)))
        yield workers

    def _exited_cpu(self, seen: dict[str, tuple[float, float]]) -> float:
        """CPU seconds of the workers gone since earlier scrapes; remembers ``seen`` for later."""
        path = os.path.join(self._directory, _CPU_FILE)
        with _locked(self._directory, exclusive=True):
            try:
                with open(path, encoding="utf-8") as file:
                    state = json.load(file)
                exited = float(state["exited"])
                last: dict[str, list[float]] = dict(state["last"])
            except (OSError, ValueError, KeyError, TypeError):
                exited, last = 0.0, {}
            for pid, (start, cpu) in list(last.items()):
                now = seen.get(pid)
                if now is None or now[0] != start:  # gone, or its pid reused by a new process
                    exited += cpu
                    del last[pid]
            for pid, (start, cpu) in seen.items():
                last[pid] = [start, max(cpu, last.get(pid, [start, 0.0])[1])]
            atomic_write(path, json.dumps({"exited": exited, "last": last}))
        return exited


def scrape_registry(directory: str) -> CollectorRegistry:
    """A fresh registry over ``directory`` for one scrape (dead workers folded first)."""
    from hlthz.exporter.memory import MemoryLimitCollector

    fold_dead_workers(directory)
    registry = CollectorRegistry(auto_describe=False)
    _LockedCollector(registry, path=directory)
    registry.register(_ProcessesCollector(directory))
    registry.register(MemoryLimitCollector())
    return registry
