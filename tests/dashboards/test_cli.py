"""``hlthz dashboards generate|check`` through the real CLI root (exit codes, one-line errors)."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from hlthz.procs import free_port
from hlthz.tools.cli import main


def _run(*args: str) -> tuple[int, str]:
    result = CliRunner().invoke(main, ["dashboards", *args])
    return result.exit_code, result.output


def test_generate_then_check(tmp_path: Path) -> None:
    code, output = _run("generate", "--out", str(tmp_path), "--provisioning-path", "/srv/dash")
    assert code == 0, output
    assert len(output.splitlines()) == 9
    assert "path: /srv/dash" in (tmp_path / "provisioning" / "hlthz-dashboards.yaml").read_text()
    code, output = _run("check", "--dir", str(tmp_path))
    assert code == 0, output
    assert output.splitlines() == ["ok   lint"]


def test_check_fails_with_exit_1_on_a_stale_threshold(tmp_path: Path) -> None:
    _run("generate", "--out", str(tmp_path))
    config = tmp_path / "thresholds.yaml"
    config.write_text("alerts:\n  warning:\n    memory: {threshold: 0.9, for: 15m}\n")
    code, output = _run("check", "--dir", str(tmp_path), "--config", str(config))
    assert code == 1
    assert "'Memory share of limit'" in output
    assert "hlthz: error: dashboards check failed: lint: " in output


def test_usage_errors_exit_2_with_one_line(tmp_path: Path) -> None:
    code, output = _run("check", "--dir", str(tmp_path / "nowhere"))
    assert code == 2
    assert output.count("\n") == 1 and output.startswith("hlthz: error: ")

    config = tmp_path / "bad.yaml"
    config.write_text("alerts:\n  warning:\n    memory: {threshold: lots}\n")
    code, output = _run("generate", "--out", str(tmp_path / "out"), "--config", str(config))
    assert code == 2
    assert output.startswith("hlthz: error: ") and "memory" in output

    _run("generate", "--out", str(tmp_path / "ok"))
    closed = f"http://127.0.0.1:{free_port()}"
    code, output = _run("check", "--dir", str(tmp_path / "ok"), "--prometheus", closed)
    assert code == 2
    assert "cannot reach Prometheus" in output

    code, output = _run(
        "check", "--dir", str(tmp_path / "ok"), "--prometheus", closed, "--rate-interval", "soon"
    )
    assert code == 2
    assert "'soon' is not a Prometheus duration" in output


def test_a_server_that_is_not_prometheus_is_a_usage_error(tmp_path: Path) -> None:
    import http.server
    import threading

    class Html(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = b"<html>Grafana</html>"
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Html)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        _run("generate", "--out", str(tmp_path))
        url = f"http://127.0.0.1:{server.server_address[1]}"
        code, output = _run("check", "--dir", str(tmp_path), "--prometheus", url)
    finally:
        server.shutdown()
        thread.join(timeout=5)
    assert code == 2
    assert "does not answer like Prometheus" in output


def test_the_cli_default_provisioning_path_is_the_generator_default() -> None:
    # Repeated in the CLI so `hlthz dashboards --help` works without the 'dashboards' extra.
    from hlthz.dashboards.generate import DEFAULT_PROVISIONING_PATH
    from hlthz.tools.cli.dashboards import PROVISIONING_PATH

    assert PROVISIONING_PATH == DEFAULT_PROVISIONING_PATH
