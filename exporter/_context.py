"""Per-request state shared by the middleware and the database hooks, through a contextvar.

The middleware sets one :class:`RequestState` per request (one ``ContextVar.set`` and one
``reset``); the database hooks count into it and the framework hooks write the route into it.
Thread pools and tasks spawned by the framework copy the context, so they see the same object
and their queries count for the request.
"""

from __future__ import annotations

from contextvars import ContextVar


class RequestState:
    """What one request did: its route (when a framework hook knows it) and its queries."""

    __slots__ = (
        "flagged",
        "queries",
        "query_seconds",
        "response_bytes",
        "route",
        "shapes",
        "source",
        "threshold",
        "upstream_calls",
        "upstream_seconds",
    )

    def __init__(self, threshold: int) -> None:
        self.route: str | None = None
        #: A framework object the route can be read from after the request (Flask's context).
        self.source: object = None
        self.queries = 0
        #: Seconds spent in the counted queries (added by the database hooks).
        self.query_seconds = 0.0
        self.threshold = threshold
        #: statement shape -> executions in this request (created on the first query).
        self.shapes: dict[str, int] | None = None
        #: (query_type, shape) pairs that reached ``threshold`` in this request.
        self.flagged: list[tuple[str, str]] | None = None
        #: Response body bytes sent (as sent: compressed when the app compresses).
        self.response_bytes = 0
        #: Outbound calls timed by ``UpstreamMetrics`` during this request, and their seconds.
        self.upstream_calls = 0
        self.upstream_seconds = 0.0

    def count_query(self, shape: str, query_type: str) -> None:
        """Count one query of ``shape``; flag the shape when it reaches the N+1 threshold."""
        self.queries += 1
        shapes = self.shapes
        if shapes is None:
            shapes = self.shapes = {}
        n = shapes.get(shape, 0) + 1
        shapes[shape] = n
        if n == self.threshold:
            if self.flagged is None:
                self.flagged = []
            self.flagged.append((query_type, shape))


current_request: ContextVar[RequestState | None] = ContextVar("hlthz_request", default=None)
#: Explicit ``query_type`` for statements run inside ``query_name(...)``.
current_query_name: ContextVar[str | None] = ContextVar("hlthz_query_name", default=None)
