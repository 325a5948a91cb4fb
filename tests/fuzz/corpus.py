# ruff: noqa: E501 (a corpus of literal hostile inputs: long lines keep each input whole)
"""The hostile inputs: a deterministic list of :class:`Case`, one command each.

Every case is a command line of ``hlthz`` (``{d}`` stands for the case's own folder, where its
files are written) that must end in exit 0 (the input is acceptable) or exit 2 with exactly one
stderr line ``hlthz: error: ...``: never a traceback, never more than the memory limit, never a
hang. ``area`` groups the cases for the table; ``owner="gate"`` marks cases that reach the release
gate's code (replay run/compare/diff and reports).
Large inputs are built lazily (``Content`` callables) so listing the cases is cheap.
"""

from __future__ import annotations

import base64
import gzip
import json
from collections.abc import Callable
from dataclasses import dataclass, field

Content = bytes | Callable[[], bytes]


@dataclass(frozen=True)
class Case:
    """One command on hostile input; ``files`` are written into ``{d}`` first."""

    id: str
    area: str
    argv: tuple[str, ...]
    files: tuple[tuple[str, Content], ...] = ()
    owner: str = "hostile"
    heavy: bool = False  # big files or long runs: only in the full run (make fuzz)

    def materialize(self) -> list[tuple[str, bytes]]:
        return [(name, body() if callable(body) else body) for name, body in self.files]


# --------------------------------------------------------------------------------------------
# YAML: thresholds files (alerts generate, dashboards generate)

_HOSTILE_VALUES: tuple[tuple[str, str], ...] = (
    ("inf", ".inf"),
    ("neg-inf", "-.inf"),
    ("nan", ".nan"),
    ("1e300", "1e300"),
    ("neg-1e300", "-1e300"),
    ("int400", "9" * 400),
    ("int5000", "9" * 5000),
    ("neg", "-1"),
    ("zero", "0"),
    ("empty", "''"),
    ("null", "null"),
    ("list", "[1, 2]"),
    ("map", "{a: 1}"),
    ("bool", "true"),
    ("hex", "0x10"),
    ("sexagesimal", "1:30:00"),
    ("date", "2001-12-14"),
    ("binary", "!!binary aGVsbG8="),
    ("python-tag", "!!python/object:os.system ls"),
    ("crlf", '"a\\r\\nb"'),
    ("nul", '"a\\0b"'),
    ("dur-huge", "99999999999999999999999999y"),
    ("dur-300y", "300y"),
    ("dur-11y", "99999999999y"),
    ("dur-ms", "1ms"),
    ("long-1m", "'" + "x" * 1_000_000 + "'"),
    ("selector-bad", "'job=='"),
    ("set", "!!set {a, b}"),
)

_KEYS: tuple[tuple[str, str], ...] = (
    ("selector", "selector: {v}\n"),
    ("scrape_interval", "scrape_interval: {v}\n"),
    ("rate_window", "rate_window: {v}\n"),
    ("min_request_rate", "min_request_rate: {v}\n"),
    ("bucket", "buckets:\n  request_duration_seconds: [0.1, {v}]\n"),
    ("threshold", "alerts:\n  critical:\n    latency_p95: {{threshold: {v}, for: 5m}}\n"),
    ("for", "alerts:\n  critical:\n    error_rate: {{threshold: 0.05, for: {v}}}\n"),
    ("slo-window", "slo: {{objective: 0.999, window: {v}}}\n"),
    ("slo-objective", "slo: {{objective: {v}, window: 30d}}\n"),
    ("link", "links: {{runbook_url: {v}, dashboard_url: 'http://x/{{dashboard_uid}}'}}\n"),
    ("routing", "routing: {{critical: {{receiver: hlthz-page, group_wait: {v}}}}}\n"),
)


def _alias_bomb_lists() -> bytes:
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for prev, name in zip("abcdefgh", "bcdefghi", strict=True):
        lines.append(f"{name}: &{name} [{', '.join(['*' + prev] * 9)}]")
    return ("\n".join(lines) + "\nselector: *i\n").encode()


def _alias_bomb_maps() -> bytes:
    # About 900 bytes: nine levels of mappings of nine aliases each, under a known key.
    lines = ["x0: &x0 {a: 1, b: 2, c: 3, d: 4, e: 5, f: 6, g: 7, h: 8, i: 9}"]
    for level in range(1, 9):
        items = ", ".join(f"{k}: *x{level - 1}" for k in "abcdefghi")
        lines.append(f"x{level}: &x{level} {{{items}}}")
    return ("version: 1\nroutes: *x8\n" + "\n".join(f"# {n}" for n in range(0)) + "\n").encode() + (
        "\n".join(lines) + "\n"
    ).encode()


