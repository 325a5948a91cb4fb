"""A small Flask app for the release gate's status tests, run under gunicorn:
``gunicorn tests.replay.flask_gate_app:app``.

``GET /items/<id>`` and ``GET /health`` answer 200. With ``GATE_APP_AUTH=1`` in the environment
every request without ``Authorization: Bearer good`` gets 401, as a candidate that turned
authentication on (and broke every client) would.
"""

from __future__ import annotations

import os
import time

from flask import Flask, abort, jsonify, request

app = Flask(__name__)
_AUTH = os.environ.get("GATE_APP_AUTH") == "1"


@app.before_request
def _require_auth() -> None:
    if _AUTH and request.headers.get("Authorization") != "Bearer good":
        abort(401)


@app.get("/items/<int:item>")
def item(item: int) -> object:
    time.sleep(0.002)
    return jsonify(id=item, name=f"item-{item}")


@app.get("/health")
def health() -> object:
    return jsonify(ok=True)
