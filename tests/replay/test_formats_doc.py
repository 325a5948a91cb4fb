"""docs/formats.md stays true: its examples parse with HLTHZ's own readers, and its key tables
and examples have exactly the keys the code writes today.

The report, comparison and diff are produced for real (a replay and a diff against loopback
targets), so a key added to, removed from or renamed in a writer fails here until the doc says
so; the version rules the page states (unknown keys ignored, other versions refused in one line
naming the file, optional keys optional) are checked against the readers.
"""

from __future__ import annotations

import copy
import gzip
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry

from hlthz.errors import CaptureFormatError, InputError
from hlthz.procs import ManagedProcess
from hlthz.replay import (
    CaptureRecord,
    CaptureRecorder,
    CaptureWriter,
    ReplayPlan,
    Report,
    compare_reports,
    read_capture,
    run_diff,
    run_replay,
    write_html,
)
from hlthz.replay.capture.format import encode_record, read_header
from hlthz.replay.compare import Allow, GateOptions
from tests.replay.conftest import REPO, start_target

DOC = REPO / "docs" / "formats.md"

#: Objects whose keys are data (status codes, reasons), not part of the format.
OPEN_MAPS = frozenset(
    {
        "skipped_by_reason",
        "status_classes",
        "statuses",
        "counts",
        "failures",
        "captured",
        "transitions",
        "examples",
    }
)
#: Objects the key tables describe in one row (percentiles, the diff's examples).
PERCENTILES = frozenset({"p50", "p90", "p95", "p99", "max"})
ONE_ROW = frozenset({"examples", "samples"})


# -- the doc ----------------------------------------------------------------------------------


def example(name: str) -> str:
    """The fenced block after ``<!-- example: NAME -->``."""
    match = re.search(rf"<!-- example: {name} -->\n```json\n(.*?)\n```", DOC.read_text(), re.S)
    assert match, f"docs/formats.md has no '{name}' example"
    return match.group(1)


def key_table(heading: str) -> dict[str, dict[str, str]]:
    """``{key path: row}`` of the first ``| key | ...`` table under ``heading``."""
    text = DOC.read_text()
    start = text.index(f"\n{heading}\n")
    level = heading.split(" ", 1)[0]
    end = len(text)
    for match in re.finditer(r"\n(#+) ", text[start + 1 :]):
        if len(match.group(1)) <= len(level):
            end = start + 1 + match.start()
            break
    columns: list[str] = []
    rows: dict[str, dict[str, str]] = {}
    for line in text[start:end].splitlines():
        if not line.startswith("|"):
            if rows:
                break
            continue
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        if not columns:
            columns = cells
            assert columns[0] == "key", f"{heading}: the first table must start with 'key'"
        elif not set(line) <= set("|-: "):
            row = dict(zip(columns, cells, strict=True))
            for path in re.findall(r"`([^`]+)`", cells[0]):
                rows[path] = row
    assert rows, f"docs/formats.md: no key table under {heading!r}"
    return rows


def presence(rows: dict[str, dict[str, str]], *kinds: str) -> set[str]:
    return {path for path, row in rows.items() if row["presence"].startswith(kinds)}


# -- shapes -----------------------------------------------------------------------------------


def paths(value: Any, prefix: str = "", *, tables: bool = False) -> set[str]:
    """Key paths of a JSON value: ``summary.requests``, ``routes[].route`` (list items merged).

    Open maps stop the walk (their keys are data); with ``tables``, objects that the key tables
    describe in one row (percentiles, the diff's examples) stop it too.
    """
    out: set[str] = set()
    if isinstance(value, dict):
        for key, item in value.items():
            path = f"{prefix}.{key}" if prefix else key
            out.add(path)
            if key in OPEN_MAPS:
                continue
            if tables and (
                key in ONE_ROW or (isinstance(item, dict) and item and set(item) <= PERCENTILES)
            ):
                continue
            out |= paths(item, path, tables=tables)
    elif isinstance(value, list):
        for item in value:
            out |= paths(item, prefix + "[]", tables=tables)
    return out


def keep(value: Any, allowed: set[str], prefix: str = "") -> Any:
    """``value`` with only the key paths in ``allowed`` (and everything under them)."""
    if isinstance(value, list):
        return [keep(item, allowed, prefix + "[]") for item in value]
    if not isinstance(value, dict):
        return value
    out = {}
    for key, item in value.items():
        path = f"{prefix}.{key}" if prefix else key
        if path in allowed:
            below = {p for p in allowed if p.startswith((path + ".", path + "[]"))}
            out[key] = keep(item, allowed, path) if below else item
    return out


