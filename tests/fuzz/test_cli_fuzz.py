"""A deterministic sample of the hostile corpus against the real ``hlthz`` command.

Each case runs as a subprocess under a 1 GiB address-space limit and a timeout, two at a time;
each must exit 0, or 2 with exactly one stderr line ``hlthz: error: ...``: no traceback, no
hang, no out-of-memory. ``make fuzz`` runs every case (``python -m tests.fuzz.runner --all``).
"""

from __future__ import annotations

import pytest

from tests.fuzz.corpus import all_cases, sample
from tests.fuzz.runner import classify, run_cases

pytestmark = pytest.mark.slow


def test_classify_tells_the_outcomes_apart() -> None:
    assert classify(2, "hlthz: error: x.yaml:3: selector: bad\n") == "exit2"
    assert classify(2, "hlthz: error: a\nhlthz: error: b\n") == "messy"
    assert classify(2, "Usage: hlthz\nError: no\n") == "messy"
    assert classify(1, "Traceback (most recent call last):\n  ...\nValueError: x\n") == "traceback"
    assert classify(1, "MemoryError\n") == "oom"
    assert classify(-9, "") == "oom"
    assert classify(None, "") == "hang"
    assert classify(0, "hlthz: warning\n") == "accepted"


def test_the_corpus_is_large_and_ids_are_unique() -> None:
    cases = all_cases()
    assert len(cases) >= 500
    assert len({c.id for c in cases}) == len(cases)
    areas = {c.area for c in cases}
    assert {"thresholds", "capture", "har", "gor", "nginx", "options"} <= areas


def test_sampled_hostile_inputs_end_in_one_clean_line() -> None:
    cases = sample(all_cases(), per_area=6)
    outcomes = run_cases(cases, jobs=2, timeout=120)
    bad = [o.describe() for o in outcomes if not o.ok]
    assert not bad, "\n".join(bad)
    assert any(o.kind == "exit2" for o in outcomes)
