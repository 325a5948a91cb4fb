"""The demo's figures: one summary per profile, the audit table and where the time went.

Client-side latency comes from the replay report (timed from each request's scheduled send,
so queueing counts); the *why* columns (queries, N+1, cache, pool) come from the server's own
metrics scraped around the replay (:mod:`hlthz.tools.demo.evidence`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:  # the demo checks hlthz.replay is there before it reads a report
    from hlthz.replay.report import Report

__all__ = [
    "ROUTE_OPTIMIZATIONS",
    "audit_rows",
    "optimization_evidence",
    "print_audit",
    "replay_mean_ms",
    "single_switch_rows",
    "summarize_run",
    "time_saved_by_route",
]

#: The demo API's routes and the optimizations that act on each; the time a route saved is
#: credited to these together (one replay cannot split a route's gain between its switches).
ROUTE_OPTIMIZATIONS: dict[str, tuple[str, ...]] = {
    "/api/products": ("join_queries", "indexes", "cache", "lean_responses", "compression"),
    "/api/products/{product_id}": ("cache", "indexes", "lean_responses", "compression"),
    "/api/categories": ("cache",),
    "/api/orders": ("background_jobs", "pool"),
    "/api/users/{user_id}/dashboard": ("parallel_upstream",),
}


def replay_mean_ms(report: Report) -> float | None:
    """The mean latency of a replay, from the exact HDR histogram its report carries."""
    encoded = report.histograms.latency if report.histograms is not None else None
    if not encoded:
        return None
    from hdrh.histogram import HdrHistogram

    try:
        histogram = HdrHistogram.decode(encoded.encode("ascii"))
    except Exception:  # an unreadable histogram: fall back to the server's figure
        return None
    if histogram.get_total_count() == 0:
        return None
    return float(histogram.get_mean_value()) / 1000.0  # recorded in microseconds


def _round(value: float | None, digits: int = 2) -> float | None:
    return None if value is None else round(float(value), digits)


def summarize_run(report: Report, server: dict[str, Any]) -> dict[str, Any]:
    """One profile's figures for ``summary.json``.

    ``p95_ms`` and friends are what the replay's clients saw, timed from each request's
    scheduled send; ``avg_ms`` is the replay's mean (from the report's HDR histogram), else the
    server's mean request time (``avg_source`` says which).
    ``cache_hit_rate`` is hits over look-ups, 0.0 for a profile that never looks anything up
    (see ``cache_lookups``).
    """
    summary = report.summary
    latency = summary.latency_ms
    avg = replay_mean_ms(report)
    avg_source = "replay"
    if avg is None:
        avg, avg_source = server.get("avg_ms"), "server"
    order = report.route("POST", "/api/orders")
    order_p95 = None if order is None else order.latency_ms.p95
    order_source = "replay"
    if order_p95 is None:
        order_p95, order_source = server.get("order_post_p95_ms"), "server"
    hit_rate = server.get("cache_hit_rate")
    return {
        "p95_ms": _round(latency.p95),
        "avg_ms": _round(avg),
        "p50_ms": _round(latency.p50),
        "p99_ms": _round(latency.p99),
        "max_ms": _round(latency.max),
        "error_rate": _round(summary.error_rate, 4),
        "requests": summary.requests,
        "errors": summary.errors,
        "rps": _round(summary.rps),
        "queries_per_request": _round(server.get("queries_per_request")),
        "n_plus_one": server.get("n_plus_one"),
        "cache_hit_rate": _round(hit_rate if hit_rate is not None else 0.0, 4),
        "cache_lookups": server.get("cache_lookups"),
        "cache_errors": server.get("cache_errors"),
        "pool_timeouts": server.get("pool_timeouts"),
        "pool_waits": server.get("pool_waits"),
        "mean_response_bytes": server.get("mean_response_bytes"),
        "order_post_p95_ms": _round(order_p95),
        "avg_source": avg_source,
        "order_post_source": order_source,
        "server": server,
        "routes": [
            {
                "route": r.key,
                "method": r.method,
                "path": r.route,
                "requests": r.requests,
                "errors": r.errors,
                "p95_ms": _round(r.latency_ms.p95),
            }
            for r in report.routes
        ],
    }


def _route_p95(summary: dict[str, Any], method: str, path: str) -> float | None:
    # ``summary`` is summarize_run's dict: its routes carry method and path apart.
    for route in summary.get("routes") or []:
        if route.get("method") == method and route.get("path") == path:
            p95 = route.get("p95_ms")
            return None if p95 is None else float(p95)
    return None


def optimization_evidence(before: dict[str, Any], after: dict[str, Any]) -> list[dict[str, Any]]:
    """For each optimization, the figure this run measured that shows its effect.

    One replay per profile cannot isolate a switch's share of the total (that takes one run per
    switch: ``benchmarks/demo_profiles.py``), but each fix moves a figure of its own.
    """
    b_server, a_server = before.get("server") or {}, after.get("server") or {}
    listing = "/api/products"
    rows: list[tuple[str, str, Any, Any, Any]] = [
        (
            "join_queries",
            "queries per listing request",
            (b_server.get("queries_per_request_by_route") or {}).get(listing),
            (a_server.get("queries_per_request_by_route") or {}).get(listing),
            _fmt_num,
        ),
        (
            "indexes",
            "mean database query time",
            b_server.get("mean_query_ms"),
            a_server.get("mean_query_ms"),
            _fmt_ms,
        ),
        (
            "pool",
            "burst: pool waits + timeouts",
            _burst_pool(before),
            _burst_pool(after),
            _fmt_num,
        ),
        (
            "cache",
            "cache hit share",
            before.get("cache_hit_rate"),
            after.get("cache_hit_rate"),
            _fmt_pct,
        ),
        (
            "background_jobs",
            "order POST P95",
            before.get("order_post_p95_ms"),
            after.get("order_post_p95_ms"),
            _fmt_ms,
        ),
        (
            "parallel_upstream",
            "dashboard P95",
            _route_p95(before, "GET", "/api/users/{id}/dashboard"),
            _route_p95(after, "GET", "/api/users/{id}/dashboard"),
            _fmt_ms,
        ),
        (
            "lean_responses",
            "listing page bytes (no gzip asked)",
            (before.get("burst") or {}).get("listing_bytes_plain"),
            (after.get("burst") or {}).get("listing_bytes_plain"),
            _fmt_bytes,
        ),
        (
            "compression",
            "after's listing page: plain -> gzip",
            (after.get("burst") or {}).get("listing_bytes_plain"),
            (after.get("burst") or {}).get("listing_bytes_gzip"),
            _fmt_bytes,
        ),
        (
            "lean + gzip",
            "response bytes sent, mean (server)",
            b_server.get("mean_response_bytes"),
            a_server.get("mean_response_bytes"),
            _fmt_bytes,
        ),
    ]
    return [
        {
            "optimization": name,
            "evidence": label,
            "before": b,
            "after": a,
            "before_text": fmt(b),
            "after_text": fmt(a),
            "change": _change(b, a, lower_is_better=name != "cache"),
        }
        for name, label, b, a, fmt in rows
    ]


def single_switch_rows(
    before: dict[str, Any], after: dict[str, Any], singles: dict[str, dict[str, Any]]
) -> list[dict[str, Any]]:
    """Each optimization measured alone: ``before`` with only that switch on.

    ``share`` is the part of the full gain in mean latency (``before`` to ``after``) that the
    switch achieves alone. Shares need not add up to 100 %: fixes overlap (a cache hides slow
    queries) and compound (a free pool makes everything else faster).
    """
    gain = (before.get("avg_ms") or 0.0) - (after.get("avg_ms") or 0.0)
    rows = []
    for name, alone in singles.items():
        avg = alone.get("avg_ms")
        share = None
        if avg is not None and before.get("avg_ms") is not None and gain > 0:
            share = round((before["avg_ms"] - avg) / gain, 4)
        rows.append(
            {
                "optimization": name,
                "avg_ms": avg,
                "p95_ms": alone.get("p95_ms"),
                "error_rate": alone.get("error_rate"),
                "queries_per_request": alone.get("queries_per_request"),
                "share_of_gain": share,
            }
        )
    return sorted(rows, key=lambda r: -(r["share_of_gain"] or 0.0))


def _fmt_ms(v: float | None) -> str:
    return "-" if v is None else f"{v:,.0f} ms" if v >= 10 else f"{v:.1f} ms"


def _fmt_pct(v: float | None) -> str:
    return "-" if v is None else f"{v * 100:.1f} %"


def _burst_pool(summary: dict[str, Any]) -> float | None:
    burst = summary.get("burst") or {}
    if burst.get("pool_waits") is None:
        return None
    return float(burst["pool_waits"]) + float(burst.get("pool_timeouts") or 0)


def _fmt_bytes(v: float | None) -> str:
    if v is None:
        return "-"
    return f"{v / 1024:,.1f} KB" if v >= 1024 else f"{v:,.0f} B"


def _fmt_num(v: float | None) -> str:
    return "-" if v is None else f"{v:,.1f}" if isinstance(v, float) else f"{v:,}"


def _change(before: float | None, after: float | None, *, lower_is_better: bool = True) -> str:
    if before is None or after is None:
        return ""
    if after == before:
        return "same"
    if lower_is_better and after == 0:
        return "none left"
    if lower_is_better and after > 0 and before > after:
        return f"{before / after:.1f}x lower"
    if not lower_is_better and before > 0 and after > before:
        return f"{after / before:.1f}x higher"
    if before == 0:
        return "from 0"
    return f"{(after - before) / before * 100:+.0f} %"


def audit_rows(before: dict[str, Any], after: dict[str, Any]) -> list[dict[str, str]]:
    """The story's audit table: metric, before, after and the change, formatted."""
    rows = [
        ("Average latency", "avg_ms", _fmt_ms, True),
        ("P95 latency", "p95_ms", _fmt_ms, True),
        ("P99 latency", "p99_ms", _fmt_ms, True),
        ("Error rate", "error_rate", _fmt_pct, True),
        ("Queries per request", "queries_per_request", _fmt_num, True),
        ("N+1 detections", "n_plus_one", _fmt_num, True),
        ("Cache hit share", "cache_hit_rate", _fmt_pct, False),
        ("Order POST P95", "order_post_p95_ms", _fmt_ms, True),
        ("Pool waits (callers queued)", "pool_waits", _fmt_num, True),
        ("Pool acquire timeouts", "pool_timeouts", _fmt_num, True),
        ("Response bytes (mean)", "mean_response_bytes", _fmt_bytes, True),
    ]
    return [
        {
            "metric": label,
            "before": fmt(before.get(key)),
            "after": fmt(after.get(key)),
            "change": _change(before.get(key), after.get(key), lower_is_better=lower),
        }
        for label, key, fmt, lower in rows
    ]


