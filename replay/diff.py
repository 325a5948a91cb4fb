"""Response diffing in the manner of Twitter's Diffy: is the candidate's behaviour different?

Each captured request goes to a *primary* (the released version), a *candidate*, and optionally
a *secondary* (a second instance of the released version). Status, the headers you name and
JSON bodies field by field (``$.items[0].price``) are compared. A difference that also shows
between primary and secondary is noise (timestamps, ids, random tokens) and is filtered out;
``ignore`` rules drop paths by pattern (``$.request_id``, ``$.items[*].updated_at``, ``$..etag``).
What remains is grouped by route, kind and path with a count and an example.

Plain synchronous HTTP (httpx, no redirects followed), one request at a time per target: a diff
is about correctness, not load.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

import httpx

from hlthz.files import atomic_write
from hlthz.replay.engine import Target
from hlthz.replay.schedule import SAFE_METHODS
from hlthz.routes import Routes

_MISSING = object()
_EXAMPLES = 3


def flatten(value: Any, path: str = "$") -> Iterator[tuple[str, Any]]:
    """``(json_path, leaf)`` pairs; empty containers are leaves so their presence is compared."""
    if isinstance(value, dict) and value:
        for key, item in value.items():
            yield from flatten(item, f"{path}.{key}")
    elif isinstance(value, list) and value:
        for index, item in enumerate(value):
            yield from flatten(item, f"{path}[{index}]")
    else:
        yield path, value


def _rule_regex(rule: str) -> re.Pattern[str]:
    # `[*]` any index, `*` one key, `..` any depth; everything else literal.
    rule = rule if rule.startswith("$") else "$." + rule.lstrip(".")
    out, i = "", 0
    while i < len(rule):
        if rule.startswith("[*]", i):
            out, i = out + r"\[\d+\]", i + 3
        elif rule.startswith("..", i):
            out, i = out + r"(?:\.[^.\[]+|\[\d+\])*\.", i + 2
        elif rule[i] == "*":
            out, i = out + r"[^.\[]+", i + 1
        else:
            out, i = out + re.escape(rule[i]), i + 1
    return re.compile(out + r"(?:$|[.\[].*)")


@dataclass
class Difference:
    """One group of real differences: same route, kind (status/header/body) and path."""

    route: str
    kind: str
    path: str
    count: int = 0
    examples: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class DiffResult:
    """What :func:`run_diff` found. ``failed``: real differences remain."""

    requests: int = 0
    skipped: int = 0
    errors: int = 0
    noise: int = 0
    ignored: int = 0
    differences: dict[tuple[str, str, str], Difference] = field(default_factory=dict)

    @property
    def failed(self) -> bool:
        return bool(self.differences)

    def to_dict(self) -> dict[str, Any]:
        return {
            "hlthz_diff": 1,
            "requests": self.requests,
            "skipped": self.skipped,
            "errors": self.errors,
            "noise_filtered": self.noise,
            "ignored": self.ignored,
            "failed": self.failed,
            "differences": [
                {
                    "route": d.route,
                    "kind": d.kind,
                    "path": d.path,
                    "count": d.count,
                    "examples": d.examples,
                }
                for d in sorted(
                    self.differences.values(), key=lambda d: (-d.count, d.route, d.path)
                )
            ],
        }

    def summary_lines(self) -> list[str]:
        lines = [
            f"{d.count:>6}  {d.route}  {d.kind} {d.path}: {d.examples[0]['primary']!r} -> "
            f"{d.examples[0]['candidate']!r}"
            for d in sorted(self.differences.values(), key=lambda d: (-d.count, d.route, d.path))
        ]
        lines.append(
            f"{self.requests} requests compared, {len(self.differences)} groups of real "
            f"differences, {self.noise} noisy fields filtered, {self.ignored} ignored, "
            f"{self.skipped} skipped, {self.errors} with a transport error"
        )
        return lines


@dataclass
class _Response:
    status: int | str  # a str names a transport failure: "transport error (ReadTimeout)"
    headers: dict[str, str]
    fields: dict[str, Any]

    @property
    def failed(self) -> bool:
        return isinstance(self.status, str)


def _fetch(client: httpx.Client, target: Target, record: Any, header_names: list[str]) -> _Response:
    headers = [
        (k, v)
        for k, v in record.headers
        if k.lower()
        not in ("host", "content-length", "connection", "transfer-encoding", "accept-encoding")
    ]
    url = target.origin + target.uri(record.path)
    try:
        response = client.request(record.method, url, headers=headers, content=record.body or None)
    except httpx.HTTPError as exc:
        # An answer from one side and none from the other is a difference, not a skip.
        return _Response(f"transport error ({type(exc).__name__})", {}, {})
    try:
        body = response.json()
        fields = dict(flatten(body))
    except (json.JSONDecodeError, UnicodeDecodeError, ValueError):
        fields = {"$": response.text if response.content else ""}
    return _Response(
        response.status_code,
        {name: response.headers.get(name, "") for name in header_names},
        fields,
    )


def _differing(a: _Response, b: _Response) -> dict[tuple[str, str], tuple[Any, Any]]:
    out: dict[tuple[str, str], tuple[Any, Any]] = {}
    if a.status != b.status:
        out[("status", "status")] = (a.status, b.status)
    if a.failed or b.failed:
        return out  # no headers or body to compare
    for name in a.headers:
        if a.headers[name] != b.headers.get(name):
            out[("header", name)] = (a.headers[name], b.headers.get(name))
    for path in a.fields.keys() | b.fields.keys():
        x, y = a.fields.get(path, _MISSING), b.fields.get(path, _MISSING)
        if x != y:
            out[("body", path)] = (
                "<missing>" if x is _MISSING else x,
                "<missing>" if y is _MISSING else y,
            )
    return out


def run_diff(
    records: Iterable[Any],
    *,
    primary: str,
    candidate: str,
    secondary: str | None = None,
    headers: Iterable[str] = (),
    ignore: Iterable[str] = (),
    allow_writes: bool = False,
    timeout: float = 10.0,
    limit: int | None = None,
    routes: Routes | None = None,
) -> DiffResult:
    """Send each record to every target and group the real differences (see the module doc);
    differences are grouped by route as ``routes`` names them (default: path normalization)."""
    routes = routes or Routes()
    targets = {
        "primary": Target(primary, what="primary"),
        "candidate": Target(candidate, what="candidate"),
    }
    if secondary:
        targets["secondary"] = Target(secondary, what="secondary")
    for target in targets.values():
        target.check_reachable(timeout)
    header_names = [h.lower() for h in headers]
    rules = [_rule_regex(rule) for rule in ignore]
    result = DiffResult()
    with httpx.Client(timeout=timeout, follow_redirects=False) as client:
        for record in records:
            if limit is not None and result.requests >= limit:
                break
            if record.method.upper() not in SAFE_METHODS and not allow_writes:
                result.skipped += 1
                continue
            got = {name: _fetch(client, t, record, header_names) for name, t in targets.items()}
            result.requests += 1
            result.errors += any(response.failed for response in got.values())
            real = _differing(got["primary"], got["candidate"])
            noisy = _differing(got["primary"], got["secondary"]) if "secondary" in got else {}
            route = routes.name(record.method, record.path)
            for (kind, path), (was, now) in real.items():
                if (kind, path) in noisy:
                    result.noise += 1
                    continue
                if kind == "body" and any(rule.match(path) for rule in rules):
                    result.ignored += 1
                    continue
                group = result.differences.get((route, kind, path))
                if group is None:
                    group = result.differences[(route, kind, path)] = Difference(route, kind, path)
                group.count += 1
                if len(group.examples) < _EXAMPLES:
                    group.examples.append({"path": record.path, "primary": was, "candidate": now})
    return result


def write_diff(
    result: DiffResult, path: str | os.PathLike[str], *, what: str | None = None
) -> None:
    """Write the grouped differences as JSON, atomically; ``what`` (an option name) turns an
    OS error into one line naming it."""
    atomic_write(path, json.dumps(result.to_dict(), indent=1, default=str) + "\n", what=what)
