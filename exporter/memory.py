"""``process_memory_limit_bytes``: how much memory this process may use.

The ``HighMemoryUsage`` alert divides resident memory by this limit, so it must be the limit
that actually kills the process: the cgroup v2 ``memory.max`` of the process's cgroup (or the
tightest one of its ancestors), else cgroup v1's ``memory.limit_in_bytes``, else the machine's
``MemTotal``. A cgroup limit above ``MemTotal`` (v1 reports "unlimited" as a huge number) is
capped at ``MemTotal``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

_CGROUP_ROOT = Path("/sys/fs/cgroup")


def memory_limit_bytes(
    proc_root: Path = Path("/proc"), cgroup_root: Path = _CGROUP_ROOT
) -> float | None:
    """The memory limit of this process in bytes, or ``None`` when nothing is readable."""
    total = _mem_total(proc_root)
    limit = _cgroup_v2_limit(proc_root, cgroup_root)
    if limit is None:
        limit = _read_number(cgroup_root / "memory" / "memory.limit_in_bytes")
    if limit is None:
        return total
    return min(limit, total) if total is not None else limit


def _mem_total(proc_root: Path) -> float | None:
    try:
        for line in (proc_root / "meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return float(line.split()[1]) * 1024  # the file says kB and means KiB
    except (OSError, ValueError, IndexError):
        return None
    return None


def _cgroup_v2_limit(proc_root: Path, cgroup_root: Path) -> float | None:
    try:
        lines = (proc_root / "self" / "cgroup").read_text().splitlines()
    except OSError:
        return None
    relative = next((line[3:] for line in lines if line.startswith("0::")), None)
    if relative is None:
        return None
    # A limit anywhere up the tree applies; the tightest one wins.
    best: float | None = None
    directory = (cgroup_root / relative.lstrip("/")).resolve()
    root = cgroup_root.resolve()
    for _ in range(64):  # bounded walk up to the cgroup root
        value = _read_number(directory / "memory.max")
        if value is not None and (best is None or value < best):
            best = value
        if directory == root or root not in directory.parents:
            break
        directory = directory.parent
    return best


def _read_number(path: Path) -> float | None:
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    if not text or text == "max":
        return None
    try:
        return float(text)
    except ValueError:
        return None


class MemoryLimitCollector(Collector):
    """Collector of ``process_memory_limit_bytes`` (read at each scrape; the limit can change)."""

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(
            "process_memory_limit_bytes",
            "Memory the process may use: cgroup v2 memory.max, else cgroup v1, else MemTotal.",
        )
        limit = memory_limit_bytes()
        if limit is not None:
            family.add_metric([], limit)
        yield family