def _yaml_documents() -> list[tuple[str, Content]]:
    docs: list[tuple[str, Content]] = [
        ("valid-min", b"version: 1\n"),
        ("empty", b""),
        ("comment-only", b"# nothing\n"),
        ("top-list", b"- 1\n- 2\n"),
        ("top-scalar", b"hello\n"),
        ("alias-bomb-lists", _alias_bomb_lists),
        ("alias-bomb-maps", _alias_bomb_maps),
        ("recursive-alias", b"version: 1\nroutes: &a {x: *a}\n"),
        ("recursive-alias-list", b"version: 1\nsignals: &a [*a]\n"),
        ("deep-flow-3000", b"version: 1\nroutes: " + b"[" * 3000 + b"]" * 3000 + b"\n"),
        ("deep-map-3000", b"version: 1\nroutes: " + b"{a: " * 3000 + b"1" + b"}" * 3000 + b"\n"),
        (
            "deep-block-200",
            b"version: 1\nroutes:\n"
            + b"".join(b"  " * (i + 1) + b"k%d:\n" % i for i in range(200))
            + b"  " * 201
            + b"v\n",
        ),
        ("duplicate-key", b"version: 1\nselector: ''\nselector: 'job=\"a\"'\n"),
        ("duplicate-nested", b"version: 1\nalerts:\n  critical: {}\n  critical: {}\n"),
        ("utf16-bom", "version: 1\nselector: ''\n".encode("utf-16")),
        ("utf16-le-nobom", "version: 1\n".encode("utf-16-le")),
        ("utf32", "version: 1\n".encode("utf-32")),
        ("latin1", b"version: 1\nselector: 'job=\"caf\xe9\"'\n"),
        ("nul-bytes", b"version: 1\n\x00\x00\n"),
        ("control-chars", b"version: 1\nselector: '\x07\x1b[31m'\n"),
        ("tabs", b"version: 1\n\tselector: ''\n"),
        ("multi-doc", b"version: 1\n---\nversion: 1\n"),
        (
            "merge-key",
            b"version: 1\nx: &x {for: 5m}\nalerts:\n  critical:\n"
            b"    error_rate: {<<: *x, threshold: 0.1}\n",
        ),
        ("complex-key", b"version: 1\n? [a, b]\n: c\n"),
        ("python-tag", b"!!python/object/apply:os.system ['true']\n"),
        ("unclosed-quote", b"version: 1\nselector: 'abc\n"),
        ("unclosed-flow", b"version: 1\nbuckets: [1, 2\n"),
        ("huge-20mb", lambda: b"version: 1\n" + b"# padding\n" * 2_000_000),
        ("huge-key", lambda: b"version: 1\n" + b"k" * 5_000_000 + b": 1\n"),
        (
            "many-keys",
            lambda: (
                b"version: 1\nroutes:\n"
                + b"".join(b"  'GET /r%d': {}\n" % i for i in range(50_000))
            ),
        ),
        ("selector-50mb", lambda: b"version: 1\nselector: 'job=\"" + b"a" * 50_000_000 + b"'\n"),
        ("selector-newline", b'version: 1\nselector: "job=\\"a\\"\\nsecret=1"\n'),
        ("anchor-unknown", b"version: 1\nselector: *nope\n"),
        ("int-key", b"version: 1\n1: 2\n"),
        ("null-key", b"version: 1\n~: 2\n"),
        ("float-key-inf", b"version: 1\n.inf: 2\n"),
        ("services-bad", b"version: 1\nservices: {shop: {selector: 'job==', alerts: 7}}\n"),
        (
            "service-for-300y",
            b"version: 1\nservices: {shop: {alerts: {critical: "
            b"{error_rate: {threshold: 0.1, for: 300y}}}}}\n",
        ),
        (
            "receivers-bad",
            b"version: 1\nreceivers: [{name: x, webhook_configs: [{url: 'http://a:secret@h/'}]}, {name: x}]\n",
        ),
        ("routes-bad-key", b"version: 1\nroutes: {'GET\r\n/x': {latency_p95: 1}}\n"),
    ]
    for key, template in _KEYS:
        for name, value in _HOSTILE_VALUES:
            docs.append((f"{key}={name}", ("version: 1\n" + template.format(v=value)).encode()))
    return docs


def _yaml_cases() -> list[Case]:
    cases = []
    heavy = {"huge-20mb", "huge-key", "many-keys", "selector-50mb"}
    for name, body in _yaml_documents():
        for cmd in ("alerts", "dashboards"):
            cases.append(
                Case(
                    f"{cmd}-generate/{name}",
                    "thresholds",
                    (cmd, "generate", "--config", "{d}/hlthz.yaml", "--out", "{d}/out"),
                    (("hlthz.yaml", body),),
                    heavy=name in heavy or "long-1m" in name,
                )
            )
    for target in ("/dev/zero", "/dev/urandom", "/", "/proc/self/environ", "{d}/missing.yaml"):
        for cmd in ("alerts", "dashboards"):
            cases.append(
                Case(
                    f"{cmd}-generate/config={target}",
                    "thresholds",
                    (cmd, "generate", "--config", target, "--out", "{d}/out"),
                )
            )
    for name, value in (
        ("newline", "/var/lib/grafana\nevil: 1"),
        ("crlf", "/var/lib/grafana\r\nx"),
        ("quote", "/var/'lib\"/x: y"),
        ("empty", ""),
        ("relative", "dash"),
        ("nul", "/a\x01b"),
        ("long", "/" + "a" * 100_000),
        ("yaml-tag", "!!python/object:x"),
        ("hash", "/a #b"),
    ):
        cases.append(
            Case(
                f"dashboards-generate/provisioning-path={name}",
                "output-escaping",
                ("dashboards", "generate", "--out", "{d}/out", "--provisioning-path", value),
            )
        )
    # Other YAML readers: an Alertmanager fragment beside the project, and alerts check's lint.
    for name, body in _yaml_documents()[:12]:
        cases.append(
            Case(
                f"alerts-generate/alertmanager-fragment/{name}",
                "thresholds",
                ("alerts", "generate", "--config", "{d}/hlthz.yaml", "--out", "{d}/out"),
                (("hlthz.yaml", b"version: 1\nalertmanager: am.yml\n"), ("am.yml", body)),
            )
        )
    return cases


