"""The replay timeline: when each captured request is due, on one absolute clock.

Record *i* is due at ``(ts_i - ts_0) / speed`` seconds after the run's start (``t0``), or at
``i / rate`` with ``--rate``. Due times are offsets from ``t0``, never sleeps between records, so
a slow response or a slow generator cannot make the replay drift: the engine sends each request
when it is due (or as soon as it can, and the delay is measured as schedule lag).

:func:`schedule` is a generator over a streamed capture, so a capture of any size is replayed in
constant memory. It is deterministic: every worker of a distributed run computes the same
timeline and keeps its own shard (:func:`shard_of`), so the shards add up to exactly the
single-process replay and a session's requests stay on one worker, in order.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from hlthz.errors import PlanError, ReplayError

#: Methods replayed by default: the ones that must not change server state (RFC 9110 "safe").
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


@dataclass(frozen=True, slots=True)
class ScheduleOptions:
    """How captured time maps onto the replay's timeline (checked when made).

    ``speed`` scales captured time (2 = twice as fast); ``rate`` instead spaces requests evenly
    at that many per second; ``max_gap`` (seconds of captured time) squeezes longer idle
    stretches down to that gap; ``loop`` starts the capture again when it ends; ``duration``
    (seconds of replay) ends the timeline; writes (not GET/HEAD/OPTIONS) are skipped unless
    ``allow_writes``. An out-of-range value raises :class:`~hlthz.errors.PlanError` naming the
    field (``speed: must be > 0, got 0``).
    """

    speed: float = 1.0
    rate: float | None = None
    duration: float | None = None
    loop: bool = False
    max_gap: float | None = None
    allow_writes: bool = False

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        set_(self, "speed", finite_number("speed", self.speed))
        for name in ("rate", "duration", "max_gap"):
            value = getattr(self, name)
            if value is not None:
                set_(self, name, finite_number(name, value))
        for name in ("loop", "allow_writes"):
            if not isinstance(getattr(self, name), bool):
                raise PlanError(name, f"must be true or false, got {_shown(getattr(self, name))}")
        if not self.speed > 0:
            raise PlanError("speed", f"must be > 0, got {self.speed:g}")
        if self.rate is not None and not self.rate > 0:
            raise PlanError("rate", f"must be > 0 requests/s, got {self.rate:g}")
        if self.duration is not None and not self.duration > 0:
            raise PlanError("duration", f"must be > 0 seconds, got {self.duration:g}")
        if self.max_gap is not None and self.max_gap < 0:
            raise PlanError("max_gap", f"must be >= 0 seconds, got {self.max_gap:g}")


def finite_number(name: str, value: object) -> float:
    """``value`` as a float if it is a finite int or float (not a bool, not text: "inf" would
    make every due time infinite); else :class:`PlanError` naming ``name``."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise PlanError(name, f"must be a number, got {_shown(value)}")
    try:
        number = float(value)
    except OverflowError:
        raise PlanError(name, "must be a finite number, got a huge integer") from None
    if not math.isfinite(number):
        raise PlanError(name, f"must be a finite number, got {number}")
    return number


def _shown(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


@dataclass(slots=True)
class Due:
    """One request of the timeline: ``at`` seconds after ``t0``; ``seq`` counts due records."""

    at: float
    seq: int
    record: Any  # a CaptureRecord (duck-typed: method, path, headers, body, session, ts_ns)


def shard_of(session: str | None, seq: int, shards: int) -> int:
    """The shard a record belongs to: by session (stable across processes), else round-robin."""
    if shards == 1:
        return 0
    if session:
        return zlib.crc32(session.encode("utf-8", "surrogatepass")) % shards
    return seq % shards


def schedule(
    open_records: Callable[[], Iterable[Any]],
    options: ScheduleOptions,
    *,
    shard: int = 0,
    shards: int = 1,
    on_skip: Callable[[str], None] | None = None,
) -> Iterator[Due]:
    """Yield shard ``shard`` of ``shards``' requests in due order, streaming ``open_records()``
    (once per pass).

    Records whose method is not safe are skipped unless ``allow_writes``; ``on_skip("method")``
    is called for each one of this shard. Out-of-order timestamps (captures written by several
    threads) are never due before their predecessor, so file order is send order.
    """
    if not 0 <= shard < shards:
        raise ReplayError(f"shard {shard} is outside 0..{shards - 1}")
    speed, rate, max_gap = options.speed, options.rate, options.max_gap
    seq = 0  # index among sendable records, over all passes (the rate slot, the shard key)
    offset = 0.0  # start of the current pass on the timeline
    last_at = 0.0
    while True:
        first_ts: int | None = None
        prev_ts = 0
        squeezed = 0.0
        count = 0
        span = 0.0
        for record in open_records():
            method = record.method.upper()
            if rate is not None:
                at = offset + seq / rate
            else:
                ts = int(record.ts_ns)
                if first_ts is None:
                    first_ts = prev_ts = ts
                gap = max(0.0, (ts - prev_ts) / 1e9)
                if max_gap is not None and gap > max_gap:
                    squeezed += gap - max_gap
                prev_ts = max(prev_ts, ts)
                span = (prev_ts - first_ts) / 1e9 - squeezed
                at = max(last_at, offset + span / speed)
            if options.duration is not None and at >= options.duration:
                return
            mine = shard_of(record.session, seq, shards) == shard
            if method not in SAFE_METHODS and not options.allow_writes:
                if mine and on_skip is not None:
                    on_skip("method")
                continue
            last_at = at
            count += 1
            seq += 1
            if mine:
                yield Due(at, seq - 1, record)
        if not options.loop or count == 0:
            return
        if rate is None:
            # The next pass starts one average gap after the last record, as if the capture
            # went on; a single-record capture repeats every second.
            average_gap = span / speed / (count - 1) if count > 1 else 1.0
            offset = last_at + average_gap
        else:
            offset = 0.0  # seq keeps counting, so rate slots continue seamlessly


#: The two sides of an interleaved replay, in the order of the first block.
SIDES = ("baseline", "candidate")


def interleave(timeline: Iterable[Due], block: int) -> Iterator[tuple[str, Due]]:
    """An A/B timeline: every ``block`` requests of ``timeline`` are replayed twice in a row,
    once against each side, the first side alternating ABBA (block 0: baseline then candidate,
    block 1: candidate then baseline, ...), so drift of the machine over the run hits both sides
    equally. Each pass keeps the block's own spacing; the run takes twice the timeline's time.
    Holds at most ``block`` requests in memory."""
    if block < 1:
        raise ReplayError(f"block must be >= 1, got {block}")
    shift = 0.0
    index = 0
    pending: list[Due] = []
    source = iter(timeline)
    while True:
        pending.clear()
        for due in source:
            pending.append(due)
            if len(pending) >= block:
                break
        if not pending:
            return
        first, last = pending[0].at, pending[-1].at
        # The second pass starts one average gap after the first pass's last request.
        gap = (last - first) / (len(pending) - 1) if len(pending) > 1 else 0.001
        span = last - first + gap
        order = SIDES if index % 2 == 0 else SIDES[::-1]
        for pass_, side in enumerate(order):
            for due in pending:
                yield side, Due(due.at + shift + pass_ * span, due.seq, due.record)
        shift += span
        index += 1
