"""Incident files (``hlthz_incidents: 1``) and how well alerts matched them.

An incident is a time window in which something was wrong, optionally with the alerts that
should have fired (``APIHighErrorRate``, or ``APIHighLatencyP95:critical`` for one severity).
An episode *matches* an incident when it overlaps ``[start, end + grace]``.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from hlthz.errors import InputError, UsageError

#: Larger incident files are refused: a drill log or a postmortem list is a few KB.
MAX_BYTES = 10 * 1024 * 1024
MAX_INCIDENTS = 100_000


@dataclass(frozen=True)
class Incident:
    """A window ``[start, end]`` (Unix seconds) and the alerts expected to fire in it."""

    name: str
    start: float
    end: float
    alerts: tuple[str, ...] = ()

    def expects(self, name: str, severity: str) -> bool:
        return name in self.alerts or f"{name}:{severity}" in self.alerts

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "start": self.start, "end": self.end, "alerts": [*self.alerts]}


def parse_time(value: Any, *, what: str, now: float | None = None) -> float:
    """Unix seconds from a number, ``"now"``, ``"now-2h"``/``"-2h"``, or ISO-8601 text
    (without a zone: UTC). Raises :class:`UsageError` naming ``what``."""
    from hlthz.alerts.config import parse_duration

    if isinstance(value, bool):
        raise UsageError(f"{what}: {value!r} is not a time; give Unix seconds or ISO-8601")
    if isinstance(value, int | float):
        if not math.isfinite(value) or value < 0:
            raise UsageError(f"{what}: {value!r} is not a time; give Unix seconds or ISO-8601")
        return float(value)
    if isinstance(value, _dt.datetime):
        moment = value if value.tzinfo else value.replace(tzinfo=_dt.UTC)
        return moment.timestamp()
    text = str(value).strip()
    current = _dt.datetime.now(_dt.UTC).timestamp() if now is None else now
    relative = text[3:] if text.startswith("now") else text if text.startswith("-") else None
    if relative == "":
        return current
    if relative is not None and relative.startswith("-"):
        try:
            return current - parse_duration(relative[1:])
        except (ValueError, UsageError):
            raise UsageError(
                f"{what}: {text[:60]!r}: write a relative time like now-2h or -30m"
            ) from None
    try:
        return float(text)
    except ValueError:
        pass
    try:
        moment = _dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise UsageError(
            f"{what}: {text[:60]!r} is not a time; give Unix seconds, ISO-8601 "
            "(2026-12-02T10:00:00Z), now or now-2h"
        ) from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=_dt.UTC)
    return moment.timestamp()


def load_incidents(path: str | Path) -> list[Incident]:
    """Read an incident file (YAML or JSON). Raises :class:`InputError` naming the field."""
    path = Path(path)
    try:
        size = path.stat().st_size
        if size > MAX_BYTES:
            raise InputError(str(path), 0, f"{size} bytes; an incident file is at most 10 MB")
        doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise InputError(str(path), 0, f"cannot read it: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise InputError(str(path), 0, "not UTF-8 text; write YAML or JSON") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        line = mark.line + 1 if mark is not None else 0
        raise InputError(str(path), line, "not valid YAML or JSON") from None
    if not isinstance(doc, dict) or doc.get("hlthz_incidents") != 1:
        raise InputError(str(path), 0, 'not an incident file v1 (no "hlthz_incidents": 1)')
    items = doc.get("incidents")
    if not isinstance(items, list):
        raise InputError(str(path), 0, "incidents: expected a list of {name, start, end}")
    # YAML aliases can make a small file a list of billions: bound the work before it starts.
    if len(items) > MAX_INCIDENTS:
        raise InputError(str(path), 0, f"incidents: {len(items)} items; at most {MAX_INCIDENTS}")
    out = []
    for i, item in enumerate(items):
        where = f"incidents[{i}]"
        if not isinstance(item, dict):
            raise InputError(str(path), 0, f"{where}: expected a mapping with start and end")
        try:
            start = parse_time(item.get("start"), what=f"{where}.start")
            end = parse_time(item.get("end"), what=f"{where}.end")
        except UsageError as exc:
            raise InputError(str(path), 0, str(exc)) from None
        if end < start:
            raise InputError(str(path), 0, f"{where}: end is before start")
        alerts = item.get("alerts", [])
        if (
            not isinstance(alerts, list)
            or len(alerts) > 1000
            or not all(isinstance(a, str) for a in alerts)
        ):
            raise InputError(str(path), 0, f"{where}.alerts: expected a list of alert names")
        name = str(item.get("name", f"incident {i + 1}"))[:200]
        out.append(Incident(name, start, end, tuple(alerts)))
    return out


def write_incidents(path: str | Path, incidents: Sequence[Incident]) -> None:
    """Write an incident file (JSON), atomically."""
    from hlthz.files import atomic_write

    doc = {"hlthz_incidents": 1, "incidents": [i.to_json() for i in incidents]}
    atomic_write(Path(path), json.dumps(doc, indent=2) + "\n")


@dataclass
class Quality:
    """How one alert (name and severity) did against the incidents."""

    episodes: int = 0
    matched_episodes: int = 0
    expected: int = 0
    detected: int = 0
    delays: list[float] = field(default_factory=list)
    resets: list[float] = field(default_factory=list)

    @property
    def precision(self) -> float | None:
        return self.matched_episodes / self.episodes if self.episodes else None

    @property
    def recall(self) -> float | None:
        return self.detected / self.expected if self.expected else None

    @property
    def detection_delay(self) -> float | None:
        return sum(self.delays) / len(self.delays) if self.delays else None

    @property
    def reset_time(self) -> float | None:
        return sum(self.resets) / len(self.resets) if self.resets else None

    def to_json(self) -> dict[str, Any]:
        return {
            "precision": self.precision,
            "recall": self.recall,
            "detection_delay": self.detection_delay,
            "reset_time": self.reset_time,
            "episodes": self.episodes,
            "false_episodes": self.episodes - self.matched_episodes,
            "incidents_expected": self.expected,
            "incidents_detected": self.detected,
        }


def score(
    name: str,
    severity: str,
    windows: Sequence[tuple[float, float | None]],
    incidents: Sequence[Incident],
    *,
    range_end: float,
    grace: float = 0.0,
) -> Quality:
    """Precision (episodes inside any incident), recall (incidents naming this alert that one
    of its episodes matched), mean detection delay (first matching start - incident start)
    and mean reset time (last matching end - incident end) of one alert's episodes."""
    q = Quality(episodes=len(windows))

    def overlaps(w: tuple[float, float | None], inc: Incident) -> bool:
        end = w[1] if w[1] is not None else range_end
        return w[0] <= inc.end + grace and end >= inc.start

    q.matched_episodes = sum(1 for w in windows if any(overlaps(w, i) for i in incidents))
    for inc in incidents:
        if not inc.expects(name, severity):
            continue
        q.expected += 1
        hits = sorted((w for w in windows if overlaps(w, inc)), key=lambda w: w[0])
        if not hits:
            continue
        q.detected += 1
        q.delays.append(hits[0][0] - inc.start)
        last_end = hits[-1][1]
        if last_end is not None:
            q.resets.append(last_end - inc.end)
    return q
