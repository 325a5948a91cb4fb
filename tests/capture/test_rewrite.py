"""Rewriting rules (hlthz.replay.capture.rewrite) and ``replay import``'s rewrite options."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import given
from hypothesis import strategies as st

from hlthz.errors import UsageError
from hlthz.replay import read_capture
from hlthz.replay.capture import CaptureRecord, CaptureWriter
from hlthz.replay.capture.rewrite import Rewrite
from hlthz.tools.cli import main


def _record(path: str = "/v1/users/42?utm_source=x&page=2", **kwargs: object) -> CaptureRecord:
    headers = kwargs.pop("headers", [("Host", "shop.prod.example.com"), ("Accept", "*/*")])
    return CaptureRecord(id="1", ts_ns=1, method="GET", path=path, headers=headers, **kwargs)  # type: ignore[arg-type]


def test_path_rules_use_goreplay_and_python_groups_in_order() -> None:
    rewrite = Rewrite(
        paths=[(r"^/v1/users/(?P<id>\d+)", "/v2/people/${id}"), (r"^/v2/(\w+)", r"/api/\1")]
    )
    out = rewrite.apply(_record())
    assert out.path == "/api/people/42?utm_source=x&page=2"  # the query is not the path's
    assert rewrite.stats.rewritten == 1
    unchanged = rewrite.apply(_record("/health"))
    assert unchanged.path == "/health" and rewrite.stats.seen == 2
    assert rewrite.stats.rewritten == 1


def test_query_drop_and_set_keep_order_and_separators() -> None:
    rewrite = Rewrite(set_query=[("page", "1"), ("api_key", "test")], drop_query=["utm_source"])
    assert rewrite.apply(_record()).path == "/v1/users/42?page=1&api_key=test"
    assert rewrite.apply(_record("/p?a=1;page=9;page=8")).path == "/p?a=1&page=1&api_key=test"
    assert rewrite.apply(_record("/p")).path == "/p?page=1&api_key=test"
    only_drop = Rewrite(drop_query=["utm_source"])
    assert only_drop.apply(_record("/p?utm_source=x")).path == "/p"


def test_header_rules_set_drop_and_rewrite() -> None:
    rewrite = Rewrite(
        header_rules=[("host", r"(.*)\.prod\.example\.com", "$1.staging.internal")],
        set_headers=[("Authorization", " Bearer fresh "), ("Accept", "")],
        drop_headers=["X-Trace"],
    )
    record = _record(
        headers=[
            ("Host", "shop.prod.example.com"),
            ("Authorization", "Bearer <redacted:1a2b>"),
            ("x-trace", "abc"),
            ("Accept", "*/*"),
        ]
    )
    assert rewrite.apply(record).headers == [
        ("Host", "shop.staging.internal"),
        ("Authorization", "Bearer fresh"),
    ]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"paths": [("(", "/x")]}, "--rewrite-path '(': not a valid regular expression"),
        ({"paths": [("^/a", "/b/$2")]}, "invalid group reference 2"),
        ({"paths": [("^/a", "/b/${nope}")]}, "unknown group name"),
        ({"set_query": [("a&b", "1")]}, "--set-query 'a&b': not a query parameter name"),
        ({"set_headers": [("Bad Name", "1")]}, "--set-header 'Bad Name': not a header name"),
        ({"set_headers": [("X-A", "1\r\nX-Injected: 1")]}, "control character"),
        ({"paths": [("x" * 2000, "/")]}, "longer than 1000 characters"),
    ],
)
def test_bad_rules_are_one_line_usage_errors(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(UsageError) as caught:
        Rewrite(**kwargs)  # type: ignore[arg-type]
    assert message in str(caught.value) and "\n" not in str(caught.value)


def test_a_rule_cannot_make_a_request_target_that_is_not_one() -> None:
    rewrite = Rewrite(paths=[("^/", "")])
    with pytest.raises(UsageError, match="must start with '/'"):
        rewrite.apply(_record("/x"))


@given(
    st.text(alphabet="/abc?=&;%", max_size=30).map(lambda s: "/" + s),
    st.lists(st.sampled_from(["a", "b", "c"]), max_size=3),
)
def test_query_edits_never_touch_the_path_and_dropped_names_are_gone(
    path: str, drop: list[str]
) -> None:
    out = Rewrite(drop_query=drop).apply(_record(path)).path
    assert out.partition("?")[0] == path.partition("?")[0]
    for part in out.partition("?")[2].split("&"):
        assert part.partition("=")[0] not in drop or part == ""


def test_import_rewrites_before_redaction(tmp_path: Path) -> None:
    src = tmp_path / "in.jsonl"
    with CaptureWriter(src, source="test") as writer:
        writer.write(_record("/v1/users/1?utm_source=a"))
        writer.write(_record("/health"))
    out = tmp_path / "out.jsonl"
    result = CliRunner().invoke(
        main,
        [
            "replay", "import", str(src), "-o", str(out),
            "--rewrite-path", "^/v1/(.*)", "/v2/$1",
            "--drop-query", "utm_source",
            "--set-header", "X-Api-Key: s3cr3t-value-from-the-rule",
        ],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "1 rewritten" not in result.output and "2 rewritten" in result.output
    records = list(read_capture(out))
    assert [r.path for r in records] == ["/v2/users/1", "/health"]
    # A header a rule sets goes through redaction like any other.
    assert b"s3cr3t" not in out.read_bytes()

    bad = CliRunner().invoke(
        main, ["replay", "import", str(src), "-o", str(tmp_path / "x.jsonl"),
               "--rewrite-path", "(", "/"]
    )  # fmt: skip
    assert bad.exit_code == 2
    assert "--rewrite-path '(': not a valid regular expression" in bad.output
    assert not (tmp_path / "x.jsonl").exists()


def test_merge_joins_per_worker_captures_in_time_order(tmp_path: Path) -> None:
    """``hlthz replay merge`` over two recorders' ``{pid}``-style files (interleaved times)."""
    for worker, offsets in (("101", (0, 2, 4)), ("202", (1, 3, 5))):
        with CaptureWriter(tmp_path / f"shop-{worker}.jsonl", source="test") as writer:
            for n in offsets:
                writer.write(
                    CaptureRecord(
                        id=str(n), ts_ns=1_000 + n, method="GET", path=f"/{n}", headers=[]
                    )
                )
    out = tmp_path / "merged.jsonl"
    result = CliRunner().invoke(
        main, ["replay", "merge", str(tmp_path / "shop-*.jsonl"), "-o", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert "merged 6 requests from 2 files" in result.output
    records = list(read_capture(out))
    assert [r.path for r in records] == [f"/{n}" for n in range(6)]
    assert len({r.id for r in records}) == 6  # ids from both files stay unique
    missing = CliRunner().invoke(
        main, ["replay", "merge", str(tmp_path / "none-*.jsonl"), "-o", str(tmp_path / "m.jsonl")]
    )
    assert missing.exit_code == 2 and "none-*.jsonl" in missing.output
