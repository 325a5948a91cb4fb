"""Serve an app from PyPI, instrumented with ``hlthz.exporter``, on 127.0.0.1.

Run with the Python of a venv holding the app (``python pypi_apps.py flask-httpbin PORT``):
httpbin (Flask) or httpbinx (FastAPI), neither written here. The test puts hlthz on PYTHONPATH.
"""

from __future__ import annotations

import sys

from hlthz.exporter import instrument


def main() -> None:
    kind, port = sys.argv[1], int(sys.argv[2])
    if kind == "flask-httpbin":
        from httpbin import app
        from werkzeug.serving import make_server

        make_server("127.0.0.1", port, instrument(app), threaded=True).serve_forever()
    elif kind == "fastapi-httpbinx":
        import uvicorn
        from httpbinx.main import app

        uvicorn.run(instrument(app), host="127.0.0.1", port=port, log_level="warning")
    else:
        raise SystemExit(f"unknown app {kind}")


if __name__ == "__main__":
    main()