def check_table(rows: dict[str, dict[str, str]], written: dict[str, Any]) -> None:
    """Everything ``written`` is in the table; the table lists nothing else but optional keys."""
    real = paths(written, tables=True)
    assert not real - set(rows), f"written but not in docs/formats.md: {sorted(real - set(rows))}"
    absent = set(rows) - real
    if rows and "presence" in next(iter(rows.values())):
        absent -= presence(rows, "optional")
    assert not absent, f"in docs/formats.md but not written: {sorted(absent)}"


# -- the real outputs -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def capture(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("capture") / "shop.jsonl"
    path.write_text(example("capture") + "\n")
    return path


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory, capture: Path) -> Iterator[dict[str, Any]]:
    """A real report, as written: the doc's capture replayed against the tests' loopback
    target."""
    target = start_target(tmp_path_factory.mktemp("target"))
    try:
        out = tmp_path_factory.mktemp("report") / "report.json"
        returned = run_replay(ReplayPlan(capture, target.url), report=out)
    finally:
        target.stop()
    written: dict[str, Any] = json.loads(out.read_text())
    # What run_replay returned is what it wrote, and the one reader reads it back whole.
    assert returned.to_dict() == written and Report.load(out) == returned
    yield written


# -- capture ----------------------------------------------------------------------------------


@pytest.mark.parametrize("compressed", [False, True])
def test_capture_example_reads_back_byte_for_byte(
    capture: Path, tmp_path: Path, compressed: bool
) -> None:
    lines = example("capture").splitlines()
    path = capture
    if compressed:
        path = tmp_path / "shop.jsonl.gz"
        path.write_bytes(gzip.compress(capture.read_bytes()))
    reader = read_capture(path)
    records = list(reader)
    assert reader.header == json.loads(lines[0])
    assert (reader.records, reader.invalid, reader.truncated) == (len(lines) - 1, 0, 0)
    # The example is what CaptureWriter writes: same bytes, key order and escaping included.
    assert [encode_record(r).decode() for r in records] == [line + "\n" for line in lines[1:]]
    assert records[1].method == "POST" and b'"password":"[REDACTED:' in records[1].body


def test_capture_record_table_is_what_the_reader_requires_and_the_writer_writes(
    capture: Path, tmp_path: Path
) -> None:
    rows = key_table("### Records (every other line)")
    header, full = example("capture").splitlines()[:2]
    written = CaptureRecord(id="1", ts_ns=1, method="GET", path="/", headers=[]).to_dict()
    assert set(written) == presence(rows, "required", "always written")
    for key in rows:
        obj = json.loads(full)
        obj.pop(key, None)
        path = tmp_path / f"without-{key}.jsonl"
        path.write_text(f"{header}\n{json.dumps(obj)}\n")
        if key in presence(rows, "required"):
            with pytest.raises(CaptureFormatError, match=rf"without-{key}\.jsonl:2: .*{key}"):
                list(read_capture(path))
        else:
            assert len(list(read_capture(path))) == 1, f"{key} must be optional for readers"


def test_capture_header_table_covers_every_writer(tmp_path: Path) -> None:
    rows = key_table("### Header (line 1)")
    headers = [json.loads(example("capture").splitlines()[0])]
    recorder = CaptureRecorder(tmp_path / "mw.jsonl", registry=CollectorRegistry())
    recorder.close()
    headers.append(read_header(tmp_path / "mw.jsonl"))
    with CaptureWriter(tmp_path / "rot.jsonl", source="test", max_bytes=200) as writer:
        for i in range(3):
            writer.write(CaptureRecord(id=str(i), ts_ns=i, method="GET", path="/", headers=[]))
    headers += [read_header(p) for p in writer.paths]
    written = set().union(*(set(h) for h in headers))
    assert written == set(rows), "the header table lists exactly the keys writers write"
    assert presence(rows, "required") == {"hlthz_capture"}
    for key in rows:  # readers need only the version
        path = tmp_path / f"header-without-{key}.jsonl"
        obj = {k: v for k, v in headers[0].items() if k != key}
        path.write_text(json.dumps(obj) + "\n")
        if key == "hlthz_capture":
            with pytest.raises(CaptureFormatError):
                list(read_capture(path))
        else:
            assert list(read_capture(path)) == []


