"""The diagnosis as a terminal table and as ``hlthz_diagnosis`` v1 JSON (docs/formats.md)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from hlthz.files import atomic_write
from hlthz.tools.diagnose.run import Diagnosis

#: Evidence keys shown in the table, per cause (the JSON has every key).
_SHOWN: dict[str, tuple[str, ...]] = {
    "n_plus_one": (
        "queries_per_request",
        "database_requests_with_n_plus_one",
        "repeated_query_types",
    ),
    "slow_queries": ("query_time_share", "slow_query_types"),
    "pool_exhaustion": ("max_connections", "in_use_peak", "acquire_waits", "acquire_timeouts"),
    "cache_misses": ("served_without_database", "cache_hit_ratio"),
    "inline_side_work": ("mean_ms", "unexplained_ms", "background_jobs"),
    "sequential_upstream": ("calls_per_request", "upstream_ms_per_request", "request_mean_ms"),
    "large_responses": ("mean_bytes",),
    "errors": ("error_ratio", "errors"),
}


def _value(value: Any) -> str:
    if isinstance(value, list) and value and isinstance(value[0], dict):
        return ",".join(f"{v.get('query_type')} p50={v.get('p50_ms')}ms" for v in value[:3])
    if isinstance(value, list):
        return ",".join(str(v) for v in value)
    if isinstance(value, dict):
        return ",".join(f"{k}={v}" for k, v in value.items())
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def evidence_text(cause: str, evidence: dict[str, Any]) -> str:
    """The evidence of one finding in one line."""
    keys = _SHOWN.get(cause, tuple(evidence))
    return "  ".join(f"{k}={_value(evidence[k])}" for k in keys if evidence.get(k) is not None)


def render_table(diagnosis: Diagnosis) -> str:
    """The findings, most severe first, and what could not be judged."""
    lines = [
        f"hlthz diagnose: {diagnosis.source}, window {diagnosis.window_seconds:.0f} s, "
        f"{diagnosis.requests:.0f} requests, {diagnosis.server_seconds:.1f} s of server time"
    ]
    if not diagnosis.findings:
        lines.append("no findings")
    else:
        header = f"{'severity':<9} {'cause':<20} {'route':<34} {'share':>6}  evidence"
        lines += [header, "-" * len(header)]
        for f in diagnosis.findings:
            where = f"{f.method} {f.route}" if f.method != "*" else "(whole app)"
            lines.append(
                f"{f.severity:<9} {f.cause:<20} {where:<34} {f.share_of_time:>6.1%}  "
                f"{evidence_text(f.cause, f.evidence)}"
            )
        runbooks = sorted({f.runbook for f in diagnosis.findings if f.runbook})
        if runbooks:
            lines.append("runbooks: " + "  ".join(runbooks))
    for cause, reason in diagnosis.not_measured.items():
        lines.append(f"not measured: {cause}: {reason}")
    return "\n".join(lines)


def write_json(diagnosis: Diagnosis, path: Path) -> None:
    """Write the ``hlthz_diagnosis`` v1 document to ``path`` (atomically)."""
    atomic_write(Path(path), json.dumps(diagnosis.to_json(), indent=2) + "\n")
