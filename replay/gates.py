"""The gates of ``replay compare`` and how it judges: ``--fail-on`` expressions and options.

A gate is ``METRIC OP VALUE``:

- ``METRIC``: ``p50``, ``p90``, ``p95``, ``p99``, ``max`` (latency from the scheduled time, ms),
  ``service_p50`` .. ``service_max`` (from the actual send), the shares ``error_rate``,
  ``4xx_rate``, ``status_change`` and ``capture_mismatch`` (docs/gate.md), ``rps``;
- ``OP``: ``>``, ``>=``, ``<``, ``<=``;
- ``VALUE``: a signed percentage is a change relative to the baseline (``p95 > +10%``: the P95
  grew by more than 10 %; ``rps < -5%``: throughput fell by more than 5 %); anything else is an
  absolute limit on the candidate: ``800ms``, ``1.5s``, ``1%`` (a ratio, for ``error_rate``) or a
  bare number in the metric's unit (ms, ratio, requests/s).

A gate *fails* when the candidate satisfies the expression. :class:`GateOptions` holds the
gates and every other setting of a comparison, checked when made; :class:`Allow` the switches
that judge reports :func:`~hlthz.replay.compare.compare_reports` would refuse.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

from hlthz.errors import ReplayError
from hlthz.replay import stats

__all__ = [
    "DEFAULT_ALPHA",
    "DEFAULT_COUNT_TOLERANCE",
    "DEFAULT_GATES",
    "DEFAULT_MIN_EFFECT_MS",
    "DEFAULT_MIN_SAMPLES",
    "LAG_REFUSE_MS",
    "LATENCY",
    "METRICS",
    "OPS",
    "SHARES",
    "Allow",
    "Gate",
    "GateOptions",
]

DEFAULT_GATES = ("p95 > +10%", "p99 > +20%", "error_rate > 1%", "status_change > 5%")
DEFAULT_MIN_SAMPLES = 20
#: A relative latency gate fails only on a change of at least this many ms as well.
DEFAULT_MIN_EFFECT_MS = 2.0
#: The false discovery rate the checks of one comparison are held to.
DEFAULT_ALPHA = 0.05
#: Request counts of the two sides may differ by this share before compare refuses.
DEFAULT_COUNT_TOLERANCE = 0.05
#: Schedule lag P99 (ms) beyond which the generator, not the target, shaped the latencies.
#: Generous: a busy 2-core CI runner reaches tens of ms without the verdict suffering (both
#: sides see it, and the latency counts it); a stalled generator reaches seconds.
LAG_REFUSE_MS = 100.0
LATENCY = ("p50", "p90", "p95", "p99", "max")
SHARES = ("error_rate", "4xx_rate", "status_change", "capture_mismatch")
METRICS = (*LATENCY, *(f"service_{p}" for p in LATENCY), *SHARES, "rps")
#: Share metrics that are a distance, judged against an absolute limit only.
_ABSOLUTE_ONLY = ("status_change", "capture_mismatch")
_EXPR = re.compile(
    r"^\s*(?P<metric>[a-z_0-9]+)\s*(?P<op>>=|<=|>|<)\s*"
    r"(?P<value>[+-]?\d+(?:\.\d+)?)\s*(?P<unit>%|ms|s)?\s*$"
)
#: What each operator of a gate means (candidate value, limit).
OPS = {
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
}


@dataclass(frozen=True)
class Gate:
    """One parsed gate expression. ``relative``: ``limit`` is a change ratio (0.1 = +10 %)."""

    text: str
    metric: str
    op: str
    limit: float
    relative: bool

    @classmethod
    def parse(cls, text: str) -> Gate:
        """Parse ``'p95 > +10%'``; raise :class:`ReplayError` saying what is wrong."""
        match = _EXPR.match(text)
        if match is None:
            raise ReplayError(
                f"--fail-on {text!r}: write METRIC OP VALUE, e.g. 'p95 > +10%', 'p99 > 800ms', "
                f"'error_rate > 1%', 'rps < -5%'"
            )
        metric, op, raw, unit = match["metric"], match["op"], match["value"], match["unit"]
        if metric not in METRICS:
            raise ReplayError(
                f"--fail-on {text!r}: unknown metric {metric!r}; use one of {', '.join(METRICS)}"
            )
        value = float(raw)
        signed = raw[0] in "+-"
        if unit == "%" and signed:
            if metric in _ABSOLUTE_ONLY:
                raise ReplayError(
                    f"--fail-on {text!r}: {metric} is a share of requests; give an absolute "
                    f"limit without a sign, e.g. '{metric} > 5%'"
                )
            return cls(text, metric, op, value / 100, True)
        latency = metric not in (*SHARES, "rps")
        if unit == "%":
            if metric not in SHARES:
                raise ReplayError(
                    f"--fail-on {text!r}: an absolute percentage applies to {', '.join(SHARES)} "
                    f"only; write a relative change with a sign ('+10%')"
                )
            value /= 100
        elif unit in ("ms", "s"):
            if not latency:
                raise ReplayError(f"--fail-on {text!r}: {metric} is not a time; drop the unit")
            value = value * 1000 if unit == "s" else value
        return cls(text, metric, op, value, False)


@dataclass(frozen=True)
class Allow:
    """What :func:`compare_reports` judges although it would refuse it (the ``--allow-...``
    options): an ``interrupted`` run (or one with lost workers), a generator that was late
    (``lag``), reports of ``different_captures``, a ``count_mismatch``, reports without latency
    samples (``no_samples``: latency gates are then judged on the reports' percentiles alone,
    without statistics)."""

    interrupted: bool = False
    lag: bool = False
    different_captures: bool = False
    count_mismatch: bool = False
    no_samples: bool = False


@dataclass(frozen=True)
class GateOptions:
    """How :func:`compare_reports` judges (checked when made; ``ReplayError`` names the option).

    ``fail_on``: the gates; ``min_samples``: scopes with fewer requests on either side are not
    judged; ``min_effect``: the absolute floor (ms) of a relative latency gate; ``alpha``: the
    false discovery rate; ``count_tolerance``: how far apart request counts may be (a share);
    ``resamples``, ``seed``: the bootstrap; ``max_lag``: the schedule lag P99 (ms) beyond which
    a report is refused; ``allow``: see :class:`Allow`.
    """

    fail_on: tuple[str, ...] = DEFAULT_GATES
    min_samples: int = DEFAULT_MIN_SAMPLES
    min_effect: float = DEFAULT_MIN_EFFECT_MS
    alpha: float = DEFAULT_ALPHA
    count_tolerance: float = DEFAULT_COUNT_TOLERANCE
    resamples: int = stats.DEFAULT_RESAMPLES
    seed: int = 0
    max_lag: float = LAG_REFUSE_MS
    allow: Allow = field(default_factory=Allow)

    def __post_init__(self) -> None:
        object.__setattr__(self, "fail_on", tuple(self.fail_on))
        for text in self.fail_on:
            Gate.parse(text)
        if not self.fail_on:
            raise ReplayError("--fail-on: give at least one gate, e.g. 'p95 > +10%'")
        checks = (
            ("--min-samples", self.min_samples, 1, None),
            ("--min-effect", self.min_effect, 0, None),
            ("--alpha", self.alpha, 1e-9, 0.5),
            ("--count-tolerance", self.count_tolerance, 0, 1),
            ("resamples", self.resamples, 20, 100_000),
            ("--max-lag", self.max_lag, 0, None),
        )
        for name, value, low, high in checks:
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ReplayError(f"{name} must be a number, got {value!r}")
            if not math.isfinite(value) or value < low or (high is not None and value > high):
                bounds = f">= {low:g}" if high is None else f"from {low:g} to {high:g}"
                raise ReplayError(f"{name} must be {bounds}, got {value:g}")
