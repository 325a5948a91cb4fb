"""``hlthz replay inspect``: what is in a capture, before replaying it.

:func:`inspect_capture` streams any supported file once and returns a JSON-ready summary:
record count, time span, mean and peak rate (busiest whole second), methods, status mix, top
routes and a redaction summary (how many placeholders per header and per body/query field).
Routes are named by :class:`hlthz.routes.Routes`, the grouping every command uses: the
templates of ``--routes`` (an OpenAPI document, or a text file with one template per line such
as ``/api/products/{product_id}``), else the path normalizer (``/users/42`` -> ``/users/{id}``).
"""

from __future__ import annotations

import collections
import datetime as _dt
import os
import re
from collections.abc import Sequence
from typing import Any

from hlthz.replay.capture.format import ReadStats
from hlthz.replay.capture.inputs import expand_inputs, merged_records
from hlthz.replay.capture.redact import PLACEHOLDER_PREFIX
from hlthz.routes import Routes

__all__ = ["format_inspection", "inspect_capture"]

_FIELD_PLACEHOLDER = re.compile(
    r'"?([A-Za-z0-9_.-]+)"?\s*[:=]\s*"?' + re.escape(PLACEHOLDER_PREFIX)
)


def _redactions(record_headers: list[tuple[str, str]], path: str, body: bytes) -> list[str]:
    found = [f"header:{n.lower()}" for n, v in record_headers if PLACEHOLDER_PREFIX in v]
    if PLACEHOLDER_PREFIX in path:
        found += [f"query:{m}" for m in _FIELD_PLACEHOLDER.findall(path.split("?", 1)[-1])]
    if body and PLACEHOLDER_PREFIX.encode() in body:
        text = body.decode("utf-8", "replace")
        names = _FIELD_PLACEHOLDER.findall(text)
        found += [f"body:{m}" for m in names]
        loose = text.count(PLACEHOLDER_PREFIX) - len(names)
        if loose > 0:
            found += ["body:(pattern)"] * loose
    return found


def inspect_capture(
    path: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    *,
    format: str = "auto",
    log_format: str | None = None,
    routes: Routes | None = None,
    top: int = 10,
    skip_invalid: bool = False,
) -> dict[str, Any]:
    """Summarize a capture (or any importable file, or several merged in time order: a list
    or a glob) in one streaming pass; routes are named by ``routes`` (default:
    :func:`hlthz.routes.normalize_path`), as ``replay run`` names them."""
    routes = routes or Routes()
    stats = ReadStats()
    inputs = [path] if isinstance(path, str | os.PathLike) else list(path)
    paths = expand_inputs(inputs)
    methods: collections.Counter[str] = collections.Counter()
    statuses: collections.Counter[str] = collections.Counter()
    per_route: collections.Counter[str] = collections.Counter()
    per_second: collections.Counter[int] = collections.Counter()
    redactions: collections.Counter[str] = collections.Counter()
    sessions: set[str] = set()
    first = last = None
    body_bytes = 0
    dropped = 0
    for record in merged_records(
        paths, format=format, log_format=log_format, skip_invalid=skip_invalid, stats=stats
    ):
        if record.extra.get("body_dropped"):
            dropped += 1
        methods[record.method] += 1
        statuses[f"{record.status // 100}xx" if record.status else "unknown"] += 1
        per_route[routes.name(record.method, record.path)] += 1
        per_second[record.ts_ns // 1_000_000_000] += 1
        first = record.ts_ns if first is None else min(first, record.ts_ns)
        last = record.ts_ns if last is None else max(last, record.ts_ns)
        body_bytes += len(record.body)
        if record.session:
            sessions.add(record.session)
        redactions.update(_redactions(record.headers, record.path, record.body))
    span = (last - first) / 1e9 if first is not None and last is not None else 0.0
    count = stats.records
    return {
        "file": ", ".join(map(str, paths)),
        "records": count,
        "invalid_skipped": stats.invalid,
        "truncated_tail": bool(stats.truncated),
        "truncated_skipped": stats.truncated,
        "not_requests_skipped": stats.not_requests,
        "out_of_order": stats.out_of_order,
        "bodies_dropped": dropped,
        "start_ns": first,
        "end_ns": last,
        "span_s": round(span, 3),
        "mean_rps": round(count / span, 3) if span > 0 else float(count),
        "peak_rps": max(per_second.values(), default=0),
        "sessions": len(sessions),
        "body_bytes": body_bytes,
        "methods": dict(methods.most_common()),
        "status": dict(sorted(statuses.items())),
        "top_routes": [{"route": r, "requests": n} for r, n in per_route.most_common(top)],
        "routes_total": len(per_route),
        "redactions": dict(redactions.most_common()),
    }


def _when(start_ns: int | None, end_ns: int | None) -> str:
    if start_ns is None or end_ns is None:
        return ""

    def iso(ns: int) -> str:
        moment = _dt.datetime.fromtimestamp(ns / 1e9, _dt.UTC)
        return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")

    return f"  ({iso(start_ns)} .. {iso(end_ns)})"


def format_inspection(summary: dict[str, Any]) -> str:
    """The human-readable form printed by ``hlthz replay inspect``."""
    lines = [
        f"file       {summary['file']}",
        f"records    {summary['records']}"
        + (
            f"  ({summary['invalid_skipped']} invalid skipped)"
            if summary["invalid_skipped"]
            else ""
        )
        + (
            f"  ({summary['truncated_skipped']} truncated skipped)"
            if summary["truncated_skipped"]
            else ""
        )
        + (
            f"  ({summary['not_requests_skipped']} not requests skipped)"
            if summary["not_requests_skipped"]
            else ""
        ),
        f"span       {summary['span_s']:.3f} s" + _when(summary["start_ns"], summary["end_ns"]),
        f"rate       mean {summary['mean_rps']:.1f} req/s, peak {summary['peak_rps']} req/s",
        f"sessions   {summary['sessions']}",
        f"bodies     {summary['body_bytes']} bytes"
        + (
            f"; {summary['bodies_dropped']} dropped by redaction (body_dropped)"
            if summary["bodies_dropped"]
            else ""
        ),
        "methods    " + ", ".join(f"{m} {n}" for m, n in summary["methods"].items()),
        "status     " + ", ".join(f"{s} {n}" for s, n in summary["status"].items()),
        f"routes     {summary['routes_total']} distinct; top:",
    ]
    width = max((len(r["route"]) for r in summary["top_routes"]), default=0)
    for item in summary["top_routes"]:
        share = item["requests"] / summary["records"] * 100 if summary["records"] else 0
        lines.append(f"  {item['route']:<{width}}  {item['requests']:>8}  {share:5.1f} %")
    if summary["redactions"]:
        lines.append(
            "redacted   " + ", ".join(f"{k} {n}" for k, n in summary["redactions"].items())
        )
    else:
        lines.append("redacted   nothing (no placeholders found)")
    return "\n".join(lines)
