"""The redaction corpus (tests/fixtures/capture/redaction_corpus.py, 130+ vectors) through every
recorder under a real server and every importer: no file written (captures, rotated parts,
temporary files, exports) and no command output holds any secret, in any form a reader could
undo (plain, URL-encoded, JSON-escaped, base64, inside a gzip or zlib body).

Each path first proves the secrets reached it (the app received them, the input file holds
them), so a vector that never arrived cannot pass for a redacted one.
"""

from __future__ import annotations

import base64
import importlib.util
import json
import subprocess
import sys
import urllib.parse
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import flask
import pytest
from prometheus_client import CollectorRegistry
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from hlthz.procs import ManagedProcess, free_port, port_open
from hlthz.replay import CaptureRecord, CaptureWriter, read_capture, recording
from hlthz.replay.capture.format import iter_file_chunks
from hlthz.replay.capture.formats.http1 import parse_message
from hlthz.replay.capture.inputs import merged_records
from hlthz.replay.capture.redact import Redactor
from tests.capture.conftest import (
    FIXTURES,
    HLTHZ,
    record_proxy,
    request,
    serve_asgi,
    serve_wsgi,
)
from tests.conftest import need_binary


def _corpus() -> ModuleType:
    spec = importlib.util.spec_from_file_location("corpus", FIXTURES / "redaction_corpus.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["corpus"] = module  # dataclasses look the module up while building the class
    spec.loader.exec_module(module)
    return module


CORPUS = _corpus()
VECTORS: list[Any] = CORPUS.VECTORS
# Importers keep the origin-form target (hlthz.net.request_target): userinfo never gets in.
_TARGET = ("userinfo-absolute-form",)


def vectors(via: str) -> list[Any]:
    return [v for v in VECTORS if via in v.via]


def forms(secret: str) -> set[bytes]:
    """Every spelling of ``secret`` a reader could turn back into it."""
    out = {
        secret,
        urllib.parse.quote(secret),
        urllib.parse.quote(secret, safe=""),
        urllib.parse.quote_plus(secret),
        json.dumps(secret)[1:-1],
    }
    raw = secret.encode()
    if len(raw) >= 9:  # base64 at each of the 3 alignments: the groups wholly inside it
        for shift in range(3):
            encoded = base64.b64encode(b"\0" * shift + raw).decode()
            first, last = -(-shift // 3), (shift + len(raw)) // 3
            core = encoded[first * 4 : last * 4]
            out |= {core, core.replace("+", "-").replace("/", "_")}
    return {f.encode() for f in out if f}


def unpacked(data: bytes) -> bytes:
    """``data`` and every layer of gzip/zlib inside it."""
    layers = [data]
    for _ in range(4):
        try:
            inner = zlib.decompress(layers[-1], 47)  # gzip or zlib header
        except zlib.error:
            break
        layers.append(inner)
    return b"\n".join(layers)


def haystacks(root: Path) -> Iterator[tuple[str, bytes]]:
    """Every file under ``root``: its bytes, gunzipped, and each capture record's body."""
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        raw = path.read_bytes()
        yield str(path), raw
        plain = b"".join(iter_file_chunks(path)) if raw[:2] == b"\x1f\x8b" else raw
        yield f"{path} (decoded)", plain
        if plain.startswith(b'{"hlthz_capture"'):
            for record in read_capture(path, skip_invalid=True, warn=lambda _: None):
                yield f"{path} record {record.id}", unpacked(record.body)


def leaks(places: Iterable[tuple[str, bytes]], corpus: list[Any]) -> list[str]:
    found = []
    for where, data in places:
        for vector in corpus:
            for secret in vector.secrets:
                if any(form in data for form in forms(secret)):
                    found.append(f"{vector.name}: {secret!r} in {where}")
    return found


def reached(data: bytes, corpus: list[Any]) -> list[str]:
    """Vectors whose secrets are *not* all in ``data`` (what a path received or read)."""
    return [v.name for v in corpus if not all(any(f in data for f in forms(s)) for s in v.secrets)]


def record_of(vector: Any, ts_ns: int) -> CaptureRecord:
    msg = parse_message(vector.raw("shop.test"))
    return CaptureRecord(vector.name, ts_ns, msg.method, vector.target, msg.headers, msg.body)


# -- the policy, record by record (fast) ------------------------------------------------------


def test_corpus_is_large_and_every_vector_is_redacted() -> None:
    assert len(VECTORS) >= 100
    assert len({v.name for v in VECTORS}) == len(VECTORS)
    redactor = Redactor()
    found = []
    for n, vector in enumerate(VECTORS):
        record = record_of(vector, n)
        raw = json.dumps(record.to_dict()).encode() + unpacked(record.body)
        assert not reached(raw, [vector]), vector.name  # the secret is in the request
        redacted, _ = redactor.redact(record)
        out = json.dumps(redacted.to_dict()).encode() + unpacked(redacted.body)
        found += leaks([(vector.name, out)], [vector])
    assert found == []


# -- the recorders, under real servers ---------------------------------------------------------


@pytest.mark.slow
def test_wsgi_middleware_with_rotation(tmp_path: Path) -> None:
    received: list[bytes] = []
    app = flask.Flask("corpus")

    @app.route("/", defaults={"rest": ""}, methods=["GET", "POST", "PUT"])
    @app.route("/<path:rest>", methods=["GET", "POST", "PUT"])
    def anything(rest: str) -> str:
        env = flask.request.environ
        headers = "\n".join(f"{k}: {v}" for k, v in env.items() if k.startswith("HTTP_"))
        received.append(
            f"{env.get('RAW_URI')}\n{headers}".encode() + unpacked(flask.request.get_data())
        )
        return "ok"

    out = tmp_path / "out" / "wsgi.jsonl"
    out.parent.mkdir()
    wrapped = recording(app.wsgi_app, out, registry=CollectorRegistry(), max_bytes=8 * 1024)
    app.wsgi_app = wrapped  # type: ignore[method-assign]
    sent = vectors("wsgi")
    with serve_wsgi(app) as base:
        assert set(CORPUS.send(base, sent)) == {200}
    wrapped.close()
    # werkzeug, like gunicorn and nginx, drops header names with an underscore.
    assert reached(b"\n".join(received), sent) == ["x-api-key-underscores"]
    files = sorted(out.parent.iterdir())
    assert len(files) > 3  # rotated: every part is checked
    assert sum(len(list(read_capture(f))) for f in files) == len(sent)
    assert leaks(haystacks(out.parent), sent) == []


@pytest.mark.slow
def test_asgi_middleware_gzip(tmp_path: Path) -> None:
    received: list[bytes] = []

    async def echo(request: Request) -> PlainTextResponse:
        headers = "\n".join(f"{k}: {v}" for k, v in request.headers.items())
        received.append(f"{request.url}\n{headers}".encode() + unpacked(await request.body()))
        return PlainTextResponse("ok")

    app = Starlette(routes=[Route("/{rest:path}", echo, methods=["GET", "POST", "PUT"])])
    out = tmp_path / "out" / "asgi.jsonl.gz"
    out.parent.mkdir()
    sent = vectors("asgi")
    with serve_asgi(recording(app, out, registry=CollectorRegistry())) as base:
        CORPUS.send(base, sent)
    # The absolute-form request is answered 404 by the router, never seen by the endpoint.
    assert reached(b"\n".join(received), [v for v in sent if "absolute" not in v.name]) == []
    assert len(list(read_capture(out))) == len(sent)
    assert leaks(haystacks(out.parent), sent) == []


@pytest.mark.slow
def test_recording_proxy(upstream: tuple[str, type], tmp_path: Path) -> None:
    out = tmp_path / "out" / "proxy.jsonl"
    out.parent.mkdir()
    sent = vectors("proxy")
    with record_proxy(upstream[0], out, "--rotate-size", "32KiB") as (url, stderr):
        CORPUS.send(url, sent)
    files = sorted(out.parent.iterdir())
    assert sum(len(list(read_capture(f))) for f in files) == len(sent)
    assert leaks(haystacks(out.parent), sent) == []
    assert leaks([("proxy stderr", "\n".join(stderr).encode())], sent) == []
    # The bodies it could not redact are counted and said (binary, br, zstd, ...).
    assert "request bodies HLTHZ cannot redact were dropped" in stderr[-1]


# -- the importers ---------------------------------------------------------------------------------


def _import(src: list[Path], out: Path, *args: str) -> subprocess.CompletedProcess[bytes]:
    proc = subprocess.run(
        [*HLTHZ, "replay", "import", *map(str, src), "-o", str(out), *args],
        capture_output=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr.decode()
    return proc


def _check_import(
    src: list[Path],
    folder: Path,
    corpus: list[Any],
    *args: str,
    log_format: str | None = None,
    may_miss: Iterable[str] = (),
) -> int:
    """The secrets of ``corpus`` are in ``src`` as the importer reads it (all but
    ``may_miss``); the import, its inspection and its export to GoReplay hold none. Returns how
    many vectors reached the importer."""
    baseline = b"\n".join(
        json.dumps(r.to_dict()).encode() + unpacked(r.body)
        for r in merged_records(src, log_format=log_format)
    )
    missing = set(reached(baseline, corpus))
    assert missing <= set(may_miss), sorted(missing)
    folder.mkdir(parents=True)
    out = folder / f"{src[0].stem}.jsonl"
    extra = ["--log-format", log_format] if log_format else []
    outputs = [_import(src, out, *extra, *args)]
    assert len(list(read_capture(out))) == len(list(merged_records(src, log_format=log_format)))
    outputs.append(
        subprocess.run([*HLTHZ, "replay", "inspect", str(out), "--json"], capture_output=True)
    )
    outputs.append(
        subprocess.run(
            [*HLTHZ, "replay", "export", str(out), "-o", str(folder / f"{out.stem}.gor")],
            capture_output=True,
        )
    )
    assert all(p.returncode == 0 for p in outputs)
    places = [(f"output {n}", p.stdout + p.stderr) for n, p in enumerate(outputs)]
    assert leaks([*haystacks(folder), *places], corpus) == []
    return len(corpus) - len(missing)


def test_har_from_mitmdump(tmp_path: Path) -> None:
    _check_import([FIXTURES / "corpus.har"], tmp_path / "out", vectors("har"))


def test_har_as_a_browser_exports_it(tmp_path: Path) -> None:
    """Every vector as a DevTools HAR: text bodies as text, others base64, header names as
    sent (one ends in a space)."""
    entries = []
    for n, vector in enumerate(vectors("browser-har")):
        msg = parse_message(vector.raw("shop.test"))
        target = vector.target if "://" in vector.target else f"https://shop.test{vector.target}"
        try:
            post = {"mimeType": "", "text": msg.body.decode("utf-8")}
        except UnicodeDecodeError:
            post = {
                "mimeType": "",
                "text": base64.b64encode(msg.body).decode(),
                "encoding": "base64",
            }
        entries.append(
            {
                "startedDateTime": f"2026-01-02T03:04:{n // 10:02d}.{n % 10}00Z",
                "time": 5,
                "request": {
                    "method": vector.method,
                    "url": target,
                    "headers": [{"name": k, "value": v} for k, v in vector.headers],
                    **({"postData": post} if msg.body else {}),
                },
                "response": {"status": 200},
            }
        )
    har = tmp_path / "browser.har"
    har.write_text(json.dumps({"log": {"version": "1.2", "entries": entries}}))
    _check_import([har], tmp_path / "out", vectors("browser-har"), may_miss=_TARGET)


def test_goreplay_file(tmp_path: Path) -> None:
    sep = "\n🐵🙈🙉\n".encode()
    corpus = vectors("gor")
    gor = tmp_path / "corpus.gor"
    gor.write_bytes(
        b"".join(
            f"1 {n:024x} {1_700_000_000_000_000_000 + n * 1_000_000} 0\n".encode()
            + v.raw("shop.test")
            + sep
            for n, v in enumerate(corpus)
        )
    )
    _check_import([gor], tmp_path / "out", corpus, may_miss=_TARGET)


def test_unredacted_capture_reimported(tmp_path: Path) -> None:
    corpus = vectors("hlthz")
    capture = tmp_path / "raw.jsonl.gz"
    with CaptureWriter(capture, source="test") as writer:
        for n, vector in enumerate(corpus):
            writer.write(record_of(vector, 1_700_000_000_000_000_000 + n))
    _check_import([capture], tmp_path / "out", corpus)


@dataclass
class CorpusLogs:
    combined: Path
    custom: Path
    json: Path
    custom_format: str


@pytest.fixture(scope="module")
def corpus_logs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[CorpusLogs]:
    """A real nginx in front of an echo server, logging every corpus header and the body."""
    nginx = need_binary("nginx")
    prefix = tmp_path_factory.mktemp("corpus-nginx")
    (prefix / "logs").mkdir()
    names = sorted({n.strip().lower().replace("-", "_") for v in VECTORS for n, _ in v.headers})
    fields = " ".join(f'"$http_{n}"' for n in names)
    custom = (
        f'$remote_addr [$time_local] "$request" $status $request_time $msec {fields} '
        '"$request_body"'
    )
    json_format = (
        '{"time":"$time_iso8601","request":"$request","status":$status,'
        + "".join(f'"http_{n}":"$http_{n}",' for n in names)
        + '"request_body":"$request_body"}'
    )
    app_port, port = free_port(), free_port()
    conf = prefix / "nginx.conf"
    conf.write_text(
        f"""
daemon off;
worker_processes 1;
pid {prefix}/nginx.pid;
error_log {prefix}/logs/error.log warn;
events {{ worker_connections 64; }}
http {{
    log_format custom '{custom}';
    log_format jsonl escape=json '{json_format}';
    access_log {prefix}/logs/combined.log combined;
    access_log {prefix}/logs/custom.log custom;
    access_log {prefix}/logs/json.log jsonl;
    client_body_temp_path {prefix}/body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
    server {{
        listen 127.0.0.1:{port};
        location / {{ proxy_pass http://127.0.0.1:{app_port}; }}
    }}
}}
"""
    )
    echo = ManagedProcess(
        "echo",
        [sys.executable, str(FIXTURES / "fixture_traffic.py"), "serve", str(app_port)],
        log_path=prefix / "echo.log",
        ready=lambda: port_open(app_port),
    )
    proxy = ManagedProcess(
        "nginx",
        [nginx, "-p", str(prefix), "-c", str(conf)],
        log_path=prefix / "nginx.log",
        ready=lambda: port_open(port),
    )
    with echo, proxy:
        CORPUS.send(f"http://127.0.0.1:{port}", vectors("nginx"))
        # nginx logs a request after answering it: one more request proves the last is in.
        request(f"http://127.0.0.1:{port}", "GET", "/flush")
    logs = prefix / "logs"
    yield CorpusLogs(logs / "combined.log", logs / "custom.log", logs / "json.log", custom)


# nginx drops header names with an underscore (ignore_invalid_headers): never logged.
_NGINX_DROPS = (*_TARGET, "x-api-key-underscores")


@pytest.mark.slow
def test_nginx_logs(corpus_logs: CorpusLogs, tmp_path: Path) -> None:
    corpus = vectors("nginx")
    # The custom and the JSON log hold every header and the body.
    _check_import([corpus_logs.json], tmp_path / "json", corpus, may_miss=_NGINX_DROPS)
    _check_import(
        [corpus_logs.custom],
        tmp_path / "custom",
        corpus,
        log_format=corpus_logs.custom_format,
        may_miss=_NGINX_DROPS,
    )
    # combined holds the request line, Referer and User-Agent: what it holds must not leak.
    held = _check_import(
        [corpus_logs.combined], tmp_path / "combined", corpus, may_miss=[v.name for v in corpus]
    )
    assert held >= 25


@pytest.mark.slow
def test_import_errors_never_echo_a_secret(corpus_logs: CorpusLogs, tmp_path: Path) -> None:
    """A log line that does not match, a GoReplay message that is not HTTP, a HAR entry with a
    bad field: each is one line, exit 2, quoting nothing of the input."""
    corpus = vectors("nginx")
    lines = corpus_logs.custom.read_bytes().splitlines()
    secret_line = next(line for line in lines if b"q-token-v035" in line)
    broken = tmp_path / "broken.log"
    broken.write_bytes(b"\n".join([lines[0], secret_line.rstrip(b'"'), lines[2]]) + b"\n")
    gor = tmp_path / "broken.gor"
    bad_request = corpus[0].raw("h").replace(b"HTTP/1.1", b"HTP/1.1")
    gor.write_bytes(b"1 aa 1 0\n" + bad_request + "\n🐵🙈🙉\n".encode())
    har = tmp_path / "broken.har"
    entry = {
        "startedDateTime": corpus[0].secrets[0],
        "request": {"method": "GET", "url": "https://x/?token=t0k-h4r", "headers": []},
    }
    har.write_text(json.dumps({"log": {"entries": [entry]}}))
    for args in (
        [str(broken), "--log-format", corpus_logs.custom_format],
        [str(broken)],
        [str(gor), "--format", "gor"],
        [str(har)],
    ):
        proc = subprocess.run(
            [*HLTHZ, "replay", "import", *args, "-o", str(tmp_path / "never.jsonl")],
            capture_output=True,
            timeout=60,
        )
        assert proc.returncode == 2, proc.stderr
        assert len(proc.stderr.decode().strip().splitlines()) == 1, proc.stderr
        assert leaks([("stderr", proc.stderr + proc.stdout)], corpus) == []
        assert b"t0k-h4r" not in proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["broken.gor", "broken.har", "broken.log"]
