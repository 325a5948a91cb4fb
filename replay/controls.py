"""What ``replay run`` does to the capture's records on their way out: filters, sampling,
rewriting rules and a warm-up, as ``replay import`` does to them on their way in.

``hlthz replay run prod.jsonl --route 'GET /api/*' --sample 10% --rewrite-path '^/v1/(.*)'
'/v2/$1' --set-header 'Authorization: Bearer ...' --warmup 30`` builds one :class:`Controls`
in the plan. Filters and sampling are :class:`~hlthz.replay.capture.select.Selection`'s (the
same sessions kept as at import), rewriting is :class:`~hlthz.replay.capture.rewrite.Rewrite`'s,
applied to each record after the filters. ``warmup`` seconds of the timeline are sent but left
out of the statistics (a cold cache, a JIT warming up), counted in the report's ``skipped``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, fields
from typing import Any

from hlthz.errors import PlanError, UsageError
from hlthz.replay.capture.format import CaptureRecord
from hlthz.replay.capture.rewrite import Rewrite
from hlthz.replay.capture.select import Selection
from hlthz.replay.schedule import finite_number
from hlthz.routes import Routes

__all__ = ["Controls"]


def _strings(name: str, value: object) -> tuple[str, ...]:
    if isinstance(value, str) or not isinstance(value, list | tuple):
        raise PlanError(name, "must be a list of strings")
    if not all(isinstance(item, str) for item in value):
        raise PlanError(name, "must be a list of strings")
    return tuple(value)


def _tuples(name: str, value: object, size: int) -> tuple[tuple[str, ...], ...]:
    if isinstance(value, str) or not isinstance(value, list | tuple):
        raise PlanError(name, f"must be a list of {size}-item lists of strings")
    out = []
    for item in value:
        if (
            not isinstance(item, list | tuple)
            or len(item) != size
            or not all(isinstance(part, str) for part in item)
        ):
            raise PlanError(name, f"must be a list of {size}-item lists of strings")
        out.append(tuple(item))
    return tuple(out)


@dataclass(frozen=True)
class Controls:
    """Run-time filters, sampling, rewriting and warm-up (module docstring).

    Route rules are ``'[METHOD ]/route'`` globs named as ``inspect`` names routes (the plan's
    ``routes`` templates, else the path normalizer); ``sample`` is a fraction of sessions;
    rewrite fields are those of :class:`Rewrite`; ``warmup`` is in seconds of the timeline.
    """

    routes: tuple[str, ...] = ()
    exclude_routes: tuple[str, ...] = ()
    methods: tuple[str, ...] = ()
    sample: float = 1.0
    sample_key: str | None = None
    rewrite_paths: tuple[tuple[str, str], ...] = ()
    set_query: tuple[tuple[str, str], ...] = ()
    drop_query: tuple[str, ...] = ()
    header_rules: tuple[tuple[str, str, str], ...] = ()
    set_headers: tuple[tuple[str, str], ...] = ()
    drop_headers: tuple[str, ...] = ()
    warmup: float = 0.0

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        for name in ("routes", "exclude_routes", "methods", "drop_query", "drop_headers"):
            set_(self, name, _strings(name, getattr(self, name)))
        for name, size in (
            ("rewrite_paths", 2),
            ("set_query", 2),
            ("header_rules", 3),
            ("set_headers", 2),
        ):
            set_(self, name, _tuples(name, getattr(self, name), size))
        set_(self, "sample", finite_number("sample", self.sample))
        set_(self, "warmup", finite_number("warmup", self.warmup))
        if not 0.0 <= self.warmup <= 86_400:
            raise PlanError("warmup", f"must be 0 to 86400 seconds, got {self.warmup:g}")
        if self.sample_key is not None and not isinstance(self.sample_key, str):
            raise PlanError("sample_key", "must be a string")
        # Build both once: a bad rule is an error now, not in the engine's child process.
        try:
            self.selection(Routes())
            self.rewrite()
        except UsageError as exc:
            raise PlanError("controls", str(exc)) from None

    @property
    def active(self) -> bool:
        """Does anything change what is sent or measured?"""
        return self != Controls()

    def selection(self, naming: Routes) -> Selection:
        """A fresh :class:`Selection` (it counts what it leaves out)."""
        return Selection(
            routes=self.routes,
            exclude_routes=self.exclude_routes,
            methods=self.methods,
            sample=self.sample,
            sample_key=self.sample_key,
            naming=naming,
        )

    def rewrite(self) -> Rewrite:
        """A fresh :class:`Rewrite`."""
        return Rewrite(
            paths=self.rewrite_paths,
            set_query=self.set_query,
            drop_query=self.drop_query,
            header_rules=self.header_rules,
            set_headers=self.set_headers,
            drop_headers=self.drop_headers,
        )

    def wrap(
        self,
        open_records: Callable[[], Iterable[CaptureRecord]],
        naming: Routes,
        on_skip: Callable[[str], None] | None = None,
    ) -> Callable[[], Iterator[CaptureRecord]]:
        """``open_records`` with the filters and rewriting applied (one pass per call);
        ``on_skip("filtered")`` or ``on_skip("sampled")`` for each record left out."""
        selection, rewrite = self.selection(naming), self.rewrite()
        filtering, rewriting = selection.active, rewrite.active
        if not filtering and not rewriting:
            return lambda: iter(open_records())  # no extra step per record when unused

        def records() -> Iterator[CaptureRecord]:
            for record in open_records():
                if filtering:
                    sampled_out = selection.stats.sampled_out
                    if not selection.keep(record):
                        if on_skip is not None:
                            sampled = selection.stats.sampled_out > sampled_out
                            on_skip("sampled" if sampled else "filtered")
                        continue
                yield rewrite.apply(record) if rewriting else record

        return records

    # -- JSON ---------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly values (tuples become lists)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: object) -> Controls:
        """:meth:`to_dict` reversed; unknown keys raise :class:`PlanError`."""
        if not isinstance(data, dict):
            raise PlanError("controls", "must be a JSON object")
        known = {item.name for item in fields(cls)}
        for key in data:
            if key not in known:
                raise PlanError(f"controls.{str(key)[:60]}", "unknown field")
        return cls(**data)
