"""``hlthz diagnose``: what makes an API slow, ranked per route, from the exporter's metrics.

Sources: Prometheus (:func:`prometheus_samples`) or two scrapes of the app itself
(:class:`ScrapeWindow`, :func:`scrape_samples`), both giving :class:`Samples`, turned into one
:class:`Snapshot` by :func:`build_snapshot`. The cause rules judge it
(:func:`diagnose_snapshot`); :func:`diagnose` does all of it for :class:`DiagnoseOptions`.
How each cause is decided: docs/diagnose.md.
"""

from hlthz.errors import DiagnosisFailed, PrometheusError, ScrapeError
from hlthz.tools.diagnose._causes import CAUSES, SEVERITIES, Finding, Limits
from hlthz.tools.diagnose._prometheus import prometheus_samples
from hlthz.tools.diagnose._scrape import ScrapeWindow, registry_fetch, scrape_samples, url_fetch
from hlthz.tools.diagnose.report import evidence_text, render_table, write_json
from hlthz.tools.diagnose.run import (
    DiagnoseOptions,
    Diagnosis,
    diagnose,
    diagnose_snapshot,
    limits_from,
    load_limits,
)
from hlthz.tools.diagnose.snapshot import Histogram, Samples, Snapshot, build_snapshot

__all__ = [
    "CAUSES",
    "SEVERITIES",
    "DiagnoseOptions",
    "Diagnosis",
    "DiagnosisFailed",
    "Finding",
    "Histogram",
    "Limits",
    "PrometheusError",
    "Samples",
    "ScrapeError",
    "ScrapeWindow",
    "Snapshot",
    "build_snapshot",
    "diagnose",
    "diagnose_snapshot",
    "evidence_text",
    "limits_from",
    "load_limits",
    "prometheus_samples",
    "registry_fetch",
    "render_table",
    "scrape_samples",
    "url_fetch",
    "write_json",
]
