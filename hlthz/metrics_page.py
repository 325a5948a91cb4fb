"""Reading an app's metrics page: the one fetch and the one parse of Prometheus text.

``hlthz init --from-metrics`` (which families an app emits), ``hlthz diagnose --metrics`` (two
scrapes a window apart) and ``hlthz demo`` (what a replay cost the server) all read a page an
app serves. They read it here, so each gets the same limits and the same one-line errors: a
wrong URL, an app that is down, a page too large to be metrics or text that is not Prometheus'
raise :class:`~hlthz.errors.ScrapeError` naming the option (``what``) and the URL.
"""

from __future__ import annotations

import urllib.error
import urllib.request
from collections.abc import Iterator

from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample

from hlthz.errors import ScrapeError
from hlthz.net import parse_http_url

__all__ = ["MAX_BYTES", "page_samples", "read_metrics_page"]

#: A page larger than this is refused: a wrong URL serving a big file, not metrics.
MAX_BYTES = 64 * 1024 * 1024


def read_metrics_page(url: str, *, what: str, timeout: float = 10.0) -> str:
    """The text of the page at ``url``, at most :data:`MAX_BYTES` read.

    ``what`` names the option the URL came from (``--metrics``), for the error.
    """
    parse_http_url(url, what=what)  # a bad URL is a UsageError, not a ValueError
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            body = response.read(MAX_BYTES + 1)
    except urllib.error.HTTPError as exc:
        raise ScrapeError(
            f"{what} {url}: answered HTTP {exc.code}; give the app's metrics URL"
        ) from None
    except (urllib.error.URLError, OSError, ValueError) as exc:
        reason = getattr(exc, "reason", exc)
        raise ScrapeError(f"{what} {url}: cannot read it ({reason}); is the app running?") from None
    if len(body) > MAX_BYTES:
        raise ScrapeError(
            f"{what} {url}: more than {MAX_BYTES // (1024 * 1024)} MiB; is this a metrics page?"
        )
    return body.decode("utf-8", errors="replace")


def page_samples(text: str, *, what: str) -> Iterator[Sample]:
    """Every sample of a page in the Prometheus text format (``name``, ``labels``, ``value``).

    Text that is not Prometheus' raises :class:`~hlthz.errors.ScrapeError` naming ``what``.
    """
    try:
        for family in text_string_to_metric_families(text):
            yield from family.samples
    except (ValueError, TypeError, IndexError) as exc:
        raise ScrapeError(f"{what} does not answer Prometheus text: {exc}") from None
