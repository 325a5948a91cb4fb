"""HDR recording: per-route histograms, exact merge across workers, route templates."""

from __future__ import annotations

import random

import pytest

from hlthz.replay.timing import Recorder, Reservoir, decode


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


def test_two_sides_keep_the_same_requests_in_send_order_whatever_order_they_finish_in() -> None:
    # 500 requests, room for 50: the two sides of an interleaved replay see the same requests
    # finish in different orders, and must still keep the same 50, listed in send order.
    rng = random.Random(3)
    cost = {seq: rng.lognormvariate(2, 0.5) for seq in range(500)}
    sent = Reservoir(50, "GET /a")
    for seq in range(500):
        sent.add(cost[seq], cost[seq] / 2, seq)
    finished = Reservoir(50, "GET /a")
    order = list(range(500))
    rng.shuffle(order)
    for seq in order:
        finished.add(cost[seq] * 1.1, cost[seq] / 2, seq)
    latency, service, seqs = sent.ordered()
    latency_b, _, seqs_b = finished.ordered()
    assert seqs == seqs_b == sorted(seqs) and len(seqs) == 50 and sent.seen == 500
    assert latency == [cost[seq] for seq in seqs] and service == [cost[seq] / 2 for seq in seqs]
    assert latency_b == pytest.approx([v * 1.1 for v in latency])
    # A uniform choice: from both halves of the run, and another route keeps other requests.
    assert 15 <= sum(seq < 250 for seq in seqs) <= 35
    other = Reservoir(50, "GET /b")
    for seq in range(500):
        other.add(1.0, 1.0, seq)
    assert len(set(other.ordered()[2]) & set(seqs)) < 15


def test_merged_samples_are_the_sample_of_the_whole_run() -> None:
    whole = Reservoir(40, "overall")
    shards = [Reservoir(40, "overall") for _ in range(3)]
    for seq in range(300):
        whole.add(seq / 10, seq / 20, seq)
        shards[seq % 3].add(seq / 10, seq / 20, seq)
    merged = Reservoir(40, "overall")
    for shard in shards:
        merged.merge_wire(shard.to_wire())
    assert merged.ordered() == whole.ordered() and merged.seen == whole.seen == 300
    # Filling up again after a merge keeps exactly what one reservoir would.
    for seq in range(300, 400):
        whole.add(seq / 10, seq / 20, seq)
        merged.add(seq / 10, seq / 20, seq)
    assert merged.ordered() == whole.ordered()
