"""The master's shipping of the timeline to its workers (hlthz.replay._stream), in-process."""

from __future__ import annotations

from typing import Any

import gevent
import msgpack

from hlthz.replay._stream import BATCH, MAX_PENDING, WINDOW, Feed, Streamer, pack, unpack
from hlthz.replay.capture import CaptureRecord
from hlthz.replay.schedule import Due, shard_of


def _timeline(count: int, sessions: int = 7) -> list[Due]:
    return [
        Due(
            0.0,
            i,
            CaptureRecord(
                id=str(i),
                ts_ns=i,
                method="POST",
                path=f"/p/{i}?q=1",
                headers=[("X-A", "1"), ("X-A", "2")],
                body=bytes([i % 256]) * 3,
                session=f"s{i % sessions}" if i % 5 else None,
                status=200 + i % 3,
            ),
        )
        for i in range(count)
    ]


class _Workers:
    """Workers that consume every batch at once (returning credit), unless stalled."""

    def __init__(self, names: list[str]) -> None:
        self.got: dict[str, list[Due]] = {n: [] for n in names}
        self.ended: set[str] = set()
        self.stalled: set[str] = set()
        self.dead: set[str] = set()
        self.held: dict[str, int] = dict.fromkeys(names, 0)
        self.streamer: Streamer | None = None

    def send(self, client: str, batch: list[Any] | None) -> None:
        if client in self.dead:
            return
        if batch is None:
            self.ended.add(client)
            return
        assert len(batch) <= BATCH
        self.got[client].extend(unpack(item) for item in batch)
        if client in self.stalled:
            self.held[client] += 1
            assert self.held[client] <= WINDOW  # never more than its window
        else:
            assert self.streamer is not None
            self.streamer.credit(client)


def test_pack_keeps_what_the_sender_uses() -> None:
    due = _timeline(3)[2]
    # Through msgpack as locust's messages carry it (locust.rpc.protocol.Message; importing
    # locust here would import ssl before gevent patches it).
    wire = msgpack.dumps(("hlthz_records", {"records": [pack(due)]}, "worker-1"))
    message = msgpack.loads(wire, raw=False, strict_map_key=False)
    back = unpack(message[1]["records"][0])
    assert (back.at, back.seq) == (due.at, due.seq)
    for name in ("method", "path", "headers", "body", "session", "status"):
        assert getattr(back.record, name) == getattr(due.record, name)


def test_every_request_reaches_its_sessions_worker_in_order() -> None:
    names = ["a", "b", "c"]
    workers = _Workers(names)
    timeline = _timeline(2500)
    streamer = Streamer(names, timeline, 0.0, send=workers.send, missing=lambda c: False)
    workers.streamer = streamer
    streamer.run()
    assert workers.ended == set(names) and streamer.done
    assert sum(len(v) for v in workers.got.values()) == 2500
    for index, name in enumerate(names):
        seqs = [d.seq for d in workers.got[name]]
        assert seqs == sorted(seqs)  # time order kept
        for due in workers.got[name]:
            assert shard_of(due.record.session, due.seq, 3) == index  # sessions stay whole
    assert streamer.shipped == {n: len(workers.got[n]) for n in names}


def test_a_lost_worker_has_its_share_counted_or_reassigned() -> None:
    for reassign in (False, True):
        names = ["a", "b"]
        workers = _Workers(names)
        workers.stalled.add("b")  # b stops returning credit, then locust calls it missing
        lost_after: list[int] = []

        def missing(
            client: str, workers: _Workers = workers, lost_after: list[int] = lost_after
        ) -> bool:
            if client == "b" and workers.held["b"] >= WINDOW:
                lost_after.append(1)
                workers.dead.add("b")
                return len(lost_after) > 3  # a few checks before the heartbeat timeout
            return False

        streamer = Streamer(
            names, _timeline(6000), 0.0, send=workers.send, missing=missing, reassign_lost=reassign
        )
        workers.streamer = streamer
        streamer.run()
        assert streamer.lost == ["b"]
        shipped_b = streamer.shipped["b"]
        assert shipped_b <= WINDOW * BATCH
        if reassign:
            assert streamer.unsent["b"] == 0
            assert streamer.shipped["a"] + shipped_b == 6000
        else:
            assert streamer.unsent["b"] > 0
            assert streamer.shipped["a"] + shipped_b + streamer.unsent["b"] == 6000
        assert workers.ended == {"a"}


def test_a_slow_worker_holds_back_only_a_bounded_stretch() -> None:
    names = ["a", "b"]
    workers = _Workers(names)
    workers.stalled.add("b")
    streamer = Streamer(names, _timeline(50_000), 0.0, send=workers.send, missing=lambda c: False)
    workers.streamer = streamer
    runner = gevent.spawn(streamer.run)
    gevent.sleep(0.5)
    # b holds its window and the master keeps at most MAX_PENDING more for it: the capture is
    # no longer being read, so nothing grows without bound.
    assert not runner.dead
    assert workers.held["b"] == WINDOW
    assert len(streamer._pending["b"]) <= MAX_PENDING
    read = sum(len(v) for v in workers.got.values()) + sum(map(len, streamer._pending.values()))
    assert read < 50_000
    workers.stalled.clear()
    for _ in range(WINDOW):
        streamer.credit("b")
    runner.join(timeout=30)
    assert runner.dead and streamer.done
    assert sum(len(v) for v in workers.got.values()) == 50_000


def test_a_feed_returns_credit_as_it_starts_each_batch() -> None:
    credits: list[int] = []
    feed = Feed(lambda: credits.append(1))
    feed.put([pack(d) for d in _timeline(3)])
    feed.put([pack(d) for d in _timeline(2)])
    feed.put(None)
    seen = []
    for due in feed:
        seen.append(due.seq)
        assert len(credits) == (1 if len(seen) <= 3 else 2)
    assert seen == [0, 1, 2, 0, 1] and feed.received == 5
