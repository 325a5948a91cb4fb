"""The typed report: one reader that refuses damage in one line naming the field, one writer."""

from __future__ import annotations

import copy
import json
import math
import os
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hlthz.errors import InputError
from hlthz.replay import Report
from hlthz.replay.build import build_report
from hlthz.replay.report import (
    Histograms,
    LagPercentiles,
    Percentiles,
    RouteReport,
    RunInfo,
    SeriesPoint,
    Shard,
    Summary,
    Workers,
)
from hlthz.replay.timing import Recorder
from tests.replay.conftest import hlthz

# -- a real report, as build_report makes it ---------------------------------------------------


def _built() -> Report:
    recorder = Recorder()
    for i in range(40):
        recorder.record(
            f"{'GET' if i % 4 else 'POST'} /api/{'a' if i % 2 else 'b/{id}'}",
            i / 10,
            0.0003,
            0.01,
            0.012,
            503 if i % 9 == 0 else (None if i == 7 else 200),
        )
    recorder.skip("method", 2)
    result = {
        "elapsed_s": 4.2,
        "cpu": 0.2,
        "series": list(recorder.series()),
        "workers": {
            "expected": 2,
            "finished": 1,
            "lost": [1],
            "missing_share": 0.5,
            "shards": [
                {"index": 0, "sent": 40, "latency_hdr": "HISTFAAAAB"},
                {"index": 1, "sent": None, "latency_hdr": None},
            ],
        },
    }
    run = RunInfo(
        name="t",
        capture="c.jsonl",
        target="http://127.0.0.1:1",
        speed=1.0,
        loop=False,
        allow_writes=False,
        concurrency=10,
        workers=2,
        started_at="2026-01-01T00:00:00+00:00",
    )
    return build_report(recorder, result, run)


REPORT = _built()
DATA = REPORT.to_dict()


def test_the_writer_and_the_reader_agree(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "r.json"
    REPORT.write(path)
    assert json.loads(path.read_text()) == DATA
    assert Report.load(path) == REPORT and Report.from_dict(DATA) == REPORT
    assert [p.name for p in path.parent.iterdir()] == ["r.json"]  # no temporary left
    assert any("lost mid-run" in w for w in REPORT.warnings)
    route = next(r for r in REPORT.routes if r.method == "POST")
    assert (route.key, route.route) == ("POST /api/b/{id}", "/api/b/{id}")
    assert (
        DATA["routes"][0]["route"] == DATA["routes"][0]["method"] + " " + DATA["routes"][0]["path"]
    )


# -- every field, every wrong value ------------------------------------------------------------


def _leaves(value: Any, path: str = "") -> list[str]:
    out = [path] if path else []
    if isinstance(value, dict):
        for key, item in value.items():
            out += _leaves(item, f"{path}.{key}" if path else key)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            out += _leaves(item, f"{path}[{index}]")
    return out


def _set(data: Any, path: str, value: Any) -> None:
    parts = path.replace("[", ".[").split(".")
    for part in parts[:-1]:
        data = data[int(part[1:-1])] if part.startswith("[") else data[part]
    last = parts[-1]
    if last.startswith("["):
        data[int(last[1:-1])] = value
    else:
        data[last] = value


WRONG = [None, "x", -1, 2.5, 10**30, True, [], {}, float("nan"), float("inf")]


def _get(data: Any, path: str) -> Any:
    for part in path.replace("[", ".[").split("."):
        data = data[int(part[1:-1])] if part.startswith("[") else data[part]
    return data


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    return {int: "number", float: "number", str: "text", list: "list", dict: "object"}[type(value)]


@pytest.mark.parametrize("path", _leaves(DATA))
def test_every_damaged_field_is_one_line_naming_it(path: str) -> None:
    for wrong in WRONG:
        data = copy.deepcopy(DATA)
        _set(data, path, wrong)
        try:
            Report.from_dict(data, source="r.json")
        except InputError as exc:
            message = str(exc)
            assert "\n" not in message and len(message) < 200, message
            if path == "hlthz_report":
                assert message == 'r.json: not a replay report v1 (no "hlthz_report": 1)'
                continue
            reported = message.removeprefix("r.json: ").split(": ", 1)[0]
            # The field itself, or (for a route's method and path) the route key they make up.
            related = reported == path or path.startswith(reported + ".")
            related |= path.startswith(reported + "[") or reported.startswith(path)
            related |= path.endswith((".method", ".path")) and reported.endswith(".route")
            assert related, (path, wrong, message)
        else:
            # Accepted: only where the format allows that value (an optional key left empty,
            # or a value of the field's own JSON type), never NaN or infinity.
            original = _get(DATA, path)
            assert _kind(wrong) in (_kind(original), "null") or original is None, (path, wrong)
            assert not (isinstance(wrong, float) and not math.isfinite(wrong)), path


@settings(max_examples=200, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=300))
def test_random_bytes_are_one_line(tmp_path_factory: pytest.TempPathFactory, raw: bytes) -> None:
    path = tmp_path_factory.mktemp("r") / "r.json"
    path.write_bytes(raw)
    with pytest.raises(InputError) as raised:
        Report.load(path)
    message = str(raised.value)
    assert message.startswith(f"{path}") and "\n" not in message and len(message) < 300


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("", ":1: not JSON (Expecting value)"),
        ('{"hlthz_report": 1, "summary": NaN}', ": not a replay report (NaN is not a JSON number)"),
        ("[" * 100_000, ": not a replay report (nested too deeply)"),
        ('{"hlthz_report": 1, "routes": [' + "9" * 5000 + "]}", ": not a replay report (Exceeds"),
        ('{"hlthz_report": true}', ': not a replay report v1 (no "hlthz_report": 1)'),
        ('{"hlthz_report": 1}', ": routes: missing (a report v1 always has it)"),
        ('{"hlthz_report": 1, "routes": {}}', ": routes: must be a list, got an object"),
    ],
)  # fmt: skip
def test_damaged_files_are_one_line(tmp_path: Path, text: str, problem: str) -> None:
    path = tmp_path / "r.json"
    path.write_text(text)
    with pytest.raises(InputError) as raised:
        Report.load(path)
    assert str(raised.value).startswith(f"{path}{problem}"), str(raised.value)


