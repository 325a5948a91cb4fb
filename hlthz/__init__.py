"""HLTHZ: make web APIs fast and keep them fast.

The distribution is split by concern; each subpackage is importable on its own:

- :mod:`hlthz.exporter`: Prometheus instrumentation for WSGI/ASGI apps.
- :mod:`hlthz.demo_api`: the e-commerce API of the before/after story.
- :mod:`hlthz.alerts`: rules, routing, runbooks and tests from one thresholds file.
- :mod:`hlthz.dashboards`: Grafana dashboards from the same file.
- :mod:`hlthz.replay`: capture, import, replay, report and gate.
- :mod:`hlthz.tools`: the ``hlthz`` command line and the stack glue.
"""

from hlthz.errors import HlthzError, UsageError

__version__ = "0.1.0"

__all__ = ["HlthzError", "UsageError", "__version__"]