# --------------------------------------------------------------------------------------------
# Captures (import, inspect, export)

_HEADER = b'{"hlthz_capture":1,"created":"2026-01-01T00:00:00.000+00:00","source":"fuzz"}\n'
_RECORD = {
    "id": "r1",
    "ts_ns": 1_796_205_689_341_316_000,
    "method": "GET",
    "path": "/api/products?page=2",
    "headers": [["Host", "127.0.0.1"]],
    "body_b64": "",
    "session": None,
    "status": 200,
    "duration_ns": 7_000_000,
}

_JSON_VALUES: tuple[tuple[str, str], ...] = (
    ("str", '"x"'),
    ("empty-str", '""'),
    ("int", "7"),
    ("neg", "-1"),
    ("float", "1.5"),
    ("big-int", "9" * 25),
    ("int5000", "9" * 5000),
    ("1e300", "1e300"),
    ("1e400", "1e400"),
    ("nan", "NaN"),
    ("inf", "Infinity"),
    ("true", "true"),
    ("null", "null"),
    ("list", "[1]"),
    ("pairs-bad", '[["a"]]'),
    ("pairs-int", "[[1, 2]]"),
    ("obj", '{"a": 1}'),
    ("crlf", '"GET\\r\\nX-Injected: 1"'),
    ("space", '"GET /evil HTTP/1.1\\r\\n\\r\\nGET"'),
    ("nul", '"a\\u0000b"'),
    ("surrogate", '"\\ud800"'),
    ("ipv6-bad", '"http://[::1/x"'),
    ("abs-url", '"http://user:pw@example.com/x?token=abc"'),
    ("no-slash", '"api"'),
    ("2**63", str(2**63)),
    ("2**64", str(2**64)),
    ("year-9999", "253402300800000000000"),
    ("deep", "[" * 5000 + "]" * 5000),
)


def _record_line(key: str, raw_value: str) -> bytes:
    base = json.dumps(_RECORD, separators=(",", ":"))
    head, _, _ = base.partition(f'"{key}":')
    rest = base[len(head) + len(key) + 3 :]
    # Drop the old value: up to the next top-level comma or the closing brace.
    depth, end = 0, 0
    for end, char in enumerate(rest):  # noqa: B007 (end is used after the loop)
        if char in "[{":
            depth += 1
        elif char in "]}":
            if depth == 0:
                break
            depth -= 1
        elif char == "," and depth == 0:
            break
    return f'{head}"{key}":{raw_value}{rest[end:]}\n'.encode()


def _gzip_bomb(size: int, unit: bytes = b"\0") -> Callable[[], bytes]:
    def build() -> bytes:
        chunk = unit * (1 << 20)
        out = gzip.compress(b"", compresslevel=9)[:0]
        comp = __import__("zlib").compressobj(9, 8, 31)
        parts = [comp.compress(chunk) for _ in range(size >> 20)]
        parts.append(comp.flush())
        return out + b"".join(parts)

    return build


def _capture_files() -> list[tuple[str, str, Content]]:
    """``(name, file name, content)`` of hostile captures."""
    files: list[tuple[str, str, Content]] = [
        ("valid", "c.jsonl", _HEADER + _record_line("id", '"r1"')),
        ("empty", "c.jsonl", b""),
        ("header-only", "c.jsonl", _HEADER),
        ("header-v2", "c.jsonl", b'{"hlthz_capture":2}\n'),
        ("header-list", "c.jsonl", b"[1,2]\n"),
        ("header-deep", "c.jsonl", b'{"hlthz_capture":1,"x":' + b"[" * 5000 + b"]" * 5000 + b"}\n"),
        ("header-nan", "c.jsonl", b'{"hlthz_capture":NaN}\n'),
        ("header-int5000", "c.jsonl", b'{"hlthz_capture":' + b"1" * 5000 + b"}\n"),
        ("not-utf8", "c.jsonl", _HEADER + b'{"id":"\xff\xfe"}\n'),
        ("utf16", "c.jsonl", (_HEADER + _record_line("id", '"r1"')).decode().encode("utf-16")),
        ("torn-tail", "c.jsonl", _HEADER + _record_line("id", '"r1"')[:30]),
        ("record-not-object", "c.jsonl", _HEADER + b"[1,2,3]\n"),
        ("record-deep", "c.jsonl", _HEADER + b"[" * 100_000 + b"]" * 100_000 + b"\n"),
        ("gzip-corrupt", "c.jsonl.gz", gzip.compress(_HEADER)[:-12] + b"garbage" * 10),
        ("gzip-bomb-zeros", "c.jsonl.gz", _gzip_bomb(1 << 30)),
        ("gzip-bomb-newlines", "c.jsonl.gz", _gzip_bomb(1 << 30, b"\n")),
        (
            "gzip-bomb-after-header",
            "c.jsonl.gz",
            lambda: gzip.compress(_HEADER) + _gzip_bomb(1 << 30, b" ")(),
        ),
        ("line-100mb", "c.jsonl", lambda: _HEADER + b'{"id":"' + b"a" * 100_000_000 + b'"}\n'),
        ("line-100mb-nonl", "c.jsonl", lambda: _HEADER + b"a" * 100_000_000),
        ("many-lines", "c.jsonl", lambda: _HEADER + _record_line("id", '"r"') * 200_000),
    ]
    for key in (
        "id",
        "ts_ns",
        "method",
        "path",
        "headers",
        "body_b64",
        "session",
        "status",
        "duration_ns",
    ):
        for name, value in _JSON_VALUES:
            files.append((f"{key}={name}", "c.jsonl", _HEADER + _record_line(key, value)))
    return files


