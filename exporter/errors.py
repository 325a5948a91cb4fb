"""Errors raised by :mod:`hlthz.exporter`.

Instrumentation never raises into a running application: these errors come from set-up calls
(``instrument()``, ``Metrics.for_registry()``, the multiprocess helpers) and name the option or
path at fault.
"""

from hlthz.errors import HlthzError


class ExporterError(HlthzError):
    """Base class of the exporter's errors (exit code 2: bad usage or configuration)."""

    exit_code = 2


class ConfigError(ExporterError):
    """An option of ``instrument()`` or a helper is invalid or conflicts with an earlier one."""


class MultiprocessError(ExporterError):
    """``PROMETHEUS_MULTIPROC_DIR`` is missing, not a directory, or not writable."""
