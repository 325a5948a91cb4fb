"""The replay's /metrics read off the HDR histograms: bucket counts match the recorded values."""

from __future__ import annotations

import socket

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from hlthz.errors import PlanError
from hlthz.replay.live_metrics import ReplayCollector, serve
from hlthz.replay.timing import Recorder


def test_histogram_buckets_and_counters_match_what_was_recorded() -> None:
    recorder = Recorder()
    latencies = [0.003, 0.02, 0.02, 0.3, 3.0]
    for i, latency in enumerate(latencies):
        recorder.record("GET /a", i, 0.0002, latency, latency, 200 if i < 4 else 502)
    recorder.record("GET /a", 5, 0.0002, 0.5, 0.5, None)
    recorder.skip("method", 3)
    registry = CollectorRegistry()
    registry.register(ReplayCollector(recorder, "rc", lambda: 7))
    text = generate_latest(registry).decode()
    route = 'route="GET /a",run="rc"'
    assert f'hlthz_replay_latency_seconds_bucket{{le="0.01",{route}}} 1.0' in text
    assert f'hlthz_replay_latency_seconds_bucket{{le="0.025",{route}}} 3.0' in text
    assert f'hlthz_replay_latency_seconds_bucket{{le="0.5",{route}}} 5.0' in text
    assert f'hlthz_replay_latency_seconds_bucket{{le="5.0",{route}}} 6.0' in text
    assert f"hlthz_replay_latency_seconds_count{{{route}}} 6.0" in text
    assert f'hlthz_replay_requests_total{{{route},status_class="2xx"}} 4.0' in text
    assert f'hlthz_replay_requests_total{{{route},status_class="5xx"}} 1.0' in text
    assert f'hlthz_replay_requests_total{{{route},status_class="error"}} 1.0' in text
    assert 'hlthz_replay_in_flight{run="rc"} 7.0' in text
    assert 'hlthz_replay_skipped_total{reason="method",run="rc"} 3.0' in text
    assert 'hlthz_replay_schedule_lag_seconds_bucket{le="0.0005",run="rc"} 6.0' in text


def test_busy_metrics_port_is_a_one_line_error_naming_the_field() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with pytest.raises(PlanError, match=rf"^metrics_port: {port}: cannot listen"):
            serve(port, Recorder(), "rc", lambda: 0)