def _capture_cases() -> list[Case]:
    cases = []
    heavy_names = {"line-100mb", "line-100mb-nonl", "many-lines", "gzip-bomb-after-header"}
    for name, filename, body in _capture_files():
        # Every capture through import and inspect; the field mutations through export too.
        commands = [
            ("import", ("replay", "import", f"{{d}}/{filename}", "-o", "{d}/out.jsonl")),
            ("inspect", ("replay", "inspect", f"{{d}}/{filename}", "--json")),
            (
                "export",
                ("replay", "export", f"{{d}}/{filename}", "--format", "gor", "-o", "{d}/out.gor"),
            ),
        ]
        for cmd, argv in commands:
            if (
                cmd == "export"
                and "=" in name
                and not name.startswith(("method", "path", "headers", "ts_ns"))
            ):
                continue
            cases.append(
                Case(
                    f"{cmd}/capture/{name}",
                    "capture",
                    argv,
                    ((filename, body),),
                    heavy=name in heavy_names or (name.startswith("gzip-bomb") and cmd != "import"),
                )
            )
    return cases


# --------------------------------------------------------------------------------------------
# HAR


def _har(entry: dict[str, object] | None = None, **overrides: object) -> bytes:
    base: dict[str, object] = {
        "startedDateTime": "2026-01-01T00:00:00.000Z",
        "time": 12.5,
        "request": {
            "method": "POST",
            "url": "http://127.0.0.1:8000/api/login?x=1",
            "headers": [{"name": "Content-Type", "value": "application/json"}],
            "postData": {"mimeType": "application/json", "text": '{"a":1}'},
        },
        "response": {"status": 200},
        "timings": {"wait": 7.5},
    }
    if entry is not None:
        base = entry
    doc = {"log": {"version": "1.2", "entries": [base]}}
    for path, value in overrides.items():
        target: object = doc
        keys = path.split("__")
        for key in keys[:-1]:
            target = target[int(key)] if isinstance(target, list) else target[key]  # type: ignore[index]
        if isinstance(target, list):
            target[int(keys[-1])] = value
        else:
            target[keys[-1]] = value  # type: ignore[index]
    return json.dumps(doc).encode()


_HAR_WRONG: tuple[tuple[str, object], ...] = (
    ("str", "x"),
    ("int", 7),
    ("float", 1e300),
    ("list", [1]),
    ("obj", {"a": 1}),
    ("null", None),
    ("bool", True),
    ("neg", -5),
    ("big", 2**70),
)

_HAR_FIELDS = (
    "log",
    "log__entries",
    "log__entries__0",
    "log__entries__0__request",
    "log__entries__0__request__url",
    "log__entries__0__request__method",
    "log__entries__0__request__headers",
    "log__entries__0__request__postData",
    "log__entries__0__request__postData__text",
    "log__entries__0__request__postData__encoding",
    "log__entries__0__request__postData__mimeType",
    "log__entries__0__request__postData__params",
    "log__entries__0__response",
    "log__entries__0__response__status",
    "log__entries__0__startedDateTime",
    "log__entries__0__timings",
    "log__entries__0__timings__wait",
    "log__entries__0__time",
    "log__entries__0___id",
)


