"""The one Prometheus HTTP API client: instant and range queries.

Used by ``hlthz dashboards check`` (each panel query, instant) and ``hlthz alerts backtest``
(each alert over a time range). A PromQL error raises :class:`~hlthz.errors.QueryError`; an
unreachable server or an answer that is not Prometheus' raises
:class:`~hlthz.errors.PrometheusError`, naming the URL and the option (``what``) to fix.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from hlthz.errors import PrometheusError, QueryError

__all__ = ["MAX_POINTS", "PrometheusClient"]

#: Prometheus refuses a range query of more than 11,000 points per series; stay below it.
MAX_POINTS = 10_000


class PrometheusClient:
    """Queries against one Prometheus at ``base_url`` (``http://127.0.0.1:9090``)."""

    def __init__(self, base_url: str, timeout: float = 10.0, *, what: str = "--prometheus"):
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.what = what

    def query(self, expr: str, at: float | None = None) -> list[dict[str, Any]]:
        """``data.result`` of an instant query (a scalar becomes one series without labels)."""
        params = {"query": expr, **({"time": _ts(at)} if at is not None else {})}
        data = self._get("/api/v1/query", params)
        result = data.get("result", [])
        if data.get("resultType") == "scalar":
            return [{"metric": {}, "value": result}]
        return list(result)

    def query_range(
        self, expr: str, start: float, end: float, step: float
    ) -> dict[tuple[tuple[str, str], ...], list[tuple[float, float]]]:
        """Every series of ``expr`` evaluated at ``start, start + step, ... <= end``:
        ``{sorted label pairs: [(t, value), ...]}``. Ranges longer than :data:`MAX_POINTS`
        steps are asked for in pieces (Prometheus caps the points of one answer)."""
        series: dict[tuple[tuple[str, str], ...], list[tuple[float, float]]] = {}
        piece = start
        while piece <= end:
            last = min(end, piece + step * (MAX_POINTS - 1))
            params = {"query": expr, "start": _ts(piece), "end": _ts(last), "step": _ts(step)}
            for item in self._get("/api/v1/query_range", params).get("result", []):
                key = tuple(sorted(item.get("metric", {}).items()))
                series.setdefault(key, []).extend(
                    (float(t), float(v)) for t, v in item.get("values", [])
                )
            piece = last + step
        return series

    def api(self, path: str, **params: str) -> dict[str, Any]:
        """``data`` of any GET endpoint of the HTTP API (``/api/v1/rules``...)."""
        return self._get(path, params)

    def _get(self, path: str, params: dict[str, str]) -> dict[str, Any]:
        url = f"{self.base_url}{path}?" + urllib.parse.urlencode(params)
        try:
            with urllib.request.urlopen(url, timeout=self.timeout) as response:
                body = self._json(response, path)
        except urllib.error.HTTPError as exc:
            # Prometheus answers bad PromQL with 400/422 and a JSON error body.
            body = self._json(exc, path)
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise PrometheusError(
                f"cannot reach Prometheus at {self.base_url}: {reason}; check {self.what}"
            ) from None
        if body.get("status") != "success":
            raise QueryError(str(body.get("error", body)))
        data = body.get("data")
        return data if isinstance(data, dict) else {}

    def _json(self, response: Any, path: str) -> dict[str, Any]:
        try:
            body = json.load(response)
        except (ValueError, OSError):
            body = None
        if not isinstance(body, dict):
            raise PrometheusError(
                f"{self.base_url} does not answer like Prometheus (no JSON from {path}); "
                f"check {self.what}"
            )
        return body


def _ts(value: float) -> str:
    return f"{value:.3f}"
