"""A 60 s capture (``make soak``; 20 s in ``make test``) takes 60 s at 1x (+1 % at most) and 30 s
at --speed 2: no drift."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from hlthz.replay import ReplayPlan, ScheduleOptions, run_replay
from tests.conftest import SOAK
from tests.replay.conftest import write_capture

# Judges timing: make test runs it alone, after the parallel part (pyproject: serial).
pytestmark = pytest.mark.serial


@pytest.mark.slow
def test_a_long_capture_keeps_its_timeline_at_1x_and_2x(tmp_path: Path, target: Any) -> None:
    # 20 requests/s with jittered gaps; each response takes 1-30 ms. A replay that slept
    # between records would drift by the sum of those times (seconds).
    span = 60.0 if SOAK else 20.0
    count = int(span * 20)
    records = [
        (i * 0.05 + (0.02 if i % 7 == 3 else 0.0), "GET", f"/delay/{1 + i % 30}")
        for i in range(count)
    ]
    records.append((span, "GET", "/delay/1"))
    capture = write_capture(tmp_path / "c.jsonl", records)
    # Both runs at once: the 1x run bounds this test's time.
    with ThreadPoolExecutor(2) as pool:
        one = pool.submit(run_replay, ReplayPlan(capture, target.url))
        double = ReplayPlan(capture, target.url, schedule=ScheduleOptions(speed=2))
        two = pool.submit(run_replay, double)
        at_1x, at_2x = one.result(timeout=120), two.result(timeout=120)
    assert at_1x.summary.requests == at_2x.summary.requests == count + 1
    assert span <= at_1x.summary.duration_s <= span * 1.01
    assert span / 2 <= at_2x.summary.duration_s <= span / 2 * 1.01