def _har_files() -> list[tuple[str, Content]]:
    files: list[tuple[str, Content]] = [("valid", _har())]
    for field_path in _HAR_FIELDS:
        for name, value in _HAR_WRONG:
            files.append(
                (
                    f"{field_path.replace('log__entries__0__', 'e.')}={name}",
                    _har(**{field_path: value}),
                )
            )
    for name, value in (
        ("ipv6-bad", "http://[::1/x"),
        ("crlf", "http://h/a\r\nX: y"),
        ("no-scheme", "/relative"),
        ("port-99999", "http://h:99999/"),
        ("long", "http://h/" + "a" * 1_000_000),
    ):
        files.append((f"e.request.url={name}", _har(**{"log__entries__0__request__url": value})))
    for name, value in (
        ("crlf", "GET\r\nX: y"),
        ("space", "GET /x HTTP/1.1"),
        ("empty", ""),
        ("unicode", "GËT"),
    ):
        files.append(
            (f"e.request.method={name}", _har(**{"log__entries__0__request__method": value}))
        )
    for name, value in (
        ("year-1", "0001-01-01T00:00:00Z"),
        ("year-9999", "9999-12-31T23:59:59.999Z"),
        ("month-13", "2026-13-01T00:00:00Z"),
        ("empty", ""),
        ("offset-huge", "2026-01-01T00:00:00+99:00"),
        ("year-1900", "1900-01-01T00:00:00Z"),
        ("year-2300", "2300-01-01T00:00:00Z"),
    ):
        files.append(
            (f"e.startedDateTime={name}", _har(**{"log__entries__0__startedDateTime": value}))
        )
    files += [
        ("headers-list-of-str", _har(**{"log__entries__0__request__headers": ["a", "b"]})),
        (
            "headers-name-int",
            _har(**{"log__entries__0__request__headers": [{"name": 1, "value": 2}]}),
        ),
        (
            "headers-crlf",
            _har(**{"log__entries__0__request__headers": [{"name": "X\r\nY", "value": "1\r\n2"}]}),
        ),
        ("params-list-of-str", _har(**{"log__entries__0__request__postData": {"params": ["a"]}})),
        (
            "params-deep",
            _har(
                **{
                    "log__entries__0__request__postData": {
                        "params": [{"name": [1], "value": {"a": 1}}]
                    }
                }
            ),
        ),
        (
            "base64-bad",
            _har(**{"log__entries__0__request__postData": {"text": "%%%", "encoding": "base64"}}),
        ),
        ("not-json", b"{not json"),
        ("deep", b'{"log": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"),
        ("nan", b'{"log": {"entries": [{"time": NaN}]}}'),
        ("int5000", b'{"log": {"entries": [{"time": ' + b"1" * 5000 + b"}]}}"),
        ("utf16", _har().decode().encode("utf-16")),
        ("latin1", b'{"log": {"entries": [], "x": "\xe9"}}'),
        ("gzip-bomb", _gzip_bomb(1 << 30, b" ")),
        (
            "huge-string",
            lambda: _har(**{"log__entries__0__request__postData__text": "a" * 200_000_000}),
        ),
    ]
    return files


def _har_cases() -> list[Case]:
    cases = []
    for name, body in _har_files():
        for cmd, argv in (
            ("import", ("replay", "import", "{d}/t.har", "-o", "{d}/out.jsonl")),
            ("inspect", ("replay", "inspect", "{d}/t.har")),
        ):
            if (
                cmd == "inspect"
                and "=" in name
                and not name.startswith(("e.startedDateTime", "e.request.url"))
            ):
                continue
            cases.append(
                Case(
                    f"{cmd}/har/{name}",
                    "har",
                    argv,
                    (("t.har", body),),
                    heavy=name in ("huge-string", "gzip-bomb"),
                )
            )
    return cases


# --------------------------------------------------------------------------------------------
# GoReplay


_SEP = "\n🐵🙈🙉\n".encode()


def _gor(*messages: bytes) -> bytes:
    return b"".join(m + _SEP for m in messages)


def _gor_files() -> list[tuple[str, Content]]:
    ok = b"1 abc 1796205689341316000 0\nGET /x HTTP/1.1\r\nHost: h\r\n\r\n"
    files: list[tuple[str, Content]] = [("valid", _gor(ok))]
    for name, target in (
        ("ipv6-bad", b"http://[::1/x"),
        ("ipv6-ok", b"http://[::1]:80/x"),
        ("port-99999", b"http://h:99999/x"),
        ("port-abc", b"http://h:abc/x"),
        ("star", b"*"),
        ("empty", b""),
        ("crlf-in-target", b"/a\rb"),
        ("long", b"/" + b"a" * 1_000_000),
        ("latin1", b"/caf\xe9"),
        ("nul", b"/a\x00b"),
    ):
        files.append(
            (
                f"target={name}",
                _gor(b"1 a 1796205689341316000 0\nGET " + target + b" HTTP/1.1\r\nHost: h\r\n\r\n"),
            )
        )
    for name, ts in (
        ("huge", b"99999999999999999999999999"),
        ("neg", b"-5"),
        ("float", b"1.5e18"),
        ("abc", b"abc"),
        ("2**63", str(2**63).encode()),
        ("year-2300", b"10413792000000000000"),
        ("zero", b"0"),
        ("missing", b""),
    ):
        files.append((f"ts={name}", _gor(b"1 a " + ts + b" 0\nGET / HTTP/1.1\r\n\r\n")))
    for name, head in (
        ("type-9", b"9 a 1796205689341316000 0"),
        ("type-abc", b"x a 1796205689341316000 0"),
        ("no-fields", b""),
        ("many-fields", b"1 a 1 2 3 4 5 6"),
        ("latency-huge", b"1 a 1796205689341316000 " + b"9" * 5000),
    ):
        files.append((f"header={name}", _gor(head + b"\nGET / HTTP/1.1\r\n\r\n")))
    for name, msg in (
        ("method-crlf", b"GE\rT / HTTP/1.1\r\n\r\n"),
        ("no-version", b"GET /\r\n\r\n"),
        ("cl-huge", b"POST / HTTP/1.1\r\nContent-Length: 99999999999999999999\r\n\r\nabc"),
        ("cl-neg", b"POST / HTTP/1.1\r\nContent-Length: -5\r\n\r\nabc"),
        ("cl-abc", b"POST / HTTP/1.1\r\nContent-Length: abc\r\n\r\nabc"),
        (
            "chunked-bad",
            b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n",
        ),
        (
            "chunked-huge",
            b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffffff\r\nabc\r\n0\r\n\r\n",
        ),
        ("header-no-colon", b"GET / HTTP/1.1\r\nbroken\r\n\r\n"),
        ("header-latin1", b"GET / HTTP/1.1\r\nX: caf\xe9\r\n\r\n"),
        ("many-headers", b"GET / HTTP/1.1\r\n" + b"X: y\r\n" * 100_000 + b"\r\n"),
        (
            "gzip-body-bomb",
            b"POST / HTTP/1.1\r\nContent-Encoding: gzip\r\nContent-Type: application/json\r\n\r\n",
        ),
    ):
        files.append((f"msg={name}", _gor(b"1 a 1796205689341316000 0\n" + msg)))
    files.append(
        ("response-status-abc", _gor(ok, b"2 abc 1796205689441316000 0\nHTTP/1.1 abc OK\r\n\r\n"))
    )
    files.append(
        (
            "response-status-huge",
            _gor(ok, b"2 abc 1796205689441316000 0\nHTTP/1.1 99999999999999 OK\r\n\r\n"),
        )
    )
    files.append(("response-before-request", _gor(ok, b"2 abc 1 0\nHTTP/1.1 200 OK\r\n\r\n")))
    files.append(
        (
            "no-separator-100mb",
            lambda: b"1 a 1796205689341316000 0\nGET / HTTP/1.1\r\nX: " + b"a" * 100_000_000,
        )
    )
    files.append(("gzip-bomb", _gzip_bomb(1 << 30, b"a")))
    files.append(("utf16", _gor(ok).decode("utf-8", "replace").encode("utf-16")))
    files.append(("binary", bytes(range(256)) * 100))
    return files


def _gor_cases() -> list[Case]:
    cases = []
    for name, body in _gor_files():
        for cmd, argv in (
            ("import", ("replay", "import", "{d}/t.gor", "--format", "gor", "-o", "{d}/out.jsonl")),
            ("inspect", ("replay", "inspect", "{d}/t.gor", "--format", "gor")),
        ):
            cases.append(
                Case(
                    f"{cmd}/gor/{name}",
                    "gor",
                    argv,
                    (("t.gor", body),),
                    heavy=name in ("no-separator-100mb", "gzip-bomb"),
                )
            )
    return cases


# --------------------------------------------------------------------------------------------
# nginx / Apache access logs

_COMBINED = (
    b'127.0.0.1 - - [02/Dec/2026:07:54:10 +0000] "GET /api/x?a=1 HTTP/1.1" 200 12 "-" "curl/8"'
)


def _nginx_files() -> list[tuple[str, Content]]:
    files: list[tuple[str, Content]] = [("valid", _COMBINED + b"\n")]
    for name, line in (
        ("month-13", _COMBINED.replace(b"Dec", b"Xyz")),
        ("day-99", _COMBINED.replace(b"02/Dec", b"99/Dec")),
        ("year-99999", _COMBINED.replace(b"2026", b"99999")),
        ("tz-bad", _COMBINED.replace(b"+0000", b"+9999")),
        ("request-crlf", _COMBINED.replace(b"GET /api", b"GET\\x0d\\x0a /api")),
        ("request-ipv6", _COMBINED.replace(b"/api/x?a=1", b"http://[::1/x")),
        ("status-abc", _COMBINED.replace(b" 200 ", b" abc ")),
        ("status-huge", _COMBINED.replace(b" 200 ", b" 99999999999999999999 ")),
        ("escapes", _COMBINED.replace(b"/api/x", b"/\\xZZ\\x\\")),
        ("latin1", _COMBINED.replace(b"curl", b"caf\xe9")),
        ("extra-rt-nan", _COMBINED + b" nan"),
        ("extra-rt-inf", _COMBINED + b" inf"),
        ("extra-rt-1e300", _COMBINED + b" 1e300"),
        ("extra-rt-neg", _COMBINED + b" -5.000"),
        ("only-quotes", b'""""""""'),
        ("tls-handshake", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"),
        ("long-line", b"1" * 2_000_000),
    ):
        files.append((name, line + b"\n" + _COMBINED + b"\n"))
    for name, value in (
        ("msec-huge", '"msec": "1e300"'),
        ("msec-nan", '"msec": "nan"'),
        ("msec-neg", '"msec": -5'),
        ("msec-obj", '"msec": {"a": 1}'),
        ("time-bad", '"time_iso8601": "2026-13-99T99:99:99+00:00"'),
        ("request-list", '"request": [1]'),
        ("status-obj", '"status": {"a": 1}'),
        ("request-time-inf", '"request_time": "inf"'),
        ("request-time-1e400", '"request_time": 1e400'),
        ("int5000", '"status": ' + "1" * 5000),
        ("deep", '"x": ' + "[" * 5000 + "]" * 5000),
        ("nan-literal", '"request_time": NaN'),
    ):
        line = (
            '{"msec": "1796205689.341", "request": "GET /x HTTP/1.1", "status": "200", '
            + value
            + "}"
        )
        line = line.replace(
            '{"msec": "1796205689.341", ',
            '{"msec": "1796205689.341", ' if "msec" not in value else "{",
        )
        files.append((f"json-{name}", (line + "\n").encode() * 2))
    return files


_LOG_FORMATS: tuple[tuple[str, str], ...] = (
    ("unknown-var", "$nope $request"),
    ("regex-chars", "(((((( $request [[[["),
    ("dollar-alone", "$ $request $"),
    ("empty", ""),
    ("huge", "$request " * 10_000),
    ("no-request", "$remote_addr"),
    ("backslashes", "\\\\\\ $request \\"),
    ("json-escape", "escape=json $request"),
    ("newline", "$request\n$status"),
)


def _nginx_cases() -> list[Case]:
    cases = []
    for name, body in _nginx_files():
        for cmd, argv in (
            (
                "import",
                ("replay", "import", "{d}/access.log", "--format", "nginx", "-o", "{d}/out.jsonl"),
            ),
            ("inspect", ("replay", "inspect", "{d}/access.log", "--format", "nginx")),
        ):
            cases.append(Case(f"{cmd}/nginx/{name}", "nginx", argv, (("access.log", body),)))
    for name, fmt in _LOG_FORMATS:
        cases.append(
            Case(
                f"import/nginx/log-format={name}",
                "nginx",
                (
                    "replay",
                    "import",
                    "{d}/access.log",
                    "--format",
                    "nginx",
                    "--log-format",
                    fmt,
                    "-o",
                    "{d}/o.jsonl",
                ),
                (("access.log", _COMBINED + b"\n"),),
            )
        )
    return cases


# --------------------------------------------------------------------------------------------
# Option values and routes files


def _option_cases() -> list[Case]:
    cap = (("c.jsonl", _HEADER + _record_line("id", '"r1"')),)
    cases = []
    bad_hosts = (
        ":abc",
        "127.0.0.1:99999",
        "http://[::1",
        "[::1",
        "127.0.0.1:-1",
        "127.0.0.1:",
        "a b:80",
        "h:80\r\nX: y",
        "",
    )
    for value in bad_hosts:
        cases.append(
            Case(
                f"record/listen={value!r}",
                "options",
                (
                    "replay",
                    "record",
                    "--listen",
                    value,
                    "--upstream",
                    "http://127.0.0.1:1",
                    "-o",
                    "{d}/o.jsonl",
                    "--no-progress",
                ),
            )
        )
    for value in (
        "http://127.0.0.1:99999",
        ":abc",
        "http://[::1",
        "ftp://x",
        "http://h/\r\nX: y",
        "http://",
        "",
        "http://a:b@/",
    ):
        cases.append(
            Case(
                f"record/upstream={value!r}",
                "options",
                (
                    "replay",
                    "record",
                    "--listen",
                    "127.0.0.1:1",
                    "--upstream",
                    value,
                    "-o",
                    "{d}/o.jsonl",
                    "--no-progress",
                ),
            )
        )
    for option, values in (
        ("--sample", ("abc", "-1", "2", "nan", "inf", "1e400", "%", "150%", "")),
        ("--max-body", ("abc", "-1", "1e300GiB", "99999999999999999999999", "1.5", "")),
        ("--rotate-size", ("0", "-1", "1e300", "9" * 5000)),
        ("--sample-key", ("nothing", "header:", "cookie:\r\n", "query:x")),
        ("--include", ("", "\r\n", "GET", "[")),
        ("--method", ("", "G\r\nET", "GET GET")),
    ):
        for value in values:
            argv = ["replay", "import", "{d}/c.jsonl", "-o", "{d}/o.jsonl", option, value]
            if option == "--max-body":
                argv = [
                    "replay",
                    "record",
                    "--listen",
                    "127.0.0.1:1",
                    "--upstream",
                    "http://127.0.0.1:1",
                    "-o",
                    "{d}/o.jsonl",
                    option,
                    value,
                ]
            cases.append(Case(f"{argv[1]}/{option}={value[:20]!r}", "options", tuple(argv), cap))
    for value in ("0", "-1", "abc", "9" * 30):
        cases.append(
            Case(
                f"inspect/--top={value[:10]}",
                "options",
                ("replay", "inspect", "{d}/c.jsonl", "--top", value),
                cap,
            )
        )
    # --routes FILE: an OpenAPI document (YAML or JSON) or templates, one a line.
    for name, body in (
        ("yaml-bomb", _alias_bomb_lists),
        ("yaml-deep", b"paths: " + b"[" * 3000 + b"]" * 3000),
        ("json-deep", b'{"paths": ' + b"[" * 5000 + b"]" * 5000 + b"}"),
        ("json-nan", b'{"openapi": "3.0.0", "paths": NaN}'),
        ("paths-list", b'{"openapi": "3.0.0", "paths": [1]}'),
        ("paths-int-key", b"openapi: 3.0.0\npaths: {1: 2}\n"),
        ("utf16", "/api/{id}\n".encode("utf-16")),
        ("latin1", b"/caf\xe9/{id}\n"),
        ("template-bad", b"/api/{\n/{}{}{}\n/{a}{a}\n"),
        ("huge", lambda: b"/a\n" * 5_000_000),
    ):
        ext = "json" if name.startswith("json") or name == "paths-list" else "yaml"
        cases.append(
            Case(
                f"inspect/routes/{name}",
                "options",
                ("replay", "inspect", "{d}/c.jsonl", "--routes", f"{{d}}/routes.{ext}"),
                (*cap, (f"routes.{ext}", body)),
                heavy=name == "huge",
            )
        )
    for value in ("http://127.0.0.1:99999", ":abc", "http://[::1", "file:///etc/passwd"):
        cases.append(
            Case(
                f"init/from-metrics={value}", "options", ("init", "{d}/p", "--from-metrics", value)
            )
        )
    return cases


# --------------------------------------------------------------------------------------------
# Reports, compare, diff, replay run options: code the release-gate work owns.


def _report(**summary: object) -> bytes:
    pct = {"p50": 1, "p90": 1, "p95": 1, "p99": 1, "max": 1}
    doc: dict[str, object] = {
        "hlthz_report": 1,
        "summary": {
            "requests": 1,
            "errors": 0,
            "error_rate": 0.0,
            "skipped": 0,
            "duration_s": 1.0,
            "rps": 1.0,
            "latency_ms": pct,
            "service_time_ms": pct,
            "schedule_lag_ms": {"p50": 0, "p99": 0, "max": 0},
            **summary,
        },
        "routes": [],
    }
    return json.dumps(doc).encode()


def _gate_cases() -> list[Case]:
    cap = (("c.jsonl", _HEADER + _record_line("id", '"r1"')),)
    cases = []
    for value in (
        "http://127.0.0.1:99999",
        ":abc",
        "http://[::1",
        "http://h/\r\nX: y",
        "ftp://x",
        "",
    ):
        cases.append(
            Case(
                f"run/target={value!r}",
                "replay-run",
                ("replay", "run", "{d}/c.jsonl", "--target", value, "--no-progress"),
                cap,
                owner="gate",
            )
        )
    for option, value in (
        ("--metrics-port", "99999"),
        ("--metrics-port", "-1"),
        ("--speed", "nan"),
        ("--speed", "-1"),
        ("--speed", "inf"),
        ("--rate", "0"),
        ("--rate", "1e308"),
        ("--duration", "nan"),
        ("--max-gap", "-1"),
        ("--concurrency", "0"),
        ("--master-bind", ":abc"),
        ("--routes", "{d}/missing"),
    ):
        cases.append(
            Case(
                f"run/{option}={value}",
                "replay-run",
                (
                    "replay",
                    "run",
                    "{d}/c.jsonl",
                    "--target",
                    "http://127.0.0.1:1",
                    option,
                    value,
                    "--no-progress",
                ),
                cap,
                owner="gate",
            )
        )
    reports: list[tuple[str, Content]] = [
        ("valid", _report()),
        ("not-json", b"{"),
        ("deep", b'{"hlthz_report": 1, "x": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"),
        ("nan", b'{"hlthz_report": 1, "summary": {"requests": NaN}}'),
        ("int5000", b'{"hlthz_report": ' + b"1" * 5000 + b"}"),
        ("utf16", _report().decode().encode("utf-16")),
        ("requests-str", _report(requests="many")),
        ("latency-list", _report(latency_ms=[1])),
        ("routes-obj", json.dumps({"hlthz_report": 1, "summary": {}, "routes": {"a": 1}}).encode()),
        ("huge", lambda: b'{"hlthz_report": 1, "pad": "' + b"a" * 100_000_000 + b'"}'),
        ("empty", b""),
    ]
    for name, body in reports:
        cases.append(
            Case(
                f"compare/{name}",
                "report",
                ("replay", "compare", "{d}/base.json", "{d}/cand.json"),
                (("base.json", _report()), ("cand.json", body)),
                owner="gate",
                heavy=name == "huge",
            )
        )
        cases.append(
            Case(
                f"compare-html/{name}",
                "report",
                ("replay", "compare", "{d}/cand.json", "{d}/base.json", "--html", "{d}/g.html"),
                (("base.json", _report()), ("cand.json", body)),
                owner="gate",
                heavy=name == "huge",
            )
        )
    for gate in ("p95 >", "p95 > +10", "nonsense", "p95 > +1e400%", "p95 > nan%", "\r\n"):
        cases.append(
            Case(
                f"compare/fail-on={gate!r}",
                "report",
                ("replay", "compare", "{d}/base.json", "{d}/base.json", "--fail-on", gate),
                (("base.json", _report()),),
                owner="gate",
            )
        )
    return cases


def _dashboard_check_cases() -> list[Case]:
    cases = []
    for name, body in (
        ("not-json", b"{"),
        ("deep", b"[" * 100_000 + b"]" * 100_000),
        ("nan", b'{"panels": NaN}'),
        ("panels-str", b'{"uid": "x", "panels": "x"}'),
        ("panels-list-of-int", b'{"uid": "x", "panels": [1, 2]}'),
        ("utf16", '{"uid": "x"}'.encode("utf-16")),
        ("int5000", b'{"uid": ' + b"1" * 5000 + b"}"),
    ):
        cases.append(
            Case(
                f"dashboards-check/{name}",
                "dashboards-json",
                ("dashboards", "check", "--dir", "{d}/dash", "--no-drift"),
                (("dash/x.json", body),),
            )
        )
    return cases


def all_cases() -> list[Case]:
    """Every hostile case, in a stable order (ids are unique)."""
    cases = [
        *_yaml_cases(),
        *_capture_cases(),
        *_har_cases(),
        *_gor_cases(),
        *_nginx_cases(),
        *_option_cases(),
        *_dashboard_check_cases(),
        *_gate_cases(),
    ]
    seen: dict[str, int] = {}
    out = []
    for case in cases:
        n = seen.get(case.id, 0)
        seen[case.id] = n + 1
        out.append(
            case
            if n == 0
            else Case(f"{case.id}#{n}", case.area, case.argv, case.files, case.owner, case.heavy)
        )
    return out


def sample(cases: list[Case], per_area: int = 10) -> list[Case]:
    """A deterministic sample: ``per_area`` cases of each area spread evenly over it, light
    cases only (the release-gate cases included: reports, compare, replay run options)."""
    by_area: dict[str, list[Case]] = {}
    for case in cases:
        if not case.heavy:
            by_area.setdefault(case.area, []).append(case)
    picked = []
    for group in by_area.values():
        step = max(1, len(group) / per_area)
        picked += [group[int(i * step)] for i in range(min(per_area, len(group)))]
    return picked


_ = base64, field  # kept for generators that add encodings
