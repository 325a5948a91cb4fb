"""Addresses and URLs as users type them: one parser for every option (hlthz.net)."""

from __future__ import annotations

import pytest

from hlthz.errors import UsageError
from hlthz.net import format_host_port, parse_host_port, parse_http_url, request_target


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("127.0.0.1:8080", ("127.0.0.1", 8080)),
        (":8080", ("127.0.0.1", 8080)),
        ("[::1]:9", ("::1", 9)),
        ("0.0.0.0:65535", ("0.0.0.0", 65535)),
        ("example.internal:1", ("example.internal", 1)),
    ],
)
def test_host_port_forms(text: str, expected: tuple[str, int]) -> None:
    assert parse_host_port(text, what="--listen") == expected
    host, port = expected
    assert parse_host_port(format_host_port(host, port), what="x") == expected


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("8080", "give HOST:PORT"),
        ("host:99999", "give HOST:PORT"),
        ("host:0", "give HOST:PORT"),
        ("host:abc", "give HOST:PORT"),
        ("[::1:80", "unclosed '\\['"),
        ("::1:80", "in brackets"),
        ("host:80\r\nX: y", "control characters"),
        ("host :80", "whitespace"),
    ],
)
def test_host_port_mistakes_are_one_line_naming_the_option(text: str, problem: str) -> None:
    with pytest.raises(UsageError, match=rf"^--listen .*{problem}") as caught:
        parse_host_port(text, what="--listen")
    assert "\n" not in str(caught.value)


def test_port_zero_only_where_any_port_makes_sense() -> None:
    assert parse_host_port("0.0.0.0:0", what="--master-bind", allow_port_zero=True)[1] == 0


def test_http_url() -> None:
    url = parse_http_url("https://[::1]:8443/base/", what="--target")
    assert (url.scheme, url.host, url.port, url.base, url.tls) == (
        "https",
        "::1",
        8443,
        "/base",
        True,
    )
    assert url.host_port == "[::1]:8443"
    assert parse_http_url("http://api.internal", what="--target").port == 80


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("http://127.0.0.1:99999", "Port out of range"),
        ("http://127.0.0.1:abc", "Port could not be cast"),
        ("http://[::1", "Invalid IPv6 URL"),
        ("http://127.0.0.1:8000/\r\nX-Injected: 1", "control characters"),
        ("ftp://host/", "absolute http"),
        ("127.0.0.1:8000", "absolute http"),
        ("http://127.0.0.1:0", "port 0"),
    ],
)
def test_http_url_mistakes(text: str, problem: str) -> None:
    with pytest.raises(UsageError, match=rf"^--target .*{problem}"):
        parse_http_url(text, what="--target")


def test_a_huge_argument_is_not_echoed_whole() -> None:
    with pytest.raises(UsageError) as caught:
        parse_http_url("x" * 1_000_000, what="--target")
    assert len(str(caught.value)) < 300


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ("/a?b=1", "/a?b=1"),
        ("a", "/a"),
        ("", "/"),
        ("/a#frag", "/a"),
        ("http://alice:secret@host:8/u?x=1", "/u?x=1"),
        ("HTTPS://host", "/"),
        ("//not-a-host/x", "//not-a-host/x"),
        ("*", "*"),
        ("http://[x/a?b", "/a?b"),
        ("http://user:pa@ss@host?q=1#f", "/?q=1"),
    ],
)
def test_request_target(target: str, expected: str) -> None:
    assert request_target(target) == expected
