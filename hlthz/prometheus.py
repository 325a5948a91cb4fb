"""The one Prometheus HTTP call HLTHZ's tools make: an instant query (``/api/v1/query``).

Shared by ``hlthz dashboards check`` and ``hlthz diagnose``; standard library only, so it works
on a base install.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

from hlthz.errors import PrometheusError

__all__ = ["PrometheusClient", "QueryError"]


class PrometheusClient:
    """The one Prometheus HTTP call the check needs: an instant query."""

    def __init__(self, base_url: str, timeout: float = 10.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout

    def query(self, expr: str) -> list[dict[str, Any]]:
        """``data.result`` of an instant query; a PromQL error raises :class:`QueryError`."""
        url = f"{self.base_url}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
        try:
            with urllib.request.urlopen(url, timeout=self.timeout) as response:
                body = self._json(response)
        except urllib.error.HTTPError as exc:
            # Prometheus answers bad PromQL with 400/422 and a JSON error body.
            body = self._json(exc)
        except (urllib.error.URLError, OSError) as exc:
            raise PrometheusError(
                f"cannot reach Prometheus at {self.base_url}: {exc}; check --prometheus"
            ) from exc
        if body.get("status") != "success":
            raise QueryError(str(body.get("error", body)))
        data = body.get("data") or {}
        result = data.get("result", [])
        if data.get("resultType") == "scalar":
            return [{"metric": {}, "value": result}]
        return list(result)

    def _json(self, response: Any) -> dict[str, Any]:
        try:
            body = json.load(response)
        except ValueError:
            body = None
        if not isinstance(body, dict):
            raise PrometheusError(
                f"{self.base_url} does not answer like Prometheus (no JSON from /api/v1/query); "
                "check --prometheus"
            )
        return body


class QueryError(PrometheusError):
    """Prometheus rejected a query (bad PromQL, unknown function...)."""
