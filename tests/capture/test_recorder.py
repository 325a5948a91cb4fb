"""The recording middleware under real servers: Flask on werkzeug (WSGI), Starlette and FastAPI
on uvicorn (ASGI). Sampling, rules, body cap, drops, and failures that must not hurt the app."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import flask
import pytest
from fastapi import FastAPI
from prometheus_client import CollectorRegistry
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route

from hlthz.procs import wait_until
from hlthz.replay import CaptureRecord, CaptureRecorder, Redactor, read_capture, recording
from hlthz.replay.capture.middleware import ASGIRecorder, WSGIRecorder
from hlthz.replay.capture.redact import RedactionStats
from tests.capture.conftest import request, serve_asgi, serve_wsgi


def _flask_app() -> flask.Flask:
    app = flask.Flask("shop")

    @app.get("/api/products/<int:pid>")
    def product(pid: int) -> dict[str, int]:
        return {"id": pid}

    @app.post("/api/orders")
    def order() -> tuple[dict[str, int], int]:
        return {"bytes": len(flask.request.get_data())}, 201

    @app.get("/boom")
    def boom() -> str:
        raise RuntimeError("boom")

    @app.get("/metrics")
    def metrics() -> str:
        return "ok"

    return app


def _starlette_app() -> Starlette:
    async def echo(request: Request) -> JSONResponse:
        body = await request.body()
        return JSONResponse({"bytes": len(body)}, status_code=201)

    async def hello(request: Request) -> PlainTextResponse:
        return PlainTextResponse("hi " + request.path_params["name"])

    async def ignore(request: Request) -> PlainTextResponse:
        return PlainTextResponse("not read", status_code=422)  # never reads the body

    return Starlette(
        routes=[
            Route("/echo", echo, methods=["POST"]),
            Route("/hello/{name}", hello),
            Route("/ignore", ignore, methods=["POST"]),
        ]
    )


def _value(registry: CollectorRegistry, name: str, **labels: str) -> float:
    value = registry.get_sample_value(name, labels)
    return 0.0 if value is None else value


def _written(recorder: CaptureRecorder) -> int:
    recorder.flush()
    return recorder.written


def _records(path: Path) -> list[CaptureRecord]:
    return list(read_capture(path))


def test_wsgi_flask_records_requests(tmp_path: Path) -> None:
    app = _flask_app()
    registry = CollectorRegistry()
    out = tmp_path / "c.jsonl"
    wrapped = recording(app.wsgi_app, out, registry=registry)
    assert isinstance(wrapped, WSGIRecorder)
    app.wsgi_app = wrapped  # type: ignore[method-assign]
    with serve_wsgi(app) as base:
        assert request(base, "GET", "/api/products/7?x=1")[0] == 200
        status, body, _ = request(
            base, "POST", "/api/orders", body=b'{"qty": 2}', headers={"Content-Type": "text/json"}
        )
        assert (status, json.loads(body)) == (201, {"bytes": 10})
        assert request(base, "GET", "/boom")[0] == 500
        assert request(base, "GET", "/metrics")[0] == 200  # excluded by default
        # werkzeug closes a response (which queues its record) after the client read it.
        wait_until(lambda: _written(wrapped.recorder) >= 3, timeout=10, what="3 records")
    wrapped.close()
    records = sorted(_records(out), key=lambda r: r.ts_ns)
    assert [(r.method, r.path, r.status) for r in records] == [
        ("GET", "/api/products/7?x=1", 200),
        ("POST", "/api/orders", 201),
        ("GET", "/boom", 500),
    ]
    assert records[1].body == b'{"qty": 2}'
    assert records[1].header("content-type") == "text/json"
    assert all(r.duration_ns and r.duration_ns > 0 for r in records)
    assert records[0].ts_ns < records[1].ts_ns < records[2].ts_ns
    assert _value(registry, "replay_capture_records_total") == 3


def test_asgi_starlette_and_fastapi(tmp_path: Path) -> None:
    registry = CollectorRegistry()
    out = tmp_path / "s.jsonl.gz"
    app = recording(_starlette_app(), out, registry=registry, max_body=8)
    assert isinstance(app, ASGIRecorder)
    with serve_asgi(app) as base:
        assert request(base, "POST", "/echo", body=b"0123456789abcdef")[0] == 201
        assert request(base, "GET", "/hello/w%C3%B6rld?q=1")[1] == "hi wörld".encode()
        assert request(base, "POST", "/ignore", body=b"small")[0] == 422
    # uvicorn's lifespan shutdown closed the recorder: everything is on disk.
    assert app.recorder.closed
    records = _records(out)
    assert [(r.method, r.path, r.status) for r in records] == [
        ("POST", "/echo", 201),
        ("GET", "/hello/w%C3%B6rld?q=1", 200),
        ("POST", "/ignore", 422),
    ]
    assert records[0].body == b"01234567" and records[0].extra == {"body_truncated": True}
    assert records[2].body == b"small"  # read up front although the app ignored it
    assert records[0].header("content-length") == "16"  # the original length stays

    fast = FastAPI()

    @fast.put("/items/{item_id}")
    async def put_item(item_id: int, request: Request) -> dict[str, int]:
        return {"id": item_id, "n": len(await request.body())}

    out2 = tmp_path / "f.jsonl"
    with serve_asgi(recording(fast, out2, registry=registry)) as base:
        assert request(base, "PUT", "/items/3", body=b"x" * 100)[0] == 200
    (record,) = _records(out2)
    assert (record.method, record.path, record.status, record.body) == (
        "PUT",
        "/items/3",
        200,
        b"x" * 100,
    )


def test_include_exclude_and_sampling(tmp_path: Path) -> None:
    registry = CollectorRegistry()
    out = tmp_path / "c.jsonl"
    app = recording(
        _starlette_app(),
        out,
        registry=registry,
        include=["/hello/*", "POST /echo"],
        exclude=["/hello/secret*"],
    )
    with serve_asgi(app) as base:
        for path in ("/hello/a", "/hello/secret-x", "/hello/b"):
            request(base, "GET", path)
        request(base, "POST", "/echo", body=b"1")
        request(base, "GET", "/echo")  # 405, and GET /echo is not included
    assert [r.path for r in _records(out)] == ["/hello/a", "/hello/b", "/echo"]

    out0 = tmp_path / "none.jsonl"
    app0 = recording(_starlette_app(), out0, registry=registry, sample=0.0)
    with serve_asgi(app0) as base:
        for _ in range(5):
            assert request(base, "GET", "/hello/x")[0] == 200
    assert _records(out0) == []


def test_consistent_sampling_keeps_whole_sessions(tmp_path: Path) -> None:
    out = tmp_path / "c.jsonl"
    app = _flask_app()
    wrapped = recording(
        app.wsgi_app, out, registry=CollectorRegistry(), sample=0.5, sample_key="cookie:sid"
    )
    app.wsgi_app = wrapped  # type: ignore[method-assign]
    sessions = [f"user-{i}" for i in range(40)]
    with serve_wsgi(app) as base:
        for sid in sessions:
            for page in range(3):
                request(base, "GET", f"/api/products/{page}", headers={"Cookie": f"sid={sid}"})
    wrapped.close()
    records = _records(out)
    by_session: dict[str | None, int] = {}
    for r in records:
        by_session[r.session] = by_session.get(r.session, 0) + 1
    assert all(count == 3 for count in by_session.values())  # all or nothing per session
    assert 0 < len(by_session) < len(sessions)  # and about half of them
    assert None not in by_session
    raw = out.read_text()
    assert not any(sid in raw for sid in sessions)  # session ids are hashed, cookies redacted


def test_full_queue_drops_and_counts_without_blocking(tmp_path: Path) -> None:
    registry = CollectorRegistry()
    out = tmp_path / "c.jsonl"
    # The writer wakes only every 60 s: the queue (2) fills up, later requests are dropped.
    app = recording(_starlette_app(), out, registry=registry, queue_size=2, flush_interval=60.0)
    with serve_asgi(app) as base:
        for i in range(7):
            assert request(base, "GET", f"/hello/{i}")[0] == 200
        assert _value(registry, "replay_capture_queue_depth") == 2
    assert _value(registry, "replay_capture_dropped_total", reason="queue_full") == 5
    assert [r.path for r in _records(out)] == ["/hello/0", "/hello/1"]


def test_unwritable_path_keeps_serving(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    registry = CollectorRegistry()
    app = _flask_app()
    wrapped = recording(app.wsgi_app, tmp_path / "missing-dir" / "c.jsonl", registry=registry)
    app.wsgi_app = wrapped  # type: ignore[method-assign]
    assert "cannot create capture file" in caplog.text
    with serve_wsgi(app) as base:
        for _ in range(3):
            assert request(base, "GET", "/api/products/1")[0] == 200
        # The server closes the response (and so offers the record) after the client has
        # read it: wait for the third, rather than race it.
        wait_until(
            lambda: _value(registry, "replay_capture_dropped_total", reason="write_error") >= 3,
            timeout=10,
            what="three dropped requests",
        )
    wrapped.close()
    assert _value(registry, "replay_capture_write_errors_total") == 1
    assert _value(registry, "replay_capture_dropped_total", reason="write_error") == 3


def test_disk_full_stops_recording_not_the_app(tmp_path: Path) -> None:
    """A file-size limit makes writes fail with EFBIG, as a full disk fails with ENOSPC."""
    script = textwrap.dedent(
        """
        import json, resource, signal, sys, logging
        from prometheus_client import CollectorRegistry
        from hlthz.replay import recording
        from tests.capture.conftest import request, serve_wsgi
        from tests.capture.test_recorder import _flask_app
        logging.basicConfig(level=logging.ERROR, format="%(message)s")
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096))
        registry = CollectorRegistry()
        app = _flask_app()
        wrapped = recording(app.wsgi_app, sys.argv[1], registry=registry, flush_interval=0.01)
        app.wsgi_app = wrapped
        statuses = []
        with serve_wsgi(app) as base:
            for i in range(60):
                statuses.append(request(base, "POST", "/api/orders", body=b"x" * 500)[0])
        wrapped.close()
        print(json.dumps({
            "statuses": sorted(set(statuses)),
            "errors": registry.get_sample_value("replay_capture_write_errors_total"),
            "written": registry.get_sample_value("replay_capture_records_total"),
            "dropped": registry.get_sample_value(
                "replay_capture_dropped_total", {"reason": "write_error"}),
        }))
        """
    )
    out = tmp_path / "c.jsonl"
    root = Path(__file__).resolve().parents[2]
    proc = subprocess.run(
        [sys.executable, "-c", script, str(out)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=root,
    )
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["statuses"] == [201]  # every request served
    assert result["errors"] == 1
    assert result["written"] + result["dropped"] == 60  # every request written or counted
    assert result["dropped"] > 0
    assert "hlthz capture stopped: cannot write" in proc.stderr
    assert "File too large" in proc.stderr
    # What reached the disk is still a readable capture (a torn tail at most).
    assert len(list(read_capture(out, warn=lambda _: None))) == result["written"]


@pytest.mark.parametrize("per_process", [True, False])
def test_forked_workers(tmp_path: Path, per_process: bool) -> None:
    """A pre-fork server forks after the app was wrapped: with ``{pid}`` in the path each
    worker writes its own file; without it the child stops recording rather than corrupt the
    parent's file, and the parent's buffered records are never written twice."""
    from werkzeug.test import Client

    registry = CollectorRegistry()
    app = _flask_app()
    name = "c-{pid}.jsonl" if per_process else "c.jsonl"
    wrapped = recording(app.wsgi_app, tmp_path / name, registry=registry, flush_interval=60)
    app.wsgi_app = wrapped  # type: ignore[method-assign]
    client = Client(app)
    client.get("/api/products/1", buffered=True)  # queued, not yet written: a buffer to fork
    pid = os.fork()
    if pid == 0:  # the worker
        code = 1
        try:
            for i in (2, 3):
                client.get(f"/api/products/{i}", buffered=True)
            wrapped.close()
            dropped = registry.get_sample_value(
                "replay_capture_dropped_total", {"reason": "write_error"}
            )
            code = 0 if (dropped == 2) != per_process else 3
            import gc

            gc.collect()  # finalizers of inherited objects must not write to the parent's file
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    client.get("/api/products/4", buffered=True)
    wrapped.close()
    parent = tmp_path / name.replace("{pid}", str(os.getpid()))
    assert [r.path for r in read_capture(parent)] == ["/api/products/1", "/api/products/4"]
    child = tmp_path / name.replace("{pid}", str(pid))
    if per_process:
        assert [r.path for r in read_capture(child)] == ["/api/products/2", "/api/products/3"]
    else:
        assert child == parent


class _SlowRedactor(Redactor):
    """Takes a while per record, as redacting a large JSON body does."""

    def redact(self, record: CaptureRecord) -> tuple[CaptureRecord, RedactionStats]:
        time.sleep(0.3)
        return super().redact(record)


def test_flush_returns_only_once_the_records_are_in_the_file(tmp_path: Path) -> None:
    out = tmp_path / "c.jsonl"
    recorder = CaptureRecorder(
        out, registry=CollectorRegistry(), redactor=_SlowRedactor(), flush_interval=0.01
    )
    try:
        environ = {"REQUEST_METHOD": "GET", "PATH_INFO": "/a", "QUERY_STRING": ""}
        recorder.offer(("wsgi", time.time_ns(), environ, b"", False, "200 OK", 1000))
        recorder.flush(timeout=5.0)
        # The writer popped the item long before it wrote it: flush used to return right then.
        assert [r.path for r in read_capture(out)] == ["/a"]
    finally:
        recorder.close()
