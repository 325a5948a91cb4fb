"""``ReplayPlan``: everything one replay needs to know, typed and checked once.

The CLI parses its options into a plan, :func:`hlthz.replay.run_replay` takes it, the engine's
child process reads it back from JSON (:meth:`ReplayPlan.from_json`), and so do the workers of
a distributed replay (the master sends the same JSON). A plan that exists is valid: each field
is checked when the plan is made, and a bad one raises :class:`~hlthz.errors.PlanError` naming
the field as the library spells it (``timeout: must be > 0 seconds, got 0``;
``schedule.speed``, ``master_bind``, ``headers``). The CLI shows the same problem after its
option name (``--timeout must be > 0 seconds, got 0``).

Header values often hold tokens: no error message and no ``repr()`` of a plan shows one.

>>> plan = ReplayPlan(capture="prod.jsonl", target="http://127.0.0.1:8000",
...                   schedule=ScheduleOptions(speed=2), headers=(("Authorization", "Bearer x"),))
>>> ReplayPlan.from_json(plan.to_json()) == plan
True
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from hlthz.errors import ConfigError, PlanError, UsageError
from hlthz.net import parse_host_port, parse_http_url
from hlthz.replay.controls import Controls
from hlthz.replay.schedule import ScheduleOptions, finite_number

__all__ = [
    "DEFAULT_BLOCK",
    "DEFAULT_CONCURRENCY",
    "DEFAULT_DEADLINE",
    "DEFAULT_MAX_BODY",
    "PLAN_VERSION",
    "ReplayPlan",
    "parse_header",
]

#: Requests in flight at most (per process); more due requests wait for a slot, and say so.
DEFAULT_CONCURRENCY = 1000
#: Requests per block of an interleaved (A/B) replay. Small, so that a stall of the machine (a
#: busy neighbour, tens to hundreds of ms) spans blocks of both sides instead of landing on
#: one: with blocks of 50 the calibration's A/A false-fail rate was 3 in 50, too high.
DEFAULT_BLOCK = 10
#: A response body longer than this is cut off and counted as a failure (``body_too_large``).
DEFAULT_MAX_BODY = 16 * 2**20
#: A request (connect, send, headers and the whole body) is abandoned after this (seconds).
DEFAULT_DEADLINE = 30.0
#: The version of :meth:`ReplayPlan.to_json`'s document (a master and its workers must agree).
PLAN_VERSION = 1
#: A header name is an RFC 9110 token.
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
#: A header value must not break the request's header block.
_BAD_VALUE = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
_SCHEDULE_FIELDS = ("speed", "rate", "duration", "loop", "max_gap", "allow_writes")


@contextmanager
def naming(field_name: str) -> Iterator[None]:
    """Turn a :class:`~hlthz.errors.UsageError` raised with ``what=field_name`` (by
    :mod:`hlthz.net`, :func:`hlthz.files.ensure_parent` ...) into a :class:`PlanError`."""
    try:
        yield
    except PlanError:
        raise
    except UsageError as exc:
        text = str(exc)
        problem = text[len(field_name) + 1 :] if text.startswith(field_name + " ") else text
        raise PlanError(field_name, problem) from None


def parse_header(text: str, *, index: int = 1) -> tuple[str, str]:
    """``'Authorization: Bearer x'`` -> ``("Authorization", "Bearer x")``; ``'K:'`` gives an
    empty value, which removes K. ``index`` (from 1) says which header an error is about: the
    text itself is never shown, it may hold a token."""
    name, sep, value = text.partition(":")
    name, value = name.strip(), value.strip()
    if not sep or not _TOKEN.fullmatch(name):
        raise PlanError(
            "headers", f"#{index}: write it as 'Name: value' ('Name:' removes the header)"
        )
    return name, value


def _integer(name: str, value: object, *, minimum: int, maximum: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise PlanError(name, f"must be an integer, got {_shown(value)}")
    if value < minimum or (maximum is not None and value > maximum):
        bounds = f">= {minimum}" if maximum is None else f"{minimum}..{maximum}"
        raise PlanError(name, f"must be {bounds}, got {value if abs(value) < 10**12 else 'more'}")
    return value


def _flag(name: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise PlanError(name, f"must be true or false, got {_shown(value)}")
    return value


def _text(name: str, value: object) -> str:
    if not isinstance(value, str):
        raise PlanError(name, f"must be text, got {_shown(value)}")
    return value


def _shown(value: object) -> str:
    # Bounded: an error about a huge value must not print it whole.
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


@dataclass(frozen=True, repr=False)
class ReplayPlan:
    """One replay: what to send (``capture`` in ``format``), where (``target``), when
    (``schedule``) and how.

    ``headers`` are ``(name, value)`` pairs that replace the captured headers of that name (an
    empty value removes it); ``timeout`` bounds each request (seconds) and the reachability
    check; ``concurrency`` caps requests in flight per process; ``workers`` > 0 runs a locust
    master with that many local worker processes, and ``remote_workers`` more join at
    ``master_bind`` (``HOST:PORT``) with ``hlthz replay worker``; the master streams the
    capture to them, and a worker lost mid-run has the rest of its share sent by the others
    when ``reassign_lost`` (else counted as unsent); ``name`` is the run's name
    (default: the capture's file name up to its first dot); ``progress`` shows a live line on
    stderr; ``metrics_port`` serves the replay's own ``/metrics`` on 127.0.0.1; ``insecure``
    skips the certificate check of an https target; ``routes`` are route templates naming the
    report's routes (none: path normalization, :class:`hlthz.routes.Routes`).

    ``more_captures`` are merged with ``capture`` by send time (several instances' or
    workers' captures replayed as one, ids kept unique). ``controls`` filter, sample and
    rewrite the records on their way out and set a warm-up
    (:class:`~hlthz.replay.controls.Controls`). ``baseline`` (a URL) makes the replay
    interleaved: every ``block`` requests go to the baseline and to ``target`` (the
    candidate) in turn, ABBA, and one report holds both sides.
    ``max_body`` (bytes) cuts off a longer response body and ``deadline`` (seconds) abandons a
    request that takes longer in all (both counted as failures), so an endless body cannot grow
    the engine's memory or hold a sender forever.

    ``capture`` may be given as text; it is kept as a :class:`~pathlib.Path`.
    """

    capture: Path
    target: str
    format: str = "auto"
    schedule: ScheduleOptions = field(default_factory=ScheduleOptions)
    headers: tuple[tuple[str, str], ...] = ()
    timeout: float = 10.0
    concurrency: int = DEFAULT_CONCURRENCY
    workers: int = 0
    remote_workers: int = 0
    master_bind: str | None = None
    reassign_lost: bool = False
    name: str | None = None
    progress: bool = False
    metrics_port: int | None = None
    insecure: bool = False
    routes: tuple[str, ...] = ()
    baseline: str | None = None
    block: int = DEFAULT_BLOCK
    controls: Controls = field(default_factory=Controls)
    more_captures: tuple[Path, ...] = ()
    max_body: int = DEFAULT_MAX_BODY
    deadline: float = DEFAULT_DEADLINE

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        capture = self.capture
        if not isinstance(capture, str | os.PathLike) or not os.fspath(capture):
            raise PlanError("capture", f"must be a file path, got {_shown(capture)}")
        set_(self, "capture", Path(capture))
        with naming("target"):
            parse_http_url(_text("target", self.target), what="target")
        from hlthz.replay.capture.sources import FORMATS

        if self.format not in FORMATS:
            raise PlanError("format", f"{_shown(self.format)}: choose one of {', '.join(FORMATS)}")
        if not isinstance(self.schedule, ScheduleOptions):
            raise PlanError("schedule", f"must be a ScheduleOptions, got {_shown(self.schedule)}")
        set_(self, "headers", _headers(self.headers))
        set_(self, "timeout", finite_number("timeout", self.timeout))
        if not self.timeout > 0:
            raise PlanError("timeout", f"must be > 0 seconds, got {self.timeout:g}")
        _integer("concurrency", self.concurrency, minimum=1)
        _integer("workers", self.workers, minimum=0)
        _integer("remote_workers", self.remote_workers, minimum=0)
        if self.master_bind is not None:
            with naming("master_bind"):
                parse_host_port(
                    _text("master_bind", self.master_bind),
                    what="master_bind",
                    allow_port_zero=True,
                )
        elif self.remote_workers:
            raise PlanError(
                "master_bind",
                "needed when remote workers are expected: give a HOST:PORT they can reach, "
                "e.g. 0.0.0.0:5557",
            )
        _flag("reassign_lost", self.reassign_lost)
        if self.name is not None and (
            not _text("name", self.name).strip() or _BAD_VALUE.search(self.name)
        ):
            raise PlanError("name", "must be a non-empty line of text")
        _flag("progress", self.progress)
        if self.metrics_port is not None:
            _integer("metrics_port", self.metrics_port, minimum=1, maximum=65535)
        _flag("insecure", self.insecure)
        set_(self, "routes", _routes(self.routes))
        if self.baseline is not None:
            with naming("baseline"):
                parse_http_url(_text("baseline", self.baseline), what="baseline")
            if self.workers or self.remote_workers:
                raise PlanError(
                    "baseline", "an interleaved replay runs in one process; drop --workers"
                )
        _integer("block", self.block, minimum=1)
        more = self.more_captures
        if isinstance(more, str) or not isinstance(more, list | tuple):
            raise PlanError(
                "more_captures", f"must be a list of paths, got {_shown(self.more_captures)}"
            )
        for item in self.more_captures:
            if not isinstance(item, str | os.PathLike) or not os.fspath(item):
                raise PlanError("more_captures", f"must be file paths, got {_shown(item)}")
        set_(self, "more_captures", tuple(Path(item) for item in self.more_captures))
        if not isinstance(self.controls, Controls):
            raise PlanError("controls", f"must be a Controls, got {_shown(self.controls)}")
        _integer("max_body", self.max_body, minimum=1)
        set_(self, "deadline", finite_number("deadline", self.deadline))
        if not self.deadline > 0:
            raise PlanError("deadline", f"must be > 0 seconds, got {self.deadline:g}")

    # -- reading ------------------------------------------------------------------------------

    @property
    def captures(self) -> tuple[Path, ...]:
        """Every capture file replayed: ``capture``, then ``more_captures`` (merged by time)."""
        return (self.capture, *self.more_captures)

    @property
    def run_name(self) -> str:
        """``name``, else the capture's file name up to its first dot (``prod.jsonl``: prod)."""
        return self.name or self.capture.name.split(".")[0]

    def __repr__(self) -> str:
        # Like the dataclass repr, with header values hidden: they often hold tokens.
        parts = []
        for item in fields(self):
            value = getattr(self, item.name)
            if item.name == "headers":
                value = tuple((name, "<hidden>" if v else "") for name, v in value)
            parts.append(f"{item.name}={value!r}")
        return f"ReplayPlan({', '.join(parts)})"

    # -- JSON ---------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """A JSON-friendly dict (``hlthz_plan``: the version); :meth:`from_dict` reverses it."""
        schedule = self.schedule
        return {
            "hlthz_plan": PLAN_VERSION,
            "capture": str(self.capture),
            "target": self.target,
            "format": self.format,
            "schedule": {name: getattr(schedule, name) for name in _SCHEDULE_FIELDS},
            "headers": [list(pair) for pair in self.headers],
            "timeout": self.timeout,
            "concurrency": self.concurrency,
            "workers": self.workers,
            "remote_workers": self.remote_workers,
            "master_bind": self.master_bind,
            "reassign_lost": self.reassign_lost,
            "name": self.name,
            "progress": self.progress,
            "metrics_port": self.metrics_port,
            "insecure": self.insecure,
            "routes": list(self.routes),
            "baseline": self.baseline,
            "block": self.block,
            "controls": self.controls.to_dict(),
            "more_captures": [str(p) for p in self.more_captures],
            "max_body": self.max_body,
            "deadline": self.deadline,
        }

    def to_json(self) -> str:
        """The plan as one line of JSON."""
        return json.dumps(self.to_dict(), separators=(",", ":"), allow_nan=False)

    @classmethod
    def from_dict(cls, data: object) -> ReplayPlan:
        """A plan from :meth:`to_dict`'s form, checked like any plan; unknown or missing fields
        and another version raise :class:`PlanError`."""
        if not isinstance(data, dict):
            raise PlanError("plan", f"must be a JSON object, got {_shown(data)}")
        version = data.get("hlthz_plan")
        if isinstance(version, bool) or version != PLAN_VERSION:
            raise PlanError(
                "hlthz_plan",
                f"this hlthz reads replay plans of version {PLAN_VERSION}, got {_shown(version)}; "
                f"run the same hlthz version everywhere",
            )
        known = {item.name for item in fields(cls)}
        values = {key: value for key, value in data.items() if key != "hlthz_plan"}
        for key in values:
            if key not in known:
                raise PlanError(str(key)[:60], "unknown field")
        for key in ("capture", "target"):
            if key not in values:
                raise PlanError(key, "missing")
        if "schedule" in values:
            values["schedule"] = _schedule_from(values["schedule"])
        if "controls" in values:
            values["controls"] = Controls.from_dict(values["controls"])
        if "capture" in values and isinstance(values["capture"], str):
            values["capture"] = Path(values["capture"])
        return cls(**values)

    @classmethod
    def from_json(cls, text: str | bytes) -> ReplayPlan:
        """The plan :meth:`to_json` wrote."""
        try:
            data = json.loads(text)
        except (ValueError, RecursionError) as exc:
            raise ConfigError(f"replay plan: not valid JSON ({str(exc)[:80]})") from None
        return cls.from_dict(data)


def _schedule_from(data: object) -> ScheduleOptions:
    if not isinstance(data, dict):
        raise PlanError("schedule", f"must be an object, got {_shown(data)}")
    for key in data:
        if key not in _SCHEDULE_FIELDS:
            raise PlanError(f"schedule.{str(key)[:60]}", "unknown field")
    try:
        return ScheduleOptions(**data)
    except PlanError as exc:
        raise PlanError(f"schedule.{exc.field}", exc.problem) from None


def _headers(value: object) -> tuple[tuple[str, str], ...]:
    if isinstance(value, str | bytes) or not isinstance(value, Iterable):
        raise PlanError("headers", "must be a sequence of (name, value) pairs")
    out = []
    for index, pair in enumerate(value, 1):
        if isinstance(pair, str | bytes) or not isinstance(pair, Iterable):
            raise PlanError("headers", f"#{index}: must be a (name, value) pair")
        items = tuple(pair)
        if len(items) != 2 or not all(isinstance(item, str) for item in items):
            raise PlanError("headers", f"#{index}: must be a (name, value) pair of text")
        name, text = items
        if not _TOKEN.fullmatch(name):
            raise PlanError(
                "headers", f"#{index}: the name must be a header name (letters, digits, '-')"
            )
        if _BAD_VALUE.search(text):
            # The value is not shown: it may be a token.
            raise PlanError("headers", f"#{index} ({name}): the value holds control characters")
        out.append((name, text))
    return tuple(out)


def _routes(value: object) -> tuple[str, ...]:
    if isinstance(value, str | bytes) or not isinstance(value, Iterable):
        raise PlanError("routes", "must be a sequence of route templates")
    templates = tuple(value)
    for template in templates:
        if not isinstance(template, str):
            raise PlanError("routes", f"must be route templates (text), got {_shown(template)}")
    from hlthz.routes import Routes

    try:
        Routes(templates)
    except ConfigError as exc:
        raise PlanError("routes", str(exc)) from None
    return templates