def test_capture_unknown_keys_are_kept_and_other_versions_refused(tmp_path: Path) -> None:
    header, record = example("capture").splitlines()[:2]
    newer = tmp_path / "newer.jsonl"
    newer.write_text(
        json.dumps({**json.loads(header), "compression": "zstd"})
        + "\n"
        + json.dumps({**json.loads(record), "tenant": {"id": 7}})
        + "\n"
    )
    reader = read_capture(newer)
    (read,) = list(reader)
    assert reader.header["compression"] == "zstd"
    assert read.extra == {"tenant": {"id": 7}} and b'"tenant"' in encode_record(read)

    v2 = tmp_path / "v2.jsonl"
    v2.write_text(header.replace('"hlthz_capture":1', '"hlthz_capture":2') + "\n" + record + "\n")
    with pytest.raises(CaptureFormatError) as raised:
        list(read_capture(v2))
    assert str(raised.value) == (
        f"{v2}:1: capture format version 2 is not supported (this hlthz reads version 1)"
    )


# -- report -----------------------------------------------------------------------------------


def test_report_example_loads_and_has_the_keys_of_a_real_report(
    report: dict[str, Any], tmp_path: Path
) -> None:
    path = tmp_path / "example.json"
    path.write_text(example("report"))
    documented = Report.load(path)
    # The example reads back whole: the writer writes exactly the documented keys and values.
    assert documented.to_dict() == json.loads(example("report"))
    assert paths(documented.to_dict()) == paths(report)
    route = documented.routes[0]
    assert (route.key, route.method, route.route) == ("GET /api/products", "GET", "/api/products")
    check_table(key_table("## Replay report v1"), report)


def test_a_report_of_required_keys_only_is_read_compared_and_rendered(
    report: dict[str, Any], tmp_path: Path
) -> None:
    rows = key_table("## Replay report v1")
    required = presence(rows, "required")
    assert required <= paths(report)
    minimal = keep(copy.deepcopy(report), required)
    path = tmp_path / "minimal.json"
    path.write_text(json.dumps(minimal))
    loaded = Report.load(path)
    assert loaded.run is None and loaded.histograms is None and loaded.series == ()
    first = loaded.routes[0]
    assert first.service_time_ms is None and first.statuses is None
    assert (first.method, first.route) == tuple(minimal["routes"][0]["route"].split(" ", 1))
    # Written back, the required keys are as they were and nothing is made up for the others.
    rewritten = loaded.to_dict()
    assert keep(rewritten, required) == minimal
    assert "run" not in rewritten and "service_time_ms" not in rewritten["routes"][0]
    # Without latency samples, compare judges on the figures only when told to.
    figures = GateOptions(allow=Allow(no_samples=True))
    gate = compare_reports(loaded, Report.from_dict(report), figures, min_samples=1)
    assert gate.checks and not any(c.status == "missing" for c in gate.checks)
    write_html(loaded, tmp_path / "minimal.html")
    assert "GET /api/products" in (tmp_path / "minimal.html").read_text()


def test_report_unknown_keys_are_ignored_and_other_versions_refused(
    report: dict[str, Any], tmp_path: Path
) -> None:
    newer = {**report, "environment": {"region": "eu"}}
    newer["summary"] = {**report["summary"], "p999_ms": 12.5}
    (tmp_path / "newer.json").write_text(json.dumps(newer))
    assert not compare_reports(
        Report.load(tmp_path / "newer.json"), Report.from_dict(report)
    ).failed
    v2 = tmp_path / "v2.json"
    v2.write_text(json.dumps({**report, "hlthz_report": 2}))
    with pytest.raises(InputError) as raised:
        Report.load(v2)
    assert str(raised.value) == f'{v2}: not a replay report v1 (no "hlthz_report": 1)'


# -- comparison and diff ----------------------------------------------------------------------


def test_comparison_example_has_the_keys_compare_writes(report: dict[str, Any]) -> None:
    typed = Report.from_dict(report)
    written = compare_reports(typed, typed, min_samples=1).to_dict()
    documented = json.loads(example("comparison"))
    assert documented["hlthz_comparison"] == written["hlthz_comparison"] == 2
    assert paths(documented) == paths(written)
    check_table(key_table("## Comparison v2"), written)


def test_diff_example_has_the_keys_diff_writes(tmp_path: Path) -> None:
    primary: ManagedProcess = start_target(tmp_path)
    candidate: ManagedProcess = start_target(tmp_path, variant=1)
    try:
        records = [
            CaptureRecord(id=str(n), ts_ns=n, method="GET", path=f"/json/{n}", headers=[])
            for n in (1, 2)
        ]
        written = run_diff(records, primary=primary.url, candidate=candidate.url).to_dict()
    finally:
        primary.stop()
        candidate.stop()
    assert {d["path"] for d in written["differences"]} == {"$.price", "$.request_id"}
    documented = json.loads(example("diff"))
    assert documented["hlthz_diff"] == written["hlthz_diff"] == 1
    assert paths(documented) == paths(written)
    check_table(key_table("## Diff v1"), written)
