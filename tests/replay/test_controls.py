"""Run-time controls (hlthz.replay.controls): filters, sampling, rewriting, warm-up."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from hlthz.errors import PlanError
from hlthz.replay.capture import CaptureRecord, CaptureWriter
from hlthz.replay.controls import Controls
from hlthz.routes import Routes
from tests.replay.conftest import REPO, target_seen, write_capture


def _records() -> list[CaptureRecord]:
    return [
        CaptureRecord(
            id=str(i),
            ts_ns=i,
            method="POST" if i % 4 == 0 else "GET",
            path=f"/v1/products/{i}?utm_source=mail" if i % 2 else "/health",
            headers=[("Authorization", "Bearer <redacted:ab12>")],
            session=f"user-{i % 10}",
        )
        for i in range(200)
    ]


def test_filters_sampling_and_rewriting_in_one_pass() -> None:
    controls = Controls(
        exclude_routes=("/health",),
        methods=("GET",),
        sample=0.5,
        rewrite_paths=(("^/v1/", "/v2/"),),
        drop_query=("utm_source",),
        set_headers=(("Authorization", "Bearer fresh"),),
    )
    skipped: list[str] = []
    records = controls.wrap(_records, Routes(), skipped.append)
    out = list(records())
    assert out and all(r.path.startswith("/v2/products/") and "?" not in r.path for r in out)
    assert all(r.headers == [("Authorization", "Bearer fresh")] for r in out)
    # Sessions are kept whole: every kept session keeps all its GETs.
    kept = {r.session for r in out}
    assert 0 < len(kept) < 10
    expected = [r for r in _records() if r.method == "GET" and r.path != "/health"]
    assert len(out) == sum(1 for r in expected if r.session in kept)
    assert skipped.count("filtered") == 100  # /health (even i; the POSTs are among them)
    assert skipped.count("sampled") == len(expected) - len(out)
    # A second pass (--loop) selects the same records.
    assert [r.id for r in records()] == [r.id for r in out]


def test_json_round_trip_and_validation() -> None:
    controls = Controls(routes=("GET /api/*",), header_rules=(("Host", "(.*)", "$1.x"),), warmup=5)
    back = Controls.from_dict(json.loads(json.dumps(controls.to_dict())))
    assert back == controls and back.active and not Controls().active
    with pytest.raises(PlanError, match=r"^controls: --rewrite-path '\(': not a valid"):
        Controls(rewrite_paths=(("(", "/"),))
    with pytest.raises(PlanError, match=r"^warmup: must be 0 to 86400 seconds"):
        Controls(warmup=-1)
    with pytest.raises(PlanError, match=r"^routes: must be a list of strings"):
        Controls(routes="GET /x")  # type: ignore[arg-type]
    with pytest.raises(PlanError, match=r"^controls: --route 'nope'"):
        Controls(routes=("nope",))
    with pytest.raises(PlanError, match=r"^controls\.bogus: unknown field"):
        Controls.from_dict({"bogus": 1})


def test_run_filters_rewrites_and_warms_up_against_a_real_target(
    tmp_path: Path, target: object
) -> None:
    url = target.url  # type: ignore[attr-defined]
    records = [(i * 0.02, "GET", "/v1/delay/1" if i % 3 else "/admin/stats") for i in range(90)]
    capture = write_capture(tmp_path / "c.jsonl", records)
    report = tmp_path / "r.json"
    done = subprocess.run(
        [
            sys.executable, "-c", "from hlthz.tools.cli import main; main()", "replay", "run",
            str(capture), "--target", url, "--report", str(report), "--no-progress",
            "--exclude-route", "/admin/*", "--rewrite-path", "^/v1/", "/",
            "--set-header", "Authorization: Bearer fresh-token", "--warmup", "0.5",
        ],
        cwd=REPO, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    data = json.loads(report.read_text())
    skipped = data["summary"]["skipped_by_reason"]
    assert skipped["filtered"] == 30  # every third record is /admin/stats
    # The warm-up runs on the replay's timeline, which starts at the first request sent.
    kept = [at for at, _, p in records if p != "/admin/stats"]
    warm = sum(1 for at in kept if at - kept[0] < 0.5 - 1e-9)
    assert skipped["warmup"] == warm > 0
    assert data["summary"]["requests"] == 60 - warm
    assert [r["route"] for r in data["routes"]] == ["GET /delay/{id}"]  # rewritten first
    seen = target_seen(url)
    assert seen["methods"] == {"GET": 60}  # warm-up requests were sent
    assert seen["authorization"] == ["Bearer fresh-token"]

    bad = subprocess.run(
        [
            sys.executable, "-c", "from hlthz.tools.cli import main; main()", "replay", "run",
            str(capture), "--target", url, "--rewrite-path", "(", "/",
        ],
        cwd=REPO, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert bad.stderr.startswith("hlthz: error: --rewrite-path '(': not a valid regular")


def test_writes_with_marked_bodies_and_records_out_of_order_are_warned(
    tmp_path: Path, target: object
) -> None:
    url = target.url  # type: ignore[attr-defined]
    capture = tmp_path / "c.jsonl"
    with CaptureWriter(capture, source="test") as writer:
        for i, (ts, method, extra) in enumerate(
            [
                (0, "GET", {}),
                (20_000_000, "POST", {"body_truncated": True}),
                (10_000_000, "GET", {}),  # earlier than the one before it
                (30_000_000, "PUT", {"body_unknown": True}),
                (40_000_000, "POST", {}),
            ]
        ):
            writer.write(
                CaptureRecord(
                    id=str(i), ts_ns=ts, method=method, path="/delay/1", headers=[], extra=extra
                )
            )
    report = tmp_path / "r.json"
    done = subprocess.run(
        [
            sys.executable, "-c", "from hlthz.tools.cli import main; main()", "replay", "run",
            str(capture), "--target", url, "--report", str(report), "--no-progress",
            "--allow-writes",
        ],
        cwd=REPO, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    warnings = json.loads(report.read_text())["warnings"]
    assert any("1 body_truncated, 1 body_unknown" in w for w in warnings), warnings
    assert any(w.startswith("1 records are earlier than the one before") for w in warnings)
    shown = " ".join(done.stdout.split())  # the terminal table wraps long lines
    assert "1 body_truncated, 1 body_unknown" in shown  # shown in the terminal too


def test_run_replays_several_captures_merged_by_time(tmp_path: Path, target: object) -> None:
    url = target.url  # type: ignore[attr-defined]
    # Two instances' captures, interleaved in time: /delay/1 from one, /json/N from the other.
    write_capture(tmp_path / "shop-1.jsonl", [(i * 0.02, "GET", "/delay/1") for i in range(20)])
    write_capture(
        tmp_path / "shop-2.jsonl", [(0.01 + i * 0.02, "GET", f"/json/{i}") for i in range(20)]
    )
    report = tmp_path / "r.json"
    done = subprocess.run(
        [
            sys.executable, "-c", "from hlthz.tools.cli import main; main()", "replay", "run",
            str(tmp_path / "shop-*.jsonl"), "--target", url, "--report", str(report),
            "--no-progress",
        ],
        cwd=REPO, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    data = json.loads(report.read_text())
    assert data["summary"]["requests"] == 40
    assert {r["route"]: r["requests"] for r in data["routes"]} == {
        "GET /delay/{id}": 20,
        "GET /json/{id}": 20,
    }
    assert not any("earlier than the one before" in w for w in data["warnings"])  # merged


def test_an_interleaved_warm_up_leaves_out_the_same_requests_on_both_sides(
    tmp_path: Path, target: object
) -> None:
    # Blocks of 10 replayed twice: the second side of the block that straddles 0.51 s would be
    # past the warm-up while its first side is not. Both sides must leave out the same requests,
    # or their samples hold different requests and cannot be paired.
    url = target.url  # type: ignore[attr-defined]
    capture = write_capture(
        tmp_path / "c.jsonl", [(i * 0.02, "GET", f"/delay/{1 + i % 3}") for i in range(60)]
    )
    report = tmp_path / "r.json"
    done = subprocess.run(
        [
            sys.executable, "-c", "from hlthz.tools.cli import main; main()", "replay", "run",
            str(capture), "--target", url, "--baseline", url, "--report", str(report),
            "--no-progress", "--warmup", "0.51",
        ],
        cwd=REPO, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    data = json.loads(report.read_text())
    sides = [data["summary"], data["baseline"]["summary"]]
    warm = [side["skipped_by_reason"].get("warmup", 0) for side in sides]
    # Block 0 (both passes by 0.38 s) and the first 6 of block 1, whose first pass (the
    # candidate's) starts at 0.4 s and whose second starts at 0.6 s.
    assert warm == [16, 16], warm
    assert sides[0]["samples"]["digest"] == sides[1]["samples"]["digest"]
    assert sides[0]["requests"] == sides[1]["requests"] == 44
