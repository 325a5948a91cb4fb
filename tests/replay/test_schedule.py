"""The timeline: absolute due times, speed, rate, gaps, loops, write skipping and sharding."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import pytest

from hlthz.errors import PlanError, ReplayError
from hlthz.replay.schedule import ScheduleOptions, schedule, shard_of


@dataclass
class Rec:
    ts_ns: int
    method: str = "GET"
    path: str = "/"
    session: str | None = None


def _recs(offsets: list[float], **kw: object) -> list[Rec]:
    return [Rec(ts_ns=int(o * 1e9) + 10**18, **kw) for o in offsets]  # type: ignore[arg-type]


def _ats(records: list[Rec], **options: object) -> list[float]:
    return [round(d.at, 6) for d in schedule(lambda: records, ScheduleOptions(**options))]  # type: ignore[arg-type]


def test_due_times_follow_captured_time_scaled_by_speed() -> None:
    records = _recs([0, 0.5, 2, 3])
    assert _ats(records) == [0, 0.5, 2, 3]
    assert _ats(records, speed=2) == [0, 0.25, 1, 1.5]


def test_rate_spaces_requests_evenly_whatever_the_timestamps() -> None:
    assert _ats(_recs([0, 0.001, 50, 51]), rate=4) == [0, 0.25, 0.5, 0.75]


def test_max_gap_squeezes_idle_stretches() -> None:
    assert _ats(_recs([0, 1, 101, 102]), max_gap=2) == [0, 1, 3, 4]


def test_out_of_order_records_are_never_due_before_their_predecessor() -> None:
    assert _ats(_recs([0, 2, 1.5, 3])) == [0, 2, 2, 3]


def test_loop_continues_the_timeline_until_duration() -> None:
    ats = _ats(_recs([0, 1, 2]), loop=True, duration=7.5)
    assert ats == [0, 1, 2, 3, 4, 5, 6, 7]


def test_duration_cuts_a_capture() -> None:
    assert _ats(_recs([0, 1, 2, 3]), duration=2) == [0, 1]


def test_writes_are_skipped_and_counted_unless_allowed() -> None:
    records = [*_recs([0]), *_recs([1], method="POST"), *_recs([2], method="delete")]
    skipped: Counter[str] = Counter()
    due = list(schedule(lambda: records, ScheduleOptions(), on_skip=lambda r: skipped.update([r])))
    assert [d.record.method for d in due] == ["GET"]
    assert skipped == {"method": 2}
    assert len(list(schedule(lambda: records, ScheduleOptions(allow_writes=True)))) == 3


def test_shards_partition_the_timeline_and_keep_sessions_together() -> None:
    records = [Rec(ts_ns=i * 10**7, session=f"s{i % 7}" if i % 3 else None) for i in range(300)]
    whole = [(d.at, d.seq) for d in schedule(lambda: records, ScheduleOptions(rate=100))]
    parts = [
        [
            (d.at, d.seq, d.record.session)
            for d in schedule(lambda: records, ScheduleOptions(rate=100), shard=i, shards=3)
        ]
        for i in range(3)
    ]
    merged = sorted((at, seq) for part in parts for at, seq, _ in part)
    assert merged == whole
    for i, part in enumerate(parts):
        for _, _, session in part:
            if session is not None:
                assert shard_of(session, 0, 3) == i


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"speed": 0}, "speed: must be > 0, got 0"),
        ({"rate": -1}, "rate: must be > 0 requests/s, got -1"),
        ({"duration": 0}, "duration: must be > 0 seconds, got 0"),
        ({"max_gap": -1}, "max_gap: must be >= 0 seconds, got -1"),
        ({"speed": float("inf")}, "speed: must be a finite number, got inf"),
        ({"rate": "fast"}, "rate: must be a number, got 'fast'"),
        ({"loop": 1}, "loop: must be true or false, got 1"),
    ],
)
def test_bad_options_name_the_field(options: dict[str, object], message: str) -> None:
    with pytest.raises(PlanError) as raised:
        ScheduleOptions(**options)  # type: ignore[arg-type]
    assert str(raised.value) == message
    assert raised.value.field == next(iter(options))


def test_a_shard_outside_the_shards_is_refused() -> None:
    with pytest.raises(ReplayError, match=r"^shard 2 is outside 0\.\.1$"):
        list(schedule(lambda: _recs([0]), ScheduleOptions(), shard=2, shards=2))
