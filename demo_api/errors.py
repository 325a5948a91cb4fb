"""Errors of :mod:`hlthz.demo_api`.

- :class:`SettingsError`: a bad profile, ``--opt`` switch or back-end URL (exit code 2).
- :class:`DatabaseError`: the database cannot be reached or is not seeded (exit code 2); the
  message says which URL and what to run.
- :class:`ServiceUnavailable`: raised inside a request when the database or pool cannot serve
  it in time; the app turns it into a 503 with a ``Retry-After`` header.
"""

from hlthz.errors import HlthzError


class DemoApiError(HlthzError):
    """Base class of the demo API's errors."""


class SettingsError(DemoApiError):
    """A profile, ``--opt`` switch or URL is invalid (exit code 2)."""

    exit_code = 2


class DatabaseError(DemoApiError):
    """The database is unreachable or has no demo data (exit code 2)."""

    exit_code = 2


class ServiceUnavailable(DemoApiError):
    """A request could not get a database connection in time (HTTP 503)."""

    exit_code = 2
