"""ReplayPlan: one typed, checked object from the CLI to the engine's child and its workers."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from hlthz.errors import ConfigError, PlanError
from hlthz.replay import ReplayPlan, ScheduleOptions
from hlthz.replay.plan import parse_header
from hlthz.tools.cli.replay_run import option_of
from tests.replay.conftest import hlthz, write_capture

SECRET = "Bearer s3cr3t-token"
TARGET = "http://127.0.0.1:9"

_TCHAR = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.!#$%&'*+^`|~"
_TOKEN = st.text(_TCHAR, min_size=1, max_size=20)
_VALUE = st.text(st.characters(blacklist_categories=("Cc", "Cs")), max_size=40)
_POSITIVE = st.floats(min_value=1e-6, max_value=1e9, allow_nan=False, allow_infinity=False)
_SEGMENT = st.text("abcdefghijklmnopqrstuvwxyz0123456789-_", min_size=1, max_size=8)

schedules = st.builds(
    ScheduleOptions,
    speed=_POSITIVE,
    rate=st.none() | _POSITIVE,
    duration=st.none() | _POSITIVE,
    loop=st.booleans(),
    max_gap=st.none() | st.floats(min_value=0, max_value=1e6, allow_nan=False),
    allow_writes=st.booleans(),
)
plans = st.builds(
    ReplayPlan,
    capture=st.lists(_SEGMENT, min_size=1, max_size=4).map(lambda parts: Path("/".join(parts))),
    target=st.tuples(
        st.sampled_from(["http", "https"]),
        st.sampled_from(["127.0.0.1", "localhost", "[::1]"]),
        st.integers(1, 65535),
        st.sampled_from(["", "/base", "/a/b"]),
    ).map(lambda t: f"{t[0]}://{t[1]}:{t[2]}{t[3]}"),
    format=st.sampled_from(["auto", "hlthz", "gor", "har", "nginx"]),
    schedule=schedules,
    headers=st.lists(st.tuples(_TOKEN, _VALUE), max_size=4).map(tuple),
    timeout=_POSITIVE,
    concurrency=st.integers(1, 10**6),
    workers=st.integers(0, 64),
    remote_workers=st.just(0),
    master_bind=st.none() | st.sampled_from(["127.0.0.1:0", "0.0.0.0:5557", "[::1]:80"]),
    name=st.none() | _SEGMENT,
    progress=st.booleans(),
    metrics_port=st.none() | st.integers(1, 65535),
    insecure=st.booleans(),
    routes=st.lists(_SEGMENT.map(lambda s: f"/{s}/{{id}}"), max_size=3).map(tuple),
)


@given(plans)
def test_json_round_trip(plan: ReplayPlan) -> None:
    text = plan.to_json()
    assert ReplayPlan.from_json(text) == plan
    assert json.loads(text)["hlthz_plan"] == 1


def test_defaults_are_a_plan_and_text_paths_are_paths() -> None:
    plan = ReplayPlan(capture="prod.jsonl", target=TARGET)  # type: ignore[arg-type]
    assert plan.capture == Path("prod.jsonl") and plan.run_name == "prod"
    assert plan.schedule == ScheduleOptions() and plan.headers == () and not plan.progress
    assert ReplayPlan(Path("x.jsonl.gz"), TARGET, timeout=3).timeout == 3.0


@pytest.mark.parametrize(
    ("changes", "field", "problem"),
    [
        ({"timeout": 0}, "timeout", "must be > 0 seconds, got 0"),
        ({"timeout": float("nan")}, "timeout", "must be a finite number, got nan"),
        ({"timeout": "10"}, "timeout", "must be a number, got '10'"),
        ({"concurrency": 0}, "concurrency", "must be >= 1, got 0"),
        ({"concurrency": True}, "concurrency", "must be an integer, got True"),
        ({"workers": -1}, "workers", "must be >= 0, got -1"),
        ({"metrics_port": 70000}, "metrics_port", "must be 1..65535, got 70000"),
        ({"target": "ftp://x"}, "target", "'ftp://x': give an absolute http:// or https:// URL"),
        ({"target": "http://a b"}, "target", "'http://a b': contains whitespace"),
        ({"master_bind": "nohost"}, "master_bind", "'nohost': give HOST:PORT"),
        ({"remote_workers": 1}, "master_bind", "needed when remote workers are expected"),
        ({"format": "xml"}, "format", "'xml': choose one of auto, hlthz"),
        ({"routes": ("no-slash",)}, "routes", "route template 'no-slash': must start with '/'"),
        ({"name": ""}, "name", "must be a non-empty line of text"),
        ({"capture": ""}, "capture", "must be a file path, got ''"),
        ({"progress": "yes"}, "progress", "must be true or false, got 'yes'"),
    ],
)
def test_errors_name_the_field(changes: dict[str, Any], field: str, problem: str) -> None:
    with pytest.raises(PlanError) as raised:
        ReplayPlan(**{"capture": Path("c.jsonl"), "target": TARGET, **changes})
    assert raised.value.field == field
    assert raised.value.problem.startswith(problem), raised.value.problem
    assert str(raised.value).startswith(f"{field}: {problem}")
    assert "\n" not in str(raised.value) and len(str(raised.value)) < 200


@pytest.mark.parametrize(
    ("field", "option"),
    [
        ("timeout", "--timeout"),
        ("schedule.max_gap", "--max-gap"),
        ("max_gap", "--max-gap"),
        ("master_bind", "--master-bind"),
        ("headers", "--header"),
        ("report", "--report"),
        ("metrics_port", "--metrics-port"),
    ],
)
def test_the_cli_names_its_options(field: str, option: str) -> None:
    assert option_of(field) == option


def test_cli_errors_name_options_and_library_errors_name_fields(tmp_path: Path) -> None:
    capture = write_capture(tmp_path / "c.jsonl", [(0.0, "GET", "/")])
    for args, line in [
        (["--timeout", "0"], "--timeout must be > 0 seconds, got 0"),
        (["--speed", "0"], "--speed must be > 0, got 0"),
        (["--max-gap", "-1"], "--max-gap must be >= 0 seconds, got -1"),
        (["--remote-workers", "1"], "--master-bind needed when remote workers are expected"),
    ]:
        done = hlthz("replay", "run", str(capture), "--target", TARGET, *args)
        assert done.returncode == 2 and "Traceback" not in done.stderr
        assert done.stderr.startswith(f"hlthz: error: {line}"), done.stderr
    with pytest.raises(PlanError, match=r"^timeout: must be > 0 seconds, got 0$"):
        ReplayPlan(capture, TARGET, timeout=0)


@pytest.mark.parametrize(
    "headers",
    [
        ((f"Authorization {SECRET}", "x"),),  # a name with a space: the token is in it
        (("Authorization", f"{SECRET}\r\nX-Injected: 1"),),
        (("Authorization", SECRET, "extra"),),
        ((b"Authorization", SECRET),),
        (f"Authorization: {SECRET}",),
    ],
)
def test_header_errors_never_show_a_value(headers: Any) -> None:
    with pytest.raises(PlanError) as raised:
        ReplayPlan(Path("c.jsonl"), TARGET, headers=headers)
    assert raised.value.field == "headers" and "s3cr3t" not in str(raised.value)


def test_header_text_parses_and_its_errors_never_show_it(tmp_path: Path) -> None:
    assert parse_header(f"Authorization: {SECRET}") == ("Authorization", SECRET)
    assert parse_header("X-Debug:") == ("X-Debug", "")
    for text in (f"Authorization {SECRET}", f": {SECRET}", f"Bad Name: {SECRET}"):
        with pytest.raises(PlanError) as raised:
            parse_header(text, index=2)
        assert str(raised.value).startswith("headers: #2: write it as 'Name: value'")
        assert "s3cr3t" not in str(raised.value)
    capture = write_capture(tmp_path / "c.jsonl", [(0.0, "GET", "/")])
    done = hlthz("replay", "run", str(capture), "--target", TARGET, "--header", f"Auth {SECRET}")
    assert done.returncode == 2 and "s3cr3t" not in done.stderr + done.stdout
    assert done.stderr.startswith("hlthz: error: --header #1: write it as 'Name: value'")


def test_repr_hides_header_values() -> None:
    plan = ReplayPlan(Path("c.jsonl"), TARGET, headers=(("Authorization", SECRET), ("X-Off", "")))
    assert "s3cr3t" not in repr(plan)
    assert "('Authorization', '<hidden>')" in repr(plan) and "('X-Off', '')" in repr(plan)


_DOC = {"hlthz_plan": 1, "capture": "c", "target": TARGET}


@pytest.mark.parametrize(
    ("document", "field"),
    [
        ({**_DOC, "hlthz_plan": 2}, "hlthz_plan"),
        ({**_DOC, "hlthz_plan": True}, "hlthz_plan"),
        ({"hlthz_plan": 1, "target": TARGET}, "capture"),
        ({**_DOC, "surprise": 1}, "surprise"),
        ({**_DOC, "schedule": {"speed": 0}}, "schedule.speed"),
        ({**_DOC, "schedule": {"shard": 1}}, "schedule.shard"),
        ({**_DOC, "headers": [["A"]]}, "headers"),
        ({**_DOC, "capture": 5}, "capture"),
        ([], "plan"),
    ],
)
def test_from_json_checks_every_field(document: Any, field: str) -> None:
    with pytest.raises(PlanError) as raised:
        ReplayPlan.from_json(json.dumps(document))
    assert raised.value.field == field


def test_from_json_refuses_what_is_not_json() -> None:
    for text in ("{", "[" * 100_000, b"\xff\xfe"):
        with pytest.raises(ConfigError, match=r"^replay plan: not valid JSON"):
            ReplayPlan.from_json(text)
