"""Property tests of each parser of user input, in-process: whatever the bytes, the parser
returns or raises an :class:`hlthz.errors.HlthzError` (or the ``ValueError`` its contract
names), never anything else, and bounded-size errors stay one line."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hlthz.errors import HlthzError
from hlthz.inputs import excerpt, json_field, parse_json, parse_yaml
from hlthz.net import parse_host_port, parse_http_url, request_target

FAST = settings(
    max_examples=150,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)

_yaml_text = st.one_of(
    st.text(max_size=300),
    st.lists(
        st.sampled_from(
            [
                "a:",
                " b:",
                "  - ",
                "&x ",
                "*x",
                "[",
                "]",
                "{",
                "}",
                ",",
                ".inf",
                "1e300",
                "\n",
                "'",
                '"',
                "!!binary ",
                "? ",
                "<<: *x",
                "---",
                "9" * 50,
                "\t",
                "#",
                ": ",
                "\x00",
            ]
        ),
        max_size=60,
    ).map("".join),
)


@FAST
@given(text=_yaml_text)
def test_parse_yaml_returns_or_raises_one_line(text: str) -> None:
    try:
        doc = parse_yaml(text, source="f.yaml")
    except HlthzError as exc:
        assert "\n" not in str(exc)
        assert str(exc).startswith("f.yaml")
    else:
        assert doc.source == "f.yaml"


@FAST
@given(data=st.binary(max_size=200))
def test_parse_yaml_bytes_never_crash(data: bytes) -> None:
    try:
        parse_yaml(data, source="f.yaml")
    except HlthzError as exc:
        assert "\n" not in str(exc)


_json_text = st.lists(
    st.sampled_from(
        [
            "{",
            "}",
            "[",
            "]",
            ",",
            ":",
            '"a"',
            "1",
            "-0",
            "1e400",
            "NaN",
            "Infinity",
            "9" * 30,
            "true",
            "null",
            '"\\ud800"',
            " ",
            "\n",
        ]
    ),
    max_size=80,
).map("".join)


@FAST
@given(text=st.one_of(_json_text, st.text(max_size=200)))
def test_parse_json_returns_strict_values_or_raises_one_line(text: str) -> None:
    try:
        value = parse_json(text, source="f.json")
    except HlthzError as exc:
        assert "\n" not in str(exc)
        return
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, float):
            assert item == item and abs(item) != float("inf")
        elif isinstance(item, int) and not isinstance(item, bool):
            assert abs(item) < 2**63


def test_json_depth_and_yaml_aliases_are_bounded() -> None:
    with pytest.raises(HlthzError, match="nested more than 64"):
        parse_json("[" * 100_000 + "]" * 100_000, source="f")
    # The limit exactly, with and without brackets inside strings (parse_json counts brackets
    # before it walks the value: a string full of them must not change the verdict).
    deepest: list = []
    for _ in range(63):
        deepest = [deepest]
    assert parse_json("[" * 64 + "]" * 64, source="f") == deepest
    with pytest.raises(HlthzError, match="nested more than 64"):
        parse_json("[" * 65 + "]" * 65, source="f")
    assert parse_json('{"a": "' + "[{" * 100 + '"}', source="f") == {"a": "[{" * 100}
    with pytest.raises(HlthzError, match="nested more than 64"):
        parse_json('["' + "[" * 100 + '", ' + "[" * 64 + "]" * 64 + "]", source="f")
    bomb = 'a: &a ["x","x","x","x","x","x","x","x","x"]\n' + "".join(
        f"{n}: &{n} [{', '.join(['*' + p] * 9)}]\n"
        for p, n in zip("abcdefgh", "bcdefghi", strict=True)
    )
    with pytest.raises(HlthzError, match="aliases expand"):
        parse_yaml(bomb, source="f")
    with pytest.raises(HlthzError, match="refers to a node that contains it"):
        parse_yaml("a: &a [*a]\n", source="f")
    with pytest.raises(HlthzError, match="f:2: a: defined twice"):
        parse_yaml("a: 1\na: 2\n", source="f")


@FAST
@given(value=st.one_of(st.text(), st.integers(), st.floats(), st.binary()))
def test_excerpt_is_short_and_one_line(value: object) -> None:
    shown = excerpt(value)
    assert "\n" not in shown and "\r" not in shown
    assert len(shown) < 120


@FAST
@given(
    doc=st.recursive(
        st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=5)),
        lambda kids: st.one_of(
            st.lists(kids, max_size=3), st.dictionaries(st.sampled_from("abc"), kids, max_size=3)
        ),
        max_leaves=10,
    ),
    keys=st.lists(st.one_of(st.sampled_from("abc"), st.integers(-2, 2)), max_size=3),
    kind=st.sampled_from([str, int, float, dict, list, (str, type(None))]),
)
def test_json_field_returns_the_kind_or_raises_value_error(
    doc: object, keys: list[str | int], kind: type | tuple[type, ...]
) -> None:
    try:
        value = json_field(doc, *keys, kind=kind, where="x")
    except ValueError as exc:
        assert str(exc).startswith("x") or not keys
        return
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if float in kinds and isinstance(value, int):
        return
    assert isinstance(value, kinds) or (value is None and type(None) in kinds)


@FAST
@given(text=st.text(max_size=80))
def test_net_parsers_raise_only_their_errors(text: str) -> None:
    for parse in (parse_host_port, parse_http_url):
        try:
            parse(text, what="--x")  # type: ignore[operator]
        except HlthzError as exc:
            assert "\n" not in str(exc)
    request_target(text)  # never raises (hlthz.net's promise)


@settings(
    max_examples=60,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=list(HealthCheck),
)
@given(data=st.binary(max_size=400), kind=st.sampled_from(["gor", "har", "nginx", "hlthz"]))
def test_importers_raise_only_hlthz_errors(
    tmp_path_factory: pytest.TempPathFactory, data: bytes, kind: str
) -> None:
    from hlthz.replay.capture.sources import iter_records

    prefix = {
        "gor": b"1 a 1796205689341316000 0\n",
        "har": b'{"log": {"entries": [',
        "hlthz": b'{"hlthz_capture":1}\n',
        "nginx": b"",
    }[kind]
    path: Path = tmp_path_factory.mktemp("imp") / f"f.{kind}"
    path.write_bytes(prefix + data)
    try:
        for _ in iter_records(path, format=kind):
            pass
    except HlthzError as exc:
        assert "\n" not in str(exc)