def test_overflowing_and_infinite_numbers_name_the_field(tmp_path: Path) -> None:
    text = json.dumps(DATA).replace('"duration_s": 4.2', '"duration_s": 1e999')
    path = tmp_path / "r.json"
    path.write_text(text)
    with pytest.raises(InputError, match=r"summary\.duration_s: must be a finite number >= 0"):
        Report.load(path)


def test_an_oversized_or_unreadable_file_is_refused_unread(tmp_path: Path) -> None:
    big = tmp_path / "big.json"
    with big.open("wb") as handle:
        handle.truncate(65 * 2**20)  # sparse: nothing is written or read
    with pytest.raises(InputError, match=r"larger than 64 MiB"):
        Report.load(big)
    for path in (tmp_path / "missing.json", tmp_path):
        with pytest.raises(InputError, match=r"cannot read the report"):
            Report.load(path)
    (tmp_path / "utf16.json").write_bytes(json.dumps(DATA).encode("utf-16"))
    with pytest.raises(InputError, match=r"not UTF-8 text"):
        Report.load(tmp_path / "utf16.json")


def test_compare_refuses_a_damaged_report_in_one_line(tmp_path: Path) -> None:
    good, bad = tmp_path / "good.json", tmp_path / "bad.json"
    REPORT.write(good)
    bad.write_bytes(os.urandom(64) + b"\x00{")
    for args in ((good, bad), (bad, good)):
        done = hlthz("replay", "compare", *map(str, args))
        assert done.returncode == 2 and "Traceback" not in done.stderr
        assert done.stderr.startswith(f"hlthz: error: {bad}") and done.stderr.count("\n") == 1


# -- the round trip of any report --------------------------------------------------------------

_COUNT = st.integers(0, 2**63 - 1)
_MS = st.floats(0, 1e9, allow_nan=False)
_SHARE = st.floats(0, 1, allow_nan=False)
_TEXT = st.text(max_size=12)
_COUNTS = st.dictionaries(_TEXT, _COUNT, max_size=3)
_PCT = st.builds(Percentiles, p50=_MS, p90=_MS, p95=_MS, p99=_MS, max=_MS)


def _opt(strategy: Any) -> Any:
    return st.none() | strategy


reports = st.builds(
    Report,
    summary=st.builds(
        Summary,
        requests=_COUNT,
        errors=_COUNT,
        error_rate=_SHARE,
        skipped=_COUNT,
        duration_s=_MS,
        rps=_MS,
        latency_ms=_PCT,
        service_time_ms=_PCT,
        schedule_lag_ms=st.builds(LagPercentiles, p50=_MS, p99=_MS, max=_MS),
        skipped_by_reason=_opt(_COUNTS),
        status_classes=_opt(_COUNTS),
        statuses=_opt(_COUNTS),
        concurrency=_opt(_COUNT),
        cap_hits=_opt(_COUNT),
        generator_cpu=_opt(_MS),
    ),
    routes=st.lists(
        st.builds(
            RouteReport,
            method=st.sampled_from(["GET", "POST", "PATCH"]),
            route=_TEXT.map(lambda t: "/" + t),
            requests=_COUNT,
            errors=_COUNT,
            latency_ms=_PCT,
            error_rate=_opt(_SHARE),
            rps=_opt(_MS),
            service_time_ms=_opt(_PCT),
            statuses=_opt(_COUNTS),
        ),
        max_size=3,
    ).map(tuple),
    run=_opt(
        st.builds(
            RunInfo,
            name=_opt(_TEXT),
            capture=_opt(_TEXT),
            target=_opt(_TEXT),
            speed=_opt(_MS),
            rate=_opt(_MS),
            duration=_opt(_MS),
            loop=_opt(st.booleans()),
            max_gap=_opt(_MS),
            allow_writes=_opt(st.booleans()),
            concurrency=_opt(_COUNT),
            workers=_opt(_COUNT),
            started_at=_opt(_TEXT),
            interrupted=st.booleans(),
        )
    ),
    series=st.lists(
        st.builds(SeriesPoint, t=_COUNT, requests=_COUNT, errors=_COUNT, p50_ms=_MS),
        max_size=3,
    ).map(tuple),
    histograms=_opt(st.builds(Histograms, latency=_opt(_TEXT), service_time=_opt(_TEXT))),
    workers=_opt(
        st.builds(
            Workers,
            expected=_opt(_COUNT),
            finished=_opt(_COUNT),
            lost=_opt(st.lists(_COUNT, max_size=3).map(tuple)),
            missing_share=_opt(_SHARE),
            shards=_opt(
                st.lists(
                    st.builds(Shard, index=_COUNT, sent=_opt(_COUNT), latency_hdr=_opt(_TEXT)),
                    max_size=2,
                ).map(tuple)
            ),
        )
    ),
    warnings=st.lists(_TEXT, max_size=2).map(tuple),
)


@given(reports)
def test_any_report_reads_back_as_written(report: Report) -> None:
    text = json.dumps(report.to_dict())
    assert Report.from_dict(json.loads(text)) == report