def time_saved_by_route(before: dict[str, Any], after: dict[str, Any]) -> list[dict[str, Any]]:
    """Where the server time went away: each route's share of the total seconds saved.

    Both profiles served the same replayed requests, so the difference of their summed
    server time per route is what that route's optimizations saved.
    """
    old = (before.get("server") or {}).get("seconds_by_route") or {}
    new = (after.get("server") or {}).get("seconds_by_route") or {}
    saved = {route: old[route] - new.get(route, 0.0) for route in old}
    total = sum(v for v in saved.values() if v > 0)
    rows = []
    for route, seconds in sorted(saved.items(), key=lambda kv: -kv[1]):
        rows.append(
            {
                "route": route,
                "seconds_before": round(old[route], 3),
                "seconds_after": round(new.get(route, 0.0), 3),
                "share": round(seconds / total, 4) if total > 0 and seconds > 0 else 0.0,
                "optimizations": list(ROUTE_OPTIMIZATIONS.get(route, ())),
            }
        )
    return rows


def print_audit(console: Console, summary: dict[str, Any]) -> None:
    """Print the audit table and the time-saved table."""
    table = Table(title="Before / after: the same recorded traffic, replayed", title_justify="left")
    table.add_column("")
    table.add_column("before", justify="right", style="red")
    table.add_column("after", justify="right", style="green")
    table.add_column("change", justify="right")
    for row in summary["audit"]:
        table.add_row(row["metric"], row["before"], row["after"], row["change"])
    console.print()
    console.print(table)
    evidence = summary.get("optimizations") or []
    if evidence:
        fixes = Table(title="What each fix changed (measured in this run)", title_justify="left")
        fixes.add_column("optimization")
        fixes.add_column("evidence")
        fixes.add_column("before", justify="right", style="red")
        fixes.add_column("after", justify="right", style="green")
        fixes.add_column("change", justify="right")
        for row in evidence:
            fixes.add_row(
                row["optimization"],
                row["evidence"],
                row["before_text"],
                row["after_text"],
                row["change"],
            )
        console.print(fixes)
    singles = summary.get("single_switch") or []
    if singles:
        alone = Table(
            title="Each optimization alone (before with only that switch on)",
            title_justify="left",
        )
        alone.add_column("optimization")
        alone.add_column("avg", justify="right")
        alone.add_column("P95", justify="right")
        alone.add_column("errors", justify="right")
        alone.add_column("share of the full gain", justify="right")
        for row in singles:
            alone.add_row(
                row["optimization"],
                _fmt_ms(row["avg_ms"]),
                _fmt_ms(row["p95_ms"]),
                _fmt_pct(row["error_rate"]),
                _fmt_pct(row["share_of_gain"]),
            )
        console.print(alone)
    shares = summary.get("time_saved") or []
    if shares:
        saved = Table(
            title="Where the server time was saved (share of the total, by route)",
            title_justify="left",
        )
        saved.add_column("route")
        saved.add_column("before", justify="right")
        saved.add_column("after", justify="right")
        saved.add_column("share", justify="right")
        saved.add_column("optimizations acting there")
        for row in shares:
            saved.add_row(
                row["route"],
                f"{row['seconds_before']:.1f} s",
                f"{row['seconds_after']:.1f} s",
                _fmt_pct(row["share"]),
                ", ".join(row["optimizations"]),
            )
        console.print(saved)


def print_findings(console: Console, diagnoses: dict[str, dict[str, Any]]) -> None:
    """What ``hlthz diagnose`` finds in each profile: the replay window, then the burst."""
    from hlthz.tools.diagnose import evidence_text

    for name, document in diagnoses.items():
        findings = document.get("findings") or []
        console.print()
        console.print(f"[bold]hlthz diagnose on {name}[/] (replay window, then the burst)")
        for f in findings:
            where = "(whole app)" if f["method"] == "*" else f"{f['method']} {f['route']}"
            if f.get("window") == "burst":
                where += " [burst]"
            console.print(
                f"  {f['severity']:<8} {f['cause']:<19} {where:<38} "
                f"{_fmt_pct(f['share_of_time']):>7}  {evidence_text(f['cause'], f['evidence'])}",
                highlight=False,
                markup=False,
                soft_wrap=True,
            )
        critical = [f for f in findings if f["severity"] == "critical"]
        if not findings:
            console.print(f"  {name}: no findings")
        elif not critical:
            console.print(f"  {name}: no critical finding")
