"""A 60 s capture takes 60 s at 1x (+1 % at most) and 30 s at --speed 2: no drift."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from hlthz.replay import ReplayPlan, ScheduleOptions, run_replay
from tests.replay.conftest import write_capture


@pytest.mark.slow
def test_sixty_second_capture_keeps_its_timeline_at_1x_and_2x(tmp_path: Path, target: Any) -> None:
    # 20 requests/s for 60 s with jittered gaps; each response takes 1-30 ms. A replay that
    # slept between records would drift by the sum of those times (several seconds).
    records = [
        (i * 0.05 + (0.02 if i % 7 == 3 else 0.0), "GET", f"/delay/{1 + i % 30}")
        for i in range(1200)
    ]
    records.append((60.0, "GET", "/delay/1"))
    capture = write_capture(tmp_path / "c.jsonl", records)
    # Both runs at once: the 1x run bounds this test's time.
    with ThreadPoolExecutor(2) as pool:
        one = pool.submit(run_replay, ReplayPlan(capture, target.url))
        double = ReplayPlan(capture, target.url, schedule=ScheduleOptions(speed=2))
        two = pool.submit(run_replay, double)
        at_1x, at_2x = one.result(timeout=120), two.result(timeout=120)
    assert at_1x.summary.requests == at_2x.summary.requests == 1201
    assert 60.0 <= at_1x.summary.duration_s <= 60.6
    assert 30.0 <= at_2x.summary.duration_s <= 30.3
