"""Process-group helpers for tests that must prove every process they started is gone."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path


def live_process_groups() -> dict[int, list[int]]:
    """Every live (non-zombie) process on the machine, by process group."""
    groups: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        state, pgid = fields[0], int(fields[2])
        if state not in ("Z", "X"):
            groups.setdefault(pgid, []).append(int(stat.parent.name))
    return groups


def leftover_groups(leaders: Iterable[int]) -> dict[int, list[int]]:
    """The process groups of ``leaders`` (each started in its own session) still alive.

    Checking the group, not just the leader, also catches a server's workers or a replay's
    locust children that outlived the process we started.
    """
    groups = live_process_groups()
    return {pid: groups[pid] for pid in leaders if pid in groups}
