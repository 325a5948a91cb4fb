"""HDR recording: per-route histograms, exact merge across workers, route templates."""

from __future__ import annotations

import random

from hlthz.replay.timing import Recorder, decode


def _fill(recorder: Recorder, values: list[tuple[str, float, int | None]]) -> None:
    for i, (route, latency, status) in enumerate(values):
        recorder.record(route, i / 100, 0.0005, latency * 0.8, latency, status)


def test_merged_shards_equal_one_recorder_exactly() -> None:
    rng = random.Random(7)
    values = [
        (
            rng.choice(["GET /a", "GET /b/{id}"]),
            rng.lognormvariate(-3, 1),
            rng.choice([200, 200, 503, None]),
        )
        for _ in range(5000)
    ]
    whole = Recorder()
    _fill(whole, values)
    shards = [Recorder(), Recorder(), Recorder()]
    for i, value in enumerate(values):
        _fill(shards[i % 3], [value])
    merged = Recorder()
    for shard in shards:
        merged.merge_wire(shard.to_wire())
    assert merged.requests == whole.requests == 5000
    assert merged.errors == whole.errors
    for pct in (50, 90, 95, 99, 99.9, 100):
        assert merged.latency.get_value_at_percentile(pct) == whole.latency.get_value_at_percentile(
            pct
        )
    for route, stats in whole.routes.items():
        other = merged.routes[route]
        assert other.statuses == stats.statuses
        assert other.latency.get_value_at_percentile(95) == stats.latency.get_value_at_percentile(
            95
        )
    # A mean of the shards' P99s is not the P99: the merge must not be an average.
    assert decode(merged.to_wire()["latency"]).get_total_count() == 5000


def test_series_bins_by_scheduled_second_and_survives_compression() -> None:
    recorder = Recorder()
    for second in range(30):
        recorder.record("GET /", second + 0.5, 0.001, 0.01, 0.02 if second != 12 else 1.0, 200)
    points = list(recorder.series())
    assert [p["t"] for p in points] == list(range(30))
    assert points[12]["p99_ms"] >= 990 and points[11]["p99_ms"] < 25
    again = Recorder.from_wire(recorder.to_wire())
    assert list(again.series()) == points
