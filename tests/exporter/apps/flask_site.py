"""rq-dashboard (a Flask app from PyPI) plus a directory of files served by Werkzeug's
``SharedDataMiddleware`` under ``/files``: ``tests.exporter.apps.flask_site:application``.

The dashboard is a Flask app, so its routes are its URL rules. The files app is a bare WSGI
callable: its routes come from ``normalize_paths``, i.e. from ``PATH_INFO``, which a PEP 3333
server passes as latin-1 text. ``HLTHZ_TEST_REDIS`` and ``HLTHZ_TEST_FILES`` configure both.
"""

import os

from rq_dashboard.cli import make_flask_app
from werkzeug.exceptions import NotFound
from werkzeug.middleware.dispatcher import DispatcherMiddleware
from werkzeug.middleware.shared_data import SharedDataMiddleware

from hlthz.exporter import instrument

dashboard = make_flask_app(None, None, None, "")
# A list: one Redis per dashboard instance (the /<int:instance_number>/ in its routes).
dashboard.config["RQ_DASHBOARD_REDIS_URL"] = [os.environ["HLTHZ_TEST_REDIS"]]
files = SharedDataMiddleware(NotFound(), {"/": os.environ["HLTHZ_TEST_FILES"]})

application = DispatcherMiddleware(
    instrument(dashboard), {"/files": instrument(files, normalize_paths=True)}
)
